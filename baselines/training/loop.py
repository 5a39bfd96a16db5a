"""The training loop of the AR and NAR models (VALL-E and HALL-E), single or data-parallel.

`train(model, examples, cfg, out_dir, ...)` trains anything with
`.loss(text, text_lens, codes, code_lens[, generator]) -> (loss, {"loss", "accuracy"})`.

* Batches: `DurationBatchSampler` (a frame budget per batch, or a fixed count), fed through a
  `torch.utils.data.DataLoader` with `cfg.num_workers` workers; `examples` may be a list of
  `Example`s or a lazy sequence (`shards.ShardExamples`, memory-mapped token shards) with a
  `lengths` attribute so that planning never loads the tokens.
* One optimiser step = `cfg.accum_steps` micro-batches on every rank. Each micro-batch loss is
  weighted by its share of the step's items (all ranks and micro-batches), gradients are summed
  over ranks once per step (`dist.allreduce_grads`): the update is the item-weighted mean over
  the global batch, whatever the number of processes or micro-batches.
* AdamW, linear warmup then cosine decay, gradient clipping, bf16/fp16 autocast on CUDA.
* Optional weight EMA (`cfg.ema` = decay, warmed up by `ema_decay`): kept in fp32, saved with the
  training state, used for validation and put into the model when the stage finishes (what gets
  exported).
* Validation every `cfg.val_every` steps and at the end (rank 0): mean loss over `val_examples`
  with a fixed generator, the text-shuffle gap and the AR's top-10 accuracy (alignment.py),
  then `on_eval(step, model)` (the "does it speak" check) whose values join the row. Rows go to `on_log` and to `metrics_path` (JSONL, see metrics.py).
* Checkpoints (rank 0) every `cfg.ckpt_every` steps and at the end into `out_dir/step-XXXXXXX`
  and `out_dir/last`: weights + config (checkpoint.py), optimiser moments, EMA, sampler position
  and RNG states in `train_state.safetensors` + `train_state.json`. Resuming continues exactly
  (same batches, same random draws) as if never interrupted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from halle_bench.baselines.checkpoint import CheckpointError, load_state_strict, save_checkpoint
from halle_bench.baselines.train import Example, TrainConfig, TrainResult, collate, lr_lambda

from . import dist as D
from .sampler import DurationBatchSampler


# ------------------------------------------------------------------ data plumbing
class _Items(torch.utils.data.Dataset):
    """Passes the sampler's (item, n_global, epoch, index) through to the collate function."""

    def __init__(self, examples):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, key):
        i, n_global, epoch, index = key
        return self.examples[i], n_global, epoch, index


class _Collate:
    def __init__(self, n_codebooks: int | None):
        self.k = n_codebooks

    def __call__(self, batch):
        ex = [b[0] for b in batch]
        return collate(ex, self.k), len(ex), batch[0][1], (batch[0][2], batch[0][3])


class _Positions:
    """The sampler's batches tagged with the (epoch, index) after each one (for resume)."""

    def __init__(self, sampler: DurationBatchSampler):
        self.s = sampler

    def __iter__(self):
        epoch, index = self.s.epoch, self.s.index
        n = len(self.s.plan(epoch))
        for b in self.s:
            index += 1
            if index >= n:
                epoch, index = epoch + 1, 0
                n = len(self.s.plan(epoch))
            yield [(i, g, epoch, index) for i, g in b]


def lengths_of(examples) -> list[int]:
    ls = getattr(examples, "lengths", None)
    return list(ls) if ls is not None else [int(e.codes.shape[1]) for e in examples]


# ------------------------------------------------------------------ state
def _autocast(device: str, dtype: str):
    if dtype == "float32" or not device.startswith("cuda"):
        return torch.autocast(device_type="cpu", enabled=False)
    return torch.autocast(device_type="cuda", dtype=getattr(torch, dtype))


