"""Transformer blocks shared by VALL-E (AR, NAR) and HALL-E.

One pre-norm block type covers every use:

- causal self-attention with a key/value cache (the AR models),
- bidirectional self-attention (the NAR models),
- adaptive layer norm, where the norm's scale and shift depend on a stage index
  (VALL-E's NAR: one model for codebooks 2..8),
- optional cross-attention to a memory (HALL-E's NAR reads the text this way).

Decisions where the papers are silent:

- Pre-norm (norm before each sub-layer, a final norm after the stack), as in the
  public VALL-E re-implementations; post-norm needs warmup tricks to train deep.
- Adaptive norm = LayerNorm without affine, then `x * scale[stage] + shift[stage]`
  with per-stage parameters initialised to (1, 0), i.e. a plain LayerNorm at start.
- The KV cache preallocates its buffers and grows them geometrically, so a decoding
  step writes one column instead of re-concatenating the whole cache (torch.cat per
  step copies O(T) memory per token, which made the per-token cost grow with T).
- Attention goes through `F.scaled_dot_product_attention` (flash / memory-efficient
  kernels on CUDA, a fused kernel on CPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class TransformerConfig:
    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int
    dropout: float = 0.0
    adaptive_norm: bool = False
    n_stages: int = 0  # number of AdaLN stages (adaptive_norm only)
    cross_attention: bool = False

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if self.adaptive_norm and self.n_stages < 1:
            raise ValueError("adaptive_norm needs n_stages >= 1")

    @classmethod
    def paper(cls, **kw) -> "TransformerConfig":
        """VALL-E's size: 12 layers, 16 heads, d 1024, FFN 4096."""
        return cls(**{"d_model": 1024, "n_heads": 16, "n_layers": 12, "d_ff": 4096, "dropout": 0.1, **kw})

    @classmethod
    def tiny(cls, **kw) -> "TransformerConfig":
        """For tests and CPU smoke runs."""
        return cls(**{"d_model": 64, "n_heads": 4, "n_layers": 2, "d_ff": 128, **kw})

    @classmethod
    def for_size(cls, size: str, **kw) -> "TransformerConfig":
        """`paper` or `tiny`, with overrides."""
        if size == "paper":
            return cls.paper(**kw)
        if size == "tiny":
            return cls.tiny(**kw)
        raise ValueError(f"unknown size {size!r} (paper | tiny)")


