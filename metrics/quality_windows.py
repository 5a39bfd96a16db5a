"""Windows that cover a whole clip, and their summary (pure functions, numpy only).

Shared by every quality model (DNSMOS, UTMOS). Decisions, recorded because they move
numbers:

- `cover_starts`: windows of `win` samples every `hop` samples from sample 0 while they
  fit, then, if the clip's end is not reached, one more window that *ends exactly at
  the clip's end* (it overlaps the one before). Before this, DNSMOS windows stayed
  within the clip's whole seconds with a 1 s hop, so up to `win` - 1 s of a clip's tail
  was never scored; with non-overlapping windows, 8.9 s of a 17.9 s clip.
- A clip not longer than one window is scored once (the model pads it as its
  reference does; DNSMOS doubles the clip).
- Summary: `quality` = mean of the window scores (DNSMOS's own reduction), `quality_min`
  = the lowest window, `quality_last` = the window ending at the clip's end, and
  `pos_quality` = mean per `slice_s` slice of the clip, a window assigned to the slice
  holding its centre (None for a slice without one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def cover_starts(n_samples: int, win: int, hop: int) -> list[int]:
    """Start samples of windows covering [0, n_samples); the last ends at n_samples."""
    if win <= 0 or hop <= 0:
        raise ValueError("window and hop must be positive")
    if n_samples <= win:
        return [0]
    starts = list(range(0, n_samples - win + 1, hop))
    if starts[-1] + win < n_samples:
        starts.append(n_samples - win)
    return starts


@dataclass(frozen=True)
class WindowScores:
    """A clip's per-window scores (time order) and where each window lies."""

    scores: tuple[float, ...]  # the headline score of each window
    starts: tuple[int, ...]  # start samples in the clip
    win: int  # window length in samples (a clip shorter than it: one window)
    n_samples: int  # the clip's own length, before any padding
    extra: dict[str, float] = field(default_factory=dict)  # model-specific means (dnsmos_sig, ...)

    def centres_seconds(self, sr: int) -> list[float]:
        return [(s + min(self.win, self.n_samples) / 2) / sr for s in self.starts]


@dataclass(frozen=True)
class QualitySummary:
    mean: float
    min: float
    last: float
    pos: list[float | None]


def summarize(ws: WindowScores, sr: int, slice_s: float = 30.0) -> QualitySummary:
    if not ws.scores or len(ws.scores) != len(ws.starts):
        raise ValueError(f"summarize: {len(ws.scores)} scores for {len(ws.starts)} windows")
    n_slices = max(1, math.ceil(ws.n_samples / sr / slice_s - 1e-9))
    sums, counts = [0.0] * n_slices, [0] * n_slices
    for v, c in zip(ws.scores, ws.centres_seconds(sr)):
        k = min(n_slices - 1, int(c // slice_s))
        sums[k] += v
        counts[k] += 1
    return QualitySummary(
        mean=float(sum(ws.scores) / len(ws.scores)),
        min=float(min(ws.scores)),
        last=float(ws.scores[-1]),
        pos=[float(sums[k] / counts[k]) if counts[k] else None for k in range(n_slices)],
    )


__all__ = ["QualitySummary", "WindowScores", "cover_starts", "summarize"]
