"""Long-form windowing: cuts in pauses, overlap where there is none, and merging window
texts without losing or doubling words (pure functions, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from halle_bench.metrics.asr.windowing import FLOOR_DB, merge_texts, plan_windows, split_overlap, window_bounds

SR = 16000


def test_short_audio_is_one_window_and_has_no_cut():
    p = plan_windows(np.ones(SR * 30, np.float32))
    assert p.bounds == [(0, SR * 30)] and p.cuts == [] and p.cut_db is None


def test_cut_in_a_pause_is_clean_and_does_not_overlap():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SR * 95).astype(np.float32) * 0.1
    x[int(27.0 * SR) : int(27.4 * SR)] = 0  # a pause inside the search region of the first cut
    p = plan_windows(x)
    assert 27.0 * SR < p.bounds[0][1] < 27.4 * SR
    assert p.cuts[0].level_db == FLOOR_DB and p.cuts[0].overlap == 0
    assert p.bounds[1][0] == p.bounds[0][1]  # the next window starts at the cut


def test_cut_inside_speech_overlaps_and_reports_its_level():
    x = np.random.default_rng(1).standard_normal(SR * 61).astype(np.float32)  # no pause anywhere
    p = plan_windows(x, overlap_seconds=5.0)
    assert all(e - s <= 30 * SR for s, e in p.bounds) and p.bounds[0][0] == 0 and p.bounds[-1][1] == len(x)
    for (s0, e0), (s1, _), c in zip(p.bounds, p.bounds[1:], p.cuts):
        assert c.at == e0 and c.overlap == 5 * SR and s1 == e0 - 5 * SR
        assert -3.0 < c.level_db < 1.0  # white noise: every 100 ms frame is near the clip's RMS
    assert p.cut_db == max(c.level_db for c in p.cuts)
    # without overlap the same audio gets contiguous windows
    flat = window_bounds(x)
    assert all(e0 == s1 for (_, e0), (s1, _) in zip(flat, flat[1:]))


def test_quiet_but_not_silent_cut_threshold():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(SR * 40).astype(np.float32) * 0.1
    x[int(27.0 * SR) : int(27.5 * SR)] *= 0.01  # -40 dB: a pause with background noise
    assert plan_windows(x).cuts[0].overlap == 0
    assert plan_windows(x, clean_cut_db=-50.0).cuts[0].overlap > 0  # stricter: treated as speech
    with pytest.raises(ValueError, match="overlap_seconds"):
        plan_windows(x, overlap_seconds=26.0)


def test_split_overlap_drops_half_heard_edge_words():
    left = "so the old man said that the big dog ran hal".split()
    right = "ig dog ran home and slept".split()
    p, q, ok = split_overlap(left, right, overlap_s=2.0, left_s=4.0, right_s=3.0)
    assert ok and " ".join(left[:p] + right[q:]) == "so the old man said that the big dog ran home and slept"


def test_split_overlap_ignores_case_and_punctuation_and_tolerates_a_mishearing():
    left = "One two three four five six seven, eight nine".split()
    right = "Seven eight nein ten eleven".split()
    p, q, ok = split_overlap(left, right, overlap_s=3.0, left_s=9.0, right_s=5.0)
    assert ok and " ".join(left[:p] + right[q:]) == "One two three four five six seven, eight nein ten eleven"


def test_split_overlap_without_agreement_falls_back_to_time():
    left = [f"a{i}" for i in range(10)]  # 10 words over 10 s, the last 2 s overlap
    right = [f"b{i}" for i in range(6)]  # 6 words over 6 s
    p, q, ok = split_overlap(left, right, overlap_s=2.0, left_s=10.0, right_s=6.0)
    assert not ok and (p, q) == (9, 1)  # left keeps words centred before 9 s, right those after 1 s


def test_merge_texts_joins_clean_cuts_and_merges_overlaps():
    bounds = [(0, 30 * SR), (30 * SR, 55 * SR), (50 * SR, 70 * SR)]
    texts = ["a b c d", "e f g h i j", "i j k l"]
    text, fallbacks = merge_texts(texts, bounds, SR)
    assert text == "a b c d e f g h i j k l" and fallbacks == 0
    assert merge_texts(["x", "", "y"], [(0, 10), (10, 20), (20, 30)], SR) == ("x y", 0)
    assert merge_texts([], [], SR) == ("", 0)


def test_merge_texts_uses_each_windows_full_words_for_both_of_its_joins():
    # window 1 is trimmed at its head by the first join and at its tail by the second
    bounds = [(0, 30 * SR), (25 * SR, 55 * SR), (50 * SR, 60 * SR)]
    texts = ["w1 w2 w3 w4 w5 w6", "w5 w6 w7 w8 w9 w10", "w9 w10 w11"]
    assert merge_texts(texts, bounds, SR)[0] == " ".join(f"w{i}" for i in range(1, 12))
