"""Quality windows: cover the whole clip, last window at the end; the summary."""

from __future__ import annotations

import pytest

from halle_bench.metrics.quality_windows import WindowScores, cover_starts, summarize


@pytest.mark.parametrize(
    "n, win, hop, expected",
    [
        (100, 40, 40, [0, 40, 60]),  # the tail gets a window ending at 100
        (120, 40, 40, [0, 40, 80]),  # already ends at the end: nothing added
        (100, 40, 25, [0, 25, 50, 60]),
        (30, 40, 10, [0]),  # shorter than a window: once
        (40, 40, 10, [0]),
    ],
)
def test_cover_starts(n, win, hop, expected):
    got = cover_starts(n, win, hop)
    assert got == expected
    assert max(got) + min(win, n) == n


def test_cover_starts_rejects_bad_sizes():
    with pytest.raises(ValueError):
        cover_starts(100, 0, 10)


def test_summarize_mean_min_last_and_positions():
    sr = 10
    # 70 s clip, 20 s windows at 0, 20, 40 and one ending at 70 (start 50)
    ws = WindowScores(scores=(4.0, 3.0, 3.5, 1.0), starts=(0, 200, 400, 500), win=200, n_samples=700)
    s = summarize(ws, sr, slice_s=30.0)
    assert s.mean == pytest.approx(2.875) and s.min == 1.0 and s.last == 1.0
    # centres 10, 30, 50, 60 s -> slices [0,30): 4.0; [30,60): 3.0, 3.5; [60,90): 1.0
    assert s.pos == pytest.approx([4.0, 3.25, 1.0])
    # a slice holding no window centre is None
    lone = summarize(WindowScores((2.0,), (0,), 200, 700), sr, 30.0)
    assert lone.pos == [2.0, None, None]
    # a clip shorter than its window: centre of the clip itself
    short = summarize(WindowScores((3.0,), (0,), 200, 50), sr, 30.0)
    assert short.pos == [3.0] and short.last == 3.0
    with pytest.raises(ValueError):
        summarize(WindowScores((), (), 200, 50), sr)
