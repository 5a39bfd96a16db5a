"""Length buckets: the axis of every halle-bench leaderboard.

Buckets are half-open ``[lo, hi)`` intervals between consecutive edges, except that
the last bucket also includes its top edge, so with the MinutesSpeech edges a 180.0 s
utterance lands in ``90-180`` (test-180s holds utterances of up to 180 s) rather than
in an overflow bucket. Durations below the first edge are labelled ``<3``, above the
last edge ``>180``; they are kept, not dropped, so bucket counts always add up.
An utterance without a usable duration (None or NaN) is labelled ``unknown``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from ..errors import ConfigError
from .utterance import Utterance

DEFAULT_BUCKETS = (3, 10, 30, 60, 90, 180)
UNKNOWN_BUCKET = "unknown"


def _fmt(x: float) -> str:
    """3.0 -> "3", 2.5 -> "2.5" (labels must read like the paper's "3-10")."""
    x = float(x)
    return str(int(x)) if x.is_integer() else f"{x:g}"


def validate_edges(edges: Sequence[float]) -> tuple[float, ...]:
    """Edges as floats; ConfigError unless >= 2 finite, non-negative, strictly increasing."""
    try:
        e = tuple(float(x) for x in edges)
    except (TypeError, ValueError):
        raise ConfigError(f"bucket edges must be numbers, got {list(edges)!r}") from None
    if len(e) < 2 or any(not math.isfinite(x) or x < 0 for x in e) or any(b <= a for a, b in zip(e, e[1:])):
        raise ConfigError(f"bucket edges must be >= 2 non-negative, strictly increasing numbers, got {list(edges)!r}")
    return e


def bucket_labels(edges: Sequence[float]) -> list[str]:
    """All labels in display order, e.g. ["<3", "3-10", ..., "90-180", ">180"]."""
    e = validate_edges(edges)
    return [f"<{_fmt(e[0])}"] + [f"{_fmt(a)}-{_fmt(b)}" for a, b in zip(e, e[1:])] + [f">{_fmt(e[-1])}"]


def bucket_label(duration: float | None, edges: Sequence[float] = DEFAULT_BUCKETS) -> str:
    """The bucket label of one duration in seconds (see the module docstring)."""
    e = validate_edges(edges)
    if duration is None or not math.isfinite(float(duration)):
        return UNKNOWN_BUCKET
    d = float(duration)
    if d < e[0]:
        return f"<{_fmt(e[0])}"
    if d > e[-1]:
        return f">{_fmt(e[-1])}"
    if d == e[-1]:  # the last bucket is closed at its top
        return f"{_fmt(e[-2])}-{_fmt(e[-1])}"
    i = bisect.bisect_right(e, d) - 1  # e[i] <= d < e[i+1]
    return f"{_fmt(e[i])}-{_fmt(e[i + 1])}"


def assign_buckets(utts: Sequence[Utterance], edges: Sequence[float] = DEFAULT_BUCKETS) -> list[Utterance]:
    """Copies of `utts` with `.bucket` set from their duration (audio or estimate)."""
    validate_edges(edges)
    return [u.with_(bucket=bucket_label(u.duration, edges)) for u in utts]
