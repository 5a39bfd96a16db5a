"""UTMOS22 strong learner (Saeki et al., 2022): architecture and checkpoint loader.

The inference network of the VoiceMOS 2022 "strong learner", without its phoneme
encoder, in the state-dict layout of tarepan/SpeechMOS's single-file checkpoint
(`utmos22_strong_step7459_v1.pt`, converted from sarulab-speech/UTMOS22):

    wave (16 kHz) -> wav2vec2-base (7 conv layers, LayerNorm, 512->768 projection,
    grouped positional conv, 12 post-LN transformer layers)  -> (B, T, 768)
    ++ domain embedding (1, 128) and listener ("judge") embedding (1, 128), both
       fixed vectors broadcast over time                      -> (B, T, 1024)
    -> BLSTM (512 per direction) -> Linear 1024->2048 -> ReLU -> Linear 2048->1
    -> mean over frames, * 2 + 3                              -> score per clip

Decisions:

* The loader builds the network from the checkpoint's *shapes* (conv channels,
  model width, layer count, FFN width, positional-conv kernel and groups, embedding
  and LSTM sizes), so a tiny randomly initialised model saved the same way loads
  through the same code (the tests do this). Not in the shapes: the conv strides
  (wav2vec2's 5,2,2,2,2,2,2) and the number of heads, taken as width / 64
  (12 for wav2vec2-base's 768).
* Loading is `torch.load(weights_only=True)` and `load_state_dict(strict=True)`:
  a missing or unexpected key is an error that lists them.
* **No padding, ever**: each clip is run alone at its own length. The original
  batches clips zero-padded to the longest one, which changes every clip's score
  with its batch-mates; here a score depends on the clip only. For the same reason
  the encoder does not pad odd frame counts to a multiple of 2 (the original pads
  one frame and masks it out of attention, which is the same computation).
* **Windows** (`UtmosModel`, the `utmos` entry of the quality registry): a clip is
  scored in `window_seconds` (10 s) windows every `hop_seconds` (= window), the last
  one ending at the clip's end (`quality_windows.cover_starts`); `quality` is their
  mean, and `quality_min` / `quality_last` / `pos_quality` come from them. A clip not
  longer than one window is scored whole, exactly as F5-TTS's evaluation scores its
  (short) clips; on long clips this also bounds attention memory, which grows with the
  square of the length (about 1 GB per layer for a whole 180 s clip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from halle_bench.errors import CheckpointError, ConfigError, MissingModelError
from halle_bench.models import check_sha256, resolve
from halle_bench.weights import load_state_strict, torch_load

from .base import ModelRef
from .quality_registry import UTMOS22, register_quality_model
from .quality_windows import WindowScores, cover_starts

CONV_STRIDES = (5, 2, 2, 2, 2, 2, 2)
CONV_KERNELS = (10, 3, 3, 3, 3, 2, 2)
HEAD_DIM = 64
MIN_SAMPLES = 400  # receptive field of the conv stack: shorter clips give no frame


@dataclass(frozen=True)
class UtmosConfig:
    """Sizes of the network; the defaults are UTMOS22 strong's."""

    conv_dim: int = 512
    ssl_dim: int = 768
    n_layers: int = 12
    ffn_dim: int = 3072
    pos_kernel: int = 128
    pos_groups: int = 16
    domain_dim: int = 128
    judge_dim: int = 128
    rnn_dim: int = 512
    proj_dim: int = 2048

    @property
    def n_heads(self) -> int:
        return max(1, self.ssl_dim // HEAD_DIM)


class WeightNormConv1d(nn.Module):
    """Conv1d with weight normalisation over dim 2 (parameters `weight_g`, `weight_v`),
    the layout `nn.utils.weight_norm(conv, dim=2)` saves."""

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        self.groups, self.padding = groups, kernel // 2
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.normal_(self.weight_v, std=math.sqrt(4.0 / (kernel * channels)))

    def forward(self, x: Tensor) -> Tensor:
        # norm of v over every dim except 2, i.e. one norm per kernel tap
        w = self.weight_g * self.weight_v / self.weight_v.norm(dim=(0, 1), keepdim=True)
        return F.conv1d(x, w, self.bias, padding=self.padding, groups=self.groups)


class DropLast(nn.Module):
    """Drop the last time step: an even kernel with symmetric padding yields one extra."""

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, :-1]


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D)
        b, t, d = x.shape

        def split(y: Tensor) -> Tensor:
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)))
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    """Post-LN transformer layer (wav2vec2-base: layer_norm_first = False)."""

    def __init__(self, dim: int, ffn: int, heads: int):
        super().__init__()
        self.self_attn = SelfAttention(dim, heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.self_attn_layer_norm(x + self.self_attn(x))
        return self.final_layer_norm(x + self.fc2(F.gelu(self.fc1(x))))


class TransformerEncoder(nn.Module):
    def __init__(self, cfg: UtmosConfig):
        super().__init__()
        self.pos_conv = nn.Sequential(WeightNormConv1d(cfg.ssl_dim, cfg.pos_kernel, cfg.pos_groups), DropLast(), nn.GELU())
        self.layer_norm = nn.LayerNorm(cfg.ssl_dim)
        self.layers = nn.ModuleList(EncoderLayer(cfg.ssl_dim, cfg.ffn_dim, cfg.n_heads) for _ in range(cfg.n_layers))

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D)
        x = self.layer_norm(x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2))
        for layer in self.layers:
            x = layer(x)
        return x


