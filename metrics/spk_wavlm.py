"""WavLM-Large + ECAPA-TDNN speaker verifier (`wavlm-tdnn`), our own implementation.

This is the model behind the SIM numbers of seed-tts-eval, F5-TTS and the HALL-E paper:
UniSpeech's `ECAPA_TDNN_SMALL(feat_dim=1024, feat_type="wavlm_large")`, checkpoint
`wavlm_large_finetune.pth` = `{"model": state_dict}`. We rebuild it module for module so
that file loads with a strict key check and `torch.load(weights_only=True)`; nothing is
fetched (the original pulls WavLM through torch.hub / s3prl).

Architecture, as learned from UniSpeech (`downstreams/speaker_verification/models/
ecapa_tdnn.py`), unilm `wavlm/WavLM.py` + `modules.py` and s3prl's WavLM expert:

The WavLM backbone lives in `spk_wavlm_net.py`; this module holds the ECAPA-TDNN head,
the checkpoint loader and the registered encoder.

- input: each waveform layer-normalised over its whole length (WavLM-Large `normalize`);
- WavLM (keys `feature_extract.model.*`): 7 conv layers (512 ch, kernels 10,3,3,3,3,2,2,
  strides 5,2,2,2,2,2,2, no bias, LayerNorm over channels + GELU after each: 20 ms frames),
  LayerNorm(512), Linear 512->1024, a grouped (16) weight-normalised positional conv (kernel
  128, "same" length, GELU) added to the input, then 24 pre-LayerNorm transformer layers
  (16 heads, FFN 4096, GELU) with a *gated relative position bias*: layer 0 owns a
  320-bucket table (log buckets beyond 80, saturating at distance 800), shared by all layers;
  each layer scales it per head and query position by a gate computed from its input
  (`grep_linear`, `grep_a`); final LayerNorm;
- hidden states = the input of each of the 24 layers + the encoder output (25, s3prl's
  `hidden_states`), mixed by softmax(`feature_weight`);
- ECAPA-TDNN head: InstanceNorm, Conv1d(1024->512, k5) + ReLU + BN, three SE-Res2 blocks
  (k3, dilation 2/3/4, scale 8), concat -> 1x1 conv to 1536, attentive statistics pooling,
  BN, Linear 3072->256.

The sizes are derived from the checkpoint's tensor shapes (`infer_config`), so a small
randomly initialised model saved in the same layout exercises exactly this code; settings
that leave no trace in the shapes (strides, pre-norm, input normalisation, max distance 800)
are WavLM-Large's. Keys under `loss_calculator.` (the training-time AAM-softmax head) are the
only ones ignored; a key prefix `feature_extract.upstream.model.` is accepted as an alias.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from halle_bench.errors import CheckpointError
from halle_bench.weights import load_state_strict, torch_load

from .spk_registry import register_speaker_model
from .spk_windows import run_grouped
from .spk_wavlm_net import _STRIDE_FOR_KERNEL, IGNORED_PREFIXES, WAVLM_PREFIX, WavLM, WavLMConfig


@dataclass(frozen=True)
class HeadConfig:
    feat_dim: int = 1024
    channels: int = 512
    mid_channels: int = 1536
    emb_dim: int = 256
    scale: int = 8
    se_dim: int = 128
    attention_channels: int = 128


class _Upstream(nn.Module):
    """Holds WavLM under `.model`, so keys read `feature_extract.model.*` as in s3prl."""

    def __init__(self, cfg: WavLMConfig):
        super().__init__()
        self.model = WavLM(cfg)


# ---------------------------------------------------------------- ECAPA-TDNN head


class Conv1dReluBn(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 1, padding: int = 0, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, k, padding=padding, dilation=dilation)
        self.bn = nn.BatchNorm1d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class Res2Conv1dReluBn(nn.Module):
    """Res2Net: channel groups processed in a cascade; the last group passes through."""

    def __init__(self, channels: int, k: int, padding: int, dilation: int, scale: int):
        super().__init__()
        self.width = channels // scale
        self.nums = scale if scale == 1 else scale - 1
        self.convs = nn.ModuleList(
            nn.Conv1d(self.width, self.width, k, padding=padding, dilation=dilation) for _ in range(self.nums)
        )
        self.bns = nn.ModuleList(nn.BatchNorm1d(self.width) for _ in range(self.nums))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.width, 1)
        out, sp = [], None
        for i in range(self.nums):
            sp = parts[i] if i == 0 else sp + parts[i]
            sp = self.bns[i](F.relu(self.convs[i](sp)))
            out.append(sp)
        if self.nums != len(parts):
            out.append(parts[self.nums])
        return torch.cat(out, dim=1)


class SEConnect(nn.Module):
    def __init__(self, channels: int, bottleneck: int):
        super().__init__()
        self.linear1 = nn.Linear(channels, bottleneck)
        self.linear2 = nn.Linear(bottleneck, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.linear2(F.relu(self.linear1(x.mean(dim=2)))))
        return x * s.unsqueeze(2)


class SERes2Block(nn.Module):
    def __init__(self, channels: int, dilation: int, scale: int, se_dim: int):
        super().__init__()
        # Attribute names are the checkpoint's.
        self.Conv1dReluBn1 = Conv1dReluBn(channels, channels)
        self.Res2Conv1dReluBn = Res2Conv1dReluBn(channels, 3, dilation, dilation, scale)
        self.Conv1dReluBn2 = Conv1dReluBn(channels, channels)
        self.SE_Connect = SEConnect(channels, se_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.SE_Connect(self.Conv1dReluBn2(self.Res2Conv1dReluBn(self.Conv1dReluBn1(x))))
        return x + y


class AttentiveStatsPool(nn.Module):
    def __init__(self, dim: int, attention_channels: int):
        super().__init__()
        self.linear1 = nn.Conv1d(dim, attention_channels, 1)
        self.linear2 = nn.Conv1d(attention_channels, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.softmax(self.linear2(torch.tanh(self.linear1(x))), dim=2)
        mean = (alpha * x).sum(dim=2)
        var = (alpha * x * x).sum(dim=2) - mean * mean
        return torch.cat([mean, var.clamp(min=1e-9).sqrt()], dim=1)


class WavLMECAPA(nn.Module):
    """UniSpeech's ECAPA_TDNN_SMALL over WavLM hidden states; forward: (B, L) wav -> (B, emb)."""

    def __init__(self, wavlm: WavLMConfig = WavLMConfig(), head: HeadConfig = HeadConfig()):
        super().__init__()
        self.feature_extract = _Upstream(wavlm)
        self.feature_weight = nn.Parameter(torch.zeros(wavlm.layers + 1))
        self.instance_norm = nn.InstanceNorm1d(head.feat_dim)
        c = head.channels
        self.layer1 = Conv1dReluBn(head.feat_dim, c, 5, padding=2)
        self.layer2 = SERes2Block(c, 2, head.scale, head.se_dim)
        self.layer3 = SERes2Block(c, 3, head.scale, head.se_dim)
        self.layer4 = SERes2Block(c, 4, head.scale, head.se_dim)
        self.conv = nn.Conv1d(3 * c, head.mid_channels, 1)
        self.pooling = AttentiveStatsPool(head.mid_channels, head.attention_channels)
        self.bn = nn.BatchNorm1d(2 * head.mid_channels)
        self.linear = nn.Linear(2 * head.mid_channels, head.emb_dim)

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        states = torch.stack(self.feature_extract.model(wav), dim=0)  # (L+1, B, T, C)
        w = torch.softmax(self.feature_weight, dim=-1).view(-1, 1, 1, 1)
        x = (w * states).sum(dim=0).transpose(1, 2) + 1e-6
        return self.instance_norm(x)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        out1 = self.layer1(self.features(wav))
        out2 = self.layer2(out1)
        out3 = self.layer3(out2)
        out4 = self.layer4(out3)
        out = F.relu(self.conv(torch.cat([out2, out3, out4], dim=1)))
        return self.linear(self.bn(self.pooling(out)))


