"""The "intrusive" scorer: parity with the pesq and pystoi packages, errors, lengths."""

from __future__ import annotations

import numpy as np
import pytest

from halle_bench.audio import resample
from halle_bench.errors import ConfigError
from halle_bench.metrics.base import ScoreItem, build_scorer
from halle_bench.metrics.intrusive import align_lengths

TEXT = "Speech quality is measured against the reference recording of the same sentence."


@pytest.fixture(scope="module")
def pair(speech):
    ref = speech(TEXT)
    rng = np.random.default_rng(1)
    deg = (ref + 0.02 * rng.standard_normal(ref.size)).astype(np.float32)
    return ref, deg


def _item(deg, ref, **kw):
    return ScoreItem(system="s", utt_id="u", audio=deg, reference=ref, **kw)


def test_parity_with_packages_wb(pair):
    from pesq import pesq
    from pystoi import stoi

    ref, deg = pair
    out = build_scorer("intrusive", {"pesq": "wb"}).score([_item(deg, ref)])[0]
    assert out.error is None
    assert out.values["pesq"] == pesq(16000, ref, deg, "wb")
    assert out.values["stoi"] == stoi(ref, deg, 16000, extended=False)
    assert out.values["estoi"] == stoi(ref, deg, 16000, extended=True)
    assert out.values["intrusive_seconds"] == pytest.approx(ref.size / 16000)


def test_parity_nb_resamples_to_8k(pair):
    from pesq import pesq

    ref, deg = pair
    out = build_scorer("intrusive", {"pesq": "nb", "stoi": False, "estoi": False}).score([_item(deg, ref)])[0]
    assert set(out.values) == {"pesq", "intrusive_seconds"}
    assert out.values["pesq"] == pesq(8000, resample(ref, 16000, 8000), resample(deg, 16000, 8000), "nb")


def test_scores_fall_with_degradation(pair):
    ref, _ = pair
    rng = np.random.default_rng(2)
    s = build_scorer("intrusive", {})
    clean = s.score([_item(ref.copy(), ref)])[0].values
    noisy = s.score([_item((ref + 0.1 * rng.standard_normal(ref.size)).astype(np.float32), ref)])[0].values
    assert clean["pesq"] > 4.0 and clean["stoi"] > 0.99
    for k in ("pesq", "stoi", "estoi"):
        assert noisy[k] < clean[k] - 0.1


def test_lengths_trimmed_to_shorter(pair):
    ref, deg = pair
    s = build_scorer("intrusive", {"pesq": False})
    longer = np.concatenate([deg, np.zeros(8000, np.float32)])
    a = s.score([_item(longer, ref)])[0].values
    b = s.score([_item(deg, ref)])[0].values
    assert a == b
    r, d = align_lengths(np.ones(5), np.ones(3))
    assert r.size == d.size == 3


def test_item_errors(pair):
    ref, deg = pair
    s = build_scorer("intrusive", {})
    out = s.score(
        [
            ScoreItem(system="s", utt_id="a", audio=deg),  # no reference
            _item(np.zeros_like(deg), ref),  # silent output
            _item(deg[:800], ref[:800]),  # 50 ms: too short for PESQ
            _item(deg, ref),
        ]
    )
    assert "needs reference" in out[0].error
    assert "silent" in out[1].error
    assert out[2].error.startswith("intrusive: PESQ failed")
    assert out[3].error is None


def test_config_errors():
    with pytest.raises(ConfigError):
        build_scorer("intrusive", {"pesq": "xb"})
    with pytest.raises(ConfigError):
        build_scorer("intrusive", {"pesq": False, "stoi": False, "estoi": False})
    assert build_scorer("intrusive", {"pesq": True}).pesq_mode == "wb"
