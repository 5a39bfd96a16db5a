"""The codec interface that MReQ, VALL-E and HALL-E take, and loading any codec folder.

Two implementations:

| kind    | class                    | what                                                         |
|---------|--------------------------|--------------------------------------------------------------|
| seanet  | `codec.Codec`            | EnCodec's SEANet encoder/decoder + RVQ (EnCodec 24 kHz, tests) |
| mel     | `melcodec.MelCodec`      | log-mel + residual k-means + Griffin-Lim (the shipped 48 Hz teacher) |

A codec folder holds `codec.json` ({"kind": ..., "config": ...}; no "kind" = seanet, the
format written before there were two) and `codec.safetensors`. `load_codec(folder)`
dispatches on the kind, so checkpoints of VALL-E / MReQ / HALL-E work with either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
from torch import Tensor

from halle_bench.registry import Registry


@runtime_checkable
class CodecInterface(Protocol):
    """What every codec offers. Shapes are channels-first: emb [B, D, T], codes [B, n_q, T]."""

    sample_rate: int
    frame_rate: float
    n_q: int
    codebook_size: int
    dimension: int
    weights_sha256: str | None

    def embed(self, wav: Tensor | np.ndarray, sr: int | None = None) -> Tensor: ...
    def quantize(self, emb: Tensor, n_q: int | None = None) -> Tensor: ...
    def dequantize(self, codes: Tensor) -> Tensor: ...
    def decode_emb(self, emb: Tensor) -> Tensor: ...
    def encode(self, wav: Tensor | np.ndarray, sr: int | None = None) -> Tensor: ...
    def decode(self, codes: Tensor) -> Tensor: ...
    def identity(self) -> dict[str, Any]: ...
    def save(self, directory: str | Path) -> Path: ...
    def with_n_q(self, n_q: int) -> Any: ...


class ConfigProperties:
    """The interface properties that every codec reads straight from its `cfg` (a mixin, so
    that each codec class only writes the ones it computes: n_q, device, hop)."""

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.cfg.frame_rate

    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    @property
    def dimension(self) -> int:
        return self.cfg.dimension


# Codec kinds by name (the `kind` of a codec folder's codec.json): the package's own
# `seanet` and the mel codec register when their modules are imported; a plugin adds a
# kind with `register_codec_kind` in a `[run] plugins` module or through the entry-point
# groups ``halle_bench.codecs`` (a loader named like the kind) / ``halle_bench.plugins``.
CODECS: Registry[Callable[[Path, dict[str, Any]], Any]] = Registry(
    "codec kind", "halle_bench.codecs", defaults=("halle_bench.baselines.codec", "halle_bench.baselines.melcodec"))


def register_codec_kind(kind: str, loader: Callable[[Path, dict[str, Any]], Any]) -> None:
    """`loader(folder, meta)` builds the codec from its folder (meta = parsed codec.json)."""
    CODECS.register(kind, loader)


def codec_kinds() -> list[str]:
    return CODECS.names()


def load_codec(directory: str | Path) -> CodecInterface:
    """Any codec folder -> the loaded codec (eval mode), with `weights_sha256` set."""
    from halle_bench.baselines.checkpoint import CheckpointError

    d = Path(directory)
    meta_path = d / "codec.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"not a codec folder (no codec.json): {d}")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{meta_path}: not valid JSON (line {e.lineno}): {e.msg}") from None
    kind = meta.get("kind", "seanet")
    loader = CODECS.find(kind) if isinstance(kind, str) else None
    if loader is None:
        raise CheckpointError(f"{meta_path}: unknown codec kind {kind!r} (known: {', '.join(codec_kinds())})")
    return loader(d, meta)


__all__ = ["CODECS", "CodecInterface", "ConfigProperties", "load_codec", "register_codec_kind", "codec_kinds"]
