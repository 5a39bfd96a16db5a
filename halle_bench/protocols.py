"""The contracts a plugin implements, in core: `Scorer` here, beside `System`.

`System` (halle_bench/systems/base.py, re-exported here) turns (text, voice prompt) into
speech; `Scorer` turns audio into numbers. Both are looked up by name in a `Registry`
(halle_bench/registry.py: the package's defaults, `[run] plugins` modules and entry
points), so a plugin needs only this module and the registry, not halle-bench's own
scorers (`halle_bench.metrics.base` re-exports everything here for compatibility).

The `Scorer` protocol: metadata + batch scoring, torchmetrics style. Each scorer is a
pure function for the maths plus a thin class that owns the loaded model. The runner
builds a scorer from its config table, calls `load` once per worker, then `score` on
batches of `ScoreItem`s (all systems' audio for that scorer, so a model is loaded
once, never per item), then `close`.

Audio arrives as mono float32 at 16 kHz (`halle_bench.audio.SCORING_SR`).
`score` returns one `ScoreOutput` per item, in order: a dict of values (numbers,
strings, or lists of numbers for diagnostics), or an error for that item. It must
not raise for one item's problem; it may raise for a broken model (the runner then
marks every item of the batch failed with that message).

`needs` lists the inputs an item cannot be scored without (text, reference, prompt);
`uses` those it takes when they exist. Both go into the cache key.

Progress: a driver that wants to show progress inside a batch calls
`score_with_progress(scorer, items, advance)`; a scorer that works in smaller steps
(windows) calls its `progress` hook with fractions of items as they finish.

Register new scorers with `@register_scorer("name")` (or the entry-point group
``halle_bench.scorers``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import numpy as np

from .errors import ConfigError
from .registry import Registry, UnknownName
from .systems.base import BaseSystem, SynthesisRequest, SynthesisResult, System, build_system, register_system

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
    # Set by the driver around a `score` call (see `score_with_progress`): called with
    # the items' worth of work just finished, fractions allowed (a scorer that works
    # window by window reports as windows finish). None: nobody listens.
    progress: Callable[[float], None] | None = None

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

# The package's own scorers, declared by module: asking for one imports only it.
SCORERS: Registry[ScorerFactory] = Registry("metric", "halle_bench.scorers")
for _name, _mod in (("wer", "wer"), ("sim", "speaker"), ("quality", "quality"), ("intrusive", "intrusive"),
                    ("longform", "longform")):
    SCORERS.declare(_name, f"halle_bench.metrics.{_mod}")


def register_scorer(name: str) -> Callable[[ScorerFactory], ScorerFactory]:
    """Class decorator: `@register_scorer("name")`."""
    return SCORERS.register(name)


def scorer_names() -> list[str]:
    return SCORERS.names()


def build_scorer(name: str, config: dict[str, Any]) -> Scorer:
    try:
        factory = SCORERS.get(name)
    except UnknownName as e:
        raise ConfigError(str(e)) from None
    return factory(config)


def score_with_progress(scorer: Any, items: list[ScoreItem], advance: Callable[[float], None]) -> list[ScoreOutput]:
    """`scorer.score(items)`, advancing a progress display by len(items) in all: by the
    fractions the scorer reports through its `progress` hook while it works, the rest
    when it returns (or raises). A scorer without the hook advances once, at the end."""
    reported = [0.0]

    def hook(n: float) -> None:
        n = max(0.0, min(float(n), len(items) - reported[0]))  # never past the batch
        if n > 0:
            reported[0] += n
            advance(n)

    had = getattr(scorer, "progress", None)
    try:
        scorer.progress = hook
    except AttributeError:  # a scorer that does not take attributes: no inner progress
        pass
    try:
        return scorer.score(items)
    finally:
        try:
            scorer.progress = had
        except AttributeError:
            pass
        if len(items) - reported[0] > 1e-9:
            advance(len(items) - reported[0])


__all__ = [
    "NEEDS_PROMPT", "NEEDS_REFERENCE", "NEEDS_TEXT", "SCORERS", "BaseScorer", "BaseSystem", "ModelRef", "Scorer",
    "ScoreItem", "ScoreOutput", "ScorerFactory", "SynthesisRequest", "SynthesisResult", "System", "build_scorer",
    "build_system", "register_scorer", "register_system", "score_with_progress", "scorer_names",
]
