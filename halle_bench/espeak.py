"""espeak-ng as a speech source: the demo's voices and the tests' audio.

Runs the `espeak-ng` program with an argument list (no shell), writes a wav,
reads it back as float32. espeak-ng is deterministic for a given text/voice/rate.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .audio import load_audio
from .errors import HalleBenchError

ESPEAK_SR = 22050


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak_to_file(text: str, path: str | Path, voice: str = "en-us", speed: int = 160, pitch: int = 50) -> Path:
    """Speak `text` into a wav at `path` (espeak-ng's own rate, 22.05 kHz)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise HalleBenchError("espeak-ng is not installed (apt-get install espeak-ng)")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    # "--" ends options, so a text starting with "-" is not parsed as a flag.
    cmd = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(p), "--", text]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or not p.exists():
        raise HalleBenchError(f"espeak-ng failed ({proc.returncode}): {proc.stderr.strip()}")
    return p


def espeak(text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50, sr: int | None = 16000) -> np.ndarray:
    """Speak `text` and return mono float32 audio at `sr` (None: espeak's 22.05 kHz)."""
    with tempfile.TemporaryDirectory() as d:
        path = espeak_to_file(text, Path(d) / "x.wav", voice=voice, speed=speed, pitch=pitch)
        x, _, _ = load_audio(path, sr=sr)
    return x
