"""Training throughput of the AR stages: VALL-E's (75 Hz, 1 codebook) and HALL-E's (8 Hz,
2 codebooks with the delay pattern) at equal width/depth, random weights and tokens.

Each model takes `--steps` optimiser steps (AdamW, gradient clipping, as
baselines/train.py) on batches of `--batch` clips of `--seconds` s (random phoneme ids at
12.5 per second, random codes), after 2 untimed warm-up steps. Printed per model: steps
per second, audio seconds of training data per second, target tokens per second and
peak GPU memory; and VALL-E / HALL-E. The AR stage is where the two differ most (9x the
sequence length at 75 Hz); the data pipeline (benchmarks/bench_training.py) is not in it.

    python benchmarks/bench_train_step.py --device cuda --size paper --dtype bfloat16
    python benchmarks/bench_train_step.py --device cpu --size tiny --seconds 4 --batch 2 --steps 2  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

PHONEMES_PER_SECOND = 12.5


def build(name: str, size: str):
    """The AR module of a randomly initialised VALL-E or HALL-E (EnCodec-size codecs)."""
    from halle_bench.baselines.codec import Codec, CodecConfig

    if name == "valle":
        from halle_bench.baselines.valle import VALLE

        return VALLE.build(Codec.from_config(CodecConfig(), seed=0), size=size, seed=0).ar, 75.0
    from halle_bench.baselines.halle import HALLE
    from halle_bench.baselines.mreq_tokenizer import MReQTokenizer
    from halle_bench.baselines.mrvq import MRVQ, MRVQConfig

    teacher = Codec.from_config(CodecConfig.teacher_48hz(), seed=0)
    torch.manual_seed(0)
    tok = MReQTokenizer(teacher, MRVQ(MRVQConfig(dim=teacher.dimension)))
    return HALLE.build(tok, size=size, seed=0).ar, 8.0


def batch(ar, rate: float, seconds: float, b: int, dev: torch.device, g: torch.Generator):
    n_text = max(2, int(seconds * PHONEMES_PER_SECOND))
    frames = max(2, int(seconds * rate))
    text = torch.randint(1, ar.cfg.n_text_tokens, (b, n_text), generator=g)
    codes = torch.randint(0, ar.cfg.codebook_size, (b, ar.cfg.n_codebooks, frames), generator=g)
    lens = lambda n: torch.full((b,), n, dtype=torch.long)  # noqa: E731
    return text.to(dev), lens(n_text).to(dev), codes.to(dev), lens(frames).to(dev)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def measure(name: str, size: str, dev: torch.device, seconds: float, b: int, steps: int, dtype: str) -> dict:
    ar, rate = build(name, size)
    ar.to(dev).train()
    opt = torch.optim.AdamW(ar.parameters(), lr=1e-4, betas=(0.9, 0.98), weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    data = batch(ar, rate, seconds, b, dev, g)
    amp = getattr(torch, dtype)
    use_amp = dev.type == "cuda" and amp != torch.float32

    def step() -> int:
        with torch.autocast(dev.type, dtype=amp, enabled=use_amp):
            loss, info = ar.loss(*data)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ar.parameters(), 1.0)
        opt.step()
        return int(info["tokens"])

    for _ in range(2):  # warm-up: kernels, allocator, optimiser state
        step()
    _sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    tokens = sum(step() for _ in range(steps))
    _sync(dev)
    dt = time.perf_counter() - t0
    n_params = sum(p.numel() for p in ar.parameters()) / 1e6
    return {"model": name, "params_m": round(n_params, 1), "frame_rate": rate, "batch": b, "seconds": seconds,
            "steps": steps, "wall_s": round(dt, 3), "steps_per_s": round(steps / dt, 3),
            "audio_s_per_s": round(steps * b * seconds / dt, 1), "tokens_per_s": round(tokens / dt, 1),
            "peak_gb": round(torch.cuda.max_memory_allocated(dev) / 2**30, 2) if dev.type == "cuda" else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", default="paper", choices=["paper", "tiny"])
    ap.add_argument("--seconds", type=float, default=20.0, help="clip length of every batch item")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"], help="autocast on CUDA")
    ap.add_argument("--models", default="valle,halle")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    card = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu x{os.cpu_count()}"
    print(f"device={dev} ({card}) size={a.size} batch={a.batch} x {a.seconds:g} s, {a.steps} steps, "
          f"dtype={a.dtype if dev.type == 'cuda' else 'float32'}", flush=True)
    print(f"{'model':>6} {'params M':>8} {'steps/s':>8} {'audio s/s':>10} {'tokens/s':>10} {'peak GB':>8}", flush=True)
    rows = []
    for name in a.models.split(","):
        try:
            r = measure(name, a.size, dev, a.seconds, a.batch, a.steps, a.dtype)
        except torch.cuda.OutOfMemoryError as e:
            print(f"{name:>6} OOM: {str(e)[:80]}", flush=True)
            torch.cuda.empty_cache()
            continue
        rows.append(r)
        pk = "-" if r["peak_gb"] is None else f"{r['peak_gb']:.2f}"
        print(f"{name:>6} {r['params_m']:>8.1f} {r['steps_per_s']:>8.2f} {r['audio_s_per_s']:>10.1f} "
              f"{r['tokens_per_s']:>10.0f} {pk:>8}", flush=True)
    by = {r["model"]: r for r in rows}
    if len(by) == 2:
        print(f"HALL-E / VALL-E training throughput (audio s/s): {by['halle']['audio_s_per_s'] / by['valle']['audio_s_per_s']:.1f}x",
              flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"device": str(dev), "card": card, "size": a.size, "dtype": a.dtype, "rows": rows},
                                     indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
