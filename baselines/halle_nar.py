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
* Text memory: phoneme embeddings initialised with std d^-1/2 (as the AR and VALL-E's
  NAR; they are scaled by sqrt(d) on input) plus sinusoidal positions, then a LayerNorm
  (`text_norm`) before cross-attention. Without both, the memory started ~sqrt(d) too
  large and the cross-attention logits (std 5-10 at init) drowned the positions.
* **Windows, the same at training and inference.** The NAR always sees the whole prompt
  and one window of at most `window` teacher frames of the target, whose positions start
  right after the prompt's (prompt 0..P-1, window P..), and only the **text span that
  window needs** (`text_span`): the window's place in the utterance (prompt + target,
  the text covering both) mapped proportionally onto the text, widened by `text_margin`
  of the span's length (and at least `text_margin_min` tokens) on each side. There is no
  alignment, so proportional is the estimate; the margin absorbs rate changes.
  Training (`training_window`) draws the window's start at random over the target, in
  whole blocks of the coarsest ratio, so the model sees audio from the middle of a text.
  Inference cuts the target into windows of `window` frames overlapping by `overlap`;
  from the overlap between two windows the first keeps the first half, the second the
  rest. Stitching happens on a_{k+1}; the re-encoding to b_{k+1} runs once on the whole
  sequence (it is convolutional and cheap). Default 10 s windows with 2 s overlap.
* The frozen MRVQ always runs in fp32 outside autocast (`level_features`, `b_from_a`):
  its quantizers re-pick codes by argmin, and in bf16 0.7-22 % of them changed, so the
  NAR was conditioned differently in (bf16) training and (fp32) inference.
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
    text_margin: float = 0.25  # text span widening, fraction of the window's proportional span
    text_margin_min: int = 4  # ... and at least this many tokens on each side

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


def fp32_region(device: torch.device):
    """A region where autocast is off (the frozen MRVQ must run in fp32, see the module doc)."""
    return torch.autocast(device_type=device.type if device.type in ("cuda", "cpu") else "cpu", enabled=False)


def level_features(mrvq: MRVQ, b: list[Tensor], upto: int) -> Tensor:
    """f = sum_{j<upto} LRVQ_j.decode_b(b_j): [B, D, T] (frozen MRVQ, no grad, fp32 even under autocast)."""
    with torch.no_grad(), fp32_region(b[0].device):
        return sum(mrvq.levels[j].decode_b(b[j]) for j in range(upto)).float()


def reencode_level(mrvq: MRVQ, k: int, a: Tensor) -> Tensor:
    """b_k from predicted PreQ tokens a_k through the frozen E_k / Quant_k, in fp32."""
    with torch.no_grad(), fp32_region(a.device):
        return mrvq.levels[k].b_from_a(a)


def text_span(start: int, end: int, total: int, n_text: int, margin: float, margin_min: int) -> tuple[int, int]:
    """Text tokens [lo, hi) that frames [start, end) of a `total`-frame utterance need, when its
    `n_text` tokens cover it evenly: the proportional span widened by max(margin * span,
    margin_min) tokens per side, clipped to [0, n_text). Never empty when n_text > 0."""
    if n_text <= 0 or total <= 0:
        return 0, max(n_text, 0)
    lo_f, hi_f = start * n_text / total, end * n_text / total
    pad = max(margin * (hi_f - lo_f), float(margin_min))
    lo = max(0, int(np.floor(lo_f - pad)))
    hi = min(n_text, int(np.ceil(hi_f + pad)))
    return lo, max(hi, lo + 1)


