"""A plain residual vector quantizer (RVQ), the building block of MRVQ's PreQ/Quant/PostQ.

Layout is channels-first like EnCodec: features `[B, D, T]`, codes `[B, n_q, T]`.

Decisions (the HALL-E paper does not describe its quantizers beyond "RVQ"):

* Codebooks are learned either by **EMA** k-means updates (EnCodec / SoundStream style,
  the default) or by a **codebook loss** with a straight-through estimator (VQ-VAE style,
  `ema=False`). Both return a commitment loss `||x - sg(q)||^2`; the straight-through
  variant also returns the codebook loss `||sg(x) - q||^2` (zero for EMA).
* Codebooks are initialised from the first training batch (random distinct frames), which
  avoids the dead codes a random Gaussian init leaves behind.
* **Dead-code reset**: during training, a code whose EMA usage drops below
  `dead_threshold` (expected assignments per batch) is replaced by a random frame of the
  current batch, with a grace period before it can be reset again. Used with both codebook kinds (for straight-through codebooks usage is
  tracked the same way).
* Randomness (init, reset) uses torch's global generator, so a seeded training run is
  deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class RVQConfig:
    dim: int
    n_q: int = 1
    codebook_size: int = 1024
    ema: bool = True
    decay: float = 0.99
    eps: float = 1e-5
    dead_threshold: float = 1.0  # reset codes used less than this (EMA count per batch)
    init_from_data: bool = True


@dataclass
class RVQOutput:
    quantized: torch.Tensor  # [B, D, T], straight-through: value = sum of codes, grad -> input
    codes: torch.Tensor  # [B, n_q, T]
    commit_loss: torch.Tensor  # scalar, sum over quantizers
    codebook_loss: torch.Tensor  # scalar, sum over quantizers (0 for EMA codebooks)


def nearest_code(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook row (squared L2) for each row of x [N, D] -> [N]."""
    # ||x||^2 is constant per row and does not change the argmin.
    dist = codebook.pow(2).sum(1)[None, :] - 2.0 * x @ codebook.t()
    return dist.argmin(dim=1)


def _sample_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """n rows of x [N, D]: without replacement when possible."""
    if x.shape[0] >= n:
        idx = torch.randperm(x.shape[0], device=x.device)[:n]
    else:
        idx = torch.randint(0, x.shape[0], (n,), device=x.device)
    return x[idx]


class VectorQuantizer(nn.Module):
    """One codebook. forward(x [N, D]) -> (quantized [N, D] straight-through, codes [N], losses)."""

    def __init__(self, cfg: RVQConfig):
        super().__init__()
        self.cfg = cfg
        k, d = cfg.codebook_size, cfg.dim
        init = torch.randn(k, d) / d**0.5
        if cfg.ema:
            self.register_buffer("codebook", init.clone())
            self.register_buffer("embed_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init.clone())
        self.register_buffer("cluster_size", torch.ones(k))
        self.register_buffer("initted", torch.tensor(not cfg.init_from_data))

    @torch.no_grad()
    def _init(self, x: torch.Tensor) -> None:
        rows = _sample_rows(x, self.cfg.codebook_size)
        self.codebook.data.copy_(rows)
        if self.cfg.ema:
            self.embed_sum.copy_(rows)
        self.cluster_size.fill_(1.0)
        self.initted.fill_(True)

    @torch.no_grad()
    def _update(self, x: torch.Tensor, codes: torch.Tensor) -> None:
        cfg = self.cfg
        onehot = F.one_hot(codes, cfg.codebook_size).type(x.dtype)  # [N, K]
        counts = onehot.sum(0)
        self.cluster_size.mul_(cfg.decay).add_(counts, alpha=1 - cfg.decay)
        if cfg.ema:
            self.embed_sum.mul_(cfg.decay).add_(onehot.t() @ x, alpha=1 - cfg.decay)
            n = self.cluster_size.sum()
            # Laplace smoothing keeps rarely used codes from dividing by ~0.
            size = (self.cluster_size + cfg.eps) / (n + cfg.codebook_size * cfg.eps) * n
            self.codebook.copy_(self.embed_sum / size[:, None])
        dead = self.cluster_size < cfg.dead_threshold
        if dead.any():
            rows = _sample_rows(x, int(dead.sum()))
            self.codebook.data[dead] = rows
            if cfg.ema:
                self.embed_sum[dead] = rows
            # A grace period: the new code's count starts well above the threshold, so it
            # has ~1/(1-decay) steps to attract frames before it can be reset again
            # (resetting every step churns codebooks on small batches).
            self.cluster_size[dead] = 2.0 * cfg.dead_threshold

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return nearest_code(x, self.codebook.detach())

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return F.embedding(codes, self.codebook)

    def forward(self, x: torch.Tensor):
        if self.training and not bool(self.initted):
            self._init(x.detach())
        codes = self.encode(x.detach())
        q = self.decode(codes)
        if self.training:
            self._update(x.detach(), codes)
            if self.cfg.ema:
                q = F.embedding(codes, self.codebook)  # the codebook after this update
        commit = F.mse_loss(x, q.detach())
        codebook_loss = F.mse_loss(q, x.detach()) if not self.cfg.ema else x.new_zeros(())
        q_st = x + (q - x).detach()
        return q_st, codes, commit, codebook_loss


class RVQ(nn.Module):
    """Residual VQ over [B, D, T]: quantizer i codes the residual left by quantizers < i."""

    def __init__(self, cfg: RVQConfig):
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(VectorQuantizer(cfg) for _ in range(cfg.n_q))

    @property
    def n_q(self) -> int:
        return self.cfg.n_q

    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> RVQOutput:
        b, d, t = x.shape
        flat = x.permute(0, 2, 1).reshape(b * t, d)
        residual = flat
        quantized = torch.zeros_like(flat)
        codes, commit, cb = [], flat.new_zeros(()), flat.new_zeros(())
        for layer in self.layers[: n_q or self.n_q]:
            q_st, c, l_commit, l_cb = layer(residual)
            # The next quantizer sees the residual of the *quantized* value, not of the
            # straight-through tensor, so gradients reach x once (through q_st below).
            residual = residual - q_st.detach()
            quantized = quantized + q_st.detach()
            codes.append(c)
            commit = commit + l_commit
            cb = cb + l_cb
        quantized = flat + (quantized - flat).detach()
        quantized = quantized.reshape(b, t, d).permute(0, 2, 1)
        codes_t = torch.stack(codes, 0).reshape(len(codes), b, t).permute(1, 0, 2)
        # Codebook loss needs a path to the codebook parameters (straight-through kind):
        # the per-layer `l_cb` above carries it.
        return RVQOutput(quantized, codes_t, commit, cb)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """[B, D, T] -> codes [B, n_q, T] (no codebook updates)."""
        b, d, t = x.shape
        residual = x.permute(0, 2, 1).reshape(b * t, d)
        codes = []
        for layer in self.layers[: n_q or self.n_q]:
            c = layer.encode(residual)
            residual = residual - layer.decode(c)
            codes.append(c)
        return torch.stack(codes, 0).reshape(len(codes), b, t).permute(1, 0, 2)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, n_q', T] (n_q' <= n_q) -> [B, D, T]."""
        out = 0
        for i in range(codes.shape[1]):
            out = out + self.layers[i].decode(codes[:, i])  # [B, T, D]
        return out.permute(0, 2, 1)
