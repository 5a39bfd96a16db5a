"""DNSMOS P.835 (SIG/BAK/OVRL) and P.808, run directly on the speechmos ONNX files.

The maths follows Microsoft's reference `dnsmos_local.py` (which `speechmos.dnsmos`
copies): the clip is cut into 9.01 s windows (`WINDOW_SAMPLES` = 144160 samples at
16 kHz) every `hop` seconds (1 s in the reference); each window goes through the
P.835 network (raw waveform in, three raw scores out, then a fixed cubic/quadratic
polynomial per dimension) and through the P.808 network (a 120-band log-mel of
the window minus its last 160 samples, 900 frames); the clip's scores are the
means over its windows.

Decisions where we differ from, or pin down, the reference:

* **Short clips** are padded as the reference does: the clip is doubled
  (`np.append(x, x)`) until it is at least one window long; windows are then cut
  from the doubled signal, which may hold more than one window.
* **Window count**: windows lie within the clip's whole seconds,
  `n = max(1, floor((floor(len/sr)*sr - win) / hop) + 1)`; for hop = 1 s this is
  the reference's `int(floor(len/sr) - 9.01) + 1`.
* **Window starts** are integers (`k * hop_samples`). The reference computes the
  end as `int((k + 9.01) * sr)` in floating point, which for k = 7..23, 119..121,
  ... rounds down to a 144159-sample window that it then *skips*. We score every
  window, so clips longer than 16 s (k >= 7) differ from `speechmos.dnsmos.run`
  slightly; clips up to 16 s agree (parity test).
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

import numpy as np

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
    sig: float
    bak: float
    ovrl: float
    p808: float
    n_windows: int


def pad_like_reference(x: np.ndarray, win: int = WINDOW_SAMPLES) -> np.ndarray:
    """Double the clip until it holds at least one window (the reference's padding)."""
    if x.size == 0:
        raise ValueError("empty audio")
    while x.size < win:
        x = np.append(x, x)
    return x


def window_starts(n_samples: int, sr: int = SR, hop_seconds: float = 1.0, win: int = WINDOW_SAMPLES) -> list[int]:
    """Integer start samples of the windows of an (already padded) clip."""
    hop = int(round(hop_seconds * sr))
    if hop <= 0:
        raise ValueError("hop_seconds must be positive")
    whole = (n_samples // sr) * sr  # windows stay within the clip's whole seconds
    n = max(1, (whole - win) // hop + 1) if whole >= win else 1
    return [k * hop for k in range(n)]


def clip_windows(x: np.ndarray, sr: int = SR, hop_seconds: float = 1.0) -> np.ndarray:
    """(n_windows, WINDOW_SAMPLES) float32 windows of a clip, reference padding applied."""
    if sr != SR:
        raise ValueError(f"DNSMOS needs {SR} Hz audio, got {sr}")
    x = np.clip(np.asarray(x, dtype=np.float32).reshape(-1), -1.0, 1.0)
    x = pad_like_reference(x)
    starts = window_starts(x.size, sr, hop_seconds)
    return np.stack([x[s : s + WINDOW_SAMPLES] for s in starts])


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
        wins = [clip_windows(x, sr, self.hop_seconds) for x in clips]
        flat = [w for ws in wins for w in ws]
        if self.threads > 1 and len(flat) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=self.threads) as ex:
                per_window = list(ex.map(self.score_window, flat))
        else:
            per_window = [self.score_window(w) for w in flat]
        out, i = [], 0
        for ws in wins:
            m = np.array(per_window[i : i + len(ws)], dtype=np.float64).mean(axis=0)
            i += len(ws)
            out.append(DnsmosScores(sig=float(m[0]), bak=float(m[1]), ovrl=float(m[2]), p808=float(m[3]), n_windows=len(ws)))
        return out
