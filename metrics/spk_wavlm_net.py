"""The WavLM backbone of the `wavlm-tdnn` speaker verifier (split from spk_wavlm.py).

Module for module the WavLM of unilm `wavlm/WavLM.py` + `modules.py` as UniSpeech's
speaker-verification checkpoint holds it (see `spk_wavlm` for the whole model, the
checkpoint loader and the decisions). Attribute names are the checkpoint's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

WAVLM_PREFIX = "feature_extract.model."
IGNORED_PREFIXES = ("loss_calculator.",)
_STRIDE_FOR_KERNEL = {10: 5, 3: 2, 2: 2}


@dataclass(frozen=True)
class WavLMConfig:
    conv_layers: tuple[tuple[int, int, int], ...] = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    extractor_mode: str = "layer_norm"  # "default": one GroupNorm after the first conv
    conv_bias: bool = False
    embed_dim: int = 1024
    ffn_dim: int = 4096
    layers: int = 24
    heads: int = 16
    layer_norm_first: bool = True
    normalize: bool = True
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True


# ---------------------------------------------------------------- WavLM


class _Transpose(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(-2, -1)


class ConvFeatureExtractor(nn.Module):
    def __init__(self, cfg: WavLMConfig):
        super().__init__()
        self.conv_layers = nn.ModuleList()
        in_d = 1
        for i, (dim, k, stride) in enumerate(cfg.conv_layers):
            conv = nn.Conv1d(in_d, dim, k, stride=stride, bias=cfg.conv_bias)
            if cfg.extractor_mode == "layer_norm":
                norm: nn.Module = nn.Sequential(_Transpose(), nn.LayerNorm(dim), _Transpose())
                block = nn.Sequential(conv, nn.Dropout(0.0), norm, nn.GELU())
            elif i == 0:
                block = nn.Sequential(conv, nn.Dropout(0.0), nn.GroupNorm(dim, dim), nn.GELU())
            else:
                block = nn.Sequential(conv, nn.Dropout(0.0), nn.GELU())
            self.conv_layers.append(block)
            in_d = dim

    def forward(self, wav: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, C, T)
        x = wav.unsqueeze(1)
        for block in self.conv_layers:
            x = block(x)
        return x


class WeightNormConv(nn.Module):
    """Grouped conv with weight normalisation over dim 2 (the kernel axis), keys `weight_g/v`.

    w = g * v / ||v||, the norm taken over output and input channels for each kernel tap,
    as `torch.nn.utils.weight_norm(conv, dim=2)` stores it in the original checkpoints.
    """

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        self.groups = groups
        self.padding = kernel // 2
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.randn(channels, channels // groups, kernel) * 0.02)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.weight_v.pow(2).sum(dim=(0, 1), keepdim=True).sqrt()
        w = self.weight_g * self.weight_v / norm
        return F.conv1d(x, w, self.bias, padding=self.padding, groups=self.groups)


class _SamePad(nn.Module):
    def __init__(self, kernel: int):
        super().__init__()
        self.remove = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : -self.remove] if self.remove else x


def relative_position_bucket(rel: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bidirectional T5-style buckets: exact below num_buckets/4, log-spaced up to max_distance."""
    half = num_buckets // 2
    buckets = (rel > 0).long() * half
    dist = rel.abs()
    max_exact = half // 2
    is_small = dist < max_exact
    # clamp avoids log(0); those positions take the exact branch anyway
    large = max_exact + (
        torch.log(dist.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)
    ).long()
    large = large.clamp(max=half - 1)
    return buckets + torch.where(is_small, dist, large)


