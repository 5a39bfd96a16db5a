"""How often does `halle-bench check` fail on pure noise, and does it catch a real degradation?

Builds one synthetic baseline run and N candidate runs that differ from it only by noise
(different seeds; tests/halle_bench/runfixtures.py), checks each candidate against the
baseline in paired mode (per-utterance rows on both sides) and in leaderboard-only mode,
and prints the share of noise runs that fail (the gate's flake rate), the share of raw
p-values below 0.05 / 0.01 (calibration: should be about 5% / 1%), and whether a run
that drops the last third of each long text is caught. It also prints, for comparison,
what the straightforward gate would do: "fail when worse than the baseline's CI
half-width", with no test and no multiple-comparison correction.

    python benchmarks/check_calibration.py [N=30]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "halle_bench"))
from runfixtures import degraded, make_run  # noqa: E402

from halle_bench.check import check, higher_is_better  # noqa: E402


def naive_fails(result) -> bool:
    """Fail when any CI-gated metric is worse than the baseline's own CI half-width."""
    for r in result.rows:
        if r.tolerance_rule == "ci" and r.verdict != "info":
            hw = r.tolerance / np.sqrt(2)  # undo the two-sided widening: the baseline half-width alone
            worse = -r.delta if higher_is_better(r.metric) else r.delta
            if worse > hw:
                return True
    return False


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        base = make_run(root / "base", seed=100, audio=False)
        lb_only = root / "base-lb" / "baseline.csv"
        lb_only.parent.mkdir()
        lb_only.write_bytes((base / "leaderboard.csv").read_bytes())
        stats = {"paired": 0, "unpaired": 0, "naive": 0}
        pvals = []
        t0 = time.perf_counter()
        for s in range(n):
            cand = make_run(root / f"c{s}", seed=s, audio=False)
            r = check(cand, base / "leaderboard.csv", n_boot=1000)
            stats["paired"] += r.regressed
            stats["naive"] += naive_fails(r)
            pvals += [x.p_value for x in r.rows if x.p_value is not None]
            stats["unpaired"] += check(cand / "leaderboard.csv", lb_only).regressed
        dt = time.perf_counter() - t0
        p = np.array(pvals)
        print(f"noise-only candidates: {n}  ({dt / n:.2f} s per candidate incl. building it)")
        print(f"  failed, paired test + Holm:           {stats['paired']:3d} / {n}  ({stats['paired'] / n:.1%})")
        print(f"  failed, leaderboards only (CI Welch): {stats['unpaired']:3d} / {n}  ({stats['unpaired'] / n:.1%})")
        print(f"  failed, naive 'worse than CI half-width': {stats['naive']:3d} / {n}  ({stats['naive'] / n:.1%})")
        print(f"  raw paired p < 0.05: {(p < 0.05).mean():.3f} (nominal 0.05), p < 0.01: {(p < 0.01).mean():.3f} (0.01)")
        deg = make_run(root / "deg", systems=degraded(), seed=7, audio=False)
        r1 = check(deg, base / "leaderboard.csv")
        r2 = check(deg / "leaderboard.csv", lb_only)
        print(f"degraded run (drops the last third of long texts): paired regressed={r1.regressed} "
              f"{r1.regressed_buckets}; leaderboard-only regressed={r2.regressed} {r2.regressed_buckets}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
