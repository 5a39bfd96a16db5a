"""How often does `halle-bench check` fail on pure noise, and which small regressions does it catch?

Synthetic runs (tests/halle_bench/runfixtures.py: per-utterance edits simulated from
error probabilities, leaderboards computed by the real aggregation code). Prints:

1. false alarms: N candidates that differ from the baseline only by noise (other seeds),
   checked in paired mode (per-utterance rows on both sides) and leaderboard-only mode
   (CIs, or a tolerance from counts where a cell has none); the share that fail, which
   metrics fired, and the calibration of raw paired p-values (should be ~5% / 1%);
2. detection power, each over N seeds:
   - +3 WER points (substitutions) in one bucket of 30 utterances, one system;
   - 1 of 8 utterances of one bucket newly failing;
   - a degraded run that drops the last third of each long text.

    python benchmarks/check_calibration.py [N=20]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "halle_bench"))
from runfixtures import DEFAULT_SYSTEMS, degraded, make_run  # noqa: E402

from halle_bench.check import check  # noqa: E402

N_BOOT = 1000


def _lb_only(run: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "lb.csv").write_bytes((run / "leaderboard.csv").read_bytes())
    return dest / "lb.csv"


def _flags(r, system: str, bucket: str, metrics: tuple[str, ...]) -> bool:
    return any((x.system, x.bucket) == (system, bucket) and x.metric in metrics for x in r.regressions)


def false_alarms(root: Path, n: int, n_per_bucket: int) -> None:
    base = make_run(root / f"base{n_per_bucket}", seed=100, n_per_bucket=n_per_bucket, audio=False)
    base_lb = _lb_only(base, root / f"base{n_per_bucket}-lb")
    fails = {"paired": 0, "leaderboard-only": 0}
    fired: Counter = Counter()
    pvals = []
    t0 = time.perf_counter()
    for s in range(n):
        cand = make_run(root / f"noise{n_per_bucket}-{s}", seed=s, n_per_bucket=n_per_bucket, audio=False)
        r = check(cand, base / "leaderboard.csv", n_boot=N_BOOT)
        fails["paired"] += r.regressed
        fired.update(f"paired:{x.metric}" for x in r.regressions)
        pvals += [x.p_value for x in r.rows if x.test == "paired" and x.p_value is not None]
        u = check(_lb_only(cand, root / f"noise{n_per_bucket}-{s}-lb"), base_lb)
        fails["leaderboard-only"] += u.regressed
        fired.update(f"lb-only:{x.metric}" for x in u.regressions)
    dt = time.perf_counter() - t0
    p = np.array(pvals)
    print(f"false alarms, {n} noise-only candidates, {n_per_bucket} utterances per bucket "
          f"({dt / n:.2f} s per candidate):")
    for k, v in fails.items():
        print(f"  {k:18s} failed {v:3d} / {n}  ({v / n:.1%})")
    print(f"  raw paired p < 0.05: {(p < 0.05).mean():.3f} (nominal 0.05), p < 0.01: {(p < 0.01).mean():.3f} (0.01)")
    if fired:
        print("  metrics that fired: " + ", ".join(f"{k} x{v}" for k, v in fired.most_common()))


def power_wer(root: Path, n: int) -> None:
    """+3 WER points (substitutions) for halle in the 30-60 bucket of 30 utterances."""
    base = make_run(root / "base30", seed=100, n_per_bucket=30, audio=False)
    base_lb = _lb_only(base, root / "base30-lbp")
    worse = tuple(replace(s, extra_sub=0.03, extra_sub_buckets=("30-60",)) if s.name == "halle" else s
                  for s in DEFAULT_SYSTEMS)
    hit = {"paired": 0, "leaderboard-only": 0}
    other = {"paired": 0, "leaderboard-only": 0}
    deltas = []
    for s in range(n):
        cand = make_run(root / f"wer3-{s}", systems=worse, seed=s, n_per_bucket=30, audio=False)
        r = check(cand, base / "leaderboard.csv", n_boot=N_BOOT)
        u = check(_lb_only(cand, root / f"wer3-{s}-lb"), base_lb)
        for k, res in (("paired", r), ("leaderboard-only", u)):
            hit[k] += _flags(res, "halle", "30-60", ("wer", "wer_ok", "wer_macro", "cer"))
            other[k] += any((x.system, x.bucket) != ("halle", "30-60") and x.bucket != "all" and x.system != "halle"
                            for x in res.regressions)
        deltas += [x.delta for x in r.rows if (x.system, x.bucket, x.metric) == ("halle", "30-60", "wer")]
    print(f"detection, +3 WER points in one bucket of 30 (halle 30-60; measured delta "
          f"{np.mean(deltas) * 100:+.1f} points on average), {n} seeds:")
    for k in hit:
        print(f"  {k:18s} caught {hit[k]:3d} / {n}  ({hit[k] / n:.0%}); other systems flagged in {other[k]} runs")


def power_failure(root: Path, n: int) -> None:
    """1 of 8 utterances of halle's 30-60 bucket newly fails."""
    base = make_run(root / "base8", seed=100, audio=False)
    base_lb = _lb_only(base, root / "base8-lbf")
    fail = tuple(replace(s, fail_ids=s.fail_ids + ("u30-60-04",)) if s.name == "halle" else s
                 for s in DEFAULT_SYSTEMS)
    hit = {"paired": 0, "leaderboard-only": 0}
    for s in range(n):
        cand = make_run(root / f"fail1-{s}", systems=fail, seed=s, audio=False)
        r = check(cand, base / "leaderboard.csv", n_boot=N_BOOT)
        u = check(_lb_only(cand, root / f"fail1-{s}-lb"), base_lb)
        hit["paired"] += _flags(r, "halle", "30-60", ("n_failed",))
        hit["leaderboard-only"] += _flags(u, "halle", "30-60", ("n_failed",))
    print(f"detection, 1 of 8 utterances newly failing (halle 30-60), {n} seeds:")
    for k in hit:
        print(f"  {k:18s} caught {hit[k]:3d} / {n}  ({hit[k] / n:.0%})")


def degradation(root: Path) -> None:
    base = make_run(root / "base8", seed=100, audio=False)
    deg = make_run(root / "deg", systems=degraded(), seed=7, audio=False)
    r1 = check(deg, base / "leaderboard.csv", n_boot=N_BOOT)
    r2 = check(_lb_only(deg, root / "deg-lb"), _lb_only(base, root / "base8-lbd"))
    print(f"degraded run (drops the last third of long texts): paired {r1.regressed_buckets}; "
          f"leaderboard-only {r2.regressed_buckets}")


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        false_alarms(root, n, 8)
        false_alarms(root, n, 30)
        power_wer(root, n)
        power_failure(root, n)
        degradation(root)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
