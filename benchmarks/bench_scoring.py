"""Scoring throughput: batched `score(items)` vs a straightforward per-file loop.

Builds N espeak-ng clips of mixed length (5 s up to --seconds), each with a short
voice prompt of the same voice and a "reference" (the clean clip; the scored audio
is the clip with light noise, as a codec resynthesis would be), then runs every
scorer of the offline suite twice, each time with its own freshly loaded model
instance (loading and a warm-up call are excluded from the timings; a fresh
instance means no embedding cache carries over from one mode to the other):

  (a) batched:  scorer.score(items[i:i + batch_size]) for each batch;
  (b) per file: scorer.score([item]) for each item.

It checks that both give identical values, and prints audio seconds per wall
second for each scorer and the whole suite, and the ratio (a)/(b).

    python benchmarks/bench_scoring.py --n 8 --seconds 60
    python benchmarks/bench_scoring.py --scorers quality,longform --n 4 --seconds 20
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from halle_bench.errors import HalleBenchError
from halle_bench.espeak import espeak
from halle_bench.metrics.base import ScoreItem, ScoreOutput, build_scorer

SUITE = {
    "wer": {"asr": "whisper-base"},
    "sim": {"model": "resemblyzer"},
    "quality": {"model": "dnsmos"},
    "longform": {},
    "intrusive": {"pesq": "wb", "stoi": True, "estoi": True},
}

SENTENCES = [
    "The committee met on Tuesday to review the budget for the coming year.",
    "After a long discussion, they agreed to postpone the decision until spring.",
    "Meanwhile, the engineers continued testing the new speech synthesis system.",
    "Long recordings are harder, because small errors accumulate over time.",
    "Everyone hoped that the final report would be ready before the holidays.",
    "She read the summary aloud, pausing now and then to answer questions.",
]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb-x-rp"]


def make_items(n: int, max_seconds: float, seed: int = 0) -> list[ScoreItem]:
    rng = np.random.default_rng(seed)
    targets = np.linspace(5.0, max(5.0, max_seconds), n)
    items = []
    for i, target in enumerate(targets):
        voice = VOICES[i % len(VOICES)]
        words: list[str] = []
        k = i
        # about 2.6 words/s at espeak's 160 wpm
        while len(words) < target * 2.6:
            words += SENTENCES[k % len(SENTENCES)].split()
            k += 1
        text = " ".join(words)
        clean = espeak(text, voice=voice)
        noisy = (clean + 0.003 * rng.standard_normal(clean.size)).astype(np.float32)
        prompt_text = SENTENCES[(i + 3) % len(SENTENCES)]
        prompt = espeak(prompt_text, voice=voice)
        items.append(
            ScoreItem(
                system="bench", utt_id=f"u{i:03d}", audio=noisy, text=text, reference=clean,
                prompt=prompt, prompt_text=prompt_text, duration_ref=clean.size / 16000,
            )
        )
    return items


def _same(a: list[ScoreOutput], b: list[ScoreOutput]) -> bool:
    return all(x.error == y.error and x.values == y.values for x, y in zip(a, b)) and len(a) == len(b)


def _max_diff(a: list[ScoreOutput], b: list[ScoreOutput]) -> float:
    d = 0.0
    for x, y in zip(a, b):
        for k, v in x.values.items():
            w = y.values.get(k)
            if isinstance(v, float) and isinstance(w, float) and not (math.isnan(v) and math.isnan(w)):
                d = max(d, abs(v - w))
    return d


def run_mode(name: str, config: dict, items: list[ScoreItem], batched: bool) -> tuple[list[ScoreOutput], float, int]:
    scorer = build_scorer(name, dict(config))
    scorer.load("cpu")
    scorer.score([items[0]])  # warm-up (lazy inits, first-call costs), not timed
    bs = max(1, int(getattr(scorer, "batch_size", 8)))
    t0 = time.perf_counter()
    out: list[ScoreOutput] = []
    if batched:
        for i in range(0, len(items), bs):
            out += scorer.score(items[i : i + bs])
    else:
        for it in items:
            out += scorer.score([it])
    wall = time.perf_counter() - t0
    scorer.close()
    return out, wall, bs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=8, help="number of clips")
    ap.add_argument("--seconds", type=float, default=60.0, help="longest clip (clips spread from 5 s to this)")
    ap.add_argument("--scorers", default=",".join(SUITE), help="comma-separated subset of " + ",".join(SUITE))
    args = ap.parse_args(argv)

    t = time.perf_counter()
    items = make_items(args.n, args.seconds)
    audio_s = sum(it.audio.size for it in items) / 16000
    print(f"{len(items)} clips, {audio_s:.1f} s of audio (built in {time.perf_counter() - t:.1f} s)")
    print(f"{'scorer':<10} {'batch':>5} {'batched x RT':>13} {'per-file x RT':>14} {'ratio':>6}  identical  errors")
    tot_b = tot_l = 0.0
    ok_all = True
    for name in [s.strip() for s in args.scorers.split(",") if s.strip()]:
        if name not in SUITE:
            print(f"{name:<10} unknown scorer (suite: {', '.join(SUITE)})")
            return 2
        try:
            loop_out, loop_s, _ = run_mode(name, SUITE[name], items, batched=False)
            bat_out, bat_s, bs = run_mode(name, SUITE[name], items, batched=True)
        except (HalleBenchError, ImportError) as e:  # not available offline here: say so, go on
            print(f"{name:<10} skipped: {type(e).__name__}: {e}")
            continue
        exact = _same(bat_out, loop_out)
        diff = 0.0 if exact else _max_diff(bat_out, loop_out)
        # Scorers that stack equal-length windows (sim) may differ in float summation
        # order only: accept 1e-6 but show it; anything more is a failure.
        same = exact or (diff <= 1e-6 and all(a.error == b.error for a, b in zip(bat_out, loop_out)))
        ok_all &= same
        n_err = sum(o.error is not None for o in bat_out)
        tot_b += bat_s
        tot_l += loop_s
        ident = "yes" if exact else (f"~{diff:.0e}" if same else f"NO (max |diff| {diff:.2e})")
        print(f"{name:<10} {bs:>5} {audio_s / bat_s:>13.2f} {audio_s / loop_s:>14.2f} {loop_s / bat_s:>6.2f}  {ident:<9}  {n_err}")
        for o in bat_out:
            if o.error:
                print(f"           error: {o.error}")
                break
    if tot_b > 0:
        print(f"{'total':<10} {'':>5} {audio_s / tot_b:>13.2f} {audio_s / tot_l:>14.2f} {tot_l / tot_b:>6.2f}  "
              f"{'yes' if ok_all else 'NO'}")
        print(f"wall: batched {tot_b:.1f} s, per-file {tot_l:.1f} s")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