class KVCache:
    """Per-layer key/value tensors [B, H, S, Dh] that grow by appending.

    Also keeps the key padding mask of every cached position, so batched decoding
    with per-item padding inside the sequence stays exact. `length` is the number
    of cached positions (the same for every layer once a forward has finished).
    """

    def __init__(self, n_layers: int, capacity: int = 256):
        self.n_layers = n_layers
        self.length = 0
        self._capacity = max(1, int(capacity))
        self._k: list[Tensor | None] = [None] * n_layers
        self._v: list[Tensor | None] = [None] * n_layers
        self._pad: Tensor | None = None  # [B, capacity] bool, True = padding

    def _grow(self, buf: Tensor, need: int) -> Tensor:
        cap = buf.shape[-2]
        if need <= cap:
            return buf
        new_cap = max(need, 2 * cap)
        out = buf.new_zeros(*buf.shape[:-2], new_cap, buf.shape[-1])
        out[..., :cap, :] = buf
        return out

    def append_mask(self, pad: Tensor) -> Tensor:
        """Record the new positions' padding; returns the mask of all positions."""
        b, t = pad.shape
        need = self.length + t
        if self._pad is None:
            self._pad = torch.zeros(b, max(self._capacity, need), dtype=torch.bool, device=pad.device)
        elif need > self._pad.shape[1]:
            grown = torch.zeros(b, max(need, 2 * self._pad.shape[1]), dtype=torch.bool, device=pad.device)
            grown[:, : self._pad.shape[1]] = self._pad
            self._pad = grown
        self._pad[:, self.length : need] = pad
        return self._pad[:, :need]

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write the new keys/values of `layer`; returns all keys/values so far."""
        t = k.shape[-2]
        need = self.length + t
        kb, vb = self._k[layer], self._v[layer]
        if kb is None:
            shape = (*k.shape[:-2], max(self._capacity, need), k.shape[-1])
            kb, vb = k.new_zeros(shape), v.new_zeros(shape)
        else:
            kb, vb = self._grow(kb, need), self._grow(vb, need)
        kb[..., self.length : need, :] = k
        vb[..., self.length : need, :] = v
        self._k[layer], self._v[layer] = kb, vb
        return kb[..., :need, :], vb[..., :need, :]

    def advance(self, t: int) -> None:
        self.length += t


class SinusoidalPositions(nn.Module):
    """VALL-E's positional encoding: `x * sqrt(d) + alpha * PE(pos)`, alpha learnable (init 1).

    `offset` is the position of x's first frame: an int, or a LongTensor [B] when
    items of a batch are at different positions (batched cached decoding).
    """

    def __init__(self, d_model: int, dropout: float = 0.0, scale: bool = True):
        super().__init__()
        self.d_model = d_model
        self.x_scale = math.sqrt(d_model) if scale else 1.0
        self.alpha = nn.Parameter(torch.ones(1))
        self.dropout = nn.Dropout(dropout)
        inv = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        self.register_buffer("inv_freq", inv, persistent=False)

    def encoding(self, positions: Tensor) -> Tensor:
        """PE for integer positions [...]: [..., d_model] (sin on even, cos on odd dims)."""
        ang = positions.to(torch.float32).unsqueeze(-1) * self.inv_freq
        pe = torch.stack([ang.sin(), ang.cos()], dim=-1).flatten(-2)
        return pe[..., : self.d_model]

    def forward(self, x: Tensor, offset: int | Tensor = 0, positions: Tensor | None = None) -> Tensor:
        """`positions` [B, T] (explicit per-frame positions) overrides `offset`."""
        b, t, _ = x.shape
        pos = torch.arange(t, device=x.device)
        if positions is not None:
            pos = positions.to(x.device)
        elif isinstance(offset, Tensor):
            pos = offset.to(x.device).view(-1, 1) + pos.view(1, -1)  # [B, T]
        else:
            pos = (pos + int(offset)).view(1, -1)
        pe = self.encoding(pos).to(x.dtype)
        return self.dropout(x * self.x_scale + self.alpha.to(x.dtype) * pe)


class AdaptiveLayerNorm(nn.Module):
    """LayerNorm whose scale/shift are chosen by a stage index (init: plain LayerNorm)."""

    def __init__(self, d_model: int, n_stages: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps, elementwise_affine=False)
        self.scale = nn.Embedding(n_stages, d_model)
        self.shift = nn.Embedding(n_stages, d_model)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: Tensor, stage: Tensor | None) -> Tensor:
        if stage is None:
            raise ValueError("adaptive layer norm needs `stage` (LongTensor [B])")
        return self.norm(x) * self.scale(stage).unsqueeze(1) + self.shift(stage).unsqueeze(1)


class _Norm(nn.Module):
    """LayerNorm or AdaptiveLayerNorm behind one call signature."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ada = AdaptiveLayerNorm(cfg.d_model, cfg.n_stages) if cfg.adaptive_norm else None
        self.ln = None if cfg.adaptive_norm else nn.LayerNorm(cfg.d_model)

    def forward(self, x: Tensor, stage: Tensor | None) -> Tensor:
        return self.ada(x, stage) if self.ada is not None else self.ln(x)


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float, cross: bool = False):
        super().__init__()
        self.h = n_heads
        self.dh = d_model // n_heads
        self.dropout = dropout
        self.cross = cross
        if cross:
            self.q = nn.Linear(d_model, d_model)
            self.kv = nn.Linear(d_model, 2 * d_model)
        else:
            self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        # training-only alignment prior (align_prior.capture_attention): keep the attention
        # probabilities of the first `capture_heads` heads, with gradients
        self.capture_heads = 0
        self.captured: Tensor | None = None

    def _heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.h, self.dh).transpose(1, 2)

    def forward(
        self,
        x: Tensor,
        allowed: Tensor | None,
        *,
        memory: Tensor | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> Tensor:
        b, t, d = x.shape
        if self.cross:
            q = self._heads(self.q(x))
            k, v = (self._heads(z) for z in self.kv(memory).chunk(2, dim=-1))
        else:
            q, k, v = (self._heads(z) for z in self.qkv(x).chunk(3, dim=-1))
            if cache is not None:
                k, v = cache.update(layer, k, v)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )
        if self.capture_heads:  # the same probabilities SDPA used (before dropout), explicitly
            n = self.capture_heads
            scores = (q[:, :n] @ k[:, :n].transpose(-1, -2)) / math.sqrt(self.dh)
            if allowed is not None:
                scores = scores.masked_fill(~allowed, float("-inf"))
            self.captured = torch.softmax(scores.float(), dim=-1)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm1 = _Norm(cfg)
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.dropout)
        if cfg.cross_attention:
            self.norm_x = _Norm(cfg)
            self.xattn = Attention(cfg.d_model, cfg.n_heads, cfg.dropout, cross=True)
        else:
            self.norm_x = self.xattn = None
        self.norm2 = _Norm(cfg)
        self.ff = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.d_ff, cfg.d_model)
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, allowed, stage, cache, layer, memory, mem_allowed):
        x = x + self.drop(self.attn(self.norm1(x, stage), allowed, cache=cache, layer=layer))
        if self.xattn is not None:
            x = x + self.drop(self.xattn(self.norm_x(x, stage), mem_allowed, memory=memory))
        return x + self.drop(self.ff(self.norm2(x, stage)))


