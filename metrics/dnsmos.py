"""DNSMOS P.835 (SIG/BAK/OVRL) and P.808, run directly on the speechmos ONNX files.

The maths follows Microsoft's reference `dnsmos_local.py` (which `speechmos.dnsmos`
copies): the clip is cut into 9.01 s windows (`WINDOW_SAMPLES` = 144160 samples at
16 kHz) every `hop` seconds (1 s in the reference; `[metrics] quality` `hop_seconds`);
each window goes through the
P.835 network (raw waveform in, three raw scores out, then a fixed cubic/quadratic
polynomial per dimension) and through the P.808 network (a 120-band log-mel of
the window minus its last 160 samples, 900 frames); the clip's scores are the
means over its windows, and the per-window OVRL goes to `quality_min`, `quality_last`
and `pos_quality` (see `quality_windows`).

Decisions where we differ from, or pin down, the reference:

* **Windows cover the whole clip** (`quality_windows.cover_starts`): starts every
  `hop` seconds while a window fits, then one more window ending exactly at the clip's
  end. The reference keeps windows within the clip's whole seconds, so with its 1 s
  hop up to 9 s of the tail (with non-overlapping windows, 8.9 s of a 17.9 s clip) was
  never scored. Each window we share with the reference (starts at whole seconds)
  gives the reference's scores (parity test); the clip's mean differs by the added
  end window. The reference also computes a window's end as `int((k + 9.01) * sr)` in
  floating point, which for k = 7..23, 119..121, ... rounds down to a 144159-sample
  window that it then *skips*; we score every window.
* **Short clips** (not longer than one window) are padded as the reference does (the
  clip doubled, `np.append(x, x)`, until it is one window long) and scored *once*:
  the first window of the padded clip.
* **Samples outside [-1, 1]** (the reference raises) are clipped, as writing the
  audio to a 16-bit wav would do.
* **Determinism and batch invariance**: every window is computed on its own, with
  a fixed input shape, in a single-threaded onnxruntime session
  (intra/inter-op threads = 1, sequential execution). A window's score therefore
  does not depend on which other windows or items share a batch, nor on the
  machine's thread count; windows of many items are pooled only to share the
  Python loop. On 2 CPU cores batch 1 was also the fastest ONNX shape (a batch of
  8 windows took 1.9x longer per window), so nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from halle_bench.errors import ConfigError
from halle_bench.models import resolve

from .base import ModelRef
from .quality_registry import DNSMOS_P808, DNSMOS_P835, register_quality_model
from .quality_windows import WindowScores, cover_starts

SR = 16000
WINDOW_SECONDS = 9.01
WINDOW_SAMPLES = int(round(WINDOW_SECONDS * SR))  # 144160
P808_FRAMES = 900

# Non-personalised P.835 polynomials (highest power first), from the reference.
POLY_SIG = (-0.08397278, 1.22083953, 0.0052439)
POLY_BAK = (-0.13166888, 1.60915514, -0.39604546)
POLY_OVRL = (-0.06766283, 1.11546468, 0.04602535)


@dataclass(frozen=True)
class DnsmosScores:
    sig: float  # means over the windows
    bak: float
    ovrl: float
    p808: float
    n_windows: int
    windows: tuple[tuple[float, float, float, float], ...] = ()  # (sig, bak, ovrl, p808) per window
    starts: tuple[int, ...] = ()  # window start samples
    n_samples: int = 0  # the clip's length before padding


def pad_like_reference(x: np.ndarray, win: int = WINDOW_SAMPLES) -> np.ndarray:
    """Double the clip until it holds at least one window (the reference's padding)."""
    if x.size == 0:
        raise ValueError("empty audio")
    while x.size < win:
        x = np.append(x, x)
    return x


def window_starts(n_samples: int, sr: int = SR, hop_seconds: float = 1.0, win: int = WINDOW_SAMPLES) -> list[int]:
    """Integer start samples of the windows of a clip (see the module docstring)."""
    hop = int(round(hop_seconds * sr))
    if hop <= 0:
        raise ValueError("hop_seconds must be positive")
    return cover_starts(n_samples, win, hop)


def clip_windows(x: np.ndarray, sr: int = SR, hop_seconds: float = 1.0) -> tuple[np.ndarray, list[int]]:
    """(n_windows, WINDOW_SAMPLES) float32 windows of a clip and their start samples;
    a clip not longer than one window is padded as the reference does, scored once."""
    if sr != SR:
        raise ValueError(f"DNSMOS needs {SR} Hz audio, got {sr}")
    x = np.clip(np.asarray(x, dtype=np.float32).reshape(-1), -1.0, 1.0)
    starts = window_starts(x.size, sr, hop_seconds)
    x = pad_like_reference(x)
    return np.stack([x[s : s + WINDOW_SAMPLES] for s in starts]), starts


def p808_features(window: np.ndarray) -> np.ndarray:
    """(900, 120) log-mel input of the P.808 model for one window (reference recipe)."""
    import librosa

    mel = librosa.feature.melspectrogram(y=window[:-160], sr=SR, n_fft=321, hop_length=160, n_mels=120)
    # dB relative to this window's own maximum, then mapped to about [0, 1].
    mel = (librosa.power_to_db(mel, ref=np.max) + 40) / 40
    return mel.T.astype(np.float32)


def polyfit(raw_sig: float, raw_bak: float, raw_ovrl: float) -> tuple[float, float, float]:
    return (
        float(np.polyval(POLY_SIG, raw_sig)),
        float(np.polyval(POLY_BAK, raw_bak)),
        float(np.polyval(POLY_OVRL, raw_ovrl)),
    )


def _session(path: str | Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # One thread, sequential: results must not depend on the machine's core count.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


class Dnsmos:
    """Owns the two ONNX sessions; scores many clips, window by window."""

    def __init__(self, primary_path: str | Path, p808_path: str | Path, hop_seconds: float = 1.0, threads: int = 1):
        self.threads = max(1, int(threads))
        self.primary = _session(primary_path)
        self.p808 = _session(p808_path)
        self.hop_seconds = float(hop_seconds)
        self._in_primary = self.primary.get_inputs()[0].name
        self._in_p808 = self.p808.get_inputs()[0].name

    def score_window(self, window: np.ndarray) -> tuple[float, float, float, float]:
        """(sig, bak, ovrl, p808) of one 9.01 s window."""
        raw = self.primary.run(None, {self._in_primary: window[None, :]})[0][0]
        sig, bak, ovrl = polyfit(float(raw[0]), float(raw[1]), float(raw[2]))
        p808 = float(self.p808.run(None, {self._in_p808: p808_features(window)[None]})[0][0][0])
        return sig, bak, ovrl, p808

    def score(self, x: np.ndarray, sr: int = SR) -> DnsmosScores:
        return self.score_many([x], sr)[0]

    def score_many(self, clips: list[np.ndarray], sr: int = SR) -> list[DnsmosScores]:
        """Scores of each clip; a clip's result never depends on the others.

        Windows of all clips are pooled; with `threads` > 1 they are scored
        concurrently on the shared single-threaded session (onnxruntime's `run` is
        thread-safe and releases the GIL). Each window is still computed alone, so
        the numbers are the same for any thread count; only the wall time changes.
        """
        cut = [clip_windows(x, sr, self.hop_seconds) for x in clips]
        flat = [w for ws, _ in cut for w in ws]
        if self.threads > 1 and len(flat) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=self.threads) as ex:
                per_window = list(ex.map(self.score_window, flat))
        else:
            per_window = [self.score_window(w) for w in flat]
        out, i = [], 0
        for x, (ws, starts) in zip(clips, cut):
            rows = per_window[i : i + len(ws)]
            m = np.array(rows, dtype=np.float64).mean(axis=0)
            i += len(ws)
            out.append(DnsmosScores(
                sig=float(m[0]), bak=float(m[1]), ovrl=float(m[2]), p808=float(m[3]), n_windows=len(ws),
                windows=tuple(rows), starts=tuple(starts), n_samples=int(np.asarray(x).size),
            ))
        return out


@register_quality_model("dnsmos")
class DnsmosModel:
    """The `dnsmos` entry of the quality registry: OVRL per window is the headline."""

    name: ClassVar[str] = "dnsmos"
    label: ClassVar[str] = "dnsmos-p835-ovrl"
    config_keys: ClassVar[frozenset[str]] = frozenset({"hop_seconds", "threads"})
    extra_columns: ClassVar[dict[str, bool]] = {"dnsmos_sig": True, "dnsmos_bak": True, "dnsmos_ovrl": True, "dnsmos_p808": True}

    def __init__(self, config: dict[str, Any], model_path: str | None = None):
        try:
            self.hop_seconds = float(config.get("hop_seconds", 1.0))
            self.threads = int(config.get("threads", 1))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"metrics.quality: bad number: {e}") from None
        if self.hop_seconds <= 0 or self.threads < 1:
            raise ConfigError("metrics.quality: hop_seconds must be > 0 and threads >= 1")
        self.model_path = model_path
        self._model: Dnsmos | None = None

    def settings(self) -> dict[str, Any]:
        return {"hop_seconds": self.hop_seconds}  # threads: not here, it never changes a number

    def models(self) -> list[ModelRef]:
        base = Path(self.model_path).expanduser() if self.model_path else None
        p835 = resolve(DNSMOS_P835, base / DNSMOS_P835.filename if base else None)
        p808 = resolve(DNSMOS_P808, base / DNSMOS_P808.filename if base else None)
        return [ModelRef(DNSMOS_P835.name, DNSMOS_P835.sha256 or "", str(p835)),
                ModelRef(DNSMOS_P808.name, DNSMOS_P808.sha256 or "", str(p808))]

    def load(self, device: str) -> None:
        p835, p808 = self.models()
        self._model = Dnsmos(p835.path, p808.path, hop_seconds=self.hop_seconds, threads=self.threads)

    def score_clips(self, clips: list[np.ndarray]) -> list[WindowScores | str]:
        if self._model is None:
            self.load("cpu")
        out: list[WindowScores | str] = []
        for s in self._model.score_many(clips, SR):  # all windows of the batch in one pool
            extra = {"dnsmos_sig": s.sig, "dnsmos_bak": s.bak, "dnsmos_ovrl": s.ovrl, "dnsmos_p808": s.p808,
                     "dnsmos_windows": s.n_windows}
            out.append(WindowScores(tuple(w[2] for w in s.windows), s.starts, WINDOW_SAMPLES, s.n_samples, extra))
        return out
