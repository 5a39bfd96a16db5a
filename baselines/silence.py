"""Leading / trailing silence: find it, trim it to a couple of codec frames, and join
sentences with pauses of varied length.

Why (issue 16): espeak-ng clips end with about 17 frames of one silence code and its
sentence pauses are 14-16 frames of the same code. A codec LM trained on that cannot tell
the end of speech from a pause, and a voice prompt that keeps its trailing silence invites
the model to stop right after it (the first pair's VALL-E ended 2-38 frames after the
prompt's silence; its duration ratio fell to 0.21 at 60-90 s). So the training corpus keeps
`keep` seconds (default 40 ms, about 2 frames at 48 Hz) of silence at each end, pauses
between its sentences are drawn from a range, and the model systems trim their prompts the
same way before encoding them.

Silence is relative: a 10 ms frame is silent when its RMS is more than `db` below the
loudest frame's (default 40 dB), so the same function works on quiet and loud recordings.
"""

from __future__ import annotations

import random

import numpy as np


def speech_bounds(x: np.ndarray, sr: int, db: float = 40.0, frame_s: float = 0.01) -> tuple[int, int]:
    """(start, end) sample indices of the span from the first to the last non-silent
    10 ms frame; (0, 0) when the whole signal is silent."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    hop = max(1, int(round(sr * frame_s)))
    n = len(x) // hop
    if n == 0:
        return (0, 0) if not np.any(np.abs(x) > 0) else (0, len(x))
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-20)
    peak = float(rms.max())
    if peak <= 1e-8:
        return (0, 0)
    loud = np.nonzero(rms >= peak * 10 ** (-db / 20))[0]
    start = int(loud[0]) * hop
    end = min(len(x), (int(loud[-1]) + 1) * hop)
    return start, end


def trim_silence(x: np.ndarray, sr: int, keep: float = 0.04, db: float = 40.0) -> np.ndarray:
    """`x` with leading and trailing silence cut to `keep` seconds (never lengthened;
    an all-silent signal comes back unchanged: the caller decides what that means)."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    start, end = speech_bounds(x, sr, db)
    if end <= start:
        return x
    k = int(round(keep * sr))
    return x[max(0, start - k): min(len(x), end + k)]


def join_with_pauses(parts: list[np.ndarray], sr: int, rng: random.Random,
                     pause: tuple[float, float] = (0.15, 0.7), keep: float = 0.04) -> np.ndarray:
    """Trim each part and join them with silences drawn uniformly from `pause` seconds
    (seeded by `rng`), so that a pause's length says nothing about where the text ends."""
    out: list[np.ndarray] = []
    for i, p in enumerate(parts):
        if i:
            out.append(np.zeros(int(round(rng.uniform(*pause) * sr)), dtype=np.float32))
        out.append(trim_silence(p, sr, keep))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def trim_prompt(wav: np.ndarray, sr: int) -> np.ndarray:
    """A voice prompt as the codec LMs take it: float32, leading and trailing silence cut to
    40 ms like every training clip (a prompt that ends in half a second of silence asks the
    model to end right there)."""
    return trim_silence(np.asarray(wav, dtype=np.float32).reshape(-1), sr)


__all__ = ["speech_bounds", "trim_silence", "join_with_pauses", "trim_prompt"]
