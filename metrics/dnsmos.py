"""DNSMOS P.835 (SIG/BAK/OVRL) and P.808, run directly on the speechmos ONNX files.

The maths follows Microsoft's reference `dnsmos_local.py` (which `speechmos.dnsmos`
copies): the clip is cut into 9.01 s windows (`WINDOW_SAMPLES` = 144160 samples at
16 kHz) every `hop` seconds (1 s in the reference, the window itself by default here;
`[metrics] quality` `hop_seconds`); each window goes through the P.835 network (raw waveform in, three raw scores out, then a fixed cubic/quadratic
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
* **Default hop = the window (9.01 s)**: non-overlapping windows plus the one ending
  at the clip's end, so every sample is heard about once. The reference's 1 s hop scores
  each second ~9 times over: 9x the work (measured on the demo's audio: see
  docs/protocols.md) for a smoothed mean of the same quantity; `hop_seconds = 1.0`
  gives the reference's windows back.
* **Determinism and batch invariance**: every window's numbers are the same whichever
  windows or clips share its batch and whatever the thread count: the sessions run
  single-threaded per call (intra/inter-op threads = 1, sequential execution), the
  input shape per window is fixed, and onnxruntime's CPU kernels treat each batch row
  on its own (tested: a window alone and inside a batch of 16 give identical bits).
* **Speed** (why these defaults; measured on 2 CPU cores, onnxruntime 1.32): P.835 costs
  ~240 ms per window, the P.808 log-mel ~26 ms and P.808 ~8 ms. Both models accept a
  batch dimension (`input_1: [N, 144160]` and `[N, 900, 120]`), but on CPU a batch is no
  faster per window (P.835: 238 ms at batch 1, 244 at 4, 256 at 16; P.808: 8 -> 35-48
  ms), so on CPU windows go through the session one per `run` call (`window_batch`
  "auto" = 1) and `threads` calls run concurrently on the shared session (onnxruntime
  releases the GIL; "auto" = the usable cores: about 1.9x on 2 idle cores). On CUDA
  (onnxruntime's CUDA provider, when installed) windows of all clips of a `score` call
  go in batches of 32. Sessions are created once per process and kept
  (`onnx_session`): a worker that scores many chunks loads the models once.
* **Progress**: `score_many(..., progress=cb)` calls `cb(windows_done, windows_total)`
  as windows finish, so a long clip's progress moves while it is scored.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from halle_bench.errors import ConfigError
from halle_bench.models import resolve

from .base import ModelRef
from .quality_registry import DNSMOS_P808, DNSMOS_P835, register_quality_model
from .quality_windows import WindowScores, cover_starts

SR = 16000
WINDOW_SECONDS = 9.01
WINDOW_SAMPLES = int(round(WINDOW_SECONDS * SR))  # 144160
DEFAULT_HOP_SECONDS = WINDOW_SECONDS  # non-overlapping windows (+ the one ending at the clip's end)
P808_FRAMES = 900
CUDA_WINDOW_BATCH = 32  # windows per run call on CUDA (CPU: 1, see the module docstring)

# Non-personalised P.835 polynomials (highest power first), from the reference.
POLY_SIG = (-0.08397278, 1.22083953, 0.0052439)
POLY_BAK = (-0.13166888, 1.60915514, -0.39604546)
POLY_OVRL = (-0.06766283, 1.11546468, 0.04602535)

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (windows done, windows in all)


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


def window_starts(n_samples: int, sr: int = SR, hop_seconds: float = DEFAULT_HOP_SECONDS,
                  win: int = WINDOW_SAMPLES) -> list[int]:
    """Integer start samples of the windows of a clip (see the module docstring)."""
    hop = int(round(hop_seconds * sr))
    if hop <= 0:
        raise ValueError("hop_seconds must be positive")
    return cover_starts(n_samples, win, hop)


def prepare_clip(x: np.ndarray, sr: int = SR, hop_seconds: float = DEFAULT_HOP_SECONDS) -> tuple[np.ndarray, list[int]]:
    """(the clip clipped to [-1, 1] and padded as the reference does, its window starts)."""
    if sr != SR:
        raise ValueError(f"DNSMOS needs {SR} Hz audio, got {sr}")
    x = np.clip(np.asarray(x, dtype=np.float32).reshape(-1), -1.0, 1.0)
    starts = window_starts(x.size, sr, hop_seconds)
    return pad_like_reference(x), starts


def clip_windows(x: np.ndarray, sr: int = SR, hop_seconds: float = DEFAULT_HOP_SECONDS) -> tuple[np.ndarray, list[int]]:
    """(n_windows, WINDOW_SAMPLES) float32 windows of a clip and their start samples;
    a clip not longer than one window is padded as the reference does, scored once."""
    x, starts = prepare_clip(x, sr, hop_seconds)
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


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by OMP_NUM_THREADS when set
    (Ray and Slurm set it to a worker's share)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(n, int(omp))) if omp.isdigit() and int(omp) > 0 else max(1, n)


def onnx_providers(device: str) -> tuple[list, str]:
    """(onnxruntime providers for `device`, a note when CUDA was asked for but is absent)."""
    import onnxruntime as ort

    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"], ""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return ["CPUExecutionProvider"], (
            f"DNSMOS runs on CPU: device {device!r} asked for, but this onnxruntime has no CUDA provider "
            "(pip install onnxruntime-gpu in place of onnxruntime)")
    _, _, idx = device.partition(":")
    return [("CUDAExecutionProvider", {"device_id": int(idx or 0)}), "CPUExecutionProvider"], ""


_SESSIONS: dict[tuple[str, str], Any] = {}
_SESSIONS_LOCK = threading.Lock()


def onnx_session(path: str | Path, device: str = "cpu"):
    """The process's one onnxruntime session for a model file on a device, created on
    first use and kept: a worker scoring many chunks pays the load once."""
    key = (str(Path(path).resolve()), device)
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            import onnxruntime as ort

            providers, note = onnx_providers(device)
            if note:
                log.warning(note)
            opts = ort.SessionOptions()
            # One thread per call, sequential: results must not depend on the machine's
            # core count; concurrency comes from concurrent calls (Dnsmos.threads).
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.log_severity_level = 3
            _SESSIONS[key] = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        return _SESSIONS[key]


class Dnsmos:
    """Owns (references to) the two ONNX sessions; scores many clips, windows batched."""

    def __init__(self, primary_path: str | Path, p808_path: str | Path, hop_seconds: float = DEFAULT_HOP_SECONDS,
                 threads: int | None = 1, device: str = "cpu", window_batch: int | None = None):
        self.device = device
        self.primary = onnx_session(primary_path, device)
        self.p808 = onnx_session(p808_path, device)
        self.provider = self.primary.get_providers()[0]
        on_gpu = self.provider != "CPUExecutionProvider"
        self.threads = max(1, int(threads)) if threads else usable_cores()
        self.window_batch = max(1, int(window_batch)) if window_batch else (CUDA_WINDOW_BATCH if on_gpu else 1)
        self.hop_seconds = float(hop_seconds)
        self._in_primary = self.primary.get_inputs()[0].name
        self._in_p808 = self.p808.get_inputs()[0].name

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        """(n, 4) float64 (sig, bak, ovrl, p808) of (n, 144160) windows, one run call per model."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        raw = self.primary.run(None, {self._in_primary: windows})[0]
        feats = np.stack([p808_features(w) for w in windows])
        p808 = self.p808.run(None, {self._in_p808: feats})[0][:, 0]
        out = np.empty((len(windows), 4), dtype=np.float64)
        for i, r in enumerate(raw):
            out[i, :3] = polyfit(float(r[0]), float(r[1]), float(r[2]))
            out[i, 3] = float(p808[i])
        return out

    def score_window(self, window: np.ndarray) -> tuple[float, float, float, float]:
        """(sig, bak, ovrl, p808) of one 9.01 s window."""
        return tuple(float(v) for v in self.score_windows(window[None, :])[0])  # type: ignore[return-value]

    def score(self, x: np.ndarray, sr: int = SR) -> DnsmosScores:
        return self.score_many([x], sr)[0]

    def score_many(self, clips: list[np.ndarray], sr: int = SR, progress: Progress | None = None) -> list[DnsmosScores]:
        """Scores of each clip; a clip's result never depends on the others.

        The windows of all clips are pooled and cut into batches of `window_batch`;
        with `threads` > 1 batches run concurrently on the shared sessions. Windows are
        sliced from the padded clips only when their batch runs (a batch of long clips
        at a 1 s hop would otherwise hold every window in memory at once).
        """
        prepared = [prepare_clip(x, sr, self.hop_seconds) for x in clips]
        flat = [(c, s) for c, (_, starts) in enumerate(prepared) for s in starts]
        bs = self.window_batch
        batches = [flat[i : i + bs] for i in range(0, len(flat), bs)]

        def run(batch: list[tuple[int, int]]) -> np.ndarray:
            return self.score_windows(np.stack([prepared[c][0][s : s + WINDOW_SAMPLES] for c, s in batch]))

        results: list[np.ndarray] = []
        done = 0
        if self.threads > 1 and len(batches) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=self.threads) as ex:
                for batch, r in zip(batches, ex.map(run, batches)):  # in order; progress as they finish
                    results.append(r)
                    done += len(batch)
                    if progress:
                        progress(done, len(flat))
        else:
            for batch in batches:
                results.append(run(batch))
                done += len(batch)
                if progress:
                    progress(done, len(flat))
        per_window = np.concatenate(results) if results else np.zeros((0, 4))
        out, i = [], 0
        for x, (_, starts) in zip(clips, prepared):
            rows = per_window[i : i + len(starts)]
            m = rows.mean(axis=0)
            i += len(starts)
            out.append(DnsmosScores(
                sig=float(m[0]), bak=float(m[1]), ovrl=float(m[2]), p808=float(m[3]), n_windows=len(starts),
                windows=tuple(tuple(float(v) for v in r) for r in rows), starts=tuple(starts),
                n_samples=int(np.asarray(x).size),
            ))
        return out


