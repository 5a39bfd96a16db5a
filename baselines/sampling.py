"""Token sampling for the autoregressive models: temperature, top-k, top-p (nucleus).

Decisions:
- Order of filters: temperature scales the logits, then top-k, then top-p on the
  remaining distribution (the order of HF transformers' and lifeiteng's VALL-E).
- `temperature <= 0` or `top_k == 1` means greedy (argmax), with no random draw, so
  greedy decoding does not consume the generator.
- Draws use `torch.multinomial` with an explicit `torch.Generator`: the same seed
  gives the same tokens, batch item by batch item, on the same device.
- top-p keeps the smallest set whose probability reaches p, and always the top token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SamplingOptions:
    top_k: int = 0  # 0: no top-k filter
    top_p: float = 1.0  # 1.0: no nucleus filter
    temperature: float = 1.0
    max_new_tokens: int | None = None  # hard cap on generated frames per item
    max_len_ratio: float = 16.0  # cap = ratio x text length (VALL-E's rule), when > 0

    def __post_init__(self) -> None:
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0 or self.top_k == 1

    def max_frames(self, text_len: int) -> int:
        """Length cap for one item with `text_len` text tokens."""
        caps = []
        if self.max_new_tokens is not None:
            caps.append(int(self.max_new_tokens))
        if self.max_len_ratio and self.max_len_ratio > 0:
            caps.append(max(1, int(round(self.max_len_ratio * text_len))))
        if not caps:
            raise ValueError("no length cap: set max_new_tokens or max_len_ratio")
        return min(caps)


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Set logits outside top-k / the top-p nucleus to -inf (pure function, [B, V])."""
    out = logits.clone()
    v = out.shape[-1]
    if 0 < top_k < v:
        kth = torch.topk(out, top_k, dim=-1).values[..., -1:]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, idx = torch.sort(out, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the mass strictly before it already reaches p
        before = torch.cumsum(probs, dim=-1) - probs
        drop_sorted = before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, idx, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out


def sample_next(logits: Tensor, opts: SamplingOptions, generator: torch.Generator | None) -> Tensor:
    """logits [B, V] -> LongTensor [B]."""
    if opts.greedy:
        return logits.argmax(dim=-1)
    scaled = logits.float() / opts.temperature
    filtered = filter_logits(scaled, opts.top_k, opts.top_p)
    probs = torch.softmax(filtered, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
