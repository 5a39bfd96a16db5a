"""How often does `halle-bench check` fail on noise alone, and how often does it catch real regressions?

Synthetic runs (tests/halle_bench/runfixtures.py: per-utterance edits simulated from
error probabilities, similarity and quality drawn per utterance; leaderboards computed by
the real aggregation code). The utterance set is fixed; a run's seed only changes the
noise, so two seeds of one system are "identical runs resampled": the same model and
texts, other sampling noise. Two set sizes: the demo's (2 utterances per bucket, 8 per
system) and one of 32 utterances per system (8 per bucket). For each, over N seeds:

1. false alarms: a candidate that differs from the baseline only by its seed; the share
   of candidates that fail, in paired mode (utterances.csv on both sides) and
   leaderboard-only mode (CIs, or a tolerance from counts where a cell has none), and
   which metrics fired (target: at most 5%);
2. power, one regression kind at a time, on the `halle` system; caught = the check fails
   and names halle in an affected bucket for the expected metric:
   - truncated long texts: the last 15% (about the last sentence) or 8% of the words of
     every text of 30 s and more dropped, expected `wer` in 30-60 / 60-90;
   - added noise: predicted quality -1.0 MOS with +3 points of substitutions everywhere
     (the ASR mishears noisy audio), or -0.5 MOS alone, expected `quality` (or `wer`);
   - a voice drifting to another speaker after the first 10 s: similarity to the prompt
     -0.3 or -0.15 in the drifted part, expected `sim` in 10-30 / 30-60 / 60-90;
   - new failures: one utterance of 30-60 newly fails, expected `n_failed` there.
   "other flags": runs where something else (another system, bucket) also failed.

    python benchmarks/check_calibration.py [N=20]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "halle_bench"))
from runfixtures import DEFAULT_SYSTEMS, make_run  # noqa: E402

from halle_bench.check import check  # noqa: E402

N_BOOT = 1000
LONG = ("30-60", "60-90")
ALL = ("3-10", "10-30", "30-60", "60-90", "all")


def _halle(**kw):
    return tuple(replace(s, **kw) if s.name == "halle" else s for s in DEFAULT_SYSTEMS)


MID = ("10-30", "30-60", "60-90")
REGRESSIONS = {
    "truncated long texts (last 15%)": (_halle(drop_tail=0.15, drop_from=30.0), LONG, ("wer",)),
    "truncated long texts (last 8%)": (_halle(drop_tail=0.08, drop_from=30.0), LONG, ("wer",)),
    "added noise (-1.0 MOS, +3 sub points)": (_halle(quality=3.2 - 1.0, extra_sub=0.03, extra_sub_buckets=ALL[:4]),
                                              ALL, ("quality", "wer")),
    "added noise (-0.5 MOS)": (_halle(quality=3.2 - 0.5), ALL, ("quality",)),
    "voice drift (-0.3 sim after 10 s)": (_halle(voice_drift=0.3), MID, ("sim",)),
    "voice drift (-0.15 sim after 10 s)": (_halle(voice_drift=0.15), MID, ("sim",)),
    "one new failure (30-60)": (_halle(fail_ids=("u3-10-01", "u30-60-01")), ("30-60",), ("n_failed",)),
}


def _lb_only(run: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "lb.csv").write_bytes((run / "leaderboard.csv").read_bytes())
    return dest / "lb.csv"


def _caught(res, buckets, metrics) -> bool:
    return any(x.system == "halle" and x.bucket in buckets and x.metric in metrics for x in res.regressions)


def _elsewhere(res, buckets, metrics) -> bool:
    """Flags that are not the regression: another system, or a metric / bucket it does not touch."""
    return any(not (x.system == "halle" and (x.bucket in buckets or x.bucket == "all")) for x in res.regressions)


def calibrate(root: Path, n: int, per_bucket: int) -> list[tuple[str, str, str]]:
    size = f"{per_bucket * 4} utterances per system ({per_bucket} per bucket)"
    base = make_run(root / f"base{per_bucket}", seed=100, n_per_bucket=per_bucket, audio=False)
    base_lb = _lb_only(base, root / f"base{per_bucket}-lb")
    out = []
    fails = Counter()
    fired: Counter = Counter()
    t0 = time.perf_counter()
    for s in range(n):
        cand = make_run(root / f"noise{per_bucket}-{s}", seed=s, n_per_bucket=per_bucket, audio=False)
        r = check(cand, base / "leaderboard.csv", n_boot=N_BOOT)
        u = check(_lb_only(cand, root / f"noise{per_bucket}-{s}-lb"), base_lb)
        fails["paired"] += r.regressed
        fails["leaderboard-only"] += u.regressed
        fired.update(f"{x.metric} ({x.reason.split(':')[0]})" for x in r.regressions + u.regressions)
    dt = (time.perf_counter() - t0) / n
    for mode in ("paired", "leaderboard-only"):
        out.append((size, "false alarms (identical runs, other seeds)", mode, f"{fails[mode]}/{n}",
                    f"{fails[mode] / n:.0%}"))
    print(f"[{size}] {dt:.2f} s per noise candidate (2 checks); fired: "
          + (", ".join(f"{k} x{v}" for k, v in fired.most_common()) or "nothing"), flush=True)
    for row in out:
        print("  " + " | ".join(row), flush=True)
    for kind, (systems, buckets, metrics) in REGRESSIONS.items():
        hit = Counter()
        other = Counter()
        for s in range(n):
            cand = make_run(root / f"{kind[:5]}{per_bucket}-{s}", systems=systems, seed=s, n_per_bucket=per_bucket,
                            audio=False)
            r = check(cand, base / "leaderboard.csv", n_boot=N_BOOT)
            u = check(_lb_only(cand, root / f"{kind[:5]}{per_bucket}-{s}-lb"), base_lb)
            for mode, res in (("paired", r), ("leaderboard-only", u)):
                hit[mode] += _caught(res, buckets, metrics)
                other[mode] += _elsewhere(res, buckets, metrics)
        for mode in ("paired", "leaderboard-only"):
            out.append((size, f"power: {kind}", mode, f"{hit[mode]}/{n}", f"{hit[mode] / n:.0%}"
                        + (f" (other flags in {other[mode]} runs)" if other[mode] else "")))
            print("  " + " | ".join(out[-1]), flush=True)  # as it comes: the whole run takes minutes
    return out


def main(n: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for per_bucket in (2, 8):
            rows += calibrate(Path(d), n, per_bucket)
    print()
    print("| set | what | mode | failed / caught | rate |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