# ---------------------------------------------------------------- checkpoint


def normalize_keys(state: dict) -> dict:
    alias = "feature_extract.upstream.model."
    return {(WAVLM_PREFIX + k[len(alias) :] if k.startswith(alias) else k): v for k, v in state.items()}


def infer_config(state: dict) -> tuple[WavLMConfig, HeadConfig]:
    """Sizes from tensor shapes (see the module docstring); raises CheckpointError if absent."""
    p = WAVLM_PREFIX

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise CheckpointError(f"wavlm-tdnn: key {key!r} not found; not a WavLM-TDNN checkpoint")
        return tuple(state[key].shape)

    convs = []
    i = 0
    while f"{p}feature_extractor.conv_layers.{i}.0.weight" in state:
        dim, _, k = shape(f"{p}feature_extractor.conv_layers.{i}.0.weight")
        convs.append((dim, k, _STRIDE_FOR_KERNEL.get(k, max(1, k // 2))))
        i += 1
    if not convs:
        shape(f"{p}feature_extractor.conv_layers.0.0.weight")
    n_layers = 0
    while f"{p}encoder.layers.{n_layers}.fc1.weight" in state:
        n_layers += 1
    embed = shape(f"{p}post_extract_proj.weight")[0]
    gru = f"{p}encoder.layers.0.self_attn.grep_a" in state
    rel = f"{p}encoder.layers.0.self_attn.relative_attention_bias.weight" in state
    if not gru:
        raise CheckpointError("wavlm-tdnn: no gated relative position parameters (grep_a); not a WavLM checkpoint")
    heads = shape(f"{p}encoder.layers.0.self_attn.grep_a")[1]
    _, in_per_group, k_pos = shape(f"{p}encoder.pos_conv.0.weight_v")
    base = WavLMConfig()
    wcfg = replace(
        base,
        conv_layers=tuple(convs),
        extractor_mode="layer_norm" if f"{p}feature_extractor.conv_layers.0.2.1.weight" in state else "default",
        conv_bias=f"{p}feature_extractor.conv_layers.0.0.bias" in state,
        embed_dim=embed,
        ffn_dim=shape(f"{p}encoder.layers.0.fc1.weight")[0],
        layers=n_layers,
        heads=heads,
        conv_pos=k_pos,
        conv_pos_groups=embed // in_per_group,
        relative_position=rel,
        num_buckets=shape(f"{p}encoder.layers.0.self_attn.relative_attention_bias.weight")[0] if rel else base.num_buckets,
        gru_rel_pos=gru,
    )
    c, feat, _ = shape("layer1.conv.weight")
    n_convs = 0
    while f"layer2.Res2Conv1dReluBn.convs.{n_convs}.weight" in state:
        n_convs += 1
    head = HeadConfig(
        feat_dim=feat,
        channels=c,
        mid_channels=shape("conv.weight")[0],
        emb_dim=shape("linear.weight")[0],
        scale=n_convs + 1 if n_convs > 0 else 1,
        se_dim=shape("layer2.SE_Connect.linear1.weight")[0],
        attention_channels=shape("pooling.linear1.weight")[0],
    )
    return wcfg, head


def load_wavlm_ecapa(path: str | Path) -> WavLMECAPA:
    ckpt = torch_load(path, "wavlm-tdnn")
    state = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"wavlm-tdnn: {path} has no 'model' state dict (expected UniSpeech's {{'model': ...}})")
    state = normalize_keys(state)
    wcfg, hcfg = infer_config(state)
    model = WavLMECAPA(wcfg, hcfg)
    load_state_strict(model, state, "wavlm-tdnn", path, ignore_prefixes=IGNORED_PREFIXES)
    return model.eval()


@register_speaker_model("wavlm-tdnn")
class WavLMTDNNEncoder:
    """Thin owner of the loaded verifier; implements `spk_registry.SpeakerEncoder`."""

    name = "wavlm-tdnn"

    def __init__(self, model: WavLMECAPA, device: str = "cpu", batch: int = 16):
        self.model = model.to(device).eval()
        self.device = device
        self.batch = batch

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", batch: int = 16) -> "WavLMTDNNEncoder":
        return cls(load_wavlm_ecapa(path), device=device, batch=batch)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", batch: int = 16) -> "WavLMTDNNEncoder":
        return cls.from_checkpoint(path, device=device, batch=batch)

    def prepare(self, audio: np.ndarray) -> np.ndarray:
        return np.asarray(audio, dtype=np.float32)  # seed-tts-eval feeds the raw 16 kHz waveform

    def _forward(self, wavs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(wavs, dtype=np.float32)).to(self.device)
            return self.model(x).float().cpu().numpy()

    def embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        return run_grouped(windows, self._forward, self.batch)