def _save_state(d: Path, opt, model: nn.Module, step: int, gen: torch.Generator, history, pos, ema) -> None:
    from safetensors.torch import save_file

    names = {id(p): n for n, p in model.named_parameters()}
    tensors: dict[str, Tensor] = {"rng.data": gen.get_state(), "rng.torch": torch.get_rng_state()}
    for group in opt.param_groups:
        for p in group["params"]:
            for k, v in opt.state.get(p, {}).items():
                if isinstance(v, Tensor):
                    tensors[f"opt.{names[id(p)]}.{k}"] = v.detach().cpu().contiguous().reshape(v.shape)
    for n, t in (ema or {}).items():
        tensors[f"ema.{n}"] = t.detach().cpu().contiguous()
    save_file(tensors, str(d / "train_state.safetensors"))
    (d / "train_state.json").write_text(json.dumps({"step": step, "epoch": pos[0], "index": pos[1],
                                                    "history": history[-1000:]}))


def _load_state(d: Path, opt, model: nn.Module, gen: torch.Generator, ema) -> tuple[int, list, tuple[int, int]]:
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
    if ema is not None:
        for n in ema:
            if f"ema.{n}" in t:
                ema[n].copy_(t[f"ema.{n}"])
            else:  # a run that started without EMA: start the average from the current weights
                ema[n].copy_(dict(model.named_parameters())[n].detach().float())
    meta = json.loads((d / "train_state.json").read_text())
    # checkpoints written before the sampler (random draws): restart the epoch plan
    return int(meta["step"]), list(meta.get("history", [])), (int(meta.get("epoch", 0)), int(meta.get("index", 0)))


def _checkpoint(out: Path, model, opt, step, gen, history, model_config, pos, ema) -> None:
    d = out / f"step-{step:07d}"
    save_checkpoint(d, model, model_config, {"step": step, "history": history[-1:]})
    _save_state(d, opt, model, step, gen, history, pos, ema)
    last = out / "last"
    tmp = out / "last.tmp"
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(d.name)
    tmp.replace(last)


class _EMASwap:
    """Temporarily put the EMA weights into the model (validation)."""

    def __init__(self, model: nn.Module, ema: dict[str, Tensor] | None):
        self.model, self.ema, self.saved = model, ema, None

    def __enter__(self):
        if self.ema:
            params = dict(self.model.named_parameters())
            self.saved = {n: params[n].detach().clone() for n in self.ema}
            with torch.no_grad():
                for n, t in self.ema.items():
                    params[n].copy_(t.to(params[n].dtype))
        return self

    def __exit__(self, *exc):
        if self.saved:
            params = dict(self.model.named_parameters())
            with torch.no_grad():
                for n, t in self.saved.items():
                    params[n].copy_(t)


