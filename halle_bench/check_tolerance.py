"""Tolerances of the regression gate: how much worse a cell may get before it is a regression.

- `abs` (`wer=0.01`), `rel` (`wer=5%`, of the baseline value), `off` (not compared).
- `ci`: the half-width of the 95% CI of a difference of two independent estimates,
  sqrt(hw_base^2 + hw_cand^2) (the candidate's own CI when it has one, else the
  baseline's again).
- `n` (what `ci` falls back to when a cell has no CI, e.g. a leaderboard without
  `wer_ci_*` or a bucket under 5 utterances): 1.96 x the standard error of a
  difference of two estimates, from counts alone (`se_from_counts`):
  ratios of the WER family: errors are over-dispersed Poisson counts (dispersion 2:
  errors cluster in utterances), se = sqrt(2 * 2 * max(p * W, 3)) / W with W the
  reference words (`n_ref_words` of the leaderboard); without W, sd = max(p, 0.02)
  per utterance (per-utterance WER's sd is about its mean) over n utterances;
  rates: binomial, p floored at 1/n; means: the metric's `sd_prior` over n.
  Ratios and rates use the pooled value of both sides. The same se gives an approximate z-test p-value that joins the Holm adjustment,
  so many small cells do not add up to false alarms. A WER that triples fails even
  from the contract's columns alone.
- `info`: shown, not gated (quantiles of a few utterances, timing).
Defaults per metric come from its declaration (`Metric.tolerance`); the failed count of
a cell has its own rule (absolute, default 0: any new failure is a regression). A
tolerance names a declared metric with a direction; for a target metric (closer to a
reference is better, e.g. `duration_ratio`) it applies to the deviation from the
target (`duration_ratio_dev`), and a relative one (`10%`) is a share of the baseline's
own value of the metric (a speaking rate of 2.6 words/s: 0.26 words/s of deviation).
An alias (`dnsmos_ovrl`, the same number as `quality`) is refused, naming the metric
to give instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError
from .metric_decl import ALIAS, Metric
from .metric_registry import declared, metric_declarations


class CheckInputError(ConfigError):
    """The inputs of `check` cannot be compared (the message says what and where)."""


Z95 = 1.959963984540054


@dataclass(frozen=True)
class Tolerance:
    kind: str  # "abs" | "rel" | "ci" | "n" | "off" | "info"
    value: float = 0.0

    def allowed(self, baseline: float, hw_base: float, hw_cand: float, se_n: float = math.nan) -> tuple[float, str]:
        """(allowed worsening >= 0, the rule used); NaN when it cannot be derived.
        `se_n`: the standard error of the difference from counts (`se_from_counts`);
        `baseline`: the value a relative tolerance is a share of."""
        if self.kind == "abs":
            return self.value, str(self)
        if self.kind == "rel":
            return self.value * abs(baseline), str(self)
        if self.kind == "ci" and math.isfinite(hw_base):
            hc = hw_cand if math.isfinite(hw_cand) else hw_base
            return math.sqrt(hw_base ** 2 + hc ** 2), "ci"
        if self.kind in ("ci", "n"):
            return Z95 * se_n, "n"
        return math.nan, self.kind

    def __str__(self) -> str:
        return {"abs": f"{self.value:g}", "rel": f"{self.value * 100:g}%"}.get(self.kind, self.kind)


DISPERSION = 2.0  # variance / mean of error counts: errors cluster within utterances


def se_from_counts(m: Metric | None, baseline: float, n: float, words: float, candidate: float = math.nan) -> float:
    """Standard error of (candidate - baseline) of a metric from counts alone (see the
    docstring). Counts use the pooled rate of both sides (as a two-proportion test does):
    a baseline that happened to have no loop in 30 utterances says little about the rate."""
    if not (math.isfinite(n) and n >= 1 and math.isfinite(baseline)) or m is None or m.kind == "custom":
        return math.nan
    if math.isfinite(candidate) and m.kind in ("ratio", "rate"):
        baseline = (baseline + candidate) / 2
    if m.kind == "ratio" and m.units_column and math.isfinite(words) and words > 0:
        w = words  # CER too: a word error brings several character errors, so count in words
        return math.sqrt(2.0 * DISPERSION * max(baseline * w, 3.0)) / w
    if m.kind == "rate":
        p = min(max(baseline, 1.0 / n), 1.0 - 1.0 / (2 * n))
        return math.sqrt(2.0 * p * (1.0 - p) / n)
    sd = m.sd_prior if m.sd_prior is not None else max(abs(baseline), 0.02)
    return sd * math.sqrt(2.0 / n)


def default_tolerance(m: Metric) -> Tolerance:
    return default_from(m.tolerance, m.name)


def default_from(text: str, metric: str) -> Tolerance:
    if text in ("ci", "info", "n", "off"):
        return Tolerance(text)
    return parse_tolerance(text, metric)


def parse_tolerance(text: str, metric: str = "") -> Tolerance:
    t = str(text).strip().lower()
    where = f" for {metric}" if metric else ""
    if t in ("ci", "off", "n"):
        return Tolerance(t)
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise CheckInputError(f"bad tolerance{where}: {text!r} (use 0.01, 5%, ci, n or off)") from None
    if not math.isfinite(v) or v < 0:
        raise CheckInputError(f"bad tolerance{where}: {text!r} (must be a finite number >= 0)")
    return Tolerance("rel" if t.endswith("%") else "abs", v)


def known_metrics() -> list[str]:
    """Names a tolerance or `--metrics` may give: declared metrics with a direction
    (target metrics by their own name), and n_failed."""
    out = [m.name for m in metric_declarations()
           if m.role != ALIAS and m.direction != "none" and not m.name.endswith("_dev")]
    return sorted(out + ["n_failed"])


def gated_name(metric: str) -> str:
    """The leaderboard column the gate compares for a metric name: a target metric's
    deviation column; CheckInputError for an undeclared, direction-less or alias name."""
    if metric == "n_failed":
        return metric
    d = declared()
    m = d.get(metric)
    if m is None:
        raise CheckInputError(f"no declared metric {metric!r} (known: {', '.join(known_metrics())})")
    if m.role == ALIAS:
        raise CheckInputError(f"{metric!r} is the same number as {m.alias_of!r} and is compared once, as "
                              f"{m.alias_of!r}: name that one")
    if m.direction == "target":
        return f"{metric}_dev"
    if m.higher_is_better is None:
        raise CheckInputError(f"no known direction for metric {metric!r} (known: {', '.join(known_metrics())})")
    return metric


def parse_tolerances(items: list[str] | None) -> dict[str, Tolerance]:
    """["wer=0.01", "sim=5%"] -> {"wer": Tolerance("abs", 0.01), "sim": Tolerance("rel", 0.05)}."""
    out: dict[str, Tolerance] = {}
    for item in items or []:
        metric, sep, value = str(item).partition("=")
        metric = metric.strip()
        if not sep or not metric or not value.strip():
            raise CheckInputError(f"bad --tolerance {item!r}: expected METRIC=VALUE, e.g. wer=0.01 or wer=5%")
        try:
            gated_name(metric)
        except CheckInputError as e:
            raise CheckInputError(f"bad --tolerance {item!r}: {e}") from None
        out[metric] = parse_tolerance(value, metric)
    return out


def higher_is_better(metric: str) -> bool | None:
    """Direction of a declared leaderboard column (None: undeclared or without direction)."""
    if metric == "n_failed":
        return False
    m = declared().get(metric)
    return None if m is None else m.higher_is_better


__all__ = ["CheckInputError", "Tolerance", "parse_tolerance", "parse_tolerances", "default_tolerance", "se_from_counts",
           "higher_is_better", "known_metrics", "gated_name"]