def _conv_block(n_in: int, n_out: int, kernel: int, stride: int, group_norm: bool) -> nn.Sequential:
    # Index layout as saved: 0 conv, 1 dropout (no weights), [2 group norm], then GELU.
    mods: list[nn.Module] = [nn.Conv1d(n_in, n_out, kernel, stride=stride, bias=False), nn.Dropout(0.0)]
    if group_norm:
        mods.append(nn.GroupNorm(n_out, n_out, affine=True))
    mods.append(nn.GELU())
    return nn.Sequential(*mods)


class FeatureExtractor(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv_layers = nn.ModuleList(
            _conv_block(1 if i == 0 else dim, dim, k, s, group_norm=(i == 0))
            for i, (k, s) in enumerate(zip(CONV_KERNELS, CONV_STRIDES))
        )

    def forward(self, wave: Tensor) -> Tensor:  # (B, S) -> (B, C, T)
        x = wave.unsqueeze(1)
        for conv in self.conv_layers:
            x = conv(x)
        return x


class Wav2Vec2(nn.Module):
    def __init__(self, cfg: UtmosConfig):
        super().__init__()
        self.feature_extractor = FeatureExtractor(cfg.conv_dim)
        self.layer_norm = nn.LayerNorm(cfg.conv_dim)
        self.post_extract_proj = nn.Linear(cfg.conv_dim, cfg.ssl_dim)
        self.encoder = TransformerEncoder(cfg)
        self.mask_emb = nn.Parameter(torch.zeros(cfg.ssl_dim))  # pre-training remnant, kept for the key layout

    def forward(self, wave: Tensor) -> Tensor:
        x = self.feature_extractor(wave).transpose(1, 2)
        return self.encoder(self.post_extract_proj(self.layer_norm(x)))


class UTMOS22Strong(nn.Module):
    def __init__(self, cfg: UtmosConfig = UtmosConfig()):
        super().__init__()
        self.cfg = cfg
        self.wav2vec2 = Wav2Vec2(cfg)
        self.domain_emb = nn.Parameter(torch.randn(1, cfg.domain_dim), requires_grad=False)
        self.judge_emb = nn.Parameter(torch.randn(1, cfg.judge_dim), requires_grad=False)
        self.blstm = nn.LSTM(cfg.ssl_dim + cfg.domain_dim + cfg.judge_dim, cfg.rnn_dim, batch_first=True, bidirectional=True)
        self.projection = nn.Sequential(nn.Linear(2 * cfg.rnn_dim, cfg.proj_dim), nn.ReLU(), nn.Linear(cfg.proj_dim, 1))

    def forward(self, wave: Tensor) -> Tensor:
        """(B, S) equal-length waves at 16 kHz -> (B,) scores. Never pad clips to batch them."""
        ssl = self.wav2vec2(wave)
        b, t, _ = ssl.shape
        cond = torch.cat([self.domain_emb, self.judge_emb], dim=1).unsqueeze(1).expand(b, t, -1)
        frames = self.projection(self.blstm(torch.cat([ssl, cond], dim=2))[0])
        return frames.mean(dim=1).squeeze(1) * 2 + 3


def config_from_state_dict(sd: dict[str, Tensor]) -> UtmosConfig:
    """Network sizes read from the tensors' shapes (see the module docstring)."""
    try:
        pv = sd["wav2vec2.encoder.pos_conv.0.weight_v"]
        n_layers = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith("wav2vec2.encoder.layers."))
        return UtmosConfig(
            conv_dim=sd["wav2vec2.post_extract_proj.weight"].shape[1],
            ssl_dim=sd["wav2vec2.post_extract_proj.weight"].shape[0],
            n_layers=n_layers,
            ffn_dim=sd["wav2vec2.encoder.layers.0.fc1.weight"].shape[0],
            pos_kernel=pv.shape[2],
            pos_groups=pv.shape[0] // pv.shape[1],
            domain_dim=sd["domain_emb"].shape[1],
            judge_dim=sd["judge_emb"].shape[1],
            rnn_dim=sd["blstm.weight_hh_l0"].shape[1],
            proj_dim=sd["projection.0.weight"].shape[0],
        )
    except (KeyError, ValueError, IndexError) as e:
        raise ValueError(f"not a UTMOS22-strong state dict (missing or malformed {e})") from None


