"""Long-form windowing: where to cut audio longer than Whisper's 30 s context, and how
to merge the window transcripts back into one text (pure functions, no model).

Cuts (decisions):
1. Audio longer than `window_seconds` is cut into windows of at most that length.
   Each cut is placed at the quietest `frame_seconds` (100 ms) frame, on a 10 ms grid,
   within the last `search_seconds` (5 s) before the limit; among equally quiet frames
   the latest wins, so windows stay as long as they can.
2. The cut's level is that frame's RMS relative to the whole clip's RMS, in dB
   (`level_db`; -120 for digital silence). At or below `clean_cut_db` (-30 dB) the cut
   is in a pause: the next window starts exactly there (no overlap, nothing decoded
   twice). Above it the cut would fall inside speech (speech with its pauses removed,
   a fast talker): the next window starts `overlap_seconds` (5 s) *before* the cut,
   so every word near the cut is heard whole by at least one of the two windows.
3. `merge_texts` joins window texts: plain concatenation after a clean cut; after an
   overlapping one, the two texts are aligned on the words both windows heard in the
   overlap and joined in the middle of the longest run of agreeing words, so that the
   words half-heard at either window's edge are dropped, none is lost or doubled.
   When the two windows agree on fewer than `MIN_ANCHOR` consecutive words (an
   overlap over noise, a garbled one) the join falls back to time: words are assumed
   evenly spread inside each window and each side keeps those before / after the
   middle of the overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Sequence

import numpy as np

SAMPLE_RATE = 16000
FLOOR_DB = -120.0  # level reported for a digitally silent cut (JSON has no -inf)
MIN_ANCHOR = 2  # consecutive agreeing words needed to join two overlapping windows by text


@dataclass(frozen=True)
class Cut:
    at: int  # sample where the earlier window ends
    level_db: float  # the cut frame's RMS relative to the clip's RMS
    overlap: int  # samples the next window starts before `at` (0: a clean cut)


@dataclass(frozen=True)
class WindowPlan:
    bounds: list[tuple[int, int]]  # [start, end) sample ranges, in order
    cuts: list[Cut]  # len(bounds) - 1

    @property
    def cut_db(self) -> float | None:
        """Level of the loudest cut (lower = cleaner); None when the clip was not cut."""
        return max(c.level_db for c in self.cuts) if self.cuts else None


def _db(power: float, ref_power: float) -> float:
    if power <= 0 or ref_power <= 0:
        return FLOOR_DB
    return max(FLOOR_DB, 10.0 * math.log10(power / ref_power))


def plan_windows(
    audio: np.ndarray,
    sr: int = SAMPLE_RATE,
    window_seconds: float = 30.0,
    search_seconds: float = 5.0,
    frame_seconds: float = 0.1,
    overlap_seconds: float = 5.0,
    clean_cut_db: float = -30.0,
) -> WindowPlan:
    """Windows of <= window_seconds covering `audio` (see the module docstring)."""
    n, w = len(audio), int(round(window_seconds * sr))
    if n <= w:
        return WindowPlan([(0, n)], [])
    frame = max(1, int(round(frame_seconds * sr)))
    hop = max(1, sr // 100)
    search = min(int(round(search_seconds * sr)), w - frame)
    overlap = max(0, int(round(overlap_seconds * sr)))
    if overlap >= w - search:
        raise ValueError(f"overlap_seconds ({overlap_seconds}) must be shorter than window_seconds - search_seconds")
    sq = np.concatenate([[0.0], np.cumsum(np.square(audio, dtype=np.float64))])
    clip_power = float(sq[-1]) / n
    bounds: list[tuple[int, int]] = []
    cuts: list[Cut] = []
    start = 0
    while n - start > w:
        lo = start + w - search
        starts = np.arange(lo, start + w - frame + 1, hop)
        energy = sq[starts + frame] - sq[starts]
        # round away float noise so equal energies compare equal, then take the latest minimum
        energy = np.round(energy, 9)
        k = len(energy) - 1 - int(np.argmin(energy[::-1]))
        cut = int(starts[k] + frame // 2)
        level = _db(float(energy[k]) / frame, clip_power)
        ov = 0 if level <= clean_cut_db else overlap
        bounds.append((start, cut))
        cuts.append(Cut(cut, round(level, 2), ov))
        start = cut - ov
    bounds.append((start, n))
    return WindowPlan(bounds, cuts)


def window_bounds(audio: np.ndarray, sr: int = SAMPLE_RATE, window_seconds: float = 30.0,
                  search_seconds: float = 5.0, frame_seconds: float = 0.1) -> list[tuple[int, int]]:
    """Contiguous, non-overlapping windows (the cut rule of `plan_windows` without overlap)."""
    return plan_windows(audio, sr, window_seconds, search_seconds, frame_seconds, overlap_seconds=0.0).bounds


# -- merging ---------------------------------------------------------------------------------
def _key(word: str) -> str:
    """A word as compared across windows: case and punctuation do not matter."""
    return "".join(c for c in word.lower() if c.isalnum())


def split_overlap(left: Sequence[str], right: Sequence[str], overlap_s: float, left_s: float, right_s: float) -> tuple[int, int, bool]:
    """Where to join the words of two windows that share `overlap_s` seconds (the end
    of the left window, `left_s` long, and the start of the right one, `right_s` long).

    Returns (p, q, anchored): keep left[:p] and right[q:]; anchored is False when the
    text alignment found no anchor and the time fallback was used.
    """
    if not left or not right or overlap_s <= 0:
        return len(left), 0, True
    # how many words each side can have in the overlap: its speaking rate x overlap, with margin
    k_l = min(len(left), math.ceil(len(left) / max(left_s, 1e-6) * overlap_s * 1.5) + 2)
    k_r = min(len(right), math.ceil(len(right) / max(right_s, 1e-6) * overlap_s * 1.5) + 2)
    tail, head = list(left[-k_l:]), list(right[:k_r])
    m = SequenceMatcher(None, [_key(x) for x in tail], [_key(x) for x in head], autojunk=False)
    a, b, size = m.find_longest_match(0, len(tail), 0, len(head))
    if size >= MIN_ANCHOR:
        mid = size // 2
        return len(left) - k_l + a + mid, b + mid, True
    # time fallback: words evenly spread over each window; split at the overlap's middle
    p = sum((i + 0.5) / len(left) * left_s < left_s - overlap_s / 2 for i in range(len(left)))
    q = sum((i + 0.5) / len(right) * right_s < overlap_s / 2 for i in range(len(right)))
    return p, q, False


def merge_texts(texts: Sequence[str], bounds: Sequence[tuple[int, int]], sr: int = SAMPLE_RATE) -> tuple[str, int]:
    """One transcript from window texts in order (bounds as from `plan_windows`).

    Each join looks at the two windows' full word lists; a window keeps the words
    between its joins. Returns (text, joins that fell back to time).
    """
    words = [t.split() for t in texts]
    lo = [0] * len(words)
    hi = [len(w) for w in words]
    fallbacks = 0
    for j in range(1, len(words)):
        (s0, e0), (s1, e1) = bounds[j - 1], bounds[j]
        overlap = e0 - s1
        if overlap <= 0:
            continue
        p, q, ok = split_overlap(words[j - 1], words[j], overlap / sr, (e0 - s0) / sr, (e1 - s1) / sr)
        fallbacks += not ok
        hi[j - 1] = max(lo[j - 1], min(hi[j - 1], p))
        lo[j] = q
    return " ".join(w for ws, a, b in zip(words, lo, hi) for w in ws[a:b]), fallbacks
