"""Executors side by side (issue 18): the same items through one process, 2 shards, a
pool of 2 processes and 2 Ray workers.

Two sets:
- **uniform**: espeak-ng speaks N texts through two `command` systems (scored by the
  long-form diagnostics, no model weights). Each way starts from an empty run
  directory; the script checks that utterances.csv is identical (timing columns
  aside) across all four.
- **skewed**: one long item among many short ones, spoken by a `command` program
  whose time is proportional to the text (it sleeps `--seconds-per-word` per word, so
  the figure measures scheduling, not how busy the machine's cores are). Every way
  runs as the CLI in fresh processes, so each pays its own start-up: the 2 shards run
  at the same time (as 2 Slurm tasks would) and are then aggregated; Ray and the
  process pool hand chunks, longest first, to whichever worker is free.

    python benchmarks/bench_executors.py --n 24 --short 40 --long-words 300 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

TIMING = ["wall_seconds", "rtf", "startup_seconds"]
WORDS = ("the minutes of the meeting agreed on a budget for the next quarter and a review of the long form "
         "speech model with hierarchical tokens").split()

SLEEPY_TTS = """\
import math, os, struct, sys, time, wave
out, text = sys.argv[1], sys.argv[-1]
time.sleep(float(os.environ.get("SECONDS_PER_WORD", "0.02")) * len(text.split()))
with wave.open(out, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
    n = int(16000 * 0.3 * len(text.split()))
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(0.05 * i + len(text)))) for i in range(n)))
"""


def _texts(n: int, words: int | None = None) -> list[str]:
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(words or 6 + (i * 7) % 40)) for i in range(n)]


def setup_uniform(tmp: Path, n: int) -> Path:
    (tmp / "m.jsonl").write_text("".join(json.dumps({"id": f"u{i:03d}", "text": t, "speaker": "s"}) + "\n"
                                         for i, t in enumerate(_texts(n))))
    cfg = tmp / "bench.toml"
    cfg.write_text('[dataset]\nmanifest = "m.jsonl"\nbuckets = [0, 5, 10, 30]\n'
                   '[[systems]]\nname = "espeak"\nkind = "command"\ncommand = ["espeak-ng", "-w", "{out}", "--", "{text}"]\n'
                   '[[systems]]\nname = "espeak-slow"\nkind = "command"\n'
                   'command = ["espeak-ng", "-s", "120", "-w", "{out}", "--", "{text}"]\n'
                   '[metrics]\nlongform = {}\n[run]\nseed = 0\nn_boot = 100\n')
    return cfg


def setup_skewed(tmp: Path, n_short: int, long_words: int) -> Path:
    (tmp / "sleepy_tts.py").write_text(SLEEPY_TTS)
    texts = [" ".join(WORDS[j % len(WORDS)] for j in range(long_words))] + _texts(n_short, 10)
    (tmp / "m.jsonl").write_text("".join(json.dumps({"id": f"u{i:03d}", "text": t, "speaker": "s"}) + "\n"
                                         for i, t in enumerate(texts)))
    cfg = tmp / "bench.toml"
    cfg.write_text('[dataset]\nmanifest = "m.jsonl"\nbuckets = [0, 5, 10, 30, 600]\n'
                   f'[[systems]]\nname = "sleepy"\nkind = "command"\ntimeout = 600\n'
                   f'command = ["{sys.executable}", "sleepy_tts.py", "{{out}}", "--", "{{text}}"]\n'
                   '[metrics]\nlongform = {}\n[run]\nseed = 0\nn_boot = 100\nwarmup = false\n')
    return cfg


def table(out: Path) -> pd.DataFrame:
    df = pd.read_csv(out / "utterances.csv").drop(columns=TIMING, errors="ignore")
    return df.sort_values(["system", "id"]).reset_index(drop=True)


def cli(cfg: Path, out: Path, *extra: str, wait: bool = True):
    p = subprocess.Popen([sys.executable, "-m", "halle_bench", "run", str(cfg), "--out", str(out), "--quiet", *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if wait:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"halle-bench run {' '.join(extra)} failed ({p.returncode}):\n{err[-2000:]}")
    return p


def ways(workers: int, ray: bool) -> dict[str, tuple[str, ...] | None]:
    w = str(workers)
    d: dict[str, tuple[str, ...] | None] = {"local": (), f"{w} shards (concurrent) + aggregate": None,
                                            f"process pool, {w} workers": ("--executor", "process", "--workers", w)}
    if ray:
        d[f"ray, {w} workers"] = ("--executor", "ray", "--workers", w)
    return d


def time_ways(cfg: Path, root: Path, workers: int, ray: bool) -> dict[str, tuple[float, Path]]:
    res = {}
    for name, extra in ways(workers, ray).items():
        out = root / f"out-{len(res)}"
        t0 = time.perf_counter()
        if extra is None:  # the shards at once, as an array job would, then the aggregating run
            procs = [cli(cfg, out, "--shard", f"{k}/{workers}", wait=False) for k in range(workers)]
            for p in procs:
                _, err = p.communicate()
                if p.returncode not in (0, 1):
                    raise SystemExit(f"shard failed ({p.returncode}):\n{err[-2000:]}")
            cli(cfg, out)
        else:
            cli(cfg, out, *extra)
        res[name] = (time.perf_counter() - t0, out)
    return res


def report(title: str, res: dict[str, tuple[float, Path]]) -> None:
    ref_name = "local"
    ref_t, ref_out = res[ref_name]
    ref = table(ref_out)
    print(title)
    for name, (t, out) in res.items():
        got = table(out)
        same = got.equals(ref)
        print(f"  {name:34s} {t:7.2f} s   x{ref_t / t:5.2f} vs local   identical utterances.csv: {same}")
        if not same:  # say where
            cols = sorted(set(got.columns) ^ set(ref.columns))
            common = [c for c in ref.columns if c in got.columns]
            diff = [c for c in common if len(got) != len(ref) or not got[c].equals(ref[c])]
            print(f"    columns only on one side: {cols}; differing columns: {diff}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24, help="utterances of the uniform set (x 2 systems)")
    ap.add_argument("--short", type=int, default=40, help="short items (10 words) of the skewed set")
    ap.add_argument("--long-words", type=int, default=300, help="words of the one long item")
    ap.add_argument("--seconds-per-word", type=float, default=0.02)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-uniform", action="store_true")
    a = ap.parse_args()
    try:
        import ray  # noqa: F401

        has_ray = True
    except ImportError:
        has_ray = False
        print("ray not installed: skipped")
    os.environ["SECONDS_PER_WORD"] = str(a.seconds_per_word)
    tmp = Path(tempfile.mkdtemp(prefix="bench-exec-"))
    try:
        print(f"{os.cpu_count()} CPUs; each way is the CLI in fresh processes (start-up included)")
        if not a.skip_uniform:
            (tmp / "u").mkdir()
            cfg = setup_uniform(tmp / "u", a.n)
            report(f"uniform: {2 * a.n} items (2 espeak-ng systems x {a.n} utterances), longform scorer",
                   time_ways(cfg, tmp / "u", a.workers, has_ray))
        (tmp / "s").mkdir()
        cfg = setup_skewed(tmp / "s", a.short, a.long_words)
        long_s, short_s = a.long_words * a.seconds_per_word, 10 * a.seconds_per_word
        report(f"skewed: 1 item of {long_s:.1f} s + {a.short} of {short_s:.2f} s (sleeping command; "
               f"ideal with {a.workers} workers: {max(long_s, a.short * short_s / max(1, a.workers - 1)):.1f} s "
               f"plus start-ups)", time_ways(cfg, tmp / "s", a.workers, has_ray))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
