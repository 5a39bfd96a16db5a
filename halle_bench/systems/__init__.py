"""Systems: the `System` protocol, its registry and the built-in adapters
(`command`, `wavdir`, `python`, `ground-truth`; baselines add `valle`, `halle`)."""

from .base import (
    SYSTEMS,
    BaseSystem,
    SynthesisRequest,
    SynthesisResult,
    System,
    build_system,
    register_system,
    system_kinds,
)

__all__ = [
    "SYSTEMS",
    "BaseSystem",
    "SynthesisRequest",
    "SynthesisResult",
    "System",
    "build_system",
    "register_system",
    "system_kinds",
]
