"""A gate a CI user can trust (issue 17): each case of the issue's "Why" list, on the
small sets CI uses. Every test here failed on the gate that compared every column."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from runfixtures import DEFAULT_SYSTEMS, degraded, make_run

from halle_bench.check import CheckInputError, check
from halle_bench.leaderboard import leaderboard_rows

N_BOOT = 400


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Demo-sized runs: 2 utterances per bucket (8 per system), as results/demo."""
    root = tmp_path_factory.mktemp("gate")
    return {"base": make_run(root / "base", seed=0, n_per_bucket=2, audio=False),
            "noise": make_run(root / "noise", seed=1, n_per_bucket=2, audio=False)}


def _cell(r, system, bucket, metric):
    return next(x for x in r.rows if (x.system, x.bucket, x.metric) == (system, bucket, metric))


def test_truncated_long_texts_fail_on_a_small_set(demo, tmp_path):
    """Dropping the end of long texts moved 30-60 s WER 4.3% -> 13.5% (all deletions) and
    the verdict was `ok`, the row not even listed: now the bound fails it, the diff says
    so in percent and shows the deletions."""
    trunc = make_run(tmp_path / "trunc", systems=degraded(drop_tail=0.12), seed=1, n_per_bucket=2, audio=False)
    r = check(trunc, demo["base"], n_boot=N_BOOT)
    row = _cell(r, "halle", "30-60", "wer")
    assert row.verdict == "regressed" and row.bound_crossed and "large-effect bound" in row.reason
    assert ("halle", "30-60") in r.regressed_buckets and ("halle", "60-90") in r.regressed_buckets
    # one line per regressed cell, in the report's units, with bound, p and reason
    line = next(ln for ln in r.markdown.splitlines() if ln.startswith("- **halle 30-60** wer:"))
    assert "% → " in line and " points)" in line and "bound x2 and 5 points" in line and "p(Holm)" in line
    assert "fails without a significance test" in line
    brk = {x.metric: x for x in r.rows if (x.system, x.bucket) == ("halle", "30-60") and x.verdict == "info"}
    assert brk["del_rate"].delta > 0.05 and abs(brk["sub_rate"].delta) < brk["del_rate"].delta


def test_large_wer_jump_fails_in_a_four_utterance_run(tmp_path):
    """WER 3.9% -> 36.3% in `all` (paired, n=4) was "worse (n.s.)" with p(Holm) 1.0."""
    base = make_run(tmp_path / "b", seed=0, n_per_bucket=1, audio=False)
    noisy = tuple(replace(s, extra_sub=0.3, extra_sub_buckets=("3-10", "10-30", "30-60", "60-90"))
                  if s.name == "gt" else s for s in DEFAULT_SYSTEMS)
    cand = make_run(tmp_path / "c", systems=noisy, seed=1, n_per_bucket=1, audio=False)
    r = check(cand, base, n_boot=N_BOOT)
    row = _cell(r, "gt", "all", "wer")
    assert row.baseline < 0.08 and row.candidate > 0.25
    assert row.verdict == "regressed" and row.test == "paired"


def test_family_is_headline_metrics_by_buckets_by_systems(demo):
    r = check(demo["noise"], demo["base"], n_boot=N_BOOT)
    assert not r.regressed
    tested = {x.metric for x in r.rows if x.p_value is not None}
    assert tested == {"wer", "sim", "quality"}
    assert "Holm over the 45 tested comparisons" in r.markdown  # 3 metrics x 5 buckets x 3 systems


def test_identical_numbers_identical_verdicts(tmp_path):
    """wer and wer_macro both 0.049 -> 0.317 in a one-utterance cell: one "regressed",
    the other p = 1.0. Now the second takes the first's verdict, tested once."""
    base = make_run(tmp_path / "b", seed=0, n_per_bucket=1, audio=False)
    cand = make_run(tmp_path / "c", systems=degraded(drop_tail=0.3), seed=0, n_per_bucket=1, audio=False)
    r = check(cand, base, {"wer_macro": "ci"}, n_boot=N_BOOT)
    for bucket in ("3-10", "10-30", "30-60", "60-90"):
        w, m = _cell(r, "halle", bucket, "wer"), _cell(r, "halle", bucket, "wer_macro")
        assert (w.baseline, w.candidate) == pytest.approx((m.baseline, m.candidate))  # one utterance
        assert w.verdict == m.verdict and m.same_as == "wer"
    assert _cell(r, "halle", "60-90", "wer_macro").verdict == "regressed"


