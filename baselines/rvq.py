"""A plain residual vector quantizer (RVQ), the building block of MRVQ's PreQ/Quant/PostQ.

Layout is channels-first like EnCodec: features `[B, D, T]`, codes `[B, n_q, T]`.

Decisions (the HALL-E paper does not describe its quantizers beyond "RVQ"):

* Codebooks are learned either by **EMA** k-means updates (EnCodec / SoundStream style,
  the default) or by a **codebook loss** with a straight-through estimator (VQ-VAE style,
  `ema=False`). Both return a commitment loss `||x - sg(q)||^2`; the straight-through
  variant also returns the codebook loss `||sg(x) - q||^2` (zero for EMA).
* Codebooks are initialised by **k-means on the first training batch** (`kmeans_iters`
  Lloyd iterations from random distinct frames; train with batches of thousands of
  frames so that this is a large sample). Random frames alone left many codes in empty
  regions, which the dead-code reset then kept recycling.
* **Dead-code reset, relative to what a batch can assign**: a code is dead when its EMA
  usage falls below `dead_fraction` x its uniform share of a batch (frames / codes). The
  first version used an absolute count (1 assignment per batch): with 64-384 frames per
  batch against 1024 codes *every* code was under it, so every code was reset about every
  100 steps and the codebooks never settled (every shipped MRVQ quantizer ended with EMA
  cluster sizes in (1, 2]). A reset code is a random frame of the current batch and gets a
  grace period (its count starts at twice the threshold). Used with both codebook kinds
  (for straight-through codebooks usage is tracked the same way).
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
    # reset a code whose EMA usage is below this share of the uniform usage (frames / codes)
    dead_fraction: float = 0.03
    init_from_data: bool = True
    kmeans_iters: int = 10  # Lloyd iterations of the k-means init on the first batch


def kmeans_pp(x: torch.Tensor, k: int, rounds: int = 16) -> torch.Tensor:
    """k-means++ seeding in `rounds` draws: each round adds ceil(k / rounds) rows drawn
    (without replacement) with probability proportional to their squared distance to the
    centres so far (torch's global generator). One row a round is plain k-means++; 16
    rounds keep a 1024-code init to 16 small matmuls instead of 1024 sequential steps."""
    if x.shape[0] <= k:
        return _sample_rows(x, k).clone()
    rounds = max(1, min(rounds, k))
    per = -(-(k - 1) // rounds) if k > 1 else 0
    first = x[torch.randint(x.shape[0], (1,), device=x.device)]
    chosen = [first]
    d2 = (x - first).pow(2).sum(1)
    n = 1
    while n < k:
        m = min(per, k - n)
        total = d2.sum()
        if total > 0 and int((d2 > 0).sum()) >= m:
            idx = torch.multinomial(d2 / total, m, replacement=False)
        else:
            idx = torch.randint(x.shape[0], (m,), device=x.device)
        c = x[idx]
        chosen.append(c)
        d2 = torch.minimum(d2, torch.cdist(x, c).pow(2).min(1).values)
        n += m
    return torch.cat(chosen)[:k].clone()


def kmeans(x: torch.Tensor, k: int, iters: int) -> torch.Tensor:
    """k-means of x [N, D] -> centroids [k, D]: k-means++ seeding, then Lloyd iterations
    (torch's global generator: a seeded run is deterministic). An emptied cluster takes
    the row coded worst."""
    c = kmeans_pp(x, k)
    for _ in range(iters):
        a = nearest_code(x, c)
        cnt = torch.bincount(a, minlength=k).to(x.dtype)
        sums = torch.zeros_like(c).index_add_(0, a, x)
        empty = cnt == 0
        c = torch.where(empty[:, None], c, sums / cnt.clamp(min=1)[:, None])
        if empty.any():
            err = (x - c[a]).pow(2).sum(1)
            n = int(empty.sum())
            c[empty] = x[err.topk(min(n, x.shape[0])).indices].repeat((n + x.shape[0] - 1) // x.shape[0], 1)[:n]
    return c


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
        rows = kmeans(x.float(), self.cfg.codebook_size, self.cfg.kmeans_iters).to(x.dtype)
        self.codebook.data.copy_(rows)
        if self.cfg.ema:
            self.embed_sum.copy_(rows)
        self.cluster_size.fill_(1.0)
        self.initted.fill_(True)

    @torch.no_grad()
    def _update(self, x: torch.Tensor, codes: torch.Tensor) -> None:
        cfg = self.cfg
        # bincount / index_add instead of a one-hot [N, K] matmul: N x D work, not N x K x D
        counts = torch.bincount(codes, minlength=cfg.codebook_size).to(x.dtype)
        self.cluster_size.mul_(cfg.decay).add_(counts, alpha=1 - cfg.decay)
        if cfg.ema:
            sums = torch.zeros_like(self.embed_sum).index_add_(0, codes, x)
            self.embed_sum.mul_(cfg.decay).add_(sums, alpha=1 - cfg.decay)
            n = self.cluster_size.sum()
            # Laplace smoothing keeps rarely used codes from dividing by ~0.
            size = (self.cluster_size + cfg.eps) / (n + cfg.codebook_size * cfg.eps) * n
            self.codebook.copy_(self.embed_sum / size[:, None])
        threshold = cfg.dead_fraction * x.shape[0] / cfg.codebook_size
        dead = self.cluster_size < threshold
        if dead.any():
            rows = _sample_rows(x, int(dead.sum()))
            self.codebook.data[dead] = rows
            # A grace period: the new code's count starts well above the threshold, so it
            # has ~1/(1-decay) steps to attract frames before it can be reset again
            # (resetting every step churns codebooks on small batches).
            self.cluster_size[dead] = 2.0 * threshold
            if cfg.ema:
                # embed_sum / cluster_size is the code: a sum that ignored the new count
                # made a reset code rows / (2 x threshold), 20x too long at a relative
                # threshold of ~0.02, and the MRVQ training diverged.
                self.embed_sum[dead] = rows * self.cluster_size[dead][:, None]

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
