"""MRVQ: the multi-resolution residual quantizer of MReQ (HALL-E, Nishimura et al. 2025).

An **LRVQ** block k works on teacher-rate features `x_k [B, D, T]` (T frames at the
teacher rate, 48 Hz by default):

    a_k = PreQ_k(x_k)                 RVQ at the teacher rate (tokens a_k)
    h_k = E_k(a_k)                    strided convs, teacher rate -> s_k (ratio r_k)
    b_k = Quant_k(h_k)                RVQ at s_k (tokens b_k: what the LM predicts)
    y_k = D_k(b_k)                    transposed convs, s_k -> teacher rate
    c_k = PostQ_k(y_k)                RVQ at the teacher rate

**MRVQ** stacks K blocks residually: `x_1 = z` (codec encoder output),
`x_{k+1} = x_k - c_k`, and the student embedding `h_s = sum_k c_k` goes to the frozen codec
decoder. Default rates 8, 16, 24, 48 Hz on a 48 Hz teacher (ratios 6, 3, 2, 1).

Decisions where the paper is silent (all configurable in `MRVQConfig`):

* E is `conv(k=3) -> ELU -> conv(kernel=r, stride=r) -> ELU -> conv(k=3)`; D mirrors it
  with a transposed conv (kernel=r, stride=r). Kernel = stride makes the frame counts exact:
  T teacher frames give exactly T / r frames, and D gives back exactly T. T must be a
  multiple of every ratio (the tokenizer pads to a whole 1/s_1 second).
* Quant works in a `latent_dim` space (default = D); PreQ/PostQ work in D.
* The residual passed to the next block is detached (`x_{k+1} = sg(x_k - c_k)`): each
  block learns to code the residual it is given; gradients from the student embedding
  still reach every block through the straight-through estimators.
* L_HSR target: D's output reconstructs the PreQ output that entered E, with the target
  detached (so HSR trains E, Quant and D, not PreQ).
* Default codebooks: PreQ 1 x 1024, Quant 2 x 1024 at the lowest rate (HALL-E mentions a
  delay pattern at 8 Hz, i.e. several codebooks) and 1 x 1024 elsewhere, PostQ 1 x 1024.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .rvq import RVQ, RVQConfig


def _per_level(value: int | Sequence[int], k: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * k
    value = tuple(int(v) for v in value)
    if len(value) != k:
        raise ValueError(f"MRVQConfig.{name} has {len(value)} entries, expected one per rate ({k})")
    return value


def level_ratios(teacher_rate: int, rates: Sequence[int]) -> tuple[int, ...]:
    """Downsampling ratio teacher_rate / s_k per level; a clear error when one is not whole."""
    if not rates:
        raise ValueError("MRVQ needs at least one rate")
    if len(set(rates)) != len(rates):
        raise ValueError(f"MRVQ rates must be distinct, got {tuple(rates)}")
    out = []
    for s in rates:
        if s <= 0 or s > teacher_rate or teacher_rate % s != 0:
            raise ValueError(
                f"MRVQ rate {s} Hz does not divide the teacher rate {teacher_rate} Hz: every rate must be "
                f"teacher_rate / r for a whole r (for 48 Hz: 1, 2, 3, 4, 6, 8, 12, 16, 24, 48 Hz)"
            )
        out.append(teacher_rate // s)
    return tuple(out)


@dataclass(frozen=True)
class MRVQConfig:
    dim: int = 128  # the codec embedding dimension
    teacher_rate: int = 48
    rates: tuple[int, ...] = (8, 16, 24, 48)
    latent_dim: int | None = None  # Quant's space; None = dim
    hidden: int = 256  # channels inside E and D
    preq_n_q: int | tuple[int, ...] = 1
    quant_n_q: int | tuple[int, ...] = (2, 1, 1, 1)
    postq_n_q: int | tuple[int, ...] = 1
    codebook_size: int | tuple[int, ...] = 1024  # per level, shared by its three RVQs
    ema: bool = True
    decay: float = 0.99
    dead_fraction: float = 0.03  # see RVQConfig

    def __post_init__(self):
        object.__setattr__(self, "rates", tuple(int(r) for r in self.rates))
        level_ratios(self.teacher_rate, self.rates)
        k = len(self.rates)
        for name in ("preq_n_q", "quant_n_q", "postq_n_q", "codebook_size"):
            v = getattr(self, name)
            if isinstance(v, list):
                object.__setattr__(self, name, tuple(v))
            _per_level(getattr(self, name), k, name)

    @property
    def ratios(self) -> tuple[int, ...]:
        return level_ratios(self.teacher_rate, self.rates)

    @property
    def n_levels(self) -> int:
        return len(self.rates)

    def level(self, k: int) -> dict[str, int]:
        n = self.n_levels
        return {
            "rate": self.rates[k],
            "ratio": self.ratios[k],
            "preq_n_q": _per_level(self.preq_n_q, n, "preq_n_q")[k],
            "quant_n_q": _per_level(self.quant_n_q, n, "quant_n_q")[k],
            "postq_n_q": _per_level(self.postq_n_q, n, "postq_n_q")[k],
            "codebook_size": _per_level(self.codebook_size, n, "codebook_size")[k],
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MRVQConfig":
        d = dict(d)
        # `dead_threshold` (an absolute count, replaced by the relative `dead_fraction`)
        # only mattered while training; folders written before the change still load.
        d.pop("dead_threshold", None)
        for k, v in d.items():
            if isinstance(v, list):
                d[k] = tuple(v)
        return cls(**d)


class SubEncoder(nn.Module):
    """E: teacher rate -> teacher rate / ratio."""

    def __init__(self, dim: int, hidden: int, out_dim: int, ratio: int):
        super().__init__()
        self.ratio = ratio
        self.net = nn.Sequential(
            nn.Conv1d(dim, hidden, 3, padding=1),
            nn.ELU(),
            nn.Conv1d(hidden, hidden, ratio, stride=ratio),
            nn.ELU(),
            nn.Conv1d(hidden, out_dim, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.ratio:
            raise ValueError(f"sub-encoder input has {x.shape[-1]} frames, not a multiple of {self.ratio}")
        return self.net(x)


class SubDecoder(nn.Module):
    """D: teacher rate / ratio -> teacher rate."""

    def __init__(self, in_dim: int, hidden: int, dim: int, ratio: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(in_dim, hidden, 3, padding=1),
            nn.ELU(),
            nn.ConvTranspose1d(hidden, hidden, ratio, stride=ratio),
            nn.ELU(),
            nn.Conv1d(hidden, dim, 3, padding=1),
        )
        # Zero output at init: c_k starts near 0, so the residual passed to the next
        # level starts as x_k instead of x_k minus a random vector (which made the
        # residuals grow level after level early in training).
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class LRVQOutput:
    c: torch.Tensor  # PostQ output [B, D, T] (straight-through)
    a: torch.Tensor  # PreQ codes [B, n_pre, T]
    b: torch.Tensor  # Quant codes [B, n_quant, T / r]
    post_codes: torch.Tensor  # PostQ codes [B, n_post, T]
    hsr_loss: torch.Tensor
    commit_loss: torch.Tensor
    codebook_loss: torch.Tensor


class LRVQ(nn.Module):
    def __init__(self, dim: int, latent_dim: int, hidden: int, level: dict[str, int], cfg: MRVQConfig):
        super().__init__()
        self.rate, self.ratio = level["rate"], level["ratio"]
        common = dict(codebook_size=level["codebook_size"], ema=cfg.ema, decay=cfg.decay,
                      dead_fraction=cfg.dead_fraction)
        self.preq = RVQ(RVQConfig(dim=dim, n_q=level["preq_n_q"], **common))
        self.encoder = SubEncoder(dim, hidden, latent_dim, self.ratio)
        self.quant = RVQ(RVQConfig(dim=latent_dim, n_q=level["quant_n_q"], **common))
        self.decoder = SubDecoder(latent_dim, hidden, dim, self.ratio)
        self.postq = RVQ(RVQConfig(dim=dim, n_q=level["postq_n_q"], **common))

    def forward(self, x: torch.Tensor) -> LRVQOutput:
        pre = self.preq(x)
        h = self.encoder(pre.quantized)
        q = self.quant(h)
        y = self.decoder(q.quantized)
        post = self.postq(y)
        hsr = F.mse_loss(y, pre.quantized.detach())
        return LRVQOutput(
            c=post.quantized, a=pre.codes, b=q.codes, post_codes=post.codes, hsr_loss=hsr,
            commit_loss=pre.commit_loss + q.commit_loss + post.commit_loss,
            codebook_loss=pre.codebook_loss + q.codebook_loss + post.codebook_loss,
        )

    # Inference pieces used by the tokenizer and by HALL-E's NAR.
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, D, T] -> (a codes [B, n_pre, T], b codes [B, n_quant, T/r])."""
        a = self.preq.encode(x)
        b = self.quant.encode(self.encoder(self.preq.decode(a)))
        return a, b

    @torch.no_grad()
    def b_from_a(self, a: torch.Tensor) -> torch.Tensor:
        """Re-encode PreQ tokens through the frozen E / Quant (HALL-E's NAR step)."""
        return self.quant.encode(self.encoder(self.preq.decode(a)))

    @torch.no_grad()
    def decode_b(self, b: torch.Tensor) -> torch.Tensor:
        """b codes [B, n_quant, T/r] -> c [B, D, T] through Quant, D and PostQ."""
        y = self.decoder(self.quant.decode(b))
        return self.postq.decode(self.postq.encode(y))