def test_an_alias_is_compared_once(demo, tmp_path):
    """dnsmos_ovrl (the same number as quality) regressed in every bucket while quality
    passed; now it is compared once, as quality."""
    for name in ("base", "noise"):
        lb = pd.read_csv(demo[name] / "leaderboard.csv")
        lb["dnsmos_ovrl"] = lb["quality"] - (0.3 if name == "noise" else 0.0)  # as if it were its own number
        (tmp_path / name).mkdir()
        lb.to_csv(tmp_path / name / "leaderboard.csv", index=False)
    r = check(tmp_path / "noise" / "leaderboard.csv", tmp_path / "base" / "leaderboard.csv")
    assert not any(x.metric == "dnsmos_ovrl" for x in r.rows)
    assert "dnsmos_ovrl (= quality)" in r.markdown
    with pytest.raises(CheckInputError, match="same number as 'quality'"):
        check(tmp_path / "noise" / "leaderboard.csv", tmp_path / "base" / "leaderboard.csv", {"dnsmos_ovrl": "0.1"})


def test_fewer_metrics_fail_by_name_or_restrict(demo, tmp_path):
    """A run scored with fewer metrics was refused as incomparable, and with
    --allow-mismatch gave 126 "missing" rows. Now each missing headline metric is one
    named regression per cell with its reason, and --metrics restricts the comparison."""
    lb = pd.read_csv(demo["noise"] / "leaderboard.csv")
    lb = lb.drop(columns=[c for c in lb.columns if c.startswith(("sim", "quality", "n_sim", "n_quality"))])
    lb["scorer_versions"] = "wer@1"
    (tmp_path / "c").mkdir()
    lb.to_csv(tmp_path / "c" / "leaderboard.csv", index=False)
    base = pd.read_csv(demo["base"] / "leaderboard.csv").assign(scorer_versions="quality@1 sim@1 wer@1")
    base.to_csv(tmp_path / "base.csv", index=False)
    r = check(tmp_path / "c" / "leaderboard.csv", tmp_path / "base.csv")  # not refused
    missing = [x for x in r.regressions if x.verdict == "missing"]
    assert {x.metric for x in missing} == {"sim", "quality"}
    assert "the candidate has no `sim` column (no `sim` scorer in the candidate run)" in r.markdown
    assert len(missing) == 2 * 15  # two metrics x 15 cells, nothing else missing
    ok = check(tmp_path / "c" / "leaderboard.csv", tmp_path / "base.csv", metrics=["wer"])
    assert {x.metric for x in ok.rows} == {"wer", "n_failed"} and not any(x.verdict == "missing" for x in ok.rows)
    with pytest.raises(CheckInputError, match="no declared metric 'bogus'"):
        check(tmp_path / "c" / "leaderboard.csv", tmp_path / "base.csv", metrics=["bogus"])


def test_breakdown_for_whichever_wer_moved(demo, tmp_path):
    trunc = make_run(tmp_path / "t", systems=degraded(drop_tail=0.3), seed=1, n_per_bucket=2, audio=False)
    r = check(trunc, demo["base"], n_boot=N_BOOT, metrics=["wer_ok"])
    brk = [x for x in r.rows if x.verdict == "info" and x.reason == "breakdown of wer_ok"]
    assert {x.metric for x in brk} == {"sub_rate", "del_rate", "ins_rate"}
    assert "del_rate" in r.markdown and "points" in r.markdown


# ----------------------------------------------------------------------------- pauses against the reference


def _pause_rows(pauses, ref=True):
    rows, lists = [], {}
    for k in range(4):
        rows.append({"system": "mymodel", "id": f"u{k}", "bucket": "10-30", "status": "ok", "speaker": "s"})
        extra = {"pauses": list(pauses)}
        if ref:
            extra["ref_pauses"] = [0.3, 0.5]
        lists[("mymodel", f"u{k}")] = extra
    return rows, lists


