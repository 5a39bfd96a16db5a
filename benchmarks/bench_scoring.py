"""Scoring throughput: audio seconds scored per wall second, per scorer, on CPU or CUDA.

Input (`--audio`): `synth` builds N espeak-ng clips of mixed length (5 s up to
--seconds), each with a short voice prompt of the same voice and a "reference" (the
clean clip; the scored audio is the clip with light noise, as a codec resynthesis
would be); `demo` scores the embedded demo's 16 clips (ground truth and the espeak-ng
system, 5-72 s, ~485 s in all; see benchmarks/demo_audio.py). Every scorer of the
offline suite runs with its own freshly loaded model instance (loading and a warm-up
call are excluded from the timings; a fresh instance means no embedding cache carries
over from one mode to the other), in up to two modes:

  (a) batched:  scorer.score(items[i:i + batch_size]) for each batch;
  (b) per file: scorer.score([item]) for each item (`--mode both`, the default).

With both it checks that they give identical values and prints the ratio (a)/(b).

    python benchmarks/bench_scoring.py --n 8 --seconds 60
    python benchmarks/bench_scoring.py --scorers quality,longform --n 4 --seconds 20
    python benchmarks/bench_scoring.py --audio demo --mode batched --scorers wer,sim,quality
    python benchmarks/bench_scoring.py --audio demo --scorers quality --mode batched \
        --set 'quality={"hop_seconds": 1.0, "threads": 1}'      # DNSMOS with the reference's hop
    python benchmarks/bench_scoring.py --device cuda --mode batched --json results/gpu/scoring.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

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


def demo_items(scratch: Path) -> list[ScoreItem]:
    """The embedded demo's clips (ground truth and espeak-ng system) as score items."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from demo_audio import demo_clips, load_16k
    from halle_bench.models import home

    items = []
    for c in demo_clips(home(), scratch):
        x = load_16k(c.wav)
        items.append(ScoreItem(system=c.system, utt_id=c.utt_id, audio=x, text=c.text,
                               prompt=load_16k(c.prompt_wav), prompt_text=c.prompt_text, duration_ref=x.size / 16000,
                               is_ground_truth=c.system == "ground-truth"))
    gt = {it.utt_id: it.audio for it in items if it.is_ground_truth}
    for it in items:  # the reference of every clip is its ground truth (intrusive, longform)
        it.reference = gt[it.utt_id]
    return items


