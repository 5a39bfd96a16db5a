"""One declaration per metric (issue 17): a metric declared in this test module (a plugin)
gets its leaderboard column, report column, plot and gate from its declaration alone."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from runfixtures import make_run

from halle_bench.check import check
from halle_bench.leaderboard import leaderboard_rows
from halle_bench.metric_decl import HEADLINE, Bound, Metric
from halle_bench.metric_registry import (get_metric, leaderboard_columns, metric_declarations, register_metric,
                                         unregister_metric)
from halle_bench.plots import figures
from halle_bench.report_tables import display_columns, summary_rows

PLUGIN = Metric("crispness", ("crispness",), direction="higher", scorer="crisp", role=HEADLINE, ci="mean",
                count_column="n_crisp", sd_prior=0.05, bound=Bound(abs=0.2), plot="points", digits=2,
                label="crispness (plugin)", short="crisp")
RATE = Metric("syllable_rate", ("syllable_rate",), direction="target", target="ref_syllable_rate", scorer="crisp",
              digits=2, unit="syl/s", label="syllables per second", short="syl rate")


@pytest.fixture
def plugin():
    register_metric(PLUGIN)
    register_metric(RATE)
    yield PLUGIN
    unregister_metric(PLUGIN.name)
    unregister_metric(RATE.name)


def _rows(shift: float = 0.0, rate: float = 2.6, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for b in ("3-10", "10-30"):
        for k in range(6):
            rows.append({"system": "mine", "id": f"{b}-{k}", "bucket": b, "speaker": f"s{k % 3}", "status": "ok",
                         "crispness": 0.7 + shift + rng.normal(0, 0.01), "syllable_rate": rate + rng.normal(0, 0.02),
                         "ref_syllable_rate": 2.6, "undeclared_score": 5.0 + shift * 10})
    return rows


def _write(tmp, rows, name):
    d = tmp / name
    d.mkdir()
    lb = pd.DataFrame(leaderboard_rows(rows, [("mine", "python")], 200, 0))
    lb.to_csv(d / "leaderboard.csv", index=False)
    pd.DataFrame(rows).to_csv(d / "utterances.csv", index=False)
    return d, lb


def test_plugin_metric_reaches_every_consumer(plugin, tmp_path):
    assert plugin in metric_declarations() and "crispness" in leaderboard_columns()
    assert "syllable_rate_dev" in leaderboard_columns()  # a target metric's gated deviation
    base, lb = _write(tmp_path, _rows(), "base")
    all_row = lb[lb.bucket == "all"].iloc[0]
    assert all_row.crispness == pytest.approx(0.7, abs=0.01) and all_row.n_crisp == 12
    assert math.isfinite(all_row.crispness_ci_low) and all_row.syllable_rate_dev < 0.05
    # report and console: the declared header and format
    headers = [h for h, _ in display_columns(lb)]
    assert "crisp [95% CI]" in headers and "syl rate" in headers
    assert "crisp [95% CI]" in summary_rows(lb, 100)[0]
    # plots: a points panel titled by the label
    fig = figures(lb, None, None)["sim_quality_crispness_by_bucket"]
    assert [a.get_title() for a in fig.axes] == ["crispness (plugin)"]
    # the gate: a headline metric, compared in every cell; a drop beyond its bound fails
    worse, _ = _write(tmp_path, _rows(shift=-0.25, seed=1), "worse")
    r = check(worse, base / "leaderboard.csv", n_boot=200)
    reg = {(x.bucket, x.metric) for x in r.regressions}
    assert reg == {("3-10", "crispness"), ("10-30", "crispness"), ("all", "crispness")}
    assert all("large-effect bound" in x.reason for x in r.regressions)
    # an undeclared column moved 10x as much and is never gated nor shown
    assert "undeclared_score" in pd.read_csv(worse / "leaderboard.csv").columns
    assert not any(x.metric == "undeclared_score" for x in r.rows)
    assert "undeclared_score" not in headers


def test_target_metric_gated_toward_the_reference(plugin, tmp_path):
    """`--tolerance speaking_rate=10%` was refused ("no known direction"): now a rate that
    moves away from the reference audio's own rate fails, and a closer one passes (a
    plugin's syllable rate here; longform's speaking_rate is declared the same way)."""
    base, _ = _write(tmp_path, _rows(rate=2.6), "base")
    fast, _ = _write(tmp_path, _rows(rate=3.3, seed=1), "fast")
    r = check(fast, base / "leaderboard.csv", {"syllable_rate": "10%"}, n_boot=200)
    rows = [x for x in r.rows if x.metric == "syllable_rate_dev"]
    assert rows and all(x.verdict == "regressed" for x in rows)
    assert rows[0].tolerance == pytest.approx(0.1 * 2.6, rel=0.02)  # 10% of the baseline's rate, in syl/s
    same, _ = _write(tmp_path, _rows(rate=2.6, seed=2), "same")
    assert not check(same, base / "leaderboard.csv", {"syllable_rate": "10%"}, n_boot=200).regressed


def test_a_column_has_one_meaning():
    metric_declarations()  # the built-in scorers' declarations loaded
    with pytest.raises(ValueError, match="already declared by scorer 'wer'"):
        register_metric(Metric("wer", ("wer",), direction="lower", scorer="my_asr"))
    assert get_metric("wer").scorer == "wer"


def test_declarations_are_validated():
    with pytest.raises(ValueError, match="target"):
        Metric("x", ("x",), direction="target")
    with pytest.raises(ValueError, match="alias"):
        Metric("x", ("x",), role="alias")
    with pytest.raises(ValueError, match="kind"):
        Metric("x", ("x",), kind="median")


def test_built_in_declarations_live_with_their_scorers():
    """Each built-in metric is declared by the module that produces its columns."""
    where = {"wer": "wer", "sim": "sim", "quality": "quality", "pesq": "intrusive", "pause_w1": "longform",
             "rtf": "generation"}
    for name, scorer in where.items():
        assert get_metric(name).scorer == scorer
    assert get_metric("dnsmos_ovrl").alias_of == "quality"
    heads = [m.name for m in metric_declarations() if m.role == HEADLINE]
    assert heads == ["wer", "sim", "quality"]
    assert get_metric("wer").bound == Bound(abs=0.05, factor=2.0)


def test_bound_rule():
    b = Bound(abs=0.05, factor=2.0)
    assert b.crossed(0.043, 0.135, higher_is_better=False)  # truncation of the 30-60 s bucket
    assert not b.crossed(0.20, 0.26, higher_is_better=False)  # +6 points but not doubled
    assert not b.crossed(0.01, 0.04, higher_is_better=False)  # quadrupled but +3 points
    assert Bound(abs=0.15).crossed(0.85, 0.65, higher_is_better=True)
    assert b.describe(100, "%") == "x2 and 5 points"


def test_run_fixture_leaderboard_has_declared_columns(tmp_path):
    lb = pd.read_csv(make_run(tmp_path / "r", audio=False) / "leaderboard.csv")
    assert list(lb.columns[:6]) == ["system", "bucket", "n", "n_failed", "n_score_errors", "audio_seconds"]
    assert {"wer", "wer_ci_low", "sim", "quality", "n_wer", "n_ref_words"} <= set(lb.columns)
