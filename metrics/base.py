"""The `Scorer` protocol: metadata + batch scoring, torchmetrics style.

Each scorer is a pure function for the maths plus a thin class that owns the
loaded model. The runner builds a scorer from its config table, calls `load`
once per run, then `score` on batches of `ScoreItem`s (all systems' audio for
that scorer, so a model is loaded once, never per item), then `close`.

Audio arrives as mono float32 at 16 kHz (`halle_bench.audio.SCORING_SR`).
`score` returns one `ScoreOutput` per item, in order: a dict of values (numbers,
strings, or lists of numbers for diagnostics), or an error for that item. It must
not raise for one item's problem; it may raise for a broken model (the runner then
marks every item of the batch failed with that message).

`needs` lists the inputs an item cannot be scored without (text, reference, prompt);
`uses` those it takes when they exist. Both go into the cache key.

Register new scorers with `@register_scorer("name")`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import numpy as np

# What a scorer may need besides the generated audio.
NEEDS_TEXT = "text"
NEEDS_REFERENCE = "reference"  # ground-truth audio of the same utterance
NEEDS_PROMPT = "prompt"  # the voice prompt given to the system


@dataclass
class ScoreItem:
    system: str
    utt_id: str
    audio: np.ndarray  # generated speech, mono float32 at `sample_rate`
    sample_rate: int = 16000
    text: str | None = None  # the target text the system was asked to speak
    reference: np.ndarray | None = None  # ground-truth audio (prompt part removed when cut from it)
    prompt: np.ndarray | None = None  # voice prompt audio
    prompt_text: str | None = None
    is_ground_truth: bool = False  # the item *is* the reference audio (ceiling row)
    duration_ref: float | None = None  # reference duration in seconds, when known
    # [start, end) seconds removed from `reference` because the prompt was cut from there
    # (`head` policy); None otherwise. A ground-truth item's own audio lost the same span
    # when its scorer takes the prompt (`needs`/`uses` holds "prompt").
    prompt_cut: tuple[float, float] | None = None


@dataclass
class ScoreOutput:
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class ModelRef:
    """A model file a scorer uses: recorded in env.json and in cache keys."""

    name: str
    sha256: str
    path: str = ""


@runtime_checkable
class Scorer(Protocol):
    name: ClassVar[str]  # config key: "wer", "sim", "quality", "intrusive", "longform"
    version: ClassVar[str]  # bump when the maths changes; part of every cache key
    higher_is_better: ClassVar[dict[str, bool]]  # per output column that has a direction
    needs: ClassVar[frozenset[str]]  # required inputs: without one the item fails
    uses: ClassVar[frozenset[str]]  # optional inputs: given when available
    batch_size: int

    def settings(self) -> dict[str, Any]:
        """Everything that changes the numbers (model name, normaliser, decoding...)."""

    def models(self) -> list[ModelRef]: ...

    def load(self, device: str) -> None: ...

    def score(self, items: list[ScoreItem]) -> list[ScoreOutput]: ...

    def close(self) -> None: ...


class BaseScorer:
    """Convenience base with no-op load/close and settings from the config table."""

    name: ClassVar[str] = "base"
    version: ClassVar[str] = "0"
    higher_is_better: ClassVar[dict[str, bool]] = {}
    needs: ClassVar[frozenset[str]] = frozenset()
    uses: ClassVar[frozenset[str]] = frozenset()
    batch_size: int = 8

    def __init__(self, config: dict[str, Any] | None = None):
        self.config = dict(config or {})
        self.device = "cpu"

    def settings(self) -> dict[str, Any]:
        return dict(self.config)

    def models(self) -> list[ModelRef]:
        return []

    def load(self, device: str) -> None:
        self.device = device

    def close(self) -> None:
        return None

    def score(self, items: list[ScoreItem]) -> list[ScoreOutput]:
        raise NotImplementedError


ScorerFactory = Callable[[dict[str, Any]], Scorer]
_REGISTRY: dict[str, ScorerFactory] = {}


def register_scorer(name: str) -> Callable[[ScorerFactory], ScorerFactory]:
    def deco(factory: ScorerFactory) -> ScorerFactory:
        _REGISTRY[name] = factory
        return factory

    return deco


def scorer_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def build_scorer(name: str, config: dict[str, Any]) -> Scorer:
    from halle_bench.errors import ConfigError

    _load_builtin()
    if name not in _REGISTRY:
        from halle_bench.registry import describe

        raise ConfigError(f"unknown metric {name!r}; known: {', '.join(sorted(_REGISTRY))}{describe(_IMPORT_ERRORS)}")
    return _REGISTRY[name](config)


_BUILTIN_MODULES = (
    "halle_bench.metrics.wer",
    "halle_bench.metrics.speaker",
    "halle_bench.metrics.quality",
    "halle_bench.metrics.intrusive",
    "halle_bench.metrics.longform",
)
_IMPORT_ERRORS: dict[str, str] = {}


def _load_builtin() -> None:
    from halle_bench.registry import import_all

    import_all(_BUILTIN_MODULES, _IMPORT_ERRORS)
