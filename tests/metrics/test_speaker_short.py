"""The `sim` scorer on inputs too short for an encoder: an item's error, never a crash."""

from __future__ import annotations

import numpy as np
import pytest

from halle_bench.metrics.base import ScoreItem, build_scorer
from halle_bench.metrics.speaker import embed_windowed

SR = 16000
TEXT = "The quick brown fox jumps over the lazy dog near the river bank."


class _Picky:
    """An encoder whose preprocessing raises on inputs under 0.5 s (as resemblyzer's VAD
    did on 0.1 s) and whose embedding raises on windows under 0.3 s."""

    name = "picky"

    def prepare(self, audio: np.ndarray) -> np.ndarray:
        if audio.size < 0.5 * SR:
            raise ValueError("negative dimensions are not allowed")
        return audio

    def embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        if any(w.size < 0.3 * SR for w in windows):
            raise ValueError("window too short")
        return np.stack([[float(w.size), 1.0, float(np.abs(w).mean())] for w in windows])


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def test_preprocessing_error_is_that_inputs_error():
    out = embed_windowed(_Picky(), [_noise(2.0), _noise(0.1, 1), _noise(3.0, 2)])
    assert not isinstance(out[0], str) and not isinstance(out[2], str)
    assert isinstance(out[1], str) and "preprocessing failed on 0.10 s" in out[1] and "negative dimensions" in out[1]


def test_batched_embedding_error_falls_back_to_each_input():
    class _Trims(_Picky):
        def prepare(self, audio):  # keeps 0.2 s of the second input: embedding then raises
            return audio[: int(0.2 * SR)] if audio.size == int(0.6 * SR) else audio

    out = embed_windowed(_Trims(), [_noise(2.0), _noise(0.6, 1)])
    assert not isinstance(out[0], str)
    assert isinstance(out[1], str) and "could not embed" in out[1] and "window too short" in out[1]


@pytest.mark.parametrize("seconds", [0.1, 0.2])
def test_resemblyzer_short_prompt_is_an_item_error(speech, seconds):
    """0.1 s prompt: `ValueError: negative dimensions are not allowed` crashed the batch before."""
    sc = build_scorer("sim", {"model": "resemblyzer", "window_seconds": 4.0})
    sc.load("cpu")
    x = speech(TEXT)
    items = [
        ScoreItem(system="s", utt_id="short", audio=x, prompt=x[4000 : 4000 + int(seconds * SR)]),
        ScoreItem(system="s", utt_id="ok", audio=x, prompt=x[: 2 * SR]),
    ]
    short, ok = sc.score(items)
    assert short.error is not None and short.error.startswith("prompt audio:")
    assert ok.error is None and 0.5 < ok.values["sim"] <= 1.0
