"""Harness overhead per utterance: time the runner spends outside systems and models.

Runs N utterances through `halle_bench.run` with a near-free system (a sine wave)
and a near-free scorer, measures the time spent inside `synthesize` / `score` by
wrapping them, and reports the rest per (system, utterance) item. For comparison it
times the straightforward script people write (loop: synthesize, write wav, score,
append a CSV row) with the same system and scorer, which has no cache keys, no
fsync, no hashing and no resume. Also times a fully cached re-run (all skipped).

    python benchmarks/bench_harness.py --n 200
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "halle_bench"))

import plugin_fixtures  # noqa: E402  (registers the "tone" system and "toy" scorer)

from halle_bench.audio import SCORING_SR, load_audio, save_audio  # noqa: E402
from halle_bench.config import load_config  # noqa: E402
from halle_bench.metrics.base import ScoreItem  # noqa: E402
from halle_bench.runner import run  # noqa: E402
from halle_bench.systems.base import SynthesisRequest  # noqa: E402

inside = {"t": 0.0}


def _wrap(cls, meth):
    orig = getattr(cls, meth)

    def timed(self, *a, **k):
        t0 = time.perf_counter()
        try:
            return orig(self, *a, **k)
        finally:
            inside["t"] += time.perf_counter() - t0

    setattr(cls, meth, timed)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    a = ap.parse_args()
    _wrap(plugin_fixtures.ToneSystem, "synthesize")
    _wrap(plugin_fixtures.ToyScorer, "score")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        texts = {f"u{i:04d}": "word " * (3 + i % 40) for i in range(a.n)}
        with open(d / "m.jsonl", "w") as f:
            for k, t in texts.items():
                f.write(json.dumps({"id": k, "text": t.strip(), "speaker": "s"}) + "\n")
        (d / "c.toml").write_text(
            '[dataset]\nmanifest = "m.jsonl"\n[[systems]]\nname = "a"\nkind = "tone"\n'
            '[metrics]\ntoy = {}\n[run]\nplugins = ["plugin_fixtures"]\nn_boot = 1000\n'
        )
        cfg = load_config(d / "c.toml")
        # Warm-up run (imports of pandas/scipy, first file-system touches): the figure
        # is the steady-state cost per utterance, as for the straightforward loop below.
        run(cfg, d / "warm", limit=2)
        inside["t"] = 0.0
        t0 = time.perf_counter()
        run(cfg, d / "out")
        total = time.perf_counter() - t0
        ours = (total - inside["t"]) / a.n

        t0 = time.perf_counter()
        run(cfg, d / "out")
        cached = (time.perf_counter() - t0) / a.n

        # The straightforward loop.
        sysm = plugin_fixtures.ToneSystem("a", {}, d)
        scorer = plugin_fixtures.ToyScorer()
        inside["t"] = 0.0
        t0 = time.perf_counter()
        with open(d / "naive.csv", "w", newline="") as f:
            w = csv.writer(f)
            for k, t in texts.items():
                r = sysm.synthesize([SynthesisRequest(k, t)])[0]
                p = d / "naive" / f"{k}.wav"
                save_audio(p, r.audio, r.sample_rate)
                x, _, _ = load_audio(p, SCORING_SR)
                o = scorer.score([ScoreItem("a", k, x, SCORING_SR, text=t)])[0]
                w.writerow([k, o.values["wer"]])
        naive_total = time.perf_counter() - t0
        naive = (naive_total - inside["t"]) / a.n
    print(f"utterances: {a.n}")
    print(f"halle-bench overhead per utterance: {ours * 1e3:.2f} ms (whole run {total:.2f} s)")
    print(f"straightforward loop overhead:      {naive * 1e3:.2f} ms")
    print(f"ratio ours / straightforward:       {ours / naive:.2f}x")
    print(f"fully cached re-run per utterance:  {cached * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