class GatedRelPosAttention(nn.Module):
    def __init__(self, cfg: WavLMConfig, has_bias_table: bool):
        super().__init__()
        d = cfg.embed_dim
        self.heads = cfg.heads
        self.head_dim = d // cfg.heads
        self.cfg = cfg
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.q_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        if has_bias_table:
            self.relative_attention_bias = nn.Embedding(cfg.num_buckets, cfg.heads)
        if cfg.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, cfg.heads, 1, 1))

    def compute_bias(self, t: int, device) -> torch.Tensor:  # (H, T, T)
        pos = torch.arange(t, device=device)
        buckets = relative_position_bucket(pos[None, :] - pos[:, None], self.cfg.num_buckets, self.cfg.max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, pos_bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, t, d = x.shape
        if pos_bias is None and hasattr(self, "relative_attention_bias"):
            pos_bias = self.compute_bias(t, x.device)

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, d)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        mask = None
        if pos_bias is not None:
            mask = pos_bias.unsqueeze(0)
            if self.cfg.gru_rel_pos:
                # The gate reads the layer *input* split into heads (not q), as in WavLM.
                g = torch.sigmoid(self.grep_linear(heads(x)).view(b, self.heads, t, 2, 4).sum(-1))
                gate_a, gate_b = g[..., :1], g[..., 1:]
                mask = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * pos_bias.unsqueeze(0)
        # The bias is added to q.k / sqrt(d) before the softmax.
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d)), pos_bias


class EncoderLayer(nn.Module):
    def __init__(self, cfg: WavLMConfig, has_bias_table: bool):
        super().__init__()
        self.pre_norm = cfg.layer_norm_first
        self.self_attn = GatedRelPosAttention(cfg, has_bias_table)
        self.self_attn_layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.fc1 = nn.Linear(cfg.embed_dim, cfg.ffn_dim)
        self.fc2 = nn.Linear(cfg.ffn_dim, cfg.embed_dim)
        self.final_layer_norm = nn.LayerNorm(cfg.embed_dim)

    def forward(self, x: torch.Tensor, pos_bias: torch.Tensor | None):
        if self.pre_norm:
            a, pos_bias = self.self_attn(self.self_attn_layer_norm(x), pos_bias)
            x = x + a
            x = x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))
        else:
            a, pos_bias = self.self_attn(x, pos_bias)
            x = self.self_attn_layer_norm(x + a)
            x = self.final_layer_norm(x + self.fc2(F.gelu(self.fc1(x))))
        return x, pos_bias


class TransformerEncoder(nn.Module):
    def __init__(self, cfg: WavLMConfig):
        super().__init__()
        self.cfg = cfg
        self.pos_conv = nn.Sequential(
            WeightNormConv(cfg.embed_dim, cfg.conv_pos, cfg.conv_pos_groups), _SamePad(cfg.conv_pos), nn.GELU()
        )
        self.layers = nn.ModuleList(
            EncoderLayer(cfg, has_bias_table=cfg.relative_position and i == 0) for i in range(cfg.layers)
        )
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All hidden states: the input of every layer, then the encoder output."""
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.cfg.layer_norm_first:
            x = self.layer_norm(x)
        states, pos_bias = [], None
        for layer in self.layers:
            states.append(x)
            x, pos_bias = layer(x, pos_bias)
        states.append(self.layer_norm(x) if self.cfg.layer_norm_first else x)
        return states


class WavLM(nn.Module):
    def __init__(self, cfg: WavLMConfig):
        super().__init__()
        self.cfg = cfg
        conv_dim = cfg.conv_layers[-1][0]
        self.feature_extractor = ConvFeatureExtractor(cfg)
        self.layer_norm = nn.LayerNorm(conv_dim)
        self.post_extract_proj = nn.Linear(conv_dim, cfg.embed_dim)
        self.mask_emb = nn.Parameter(torch.zeros(cfg.embed_dim))  # training-only; kept for strict loading
        self.encoder = TransformerEncoder(cfg)

    def forward(self, wav: torch.Tensor) -> list[torch.Tensor]:
        if self.cfg.normalize:
            wav = F.layer_norm(wav, wav.shape[-1:])
        feats = self.layer_norm(self.feature_extractor(wav).transpose(1, 2))
        return self.encoder(self.post_extract_proj(feats))


__all__ = ["WAVLM_PREFIX", "IGNORED_PREFIXES", "WavLM", "WavLMConfig", "GatedRelPosAttention", "WeightNormConv", "relative_position_bucket"]