def ema_decay(decay: float, step: int) -> float:
    """The EMA decay at optimiser step `step` (0-based): `decay`, warmed up as (1 + t) / (10 + t).

    Without the warm-up the EMA starts at the initial weights and keeps decay**t of them: after
    800 steps at 0.999 that is 45%, and a short stage would export mostly random weights. With
    it the EMA follows the weights closely early on and averages over ~1 / (1 - decay) steps
    once t is large (as TensorFlow's ExponentialMovingAverage with num_updates)."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def validation_loss(model: nn.Module, examples: Sequence[Example], batch_size: int, n_codebooks: int | None,
                    device: str, seed: int = 0, shuffle: bool = True, topk: int = 10) -> dict[str, float]:
    """Item-weighted mean loss / accuracy over `examples` (length-sorted batches, fixed generator),
    and the alignment diagnostics of alignment.py:

    * `val_loss_shuffled`, `val_shuffle_gap` (`shuffle`, at least 2 items): the same batches
      with the texts rotated across the items, and its loss minus `val_loss`;
    * `val_top{topk}` (models with `targets`, i.e. the AR stages): top-k accuracy over every
      target token."""
    from .alignment import ar_topk_hits, rotated_texts

    was = model.training
    model.eval()
    takes_gen = "generator" in model.loss.__code__.co_varnames
    lens = lengths_of(examples)
    order = sorted(range(len(examples)), key=lambda i: lens[i])

    def mean_loss(items: Sequence[Example], top: bool) -> tuple[float, float, tuple[int, int]]:
        gen = torch.Generator().manual_seed(seed + 1)  # the same draws for the true and the shuffled pass
        tot = acc = 0.0
        hits = [0.0, 0]
        for s in range(0, len(items), batch_size):
            batch = list(items[s:s + batch_size])
            text, tl, codes, cl = (x.to(device) for x in collate(batch, n_codebooks))
            _, m = model.loss(text, tl, codes, cl, generator=gen) if takes_gen else model.loss(text, tl, codes, cl)
            tot += m["loss"] * len(batch)
            acc += m["accuracy"] * len(batch)
            if not top:
                continue
            if topk == 10 and "top10" in m and "tokens" in m:  # CodecAR.loss reports it: no second pass
                hits[0] += m["top10"] * m["tokens"]
                hits[1] += m["tokens"]
            elif (h := ar_topk_hits(model, text, tl, codes, cl, topk)) is not None:
                hits[0] += h[0]
                hits[1] += h[1]
        return tot / len(items), acc / len(items), (hits[0], hits[1])

    try:
        loss, acc, (hits, n) = mean_loss([examples[i] for i in order], topk > 0)
        row = {"val_loss": loss, "val_accuracy": acc}
        if n:
            row[f"val_top{topk}"] = hits / n
        if shuffle and len(order) >= 2:
            shuffled, _, _ = mean_loss(rotated_texts(examples, order), False)
            row.update(val_loss_shuffled=shuffled, val_shuffle_gap=shuffled - loss)
    finally:
        model.train(was)
    return row


# ------------------------------------------------------------------ the loop
def train(
    model: nn.Module,
    examples: Sequence[Example],
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    model_config: dict[str, Any] | None = None,
    resume: bool = True,
    on_log: Callable[[dict[str, float]], None] | None = None,
    stop_after: int | None = None,
    val_examples: Sequence[Example] | None = None,
    on_eval: Callable[[int, nn.Module], dict[str, float]] | None = None,
    metrics_path: str | Path | None = None,
    stage: str = "train",
    progress=None,
) -> TrainResult:
    """Train `model` (see the module docstring). `stop_after`: leave after this many steps of this
    call (a time-limited job), with a checkpoint, keeping the schedule of `cfg.steps`."""
    if len(examples) == 0:
        raise ValueError("no training examples")
    info = D.current()
    dev = torch.device(cfg.device)
    model.to(dev).train()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.dim() < 2 or "norm" in n or n.endswith("alpha") else decay).append(p)
    params = decay + no_decay
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=cfg.betas,
    )
    ema = ({n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}
           if cfg.ema > 0 else None)
    step, history, pos = 0, [], (0, 0)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and resume and (out / "last" / "config.json").exists():
        load_state_strict(model, out / "last" / "model.safetensors", where=str(out / "last"))
        step, history, pos = _load_state(out / "last", opt, model, gen, ema)
    D.broadcast_params(model)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, cfg), last_epoch=-1)
    for g in opt.param_groups:
        g["lr"] = cfg.lr * lr_lambda(step, cfg)
    sched.last_epoch = step
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.dtype == "float16" and dev.type == "cuda")
    takes_gen = "generator" in model.loss.__code__.co_varnames
    log = None
    if metrics_path is not None and info.is_main:
        from .metrics import MetricsLog

        log = MetricsLog(metrics_path, stage, resume_step=step)

    lengths = lengths_of(examples)
    sampler = DurationBatchSampler(lengths, cfg.seed, cfg.batch_size, cfg.max_frames, info.rank, info.world,
                                   cfg.bucket_pool, pos[0], pos[1])
    from .resident import ResidentTokens, resident_batches, use_resident

    if use_resident(cfg.resident, dev):  # every token on the device once, batches gathered there
        loader = None
        it = resident_batches(ResidentTokens(examples, dev, cfg.n_codebooks), sampler)
    else:
        loader = torch.utils.data.DataLoader(_Items(examples), batch_sampler=_Positions(sampler),
                                             collate_fn=_Collate(cfg.n_codebooks), num_workers=cfg.num_workers,
                                             persistent_workers=False, prefetch_factor=2 if cfg.num_workers else None,
                                             # its own generator: the iterator's base seed must not draw from
                                             # the global RNG (dropout), or a resumed run would drift
                                             generator=torch.Generator().manual_seed(cfg.seed))
        it = iter(loader)
    t0 = time.perf_counter()
    acc_sum = loss_sum = 0.0
    n_sum = 0
    end = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)

    def evaluate(at: int) -> dict[str, Any]:
        row: dict[str, Any] = {"step": at}
        with _EMASwap(model, ema):
            if val_examples:
                row.update(validation_loss(model, val_examples, cfg.batch_size, cfg.n_codebooks, cfg.device, cfg.seed))
            if on_eval is not None:
                model.eval()
                row.update(on_eval(at, model))
        model.train()
        return row

    while step < end:
        micro = [next(it) for _ in range(cfg.accum_steps)]
        n_step = sum(m[2] for m in micro)  # items in the whole global step (all ranks, all micro-batches)
        opt.zero_grad(set_to_none=True)
        contrib = torch.zeros(2, dtype=torch.float64)
        for (text, tl, codes, cl), n_local, _, _ in micro:
            text, tl, codes, cl = (x.to(dev) for x in (text, tl, codes, cl))  # a no-op when resident
            with _autocast(cfg.device, cfg.dtype):
                loss, m = (model.loss(text, tl, codes, cl, generator=gen) if takes_gen
                           else model.loss(text, tl, codes, cl))
            w = n_local / n_step
            scaler.scale(loss * w).backward()
            contrib += torch.tensor([m["loss"] * w, m["accuracy"] * w], dtype=torch.float64)
        pos = micro[-1][3]
        contrib = D.allreduce_grads(params, contrib)
        scaler.unscale_(opt)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step()
        if ema is not None:
            d = ema_decay(cfg.ema, step)
            with torch.no_grad():  # one fused kernel per op, not two per weight (a GPU step is ~ms)
                named = dict(model.named_parameters())
                avg = list(ema.values())
                torch._foreach_mul_(avg, d)
                torch._foreach_add_(avg, [named[n].detach().float() for n in ema], alpha=1 - d)
        step += 1
        loss_sum += float(contrib[0])
        acc_sum += float(contrib[1])
        n_sum += 1
        if progress is not None:
            progress.advance(1)
        if step % max(1, cfg.log_every) == 0 or step == cfg.steps:
            row = {"step": step, "loss": loss_sum / n_sum, "accuracy": acc_sum / n_sum,
                   "lr": opt.param_groups[0]["lr"], "grad_norm": float(gnorm), "epoch": pos[0],
                   "seconds": round(time.perf_counter() - t0, 3)}
            history.append(row)
            if on_log and info.is_main:
                on_log(row)
            if log is not None:
                log.write(row)
            acc_sum = loss_sum = 0.0
            n_sum = 0
        if info.is_main and (val_examples or on_eval) and (
                (cfg.val_every and step % cfg.val_every == 0) or step == cfg.steps):
            row = evaluate(step)
            history.append(row)
            if on_log:
                on_log(row)
            if log is not None:
                log.write(row)
        if out is not None and info.is_main and (step == end or (cfg.ckpt_every and step % cfg.ckpt_every == 0)):
            _checkpoint(out, model, opt, step, gen, history, model_config or {}, pos, ema)
    del it, loader
    if ema is not None and step >= cfg.steps:
        named = dict(model.named_parameters())
        with torch.no_grad():
            for n, t in ema.items():
                named[n].copy_(t.to(named[n].dtype))
    model.eval()
    D.barrier()
    return TrainResult(step, history, out / "last" if out is not None else None, time.perf_counter() - t0)


__all__ = ["train", "validation_loss", "lengths_of", "ema_decay"]
