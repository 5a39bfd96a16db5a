"""Clustered bootstrap, per-cell seeds, no CI under 5 utterances; the metric registry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from halle_bench.cell_stats import MIN_CI_N, cell_seed, cluster_weights, percentile_ci
from halle_bench.leaderboard import leaderboard_rows
from halle_bench.metric_registry import METRICS, direction, leaderboard_columns, sufficient, weighted_value


def _mean_ci(x, speakers, seed=0, n_boot=4000):
    suff = np.stack([x, np.ones_like(x)], axis=1)
    return percentile_ci(lambda w: weighted_value(METRICS["sim"], suff, w), speakers, len(x), n_boot, seed)


def test_cluster_weights_resample_speakers_then_utterances():
    rng = np.random.default_rng(0)
    spk = ["a"] * 3 + ["b"] * 2 + ["c"] * 5
    w = cluster_weights(spk, 10, 500, rng)
    assert w.shape == (500, 10) and np.all(w == np.round(w))
    # each drawn speaker brings as many utterance draws as it has utterances
    totals = np.stack([w[:, :3].sum(1) / 3, w[:, 3:5].sum(1) / 2, w[:, 5:].sum(1) / 5], axis=1)
    assert np.allclose(totals, np.round(totals)) and np.all(totals.sum(1) == 3)
    assert (totals == 0).any()  # whole speakers drop out of some resamples
    plain = cluster_weights(None, 10, 200, np.random.default_rng(0))
    assert np.all(plain.sum(1) == 10)


def test_clustered_ci_is_wider_when_speakers_differ():
    # 4 speakers with very different levels, 6 utterances each, little noise within a speaker
    rng = np.random.default_rng(1)
    levels = [0.3, 0.5, 0.7, 0.9]
    x = np.array([lv + rng.normal(0, 0.01) for lv in levels for _ in range(6)])
    spk = [f"s{i}" for i in range(4) for _ in range(6)]
    lo_c, hi_c = _mean_ci(x, spk)
    lo_u, hi_u = _mean_ci(x, None)
    assert (hi_c - lo_c) > 1.5 * (hi_u - lo_u)
    # unknown speakers are their own clusters: the same as the plain bootstrap
    assert _mean_ci(x, [None] * len(x)) == (lo_u, hi_u)


def test_no_ci_under_five_and_per_cell_seeds():
    x = np.array([0.1, 0.9, 0.5, 0.4])
    assert all(math.isnan(v) for v in _mean_ci(x, None))
    assert MIN_CI_N == 5
    assert cell_seed(0, "a", "3-10", "wer") != cell_seed(0, "a", "3-10", "sim")
    assert cell_seed(0, "a", "3-10", "wer") != cell_seed(1, "a", "3-10", "wer")
    assert cell_seed(0, "a", "3-10", "wer") == cell_seed(0, "a", "3-10", "wer")


def test_leaderboard_cis_differ_per_cell_and_repeat():
    rows = [{"system": s, "id": f"u{i}", "bucket": "3-10", "speaker": f"s{i % 3}", "status": "ok",
             "sim": 0.5 + 0.03 * ((i * 7) % 5)} for s in ("a", "b") for i in range(12)]
    lb = leaderboard_rows(rows, [("a", "x"), ("b", "x")], 300, 0)
    a, b = lb[0], lb[2]
    assert a["sim"] == b["sim"]  # the same values ...
    assert (a["sim_ci_low"], a["sim_ci_high"]) != (b["sim_ci_low"], b["sim_ci_high"])  # ... resampled apart
    assert leaderboard_rows(rows, [("a", "x"), ("b", "x")], 300, 0) == lb


def test_registry_declares_the_interface_columns():
    cols = leaderboard_columns()
    for c in ("wer", "wer_ok", "wer_macro", "cer", "sub_rate", "del_rate", "ins_rate", "sim", "sim_min", "sim_last",
              "sim_ref", "sim_ref_min", "sim_ref_last", "quality", "quality_min", "quality_last", "clip_fraction",
              "asr_cuts", "asr_cut_db", "rtf", "startup_seconds", "n_sim", "n_quality", "n_wer", "scorer_versions",
              "sim_ref_ci_low", "notes", "n_score_errors"):
        assert c in cols, c
    assert direction("wer") is False and direction("sim_ref") is True and direction("asr_cuts") is None
    assert METRICS["wer"].counts_failures and not METRICS["wer_ok"].counts_failures
    assert not METRICS["sim"].counts_failures and not METRICS["wer_median"].mergeable


def test_sufficient_statistics_merge_across_shards():
    rng = np.random.default_rng(0)
    data = {"subs": rng.integers(0, 5, 40), "dels": rng.integers(0, 3, 40), "ins": rng.integers(0, 2, 40),
            "n_ref_words": rng.integers(10, 60, 40)}
    m = METRICS["wer"]
    whole = sufficient(m, data)
    shards = [sufficient(m, {k: v[i:i + 10] for k, v in data.items()}) for i in range(0, 40, 10)]
    merged = np.sum([s.sum(0) for s in shards], axis=0)
    assert merged[0] / merged[1] == pytest.approx(weighted_value(m, whole, np.ones(40)))
