"""DNSMOS: windowing rules, parity with speechmos, noise sensitivity, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from halle_bench.metrics.dnsmos import (
    WINDOW_SAMPLES,
    Dnsmos,
    clip_windows,
    onnx_providers,
    pad_like_reference,
    window_starts,
)
from halle_bench.metrics.quality import DNSMOS_P808, DNSMOS_P835
from halle_bench.models import resolve

TEXT = (
    "The quick brown fox jumps over the lazy dog. A second sentence follows here to make it longer, "
    "and then a third one comes too."
)


@pytest.fixture(scope="module")
def model():
    return Dnsmos(resolve(DNSMOS_P835), resolve(DNSMOS_P808), hop_seconds=1.0)  # the reference's hop


def test_padding_doubles_short_clips():
    x = np.arange(50000, dtype=np.float32)
    y = pad_like_reference(x)
    assert y.size == 200000  # 50000 -> 100000 -> 200000 >= 144160
    assert np.array_equal(y[50000:100000], x)


@pytest.mark.parametrize(
    "seconds",
    [9.02, 9.5, 10.0, 10.5, 12.0, 16.3, 30.0, 60.7, 181.2],
)
def test_windows_are_the_references_plus_one_ending_at_the_clip_end(seconds):
    n = int(round(seconds * 16000))
    ref = int(np.floor(n / 16000) - 9.01) + 1  # dnsmos_local.py's num_hops
    starts = window_starts(n, hop_seconds=1.0)
    assert starts[:ref] == [k * 16000 for k in range(ref)]  # the reference's windows, all kept
    grid = [s for s in starts if s % 16000 == 0]  # every whole-second start that fits the clip
    assert grid == [k * 16000 for k in range((n - WINDOW_SAMPLES) // 16000 + 1)]
    assert starts[-1] + WINDOW_SAMPLES == n  # the last window ends exactly at the clip's end
    assert len(starts) - len(grid) <= 1 and all(b > a for a, b in zip(starts, starts[1:]))


def test_short_clip_is_one_padded_window():
    x = np.random.default_rng(1).uniform(-0.5, 0.5, 16000 * 3).astype(np.float32)
    w, starts = clip_windows(x)
    assert starts == [0] and w.shape == (1, WINDOW_SAMPLES)
    assert np.array_equal(w[0], pad_like_reference(x)[:WINDOW_SAMPLES])
    assert window_starts(WINDOW_SAMPLES) == [0]


def test_windows_cover_clip_with_hop():
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 16000 * 20).astype(np.float32)
    w, starts = clip_windows(x, hop_seconds=2.0)
    # starts 0,2,...,10 s (10 + 9.01 <= 20), then one ending at 20 s
    assert starts == [k * 32000 for k in range(6)] + [16000 * 20 - WINDOW_SAMPLES]
    assert w.shape == (7, WINDOW_SAMPLES)
    assert np.array_equal(w[3], x[96000 : 96000 + WINDOW_SAMPLES])
    assert np.array_equal(w[-1], x[-WINDOW_SAMPLES:])
    # non-overlapping windows (the demo's hop): a 17.9 s clip's tail is now scored
    n = int(17.9 * 16000)
    assert window_starts(n, hop_seconds=9.01) == [0, n - WINDOW_SAMPLES]


@pytest.mark.parametrize("seconds", [7.5, 12.5, 15.5])
def test_parity_with_speechmos_per_window(model, speech, seconds):
    """Every window the reference scores is one of ours with the same scores; the clip's
    mean differs only by what the reference leaves out (padding copies, the tail)."""
    from speechmos import dnsmos as ref

    x = np.tile(speech(TEXT), 3)[: int(seconds * 16000)]
    theirs = ref.run(x, 16000)
    padded = pad_like_reference(np.clip(x, -1, 1))
    n_ref = int(np.floor(padded.size / 16000) - 9.01) + 1
    per = np.array([model.score_window(padded[k * 16000 : k * 16000 + WINDOW_SAMPLES]) for k in range(n_ref)])
    for j, key in enumerate(("sig_mos", "bak_mos", "ovrl_mos", "p808_mos")):
        assert per[:, j].mean() == pytest.approx(float(theirs[key]), abs=1e-4)
    ours = model.score(x)
    if x.size > WINDOW_SAMPLES:  # our first n_ref windows are the reference's
        assert np.allclose(np.array(ours.windows[:n_ref]), per, atol=1e-9)
        assert ours.starts[-1] + WINDOW_SAMPLES == x.size
    else:  # a short clip: the reference's first window only
        assert ours.n_windows == 1 and np.allclose(ours.windows[0], per[0], atol=1e-9)
    assert ours.ovrl == pytest.approx(np.mean([w[2] for w in ours.windows]), abs=1e-12)


def test_reference_difference_is_its_skipped_windows(model, speech):
    """On an 18 s clip the reference drops windows 7 and 8 (float rounding of their end);
    averaging our per-window scores of its windows without them reproduces it exactly."""
    from speechmos import dnsmos as ref

    x = np.tile(speech(TEXT), 3)[: 18 * 16000]
    wins, starts = clip_windows(x, hop_seconds=1.0)
    assert starts == [k * 16000 for k in range(9)] + [18 * 16000 - WINDOW_SAMPLES]
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


def test_default_hop_is_the_window_and_reaches_the_end():
    n = int(40 * 16000)
    assert window_starts(n) == [0, WINDOW_SAMPLES, 2 * WINDOW_SAMPLES, 3 * WINDOW_SAMPLES, n - WINDOW_SAMPLES]
    assert window_starts(WINDOW_SAMPLES + 1) == [0, 1]


def test_windows_batched_in_one_call_give_the_same_bits(speech):
    """Both ONNX models take a batch dimension; a window's numbers do not depend on its
    batch-mates or on the thread count (onnxruntime CPU kernels treat rows alone)."""
    x = np.tile(speech(TEXT), 6)[: 31 * 16000]
    y = np.tile(speech("Another voice says something else entirely.", voice="en-gb"), 12)[: 24 * 16000]
    one = Dnsmos(resolve(DNSMOS_P835), resolve(DNSMOS_P808), hop_seconds=4.0, threads=1, window_batch=1)
    many = Dnsmos(resolve(DNSMOS_P835), resolve(DNSMOS_P808), hop_seconds=4.0, threads=2, window_batch=5)
    assert one.score_many([x, y]) == many.score_many([x, y]) == [one.score(x), one.score(y)]
    assert many.primary is one.primary  # one session per process and device, kept


def test_progress_counts_windows(speech):
    m = Dnsmos(resolve(DNSMOS_P835), resolve(DNSMOS_P808), threads=2, window_batch=2)
    x = np.tile(speech(TEXT), 6)[: 40 * 16000]
    seen: list[tuple[int, int]] = []
    (s,) = m.score_many([x], progress=lambda done, total: seen.append((done, total)))
    assert s.n_windows == 5
    assert seen == [(2, 5), (4, 5), (5, 5)]  # one call per batch of 2, in order


def test_cuda_without_the_provider_falls_back_to_cpu_with_a_note():
    import onnxruntime as ort

    providers, note = onnx_providers("cuda:0")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert providers[0] == ("CUDAExecutionProvider", {"device_id": 0}) and note == ""
    else:
        assert providers == ["CPUExecutionProvider"] and "onnxruntime-gpu" in note
    assert onnx_providers("cpu") == (["CPUExecutionProvider"], "")