def _lb(tmp_path, name, pauses, ref=True):
    rows, lists = _pause_rows(pauses, ref)
    lb = pd.DataFrame(leaderboard_rows(rows, [("mymodel", "command")], 0, 0, lists))
    (tmp_path / name).mkdir()
    lb.to_csv(tmp_path / name / "leaderboard.csv", index=False)
    return tmp_path / name / "leaderboard.csv", lb


def test_pauses_measured_against_the_reference_audio(tmp_path):
    """pause_w1 was NaN whenever the run had no ground-truth system (`--systems mymodel`,
    how CI runs) and when noise filled the pauses; now it is measured against the
    manifest's reference audio, "no pauses" is a (worse) value, and a value that cannot be
    computed says why."""
    base, lb = _lb(tmp_path, "base", [0.3, 0.5])
    assert lb.loc[lb.bucket == "all", "pause_w1"].iloc[0] == pytest.approx(0.0)
    filled, lbf = _lb(tmp_path, "filled", [])  # noise filled every pause: none detected
    assert lbf.loc[lbf.bucket == "all", "pause_w1"].iloc[0] == pytest.approx(0.4)  # a value: mean ref pause
    r = check(filled, base, {"pause_w1": "0.1"})
    assert {(x.bucket, x.verdict) for x in r.rows if x.metric == "pause_w1"} == {("10-30", "regressed"),
                                                                                  ("all", "regressed")}
    noref, lbn = _lb(tmp_path, "noref", [0.3, 0.5], ref=False)
    assert "pause_w1 not computed: no reference audio" in lbn.loc[lbn.bucket == "all", "notes"].iloc[0]
    r = check(noref, base, {"pause_w1": "0.1"})
    miss = [x for x in r.rows if x.metric == "pause_w1"]
    assert all(x.verdict == "missing" and "no reference audio" in x.reason for x in miss)


def test_same_run_passes_and_report_is_deterministic(demo, tmp_path):
    shutil.copytree(demo["base"], tmp_path / "same")
    r = check(tmp_path / "same", demo["base"], n_boot=N_BOOT)
    assert not r.regressed and not r.improvements
    assert all(x.verdict in ("ok", "info") for x in r.rows)
    assert r.markdown == check(tmp_path / "same", demo["base"], n_boot=N_BOOT).markdown
    assert np.isfinite([x.baseline for x in r.rows]).all()


def test_rate_and_pause_tolerances_are_accepted():
    """`--tolerance speaking_rate=10%` was refused ("no known direction")."""
    from halle_bench.check import parse_tolerances

    t = parse_tolerances(["speaking_rate=10%", "duration_ratio=0.1", "n_pauses=1", "pause_w1=0.1"])
    assert set(t) == {"speaking_rate", "duration_ratio", "n_pauses", "pause_w1"}


def test_another_version_of_an_ungated_scorer_is_a_note(demo, tmp_path):
    base = pd.read_csv(demo["base"] / "leaderboard.csv").assign(scorer_versions="longform@2 quality@1 sim@1 wer@1",
                                                                pause_w1=0.1)
    base.to_csv(tmp_path / "b.csv", index=False)
    cand = pd.read_csv(demo["base"] / "leaderboard.csv").assign(scorer_versions="longform@3 quality@1 sim@1 wer@1",
                                                                pause_w1=0.1)
    (tmp_path / "c").mkdir()
    cand.to_csv(tmp_path / "c" / "c.csv", index=False)
    r = check(tmp_path / "c" / "c.csv", tmp_path / "b.csv")
    assert not r.regressed and "nothing gated comes from it: scorer_versions: baseline `longform@2`" in r.markdown
    from halle_bench.check import CheckMismatchError

    with pytest.raises(CheckMismatchError, match="longform@2"):  # gated once a tolerance names its metric
        check(tmp_path / "c" / "c.csv", tmp_path / "b.csv", {"pause_w1": "0.1"})
