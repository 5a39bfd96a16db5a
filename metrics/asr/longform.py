"""Long-form Whisper transcription over any backend: batched, deterministic, offline.

1. Cut each clip into windows of <= 30 s (`windowing.plan_windows`: cuts in pauses;
   where there is none, overlapping windows).
2. A window whose RMS is below `SILENCE_RMS` is not decoded (text ""); all other
   windows of all clips are decoded together in batches of `batch_size` at
   temperature 0 (beam search of `beam_size`, or greedy when beam_size <= 1), language
   fixed, no timestamps, no conditioning on the previous window's text (it is what
   spreads a hallucination from one window to the next).
3. A window whose text has a gzip compression ratio > 2.4 (a loop) or an average log
   probability < -1.0 is decoded again at 0.2, 0.4, ... 1.0 (best of 5 samples), alone,
   with the engine seeded from (seed, the window's samples, the temperature): the same
   window always gets the same text, whoever shares its batch. As in
   `whisper.transcribe`, when every temperature fails the last result is kept.
4. A window with no-speech probability > 0.6 and average log probability < -1.0 gives
   "" (and no fallback), as `whisper.transcribe` does: no "Thank you." over the silence
   a truncated TTS output ends with.
5. Window texts are merged (`windowing.merge_texts`): joined after a clean cut, aligned
   on the words both windows heard after an overlapping one.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from halle_bench.audio import SILENCE_RMS, sha256_array
from halle_bench.errors import ConfigError

from ..base import ModelRef
from .windowing import SAMPLE_RATE, merge_texts, plan_windows


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
    overlap_seconds: float = 5.0
    clean_cut_db: float = -30.0
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
    cuts: int = 0  # window cuts
    cut_db: float | None = None  # level of the loudest cut relative to the clip's RMS (None: no cut)
    overlaps: int = 0  # cuts inside speech, decoded with overlapping windows
    merge_fallbacks: int = 0  # overlapping joins that found no agreeing words (joined by time)
    error: str | None = None


def window_seed(seed: int, audio: np.ndarray, temperature: float) -> int:
    """A seed for one window's fallback sampling: a function of its content only."""
    h = hashlib.sha256(f"{seed}:{sha256_array(audio)}:{temperature:.3f}".encode()).hexdigest()
    return int(h[:15], 16)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


class LongFormASR:
    """Owns one backend (one loaded model); `transcribe` any number of clips of any length."""

    def __init__(
        self,
        model: str = "whisper-base",
        backend: str = "auto",
        device: str = "cpu",
        batch_size: int = 8,
        decoding: DecodingSettings | None = None,
        compute_type: str = "auto",
        threads: int | None = None,
    ):
        self.model_name = str(model)
        self.backend_name = backend
        self.device = device
        self.compute_type = compute_type
        self.threads = threads
        self.batch_size = max(1, int(batch_size))
        self.settings = decoding or DecodingSettings()
        self._backend = None

    @property
    def backend(self):
        """The engine, built (model resolved, sha256 checked) on first use, not loaded."""
        if self._backend is None:
            from .models import build_backend

            self._backend = build_backend(self.model_name, self.backend_name, self.settings, self.device, self.compute_type, self.threads)
        return self._backend

    def load(self) -> "LongFormASR":
        b = self.backend
        b.load()
        if not b.multilingual and self.settings.language != "en":
            raise ConfigError(f"ASR model {b.model_ref.name} is English-only; language={self.settings.language!r} needs a multilingual model")
        return self

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()

    @property
    def model_ref(self) -> ModelRef:
        return self.backend.model_ref

    def decoding_dict(self) -> dict[str, Any]:
        d = self.settings.as_dict()
        d["backend"] = self.backend.name
        d.update(self.backend.settings())
        return d

    # -- decoding --------------------------------------------------------------------
    def _verdict(self, r) -> str:
        s = self.settings
        if r.no_speech_prob > s.no_speech_threshold and r.avg_logprob < s.logprob_threshold:
            return "no-speech"
        if r.compression_ratio > s.compression_ratio_threshold or r.avg_logprob < s.logprob_threshold:
            return "fallback"
        return "ok"

    def _fallback(self, window: np.ndarray, r):
        """Decode again at rising temperatures; `r` is the temperature-0 result."""
        for t in self.settings.temperatures[1:]:
            r = self.backend.decode([window], t, seed=window_seed(self.settings.seed, window, t))[0]
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
        s = self.settings
        out: list[Transcript] = []
        plans = {}
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
            plan = plan_windows(x, SAMPLE_RATE, s.window_seconds, s.search_seconds, s.frame_seconds, s.overlap_seconds, s.clean_cut_db)
            plans[k] = plan
            for b, (i0, i1) in enumerate(plan.bounds):
                jobs.append((k, b, x[i0:i1], i0 / SAMPLE_RATE, i1 / SAMPLE_RATE))

        results: dict[tuple[int, int], WindowResult] = {}
        speech = []
        for k, b, w, t0, t1 in jobs:
            if _rms(w) < SILENCE_RMS:
                results[(k, b)] = WindowResult(t0, t1, "", "silence")
            else:
                speech.append((k, b, w, t0, t1))
        # similar lengths together (similar token counts: less beam work wasted on finished
        # rows); stable and content-determined, and results do not depend on batching
        speech.sort(key=lambda j: len(j[2]))
        for c in range(0, len(speech), self.batch_size):
            chunk = speech[c : c + self.batch_size]
            for (k, b, w, t0, t1), r in zip(chunk, self.backend.decode([j[2] for j in chunk], 0.0)):
                verdict = self._verdict(r)
                if verdict == "fallback":
                    r, verdict = self._fallback(w, r)
                text = "" if verdict == "no-speech" else r.text.strip()
                results[(k, b)] = WindowResult(
                    t0, t1, text, verdict, r.temperature, _finite(r.avg_logprob), _finite(r.compression_ratio), _finite(r.no_speech_prob)
                )
        for (k, b) in sorted(results):
            out[k].windows.append(results[(k, b)])
        for k, plan in plans.items():
            t = out[k]
            t.text, t.merge_fallbacks = merge_texts([w.text for w in t.windows], plan.bounds, SAMPLE_RATE)
            t.cuts, t.cut_db = len(plan.cuts), plan.cut_db
            t.overlaps = sum(c.overlap > 0 for c in plan.cuts)
        return out


# the name the scorer and older code use
WhisperASR = LongFormASR