def run_mode(name: str, config: dict, items: list[ScoreItem], batched: bool, device: str = "cpu") -> tuple[list[ScoreOutput], float, int, float]:
    """(outputs, wall seconds, batch size, CPU seconds of this process: all its threads;
    on a shared machine the CPU time is the steadier figure)."""
    scorer = build_scorer(name, dict(config))
    scorer.load(device)
    scorer.score([items[0]])  # warm-up (lazy inits, first-call costs), not timed
    bs = max(1, int(getattr(scorer, "batch_size", 8)))
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    out: list[ScoreOutput] = []
    if batched:
        for i in range(0, len(items), bs):
            out += scorer.score(items[i : i + bs])
    else:
        for it in items:
            out += scorer.score([it])
    _sync(device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    scorer.close()
    return out, wall, bs, cpu


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--audio", choices=("synth", "demo"), default="synth", help="what to score (see the docstring)")
    ap.add_argument("--n", type=int, default=8, help="synth: number of clips")
    ap.add_argument("--seconds", type=float, default=60.0, help="synth: longest clip (clips spread from 5 s to this)")
    ap.add_argument("--scorers", default=",".join(SUITE), help="comma-separated subset of " + ",".join(SUITE))
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    ap.add_argument("--mode", choices=("both", "batched"), default="both", help="batched only: skip the per-file loop")
    ap.add_argument("--set", action="append", default=[], metavar="SCORER=JSON",
                    help='override a scorer\'s config, e.g. quality={"hop_seconds": 1.0}')
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    suite = {k: dict(v) for k, v in SUITE.items()}
    for kv in args.set:
        k, _, v = kv.partition("=")
        if k not in suite:
            print(f"--set {kv!r}: unknown scorer (suite: {', '.join(suite)})")
            return 2
        suite[k].update(json.loads(v))
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(f"--device {args.device}: CUDA is not available here")
            return 2
        print(f"device: {args.device} ({torch.cuda.get_device_name(torch.device(args.device))})")

    t = time.perf_counter()
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    items = make_items(args.n, args.seconds) if args.audio == "synth" else demo_items(scratch)
    audio_s = sum(it.audio.size for it in items) / 16000
    print(f"{len(items)} clips ({args.audio}), {audio_s:.1f} s of audio (built in {time.perf_counter() - t:.1f} s); "
          f"device {args.device}; load average {os.getloadavg()[0]:.2f}; cores {os.cpu_count()}")
    both = args.mode == "both"
    print(f"{'scorer':<10} {'batch':>5} {'wall s':>7} {'cpu s':>7} {'audio s/s':>10}" + (f" {'per-file s/s':>13} {'ratio':>6}  identical" if both else "")
          + "  errors")
    figures: dict[str, dict] = {}
    tot_b = tot_l = tot_cpu = 0.0
    ok_all = True
    for name in [s.strip() for s in args.scorers.split(",") if s.strip()]:
        if name not in suite:
            print(f"{name:<10} unknown scorer (suite: {', '.join(suite)})")
            return 2
        try:
            loop_out, loop_s = run_mode(name, suite[name], items, False, args.device)[:2] if both else (None, 0.0)
            bat_out, bat_s, bs, bat_cpu = run_mode(name, suite[name], items, True, args.device)
        except (HalleBenchError, ImportError) as e:  # not available offline here: say so, go on
            print(f"{name:<10} skipped: {type(e).__name__}: {e}")
            figures[name] = {"skipped": f"{type(e).__name__}: {e}"}
            continue
        n_err = sum(o.error is not None for o in bat_out)
        tot_b += bat_s
        figures[name] = {"batch": bs, "wall_s": round(bat_s, 3), "cpu_s": round(bat_cpu, 3),
                         "audio_s_per_s": round(audio_s / bat_s, 3), "errors": n_err,
                         "config": suite[name]}
        tot_cpu += bat_cpu
        line = f"{name:<10} {bs:>5} {bat_s:>7.1f} {bat_cpu:>7.1f} {audio_s / bat_s:>10.2f}"
        if both:
            exact = _same(bat_out, loop_out)
            diff = 0.0 if exact else _max_diff(bat_out, loop_out)
            # Scorers that stack equal-length windows (sim) may differ in float summation
            # order only: accept 1e-6 but show it; anything more is a failure.
            same = exact or (diff <= 1e-6 and all(a.error == b.error for a, b in zip(bat_out, loop_out)))
            ok_all &= same
            tot_l += loop_s
            ident = "yes" if exact else (f"~{diff:.0e}" if same else f"NO (max |diff| {diff:.2e})")
            line += f" {audio_s / loop_s:>13.2f} {loop_s / bat_s:>6.2f}  {ident:<9}"
            figures[name].update(per_file_audio_s_per_s=round(audio_s / loop_s, 3), identical=ident)
        print(line + f"  {n_err}", flush=True)
        for o in bat_out:
            if o.error:
                print(f"           error: {o.error}")
                break
    if tot_b > 0:
        line = f"{'total':<10} {'':>5} {tot_b:>7.1f} {tot_cpu:>7.1f} {audio_s / tot_b:>10.2f}"
        if both:
            line += f" {audio_s / tot_l:>13.2f} {tot_l / tot_b:>6.2f}  {'yes' if ok_all else 'NO'}"
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": args.device, "audio": args.audio, "clips": len(items),
                                         "audio_seconds": round(audio_s, 2), "load_average": os.getloadavg()[0],
                                         "scorers": figures, "total_wall_s": round(tot_b, 3)}, indent=1) + "\n")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
