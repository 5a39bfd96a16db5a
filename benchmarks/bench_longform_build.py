"""Build a long-form set from an espeak-made LibriSpeech-layout tree and print its table.

    python benchmarks/bench_longform_build.py WORK [--buckets 3,10,30,60,90] [--per-bucket 3]
        [--speakers 3] [--gt-wer]

Prints: the tree's size and the time to speak it; the build time (and its rate in source
audio seconds per wall second); the table (segments, seconds, min/max per bucket); the
sha256 of manifest.jsonl and of every built file, for two builds into two folders
(determinism: they must match); with --gt-wer, `halle-bench run` on the built set with
the ground-truth system and WER only, and its per-bucket WER (the ceiling: the ASR's
errors on the references themselves).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from halle_bench.data import build_longform, read_manifest
from halle_bench.data.demo import passage, split_sentences
from halle_bench.data.espeak_corpora import Chapter, make_librispeech

VOICES = (("1089", "en-us", 160), ("2830", "en-gb+f3", 175), ("4446", "en-us+m3", 150), ("7021", "en-gb", 165))


def tree(root: Path, n_speakers: int) -> tuple[int, float]:
    """Each reader reads the whole passage as two chapters (halves)."""
    s = tuple(split_sentences(passage()))
    half = len(s) // 2
    chapters = [Chapter(spk, f"{100 + k}{i}", voice, part, speed)
                for k, (spk, voice, speed) in enumerate(VOICES[:n_speakers])
                for i, part in enumerate((s[:half], s[half:]))]
    t = time.perf_counter()
    if not (root / "DONE").exists():
        make_librispeech(root, chapters)
        (root / "DONE").write_text("")
    return len(chapters), time.perf_counter() - t


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--buckets", default="3,10,30,60,90")
    ap.add_argument("--per-bucket", type=int, default=3)
    ap.add_argument("--speakers", type=int, default=3)
    ap.add_argument("--gt-wer", action="store_true")
    a = ap.parse_args()
    work = Path(a.work)
    edges = [float(x) for x in a.buckets.split(",")]
    src = work / "LibriSpeech" / "test-clean"
    n_ch, t_tree = tree(src, a.speakers)
    utts = read_manifest(src)
    total = sum(u.duration for u in utts)
    print(f"tree: {len(utts)} utterances, {n_ch} chapters, {a.speakers} speakers, {total:.0f} s of audio "
          f"(spoken in {t_tree:.1f} s; 0 if cached)")
    builds = []
    for name in ("a", "b"):  # same folder name (config.toml names the set after it), two parents
        t = time.perf_counter()
        res = build_longform(src, work / name / "longform", edges=edges, per_bucket=a.per_bucket, seed=0)
        wall = time.perf_counter() - t
        builds.append(res)
        print(f"build {name}/longform: {wall:.2f} s wall ({total / wall:.0f} source-audio seconds per second, sources checked, "
              f"segments written)")
    res = builds[0]
    print(f"\n{'bucket':>8} {'segments':>8} {'seconds':>8} {'min s':>6} {'max s':>6} {'could cut':>9}")
    for r in res.rows:
        print(f"{r.bucket:>8} {r.n:>8} {r.seconds:>8.1f} {r.min_s:>6.1f} {r.max_s:>6.1f} {r.candidates:>9}")
    ma, mb = (hashlib.sha256(b.manifest.read_bytes()).hexdigest() for b in builds)
    fa, fb = digest(builds[0].out), digest(builds[1].out)
    print(f"\nmanifest.jsonl sha256: {ma}\n                       {mb}  ({'identical' if ma == mb else 'DIFFERENT'})")
    print(f"all files sha256:      {fa}\n                       {fb}  ({'identical' if fa == fb else 'DIFFERENT'})")
    if not a.gt_wer:
        return 0 if ma == mb and fa == fb else 1
    run_dir = work / "run-gt"
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "halle_bench", "run", str(res.config), "--out", str(run_dir),
                        "--metrics", "wer", "--quiet"], capture_output=True, text=True)
    print(f"\nhalle-bench run (ground truth, WER only): exit {p.returncode}, {time.perf_counter() - t:.0f} s wall")
    if p.returncode != 0:
        print(p.stderr[-3000:])
        return 1
    lb = pd.read_csv(run_dir / "leaderboard.csv")
    cols = [c for c in ("bucket", "n", "n_failed", "audio_seconds", "wer", "wer_macro", "cer") if c in lb]
    print(lb[lb.system == "ground-truth"][cols].to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    return 0 if ma == mb and fa == fb else 1


if __name__ == "__main__":
    sys.exit(main())
