"""Training data-path figures: padding of duration-bucketed vs random batches, and the token
extraction stage (batched vs one item per call; a second run on the same data).

    python benchmarks/bench_training.py [--items 48] [--seed 0]

Prints figures and ratios; asserts nothing (timings depend on the machine).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def padding(lengths: np.ndarray, batches: list[list[int]]) -> tuple[float, float]:
    """(share of padded frames, real frames per batch)."""
    real = pad = 0
    for b in batches:
        ls = lengths[b]
        real += int(ls.sum())
        pad += int(ls.max() * len(ls) - ls.sum())
    return pad / (real + pad), real / len(batches)


def bench_sampler(seed: int) -> None:
    from halle_bench.baselines.training.sampler import plan_batches

    rng = np.random.default_rng(seed)
    lengths = (rng.uniform(2, 40, 20000) * 48).astype(int)  # 2-40 s clips at 48 Hz
    g = np.random.default_rng(seed)
    rand = [g.integers(0, len(lengths), 8).tolist() for _ in range(len(lengths) // 8)]  # the old draws
    budget = int(8 * lengths.mean())
    buck = plan_batches(lengths, seed, 0, max_frames=budget)
    pr, fr = padding(lengths, rand)
    pb, fb = padding(lengths, buck)
    print(f"sampler: 20000 clips of 2-40 s at 48 Hz; random batches of 8 vs max_frames = {budget}")
    cost_r, cost_b = 1 / (1 - pr), 1 / (1 - pb)  # frames computed per real frame
    print(f"  padded share: random {pr:.1%}, bucketed {pb:.1%}; frames computed per real frame {cost_r:.2f} vs "
          f"{cost_b:.2f} (x{cost_r / cost_b:.2f} less compute for the same data; real frames per batch "
          f"{fr:.0f} vs {fb:.0f})")


def bench_extraction(n: int, seed: int) -> None:
    import torch

    from halle_bench.audio import save_audio
    from halle_bench.baselines.codec import Codec, CodecConfig
    from halle_bench.baselines.training.shards import WavHasher, codec_encoder, extract_tokens

    torch.set_num_threads(2)
    codec = Codec.from_config(CodecConfig.tiny(), seed=0)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        paths = []
        for i in range(n):
            p = d / f"{i}.wav"
            save_audio(p, (0.1 * rng.standard_normal(int(16000 * rng.uniform(1, 6)))).astype(np.float32), 16000)
            paths.append(p)
        secs = sum(p.stat().st_size for p in paths) / 32000
        times = {}
        for bs in (1, 16):
            root = d / f"tok{bs}"
            h = WavHasher(root / "h.json")
            items = [(h.sha256(p), p) for p in paths]
            t0 = time.perf_counter()
            extract_tokens(items, codec_encoder(codec), {"b": bs}, root, codec.sample_rate, batch_size=bs)
            times[bs] = time.perf_counter() - t0
            h.save()
        h = WavHasher(d / "tok16" / "h.json")
        t0 = time.perf_counter()
        items = [(h.sha256(p), p) for p in paths]
        _, st = extract_tokens(items, codec_encoder(codec), {"b": 16}, d / "tok16", codec.sample_rate)
        again = time.perf_counter() - t0
    print(f"extraction: {n} wavs, {secs:.0f} s of audio, tiny codec on CPU (2 threads)")
    print(f"  one item per call {times[1]:.2f} s, 16 per call {times[16]:.2f} s (x{times[1] / times[16]:.2f})")
    print(f"  second run: {again:.3f} s, {st.encoded} encoded, {h.hashed} wavs re-hashed (x{times[16] / again:.0f} faster)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    bench_sampler(a.seed)
    bench_extraction(a.items, a.seed)


if __name__ == "__main__":
    main()