def _auto_int(config: dict[str, Any], key: str) -> int | None:
    """A positive int, or None for "auto" / absent."""
    v = config.get(key, "auto")
    if v == "auto" or v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"metrics.quality: {key} must be a positive integer or \"auto\", got {v!r}")
    return v


@register_quality_model("dnsmos")
class DnsmosModel:
    """The `dnsmos` entry of the quality registry: OVRL per window is the headline."""

    name: ClassVar[str] = "dnsmos"
    label: ClassVar[str] = "dnsmos-p835-ovrl"
    config_keys: ClassVar[frozenset[str]] = frozenset({"hop_seconds", "threads", "window_batch"})
    extra_columns: ClassVar[dict[str, bool]] = {"dnsmos_sig": True, "dnsmos_bak": True, "dnsmos_ovrl": True, "dnsmos_p808": True}
    window_progress: ClassVar[bool] = True  # score_clips takes `progress`

    def __init__(self, config: dict[str, Any], model_path: str | None = None):
        try:
            self.hop_seconds = float(config.get("hop_seconds", DEFAULT_HOP_SECONDS))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"metrics.quality: bad number: {e}") from None
        if self.hop_seconds <= 0:
            raise ConfigError("metrics.quality: hop_seconds must be > 0")
        self.threads = _auto_int(config, "threads")
        self.window_batch = _auto_int(config, "window_batch")
        self.model_path = model_path
        self._model: Dnsmos | None = None

    def settings(self) -> dict[str, Any]:
        # threads, window_batch, device: not here, they never change a number
        return {"hop_seconds": self.hop_seconds}

    def models(self) -> list[ModelRef]:
        base = Path(self.model_path).expanduser() if self.model_path else None
        p835 = resolve(DNSMOS_P835, base / DNSMOS_P835.filename if base else None)
        p808 = resolve(DNSMOS_P808, base / DNSMOS_P808.filename if base else None)
        return [ModelRef(DNSMOS_P835.name, DNSMOS_P835.sha256 or "", str(p835)),
                ModelRef(DNSMOS_P808.name, DNSMOS_P808.sha256 or "", str(p808))]

    def load(self, device: str) -> None:
        p835, p808 = self.models()
        self._model = Dnsmos(p835.path, p808.path, hop_seconds=self.hop_seconds, threads=self.threads,
                             device=device, window_batch=self.window_batch)

    def score_clips(self, clips: list[np.ndarray], progress: Progress | None = None) -> list[WindowScores | str]:
        if self._model is None:
            self.load("cpu")
        out: list[WindowScores | str] = []
        for s in self._model.score_many(clips, SR, progress):  # all windows of the batch in one pool
            extra = {"dnsmos_sig": s.sig, "dnsmos_bak": s.bak, "dnsmos_ovrl": s.ovrl, "dnsmos_p808": s.p808,
                     "dnsmos_windows": s.n_windows}
            out.append(WindowScores(tuple(w[2] for w in s.windows), s.starts, WINDOW_SAMPLES, s.n_samples, extra))
        return out
