"""`Metric`: one declaration per leaderboard metric, written next to the scorer that produces it.

A scorer module declares its metrics (torchmetrics is the model: the metric object says
how it is computed and merged, the framework does the rest) and registers them with
`metric_registry.register_metric`. Everything downstream reads the declaration:

- aggregate / leaderboard: which per-utterance `columns` enter, how (`kind`: a ratio of
  sums, a mean, a quantile, a rate; or `compute` for a statistic of lists such as pause
  lengths), whether a failed generation counts (`failures`), the count column, the CI;
- report, console, HTML: `label`, `short`, `unit`, `scale`, `digits`, `role`, `show`;
- plots: `plot` (a per-bucket figure) and `positional` (a by-position figure);
- check: `direction`, `role` (headline metrics are gated; diagnostics only when a
  tolerance names them; an alias is never compared on its own), `tolerance`, `bound`
  (a large effect that fails without a significance test), `breakdown`.

Direction is "lower", "higher", "target" (closer to a target is better: a constant such
as 1.0 for a duration ratio, or a per-utterance column holding the reference audio's own
value) or "none" (shown, never gated). A target metric's leaderboard value is its mean;
the gate compares the mean absolute deviation from the target, a second column
`<name>_dev` that `deviation()` declares.

Pure data: no imports from the rest of the package, so a scorer module can import it
without cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

# How a failed generation enters a metric.
COUNT = "count"  # all-deleted: its reference words are errors (the WER family)
EXCLUDE = "exclude"  # no meaningful value: averaged over successes, `count_column` says over how many

HEADLINE, DIAGNOSTIC, ALIAS = "headline", "diagnostic", "alias"
DIRECTIONS = ("lower", "higher", "target", "none")
KINDS = ("ratio", "mean", "quantile", "rate", "custom")


@dataclass(frozen=True)
class Bound:
    """A change no candidate may make in any bucket, significant or not.

    Crossed when the candidate is worse by at least `abs` (in the metric's own unit, a
    fraction for WER) and, when `factor` is given, its value is at least `factor` times
    the baseline's (lower is better) or at most baseline / `factor` (higher is better).
    WER's `Bound(abs=0.05, factor=2.0)`: doubling and at least 5 points.

    `min_z`: the gate also asks the move to be at least that many standard errors of
    counting noise (`check_tolerance.se_from_counts`, no multiple-testing correction):
    in a cell of 2 short utterances, 1 -> 4 word errors doubles the WER and adds 6
    points by chance alone (measured: benchmarks/check_calibration.py)."""

    abs: float
    factor: float | None = None
    min_z: float = 2.0

    def crossed(self, baseline: float, candidate: float, higher_is_better: bool) -> bool:
        if not (math.isfinite(baseline) and math.isfinite(candidate)):
            return False
        worse = baseline - candidate if higher_is_better else candidate - baseline
        if worse < self.abs - 1e-12:
            return False
        if self.factor is None:
            return True
        if higher_is_better:
            return candidate * self.factor <= baseline + 1e-12
        return candidate >= self.factor * baseline - 1e-12

    def describe(self, scale: float = 1.0, unit: str = "") -> str:
        amount = f"{self.abs * scale:g}" + (" points" if unit == "%" else (f" {unit}" if unit else ""))
        return f"x{self.factor:g} and {amount}" if self.factor else amount


# A `compute` statistic: (ok rows of one cell, their list-valued extras keyed by (system, id))
# -> (value or NaN, number of utterances behind it, why it could not be computed or None).
Compute = Callable[[list[dict[str, Any]], dict[tuple, dict[str, Any]]], "tuple[float, int, str | None]"]


@dataclass(frozen=True)
class Metric:
    name: str  # the leaderboard column
    columns: tuple[str, ...] = ()  # per-utterance columns: ratio -> (numerators..., denominator); else (column,)
    kind: str = "mean"  # ratio | mean | quantile | rate | custom
    direction: str = "none"  # lower | higher | target | none
    target: float | str | None = None  # direction "target": a constant or a per-utterance column (reference's value)
    scorer: str = ""  # the scorer (or "generation") that produces the columns
    role: str = DIAGNOSTIC  # headline | diagnostic | alias
    alias_of: str | None = None  # role alias: the metric it repeats (compared once, under that name)
    failures: str = EXCLUDE
    ok_only: bool = False  # over successful generations even when the family counts failures (wer_ok)
    ci: str = "none"  # "ratio" | "mean" | "none": columns <name>_ci_low / _ci_high when not "none"
    quantile: float = 0.5  # kind quantile
    threshold: float | None = None  # kind rate: share of values above it (None: the mean of a boolean)
    zero_denominator: bool = False  # kind ratio: rows whose denominator is 0 still count (time of a failed item)
    count_column: str | None = None  # leaderboard column: how many utterances the value stands on
    units_column: str | None = None  # per-utterance denominator summed into the leaderboard (n_ref_words)
    model_column: str | None = None  # per-utterance column naming the model (provenance)
    provenance: tuple[str, ...] = ()  # further provenance columns (normaliser, ASR backend)
    claims: tuple[str, ...] = ()  # other per-utterance columns this declaration accounts for (never averaged)
    unit: str = ""  # "%" (shown x100, deltas in points), "s", "MOS", ...
    scale: float = 1.0
    digits: int = 3
    label: str = ""  # axis / table label
    short: str = ""  # narrow column header (console)
    show: bool = True  # in the report's full table when the run has it
    plot: str | None = None  # "line" (CI band) | "points" (error bars): per bucket; "vs_length": a ratio per utterance
    positional: tuple[str, ...] = ()  # list columns by position: (values,) or (numerators, denominators)
    tolerance: str = "ci"  # gate default: "ci", "n", an absolute number, "5%", or "info"
    bound: Bound | None = None
    sd_prior: float | None = None  # per-utterance sd for a tolerance from n (None: the value itself, WER-like)
    breakdown: tuple[str, ...] = ()  # metrics shown beside this one in the diff when it moves
    compute: Compute | None = field(default=None, compare=False)  # kind custom
    flag_note: str = ""  # a leaderboard note when k utterances have a non-zero value ("{k} clipped")
    why_missing: str = ""  # what an empty cell means (named by check when the candidate lacks it)
    deviation_from: float | str | None = None  # set by deviation(): the per-utterance value is |x - this|

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name}: unknown kind {self.kind!r} ({', '.join(KINDS)})")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name}: unknown direction {self.direction!r} ({', '.join(DIRECTIONS)})")
        if self.direction == "target" and self.target is None:
            raise ValueError(f"metric {self.name}: direction 'target' needs a target (a number or a column)")
        if self.role not in (HEADLINE, DIAGNOSTIC, ALIAS):
            raise ValueError(f"metric {self.name}: unknown role {self.role!r}")
        if (self.role == ALIAS) != (self.alias_of is not None):
            raise ValueError(f"metric {self.name}: role 'alias' and alias_of go together")
        if self.kind == "custom" and self.compute is None:
            raise ValueError(f"metric {self.name}: kind 'custom' needs compute")
        if self.kind != "custom" and not self.columns:
            raise ValueError(f"metric {self.name}: no per-utterance columns")

    # ------------------------------------------------------------------ derived

    @property
    def higher_is_better(self) -> bool | None:
        """The gate's direction; None for "none"; a target metric is gated through `deviation()`."""
        return {"lower": False, "higher": True}.get(self.direction)

    @property
    def ci_columns(self) -> tuple[str, str] | None:
        return (f"{self.name}_ci_low", f"{self.name}_ci_high") if self.ci != "none" else None

    @property
    def mergeable(self) -> bool:
        """Whether sufficient statistics of shards add up to the whole (quantiles, custom do not)."""
        return self.kind not in ("quantile", "custom")

    @property
    def counts_failures(self) -> bool:
        return self.failures == COUNT and not self.ok_only

    @property
    def gated_by_default(self) -> bool:
        return self.role == HEADLINE and self.higher_is_better is not None and self.tolerance != "info"

    @property
    def header(self) -> str:
        return self.short or (f"{self.name} %" if self.unit == "%" else self.name)

    def deviation(self) -> "Metric | None":
        """For direction "target": the mean |value - target| per utterance (lower is better),
        with this metric's role, tolerance and bound; None otherwise."""
        if self.direction != "target":
            return None
        cols = self.columns[:1] + ((self.target,) if isinstance(self.target, str) else ())
        what = f"{self.target:g}" if isinstance(self.target, (int, float)) else f"the reference's {self.target}"
        return replace(self, name=f"{self.name}_dev", columns=cols, kind="mean", direction="lower", target=None,
                       deviation_from=self.target, ci="none", plot=None, positional=(), breakdown=(),
                       show=False, label=f"|{self.label or self.name} - {what}|", short=f"{self.header} dev")

    def format(self, v: Any) -> str:
        if not _finite(v):
            return "–"
        return f"{float(v) * self.scale:.{self.digits}f}"

    def format_unit(self, v: Any) -> str:
        s = self.format(v)
        return s if s == "–" or not self.unit else (f"{s}%" if self.unit == "%" else f"{s} {self.unit}")

    def format_delta(self, d: Any) -> str:
        if not _finite(d):
            return "–"
        s = f"{float(d) * self.scale:+.{self.digits}f}"
        return f"{s} points" if self.unit == "%" else (f"{s} {self.unit}" if self.unit else s)


def _finite(v: Any) -> bool:
    if v is None or isinstance(v, (bool, str)):
        return False
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


__all__ = ["Metric", "Bound", "Compute", "COUNT", "EXCLUDE", "HEADLINE", "DIAGNOSTIC", "ALIAS", "DIRECTIONS", "KINDS"]
