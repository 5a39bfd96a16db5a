"""Quality (MOS-predictor) models by name: `@register_quality_model("dnsmos")`.

Same shape as the speaker registry (`spk_registry`): names and model specs are declared
here, light, so the scorer validates a config and `halle-bench models` lists the files
without importing torch or onnxruntime; the backend class registers itself when its
module is imported, which happens only when that model is asked for. A plugin adds a
model without editing this file: `declare_quality_model(QualityModelInfo(...))` and
`@register_quality_model(name)` in its own module, listed in `[run] plugins` or as an
entry point (group ``halle_bench.quality_models`` or ``halle_bench.plugins``; see
`halle_bench.registry`).

A backend class provides:

    name: ClassVar[str]                   # the registry name
    label: ClassVar[str]                  # the `quality_model` value its rows carry
    config_keys: ClassVar[frozenset[str]] # its own keys in [metrics] quality
    extra_columns: ClassVar[dict[str, bool]]  # model-specific columns -> higher is better
    __init__(config: dict, model_path: str | None)   # ConfigError for a bad value
    settings() -> dict                    # everything that changes its numbers
    models() -> list[ModelRef]
    load(device) -> None
    score_clips(clips: list[16 kHz arrays]) -> list[WindowScores | str]  # str: that clip's error
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from halle_bench.errors import ConfigError
from halle_bench.models import ModelSpec, register_model
from halle_bench.registry import LazyBackends


@dataclass(frozen=True)
class QualityModelInfo:
    name: str
    module: str  # importing it registers the backend class
    specs: tuple[ModelSpec, ...] = ()


_REG = LazyBackends("quality model", "halle_bench.quality_models")


def declare_quality_model(info: QualityModelInfo) -> QualityModelInfo:
    for spec in info.specs:
        register_model(spec)
    return _REG.declare(info.name, info)


def register_quality_model(name: str) -> Callable[[type], type]:
    return _REG.register(name)


def quality_model_names() -> list[str]:
    return _REG.names()


def quality_backend(name: str) -> type:
    if _REG.find_info(name) is None:
        raise ConfigError(f"metrics.quality.model must be one of {', '.join(quality_model_names())}, got {name!r}")
    return _REG.backend(name)


# ---------------------------------------------------------------- built-in models

DNSMOS_P835 = ModelSpec(
    name="dnsmos-p835",
    backend="onnx",
    filename="sig_bak_ovr.onnx",
    description="Microsoft DNSMOS P.835 (SIG/BAK/OVRL), non-personalised",
    package="speechmos",
    package_files=("dnsmos_models/sig_bak_ovr.onnx",),
    sha256="269fbebdb513aa23cddfbb593542ecc540284a91849ac50516870e1ac78f6edd",
    licence="MIT",
)
DNSMOS_P808 = ModelSpec(
    name="dnsmos-p808",
    backend="onnx",
    filename="model_v8.onnx",
    description="Microsoft DNSMOS P.808 (overall MOS)",
    package="speechmos",
    package_files=("dnsmos_models/model_v8.onnx",),
    sha256="9246480c58567bc6affd4200938e77eef49468c8bc7ed3776d109c07456f6e91",
    licence="MIT",
)
UTMOS22 = ModelSpec(
    name="utmos22-strong",
    backend="utmos",
    filename="utmos22_strong_step7459_v1.pt",
    description="UTMOS22 strong learner (wav2vec2-base + BLSTM), SpeechMOS state dict",
    sha256=None,  # user file: its sha256 is computed and recorded
    licence="MIT",
    how_to_get=(
        "download utmos22_strong_step7459_v1.pt (tarepan/SpeechMOS release v1.0.0) on a machine with "
        "network access and give its path as metrics.quality.model_path, or put it at "
        "$HALLE_BENCH_HOME/models/utmos22-strong/utmos22_strong_step7459_v1.pt"
    ),
)

declare_quality_model(QualityModelInfo("dnsmos", "halle_bench.metrics.dnsmos", (DNSMOS_P835, DNSMOS_P808)))
declare_quality_model(QualityModelInfo("utmos", "halle_bench.metrics.utmos", (UTMOS22,)))

__all__ = [
    "DNSMOS_P808",
    "DNSMOS_P835",
    "UTMOS22",
    "QualityModelInfo",
    "declare_quality_model",
    "quality_backend",
    "quality_model_names",
    "register_quality_model",
]
