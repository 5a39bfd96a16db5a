"""The regression gate: noise passes, a real degradation fails and names its buckets."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from runfixtures import DEFAULT_SYSTEMS, degraded, make_run

from halle_bench.check import CheckInputError, Tolerance, check, parse_tolerances
from halle_bench.check_stats import ci_welch_p, holm, paired_bootstrap
from halle_bench.errors import ConfigError

N_BOOT = 500


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "base": make_run(root / "base", seed=0, audio=False),
        "noise": make_run(root / "noise", seed=1, audio=False),
        "degraded": make_run(root / "degraded", systems=degraded(), seed=1, audio=False),
    }


def _leaderboard_only(run, dest):
    dest.mkdir(parents=True, exist_ok=True)
    return shutil.copy(run / "leaderboard.csv", dest / "leaderboard-only.csv")


def test_noise_only_passes(runs):
    r = check(runs["noise"], runs["base"] / "leaderboard.csv", n_boot=N_BOOT)
    assert r.paired
    assert not r.regressed and r.exit_code == 0
    assert r.markdown.startswith("## halle-bench check: PASSED")
    gated = [x for x in r.rows if x.verdict not in ("info", "unchecked")]
    # the declared headline metrics (and failures) are gated; diagnostics are named in a note
    assert {x.metric for x in gated} == {"wer", "sim", "quality", "n_failed"}
    assert "compared, not gated" in r.markdown and "wer_macro" in r.markdown
    assert all(x.test == "paired" for x in gated if x.metric != "n_failed")
    # some cells do move by noise beyond the CI-derived tolerance: the test is what keeps them from failing
    assert any(x.verdict in ("worse (n.s.)", "better (n.s.)") for x in r.rows)


def test_degradation_fails_and_names_buckets(runs):
    r = check(runs["degraded"], runs["base"] / "leaderboard.csv", n_boot=N_BOOT)
    assert r.regressed and r.exit_code == 1
    assert r.regressed_buckets == [("halle", "30-60"), ("halle", "60-90"), ("halle", "all")]
    assert all(x.significant for x in r.regressions)
    assert {x.metric for x in r.regressions} >= {"wer"}
    assert r.markdown.startswith("## halle-bench check: FAILED")
    assert "halle 30-60 (wer" in r.markdown and "halle 60-90 (wer" in r.markdown
    # the breakdown says what moved: deletions
    info = {(x.bucket, x.metric): x for x in r.rows if x.verdict == "info"}
    assert info[("60-90", "del_rate")].delta > 0.25
    assert info[("60-90", "sub_rate")].delta < 0.05


def test_improvement_is_reported_not_failed(runs):
    r = check(runs["base"], runs["degraded"] / "leaderboard.csv", n_boot=N_BOOT)
    assert not r.regressed
    assert {(x.system, x.bucket) for x in r.improvements if x.metric == "wer"} == {
        ("halle", "30-60"), ("halle", "60-90"), ("halle", "all")}
    assert "improved" in r.markdown


def test_leaderboards_only_use_ci_test(runs, tmp_path):
    base_csv = _leaderboard_only(runs["base"], tmp_path / "b")
    noise = check(_leaderboard_only(runs["noise"], tmp_path / "n"), base_csv)
    assert not noise.paired and not noise.regressed
    assert {x.test for x in noise.rows if x.metric == "wer"} == {"ci"}
    assert "paired test unavailable" in noise.markdown
    bad = check(_leaderboard_only(runs["degraded"], tmp_path / "d"), base_csv)
    assert bad.regressed_buckets == [("halle", "30-60"), ("halle", "60-90"), ("halle", "all")]


def test_baseline_utterances_beside_or_explicit(runs, tmp_path):
    # results/demo-leaderboard.csv + results/demo-utterances.csv: found by name
    shutil.copy(runs["base"] / "leaderboard.csv", tmp_path / "demo-leaderboard.csv")
    shutil.copy(runs["base"] / "utterances.csv", tmp_path / "demo-utterances.csv")
    assert check(runs["noise"], tmp_path / "demo-leaderboard.csv", n_boot=N_BOOT).paired
    shutil.copy(runs["base"] / "leaderboard.csv", tmp_path / "baseline.csv")
    assert not check(runs["noise"], tmp_path / "baseline.csv", n_boot=N_BOOT).paired
    r = check(runs["noise"], tmp_path / "baseline.csv", baseline_utterances=tmp_path / "demo-utterances.csv",
              n_boot=N_BOOT)
    assert r.paired


def test_explicit_tolerances(runs):
    base = runs["base"] / "leaderboard.csv"
    wer_family = ("wer", "wer_ok", "wer_macro", "cer")
    loose = check(runs["degraded"], base, {m: "0.5" for m in wer_family}, n_boot=N_BOOT)
    assert not loose.regressed  # +0.27..0.29 is within an absolute 0.5
    rel = check(runs["degraded"], base, {"wer": "50%"}, n_boot=N_BOOT)
    row = next(x for x in rel.rows if (x.system, x.bucket, x.metric) == ("halle", "60-90", "wer"))
    assert row.tolerance == pytest.approx(0.5 * row.baseline) and row.tolerance_rule == "50%"
    assert rel.regressed
    off = check(runs["degraded"], base, {m: "off" for m in wer_family}, n_boot=N_BOOT)
    assert not any(x.metric == "wer" for x in off.rows) and not off.regressed
    # the sub/del/ins breakdown is shown, and gated only when given a tolerance
    d = check(runs["degraded"], base, {"del_rate": "0.05"}, n_boot=N_BOOT)
    assert ("halle", "60-90") in {(x.system, x.bucket) for x in d.regressions if x.metric == "del_rate"}


def test_failures_are_gated(runs, tmp_path):
    sysm = tuple(replace(s, fail_ids=tuple(f"u60-90-{k:02d}" for k in range(8))) if s.name == "valle" else s
                 for s in DEFAULT_SYSTEMS)
    cand = make_run(tmp_path / "failing", systems=sysm, seed=1, audio=False)
    r = check(cand, runs["base"] / "leaderboard.csv", n_boot=N_BOOT)
    assert ("valle", "60-90") in r.regressed_buckets
    fr = next(x for x in r.rows if (x.system, x.bucket, x.metric) == ("valle", "60-90", "n_failed"))
    assert fr.verdict == "regressed" and fr.candidate == 8 and fr.baseline == 1
    # the all-failed bucket's WER is 1.0, not an empty cell that would skip the comparison
    w = next(x for x in r.rows if (x.system, x.bucket, x.metric) == ("valle", "60-90", "wer"))
    assert w.candidate == 1.0 and w.verdict in ("regressed", "worse (n.s.)")


def test_deterministic(runs):
    a = check(runs["noise"], runs["base"] / "leaderboard.csv", n_boot=N_BOOT, seed=3)
    b = check(runs["noise"], runs["base"] / "leaderboard.csv", n_boot=N_BOOT, seed=3)
    assert a.markdown == b.markdown
    assert [x.p_value for x in a.rows] == [x.p_value for x in b.rows]


# ----------------------------------------------------------------------------- bad input


def test_parse_tolerances():
    t = parse_tolerances(["wer=0.01", "sim=5%", " quality = ci ", "rtf=off"])
    assert t == {"wer": Tolerance("abs", 0.01), "sim": Tolerance("rel", 0.05), "quality": Tolerance("ci"),
                 "rtf": Tolerance("off")}
    for bad in ("wer", "wer=", "=0.1", "wer=abc", "wer=-1", "wer=nan", "bogus_metric=0.1"):
        with pytest.raises(CheckInputError):
            parse_tolerances([bad])
    assert issubclass(CheckInputError, ConfigError)  # the CLI maps ConfigError to exit 2


def test_missing_columns_named(runs, tmp_path):
    lb = pd.read_csv(runs["base"] / "leaderboard.csv")
    lb.drop(columns=["bucket"]).to_csv(tmp_path / "nobucket.csv", index=False)
    with pytest.raises(CheckInputError, match="missing columns: bucket"):
        check(runs["noise"], tmp_path / "nobucket.csv")
    # a metric the baseline has and the candidate lacks is a named regression, not a pass
    cand = pd.read_csv(runs["noise"] / "leaderboard.csv").drop(columns=["sim", "sim_ci_low", "sim_ci_high"])
    cand.to_csv(tmp_path / "nosim.csv", index=False)
    r = check(tmp_path / "nosim.csv", runs["base"] / "leaderboard.csv")
    assert r.exit_code == 1 and {x.metric for x in r.regressions} == {"sim"}
    assert all(x.verdict == "missing" for x in r.regressions)
    assert "gt 3-10 (sim missing)" in r.markdown
    with pytest.raises(CheckInputError, match="missing columns for the tolerances given: pesq"):
        check(runs["noise"], runs["base"] / "leaderboard.csv", {"pesq": "0.1"})


def test_no_overlap_says_which(runs, tmp_path):
    lb = pd.read_csv(runs["base"] / "leaderboard.csv")
    lb.assign(system=lb.system + "-old").to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(CheckInputError) as e:
        check(runs["noise"], tmp_path / "other.csv")
    msg = str(e.value)
    assert "no overlapping (system, bucket)" in msg and "gt-old" in msg and "'halle'" in msg and "60-90" in msg


def test_partial_overlap_is_noted(runs, tmp_path):
    lb = pd.read_csv(runs["base"] / "leaderboard.csv")
    lb[lb.bucket != "60-90"].to_csv(tmp_path / "short.csv", index=False)
    r = check(runs["noise"], tmp_path / "short.csv", n_boot=N_BOOT)
    assert "in the candidate only (not compared)" in r.markdown and "halle/60-90" in r.markdown


def test_missing_paths(tmp_path, runs):
    with pytest.raises(CheckInputError, match="candidate not found"):
        check(tmp_path / "nope.csv", runs["base"] / "leaderboard.csv")
    with pytest.raises(CheckInputError, match="without leaderboard.csv"):
        check(tmp_path, runs["base"] / "leaderboard.csv")
    with pytest.raises(CheckInputError, match="duplicate|several rows"):
        pd.concat([pd.read_csv(runs["base"] / "leaderboard.csv")] * 2).to_csv(tmp_path / "dup.csv", index=False)
        check(runs["noise"], tmp_path / "dup.csv")


# ----------------------------------------------------------------------------- statistics


def test_holm():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == []


def test_paired_bootstrap_matches_paired_t_test_for_means():
    from scipy.stats import ttest_rel

    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.05, 20)
    b = a + rng.normal(0.02, 0.04, 20)
    res = paired_bootstrap(a[:, None], b[:, None], lambda x: x[..., 0].mean(-1), np.random.default_rng(1), 20000)
    assert res.diff == pytest.approx(b.mean() - a.mean())
    ref = ttest_rel(b, a)
    assert res.p == pytest.approx(ref.pvalue, rel=0.1)
    assert paired_bootstrap(a[:1, None], b[:1, None], lambda x: x[..., 0].mean(-1), rng, 100) is None


def test_paired_bootstrap_ratio_statistic():
    # corpus WER = errors / words, resampled as a ratio of sums, not a mean of ratios
    base = np.array([[1, 10], [0, 50], [5, 20]], dtype=float)
    cand = np.array([[2, 10], [1, 50], [5, 20]], dtype=float)
    stat = lambda x: x[..., 0].sum(-1) / x[..., 1].sum(-1)  # noqa: E731
    res = paired_bootstrap(base, cand, stat, np.random.default_rng(0), 200)
    assert res.diff == pytest.approx(8 / 80 - 6 / 80)
    same = paired_bootstrap(base, base, stat, np.random.default_rng(0), 200)
    assert same.diff == 0 and same.p == 1.0


def test_ci_welch_p():
    # equal CIs half-width 1.96 -> se 1 each (large n): delta 0 -> p 1, delta 2*sqrt(2) -> ~0.0455
    assert ci_welch_p(0.0, 1.96, 1e6, 1.96, 1e6) == pytest.approx(1.0)
    assert ci_welch_p(2 * math.sqrt(2), 1.96, 1e6, 1.96, 1e6) == pytest.approx(0.0455, abs=1e-3)
    # small buckets: wider tails than the normal
    assert ci_welch_p(2 * math.sqrt(2), 1.96, 8, 1.96, 8) > 0.05


# ----------------------------------------------------------------------------- issue 9: a gate that cannot be fooled


def test_one_new_failure_fails_without_significance(runs, tmp_path):
    # the landed gate said "worse (n.s.)" and PASSED for this
    sysm = tuple(replace(s, fail_ids=s.fail_ids + ("u60-90-05",)) if s.name == "halle" else s
                 for s in DEFAULT_SYSTEMS)
    cand = make_run(tmp_path / "one-more", systems=sysm, seed=0, audio=False)
    r = check(cand, runs["base"] / "leaderboard.csv", n_boot=N_BOOT)
    assert r.exit_code == 1
    row = next(x for x in r.regressions if x.metric == "n_failed" and x.bucket == "60-90")
    assert (row.system, row.baseline, row.candidate) == ("halle", 0, 1)
    assert "| halle | 60-90 | n_failed ↓ | 0 | 1 | +1 |" in r.markdown
    # the user may tolerate one new failure per cell
    assert not any(x.metric == "n_failed" for x in check(cand, runs["base"] / "leaderboard.csv", {"n_failed": "1"},
                                                          n_boot=N_BOOT).regressions)


def test_wer_gated_from_contract_columns_alone(runs, tmp_path):
    """No wer_ci_* columns and no utterances: a WER that triples in one bucket still fails."""
    base = pd.read_csv(runs["base"] / "leaderboard.csv")
    ci_cols = [c for c in base.columns if "_ci_" in c]
    base.drop(columns=ci_cols).to_csv(tmp_path / "base.csv", index=False)
    cand = base.drop(columns=ci_cols).copy()
    cell = (cand.system == "halle") & (cand.bucket == "30-60")
    cand.loc[cell, "wer"] = 3 * cand.loc[cell, "wer"]
    (tmp_path / "c").mkdir()
    cand.to_csv(tmp_path / "c" / "cand.csv", index=False)
    r = check(tmp_path / "c" / "cand.csv", tmp_path / "base.csv")
    assert r.regressed_buckets == [("halle", "30-60")]
    row = r.regressions[0]
    assert row.metric == "wer" and row.tolerance_rule == "n" and 0 < row.tolerance < row.delta
    # unchanged leaderboards pass
    assert not check(tmp_path / "base.csv", tmp_path / "base.csv").regressed


def test_different_scoring_is_refused_unless_allowed(runs, tmp_path):
    from halle_bench.check import CheckMismatchError

    cand = pd.read_csv(runs["noise"] / "leaderboard.csv")
    cand["asr_model"] = "whisper-tiny.en"
    cand.to_csv(tmp_path / "other-asr.csv", index=False)
    with pytest.raises(CheckMismatchError, match="asr_model: baseline `whisper-base` vs candidate `whisper-tiny.en`"):
        check(tmp_path / "other-asr.csv", runs["base"] / "leaderboard.csv")
    r = check(tmp_path / "other-asr.csv", runs["base"] / "leaderboard.csv", allow_mismatch=True)
    assert "not comparable, compared anyway (--allow-mismatch)" in r.markdown and "whisper-tiny.en" in r.markdown
    for col, val in (("normalizer", "seed-tts-eval@1"), ("sim_model", "wavlm-tdnn"), ("quality_model", "utmos")):
        c = pd.read_csv(runs["noise"] / "leaderboard.csv")
        c[col] = val
        c.to_csv(tmp_path / f"{col}.csv", index=False)
        with pytest.raises(CheckMismatchError, match=col):
            check(tmp_path / f"{col}.csv", runs["base"] / "leaderboard.csv")
    # scorer versions: a baseline that records them refuses a candidate made by other maths
    b = pd.read_csv(runs["base"] / "leaderboard.csv").assign(scorer_versions="quality@1 sim@1 wer@2")
    b.to_csv(tmp_path / "bv.csv", index=False)
    pd.read_csv(runs["noise"] / "leaderboard.csv").assign(scorer_versions="quality@1 sim@1 wer@3").to_csv(
        tmp_path / "cv.csv", index=False)
    with pytest.raises(CheckMismatchError, match="scorer_versions"):
        check(tmp_path / "cv.csv", tmp_path / "bv.csv")
    # a candidate that drops the column cannot dodge the comparison
    pd.read_csv(runs["noise"] / "leaderboard.csv").drop(columns=["asr_model"]).to_csv(tmp_path / "noasr.csv",
                                                                                      index=False)
    with pytest.raises(CheckMismatchError, match="asr_model"):
        check(tmp_path / "noasr.csv", runs["base"] / "leaderboard.csv")


def test_cli_exit_codes_for_mismatch_and_new_failure(runs, tmp_path, capsys):
    from halle_bench.cli import main

    cand = pd.read_csv(runs["noise"] / "leaderboard.csv").assign(normalizer="none@1")
    cand.to_csv(tmp_path / "c.csv", index=False)
    base = str(runs["base"] / "leaderboard.csv")
    assert main(["check", str(tmp_path / "c.csv"), "--baseline", base]) == 2
    assert "normalizer" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "c.csv"), "--baseline", base, "--allow-mismatch"]) == 0
    fail = pd.read_csv(runs["base"] / "leaderboard.csv")
    fail.loc[(fail.system == "gt") & (fail.bucket == "3-10"), "n_failed"] = 1
    fail.to_csv(tmp_path / "f.csv", index=False)
    assert main(["check", str(tmp_path / "f.csv"), "--baseline", base]) == 1
    assert "gt 3-10 (n_failed)" in capsys.readouterr().out


def test_diagnostics_gated_only_when_named_and_undeclared_never(runs, tmp_path):
    """pause_w1 and dnsmos_sig are declared diagnostics: listed by default, gated with a
    tolerance; an undeclared column (a plugin's `my_score`) is never gated; an untimed
    system's rtf that disappears is no regression."""
    base = pd.read_csv(runs["base"] / "leaderboard.csv").assign(pause_w1=0.2, dnsmos_sig=3.0, my_score=1.0)
    base.to_csv(tmp_path / "b.csv", index=False)
    cand = pd.read_csv(runs["base"] / "leaderboard.csv").assign(pause_w1=0.35, dnsmos_sig=2.5, my_score=0.1)
    cand.loc[cand.system == "gt", "rtf"] = np.nan
    (tmp_path / "c").mkdir()
    cand.to_csv(tmp_path / "c" / "c.csv", index=False)
    r = check(tmp_path / "c" / "c.csv", tmp_path / "b.csv")
    assert not r.regressed and "pause_w1" in r.markdown and "compared, not gated" in r.markdown
    assert not any(x.metric == "my_score" for x in r.rows)
    named = check(tmp_path / "c" / "c.csv", tmp_path / "b.csv", {"pause_w1": "0.1", "dnsmos_sig": "5%"})
    assert {x.metric for x in named.regressions} == {"pause_w1", "dnsmos_sig"}
    assert not [x for x in named.rows if x.verdict == "unchecked"]
    rule = {x.metric: x.tolerance_rule for x in named.rows}
    assert rule["pause_w1"] == "0.1" and rule["dnsmos_sig"] == "5%"
    with pytest.raises(CheckInputError, match="no declared metric 'my_score'"):
        check(tmp_path / "c" / "c.csv", tmp_path / "b.csv", {"my_score": "0.1"})