def training_window(n: int, prompt: int, window: int, block: int, generator: torch.Generator | None) -> tuple[int, int]:
    """Target frames [s, e) of one training item: at most `window` frames after the `prompt`
    frames, starting at a random whole `block` (so windows come from anywhere in the text)."""
    if n <= prompt:
        return prompt, prompt
    w = min(window, n - prompt)
    slack = (n - prompt - w) // block
    s = prompt + (int(torch.randint(0, slack + 1, (1,), generator=generator)) * block if slack > 0 else 0)
    return s, min(n, s + w)


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
        nn.init.normal_(self.text_emb.weight, std=d**-0.5)  # scaled by sqrt(d) in text_pos: O(1)
        self.text_pos = SinusoidalPositions(d, cfg.transformer.dropout)
        self.text_norm = nn.LayerNorm(d)  # memory norm before cross-attention
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
        mem, pad_text = self.text_memory(text, text_lens)
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

    def text_memory(self, text: Tensor, text_lens: Tensor) -> tuple[Tensor, Tensor]:
        """[B, L] ids -> (normalised memory [B, L, d], pad mask [B, L])."""
        tpos = torch.arange(text.shape[1], device=text.device).view(1, -1)
        pad_text = tpos >= text_lens.view(-1, 1)
        mem = self.text_pos(self.text_emb(torch.where(pad_text, torch.full_like(text, self.text_pad), text)))
        return self.text_norm(mem), pad_text

    def window_text(self, text: Tensor, n_text: int, start: int, end: int, total: int) -> Tensor:
        """One item's text ids [L] -> the span window [start, end) of `total` frames needs."""
        lo, hi = text_span(start, end, total, n_text, self.cfg.text_margin, self.cfg.text_margin_min)
        return text[lo:hi]

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
        prompts, targets, tgts, p_lens, t_lens, texts = [], [], [], [], [], []
        for i, n in enumerate(lens.tolist()):
            nb = n // r1
            pb_lo, pb_hi = max(1, int(lo * nb)), max(1, int(hi * nb))
            pb = pb_lo if pb_hi <= pb_lo else int(torch.randint(pb_lo, pb_hi + 1, (1,), generator=generator))
            p = min(pb, max(nb - 1, 0)) * r1
            s, e = training_window(n, p, cfg.window, r1, generator)
            prompts.append(full[i, :, :p])
            targets.append(known[i, :, s:e])
            tgts.append(a[k + 1][i, :, s:e])
            texts.append(self.window_text(text[i], int(text_lens[i]), s, e, n))
            p_lens.append(p)
            t_lens.append(e - s)
        text, text_lens = _pad_ids(texts, self.text_pad)
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
        """One item: prompt [1, D, Tp], feats [1, D, T] (levels <= k known) -> a_{k+1} [1, n_pre, T] (greedy).

        `text` covers prompt + target (the prompt's transcript, then the target text), so a
        window [s, e) of the target is frames [Tp + s, Tp + e) of Tp + T for `text_span`."""
        window = window or self.cfg.window
        overlap = self.cfg.overlap if overlap is None else overlap
        t, tp = feats.shape[-1], prompt.shape[-1]
        out = torch.zeros(1, self.cfg.preq_n_q[k + 1], t, dtype=torch.long, device=feats.device)
        pl = torch.tensor([tp], device=feats.device)
        st = torch.tensor([k], device=feats.device)
        n_text = int(text_lens[0])
        for s, e, ks, ke in window_spans(t, window, overlap):
            wt = self.window_text(text[0], n_text, tp + s, tp + e, tp + t)[None]
            logits = self(wt, torch.tensor([wt.shape[1]], device=feats.device), prompt, pl, feats[..., s:e],
                          torch.tensor([e - s], device=feats.device), st)
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
            b.append(reencode_level(mrvq, k + 1, a_next))
        return b


def _pad_ids(xs: list[Tensor], pad: int) -> tuple[Tensor, Tensor]:
    n = max(x.numel() for x in xs)
    out = torch.stack([F.pad(x, (0, n - x.numel()), value=pad) for x in xs])
    return out, torch.tensor([x.numel() for x in xs], device=out.device)


def _pad_feats(xs: list[Tensor]) -> Tensor:
    t = max(x.shape[-1] for x in xs)
    return torch.stack([F.pad(x, (0, t - x.shape[-1])) for x in xs])
