"""Alignment diagnostics of a trained VALL-E / HALL-E checkpoint on a manifest.

`python -m halle_bench.baselines.training.diagnose CKPT_DIR MANIFEST [options]`

CKPT_DIR is a model folder the `valle` / `halle` systems load (the `out` of `halle-bench
train`, a `training.export` or `training.ship` folder), or a training config (`*.toml`):
then the model is built as that training builds it and each stage takes the raw weights of
its last checkpoint (`out/train/<stage>/last`), so that a campaign can be diagnosed while it
runs (a stage that has not checkpointed yet is left out, and the speak check needs both).
For each stage it prints the
teacher-forced loss with the right texts and with the texts rotated across the items, their
difference (the text-shuffle gap, nats per token: ~0 means the model ignores its text), the
accuracy and, for the AR, the top-10 accuracy (alignment.py). Then the "does it speak"
check (speak.py): the `--items` shortest texts, each prompted by the shortest other item,
synthesised greedily (`--top-k 1`) within `--budget` seconds and scored with the harness's
WER scorer: WER and CER. `--json PATH` also writes the numbers.

The items are the manifest's first `--limit` utterances with audio (use held-out ones: on
training items the numbers measure memory). They are tokenised with the checkpoint's own
codec / MReQ tokenizer exactly as training does (training/shards.py). A bad manifest or
checkpoint exits with status 2 and names it; an item that cannot be read is skipped and
counted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def load_model(ckpt: Path, device: str = "cpu"):
    """(kind, model) for a VALL-E or HALL-E checkpoint folder, by its config's architecture."""
    from halle_bench.baselines.checkpoint import CheckpointError, read_config

    arch = read_config(ckpt).get("config", {}).get("architecture")
    if arch == "valle":
        from halle_bench.baselines.valle import VALLE

        return "valle", VALLE.load(ckpt).to(device)
    if arch == "halle":
        from halle_bench.baselines.halle import HALLE

        return "halle", HALLE.load(ckpt, device=device)
    raise CheckpointError(f"checkpoint {ckpt}: architecture {arch!r} is neither 'valle' nor 'halle'")


def model_from_training(config: Path, device: str = "cpu"):
    """(kind, model, stages with weights) for a training config: the model as run.py builds it,
    each stage loaded from `out/train/<stage>/last` when that exists (raw weights, not the EMA)."""
    from halle_bench.baselines.checkpoint import load_state_strict
    from halle_bench.baselines.text import TextFrontend
    from halle_bench.progress import NullReporter

    from .config import load_train_config
    from .run import _make_codec, _transformer_kw

    job = load_train_config(config)
    seed = int(job.train.get("seed", 0))
    fe = TextFrontend()
    if job.model == "valle":
        from halle_bench.baselines.valle import VALLE

        model = VALLE.build(_make_codec(job, [], NullReporter()), fe, size=job.size, seed=seed, **_transformer_kw(job))
        modules = {"ar": model.ar, "nar": model.nar}
    elif job.model == "halle":
        from halle_bench.baselines.halle import HALLE
        from halle_bench.baselines.mreq_tokenizer import MReQTokenizer
        from halle_bench.baselines.train_halle import NARTrainable

        win = {k: int(job.model_config[k]) for k in ("window", "overlap") if k in job.model_config}
        model = HALLE.build(MReQTokenizer.load(job.tokenizer), fe, size=job.size, seed=seed, **win,
                            **_transformer_kw(job))
        modules = {"ar": model.ar, "nar": NARTrainable(model.nar, model.mrvq)}  # the NAR stage saves this module
    else:
        raise job.error(f"diagnose reads VALL-E / HALL-E trainings, not {job.model!r}", "model")
    loaded = []
    for stage, module in modules.items():
        last = job.out / "train" / stage / "last" / "model.safetensors"
        if last.exists():
            load_state_strict(module, last, where=str(last.parent))
            loaded.append(stage)
    if not loaded:
        raise job.error(f"{job.out}: no stage has checkpointed yet (train/ar/last, train/nar/last)", "out")
    model.to(device)
    return job.model, model, loaded


def stage_examples(kind: str, model, items: Sequence[tuple[str, str, np.ndarray]]):
    """(id, text, wav at the model's rate) -> {stage: (examples, n_codebooks, trainable module)}."""
    from halle_bench.baselines.train import Example

    from .shards import codec_encoder, halle_encoder

    fe = model.frontend
    ids = [fe.encode(t).ids for _, t, _ in items]
    if kind == "valle":
        enc = codec_encoder(model.codec)
        codes = [enc([w])[0]["codes"] for _, _, w in items]
        ex = [Example(i, c, u) for i, c, (u, _, _) in zip(ids, codes, items)]
        return {"ar": (ex, 1, model.ar), "nar": (ex, None, model.nar)}
    from halle_bench.baselines.train_halle import NARTrainable

    enc = halle_encoder(model.tokenizer)
    toks = [enc([w])[0] for _, _, w in items]
    return {"ar": ([Example(i, t["ar"], u) for i, t, (u, _, _) in zip(ids, toks, items)], None, model.ar),
            "nar": ([Example(i, t["nar"], u) for i, t, (u, _, _) in zip(ids, toks, items)], None,
                    NARTrainable(model.nar, model.mrvq))}


