"""Resemblyzer's GE2E speaker encoder, reimplemented without its webrtcvad import path.

The network (3-layer LSTM 40 -> 256, linear 256 -> 256, ReLU, L2 norm) and the input
features (40-band *power* mel spectrogram, 25 ms Hann window, 10 ms hop, librosa's Slaney
mel filters, centred frames with zero padding) follow Resemblyzer 0.1.4. Its weights,
`resemblyzer/pretrained.pt`, are loaded with `torch.load(weights_only=True)` and a strict
key check; the two GE2E loss scalars in that file (`similarity_weight/bias`) are the only
keys ignored, since they are not part of the encoder.

Decisions where we depart from the package (documented because they move numbers a little):

- Resemblyzer trims silences with webrtcvad, whose import needs `pkg_resources`. We trim by
  energy instead (`trim_silences`): 30 ms frames are voiced when their RMS is within
  `VAD_RANGE_DB` of the loudest frames (95th percentile) and above `VAD_FLOOR_DBFS`; the
  same moving-average smoothing (8 frames) and dilation (a 7-frame box) as the package
  then keep short pauses and drop long ones.
- Volume is raised (never lowered) to -30 dBFS as in the package, on the whole utterance.
- Inside each window, the package's own partial scheme: 1.6 s partials (160 frames) at
  1.3 partials per second, the last one kept when it covers >= 75 %, their embeddings
  averaged and renormalised. All partials of all windows are equally long, so they all
  go through the LSTM together.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from halle_bench.errors import CheckpointError
from halle_bench.weights import load_state_strict, torch_load

from .spk_registry import register_speaker_model
from .spk_windows import run_grouped

SR = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
PARTIAL_RATE = 1.3  # partials per second
MIN_COVERAGE = 0.75
TARGET_DBFS = -30.0
INT16_MAX = 2**15 - 1
VAD_FRAME = 480  # 30 ms
VAD_AVG_WIDTH = 8
VAD_DILATION = 7  # box width in frames (3 each side), as the package's binary_dilation
VAD_RANGE_DB = 40.0
VAD_FLOOR_DBFS = -70.0
IGNORED_KEYS = ("similarity_weight", "similarity_bias")


def normalize_volume(wav: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Raise (never lower) the level to `target_dbfs`, as Resemblyzer does."""
    rms = np.sqrt(np.mean(np.square(wav * INT16_MAX, dtype=np.float64)))
    if rms <= 0:
        return wav
    change = target_dbfs - 20 * np.log10(rms / INT16_MAX)
    return wav if change < 0 else (wav * 10 ** (change / 20)).astype(np.float32)


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    padded = np.concatenate([np.zeros((width - 1) // 2), x, np.zeros(width // 2)])
    c = np.cumsum(padded, dtype=np.float64)
    c[width:] = c[width:] - c[:-width]
    return c[width - 1 :] / width


def voiced_mask(wav: np.ndarray) -> np.ndarray:
    """Per-sample keep mask from frame energies (see the module docstring)."""
    n = len(wav) // VAD_FRAME
    if n == 0:
        return np.ones(len(wav), dtype=bool)
    frames = wav[: n * VAD_FRAME].reshape(n, VAD_FRAME).astype(np.float64)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    voiced = (db > np.percentile(db, 95) - VAD_RANGE_DB) & (db > VAD_FLOOR_DBFS)
    keep = np.round(_moving_average(voiced.astype(np.float64), VAD_AVG_WIDTH)).astype(bool)
    # Dilate with a VAD_DILATION-frame box centred on each voiced frame.
    box = np.convolve(keep.astype(np.int32), np.ones(VAD_DILATION, dtype=np.int32), mode="same") > 0
    mask = np.repeat(box, VAD_FRAME)
    return np.concatenate([mask, np.zeros(len(wav) - len(mask), dtype=bool)])


def trim_silences(wav: np.ndarray) -> np.ndarray:
    return wav[voiced_mask(wav)]


@lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS).astype(np.float64)


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann


def mel_frames(wav: np.ndarray) -> np.ndarray:
    """(frames, 40) power mel spectrogram, equal to librosa.feature.melspectrogram(...).T."""
    x = np.pad(np.asarray(wav, dtype=np.float64), (N_FFT // 2, N_FFT // 2))
    n = 1 + (len(x) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * _hann(), axis=1)) ** 2
    return (spec @ _mel_basis().T).astype(np.float32)


def partial_slices(n_samples: int) -> list[tuple[int, int]]:
    """Resemblyzer's partial-utterance frame ranges for a waveform of `n_samples`."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((SR / PARTIAL_RATE) / HOP))
    steps = max(1, n_frames - PARTIAL_FRAMES + step + 1)
    out = [(i, i + PARTIAL_FRAMES) for i in range(0, steps, step)]
    coverage = (n_samples - out[-1][0] * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(out) > 1:
        out = out[:-1]
    return out


def window_partials(window: np.ndarray) -> np.ndarray:
    """(n_partials, 160, 40) mel partials of one window, zero-padding the tail."""
    sl = partial_slices(len(window))
    need = sl[-1][1] * HOP
    w = np.pad(window, (0, max(0, need - len(window))))
    mel = mel_frames(w)
    return np.stack([mel[a:b] for a, b in sl])


def _build_module():
    import torch
    from torch import nn

    class GE2EEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            _, (hidden, _) = self.lstm(mels)
            e = torch.relu(self.linear(hidden[-1]))
            return e / torch.norm(e, dim=1, keepdim=True).clamp_min(1e-12)

    return GE2EEncoder()


@register_speaker_model("resemblyzer")
class ResemblyzerEncoder:
    """Thin owner of the loaded GE2E network; implements `spk_registry.SpeakerEncoder`."""

    name = "resemblyzer"

    def __init__(self, module, device: str = "cpu", batch: int = 64):
        self.module = module.to(device).eval()
        self.device = device
        self.batch = batch

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", batch: int = 64) -> "ResemblyzerEncoder":
        ckpt = torch_load(path, "resemblyzer")
        state = ckpt.get("model_state", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict):
            raise CheckpointError(f"resemblyzer: {path} holds no state dict")
        module = _build_module()
        load_state_strict(module, state, "resemblyzer", path, ignore_prefixes=IGNORED_KEYS)
        return cls(module, device=device, batch=batch)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", batch: int = 64) -> "ResemblyzerEncoder":
        return cls.from_checkpoint(path, device=device, batch=batch)

    def prepare(self, audio: np.ndarray) -> np.ndarray:
        return trim_silences(normalize_volume(np.asarray(audio, dtype=np.float32)))

    def _forward(self, mels: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(mels).to(self.device)).cpu().numpy()

    def embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        partials = [window_partials(w) for w in windows]
        flat = [p for ps in partials for p in ps]
        embs = run_grouped(flat, self._forward, self.batch)
        out, k = [], 0
        for ps in partials:
            e = embs[k : k + len(ps)].mean(axis=0)
            out.append(e / max(np.linalg.norm(e), 1e-12))
            k += len(ps)
        return np.stack(out)
