"""HALL-E vs VALL-E generation cost at equal width/depth: AR steps, AR / NAR / decode wall
time, real-time factor and peak GPU memory for 10, 30, 60 and 180 s of speech.

    python benchmarks/bench_halle_vs_valle.py --device cuda --size paper
    python benchmarks/bench_halle_vs_valle.py --device cpu --size tiny --seconds 2 4   # smoke
    python benchmarks/bench_halle_vs_valle.py --device cpu --size tiny --codec mel --seconds 10 30 60

Both models have **random weights** and **EOS disabled**: each generates exactly the asked
duration (VALL-E: 75 Hz x 1 codebook AR + 7-stage NAR over the whole sequence; HALL-E:
8 Hz x 2 codebooks AR with the delay pattern + 3-level NAR with a 10 s sliding window at
48 Hz). Timing a trained model gives the same step counts; only its early stops differ.
Text: random phoneme ids at 12.5 phonemes per second; prompt: 3 s of random tokens. AR
sampling is top-k 50 with a fixed seed. Codecs are random-weight SEANets of EnCodec's
size (75 Hz for VALL-E; 48 Hz, hop 500 for HALL-E's teacher) and decode time is reported
separately (it is not what the paper's speed claim is about).

Measured (2026-11-24, one H100 80GB, `--device cuda --size paper`, fp32/TF32, batch 1;
AR 152M / 153M parameters, NAR 160M / 205M; HALL-E's "NAR peak" covers AR + NAR):

    sec  model ARsteps    AR s   NAR s  dec s    RTF  RTF-LM  peak GB
     10  valle     751    5.61    0.05   0.08  0.574   0.566   2.83
     10  halle      82    0.75    0.10   0.07  0.092   0.085   2.74
     30  valle    2251   14.64    0.15   0.13  0.497   0.493   3.00
     30  halle     242    2.05    0.19   0.09  0.078   0.075   2.79
     60  valle    4501   36.76    0.41   0.19  0.623   0.619   3.26
     60  halle     482    3.95    0.30   0.14  0.073   0.071   2.86
    180  valle   13501  211.51    2.81   0.35  1.193   1.191   4.30
    180  halle    1442    9.92    0.75   0.24  0.061   0.059   3.17

VALL-E / HALL-E: AR steps 9.2-9.4x; AR time 7.5x (10 s), 7.1x (30 s), 9.3x (60 s),
21.3x (180 s: VALL-E's per-step cost grows with its 13.5k-token context); total RTF 6.3x,
6.4x, 8.5x, 19.7x (the paper reports about 3.4x). HALL-E's NAR is slower than VALL-E's
below 60 s (3 levels of windowed 48 Hz passes + re-encoding vs 7 full passes at 75 Hz)
and 3.7x faster at 180 s, with flat memory thanks to the sliding window.

Measured (2026-11-30, shared 2-core CPU under load, `--device cpu --size tiny --codec mel
--seconds 10 30`; VALL-E on the shipped 48 Hz mel teacher, HALL-E on the shipped MRVQ;
decode = Griffin-Lim for both):

    sec  model ARsteps    AR s   NAR s   dec s    RTF  RTF-LM
     10  valle     481    3.45    0.59   21.49  2.553   0.404
     10  halle      82    0.75    0.45   21.28  2.247   0.120
     30  valle    1441   11.18    2.33  129.76  4.775   0.450
     30  halle     242    2.22    1.46  138.81  4.750   0.123

VALL-E / HALL-E at 48 Hz: AR steps 5.9-6.0x, AR time 4.6x / 5.0x, NAR 1.3x / 1.6x, LM time
3.4x / 3.7x; the CPU Griffin-Lim decode dominates the total (about 1.0x).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from halle_bench.baselines.codec import Codec, CodecConfig
from halle_bench.baselines.halle import HALLE
from halle_bench.baselines.mreq_tokenizer import MReQTokenizer
from halle_bench.baselines.mrvq import MRVQ, MRVQConfig
from halle_bench.baselines.sampling import SamplingOptions
from halle_bench.baselines.valle import VALLE

PHONEMES_PER_SECOND = 12.5
PROMPT_SECONDS = 3.0


def _no_eos(ar) -> None:
    """Forbid EOS so only the length cap ends generation (random weights would stop anywhere)."""
    orig = ar._logits

    def logits(h):
        out = orig(h)
        out[..., ar.audio_eos] = float("-inf")
        return out

    ar._logits = logits


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


class Phase:
    """Wall time and peak CUDA memory of a block."""

    def __init__(self, dev):
        self.dev = dev

    def __enter__(self):
        _sync(self.dev)
        if self.dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.dev)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        _sync(self.dev)
        self.seconds = time.perf_counter() - self.t0
        self.peak_gb = torch.cuda.max_memory_allocated(self.dev) / 2**30 if self.dev.type == "cuda" else float("nan")


def run_valle(model: VALLE, seconds: float, vocab: int, seed: int) -> dict:
    dev = model.device
    g = torch.Generator(device="cpu").manual_seed(seed)
    fr = model.codec.frame_rate
    n_text = int(PHONEMES_PER_SECOND * (seconds + PROMPT_SECONDS))
    text = torch.randint(0, vocab, (1, n_text), generator=g).to(dev)
    tl = torch.tensor([n_text], device=dev)
    tp = int(PROMPT_SECONDS * fr)
    prompt = torch.randint(0, model.codec.codebook_size, (1, model.codec.n_q, tp), generator=g).to(dev)
    pl = torch.tensor([tp], device=dev)
    frames = int(round(seconds * fr))
    opts = SamplingOptions(top_k=50, max_new_tokens=frames, max_len_ratio=0)
    gen = torch.Generator(device=dev).manual_seed(seed)
    with torch.no_grad():
        with Phase(dev) as ar:
            first = model.ar.generate(text, tl, prompt[:, :1], pl, opts, gen)[0]
        lens = torch.tensor([first.shape[-1]], device=dev)
        with Phase(dev) as nar:
            codes = model.nar.generate(text, tl, prompt, pl, first, lens)
        with Phase(dev) as dec:
            wav = model.codec.decode(codes)
    assert first.shape[-1] == frames, (first.shape, frames)
    return {"ar_steps": frames + 1, "ar_s": ar.seconds, "nar_s": nar.seconds, "decode_s": dec.seconds,
            "ar_peak_gb": ar.peak_gb, "nar_peak_gb": nar.peak_gb, "decode_peak_gb": dec.peak_gb,
            "audio_s": wav.shape[-1] / model.sample_rate}


def run_halle(model: HALLE, seconds: float, vocab: int, seed: int) -> dict:
    dev = model.device
    g = torch.Generator(device="cpu").manual_seed(seed)
    n_text = int(PHONEMES_PER_SECOND * (seconds + PROMPT_SECONDS))
    ids = torch.randint(0, vocab, (n_text,), generator=g).tolist()
    cfg = model.mrvq.cfg
    prompt = {}
    for k, r in enumerate(cfg.rates):
        lv = cfg.level(k)
        prompt[r] = torch.randint(0, lv["codebook_size"], (lv["quant_n_q"], int(PROMPT_SECONDS * r)), generator=g)
    frames = int(round(seconds * cfg.rates[0]))
    opts = SamplingOptions(top_k=50, max_new_tokens=frames, max_len_ratio=0)
    with torch.no_grad():
        with Phase(dev) as total:
            toks = model.generate_tokens(ids, prompt, opts, seed)
        t = dict(model.last_timing)
        with Phase(dev) as dec:
            wav = model.tokenizer.decode(toks)
    assert toks[cfg.rates[0]].shape[-1] == frames
    return {"ar_steps": t["ar_steps"], "ar_s": t["ar_seconds"], "nar_s": t["nar_seconds"], "decode_s": dec.seconds,
            "ar_peak_gb": float("nan"), "nar_peak_gb": total.peak_gb, "decode_peak_gb": dec.peak_gb,
            "audio_s": wav.shape[-1] / model.sample_rate}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", default="paper", choices=["paper", "tiny"])
    ap.add_argument("--seconds", type=float, nargs="+", default=[10, 30, 60, 180])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the rows here")
    ap.add_argument("--codec", default="seanet", choices=["seanet", "mel"],
                    help="seanet: random EnCodec-size SEANets (VALL-E 75 Hz); mel: the shipped 48 Hz mel "
                         "teacher (VALL-E at 48 Hz) and the shipped MRVQ")
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    if args.codec == "mel":
        # The shipped codecs: VALL-E on the 48 Hz mel teacher's 8 codebooks, HALL-E on the
        # shipped MRVQ distilled from it (decode = Griffin-Lim for both).
        from halle_bench.baselines import shipped

        valle = VALLE.build(shipped.load_teacher(), size=args.size, seed=0).to(dev)
        tok = shipped.load_mreq()
    else:
        valle = VALLE.build(Codec.from_config(CodecConfig(), seed=0), size=args.size, seed=0).to(dev)
        teacher = Codec.from_config(CodecConfig.teacher_48hz(), seed=0)
        torch.manual_seed(0)
        tok = MReQTokenizer(teacher, MRVQ(MRVQConfig(dim=teacher.dimension)))
    halle = HALLE.build(tok, size=args.size, seed=0).to(dev)
    _no_eos(valle.ar)
    _no_eos(halle.ar)
    vocab = valle.frontend.vocab_size
    n_params = lambda m: sum(p.numel() for p in m.parameters()) / 1e6
    print(f"device={dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else os.cpu_count()} ) size={args.size} "
          f"codec={args.codec} VALL-E at {valle.codec.frame_rate:g} Hz | "
          f"VALL-E AR {n_params(valle.ar):.1f}M NAR {n_params(valle.nar):.1f}M | "
          f"HALL-E AR {n_params(halle.ar):.1f}M NAR {n_params(halle.nar):.1f}M", flush=True)
    # warm-up (CUDA kernels, allocator) on a short item
    run_valle(valle, 1.0, vocab, args.seed)
    run_halle(halle, 1.0, vocab, args.seed)

    rows = []
    hdr = f"{'sec':>5} {'model':>6} {'ARsteps':>7} {'AR s':>8} {'NAR s':>8} {'dec s':>7} {'RTF':>7} {'RTF-LM':>7} {'ARpk GB':>8} {'NARpk GB':>8}"
    print(hdr, flush=True)
    for sec in args.seconds:
        # HALL-E first: a run cut short by a time limit (scripts/gpu-check.sh) loses the
        # long VALL-E item, not the HALL-E one measured in seconds
        for name, fn, m in (("halle", run_halle, halle), ("valle", run_valle, valle)):
            try:
                r = fn(m, sec, vocab, args.seed)
            except torch.cuda.OutOfMemoryError as e:  # report, keep going
                print(f"{sec:>5g} {name:>6} OOM: {str(e)[:80]}", flush=True)
                torch.cuda.empty_cache()
                continue
            r.update(model=name, seconds=sec, rtf=(r["ar_s"] + r["nar_s"] + r["decode_s"]) / sec,
                     rtf_lm=(r["ar_s"] + r["nar_s"]) / sec)
            rows.append(r)
            if args.json:  # after every row: a run cut short (scripts/gpu-check.sh's timeout) keeps what it measured
                with open(args.json, "w") as f:
                    json.dump({"device": str(dev), "size": args.size, "rows": rows}, f, indent=2)
            print(f"{sec:>5g} {name:>6} {r['ar_steps']:>7d} {r['ar_s']:>8.2f} {r['nar_s']:>8.2f} {r['decode_s']:>7.2f} "
                  f"{r['rtf']:>7.3f} {r['rtf_lm']:>7.3f} {r['ar_peak_gb']:>8.2f} {r['nar_peak_gb']:>8.2f}", flush=True)
        by = {x["model"]: x for x in rows if x["seconds"] == sec}
        if len(by) == 2:
            v, h = by["valle"], by["halle"]
            print(f"      ratio VALL-E/HALL-E: AR steps {v['ar_steps'] / h['ar_steps']:.1f}x, AR time {v['ar_s'] / h['ar_s']:.1f}x, "
                  f"NAR time {v['nar_s'] / h['nar_s']:.2f}x, LM time {(v['ar_s'] + v['nar_s']) / (h['ar_s'] + h['nar_s']):.1f}x, "
                  f"total {v['rtf'] / h['rtf']:.1f}x", flush=True)


if __name__ == "__main__":
    main()