@dataclass
class MRVQOutput:
    student: torch.Tensor  # sum_k c_k [B, D, T]
    partial: list[torch.Tensor]  # sum_{j<=k} c_j, one per level (for diagnostics / losses)
    a: list[torch.Tensor]
    b: list[torch.Tensor]
    hsr_loss: torch.Tensor
    commit_loss: torch.Tensor
    codebook_loss: torch.Tensor


class MRVQ(nn.Module):
    def __init__(self, cfg: MRVQConfig):
        super().__init__()
        self.cfg = cfg
        latent = cfg.latent_dim or cfg.dim
        self.levels = nn.ModuleList(
            LRVQ(cfg.dim, latent, cfg.hidden, cfg.level(k), cfg) for k in range(cfg.n_levels)
        )

    @property
    def rates(self) -> tuple[int, ...]:
        return self.cfg.rates

    @property
    def frame_multiple(self) -> int:
        """Teacher frames must be a multiple of this (the largest ratio, lcm of all ratios)."""
        import math

        m = 1
        for r in self.cfg.ratios:
            m = m * r // math.gcd(m, r)
        return m

    def forward(self, z: torch.Tensor) -> MRVQOutput:
        x = z
        student = torch.zeros_like(z)
        partial, a, b = [], [], []
        hsr = commit = cb = z.new_zeros(())
        for level in self.levels:
            out = level(x)
            student = student + out.c
            partial.append(student)
            a.append(out.a)
            b.append(out.b)
            hsr, commit, cb = hsr + out.hsr_loss, commit + out.commit_loss, cb + out.codebook_loss
            x = (x - out.c).detach()
        return MRVQOutput(student, partial, a, b, hsr, commit, cb)

    @torch.no_grad()
    def encode_levels(self, z: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """z [B, D, T] -> (PreQ codes a_k [B, n_pre, T], Quant codes b_k [B, n_quant, T / r_k]) per level."""
        x = z
        a_all, b_all = [], []
        for level in self.levels:
            a, b = level.encode(x)
            a_all.append(a)
            b_all.append(b)
            x = x - level.decode_b(b)
        return a_all, b_all

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> dict[int, torch.Tensor]:
        """z [B, D, T] -> {rate: b codes [B, n_quant, T * rate / teacher_rate]}."""
        _, b = self.encode_levels(z)
        return {level.rate: bk for level, bk in zip(self.levels, b)}

    @torch.no_grad()
    def decode(self, tokens: dict[int, torch.Tensor] | Sequence[torch.Tensor], n_levels: int | None = None) -> torch.Tensor:
        """b codes per level (dict by rate or list in level order) -> student embedding [B, D, T].

        `n_levels` uses only the first levels (coarse reconstruction).
        """
        seq = [tokens[lv.rate] for lv in self.levels] if isinstance(tokens, dict) else list(tokens)
        n = n_levels or len(self.levels)
        if len(seq) < n:
            raise ValueError(f"decode needs tokens for {n} levels, got {len(seq)}")
        return sum(self.levels[k].decode_b(seq[k]) for k in range(n))
