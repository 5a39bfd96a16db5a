"""Data-parallel set-up for `torchrun` (one or many nodes): nccl on CUDA, gloo on CPU.

`torchrun --nproc_per_node G [--nnodes N --node_rank R --rdzv_endpoint HOST:PORT] -m
halle_bench.cli train CONFIG` sets RANK / WORLD_SIZE / LOCAL_RANK; `init_distributed()` reads
them, joins the process group and picks the device (`cuda:LOCAL_RANK` when the config asks for
CUDA). Without those variables everything runs in one process and nothing here does anything.

Gradients are summed across ranks once per optimiser step (after gradient accumulation) in one
flattened all-reduce (`allreduce_grads`), which is what DDP does, without DDP's need to route
every call through `forward` (the models train through `.loss`, and HALL-E's NAR leaves the
stages it did not draw without gradients).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def current() -> DistInfo:
    """The process group this process is in (a single process when none)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def init_distributed(device: str = "cpu") -> tuple[DistInfo, str]:
    """Join torchrun's process group when launched by it; returns (info, this rank's device)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local), device


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_params(model: nn.Module) -> None:
    """Start every rank from rank 0's weights (seeded builds agree anyway; this makes it certain)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    for t in list(model.parameters()) + list(model.buffers()):
        dist.broadcast(t.data, src=0)


def allreduce_grads(params: list[nn.Parameter], extra: torch.Tensor) -> torch.Tensor:
    """Sum the gradients of `params` and `extra` over ranks, in place (a None gradient counts as
    zeros where another rank has one, and stays None where no rank has).

    The caller has already scaled each rank's loss so that the sum is the global-batch mean.
    Returns the summed `extra` (the step's loss / accuracy sums for logging).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return extra
    # which parameters got a gradient on some rank: those unused on every rank stay None, as in
    # one process (AdamW then leaves them alone)
    used = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=params[0].device)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1).float() for p in params] + [extra.float().to(params[0].device), used])
    dist.all_reduce(flat)
    o = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[o:o + n].view_as(p.grad))
        o += n
    k = extra.numel()
    out, used = flat[o:o + k].to(extra.device), flat[o + k:]
    for p, u in zip(params, used.tolist()):
        if u == 0:
            p.grad = None
    return out


__all__ = ["DistInfo", "current", "init_distributed", "barrier", "broadcast_params", "allreduce_grads"]
