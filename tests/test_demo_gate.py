"""Dogfood: the reduced embedded demo, gated by `halle-bench check` against the
committed baseline in results/demo-ci/. A change that moves the demo's numbers
beyond run-to-run noise fails here; update the baseline on purpose with
scripts/update-demo-baselines.sh and commit the diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from halle_bench.cli import main
from halle_bench.espeak import espeak_available

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "results" / "demo-ci" / "leaderboard.csv"


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")
def test_reduced_demo_matches_committed_baseline(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["run", "--out", str(out), "--limit", "4", "--quiet"]) == 0
    capsys.readouterr()
    rc = main(["check", str(out), "--baseline", str(BASELINE),
               "--baseline-utterances", str(BASELINE.with_name("utterances.csv"))])
    report = capsys.readouterr().out
    assert rc == 0, report