def diagnose(ckpt: str | Path, manifest: str | Path, fmt: str | None = None, limit: int = 64, items: int = 4,
             asr: str = "whisper-base", budget_s: float = 120.0, top_k: int = 1, temperature: float = 1.0,
             batch_size: int = 8, device: str = "cpu", speak: bool = True, seed: int = 0, log=print) -> dict[str, Any]:
    """Every number the module docstring lists, as a dict (see `main` for the printout)."""
    import torch

    from halle_bench.audio import load_audio
    from halle_bench.data import read_manifest
    from halle_bench.errors import ConfigError, UtteranceError

    from .loop import validation_loss
    from .speak import SpeakCheck, pair_prompts, sampling_options

    ckpt = Path(ckpt)
    if ckpt.is_file() and ckpt.suffix == ".toml":
        kind, model, stages = model_from_training(ckpt, device)
    else:
        (kind, model), stages = load_model(ckpt, device), ["ar", "nar"]
    sr = model.sample_rate
    utts = [u for u in read_manifest(Path(manifest), fmt) if u.audio is not None][:limit]
    held, skipped = [], []
    for u in utts:
        try:
            held.append((str(u.id), u.text, load_audio(u.audio, sr=sr)[0]))
        except (UtteranceError, OSError) as e:
            skipped.append(f"{u.id}: {e}")
    if len(held) < 2:
        raise ConfigError(f"need at least 2 readable utterances with audio and text, got {len(held)}", manifest)
    out: dict[str, Any] = {"checkpoint": str(ckpt), "kind": kind, "manifest": str(manifest), "items": len(held),
                           "skipped": skipped, "stages": {}, "trained_stages": stages}
    t0 = time.perf_counter()
    with torch.no_grad():
        for stage, (ex, k, module) in stage_examples(kind, model, held).items():
            if stage not in stages:
                continue
            module.eval()
            out["stages"][stage] = validation_loss(module, ex, batch_size, k, device, seed)
    out["teacher_forced_seconds"] = round(time.perf_counter() - t0, 1)
    if speak and len(stages) == 2:
        from halle_bench.baselines.halle_system import HALLESystem
        from halle_bench.baselines.valle_system import VALLESystem

        cap = (HALLESystem if kind == "halle" else VALLESystem).default_max_len_ratio
        opts = sampling_options({"top_k": top_k, "temperature": temperature}, cap)
        check = SpeakCheck(pair_prompts([(u, t, w, sr) for u, t, w in held], items),
                           {"asr": asr, "beam_size": 1}, "cuda" if device.startswith("cuda") else "cpu", seed, budget_s)
        try:
            row = check(lambda text, pw, psr, pt, sd: (model.synthesize(text, pw, pt, opts, seed=sd, prompt_sr=psr),
                                                       sr))
        finally:
            check.close()
        out["speak"] = {**row, "top_k": opts.top_k, "temperature": opts.temperature,
                        "max_len_ratio": opts.max_len_ratio, "errors": list(check.errors)}
    return out


def report(d: dict[str, Any]) -> str:
    lines = [f"{d['kind']} checkpoint {d['checkpoint']}: {d['items']} items from {d['manifest']}"
             + (f" ({len(d['skipped'])} skipped)" if d["skipped"] else ""),
             f"{'stage':6} {'loss':>8} {'shuffled':>9} {'gap':>8} {'acc':>7} {'top10':>7}"]
    for st, r in d["stages"].items():
        top = r.get("val_top10")
        lines.append(f"{st:6} {r['val_loss']:8.4f} {r.get('val_loss_shuffled', float('nan')):9.4f} "
                     f"{r.get('val_shuffle_gap', float('nan')):8.4f} {r['val_accuracy']:7.3f} "
                     + (f"{top:7.3f}" if top is not None else f"{'-':>7}"))
    lines.append("gap: loss with texts rotated across the items minus with the right texts (nats/token; ~0: "
                 "the text is ignored)")
    if len(d.get("trained_stages", ())) < 2:
        lines.append(f"only {', '.join(d['trained_stages'])} has checkpointed: no speak check")
    s = d.get("speak")
    if s:
        lines.append(f"speak (top-k {s['top_k']}, T {s['temperature']:g}): "
                     f"WER {s['val_wer']:.3f}  CER {s['val_cer']:.3f}"
                     f"  ({s['speak_done']}/{s['speak_items']} items in {s['speak_seconds']:.0f} s, "
                     f"{s['speak_failed']} failed)")
        lines += [f"  failed {e}" for e in s.get("errors", [])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from halle_bench.errors import HalleBenchError

    ap = argparse.ArgumentParser(prog="python -m halle_bench.baselines.training.diagnose",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="a VALL-E / HALL-E checkpoint folder, or a training config (.toml)")
    ap.add_argument("manifest", help="held-out utterances (any manifest the harness reads)")
    ap.add_argument("--format", default=None, help="the manifest's format (default: inferred)")
    ap.add_argument("--limit", type=int, default=64, help="use the first N utterances (default 64)")
    ap.add_argument("--items", type=int, default=4, help="texts the speak check synthesises (default 4)")
    ap.add_argument("--asr", default="whisper-base", help="the WER scorer's ASR (whisper-tiny.en is faster)")
    ap.add_argument("--budget", type=float, default=120.0, help="speak check time budget, seconds (default 120)")
    ap.add_argument("--top-k", type=int, default=1, help="speak check sampling (default 1: greedy)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=8, help="teacher-forced batch size")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-speak", action="store_true", help="teacher-forced numbers only")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    a = ap.parse_args(argv)
    if a.limit < 2 or a.items < 1 or a.budget <= 0 or a.top_k < 0 or a.temperature <= 0 or a.batch_size < 1:
        ap.error("--limit >= 2, --items >= 1, --budget > 0, --top-k >= 0, --temperature > 0, --batch-size >= 1")
    try:
        d = diagnose(a.checkpoint, a.manifest, a.format, a.limit, a.items, a.asr, a.budget, a.top_k, a.temperature,
                     a.batch_size, a.device, not a.no_speak)
    except (HalleBenchError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report(d))
    if a.json:
        Path(a.json).write_text(json.dumps(d, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
