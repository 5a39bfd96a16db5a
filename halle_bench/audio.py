"""Audio I/O and the constants every stage agrees on.

All scorers receive mono float32 audio at `SCORING_SR` (16 kHz): Whisper, the
speaker encoders, DNSMOS, UTMOS and wide-band PESQ all work at 16 kHz, so the
runner resamples once per file instead of each scorer doing it again.
Reading uses soundfile (torchaudio.load is unavailable on CPU-only installs here).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from .errors import UtteranceError

SCORING_SR = 16000
SILENCE_RMS = 1e-4  # below this RMS (about -80 dBFS) a waveform counts as silence


@dataclass(frozen=True)
class AudioInfo:
    """What reading a file changed, so rows can record it (`notes`)."""

    orig_sr: int
    orig_channels: int
    seconds: float

    @property
    def notes(self) -> str:
        parts = []
        if self.orig_channels > 1:
            parts.append(f"mixed {self.orig_channels} channels to mono")
        return "; ".join(parts)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited polyphase resampling (scipy), deterministic."""
    if sr_in == sr_out or x.size == 0:
        return x.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(int(sr_in), int(sr_out))
    y = resample_poly(x.astype(np.float64), sr_out // g, sr_in // g)
    return y.astype(np.float32)


def load_audio(path: str | Path, sr: int | None = SCORING_SR) -> tuple[np.ndarray, int, AudioInfo]:
    """Read a file as mono float32, resampled to `sr` (None keeps the file's rate).

    Raises UtteranceError with the path and the reason for a missing, unreadable,
    corrupt or empty file.
    """
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise UtteranceError(f"audio file not found: {p}")
    try:
        data, file_sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError
        raise UtteranceError(f"cannot read audio {p}: {e}") from None
    if data.shape[0] == 0:
        raise UtteranceError(f"audio file has no samples: {p}")
    channels = data.shape[1]
    x = data.mean(axis=1) if channels > 1 else data[:, 0]
    if not np.all(np.isfinite(x)):
        raise UtteranceError(f"audio contains NaN/inf samples: {p}")
    info = AudioInfo(orig_sr=int(file_sr), orig_channels=int(channels), seconds=len(x) / file_sr)
    out_sr = int(file_sr) if sr is None else int(sr)
    return resample(x, int(file_sr), out_sr), out_sr, info


def save_audio(path: str | Path, x: np.ndarray, sr: int) -> str:
    """Write mono float audio as a wav, atomically, without altering it silently.

    Audio inside full scale is written as 16-bit PCM. Audio with samples at or beyond
    full scale (|x| >= 1, see `clip_fraction`) is written as 32-bit float WAV instead,
    unchanged: clipping it to 16 bits would hide exactly the defect (a system that
    overdrives) the caller should record. Returns the subtype written ("PCM_16" or
    "FLOAT"). The temporary file has a unique name, so several processes writing the
    same file (shards cutting the same prompt) never expose a half-written one."""
    import os
    import tempfile

    import soundfile as sf

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    y = np.asarray(x, dtype=np.float32).reshape(-1)
    subtype = "FLOAT" if y.size and float(np.max(np.abs(y))) >= 1.0 else "PCM_16"
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        sf.write(tmp, y, int(sr), subtype=subtype, format="WAV")
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return subtype


def clip_fraction(x: np.ndarray) -> float:
    """Share of samples at or beyond full scale (|x| >= 1.0): a 16-bit file cannot hold
    them, a DAC clips them. Computed on the system's output before anything is written."""
    y = np.asarray(x).reshape(-1)
    return float(np.count_nonzero(np.abs(y) >= 1.0) / y.size) if y.size else 0.0


def audio_seconds(path: str | Path) -> float:
    """Duration from the header, without decoding the samples."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as e:
        raise UtteranceError(f"cannot read audio {path}: {e}") from None
    return info.frames / float(info.samplerate)


def conversion_note(path: str | Path | None, what: str = "audio") -> str:
    """What reading this file for scoring changes (from the header only): channels mixed
    down, sample rate converted. "" when nothing changes or the file cannot be read
    (unreadable files are reported as errors elsewhere)."""
    if path is None:
        return ""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:
        return ""
    parts = []
    if info.channels > 1:
        parts.append(f"{info.channels} channels mixed to mono")
    if info.samplerate != SCORING_SR:
        parts.append(f"resampled {info.samplerate} -> {SCORING_SR} Hz for scoring")
    return f"{what}: " + ", ".join(parts) if parts else ""


def is_silent(x: np.ndarray, threshold: float = SILENCE_RMS) -> bool:
    return x.size == 0 or float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) < threshold


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def sha256_array(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes()).hexdigest()
