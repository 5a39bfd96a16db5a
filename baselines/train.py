"""Training loop shared by the AR and NAR models (VALL-E; HALL-E reuses it).

- Data: `Example`s (phoneme ids + codec codes). `build_examples` makes them from a manifest
  the harness reads (`halle_bench.data.read_manifest`) or from (wav path, text) pairs,
  with codec tokens cached on disk, keyed by the audio file's sha256 and the codec's
  identity (a changed codec never reuses stale tokens).
- Optimiser AdamW, linear warmup then cosine decay to `min_lr_ratio`, gradient clipping,
  bf16/fp16 autocast on CUDA (fp16 with a GradScaler).
- Checkpoints every `ckpt_every` steps into `out_dir/step-XXXXXXX` and `out_dir/last`:
  model weights + config (checkpoint.py), optimiser moments and RNG states in
  `train_state.safetensors` + `train_state.json`. `train(..., resume=True)` continues from
  `out_dir/last` exactly (same batches, same random draws) as if never interrupted.
- Batches: examples drawn with a seeded torch.Generator, padded; length-sorted buckets
  are left to the caller (a few hundred utterances per step at scale is fine as is).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from halle_bench.audio import load_audio, sha256_file
from halle_bench.errors import UtteranceError

from .checkpoint import CheckpointError, load_state_strict, read_config, save_checkpoint


@dataclass
class Example:
    text: list[int]
    codes: np.ndarray  # [n_q, T] int
    id: str = ""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 8
    lr: float = 5e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0
    log_every: int = 50
    ckpt_every: int = 0  # 0: only at the end
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"  # float32 | bfloat16 | float16 (autocast, CUDA)
    n_codebooks: int | None = None  # codebooks fed to the model (AR: 1; NAR: all)


def lr_lambda(step: int, cfg: TrainConfig) -> float:
    """Multiplier of cfg.lr at `step`: linear warmup, then cosine to min_lr_ratio."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    prog = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * prog))


# ------------------------------------------------------------------- data
class TokenCache:
    """Codec tokens on disk: <dir>/<codec id>/<audio sha256>.npy (int16/int32, no pickle)."""

    def __init__(self, directory: str | Path, codec):
        self.codec = codec
        ident = json.dumps(codec.identity(), sort_keys=True)
        self.dir = Path(directory) / hashlib.sha256(ident.encode()).hexdigest()[:16]
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0

    def codes(self, wav_path: str | Path) -> np.ndarray:
        key = sha256_file(wav_path)
        p = self.dir / f"{key}.npy"
        if p.exists():
            self.hits += 1
            return np.load(p, allow_pickle=False)
        self.misses += 1
        x, sr, _ = load_audio(wav_path, sr=self.codec.sample_rate)
        codes = self.codec.encode(x, sr)[0].cpu().numpy().astype(np.int32)
        tmp = p.with_name(p.name + ".tmp.npy")
        np.save(tmp, codes, allow_pickle=False)
        tmp.replace(p)
        return codes


def build_examples(
    source: str | Path | Sequence[tuple[str | Path, str]],
    frontend,
    codec,
    cache_dir: str | Path,
    max_seconds: float | None = None,
) -> tuple[list[Example], list[str]]:
    """Examples from a manifest path or (wav, text) pairs; returns (examples, errors).

    A bad item (missing audio, unpronounceable text) is reported in `errors`, not raised.
    """
    if isinstance(source, (str, Path)):
        from halle_bench.data import read_manifest  # the harness's readers

        pairs = [(u.id, u.audio, u.text) for u in read_manifest(Path(source)) if u.audio is not None]
    else:
        pairs = [(Path(w).stem, w, t) for w, t in source]
    cache = TokenCache(cache_dir, codec)
    out, errors = [], []
    for uid, wav, text in pairs:
        try:
            codes = cache.codes(wav)
            if max_seconds is not None and codes.shape[1] > max_seconds * codec.frame_rate:
                continue
            out.append(Example(frontend.encode(text).ids, codes, str(uid)))
        except (UtteranceError, OSError, ValueError) as e:
            errors.append(f"{uid}: {e}")
    return out, errors


def collate(batch: list[Example], n_codebooks: int | None = None, text_pad: int = 0, code_pad: int = 0):
    """Pad a list of examples -> (text [B,L], text_lens, codes [B,K,T], code_lens) LongTensors."""
    b = len(batch)
    k = n_codebooks or batch[0].codes.shape[0]
    lt = max(len(e.text) for e in batch)
    tc = max(e.codes.shape[1] for e in batch)
    text = torch.full((b, lt), text_pad, dtype=torch.long)
    codes = torch.full((b, k, tc), code_pad, dtype=torch.long)
    for i, e in enumerate(batch):
        text[i, : len(e.text)] = torch.tensor(e.text)
        codes[i, :, : e.codes.shape[1]] = torch.from_numpy(np.asarray(e.codes[:k], dtype=np.int64))
    tl = torch.tensor([len(e.text) for e in batch])
    cl = torch.tensor([e.codes.shape[1] for e in batch])
    return text, tl, codes, cl


