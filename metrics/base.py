"""Compatibility: the `Scorer` protocol and its registry now live in core
(`halle_bench.protocols`, beside `System`); everything is re-exported here so plugins
written against `halle_bench.metrics.base` keep working."""

from __future__ import annotations

from halle_bench.protocols import (
    NEEDS_PROMPT,
    NEEDS_REFERENCE,
    NEEDS_TEXT,
    SCORERS,
    BaseScorer,
    ModelRef,
    Scorer,
    ScoreItem,
    ScoreOutput,
    ScorerFactory,
    build_scorer,
    register_scorer,
    score_with_progress,
    scorer_names,
)

# Old private names some core modules still read (check_tolerance, metric_registry):
# the registry's own dict and a loader that imports every scorer.
_REGISTRY = SCORERS.entries
_IMPORT_ERRORS = SCORERS.errors


def _load_builtin() -> None:
    SCORERS.load_all()


__all__ = [
    "NEEDS_PROMPT", "NEEDS_REFERENCE", "NEEDS_TEXT", "SCORERS", "BaseScorer", "ModelRef", "Scorer", "ScoreItem",
    "ScoreOutput", "ScorerFactory", "build_scorer", "register_scorer", "score_with_progress", "scorer_names",
]
