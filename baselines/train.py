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
- The loop itself (duration-bucketed batches, DataLoader workers, gradient accumulation,
  data-parallel over torchrun, EMA, validation) is `baselines.training.loop.train`; `train`
  here forwards to it. The `halle-bench train` CLI keeps tokens in memory-mapped shards
  (`baselines.training.shards`) rather than `TokenCache`'s one file per utterance.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from halle_bench.audio import load_audio, sha256_file
from halle_bench.errors import UtteranceError

from .checkpoint import read_config


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
    max_frames: int = 0  # codec frames per batch per device (padded); 0: `batch_size` items per device
    bucket_pool: int = 1000  # items sorted together when packing batches by length
    accum_steps: int = 1  # micro-batches per optimiser step
    num_workers: int = 0  # DataLoader workers
    ema: float = 0.0  # weight EMA decay (0: off); the EMA is what the finished stage exports
    val_every: int = 0  # validate every N steps (0: only at the end)
    resident: bool | None = None  # batches gathered on the device (training/resident.py); None: on CUDA


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


def train(model: nn.Module, examples, cfg: TrainConfig, out_dir=None, model_config=None, resume: bool = True,
          on_log=None, stop_after: int | None = None, **kw) -> TrainResult:
    """The training loop (`baselines.training.loop.train`: sampler, workers, accumulation, DDP,
    EMA, validation); kept here under its old name."""
    from .training.loop import train as _train

    return _train(model, examples, cfg, out_dir, model_config, resume, on_log, stop_after, **kw)


__all__ = ["Example", "TrainConfig", "TrainResult", "TokenCache", "build_examples", "collate", "train", "lr_lambda", "read_config"]
