"""Neural audio codec wrapper over the `encodec` package (SEANet encoder/decoder + RVQ).

`Codec` exposes the pieces the language models and MReQ need separately:
`embed` (continuous encoder output), `quantize` / `dequantize` (RVQ), `decode_emb`
(decoder), and the composed `encode` / `decode`.

Weights:
- `Codec.encodec_24khz(checkpoint)` loads Meta's EnCodec 24 kHz (`encodec_24khz-d7cc33bc.th`,
  a plain torch state dict, read with `weights_only=True`) from a local file. Nothing
  downloads. The file's name carries the first 8 hex digits of its sha256 (EnCodec's own
  convention); the full digest is not published, so the check is that prefix, and the
  full sha256 is recorded in `identity()` for run provenance.
- `Codec.from_config(cfg, seed)` builds a randomly initialised codec (tests, the 48 Hz
  MReQ teacher before training); `save(dir)` / `load(dir)` use safetensors + json.

Decisions:
- The RVQ is built with `cfg.n_q_total` quantizers (32 for the real checkpoint, so its
  state dict loads) and uses the first `cfg.n_q` (8 at 6 kbps).
- Random codebooks are initialised uniformly (no k-means at first use), so an untrained
  codec already produces varied codes; the codec is always in eval mode (no EMA updates).
- Input at another sample rate is resampled (polyphase, deterministic) to the codec's rate.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from halle_bench.audio import resample, sha256_file
from halle_bench.errors import ChecksumError
from halle_bench.models import ModelSpec, register_model

from .codec_api import ConfigProperties, register_codec_kind

ENCODEC_24KHZ = register_model(
    ModelSpec(
        name="encodec-24khz",
        backend="encodec",
        filename="encodec_24khz-d7cc33bc.th",
        description="Meta EnCodec 24 kHz (causal); VALL-E uses 6 kbps = 75 Hz x 8 codebooks x 1024",
        licence="MIT",
        how_to_get=(
            "download encodec_24khz-d7cc33bc.th (https://dl.fbaipublicfiles.com/encodec/v0/) on a machine "
            "with network access and give its path in the config, or put it in $HALLE_BENCH_HOME/models/encodec-24khz/"
        ),
    )
)
ENCODEC_24KHZ_SHA256_PREFIX = "d7cc33bc"


@dataclass(frozen=True)
class CodecConfig:
    sample_rate: int = 24000
    ratios: tuple[int, ...] = (8, 5, 4, 2)  # hop 320 -> 75 Hz at 24 kHz
    n_q: int = 8  # quantizers used
    codebook_size: int = 1024
    dimension: int = 128
    n_filters: int = 32
    n_residual_layers: int = 1
    lstm: int = 2
    causal: bool = True
    norm: str = "weight_norm"
    n_q_total: int | None = None  # quantizers built (None: n_q)
    name: str = "codec"

    @property
    def hop(self) -> int:
        return int(np.prod(self.ratios))

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @classmethod
    def encodec_24khz(cls, bandwidth: float = 6.0) -> "CodecConfig":
        n_q = int(1000 * bandwidth // (math.ceil(24000 / 320) * 10))
        return cls(n_q=n_q, n_q_total=32, name=f"encodec_24khz@{bandwidth:g}kbps")

    @classmethod
    def teacher_48hz(cls, **kw) -> "CodecConfig":
        """MReQ teacher: 48 Hz at 24 kHz (hop 500), 8 x 1024 (the paper does not say more)."""
        return cls(**{"ratios": (5, 5, 5, 4), "name": "codec48hz", **kw})

    @classmethod
    def tiny(cls, **kw) -> "CodecConfig":
        """A small random codec for tests: 75 Hz, 8 x 64 codes, 16-d."""
        return cls(**{"n_q": 8, "codebook_size": 64, "dimension": 16, "n_filters": 4, "lstm": 0, "name": "tiny", **kw})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratios"] = list(self.ratios)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CodecConfig":
        d = dict(d)
        d["ratios"] = tuple(d["ratios"])
        return cls(**d)


class Codec(ConfigProperties, nn.Module):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        from encodec.modules import SEANetDecoder, SEANetEncoder
        from encodec.quantization import ResidualVectorQuantizer

        self.cfg = cfg
        common = dict(
            channels=1,
            dimension=cfg.dimension,
            n_filters=cfg.n_filters,
            n_residual_layers=cfg.n_residual_layers,
            ratios=list(cfg.ratios),
            norm=cfg.norm,
            causal=cfg.causal,
            lstm=cfg.lstm,
        )
        with warnings.catch_warnings():  # encodec uses the old (deprecated) weight_norm API
            warnings.simplefilter("ignore", FutureWarning)
            self.encoder = SEANetEncoder(**common)
            self.decoder = SEANetDecoder(**common)
        self.quantizer = ResidualVectorQuantizer(
            dimension=cfg.dimension, n_q=cfg.n_q_total or cfg.n_q, bins=cfg.codebook_size, kmeans_init=False
        )
        self.weights_sha256: str | None = None  # of the file loaded, for identity()
        self.eval()

    # properties the models read (the rest from cfg: ConfigProperties)
    @property
    def n_q(self) -> int:
        return self.cfg.n_q

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def train(self, mode: bool = True) -> "Codec":
        # Always eval: EnCodec's codebooks update by EMA in training mode.
        return super().train(False)

    # ------------------------------------------------------------- pieces
    def _as_batch(self, wav: Tensor | np.ndarray, sr: int | None) -> Tensor:
        if isinstance(wav, np.ndarray):
            x = np.asarray(wav, dtype=np.float32).reshape(-1)
            if sr is not None and sr != self.sample_rate:
                x = resample(x, sr, self.sample_rate)
            return torch.from_numpy(np.ascontiguousarray(x)).view(1, 1, -1).to(self.device)
        t = wav.float()
        if t.dim() == 1:
            t = t.view(1, 1, -1)
        elif t.dim() == 2:
            t = t.unsqueeze(1)
        if t.dim() != 3 or t.shape[1] != 1:
            raise ValueError(f"wav must be [B, 1, N], [B, N] or [N], got {tuple(wav.shape)}")
        if sr is not None and sr != self.sample_rate:
            import torchaudio.functional as AF

            t = AF.resample(t, sr, self.sample_rate)
        return t.to(self.device)

    @torch.no_grad()
    def embed(self, wav: Tensor | np.ndarray, sr: int | None = None) -> Tensor:
        """Continuous encoder output [B, D, T]."""
        return self.encoder(self._as_batch(wav, sr))

    @torch.no_grad()
    def quantize(self, emb: Tensor, n_q: int | None = None) -> Tensor:
        """[B, D, T] -> codes [B, n_q, T]."""
        return self.quantizer.vq.encode(emb.float(), n_q=n_q or self.n_q).transpose(0, 1)

    @torch.no_grad()
    def dequantize(self, codes: Tensor) -> Tensor:
        """codes [B, n_q, T] (any n_q up to the built count) -> [B, D, T]."""
        return self.quantizer.vq.decode(codes.long().transpose(0, 1))

    @torch.no_grad()
    def decode_emb(self, emb: Tensor) -> Tensor:
        return self.decoder(emb.float())

    @torch.no_grad()
    def encode(self, wav: Tensor | np.ndarray, sr: int | None = None) -> Tensor:
        """Waveform -> codes [B, n_q, T], T = ceil(samples / hop)."""
        return self.quantize(self.embed(wav, sr))

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes [B, n_q, T] (or [n_q, T]) -> waveform [B, 1, T * hop]."""
        if codes.dim() == 2:
            codes = codes.unsqueeze(0)
        return self.decode_emb(self.dequantize(codes.to(self.device)))

    # ------------------------------------------------------------- weights
    def identity(self) -> dict[str, Any]:
        """What a checkpoint records to bind itself to this codec."""
        return {
            "name": self.cfg.name,
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            "n_q": self.n_q,
            "codebook_size": self.codebook_size,
            "weights_sha256": self.weights_sha256,
        }

    @classmethod
    def from_config(cls, cfg: CodecConfig, seed: int = 0) -> "Codec":
        g = torch.random.fork_rng(devices=[])
        with g:
            torch.manual_seed(seed)
            return cls(cfg)

    @classmethod
    def encodec_24khz(cls, checkpoint: str | Path | None = None, bandwidth: float = 6.0) -> "Codec":
        """The real EnCodec 24 kHz from a local file (path, or the models registry's location)."""
        from halle_bench.models import resolve

        path = resolve(ENCODEC_24KHZ, checkpoint, verify=False)
        digest = sha256_file(path)
        if not digest.startswith(ENCODEC_24KHZ_SHA256_PREFIX):
            raise ChecksumError(
                f"model 'encodec-24khz': {path} has sha256 {digest}, expected one starting with "
                f"{ENCODEC_24KHZ_SHA256_PREFIX}; the file is corrupt or a different model"
            )
        codec = cls(CodecConfig.encodec_24khz(bandwidth))
        from halle_bench.weights import load_state_strict, torch_load

        load_state_strict(codec, torch_load(path, "encodec-24khz"), "encodec-24khz", path)
        codec.weights_sha256 = digest
        return codec.eval()

    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(d / "codec.safetensors"))
        (d / "codec.json").write_text(json.dumps({"kind": "seanet", "config": self.cfg.to_dict()}, indent=2))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "Codec":
        from .checkpoint import load_state_strict

        d = Path(directory)
        meta = json.loads((d / "codec.json").read_text())
        codec = cls(CodecConfig.from_dict(meta["config"]))
        load_state_strict(codec, d / "codec.safetensors")
        codec.weights_sha256 = sha256_file(d / "codec.safetensors")
        return codec.eval()

    @torch.no_grad()
    def fit_codebooks(self, wavs: list[np.ndarray | Tensor], sr: int | None = None, seed: int = 0, iters: int = 10) -> "Codec":
        """Initialise every codebook by residual k-means on the encoder's output for `wavs`.

        This is EnCodec's own codebook initialisation (k-means on the first batch), run
        explicitly and seeded; a randomly initialised codec needs it to produce varied
        codes, since uniform random codebooks do not match the encoder's output scale.
        """
        from encodec.quantization.core_vq import kmeans

        x = torch.cat([self.embed(w, sr)[0].transpose(0, 1) for w in wavs], dim=0).float()  # [N, D]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for layer in self.quantizer.vq.layers:
                cb = layer._codebook
                means, _ = kmeans(x, cb.codebook_size, iters)
                cb.embed.copy_(means)
                cb.embed_avg.copy_(means)
                cb.inited.fill_(1.0)
                x = x - cb.dequantize(cb.quantize(x))
        return self

    def with_n_q(self, n_q: int) -> "Codec":
        """Use fewer/more of the built quantizers (bandwidth change), sharing weights."""
        if n_q > (self.cfg.n_q_total or self.cfg.n_q):
            raise ValueError(f"codec has {self.cfg.n_q_total or self.cfg.n_q} quantizers, asked for {n_q}")
        self.cfg = replace(self.cfg, n_q=n_q)
        return self


register_codec_kind("seanet", lambda d, meta: Codec.load(d))
