"""The pure parts of long-form building: segment planning, balance, prompt choice, pauses."""

from __future__ import annotations

import numpy as np
import pytest

from halle_bench.data.longform import Segment, Source, balance, bucket_segments, choose_prompt, plan_longform
from halle_bench.data.pauses import cut_at_pause, pauses, speech_regions

SR = 16000


def chapter(spk: str, chap: str, durations: list[float]) -> list[Source]:
    return [Source(f"{spk}-{chap}-{i:04d}", f"w{i}", spk, chap, d) for i, d in enumerate(durations)]


def test_bucket_segments_are_disjoint_runs_within_the_bucket():
    rng = np.random.default_rng(0)
    srcs = chapter("1", "10", list(rng.uniform(2, 15, 60))) + chapter("2", "20", list(rng.uniform(2, 15, 40)))
    for lo, hi in [(3, 10), (10, 30), (30, 60), (60, 90)]:
        segs, _ = bucket_segments(srcs, lo, hi, seed=0)
        assert segs, (lo, hi)
        seen = set()
        for s in segs:
            assert lo <= s.duration < hi
            ids = [x.id for x in s.sources]
            assert not seen & set(ids)
            seen |= set(ids)
            pos = [int(i.rsplit("-", 1)[1]) for i in ids]
            assert pos == list(range(pos[0], pos[0] + len(pos))) and len({x.chapter for x in s.sources}) == 1
        # lengths spread over the bucket, not piled at its lower edge
        if len(segs) >= 6:
            assert np.median([s.duration for s in segs]) > lo + 0.25 * (hi - lo)


def test_too_long_utterances_are_skipped_and_counted():
    srcs = chapter("1", "10", [4.0, 12.0, 5.0, 40.0, 6.0])
    segs, too_long = bucket_segments(srcs, 3, 10, seed=0)
    assert too_long == 2 and all("0001" not in s.id and "0003" not in s.id for s in segs)


def test_bucket_segments_depend_on_seed_and_chapter_name_not_position():
    a = chapter("1", "10", [3.0] * 30)
    b = chapter("2", "20", [4.0] * 30)
    alone, _ = bucket_segments(a, 10, 30, seed=5)
    both, _ = bucket_segments(b + a, 10, 30, seed=5)
    assert [s.id for s in alone] == [s.id for s in both if s.speaker == "1"]
    assert [s.id for s in bucket_segments(a, 10, 30, seed=6)[0]] != [s.id for s in alone]


def test_balance_round_robins_speakers():
    segs = [Segment(f"b_{spk}-{i}", "b", (Source(f"{spk}-{i}", "t", spk, "c", 5.0),))
            for spk, n in (("a", 10), ("b", 2), ("c", 3)) for i in range(n)]
    got = balance(segs, 6, seed=0, label="b")
    spk = [s.speaker for s in got]
    assert len(got) == 6 and spk.count("b") == 2 and spk.count("c") == 2 and spk.count("a") == 2
    assert got == sorted(got, key=lambda s: s.id) and balance(segs, 6, 0, "b") == got


def test_choose_prompt_prefers_whole_then_longer_never_inside():
    srcs = chapter("1", "10", [5.0, 3.5, 8.0, 2.0])
    seg = Segment("x", "3-10", (srcs[0],))
    by = {"1": srcs}
    p = choose_prompt(seg, by, seconds=3.0, slack=1.0, min_seconds=1.0, seed=0)
    assert p.source.id == srcs[1].id and p.whole
    seg2 = Segment("y", "3-10", (srcs[1],))
    p2 = choose_prompt(seg2, by, 3.0, 1.0, 1.0, seed=0)
    assert p2.source.id in (srcs[0].id, srcs[2].id) and not p2.whole  # 2.0 s is under 3 s: never chosen
    assert choose_prompt(Segment("z", "b", tuple(srcs)), by, 3.0, 1.0, 1.0, 0) is None


def test_plan_drops_segments_without_a_prompt_and_balances():
    srcs = chapter("1", "10", [4.0] * 12) + chapter("2", "20", [4.0] * 2)  # speaker 2: one 8 s segment, no prompt left
    plan = plan_longform(srcs, (3, 10, 30), None, 0, 3.0, 1.0, 1.0)
    n = {b: sum(1 for s, _ in plan.segments if s.bucket == b) for b in ("3-10", "10-30")}
    assert n["3-10"] == n["10-30"] >= 1
    assert all(p.source.speaker == s.speaker and p.source not in s.sources for s, p in plan.segments)


def _bursts(spec: list[tuple[str, float]]) -> np.ndarray:
    """'s' = speech-like (noise-modulated tone), 'p' = pause, each with its seconds."""
    rng = np.random.default_rng(0)
    parts = []
    for kind, secs in spec:
        n = int(secs * SR)
        if kind == "s":
            t = np.arange(n) / SR
            parts.append((0.3 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * rng.random(n))).astype(np.float32))
        else:
            parts.append((1e-5 * rng.standard_normal(n)).astype(np.float32))
    return np.concatenate(parts)


def test_speech_regions_and_pauses():
    x = _bursts([("p", 0.3), ("s", 1.0), ("p", 0.05), ("s", 1.0), ("p", 0.4), ("s", 2.0), ("p", 0.3)])
    regions = speech_regions(x, SR)
    assert len(regions) == 2  # the 50 ms gap is not a pause
    assert regions[0][0] == pytest.approx(0.3, abs=0.03) and regions[0][1] == pytest.approx(2.35, abs=0.03)
    assert pauses(regions)[0] == pytest.approx((2.35, 2.75), abs=0.03)


def test_cut_at_pause_ends_between_words():
    x = _bursts([("s", 2.6), ("p", 0.4), ("s", 2.0), ("p", 0.3), ("s", 1.0)])
    # the first pause after 3 s within the slack (5.0-5.3 s: its middle)
    assert cut_at_pause(x, SR, 3.0, 2.5) / SR == pytest.approx(5.15, abs=0.03)
    # none after 3 s within 1 s: the pause just before (2.6-3.0 s) rather than inside a word
    assert cut_at_pause(x, SR, 3.0, 1.0) / SR == pytest.approx(2.8, abs=0.03)
    assert cut_at_pause(x, SR, 4.0, 0.5) == 4 * SR  # no pause within 0.5 s either side: exactly 4 s
    assert cut_at_pause(x[: 2 * SR], SR, 3.0) == 2 * SR  # never past the end
