"""One definition per leaderboard metric, read by aggregate, check, report, plots and exports.

A `Metric` says where its value comes from (per-utterance columns of utterances.csv),
how it is computed from mergeable sufficient statistics (a ratio of sums, a mean =
sum / count, or a quantile, which does not merge), which direction is better, how its
confidence interval is made, whether a failed generation counts (the WER family: a
failed utterance is all-deleted) or is left out (similarity, quality, ...: averaged
over successes, with a count column), how it is shown and how the gate tolerates it.
Adding a metric = one entry in `METRICS`.

Weighted statistics: every function takes per-utterance weights `w` (1 for each row
used; bootstrap resamples are integer weights), so one formula serves the point value,
the bootstrap and the paired test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# How a failed generation enters a metric.
COUNT = "count"  # all-deleted: its reference words are errors (the WER family)
EXCLUDE = "exclude"  # no meaningful value: averaged over successes, `count_column` says over how many


@dataclass(frozen=True)
class Metric:
    name: str  # the leaderboard column
    kind: str  # "ratio" (sum num / sum den) | "mean" | "quantile" | "rate" (mean of a boolean)
    source: tuple[str, ...]  # per-utterance columns: ratio -> (numerators..., denominator); others -> (column,)
    higher_is_better: bool | None  # None: a diagnostic without a direction (shown, never gated)
    scorer: str  # the scorer (or "generation") that produces the source columns
    failures: str = EXCLUDE
    ci: str = "none"  # "ratio" | "mean" | "none": columns <name>_ci_low / _ci_high when not "none"
    quantile: float = 0.5  # for kind "quantile"
    count_column: str | None = None  # leaderboard column with the number of utterances averaged
    model_column: str | None = None  # leaderboard column naming the model that produced it
    scale: float = 1.0  # display: value * scale with `digits` decimals
    digits: int = 3
    label: str = ""  # axis / table label
    tolerance: str = "ci"  # gate default: "ci" (from the CIs, else from n), an absolute number, or "info"
    ok_only: bool = False  # computed over successful generations even in the WER family (wer_ok)
    sd_prior: float | None = None  # per-utterance sd for a tolerance from n (None: the value itself, WER-like)

    @property
    def ci_columns(self) -> tuple[str, str] | None:
        return (f"{self.name}_ci_low", f"{self.name}_ci_high") if self.ci != "none" else None

    @property
    def mergeable(self) -> bool:
        """Whether sufficient statistics of shards add up to the whole (quantiles do not)."""
        return self.kind != "quantile"

    @property
    def counts_failures(self) -> bool:
        return self.failures == COUNT and not self.ok_only

    @property
    def gated(self) -> bool:
        return self.higher_is_better is not None and self.tolerance != "info"


def _m(name, kind, source, hib, scorer, **kw) -> Metric:
    return Metric(name, kind, tuple(source), hib, scorer, **kw)


_WER = dict(scorer="wer", failures=COUNT, count_column="n_wer", model_column="asr_model", scale=100.0, digits=1)
_ERR = ("subs", "dels", "ins", "n_ref_words")

METRICS: dict[str, Metric] = {m.name: m for m in [
    _m("wer", "ratio", _ERR, False, ci="ratio", label="WER (%)", **_WER),
    _m("wer_ok", "ratio", _ERR, False, ok_only=True, label="WER over successes (%)",
       **{**_WER, "count_column": "n_wer_ok"}),
    _m("wer_macro", "mean", ("wer",), False, label="mean per-utterance WER (%)", **_WER),
    _m("wer_median", "quantile", ("wer",), False, quantile=0.5, tolerance="info", label="median WER (%)", **_WER),
    _m("wer_p95", "quantile", ("wer",), False, quantile=0.95, tolerance="info", label="p95 WER (%)", **_WER),
    _m("wer_over_50", "rate", ("wer",), False, tolerance="info", label="share with WER > 50%", **_WER),
    _m("cer", "ratio", ("char_errors", "n_ref_chars"), False, label="CER (%)", **_WER),
    _m("sub_rate", "ratio", ("subs", "n_ref_words"), False, tolerance="info", label="substitutions (%)", **_WER),
    _m("del_rate", "ratio", ("dels", "n_ref_words"), False, tolerance="info", label="deletions (%)", **_WER),
    _m("ins_rate", "ratio", ("ins", "n_ref_words"), False, tolerance="info", label="insertions (%)", **_WER),
    _m("loop_rate", "rate", ("loop",), False, scorer="wer", count_column="n_wer_ok",
       label="share of utterances with a loop"),
    _m("asr_cuts", "mean", ("asr_cuts",), None, scorer="wer", digits=2, label="ASR window cuts"),
    _m("asr_cut_db", "mean", ("asr_cut_db",), None, scorer="wer", digits=1, label="loudest ASR cut (dB re RMS)"),
    _m("sim", "mean", ("sim",), True, scorer="sim", ci="mean", count_column="n_sim", model_column="sim_model",
       sd_prior=0.05, label="speaker similarity (vs prompt)"),
    _m("sim_min", "mean", ("sim_min",), True, scorer="sim", count_column="n_sim", sd_prior=0.07,
       label="lowest window similarity"),
    _m("sim_last", "mean", ("sim_last",), True, scorer="sim", count_column="n_sim", sd_prior=0.07,
       label="last window similarity"),
    _m("sim_ref", "mean", ("sim_ref",), True, scorer="sim", ci="mean", count_column="n_sim_ref",
       sd_prior=0.05, label="speaker similarity (vs reference)"),
    _m("sim_ref_min", "mean", ("sim_ref_min",), True, scorer="sim", count_column="n_sim_ref", sd_prior=0.07,
       label="lowest window similarity (vs reference)"),
    _m("sim_ref_last", "mean", ("sim_ref_last",), True, scorer="sim", count_column="n_sim_ref", sd_prior=0.07,
       label="last window similarity (vs reference)"),
    _m("quality", "mean", ("quality",), True, scorer="quality", ci="mean", count_column="n_quality",
       model_column="quality_model", digits=2, sd_prior=0.3, label="predicted quality (MOS)"),
    _m("quality_min", "mean", ("quality_min",), True, scorer="quality", count_column="n_quality", digits=2,
       sd_prior=0.4, label="lowest window quality"),
    _m("quality_last", "mean", ("quality_last",), True, scorer="quality", count_column="n_quality", digits=2,
       sd_prior=0.4, label="last window quality"),
    _m("pesq", "mean", ("pesq",), True, scorer="intrusive", digits=2, sd_prior=0.3, label="PESQ"),
    _m("stoi", "mean", ("stoi",), True, scorer="intrusive", sd_prior=0.03, label="STOI"),
    _m("estoi", "mean", ("estoi",), True, scorer="intrusive", sd_prior=0.03, label="ESTOI"),
    _m("duration_ratio", "mean", ("duration_ratio",), None, scorer="longform", digits=2,
       label="generated / reference duration"),
    _m("truncated", "rate", ("truncated",), False, scorer="longform", label="share truncated"),
    _m("overrun", "rate", ("overrun",), False, scorer="longform", label="share overrun"),
    _m("clip_fraction", "mean", ("clip_fraction",), False, scorer="generation", tolerance="0.001", digits=4,
       label="share of samples at full scale"),
    # Timing depends on the machine: compared and shown, gated only with a --tolerance.
    _m("rtf", "ratio", ("wall_seconds", "audio_seconds"), False, scorer="generation", tolerance="info", failures=COUNT,
       label="real-time factor"),
]}

# Not per-utterance statistics, but leaderboard columns with a direction the gate knows.
SPECIAL_DIRECTIONS: dict[str, bool] = {"pause_w1": False, "startup_seconds": False, "n_failed": False}
# Their gate defaults: pause lengths' distance to the ground truth in seconds; start-up is timing.
SPECIAL_TOLERANCES: dict[str, str] = {"pause_w1": "0.1", "startup_seconds": "info"}
# A directional column that no entry declares (a plugin scorer's): relative tolerance.
UNDECLARED_TOLERANCE = "5%"

# Columns that say how a number was produced: two runs that differ here are not comparable.
PROVENANCE_COLUMNS = ("asr_model", "asr_backend", "normalizer", "sim_model", "quality_model", "scorer_versions")

# The leaderboard's leading columns (the contract), in order; the rest follow alphabetically.
ID_COLUMNS = ["system", "bucket", "n", "n_failed", "n_score_errors", "audio_seconds"]


def leaderboard_columns() -> list[str]:
    cols = list(ID_COLUMNS)
    for m in METRICS.values():
        for c in (m.name, *(m.ci_columns or ())):
            cols.append(c)
    counts = list(dict.fromkeys(m.count_column for m in METRICS.values() if m.count_column))
    return cols + ["pause_w1", "startup_seconds", *counts, "n_ref_words", *PROVENANCE_COLUMNS, "notes"]


def direction(name: str) -> bool | None:
    """higher_is_better of a leaderboard column; None when unknown or without direction."""
    if name in METRICS:
        return METRICS[name].higher_is_better
    if name in SPECIAL_DIRECTIONS:
        return SPECIAL_DIRECTIONS[name]
    return None


def source_columns() -> set[str]:
    return {c for m in METRICS.values() for c in m.source}


# ----------------------------------------------------------------------------- statistics


def _col(data: dict[str, np.ndarray], c: str) -> np.ndarray:
    return np.asarray(data[c], dtype=np.float64)


def usable(metric: Metric, data: dict[str, np.ndarray], ok: np.ndarray) -> np.ndarray:
    """Rows that enter `metric`: all source values present, and a successful generation
    unless the metric counts failures (failed rows then carry their all-deleted values)."""
    n = len(ok)
    mask = np.ones(n, dtype=bool)
    for c in metric.source:
        if c not in data:
            return np.zeros(n, dtype=bool)
        mask &= np.isfinite(_col(data, c))
    if not metric.counts_failures:
        mask &= ok
    if metric.kind == "ratio" and metric.name != "rtf":  # a failed item's time counts, with 0 s of audio
        mask &= _col(data, metric.source[-1]) > 0
    return mask


def sufficient(metric: Metric, data: dict[str, np.ndarray]) -> np.ndarray:
    """Per-row sufficient statistics, shape (n, 2): (numerator, denominator); for a mean
    (value, 1). Sums of these merge across shards; quantiles use column 0 alone."""
    if metric.kind == "ratio":
        num = sum(_col(data, c) for c in metric.source[:-1])
        return np.stack([num, _col(data, metric.source[-1])], axis=1)
    x = _col(data, metric.source[0])
    if metric.kind == "rate" and metric.name == "wer_over_50":
        x = (x > 0.5).astype(np.float64)
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
    suff = sufficient(metric, {c: np.asarray(data[c])[mask] for c in metric.source})
    return float(weighted_value(metric, suff, np.ones(n))), n


def display(metric_name: str, v: Any) -> str:
    m = METRICS.get(metric_name)
    if v is None or not isinstance(v, (int, float, np.floating, np.integer)) or isinstance(v, bool) \
            or not math.isfinite(float(v)):
        return "–"
    if m is None:
        return f"{float(v):.3f}"
    return f"{float(v) * m.scale:.{m.digits}f}"


__all__ = ["Metric", "METRICS", "COUNT", "EXCLUDE", "SPECIAL_DIRECTIONS", "SPECIAL_TOLERANCES", "UNDECLARED_TOLERANCE", "PROVENANCE_COLUMNS", "ID_COLUMNS",
           "leaderboard_columns", "direction", "source_columns", "usable", "sufficient", "weighted_value", "value",
           "display"]