# --------------------------------------------------------------- training
@dataclass
class TrainResult:
    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    seconds: float = 0.0


def _autocast(device: str, dtype: str):
    if dtype == "float32" or not device.startswith("cuda"):
        return torch.autocast(device_type="cpu", enabled=False)
    return torch.autocast(device_type="cuda", dtype=getattr(torch, dtype))


def _save_state(d: Path, opt: torch.optim.Optimizer, model: nn.Module, step: int, gen: torch.Generator, history) -> None:
    from safetensors.torch import save_file

    names = {id(p): n for n, p in model.named_parameters()}
    tensors: dict[str, Tensor] = {"rng.data": gen.get_state(), "rng.torch": torch.get_rng_state()}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            for k, v in st.items():
                if isinstance(v, Tensor):
                    tensors[f"opt.{names[id(p)]}.{k}"] = v.detach().cpu().contiguous().reshape(v.shape)
    save_file(tensors, str(d / "train_state.safetensors"))
    (d / "train_state.json").write_text(json.dumps({"step": step, "history": history[-1000:]}))


def _load_state(d: Path, opt: torch.optim.Optimizer, model: nn.Module, gen: torch.Generator) -> tuple[int, list]:
    from safetensors.torch import load_file

    p = d / "train_state.safetensors"
    if not p.exists():
        raise CheckpointError(f"checkpoint {d}: train_state.safetensors not found (cannot resume)")
    t = load_file(str(p))
    gen.set_state(t["rng.data"])
    torch.set_rng_state(t["rng.torch"])
    for n, prm in model.named_parameters():
        prefix = f"opt.{n}."
        st = {k[len(prefix):]: v.to(prm.device) for k, v in t.items() if k.startswith(prefix) and "." not in k[len(prefix):]}
        if st:
            opt.state[prm] = st
    meta = json.loads((d / "train_state.json").read_text())
    return int(meta["step"]), list(meta.get("history", []))


def train(
    model: nn.Module,
    examples: Sequence[Example],
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    model_config: dict[str, Any] | None = None,
    resume: bool = True,
    on_log: Callable[[dict[str, float]], None] | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train `model` (anything with `.loss(text, text_lens, codes, code_lens[, generator])`).

    `stop_after`: leave after this many steps of this call (a time-limited job), with a
    checkpoint, keeping the schedule of `cfg.steps`; the next call resumes.
    """
    if not examples:
        raise ValueError("no training examples")
    dev = torch.device(cfg.device)
    model.to(dev).train()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.dim() < 2 or "norm" in n or n.endswith("alpha") else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=cfg.betas,
    )
    step, history = 0, []
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and resume and (out / "last" / "config.json").exists():
        load_state_strict(model, out / "last" / "model.safetensors", where=str(out / "last"))
        step, history = _load_state(out / "last", opt, model, gen)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, cfg), last_epoch=-1)
    for g in opt.param_groups:
        g["lr"] = cfg.lr * lr_lambda(step, cfg)
    sched.last_epoch = step
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.dtype == "float16" and dev.type == "cuda")
    takes_gen = "generator" in model.loss.__code__.co_varnames
    t0 = time.perf_counter()
    acc_sum = loss_sum = 0.0
    n_sum = 0
    end = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    while step < end:
        idx = torch.randint(len(examples), (cfg.batch_size,), generator=gen).tolist()
        text, tl, codes, cl = (x.to(dev) for x in collate([examples[i] for i in idx], cfg.n_codebooks))
        with _autocast(cfg.device, cfg.dtype):
            loss, m = model.loss(text, tl, codes, cl, generator=gen) if takes_gen else model.loss(text, tl, codes, cl)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step()
        step += 1
        loss_sum += m["loss"]
        acc_sum += m["accuracy"]
        n_sum += 1
        if step % max(1, cfg.log_every) == 0 or step == cfg.steps:
            row = {"step": step, "loss": loss_sum / n_sum, "accuracy": acc_sum / n_sum,
                   "lr": opt.param_groups[0]["lr"], "grad_norm": float(gnorm)}
            history.append(row)
            if on_log:
                on_log(row)
            acc_sum = loss_sum = 0.0
            n_sum = 0
        if out is not None and (step == end or (cfg.ckpt_every and step % cfg.ckpt_every == 0)):
            _checkpoint(out, model, opt, step, gen, history, model_config or {})
    model.eval()
    res = TrainResult(step, history, out / "last" if out is not None else None, time.perf_counter() - t0)
    return res


def _checkpoint(out: Path, model, opt, step, gen, history, model_config) -> None:
    d = out / f"step-{step:07d}"
    save_checkpoint(d, model, model_config, {"step": step, "history": history[-1:]})
    _save_state(d, opt, model, step, gen, history)
    last = out / "last"
    tmp = out / "last.tmp"
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(d.name)
    tmp.replace(last)


__all__ = ["Example", "TrainConfig", "TrainResult", "TokenCache", "build_examples", "collate", "train", "lr_lambda", "read_config"]
