"""The "quality" scorer: registry, config errors, batch-size invariance, item errors."""

from __future__ import annotations

import numpy as np
import pytest

from halle_bench.errors import ConfigError, MissingModelError
from halle_bench.metrics.base import ScoreItem, build_scorer
from halle_bench.models import all_models


def _items(speech):
    texts = [
        ("a", "Hello there, this is the first test sentence.", "en-us"),
        ("b", "A much longer second item, spoken by another voice, with several clauses in it.", "en-gb"),
        ("c", "Short.", "en-us"),
    ]
    items = [ScoreItem(system="s", utt_id=u, audio=speech(t, voice=v)) for u, t, v in texts]
    # one item of 12 s so that several windows are pooled
    long = np.tile(np.concatenate([speech(t, voice=v) for _, t, v in texts]), 2)[: 12 * 16000]
    items.append(ScoreItem(system="s", utt_id="long", audio=long))
    return items


def test_specs_registered_with_sha256():
    specs = all_models()
    assert specs["dnsmos-p835"].sha256 and specs["dnsmos-p808"].sha256
    assert specs["utmos22-strong"].package is None


def test_unknown_model_is_config_error():
    with pytest.raises(ConfigError, match="dnsmos"):
        build_scorer("quality", {"model": "nisqa"})


def test_batch_size_invariance(speech):
    items = _items(speech)
    s1 = build_scorer("quality", {"model": "dnsmos", "batch_size": 1})
    s8 = build_scorer("quality", {"model": "dnsmos", "batch_size": 8})
    s1.load("cpu")
    s8.load("cpu")
    one = [s1.score([it])[0] for it in items]
    eight = s8.score(items)
    assert [o.values for o in one] == [o.values for o in eight]
    v = eight[0].values
    assert v["quality"] == v["dnsmos_ovrl"] and v["quality_model"] == "dnsmos-p835-ovrl"
    assert 1.0 < v["quality"] < 5.0
    assert eight[3].values["dnsmos_windows"] > 1
    refs = s8.models()
    assert {r.name for r in refs} == {"dnsmos-p835", "dnsmos-p808"} and all(r.sha256 for r in refs)


def test_item_errors_do_not_break_batch(speech):
    s = build_scorer("quality", {})
    good = ScoreItem(system="s", utt_id="g", audio=speech("Good item."))
    out = s.score(
        [
            ScoreItem(system="s", utt_id="e", audio=np.zeros(0, np.float32)),
            ScoreItem(system="s", utt_id="n", audio=np.array([0.0, np.nan], np.float32)),
            good,
        ]
    )
    assert "empty" in out[0].error and "NaN" in out[1].error
    assert out[2].error is None and out[2].values["quality"] > 1.0


def test_other_sample_rate_is_resampled(speech):
    from halle_bench.audio import resample

    s = build_scorer("quality", {})
    x = speech("Resampled input gives nearly the same score.")
    a = s.score([ScoreItem(system="s", utt_id="a", audio=x)])[0].values["quality"]
    y = resample(x, 16000, 24000)
    b = s.score([ScoreItem(system="s", utt_id="b", audio=y, sample_rate=24000)])[0].values["quality"]
    assert a == pytest.approx(b, abs=0.05)


def test_dnsmos_wrong_file_is_checksum_error(tmp_path):
    from halle_bench.errors import ChecksumError

    (tmp_path / "sig_bak_ovr.onnx").write_bytes(b"not a model")
    (tmp_path / "model_v8.onnx").write_bytes(b"not a model")
    s = build_scorer("quality", {"model_path": str(tmp_path)})
    with pytest.raises(ChecksumError, match="dnsmos-p835"):
        s.load("cpu")


def test_utmos_missing_checkpoint_names_file(tmp_path):
    s = build_scorer("quality", {"model": "utmos", "model_path": str(tmp_path / "nope.pt")})
    with pytest.raises(MissingModelError, match="nope.pt"):
        s.load("cpu")


def test_threads_do_not_change_scores(speech):
    items = _items(speech)[:3]
    a = build_scorer("quality", {"threads": 1}).score(items)
    b = build_scorer("quality", {"threads": 2}).score(items)
    assert [o.values for o in a] == [o.values for o in b]


