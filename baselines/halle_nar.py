"""HALL-E's hierarchical NAR: from the 8 Hz tokens b_1 to every MRVQ level, at the teacher rate.

For level k = 1..K-1 (stage k-1 of the AdaLN transformer):

    f_k     = sum_{j<=k} LRVQ_j.decode_b(b_j)        teacher-rate features [B, D, T]
    a_{k+1} = argmax NAR(f_k | prompt, text, stage)   PreQ_{k+1} tokens at the teacher rate
    b_{k+1} = LRVQ_{k+1}.b_from_a(a_{k+1})            frozen PreQ -> E -> Quant re-encoding

The MRVQ sub-modules are frozen and are *not* part of this module's weights (they come
from the MReQ tokenizer, whose identity the HALL-E checkpoint records).

Decisions where the paper is silent (configurable in `HalleNARConfig`):

* Input = a linear projection of the cumulative student embedding f_k (what is known so
  far), plus a learned segment embedding (prompt / target). The prompt's input is its full
  embedding (all K levels), as VALL-E's NAR uses all of the prompt's codebooks.
* Text by cross-attention to the embedded phonemes (with sinusoidal positions); the level
  by adaptive layer norm (`stage = k-1`); bidirectional self-attention over prompt + target.
* One linear head per PreQ codebook of every predicted level (sizes can differ by level).
* **Sliding window** at inference: the target is cut into windows of `window` teacher
  frames overlapping by `overlap`; each window sees the whole prompt and text; from the
  overlap between two windows the first keeps the first half, the second the rest.
  Positions restart in every window (prompt 0..P-1, window P..), so a window looks like
  a training example. Stitching happens on a_{k+1}; the re-encoding to b_{k+1} runs once
  on the whole sequence (it is convolutional and cheap). Default 10 s windows with 2 s
  overlap at 48 Hz.
* Training packs one utterance as integer rows at the teacher rate (`pack_levels`) so the
  shared training loop (`baselines.train`) can batch it like any codes array.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .mrvq import MRVQ
from .transformer import SinusoidalPositions, Transformer, TransformerConfig


@dataclass(frozen=True)
class HalleNARConfig:
    n_text_tokens: int
    dim: int  # MRVQ embedding dimension
    preq_n_q: tuple[int, ...]  # PreQ codebooks of every level (level 1's is unused)
    codebook_sizes: tuple[int, ...]  # per level
    quant_n_q: tuple[int, ...]  # Quant codebooks per level (to unpack training rows)
    ratios: tuple[int, ...]  # teacher_rate / s_k per level
    transformer: TransformerConfig = field(default_factory=lambda: TransformerConfig.tiny(cross_attention=True, adaptive_norm=True, n_stages=3))
    window: int = 480  # teacher frames per NAR window (10 s at 48 Hz)
    overlap: int = 96  # teacher frames shared by consecutive windows
    prompt_range: tuple[float, float] = (0.1, 0.4)  # training prompt length, fraction of the utterance

    def __post_init__(self):
        for k in ("preq_n_q", "codebook_sizes", "quant_n_q", "ratios", "prompt_range"):
            object.__setattr__(self, k, tuple(getattr(self, k)))
        t = self.transformer
        if not (t.cross_attention and t.adaptive_norm and t.n_stages >= self.n_levels - 1):
            raise ValueError("HALL-E NAR transformer needs cross_attention, adaptive_norm and n_stages >= K-1")
        if not 0 <= self.overlap < self.window:
            raise ValueError(f"NAR overlap {self.overlap} must be in [0, window={self.window})")

    @property
    def n_levels(self) -> int:
        return len(self.ratios)

    @classmethod
    def from_mrvq(cls, mrvq: MRVQ, n_text_tokens: int, transformer: TransformerConfig, **kw) -> "HalleNARConfig":
        lv = [mrvq.cfg.level(k) for k in range(mrvq.cfg.n_levels)]
        return cls(n_text_tokens, mrvq.cfg.dim, tuple(x["preq_n_q"] for x in lv), tuple(x["codebook_size"] for x in lv),
                   tuple(x["quant_n_q"] for x in lv), tuple(x["ratio"] for x in lv), transformer, **kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HalleNARConfig":
        d = dict(d)
        d["transformer"] = TransformerConfig(**d["transformer"])
        return cls(**d)


# ------------------------------------------------------------- packing (pure)
def pack_levels(a: list[Tensor], b: list[Tensor], ratios: tuple[int, ...]) -> np.ndarray:
    """One utterance's tokens -> int rows [R, T] at the teacher rate.

    Rows, level by level: the Quant codes b_k repeated `ratio` times (nearest upsampling),
    then the PreQ codes a_k. `unpack_levels` inverts it.
    """
    rows = []
    for ak, bk, r in zip(a, b, ratios):
        rows.append(bk.repeat_interleave(r, dim=-1))
        rows.append(ak)
    return torch.cat(rows, 0).cpu().numpy().astype(np.int64)


def unpack_levels(rows: Tensor, cfg: HalleNARConfig) -> tuple[list[Tensor], list[Tensor]]:
    """rows [B, R, T] -> (a per level [B, n_pre, T], b per level [B, n_quant, T / r])."""
    a, b, i = [], [], 0
    for k, r in enumerate(cfg.ratios):
        nq, npre = cfg.quant_n_q[k], cfg.preq_n_q[k]
        b.append(rows[:, i : i + nq, ::r])
        i += nq
        a.append(rows[:, i : i + npre])
        i += npre
    return a, b


def level_features(mrvq: MRVQ, b: list[Tensor], upto: int) -> Tensor:
    """f = sum_{j<upto} LRVQ_j.decode_b(b_j): [B, D, T] (frozen MRVQ, no grad)."""
    with torch.no_grad():
        return sum(mrvq.levels[j].decode_b(b[j]) for j in range(upto))


def window_spans(t: int, window: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, end, keep_start, keep_end) of each window; the kept parts tile [0, t) exactly."""
    if t <= window:
        return [(0, t, 0, t)]
    step = window - overlap
    starts = list(range(0, t - window, step)) + [t - window]
    spans = []
    for i, s in enumerate(starts):
        e = s + window
        ks = 0 if i == 0 else spans[-1][3]
        ke = t if i == len(starts) - 1 else min(e, starts[i + 1] + (e - starts[i + 1]) // 2)
        spans.append((s, e, ks, ke))
    return spans


class HalleNAR(nn.Module):
    def __init__(self, cfg: HalleNARConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.transformer.d_model
        self.text_pad = cfg.n_text_tokens
        self.text_emb = nn.Embedding(cfg.n_text_tokens + 1, d)
        self.text_pos = SinusoidalPositions(d, cfg.transformer.dropout)
        self.in_proj = nn.Linear(cfg.dim, d)
        self.segment = nn.Embedding(2, d)  # 0 prompt, 1 target
        self.audio_pos = SinusoidalPositions(d, cfg.transformer.dropout, scale=False)
        self.transformer = Transformer(cfg.transformer)
        self.heads = nn.ModuleList(
            nn.ModuleList(nn.Linear(d, cfg.codebook_sizes[k]) for _ in range(cfg.preq_n_q[k]))
            for k in range(1, cfg.n_levels)
        )

    def forward(self, text: Tensor, text_lens: Tensor, prompt: Tensor, prompt_lens: Tensor,
                feats: Tensor, feat_lens: Tensor, stage: Tensor) -> list[Tensor]:
        """prompt [B, D, Tp], feats [B, D, T] (teacher-rate features), stage [B] in 0..K-2
        (predicting level stage+2's PreQ tokens) -> logits per PreQ codebook [B, T, V].

        All items of a batch must share one stage (the heads differ per level)."""
        st = int(stage[0])
        if bool((stage != st).any()):
            raise ValueError("one NAR stage per batch")
        l = text.shape[1]
        tpos = torch.arange(l, device=text.device).view(1, -1)
        pad_text = tpos >= text_lens.view(-1, 1)
        mem = self.text_pos(self.text_emb(torch.where(pad_text, torch.full_like(text, self.text_pad), text)))
        tp, t = prompt.shape[-1], feats.shape[-1]
        x = self.in_proj(torch.cat([prompt, feats], dim=-1).transpose(1, 2))
        seg = torch.cat([x.new_zeros(tp, dtype=torch.long), x.new_ones(t, dtype=torch.long)])
        x = x + self.segment(seg)[None]
        # Each item's positions run continuously over its own prompt then its target,
        # whatever the padding inside the batch.
        ar = torch.arange(tp + t, device=x.device).view(1, -1)
        pos = torch.where(ar < tp, ar, ar - tp + prompt_lens.view(-1, 1))
        x = self.audio_pos(x, positions=pos)
        pad = torch.cat([ar[:, :tp] >= prompt_lens.view(-1, 1), ar[:, :t] >= feat_lens.view(-1, 1)], dim=1)
        h = self.transformer(x, causal=False, key_padding_mask=pad, stage=stage, memory=mem,
                             memory_padding_mask=pad_text)[:, tp:]
        return [head(h) for head in self.heads[st]]

    # ------------------------------------------------------------- training
    def loss(self, mrvq: MRVQ, text: Tensor, text_lens: Tensor, rows: Tensor, lens: Tensor,
             generator: torch.Generator | None = None, stage: int | None = None) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy on a_{k+1} over the target part, for one random (or given) stage.

        rows [B, R, T]: `pack_levels` rows; lens: teacher frames per item. The prompt is a
        random prefix cut at a multiple of the coarsest ratio (whole 1/s_1 blocks).
        """
        cfg = self.cfg
        dev = rows.device
        r1 = max(cfg.ratios)
        a, b = unpack_levels(rows, cfg)
        k = int(torch.randint(0, cfg.n_levels - 1, (1,), generator=generator)) if stage is None else stage
        full = level_features(mrvq, b, cfg.n_levels)
        known = level_features(mrvq, b, k + 1)
        lo, hi = cfg.prompt_range
        prompts, targets, tgts, p_lens, t_lens = [], [], [], [], []
        for i, n in enumerate(lens.tolist()):
            nb = n // r1
            pb_lo, pb_hi = max(1, int(lo * nb)), max(1, int(hi * nb))
            pb = pb_lo if pb_hi <= pb_lo else int(torch.randint(pb_lo, pb_hi + 1, (1,), generator=generator))
            p = min(pb, max(nb - 1, 0)) * r1
            prompts.append(full[i, :, :p])
            targets.append(known[i, :, p:n])
            tgts.append(a[k + 1][i, :, p:n])
            p_lens.append(p)
            t_lens.append(n - p)
        P = _pad_feats(prompts)
        X = _pad_feats(targets)
        Y = _pad_feats([y.float() for y in tgts]).long()
        pl, tl = torch.tensor(p_lens, device=dev), torch.tensor(t_lens, device=dev)
        st = torch.full((rows.shape[0],), k, dtype=torch.long, device=dev)
        logits = self(text, text_lens, P, pl, X, tl, st)
        valid = torch.arange(X.shape[-1], device=dev).view(1, -1) < tl.view(-1, 1)
        losses, correct, count = [], 0, 0
        for q, lg in enumerate(logits):
            lg_v, y_v = lg[valid].float(), Y[:, q][valid]
            losses.append(F.cross_entropy(lg_v, y_v))
            correct += int((lg_v.argmax(-1) == y_v).sum())
            count += int(y_v.numel())
        loss = torch.stack(losses).mean()
        return loss, {"loss": float(loss.detach()), "accuracy": correct / max(count, 1), "tokens": count, "stage": k}

    # ------------------------------------------------------------ inference
    @torch.no_grad()
    def predict_level(self, mrvq: MRVQ, text: Tensor, text_lens: Tensor, prompt: Tensor, feats: Tensor, k: int,
                      window: int | None = None, overlap: int | None = None) -> Tensor:
        """One item: prompt [1, D, Tp], feats [1, D, T] (levels <= k known) -> a_{k+1} [1, n_pre, T] (greedy)."""
        window = window or self.cfg.window
        overlap = self.cfg.overlap if overlap is None else overlap
        t = feats.shape[-1]
        out = torch.zeros(1, self.cfg.preq_n_q[k + 1], t, dtype=torch.long, device=feats.device)
        pl = torch.tensor([prompt.shape[-1]], device=feats.device)
        st = torch.tensor([k], device=feats.device)
        for s, e, ks, ke in window_spans(t, window, overlap):
            logits = self(text, text_lens, prompt, pl, feats[..., s:e], torch.tensor([e - s], device=feats.device), st)
            pred = torch.stack([lg.argmax(-1) for lg in logits], dim=1)  # [1, n_pre, e - s]
            out[..., ks:ke] = pred[..., ks - s : ke - s]
        return out

    @torch.no_grad()
    def generate(self, mrvq: MRVQ, text: Tensor, text_lens: Tensor, prompt: Tensor, b1: Tensor,
                 window: int | None = None, overlap: int | None = None) -> list[Tensor]:
        """One item: b1 [1, n_q1, T1] -> b per level [b_1, ..., b_K] (teacher frames = T1 * r_1)."""
        b = [b1]
        for k in range(self.cfg.n_levels - 1):
            feats = level_features(mrvq, b, k + 1)
            a_next = self.predict_level(mrvq, text, text_lens, prompt, feats, k, window, overlap)
            b.append(mrvq.levels[k + 1].b_from_a(a_next))
        return b


def _pad_feats(xs: list[Tensor]) -> Tensor:
    t = max(x.shape[-1] for x in xs)
    return torch.stack([F.pad(x, (0, t - x.shape[-1])) for x in xs])