class Utmos:
    """Owns a loaded UTMOS22-strong network; scores clips one at a time."""

    def __init__(self, model: UTMOS22Strong, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.device = device

    @torch.inference_mode()
    def score(self, wave, sr: int = 16000) -> float:
        if sr != 16000:
            raise ValueError(f"UTMOS needs 16000 Hz audio, got {sr}")
        x = torch.as_tensor(wave, dtype=torch.float32).reshape(1, -1)
        if x.shape[1] < MIN_SAMPLES:
            raise ValueError(f"clip too short for UTMOS ({x.shape[1]} samples < {MIN_SAMPLES})")
        return float(self.model(x.to(self.device))[0])


def load_utmos(path: str | Path, device: str = "cpu") -> Utmos:
    """Load a UTMOS22-strong state dict (.pt) with strict keys and weights_only."""
    p = Path(path)
    if not p.exists():
        raise MissingModelError(f"UTMOS checkpoint not found: {p}")
    sd = torch_load(p, "utmos22-strong")
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]  # also accept a {"state_dict": ...} wrapper
    if not isinstance(sd, dict):
        raise CheckpointError(f"{p}: expected a state dict, got {type(sd).__name__}")
    try:
        cfg = config_from_state_dict(sd)
    except ValueError as e:
        raise CheckpointError(f"{p}: {e}") from None
    model = UTMOS22Strong(cfg)
    load_state_strict(model, sd, "utmos22-strong", p)
    return Utmos(model, device)


@register_quality_model("utmos")
class UtmosModel:
    """The `utmos` entry of the quality registry: UTMOS per window (see the docstring)."""

    name: ClassVar[str] = "utmos"
    label: ClassVar[str] = UTMOS22.name
    config_keys: ClassVar[frozenset[str]] = frozenset({"window_seconds", "hop_seconds"})
    extra_columns: ClassVar[dict[str, bool]] = {"utmos": True}

    def __init__(self, config: dict[str, Any], model_path: str | None = None):
        try:
            self.window_seconds = float(config.get("window_seconds", 10.0))
            hop = config.get("hop_seconds")
            self.hop_seconds = float(hop) if hop is not None else self.window_seconds
        except (TypeError, ValueError) as e:
            raise ConfigError(f"metrics.quality: bad number: {e}") from None
        if not (self.window_seconds >= 1.0 and 0 < self.hop_seconds <= self.window_seconds):
            raise ConfigError("metrics.quality (utmos): need window_seconds >= 1 and 0 < hop_seconds <= window_seconds")
        self.model_path = model_path
        self._ref: ModelRef | None = None
        self._model: Utmos | None = None
        self.device = "cpu"

    def settings(self) -> dict[str, Any]:
        return {"window_seconds": self.window_seconds, "hop_seconds": self.hop_seconds}

    def models(self) -> list[ModelRef]:
        if self._ref is None:
            p = resolve(UTMOS22, self.model_path)
            self._ref = ModelRef(UTMOS22.name, check_sha256(p, None, UTMOS22.name), str(p))
        return [self._ref]

    def load(self, device: str) -> None:
        self.device = device
        try:
            self._model = load_utmos(self.models()[0].path, device=device)
        except CheckpointError as e:  # a corrupt file, or not a UTMOS22-strong state dict
            raise ConfigError(f"metrics.quality.model_path: {e}") from None

    def score_clips(self, clips: list[np.ndarray]) -> list[WindowScores | str]:
        if self._model is None:
            self.load(self.device)
        win, hop = int(round(self.window_seconds * 16000)), int(round(self.hop_seconds * 16000))
        out: list[WindowScores | str] = []
        for x in clips:
            starts = cover_starts(x.size, win, hop)
            try:  # each window alone, at its own length: no padding, batch-invariant
                scores = tuple(self._model.score(x[s : s + win]) for s in starts)
            except ValueError as e:  # too short for the conv stack
                out.append(f"quality: {e}")
                continue
            out.append(WindowScores(scores, tuple(starts), win, int(x.size), {"utmos": float(np.mean(scores))}))
        return out
