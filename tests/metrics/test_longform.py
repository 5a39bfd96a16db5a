"""Long-form diagnostics: pauses on signals with known silences, W1 parity, ratios."""

from __future__ import annotations

import numpy as np
import pytest

from halle_bench.errors import ConfigError
from halle_bench.metrics.base import ScoreItem, build_scorer
from halle_bench.metrics.longform import analyse_pauses, pause_segments, pause_wasserstein, wasserstein_1d

SR = 16000


def tone(seconds, amp=0.5, f=220.0):
    t = np.arange(int(round(seconds * SR))) / SR
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


def gap(seconds, amp=0.0, seed=0):
    n = int(round(seconds * SR))
    return (amp * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def build(parts):
    return np.concatenate(parts)


def test_known_internal_pauses_edges_excluded():
    # lead-in 0.5 s, speech 1 s, pause 0.3, speech 0.7, pause 0.05 (too short), speech 0.4,
    # pause 1.2, speech 0.5, trailing 0.8 s
    x = build([gap(0.5), tone(1), gap(0.3), tone(0.7), gap(0.05), tone(0.4), gap(1.2), tone(0.5), gap(0.8)])
    a = analyse_pauses(x, SR)
    assert a.pauses == [0.3, 1.2]
    assert a.active_start == pytest.approx(0.5) and a.active_end == pytest.approx(0.5 + 4.15)
    assert a.speech_seconds == pytest.approx(1 + 0.7 + 0.05 + 0.4 + 0.5)
    assert pause_segments(x, SR, min_pause=0.04) == [0.3, 0.05, 1.2]


def test_threshold_is_relative_to_peak():
    # background noise at -46 dB below the tone's RMS: silent at -40 dB, not at -50 dB
    noise_rms = 0.5 / np.sqrt(2) * 10 ** (-46 / 20)
    x = build([tone(1), gap(0.5, amp=noise_rms, seed=3), tone(1)])
    assert pause_segments(x, SR, threshold_db=-40) == [0.5]
    assert pause_segments(x, SR, threshold_db=-50) == []
    # scaling the whole signal changes nothing
    assert pause_segments(0.01 * x, SR) == [0.5]


def test_silent_and_pauseless_signals():
    assert analyse_pauses(np.zeros(SR, np.float32), SR).pauses == []
    assert analyse_pauses(np.zeros(SR, np.float32), SR).speech_seconds == 0.0
    assert pause_segments(tone(2), SR) == []


def test_pause_detection_on_espeak(speech):
    a = speech("First sentence here.")
    b = speech("And the second one.")
    x = np.concatenate([a, np.zeros(int(0.7 * SR), np.float32), b])
    # espeak's own trailing/leading silences add to the inserted 0.7 s
    p = pause_segments(x, SR)
    assert any(0.7 <= q < 1.5 for q in p)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wasserstein_parity_with_scipy(seed):
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(seed)
    a = rng.exponential(0.4, size=rng.integers(1, 40))
    b = rng.exponential(0.7, size=rng.integers(1, 40))
    assert wasserstein_1d(a, b) == pytest.approx(wasserstein_distance(a, b), rel=1e-12, abs=1e-12)
    assert wasserstein_1d(a, a) == 0.0


def test_pause_wasserstein_empty_sides():
    assert pause_wasserstein([], []) == 0.0
    assert pause_wasserstein([], [0.2, 0.4]) == pytest.approx(0.3)
    assert pause_wasserstein([0.5], [0.5, 0.5]) == 0.0
    with pytest.raises(ValueError):
        wasserstein_1d([], [1.0])


def _item(audio, **kw):
    return ScoreItem(system="s", utt_id="u", audio=audio, **kw)


def test_scorer_ratio_against_reference():
    ref = build([gap(0.3), tone(4), gap(0.4), tone(4), gap(0.3)])  # active 8.4 s
    s = build_scorer("longform", {})
    full = build([tone(4), gap(0.5), tone(4)])
    short = build([tone(2), gap(2.0)])
    long = build([tone(8.4)] * 2)
    out = s.score([_item(full, reference=ref), _item(short, reference=ref), _item(long, reference=ref)])
    v = out[0].values
    assert v["duration_basis"] == "reference"
    assert v["duration_ratio"] == pytest.approx(8.5 / 8.4)
    assert v["pauses"] == [0.5] and v["n_pauses"] == 1 and v["pause_mean"] == 0.5
    assert v["ref_pauses"] == [0.4]
    assert not v["truncated"] and not v["overrun"]
    assert out[1].values["truncated"] and out[1].values["duration_ratio"] == pytest.approx(2 / 8.4)
    assert out[2].values["overrun"] and not out[2].values["truncated"]


def test_scorer_ratio_fallbacks():
    s = build_scorer("longform", {"truncated_below": 0.5})
    x = tone(3)
    v = s.score([_item(x, duration_ref=6.0)])[0].values
    assert v["duration_basis"] == "reference-duration" and v["duration_ratio"] == pytest.approx(0.5)
    assert v["truncated"] is False  # 0.5 is not below 0.5
    # prompt: 4 words in 2 s of speech -> 2 words/s; target of 8 words -> 4 s expected
    v = s.score([_item(x, prompt=build([gap(0.5), tone(2), gap(0.5)]), prompt_text="one two three four",
                       text="a b c d e f g h")])[0].values
    assert v["duration_basis"] == "prompt-rate" and v["duration_ratio"] == pytest.approx(0.75)
    v = s.score([_item(x, text="no prompt")])[0].values
    assert v["duration_ratio"] is None and v["truncated"] is None and v["pause_mean"] is None


def test_scorer_errors_and_config():
    s = build_scorer("longform", {})
    out = s.score([_item(np.zeros(0, np.float32)), _item(np.array([np.inf], np.float32)), _item(tone(1))])
    assert "empty" in out[0].error and "NaN" in out[1].error and out[2].error is None
    with pytest.raises(ConfigError):
        build_scorer("longform", {"overrun_above": 0.9})


def test_head_policy_compares_the_same_span():
    """`head` policy: the reference arrives without its first seconds (the prompt), the
    system spoke the whole text. An output equal to the reference is ratio 1 (it was
    9.9 s / 7.1 s = 1.39 here before the prompt was put back; 2.6 and `overrun` on the
    demo's short clips)."""
    full = build([gap(0.2), tone(3.0), gap(0.5), tone(3.0), gap(0.4), tone(3.0), gap(0.3)])  # 10.4 s
    cut = 3 * 16000  # the first 3 s are the prompt
    prompt, ref_cut = full[:cut], full[cut:]
    s = build_scorer("longform", {})
    sys_item = _item(full.copy(), reference=ref_cut, prompt=prompt, prompt_cut=(0.0, 3.0), duration_ref=10.4)
    gt_item = _item(ref_cut.copy(), reference=ref_cut, prompt=prompt, prompt_cut=(0.0, 3.0), is_ground_truth=True)
    half = _item(full[: len(full) // 2].copy(), reference=ref_cut, prompt=prompt, prompt_cut=(0.0, 3.0))
    v_sys, v_gt, v_half = (o.values for o in s.score([sys_item, gt_item, half]))
    assert v_sys["duration_basis"] == "reference" and v_sys["duration_ratio"] == pytest.approx(1.0)
    assert v_sys["overrun"] is False and v_sys["truncated"] is False
    # the ground-truth row is restored too: the same values as the system that equals it
    assert v_gt["duration_ratio"] == pytest.approx(1.0) and v_gt["audio_seconds"] == pytest.approx(10.4)
    assert v_gt["pauses"] == v_sys["pauses"] == pytest.approx([0.5, 0.4])
    assert v_half["duration_ratio"] == pytest.approx(5.0 / 10.0, abs=0.01) and v_half["truncated"]
    # without the prompt audio the reference cannot be restored: a system falls back to
    # the reference duration instead of comparing the whole output with a cut reference
    no_prompt = _item(full.copy(), reference=ref_cut, prompt_cut=(0.0, 3.0), duration_ref=10.4)
    v = s.score([no_prompt])[0].values
    assert v["duration_basis"] == "reference-duration" and v["duration_ratio"] == pytest.approx(1.0)


def test_restore_cut_puts_the_span_back():
    from halle_bench.metrics.longform import restore_cut

    x = np.arange(10, dtype=np.float32)
    assert np.array_equal(restore_cut(np.r_[x[:2], x[5:]], x[2:5], 2 / 16000), x)
    assert np.array_equal(restore_cut(x[3:], x[:3], 0.0), x)


def test_speaking_rate_and_pauses_beside_the_reference_audio():
    """Version 3: words per speech second of the output and of the reference audio, and the
    reference's pause count, so the gate measures them against the reference (issue 17)."""
    text = "one two three four five six seven eight"  # 8 words
    ref = build([tone(2), gap(0.4), tone(2)])  # 4 s of speech, one pause
    fast = build([tone(1), tone(1)])  # 2 s of speech, no pause: noise-filled or rushed
    s = build_scorer("longform", {})
    same, rushed, no_text = s.score([_item(ref, reference=ref, text=text), _item(fast, reference=ref, text=text),
                                     _item(fast, reference=ref)])
    assert same.values["speaking_rate"] == pytest.approx(2.0) == same.values["ref_speaking_rate"]
    assert same.values["n_pauses"] == same.values["ref_n_pauses"] == 1
    assert rushed.values["speaking_rate"] == pytest.approx(4.0) and rushed.values["ref_speaking_rate"] == 2.0
    assert rushed.values["n_pauses"] == 0  # "no pause detected" is a count, not missing
    assert no_text.values["speaking_rate"] is None and s.version == "3"
