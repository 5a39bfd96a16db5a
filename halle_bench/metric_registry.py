"""The registry of metric declarations, and the statistics every declaration shares.

Declarations (`metric_decl.Metric`) live next to the code that produces their columns:
the scorer modules in `halle_bench.metrics` (wer.py, speaker.py, quality.py,
intrusive.py, longform.py) and, for the runner's own timing columns, this module.
A plugin adds its own with `register_metric(Metric(...))` at import. `aggregate`,
`check`, `report`, `plots` and `exports` read `metric_declarations()` and name no metric.
Adding a metric = one declaration.

Columns that no declaration claims stay in utterances.csv (and, averaged over
successes, in leaderboard.csv) but are never shown in a table, plotted or gated.

Weighted statistics: every function takes per-utterance weights `w` (1 for each row
used; bootstrap resamples are integer weights), so one formula serves the point value,
the bootstrap and the paired test.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from .metric_decl import ALIAS, COUNT, DIAGNOSTIC, EXCLUDE, HEADLINE, Bound, Metric

# ----------------------------------------------------------------------------- registry

_DECLARED: dict[str, Metric] = {}
# Caches: the scorer registry's size when its modules were last loaded (entry points are
# scanned once, ~10 ms), and the ordered declarations per registry version.
_STATE: dict = {"loaded": None, "version": 0, "ordered": None}
_ORDER = ("wer", "sim", "quality", "intrusive", "longform", "generation")  # built-in scorers' column order


def register_metric(metric: Metric) -> Metric:
    """Declare a metric. Declaring a name again from the same scorer (a module imported
    twice) replaces it; from another scorer it is an error: one column, one meaning."""
    if not isinstance(metric, Metric):
        raise TypeError(f"register_metric takes a Metric, got {type(metric).__name__}")
    old = _DECLARED.get(metric.name)
    if old is not None and old.scorer != metric.scorer:
        raise ValueError(f"metric {metric.name!r} is already declared by scorer {old.scorer!r}; "
                         f"{metric.scorer!r} must name its column differently")
    _DECLARED[metric.name] = metric
    _STATE["version"] += 1
    return metric


def unregister_metric(name: str) -> None:
    _DECLARED.pop(name, None)
    _STATE["version"] += 1


def _load_builtin() -> None:
    """Import every registered scorer module (built-in and plugins): importing one
    registers its declarations."""
    from .protocols import SCORERS

    if _STATE["loaded"] != (len(SCORERS.lazy), len(SCORERS.entries)):  # first call, or scorers added
        SCORERS.load_all()
        _STATE["loaded"] = (len(SCORERS.lazy), len(SCORERS.entries))


def metric_declarations() -> list[Metric]:
    """Every declared metric: the built-in scorers' in a fixed order, then plugins' in
    registration order. Target metrics are followed by their `_dev` deviation metric."""
    _load_builtin()
    cached = _STATE["ordered"]
    if cached is not None and cached[0] == _STATE["version"]:
        return list(cached[1])
    rank = {s: i for i, s in enumerate(_ORDER)}
    ordered = sorted(enumerate(_DECLARED.values()), key=lambda im: (rank.get(im[1].scorer, len(_ORDER)), im[0]))
    out: list[Metric] = []
    for _, m in ordered:
        out.append(m)
        d = m.deviation()
        if d is not None:
            out.append(d)
    _STATE["ordered"] = (_STATE["version"], out)
    return list(out)


def declared() -> dict[str, Metric]:
    """name -> declaration (deviation metrics included)."""
    return {m.name: m for m in metric_declarations()}


def get_metric(name: str) -> Metric | None:
    return declared().get(name)


def headline_metrics() -> list[Metric]:
    return [m for m in metric_declarations() if m.role == HEADLINE]


# ----------------------------------------------------------------------------- the runner's own metrics


def _startup(cell_rows, lists, system_rows) -> tuple[float, int, str | None]:
    v = [as_float(r.get("startup_seconds")) for r in system_rows]
    v = [x for x in v if math.isfinite(x)]
    return (max(v), len(v), None) if v else (math.nan, 0, None)


GENERATION_METRICS = (
    Metric("clip_fraction", ("clip_fraction",), direction="lower", scorer="generation", tolerance="0.001", digits=4,
           label="share of samples at full scale", short="clip",
           flag_note="{k} utterance(s) with samples at full scale (clip_fraction > 0)"),
    # Timing depends on the machine: compared and shown, gated only with a --tolerance.
    Metric("rtf", ("wall_seconds", "audio_seconds"), kind="ratio", direction="lower", scorer="generation",
           failures=COUNT, zero_denominator=True, tolerance="info", plot="vs_length",
           label="real-time factor (wall / audio)", short="RTF",
           why_missing="no timed generation (ground truth, pre-generated audio)"),
    Metric("startup_seconds", kind="custom", compute=_startup, direction="lower", scorer="generation",
           tolerance="info", unit="s", digits=2, label="start-up seconds", short="start-up s"),
)
for _m in GENERATION_METRICS:
    register_metric(_m)

# The leaderboard's leading columns (the contract), in order; the metrics follow.
ID_COLUMNS = ["system", "bucket", "n", "n_failed", "n_score_errors", "audio_seconds"]
_RUN_PROVENANCE = ("scorer_versions",)


def provenance_columns() -> list[str]:
    """Columns that say how a number was produced (models, normaliser, scorer versions)."""
    cols = []
    for m in metric_declarations():
        cols += [c for c in (m.model_column, *m.provenance) if c]
    return list(dict.fromkeys(cols)) + list(_RUN_PROVENANCE)


def provenance_scorers() -> dict[str, str]:
    """provenance column -> the scorer that writes it."""
    out = {}
    for m in metric_declarations():
        for c in (m.model_column, *m.provenance):
            if c:
                out.setdefault(c, m.scorer)
    return out


def leaderboard_columns() -> list[str]:
    cols = list(ID_COLUMNS)
    for m in metric_declarations():
        cols += [m.name, *(m.ci_columns or ())]
    counts = list(dict.fromkeys(m.count_column for m in metric_declarations() if m.count_column))
    units = list(dict.fromkeys(m.units_column for m in metric_declarations() if m.units_column))
    return list(dict.fromkeys(cols + counts + units + provenance_columns() + ["notes"]))


def direction(name: str) -> bool | None:
    """higher_is_better of a declared leaderboard column; None when undeclared or without direction."""
    m = get_metric(name)
    return None if m is None else m.higher_is_better


def source_columns() -> set[str]:
    return {c for m in metric_declarations() for c in m.columns}


def claimed_columns() -> set[str]:
    """Per-utterance columns some declaration accounts for (never averaged generically)."""
    out = set()
    for m in metric_declarations():
        out |= {m.name, *m.columns, *m.claims, *m.positional, *(c for c in (m.model_column, *m.provenance) if c)}
    return out


# ----------------------------------------------------------------------------- statistics


def as_float(v: Any) -> float:
    if v is None or isinstance(v, str):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _col(data: dict[str, np.ndarray], c: str) -> np.ndarray:
    return np.asarray(data[c], dtype=np.float64)


def usable(metric: Metric, data: dict[str, np.ndarray], ok: np.ndarray) -> np.ndarray:
    """Rows that enter `metric`: all columns present, and a successful generation unless
    the metric counts failures (failed rows then carry their all-deleted values)."""
    n = len(ok)
    if metric.kind == "custom":
        return np.zeros(n, dtype=bool)
    mask = np.ones(n, dtype=bool)
    for c in metric.columns:
        if c not in data:
            return np.zeros(n, dtype=bool)
        mask &= np.isfinite(_col(data, c))
    if not metric.counts_failures:
        mask &= np.asarray(ok, dtype=bool)
    if metric.kind == "ratio" and not metric.zero_denominator:
        mask &= _col(data, metric.columns[-1]) > 0
    return mask


def sufficient(metric: Metric, data: dict[str, np.ndarray]) -> np.ndarray:
    """Per-row sufficient statistics, shape (n, 2): (numerator, denominator); for a mean
    (value, 1). Sums of these merge across shards; quantiles use column 0 alone."""
    if metric.kind == "ratio":
        num = sum(_col(data, c) for c in metric.columns[:-1])
        return np.stack([num, _col(data, metric.columns[-1])], axis=1)
    x = _col(data, metric.columns[0])
    if metric.deviation_from is not None:
        t = metric.deviation_from
        x = np.abs(x - (_col(data, t) if isinstance(t, str) else float(t)))
    if metric.kind == "rate" and metric.threshold is not None:
        x = (x > metric.threshold).astype(np.float64)
    return np.stack([x, np.ones_like(x)], axis=1)


def weighted_value(metric: Metric, suff: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The statistic for each row of weights `w` (shape (b, n) or (n,)) over `suff` (n, 2)."""
    w = np.asarray(w, dtype=np.float64)
    if metric.kind == "quantile":
        # A weighted quantile of integer weights = the quantile of the repeated values.
        return _weighted_quantile(suff[:, 0], w, metric.quantile)
    num, den = w @ suff[:, 0], w @ suff[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> np.ndarray:
    one = w.ndim == 1
    w2 = np.atleast_2d(w)
    out = np.empty(len(w2))
    for i, wi in enumerate(w2):
        rep = np.repeat(x, wi.astype(np.int64))
        out[i] = float(np.quantile(rep, q)) if len(rep) else math.nan
    return out[0] if one else out


def value(metric: Metric, data: dict[str, np.ndarray], ok: np.ndarray) -> tuple[float, int]:
    """(point value, number of utterances used) of `metric` over the rows of `data`."""
    mask = usable(metric, data, ok)
    n = int(mask.sum())
    if n == 0:
        return math.nan, 0
    suff = sufficient(metric, {c: np.asarray(data[c])[mask] for c in metric.columns})
    return float(weighted_value(metric, suff, np.ones(n))), n


def display(metric_name: str, v: Any) -> str:
    """A value in the report's units (WER in percent); undeclared columns with 3 decimals."""
    m = get_metric(metric_name)
    if m is not None:
        return m.format(v)
    f = as_float(v) if not isinstance(v, bool) else math.nan
    return f"{f:.3f}" if math.isfinite(f) else "–"


def names(metrics: Iterable[Metric]) -> list[str]:
    return [m.name for m in metrics]


def __getattr__(name: str):
    # Back-compatibility: METRICS / PROVENANCE_COLUMNS as snapshots of the registry.
    if name == "METRICS":
        return declared()
    if name == "PROVENANCE_COLUMNS":
        return tuple(provenance_columns())
    raise AttributeError(name)


__all__ = ["Metric", "Bound", "COUNT", "EXCLUDE", "HEADLINE", "DIAGNOSTIC", "ALIAS", "ID_COLUMNS",
           "GENERATION_METRICS", "register_metric", "unregister_metric", "metric_declarations", "declared",
           "get_metric", "headline_metrics", "provenance_columns", "provenance_scorers", "leaderboard_columns",
           "direction", "source_columns", "claimed_columns", "as_float", "usable", "sufficient", "weighted_value",
           "value", "display"]
