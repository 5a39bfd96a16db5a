"""DNSMOS: windowing rules, parity with speechmos, noise sensitivity, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from halle_bench.metrics.dnsmos import WINDOW_SAMPLES, Dnsmos, clip_windows, pad_like_reference, window_starts
from halle_bench.metrics.quality import DNSMOS_P808, DNSMOS_P835
from halle_bench.models import resolve

TEXT = (
    "The quick brown fox jumps over the lazy dog. A second sentence follows here to make it longer, "
    "and then a third one comes too."
)


@pytest.fixture(scope="module")
def model():
    return Dnsmos(resolve(DNSMOS_P835), resolve(DNSMOS_P808))


def test_padding_doubles_short_clips():
    x = np.arange(50000, dtype=np.float32)
    y = pad_like_reference(x)
    assert y.size == 200000  # 50000 -> 100000 -> 200000 >= 144160
    assert np.array_equal(y[50000:100000], x)


@pytest.mark.parametrize(
    "seconds",
    [9.02, 9.5, 10.0, 10.5, 12.0, 16.3, 30.0, 60.7, 181.2],
)
def test_window_count_matches_reference_formula(seconds):
    n = int(round(seconds * 16000))
    ref = int(np.floor(n / 16000) - 9.01) + 1  # dnsmos_local.py's num_hops
    starts = window_starts(n)
    assert len(starts) == ref
    assert starts[-1] + WINDOW_SAMPLES <= n


def test_windows_cover_clip_with_hop():
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 16000 * 20).astype(np.float32)
    w = clip_windows(x, hop_seconds=2.0)
    assert w.shape == (6, WINDOW_SAMPLES)  # starts 0,2,...,10 s; 10+9.01 <= 20
    assert np.array_equal(w[3], x[96000 : 96000 + WINDOW_SAMPLES])


@pytest.mark.parametrize("seconds", [3.0, 7.5, 12.5, 15.5])
def test_parity_with_speechmos(model, speech, seconds):
    """Clips up to 16 s, where the reference skips no window (see module docstring)."""
    from speechmos import dnsmos as ref

    x = np.tile(speech(TEXT), 3)[: int(seconds * 16000)]
    ours = model.score(x)
    theirs = ref.run(x, 16000)
    assert ours.ovrl == pytest.approx(float(theirs["ovrl_mos"]), abs=1e-4)
    assert ours.sig == pytest.approx(float(theirs["sig_mos"]), abs=1e-4)
    assert ours.bak == pytest.approx(float(theirs["bak_mos"]), abs=1e-4)
    assert ours.p808 == pytest.approx(float(theirs["p808_mos"]), abs=1e-4)


def test_reference_difference_is_its_skipped_windows(model, speech):
    """On an 18 s clip the reference drops windows 7 and 8 (float rounding of their end);
    averaging our per-window scores without them reproduces it exactly."""
    from speechmos import dnsmos as ref

    x = np.tile(speech(TEXT), 3)[: 18 * 16000]
    wins = clip_windows(x)
    assert len(wins) == 9
    per = np.array([model.score_window(w) for w in wins])
    kept = [k for k in range(9) if int((k + 9.01) * 16000) - k * 16000 == WINDOW_SAMPLES]
    assert kept == [0, 1, 2, 3, 4, 5, 6]
    theirs = ref.run(x, 16000)
    assert per[kept, 2].mean() == pytest.approx(float(theirs["ovrl_mos"]), abs=1e-4)
    assert model.score(x).ovrl == pytest.approx(per[:, 2].mean(), abs=1e-12)


def one_window(x):
    """Tile a clip to 9.5 s: exactly one DNSMOS window (keeps the tests fast)."""
    return np.tile(x, 3)[: int(9.5 * 16000)]


def test_falls_as_noise_is_added(model, speech):
    x = one_window(speech(TEXT))
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(x.size).astype(np.float32)
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2))
    ovrl = []
    for snr_db in (None, 20, 10, 0):
        y = x if snr_db is None else np.clip(x + noise * 10 ** (-snr_db / 20), -1, 1)
        ovrl.append(model.score(y).ovrl)
    assert all(a > b for a, b in zip(ovrl, ovrl[1:])), ovrl
    assert ovrl[0] - ovrl[-1] > 1.0


def test_deterministic_and_independent_of_neighbours(model, speech):
    a = one_window(speech(TEXT))
    b = one_window(speech("Another voice says something else entirely.", voice="en-gb"))
    one = model.score_many([a])
    two = model.score_many([b, a])
    assert one[0] == two[1]
    assert model.score(a) == one[0]


def test_rejects_wrong_rate():
    with pytest.raises(ValueError, match="16000"):
        clip_windows(np.zeros(1000, np.float32), sr=8000)
