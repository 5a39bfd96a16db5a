"""VALL-E speed: AR ms/token with and without the KV cache, and end-to-end RTF.

    python benchmarks/bench_valle.py                       # CPU, tiny + paper sizes
    python benchmarks/bench_valle.py --device cuda --dtype bfloat16 --batch 1 4

Part 1 generates exactly N tokens (EOS disabled by a forced length: max_new_tokens=N and
an untrained model whose EOS we mask) for N in --lengths, and prints the mean time per
token, cached vs uncached, and the ratio time(N)/time(first N) per token (flat cache: the
issue asks < 1.3 for 2000 vs 250). Uncached decoding is quadratic, so it is only run up to
--uncached-max tokens.

Part 2 prints the RTF (seconds / audio seconds) of AR, NAR and codec decode for 10 s of
new speech after a 3 s prompt, for the tiny and the paper-size model, with a random codec
of EnCodec's shape (75 Hz x 8 x 1024; the codec's weights do not change its speed).
"""

from __future__ import annotations

import argparse
import time

import torch

from halle_bench.baselines.ar import ARConfig, CodecAR
from halle_bench.baselines.codec import Codec, CodecConfig
from halle_bench.baselines.sampling import SamplingOptions
from halle_bench.baselines.transformer import TransformerConfig


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


class _NoEOS(CodecAR):
    """Untrained models may emit EOS at any step; mask it so every run makes exactly N tokens."""

    def _logits(self, h):
        lg = super()._logits(h)
        lg[..., self.audio_eos] = float("-inf")
        return lg


def ar_ms_per_token(size, n, use_cache, dev, dtype, batch, text_len=100, prompt_len=225):
    torch.manual_seed(0)
    m = _NoEOS(ARConfig(150, 1024, 1, TransformerConfig.for_size(size, dropout=0.0))).to(dev).eval()
    text = torch.randint(0, 150, (batch, text_len), device=dev)
    prompt = torch.randint(0, 1024, (batch, 1, prompt_len), device=dev)
    tl = torch.full((batch,), text_len, device=dev)
    pl = torch.full((batch,), prompt_len, device=dev)
    opts = SamplingOptions(top_k=50, max_new_tokens=n, max_len_ratio=0)
    ctx = torch.autocast("cuda", dtype=getattr(torch, dtype)) if dtype != "float32" else torch.autocast("cpu", enabled=False)
    with ctx:
        m.generate(text, tl, prompt, pl, SamplingOptions(top_k=50, max_new_tokens=4), torch.Generator(dev).manual_seed(0), use_cache)
        _sync(dev)
        t0 = time.perf_counter()
        out = m.generate(text, tl, prompt, pl, opts, torch.Generator(dev).manual_seed(0), use_cache)
        _sync(dev)
    assert out[0].shape[1] == n
    return 1000 * (time.perf_counter() - t0) / n


def rtf(size, dev, dtype, batch, frames=750, prompt_frames=225, text_len=120):
    """RTF of AR + NAR + codec decode for `frames` new frames (10 s at 75 Hz) per item.

    Text ids are random (the phonemizer costs ~1 ms and is not what is measured); the
    codec is random with EnCodec's shape. Without the `encodec` package the decode is
    skipped and reported as nan.
    """
    from halle_bench.baselines.nar import CodecNAR, NARConfig

    torch.manual_seed(0)
    ar = _NoEOS(ARConfig(150, 1024, 1, TransformerConfig.for_size(size, dropout=0.0))).to(dev).eval()
    nar = CodecNAR(NARConfig(150, 1024, 8, TransformerConfig.for_size(size, dropout=0.0, adaptive_norm=True, n_stages=7))).to(dev).eval()
    try:
        codec = Codec.from_config(CodecConfig(name="random-encodec-shape"), seed=0).to(dev)
    except ImportError:
        codec = None
    text = torch.randint(0, 150, (batch, text_len), device=dev)
    tl = torch.full((batch,), text_len, device=dev)
    prompt = torch.randint(0, 1024, (batch, 8, prompt_frames), device=dev)
    pl = torch.full((batch,), prompt_frames, device=dev)
    ctx = (lambda: torch.autocast("cuda", dtype=getattr(torch, dtype))) if dtype != "float32" else (lambda: torch.autocast("cpu", enabled=False))
    with torch.no_grad():
        with ctx():
            ar.generate(text, tl, prompt[:, :1], pl, SamplingOptions(top_k=50, max_new_tokens=4), torch.Generator(dev).manual_seed(0))
        _sync(dev)
        t0 = time.perf_counter()
        with ctx():
            firsts = ar.generate(text, tl, prompt[:, :1], pl, SamplingOptions(top_k=50, max_new_tokens=frames, max_len_ratio=0), torch.Generator(dev).manual_seed(0))
        _sync(dev)
        t1 = time.perf_counter()
        first = torch.stack([f[0] for f in firsts])
        lens = torch.full((batch,), frames, device=dev)
        with ctx():
            codes = nar.generate(text, tl, prompt, pl, first, lens)
        _sync(dev)
        t2 = time.perf_counter()
        if codec is not None:
            codec.decode(codes)
        _sync(dev)
        t3 = time.perf_counter()
    audio = batch * frames / 75.0
    dec = (t3 - t2) / audio if codec is not None else float("nan")
    return (t3 - t0) / audio, (t1 - t0) / audio, (t2 - t1) / audio, dec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--sizes", nargs="+", default=["tiny", "paper"])
    ap.add_argument("--lengths", nargs="+", type=int, default=[250, 500, 1000, 2000])
    ap.add_argument("--uncached-max", type=int, default=500)
    ap.add_argument("--batch", nargs="+", type=int, default=[1])
    ap.add_argument("--skip-rtf", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    print(f"# bench_valle on {name}, torch {torch.__version__}, dtype {a.dtype}")
    for size in a.sizes:
        for b in a.batch:
            print(f"\n## AR ms/token, size={size}, batch={b} (prompt 225 frames, text 100 phonemes)")
            print(f"{'tokens':>7} {'cached':>9} {'uncached':>9} {'speedup':>8} {'cached/first':>13}")
            first = None
            for n in a.lengths:
                c = ar_ms_per_token(size, n, True, dev, a.dtype, b)
                first = first or c
                u = ar_ms_per_token(size, n, False, dev, a.dtype, b) if n <= a.uncached_max else float("nan")
                print(f"{n:>7} {c:>9.2f} {u:>9.2f} {u / c:>8.2f} {c / first:>13.2f}", flush=True)
    if not a.skip_rtf:
        print("\n## RTF (10 s of new speech, 3 s prompt; AR + NAR + codec decode)")
        print(f"{'size':>6} {'batch':>5} {'rtf':>8} {'ar_rtf':>8} {'nar_rtf':>8} {'dec_rtf':>8}")
        for size in a.sizes:
            for b in a.batch:
                r, ar_r, nar_r, dec = rtf(size, dev, a.dtype, b)
                print(f"{size:>6} {b:>5} {r:>8.3f} {ar_r:>8.3f} {nar_r:>8.3f} {dec:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
