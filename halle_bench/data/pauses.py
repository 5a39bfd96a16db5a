"""Pauses in speech from frame energy (pure numpy): where a long recording may be cut.

Used where a recording is cut without a transcript of the cut: the voice prompt, which
should end between words rather than in one. `speech_regions` is a small energy VAD
(LibriLight ships its own VAD timestamps; LibriSpeech, LibriTTS and LibriSpeech-Long do
not). Segments of a long-form set are never cut inside an utterance: see `longform.py`.

Energy VAD, decided here: 20 ms frames; a frame is speech when its level is within
`RANGE_DB` of the loud frames (95th percentile) and above `FLOOR_DB` dBFS; speech runs
closer than `MIN_PAUSE_S` are merged (a stop consonant is not a pause), runs shorter
than `MIN_SPEECH_S` are dropped (a click is not speech).
"""

from __future__ import annotations

import numpy as np

FRAME_S = 0.02
RANGE_DB = 40.0
FLOOR_DB = -60.0
MIN_PAUSE_S = 0.15
MIN_SPEECH_S = 0.06


def frame_db(x: np.ndarray, sr: int, frame_s: float = FRAME_S) -> np.ndarray:
    """Level of each whole frame in dBFS (a trailing partial frame is left out)."""
    n = max(1, int(round(frame_s * sr)))
    k = len(x) // n
    if k == 0:
        return np.zeros(0)
    f = np.asarray(x[: k * n], dtype=np.float64).reshape(k, n)
    return 10.0 * np.log10(np.mean(f * f, axis=1) + 1e-12)


def speech_regions(x: np.ndarray, sr: int) -> list[tuple[float, float]]:
    """[start, end) seconds of speech, in order (see the module docstring)."""
    db = frame_db(x, sr)
    if db.size == 0:
        return []
    voiced = (db > np.percentile(db, 95) - RANGE_DB) & (db > FLOOR_DB)
    runs: list[list[int]] = []
    for i in np.flatnonzero(voiced):
        if runs and (i - runs[-1][1]) * FRAME_S < MIN_PAUSE_S:
            runs[-1][1] = i + 1
        else:
            runs.append([int(i), int(i) + 1])
    return [(a * FRAME_S, b * FRAME_S) for a, b in runs if (b - a) * FRAME_S >= MIN_SPEECH_S]


def pauses(regions: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The gaps between consecutive speech regions, [start, end) seconds."""
    return [(a[1], b[0]) for a, b in zip(regions, regions[1:]) if b[0] > a[1]]


def cut_at_pause(x: np.ndarray, sr: int, seconds: float, slack_s: float = 1.0, min_s: float = 0.0) -> int:
    """Sample index to end a voice prompt of about `seconds` between words: the middle of
    the first pause whose middle lies in [seconds, seconds + slack_s]; failing that, of
    the last pause in [max(seconds - slack_s, min_s), seconds) (a little short beats
    ending inside a word); failing both, `seconds` exactly. Never past the end of `x`."""
    mids = [(a + b) / 2 for a, b in pauses(speech_regions(x, sr))]
    after = [m for m in mids if seconds <= m <= seconds + slack_s]
    before = [m for m in mids if max(seconds - slack_s, min_s) <= m < seconds]
    end = after[0] if after else before[-1] if before else seconds
    return min(len(x), int(round(end * sr)))


__all__ = ["cut_at_pause", "frame_db", "pauses", "speech_regions"]