def attention_mask(
    key_padding: Tensor | None, t_query: int, t_key: int, causal: bool, device: torch.device
) -> Tensor | None:
    """Boolean mask [B|1, 1, Tq, Tk], True = may attend; None when nothing is masked.

    Queries are the last `t_query` of the `t_key` positions (cached decoding).
    """
    allowed = None
    if causal and t_query > 1:
        q_pos = torch.arange(t_key - t_query, t_key, device=device).view(-1, 1)
        allowed = (torch.arange(t_key, device=device).view(1, -1) <= q_pos).view(1, 1, t_query, t_key)
    if key_padding is not None and bool(key_padding.any()):
        keep = (~key_padding).view(key_padding.shape[0], 1, 1, t_key)
        allowed = keep if allowed is None else (allowed & keep)
    return allowed


def decoding_backends():
    """Context for step-by-step decoding: SDPA without the cuDNN backend.

    cuDNN attention (preferred for fp16/bf16 on recent GPUs) builds an execution plan per
    new key length, and autoregressive decoding has a new key length at every step: on
    an H100 that cost ~70 ms per token. Flash / memory-efficient / math kernels have no
    per-shape setup.
    """
    from contextlib import nullcontext

    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # older torch: no cuDNN backend either
        return nullcontext()
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


class Transformer(nn.Module):
    """A stack of pre-norm blocks with a final norm."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = _Norm(cfg)

    def new_cache(self, capacity: int = 256) -> KVCache:
        return KVCache(self.cfg.n_layers, capacity)

    def forward(
        self,
        x: Tensor,
        *,
        causal: bool,
        key_padding_mask: Tensor | None = None,
        cache: KVCache | None = None,
        stage: Tensor | None = None,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """x [B, T, D] -> [B, T, D]. `key_padding_mask` [B, T] (True = pad) covers x's
        positions only; with a cache, earlier positions' padding is remembered."""
        b, t, _ = x.shape
        if cache is not None:
            pad = key_padding_mask if key_padding_mask is not None else torch.zeros(b, t, dtype=torch.bool, device=x.device)
            full_pad = cache.append_mask(pad)
            t_key = cache.length + t
        else:
            full_pad, t_key = key_padding_mask, t
        allowed = attention_mask(full_pad, t, t_key, causal, x.device)
        mem_allowed = None
        if memory is not None and self.cfg.cross_attention:
            mem_allowed = attention_mask(memory_padding_mask, t, memory.shape[1], False, x.device)
        elif memory is not None:
            raise ValueError("memory given but the transformer has no cross-attention")
        for i, layer in enumerate(self.layers):
            x = layer(x, allowed, stage, cache, i, memory, mem_allowed)
        if cache is not None:
            cache.advance(t)
        return self.norm(x, stage)
