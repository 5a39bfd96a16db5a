"""Shared fixtures: espeak-ng speech generated on the fly (no committed audio)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from halle_bench.audio import save_audio
from halle_bench.espeak import espeak, espeak_available


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Each test session gets its own HALLE_BENCH_HOME, unless the user set one
    explicitly for the tests (HALLE_BENCH_TEST_HOME) to reuse converted models."""
    home = os.environ.get("HALLE_BENCH_TEST_HOME") or str(tmp_path_factory.getbasetemp() / "home")
    monkeypatch.setenv("HALLE_BENCH_HOME", home)


requires_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")


@pytest.fixture(scope="session")
def speech():
    """Callable: speech(text, voice='en-us', speed=160) -> float32 array at 16 kHz (cached)."""
    if not espeak_available():
        pytest.skip("espeak-ng not installed")
    cache: dict = {}

    def make(text: str, voice: str = "en-us", speed: int = 160, sr: int = 16000) -> np.ndarray:
        key = (text, voice, speed, sr)
        if key not in cache:
            cache[key] = espeak(text, voice=voice, speed=speed, sr=sr)
        return cache[key]

    return make


@pytest.fixture
def speech_wav(speech, tmp_path):
    """Callable: speech_wav(name, text, voice=..., sr=16000) -> Path of a wav in tmp_path."""

    def make(name: str, text: str, voice: str = "en-us", speed: int = 160, sr: int = 16000) -> Path:
        p = tmp_path / f"{name}.wav"
        save_audio(p, speech(text, voice=voice, speed=speed, sr=sr), sr)
        return p

    return make
