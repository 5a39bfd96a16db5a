"""Executors side by side: one process, N shards (run one after another, then the
aggregating plain run), and N Ray workers, on the same items.

Each way starts from an empty run directory and ends with utterances.csv; the script
prints the wall time of each, its ratio to the local run, and whether the tables are
identical (timing columns aside). The work is espeak-ng speaking each text through the
`command` system, scored by the long-form diagnostics (no model weights), so the
figure is dominated by per-item work, not by model loading. On a machine with fewer
cores than workers, Ray cannot be faster: the point is the overhead of each way and
that the numbers do not move.

    python benchmarks/bench_executors.py --n 24 --workers 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from halle_bench.config import load_config
from halle_bench.runner import run

TIMING = ["wall_seconds", "rtf", "startup_seconds"]
WORDS = ("the minutes of the meeting agreed on a budget for the next quarter and a review of the long form "
         "speech model with hierarchical tokens").split()


def setup(tmp: Path, n: int) -> Path:
    rows = []
    for i in range(n):
        k = 6 + (i * 7) % 40
        rows.append({"id": f"u{i:03d}", "text": " ".join(WORDS[(i + j) % len(WORDS)] for j in range(k)), "speaker": "s"})
    (tmp / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tmp / "bench.toml"
    cfg.write_text('[dataset]\nmanifest = "m.jsonl"\nbuckets = [0, 5, 10, 30]\n'
                   '[[systems]]\nname = "espeak"\nkind = "command"\ncommand = ["espeak-ng", "-w", "{out}", "--", "{text}"]\n'
                   '[[systems]]\nname = "espeak-slow"\nkind = "command"\n'
                   'command = ["espeak-ng", "-s", "120", "-w", "{out}", "--", "{text}"]\n'
                   '[metrics]\nlongform = {}\n[run]\nseed = 0\nn_boot = 100\n')
    return cfg


def table(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "utterances.csv").drop(columns=TIMING, errors="ignore").sort_values(["system", "id"]).reset_index(drop=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-exec-"))
    try:
        cfg = load_config(setup(tmp, a.n))
        times = {}
        run(cfg, tmp / "warm-up", limit=2)  # imports and first-call costs out of the comparison
        t0 = time.perf_counter()
        run(cfg, tmp / "local")
        times["local"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for k in range(a.workers):
            run(cfg, tmp / "shards", shard=f"{k}/{a.workers}")
        s = run(cfg, tmp / "shards")
        times[f"{a.workers} shards + aggregate"] = time.perf_counter() - t0
        assert s.generated == 0 and s.scored == 0
        try:
            import ray  # noqa: F401

            t0 = time.perf_counter()
            run(cfg, tmp / "ray", executor="ray", workers=a.workers)
            times[f"ray {a.workers} workers"] = time.perf_counter() - t0
        except ImportError:
            print("ray not installed: skipped")
        ref = table(tmp / "local")
        print(f"{2 * a.n} items (2 espeak systems x {a.n} utterances), longform scorer")
        for name, t in times.items():
            out = {"local": "local", f"{a.workers} shards + aggregate": "shards"}.get(name, "ray")
            same = table(tmp / out).equals(ref)
            print(f"{name:28s} {t:7.2f} s   x{times['local'] / t:5.2f} vs local   identical table: {same}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
