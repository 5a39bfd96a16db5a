"""The `System` protocol: anything that turns (text, voice prompt) into speech.

A system is built from its config table (`[[systems]]` in the TOML), loaded once
per run (`load`), asked to `synthesize` batches of requests, then `close`d. It
never raises for one utterance's problem: it returns a `SynthesisResult` with
`error` set, so the runner records a failed row and goes on. The runner times each
`synthesize` call (wall clock, GPU synchronised) unless the result carries its own
`wall_seconds` (or `info["wall_seconds"]`); batched systems should set it per item
or accept the even split. Systems that only read files (`timed = False`) get no
RTF; a system with a per-call start-up cost can `measure_startup(request)` once.

New kinds register with `@register_system("kind")`; baselines add "valle" and
"halle" this way without the runner knowing them. The registry (`SYSTEMS`) is a
`halle_bench.registry.Registry`: plugins add kinds through `[run] plugins` or entry
points. The `Scorer` protocol sits beside this one in `halle_bench.protocols`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError
from ..registry import Registry, describe


@dataclass(frozen=True)
class SynthesisRequest:
    utt_id: str
    text: str
    prompt_audio: Path | None = None
    prompt_text: str | None = None
    seed: int = 0
    # Reference audio path and the prompt cut, for systems that need them
    # (ground-truth, wavdir); speech models must not look at `reference_audio`.
    reference_audio: Path | None = None
    prompt_start: float | None = None
    prompt_end: float | None = None
    workdir: Path | None = None  # scratch folder the system may write to


@dataclass
class SynthesisResult:
    utt_id: str
    audio: np.ndarray | None = None  # mono float32
    sample_rate: int | None = None
    error: str | None = None
    wall_seconds: float | None = None  # set by batched systems that time items themselves
    info: dict[str, Any] = field(default_factory=dict)  # e.g. {"ar_seconds": .., "nar_seconds": ..}

    @property
    def ok(self) -> bool:
        return self.error is None and self.audio is not None


@runtime_checkable
class System(Protocol):
    name: str
    kind: str
    batch_size: int

    def cache_key(self) -> dict[str, Any]:
        """Everything about this system that changes its output (config, checkpoint sha256)."""

    def load(self, device: str) -> None: ...

    def warmup(self) -> None:
        """Run once before timing (CUDA kernels, caches); may do nothing."""

    def synthesize(self, requests: list[SynthesisRequest]) -> list[SynthesisResult]: ...

    def close(self) -> None: ...

    def models(self) -> list[dict[str, str]]:
        """Model files used: [{"name":..., "sha256":...}] for env.json."""


class BaseSystem:
    """Convenience base: stores name/config, no-op load/warmup/close."""

    kind: ClassVar[str] = "base"
    batch_size: int = 1
    # False for systems that read audio instead of synthesising it (ground truth,
    # wavdir): their rows get no wall time and no RTF.
    timed: ClassVar[bool] = True

    def __init__(self, name: str, config: dict[str, Any], base_dir: Path):
        self.name = name
        self.config = dict(config)
        self.base_dir = base_dir
        self.device = "cpu"

    def cache_key(self) -> dict[str, Any]:
        return {"kind": self.kind, **{k: v for k, v in self.config.items() if k != "name"}}

    def load(self, device: str) -> None:
        self.device = device

    def warmup(self) -> None:
        return None

    def close(self) -> None:
        return None

    def models(self) -> list[dict[str, str]]:
        return []

    def item_fingerprint(self, request: SynthesisRequest) -> str:
        """Per-item input the system reads besides the request fields (e.g. the
        pre-generated file of `wavdir`, the reference of `ground-truth`): its hash
        goes into the generation cache key, so a changed file is re-read."""
        return ""

    def synthesize(self, requests: list[SynthesisRequest]) -> list[SynthesisResult]:
        raise NotImplementedError


SystemFactory = Callable[[str, dict[str, Any], Path], System]

# Modules that register kinds on import, in lookup order: the harness's own kinds
# first, so a wavdir/command run does not pay for importing the model baselines
# (torch, their networks: seconds of a scoring-only run). If the baselines fail to
# import, the other kinds still work and the error is shown when someone asks for a
# missing kind. Plugins: `[run] plugins` modules, or the entry-point groups
# ``halle_bench.systems`` (a factory named by kind) and ``halle_bench.plugins``.
_CORE_MODULES = ("halle_bench.systems.adapters",)
_BUILTIN_MODULES = _CORE_MODULES + ("halle_bench.baselines.adapters",)
SYSTEMS: Registry[SystemFactory] = Registry("system kind", "halle_bench.systems", defaults=_BUILTIN_MODULES)


def register_system(kind: str, description: str = "") -> Callable[[SystemFactory], SystemFactory]:
    """Class decorator: `@register_system("command")`."""
    return SYSTEMS.register(kind, description=description)


def system_kinds() -> dict[str, str]:
    SYSTEMS.load_all()
    return dict(sorted(SYSTEMS.descriptions.items()))


def build_system(name: str, config: dict[str, Any], base_dir: Path) -> System:
    """Instantiate a system from its config table; unknown kinds are a ConfigError."""
    kind = config.get("kind")
    factory = SYSTEMS.find(kind) if isinstance(kind, str) and kind else None
    if factory is None:
        raise ConfigError(
            f"system '{name}': unknown kind {kind!r}; known kinds: {', '.join(SYSTEMS.names())}"
            f"{describe(SYSTEMS.all_errors())}"
        )
    return factory(name, config, base_dir)