def test_noise_tail_lowers_quality_last_and_min(speech):
    """40 s of speech whose last 3.5 s are noise. With non-overlapping windows (the demo's
    hop) the old windows stopped at 36.04 s and never heard it; now the last window ends
    at the clip's end, so quality_last and quality_min fall while quality stays between."""
    sr = 16000
    x = np.tile(np.concatenate([speech(t, voice=v) for _, t, v in [
        ("a", "Hello there, this is the first test sentence.", "en-us"),
        ("b", "A much longer second item, spoken by another voice, with several clauses in it.", "en-us"),
    ]]), 8)[: 40 * sr]
    noisy = x.copy()
    tail = 3.5 * sr
    rng = np.random.default_rng(0)
    noisy[-int(tail):] = rng.standard_normal(int(tail)).astype(np.float32) * float(np.sqrt(np.mean(x**2)))
    s = build_scorer("quality", {"model": "dnsmos", "hop_seconds": 9.01})
    clean, bad = (o.values for o in s.score([ScoreItem("s", "clean", audio=x), ScoreItem("s", "bad", audio=noisy)]))
    assert clean["dnsmos_windows"] == bad["dnsmos_windows"] == 5  # 0, 9.01, 18.02, 27.03 s and one ending at 40 s
    assert bad["quality_last"] < clean["quality_last"] - 0.25  # measured: 3.03 -> 2.71
    assert bad["quality_min"] == bad["quality_last"] < bad["quality"] < clean["quality"]
    assert clean["quality_min"] <= clean["quality_last"] and clean["quality_min"] <= clean["quality"]
    # 40 s -> two 30 s slices; the second holds the windows centred at 31.5 s (ends at
    # 36.04 s, before the noise) and 35.5 s (the end window): only the latter changed
    assert len(bad["pos_quality"]) == 2
    shift = bad["pos_quality"][1] - clean["pos_quality"][1]
    assert shift == pytest.approx((bad["quality_last"] - clean["quality_last"]) / 2, abs=1e-9)
    assert bad["pos_quality"][0] == pytest.approx(clean["pos_quality"][0], abs=1e-9)  # same first 30 s
    assert all(type(v) is float for v in bad["pos_quality"])


def test_unknown_key_names_the_known_ones():
    with pytest.raises(ConfigError, match="window_seconds"):
        build_scorer("quality", {"model": "dnsmos", "window_seconds": 5})  # a utmos key
    with pytest.raises(ConfigError, match="hop_seconds"):
        build_scorer("quality", {"model": "dnsmos", "hop_seconds": 0})


def test_quality_models_are_registered_by_name():
    from halle_bench.metrics.quality_registry import quality_backend, quality_model_names

    assert quality_model_names() == ["dnsmos", "utmos"]
    assert quality_backend("dnsmos").label == "dnsmos-p835-ovrl"
    assert quality_backend("utmos").label == "utmos22-strong"
    s = build_scorer("quality", {})
    # default hop = the native window: non-overlapping windows plus one ending at the clip's end
    assert s.settings() == {"model": "dnsmos", "position_seconds": 30.0, "hop_seconds": 9.01}


def test_window_progress_is_reported_while_a_batch_is_scored(speech):
    """Fractions of items as windows finish, summing to the batch's item count: a long
    clip's progress moves before the batch returns (issue 18: it sat at 0/N)."""
    from halle_bench.metrics.base import score_with_progress

    x = np.tile(speech("A sentence long enough to tile into a clip of some length."), 12)[: 30 * 16000]
    items = [ScoreItem("s", "a", audio=x), ScoreItem("s", "b", audio=x[: 20 * 16000])]
    s = build_scorer("quality", {"threads": 1})  # one window per call, in order
    steps: list[float] = []
    out = score_with_progress(s, items, steps.append)
    assert all(o.error is None for o in out)
    n_windows = sum(o.values["dnsmos_windows"] for o in out)
    assert n_windows == 4 + 3 and len(steps) == n_windows  # one step per window
    assert sum(steps) == pytest.approx(2.0) and all(v > 0 for v in steps)
    assert s.progress is None  # the hook is the driver's only for the call
    assert out[0].values == build_scorer("quality", {}).score(items[:1])[0].values


def test_score_with_progress_advances_once_for_a_scorer_without_windows():
    from halle_bench.metrics.base import BaseScorer, ScoreOutput, score_with_progress

    class Plain(BaseScorer):
        def score(self, items):
            return [ScoreOutput(values={"n": 1})] * len(items)

    steps: list[float] = []
    score_with_progress(Plain(), [ScoreItem("s", str(i), audio=np.zeros(10, np.float32)) for i in range(3)], steps.append)
    assert steps == [3]


def test_window_batch_and_threads_are_checked():
    for bad in ({"window_batch": 0}, {"threads": "many"}, {"window_batch": 1.5}):
        with pytest.raises(ConfigError, match="positive integer"):
            build_scorer("quality", bad)
    s = build_scorer("quality", {"window_batch": 4, "threads": "auto"})
    assert "window_batch" not in s.settings() and "threads" not in s.settings()  # never change a number
