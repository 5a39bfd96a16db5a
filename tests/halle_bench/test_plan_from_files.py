"""Aggregating, reporting and checking from the run directory's files alone, where no
system can be built and no scorer model exists (issue 18 §2)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from test_executors import HERE, table, write_setup

from halle_bench.cli import main
from halle_bench.config import load_config
from halle_bench.errors import ConfigError
from halle_bench.plan import plan_from_files
from halle_bench.runner import run


@pytest.fixture(autouse=True)
def _plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def _no_models(monkeypatch) -> None:
    def unavailable(*a, **k):
        raise AssertionError("aggregation reached for a system, a scorer or a model file")

    for target in ("halle_bench.plan.build_system", "halle_bench.systems.base.build_system",
                   "halle_bench.metrics.base.build_scorer", "halle_bench.models.resolve"):
        monkeypatch.setattr(target, unavailable)


def test_aggregate_report_check_from_files_alone(tmp_path, monkeypatch, capsys):
    cfg = write_setup(tmp_path)
    out = tmp_path / "out"
    run(load_config(cfg), out)
    ref_utt, ref_lb = table(out), table(out, "leaderboard.csv")
    shutil.copy(out / "leaderboard.csv", tmp_path / "baseline.csv")
    shutil.copy(out / "utterances.csv", tmp_path / "utterances.csv")
    for name in ("utterances.csv", "leaderboard.csv", "report.md"):
        (out / name).unlink(missing_ok=True)
    # Rows say what made them.
    score = json.loads((out / "scores.jsonl").read_text().splitlines()[0])
    gen = json.loads((out / "generation.jsonl").read_text().splitlines()[0])
    assert {"key", "version", "scorer_key", "audio_sha256"} <= set(score) and {"key", "system_key"} <= set(gen)

    _no_models(monkeypatch)
    assert main(["aggregate", str(out)]) == 0
    pd.testing.assert_frame_equal(ref_utt, table(out))
    pd.testing.assert_frame_equal(ref_lb, table(out, "leaderboard.csv"))
    assert (out / "report.md").exists()
    assert main(["report", str(out)]) == 0
    assert main(["check", str(out), "--baseline", str(tmp_path / "baseline.csv"),
                 "--baseline-utterances", str(tmp_path / "utterances.csv")]) == 0
    capsys.readouterr()

    # The keys are recomputed, not trusted: a changed text makes its scores stale.
    manifest = tmp_path / "meta.jsonl"
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    rows[0]["text"] = "a different text now"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res_plan = plan_from_files(out)
    from halle_bench.aggregate import collect

    got = {(r["system"], r["id"]): r for r in collect(res_plan)[0]}
    assert "toy: not scored" in got[("gt", "u1")]["score_errors"]
    assert not got[("gt", "u2")]["score_errors"]


def test_plan_from_files_needs_a_run_directory(tmp_path):
    with pytest.raises(ConfigError, match="env.json"):
        plan_from_files(tmp_path)
