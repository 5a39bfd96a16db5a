"""`halle-bench check`: a regression gate of a candidate run against a committed baseline.

For every (system, bucket) present on both sides and every gated metric, the candidate's
leaderboard value is compared with the baseline's:

- *tolerance* per metric: absolute (`wer=0.01`), relative to the baseline value
  (`wer=5%`), `ci` or `off`. Without one, a metric whose baseline has a confidence
  interval (`<m>_ci_low/_ci_high`: wer, sim, quality, ...) gets `ci`: the half-width of
  the 95% CI of a difference of two independent estimates, sqrt(hw_base^2 + hw_cand^2)
  (the candidate's own CI when its leaderboard has one, else the baseline's again).
  `fail_rate` (n_failed / n) is always gated, with absolute tolerance 0 by default.
  Other columns are gated only when given a tolerance. A cell whose tolerance cannot
  be derived (no CI: fewer than 2 utterances) is reported as `unchecked`.
- *direction* from `higher_is_better(metric)`: WER, CER, the error rates, RTF,
  fail_rate, pause_w1, loop_rate lower is better; sim, quality, pesq, stoi higher.
- *paired bootstrap* when both sides have per-utterance rows (the candidate run's
  utterances.csv; for the baseline, `baseline_utterances` or the file beside the
  baseline CSV whose name has "utterances" for "leaderboard"): the utterances that
  are ok on both sides are resampled together (same indices on both sides, `n_boot`
  times, seed from (seed, system, bucket), so the result is independent of ordering)
  and the statistic recomputed the way the leaderboard computes it (corpus WER as
  errors / words, means for sim and quality, ...). The bootstrap standard error of
  the paired difference (rescaled by n/(n-1)) gives a two-sided p-value from Student's
  t with n-1 degrees of freedom; it is used rather than the raw bootstrap tail count
  so that p-values are not floored at 1/n_boot, which the multiple-comparison
  correction needs, and because buckets are small (the normal tail is too thin there). p-values are
  Holm-adjusted over all gated comparisons (a run has tens of system x bucket x metric
  cells: uncorrected, pure noise would fail the gate every few runs).
- without per-utterance rows on one side, an approximate unpaired z-test from the two
  leaderboards' CIs (`ci_welch_p`: Welch's t from se = half-width / 1.96 and the
  counts) stands in for the paired test where both have a CI, Holm-adjusted the same way (tolerance alone would fail noise-only runs often).
- verdict: `regressed` = worse beyond tolerance AND (significant, in the same
  direction, when a test is available for that cell); `improved` likewise in
  the better direction; `worse (n.s.)` / `better (n.s.)` when beyond tolerance but
  not significant; otherwise `ok`.

Bad input (a missing file or column, no overlapping (system, bucket)) raises
CheckInputError, which the CLI maps to exit code 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .check_stats import ci_welch_p, holm, paired_bootstrap, seeded_rng
from .errors import ConfigError
from .exports import bucket_sort_key, read_table


class CheckInputError(ConfigError):
    """The inputs of `check` cannot be compared (the message says what and where)."""


# ----------------------------------------------------------------------------- tolerances


@dataclass(frozen=True)
class Tolerance:
    kind: str  # "abs" | "rel" | "ci" | "off"
    value: float = 0.0

    def allowed(self, baseline: float, hw_base: float, hw_cand: float) -> float:
        """The allowed worsening (>= 0) for this cell; NaN when it cannot be derived."""
        if self.kind == "abs":
            return self.value
        if self.kind == "rel":
            return self.value * abs(baseline)
        if self.kind == "ci":
            if not math.isfinite(hw_base):
                return math.nan
            hc = hw_cand if math.isfinite(hw_cand) else hw_base
            return math.sqrt(hw_base ** 2 + hc ** 2)
        return math.nan

    def __str__(self) -> str:
        return {"abs": f"{self.value:g}", "rel": f"{self.value * 100:g}%"}.get(self.kind, self.kind)


def parse_tolerance(text: str, metric: str = "") -> Tolerance:
    t = str(text).strip().lower()
    where = f" for {metric}" if metric else ""
    if t in ("ci", "off"):
        return Tolerance(t)
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise CheckInputError(f"bad tolerance{where}: {text!r} (use 0.01, 5%, ci or off)") from None
    if not math.isfinite(v) or v < 0:
        raise CheckInputError(f"bad tolerance{where}: {text!r} (must be a finite number >= 0)")
    return Tolerance("rel" if t.endswith("%") else "abs", v)


def parse_tolerances(items: list[str] | None) -> dict[str, Tolerance]:
    """["wer=0.01", "sim=5%"] -> {"wer": Tolerance("abs", 0.01), "sim": Tolerance("rel", 0.05)}."""
    out: dict[str, Tolerance] = {}
    for item in items or []:
        metric, sep, value = str(item).partition("=")
        metric = metric.strip()
        if not sep or not metric or not value.strip():
            raise CheckInputError(f"bad --tolerance {item!r}: expected METRIC=VALUE, e.g. wer=0.01 or wer=5%")
        if higher_is_better(metric) is None:
            raise CheckInputError(f"bad --tolerance {item!r}: no known direction for metric {metric!r} "
                                  f"(known: {', '.join(sorted(LOWER_IS_BETTER | HIGHER_IS_BETTER))})")
        out[metric] = parse_tolerance(value, metric)
    return out


# Columns the aggregator derives (not a scorer's own output) and their direction.
LOWER_IS_BETTER = {"wer", "wer_macro", "wer_median", "wer_p95", "wer_over_50", "cer", "sub_rate", "del_rate",
                   "ins_rate", "rtf", "fail_rate", "pause_w1", "loop_rate"}
HIGHER_IS_BETTER = {"sim", "sim_ref", "quality"}


def _scorer_directions() -> dict[str, bool]:
    """`higher_is_better` metadata of every registered scorer (torchmetrics style), so
    a new scorer's columns are gated in the right direction without code here."""
    from .metrics.base import _REGISTRY, _load_builtin

    _load_builtin()
    out: dict[str, bool] = {}
    for factory in _REGISTRY.values():
        out.update(getattr(factory, "higher_is_better", {}) or {})
    return out


def higher_is_better(metric: str) -> bool | None:
    """Direction of a leaderboard metric; None when unknown (then it cannot be gated)."""
    if metric in HIGHER_IS_BETTER:
        return True
    if metric in LOWER_IS_BETTER or metric.startswith("wer_") or metric.endswith("_rate"):
        return False
    return _scorer_directions().get(metric)


# ----------------------------------------------------------------------------- paired statistics

# metric -> (numerator columns summed, denominator column) for ratio-of-sums statistics;
# anything else with a per-utterance column of its own name is a plain mean.
RATIOS: dict[str, tuple[tuple[str, ...], str]] = {
    "wer": (("subs", "dels", "ins"), "n_ref_words"),
    "sub_rate": (("subs",), "n_ref_words"),
    "del_rate": (("dels",), "n_ref_words"),
    "ins_rate": (("ins",), "n_ref_words"),
    "cer": (("char_errors",), "n_ref_chars"),
    "rtf": (("wall_seconds",), "audio_seconds"),
}
MEAN_OF = {"wer_macro": "wer"}


def _stat_columns(metric: str, cols: set[str]) -> tuple[list[str], Callable[[np.ndarray], np.ndarray]] | None:
    """Columns needed and a function of an (n_boot, n, k) array -> (n_boot,) statistics."""
    if metric in RATIOS:
        num, den = RATIOS[metric]
        need = [*num, den]
        if not set(need) <= cols:
            return None
        k = len(num)
        return need, lambda a: a[..., :k].sum(axis=(-1, -2)) / np.maximum(a[..., k].sum(axis=-1), 1e-12)
    col = MEAN_OF.get(metric, metric)
    if col in cols and metric != "fail_rate":
        return [col], lambda a: a[..., 0].mean(axis=-1)
    return None


def _n_ok(row: pd.Series) -> float:
    n, f = _num(row.get("n")), _num(row.get("n_failed"))
    return n - (f if math.isfinite(f) else 0.0)


# ----------------------------------------------------------------------------- result


@dataclass
class CheckRow:
    system: str
    bucket: str
    metric: str
    baseline: float
    candidate: float
    delta: float  # candidate - baseline (leaderboard values)
    tolerance: float  # allowed worsening, in the metric's unit (NaN: unchecked)
    tolerance_rule: str  # "0.01", "5%", "ci", "off"
    higher_is_better: bool
    n_paired: int = 0
    paired_delta: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    significant: bool | None = None  # None: no test for this cell
    test: str = ""  # "paired" (bootstrap over utterances), "ci" (from the two CIs) or "" (none)
    verdict: str = "ok"  # ok | regressed | improved | worse (n.s.) | better (n.s.) | unchecked | info

    @property
    def worse_by(self) -> float:
        """How much worse the candidate is (positive = worse), in the metric's unit."""
        return -self.delta if self.higher_is_better else self.delta


@dataclass
class CheckResult:
    rows: list[CheckRow]
    markdown: str
    candidate: Path
    baseline: Path
    paired: bool
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[CheckRow]:
        return [r for r in self.rows if r.verdict == "regressed"]

    @property
    def improvements(self) -> list[CheckRow]:
        return [r for r in self.rows if r.verdict == "improved"]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    @property
    def regressed_buckets(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys((r.system, r.bucket) for r in self.regressions))

    @property
    def exit_code(self) -> int:
        return 1 if self.regressed else 0


# ----------------------------------------------------------------------------- inputs


def _sibling_utterances(csv: Path) -> Path | None:
    if "leaderboard" in csv.name:
        p = csv.with_name(csv.name.replace("leaderboard", "utterances"))
        if p.exists():
            return p
    return None


def _resolve(path: Path, what: str) -> tuple[Path, Path | None]:
    """(leaderboard csv, utterances csv or None) of a run dir or a leaderboard file."""
    path = Path(path)
    if path.is_dir():
        lb = path / "leaderboard.csv"
        if not lb.exists():
            raise CheckInputError(f"{what} {path} is a directory without leaderboard.csv")
        u = path / "utterances.csv"
        return lb, (u if u.exists() else None)
    if not path.exists():
        raise CheckInputError(f"{what} not found: {path}")
    return path, _sibling_utterances(path)


def _read(path: Path, what: str, need: list[str]) -> pd.DataFrame:
    try:
        df = read_table(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise CheckInputError(f"cannot read {what} {path}: {e}") from None
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise CheckInputError(f"{what} {path} is missing columns: {', '.join(missing)}")
    return df


def _index(df: pd.DataFrame, path: Path, what: str) -> pd.DataFrame:
    dup = df[df.duplicated(["system", "bucket"], keep=False)]
    if len(dup):
        pairs = ", ".join(sorted({f"{s}/{b}" for s, b in zip(dup["system"], dup["bucket"])}))
        raise CheckInputError(f"{what} {path} has several rows for: {pairs} (merge or split the runs first)")
    df = df.copy()
    if {"n", "n_failed"} <= set(df.columns):
        n = pd.to_numeric(df["n"], errors="coerce")
        df["fail_rate"] = pd.to_numeric(df["n_failed"], errors="coerce") / n.where(n > 0)
    return df.set_index(["system", "bucket"])


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _half_width(row: pd.Series, metric: str) -> float:
    lo, hi = _num(row.get(f"{metric}_ci_low")), _num(row.get(f"{metric}_ci_high"))
    return (hi - lo) / 2 if math.isfinite(lo) and math.isfinite(hi) else math.nan


def _gated_metrics(base: pd.DataFrame, tolerances: dict[str, Tolerance]) -> dict[str, Tolerance]:
    gated: dict[str, Tolerance] = {}
    for c in base.columns:
        if c.endswith("_ci_low") and f"{c[:-7]}_ci_high" in base.columns and higher_is_better(c[:-7]) is not None:
            gated[c[:-7]] = Tolerance("ci")
    if "fail_rate" in base.columns:
        gated["fail_rate"] = Tolerance("abs", 0.0)
    gated.update(tolerances)
    return {m: t for m, t in gated.items() if t.kind != "off"}


# ----------------------------------------------------------------------------- check


def check(candidate: Path, baseline: Path, tolerances: dict[str, str] | dict[str, Tolerance] | None = None,
          baseline_utterances: Path | None = None, seed: int = 0, n_boot: int = 2000,
          alpha: float = 0.05) -> CheckResult:
    """Compare a candidate run dir (or leaderboard.csv) with a baseline leaderboard CSV."""
    tol = {m: (t if isinstance(t, Tolerance) else parse_tolerance(t, m)) for m, t in (tolerances or {}).items()}
    for m in tol:
        if higher_is_better(m) is None:
            raise CheckInputError(f"no known direction for metric {m!r}")
    cand_lb, cand_utt = _resolve(Path(candidate), "candidate")
    base_lb, base_utt = _resolve(Path(baseline), "baseline")
    if baseline_utterances is not None:
        base_utt = Path(baseline_utterances)
        if not base_utt.exists():
            raise CheckInputError(f"baseline utterances not found: {base_utt}")
    cdf = _index(_read(cand_lb, "candidate", ["system", "bucket"]), cand_lb, "candidate")
    bdf = _index(_read(base_lb, "baseline", ["system", "bucket"]), base_lb, "baseline")
    gated = _gated_metrics(bdf, tol)
    missing_b = [m for m in gated if m not in bdf.columns]
    if missing_b:
        raise CheckInputError(f"baseline {base_lb} is missing columns for the tolerances given: {', '.join(missing_b)}")
    missing_c = [m for m in gated if m not in cdf.columns]
    if missing_c:
        raise CheckInputError(f"candidate {cand_lb} is missing columns that the baseline gates: {', '.join(missing_c)}")
    common = [k for k in bdf.index if k in cdf.index]
    if not common:
        def desc(df):
            return (f"systems {sorted(set(df.index.get_level_values(0)))}, "
                    f"buckets {sorted(set(df.index.get_level_values(1)), key=bucket_sort_key)}")
        raise CheckInputError(f"no overlapping (system, bucket) between candidate ({desc(cdf)}) and "
                              f"baseline ({desc(bdf)})")
    notes = []
    only_b = [f"{s}/{b}" for s, b in bdf.index if (s, b) not in cdf.index]
    only_c = [f"{s}/{b}" for s, b in cdf.index if (s, b) not in bdf.index]
    if only_b:
        notes.append(f"in the baseline only (not compared): {', '.join(only_b)}")
    if only_c:
        notes.append(f"in the candidate only (not compared): {', '.join(only_c)}")

    pairs = _paired_tables(cand_utt, base_utt, notes)
    rows: list[CheckRow] = []
    for (system, bucket) in common:
        b, c = bdf.loc[(system, bucket)], cdf.loc[(system, bucket)]
        for metric, t in gated.items():
            bv, cv = _num(b.get(metric)), _num(c.get(metric))
            if not (math.isfinite(bv) and math.isfinite(cv)):
                continue  # e.g. no sim scorer for this system: nothing to compare
            hb, hc = _half_width(b, metric), _half_width(c, metric)
            row = CheckRow(system, bucket, metric, bv, cv, cv - bv, t.allowed(bv, hb, hc), str(t),
                           bool(higher_is_better(metric)))
            if pairs is not None:
                _attach_test(row, pairs, seed, n_boot)
            if row.p_value is None and math.isfinite(hb) and math.isfinite(hc) and hb + hc > 0:
                row.p_value = ci_welch_p(row.delta, hb, _n_ok(b), hc, _n_ok(c))
                row.paired_delta, row.test = row.delta, "ci"
            rows.append(row)
    testable = [r for r in rows if r.p_value is not None and math.isfinite(r.tolerance)]
    for r, p in zip(testable, holm([r.p_value for r in testable])):
        r.p_adjusted = p
        r.significant = p < alpha and (r.paired_delta or 0.0) * r.delta > 0
    for r in rows:
        r.verdict = _verdict(r)
    rows += _breakdown(rows, bdf, cdf)
    md = render_markdown(rows, cand_lb if not Path(candidate).is_dir() else Path(candidate), base_lb,
                         pairs is not None, notes, n_boot, seed, alpha)
    return CheckResult(rows, md, Path(candidate), Path(baseline), pairs is not None, notes)


def _verdict(r: CheckRow) -> str:
    if not math.isfinite(r.tolerance):
        return "unchecked"
    if r.worse_by > r.tolerance + 1e-12:
        return "regressed" if r.significant is not False else "worse (n.s.)"
    if -r.worse_by > r.tolerance + 1e-12:
        return "improved" if r.significant is not False else "better (n.s.)"
    return "ok"


def _breakdown(rows: list[CheckRow], bdf: pd.DataFrame, cdf: pd.DataFrame) -> list[CheckRow]:
    """Where WER moved, the substitution / deletion / insertion rates as `info` rows."""
    out = []
    for r in rows:
        if r.metric != "wer" or r.verdict not in ("regressed", "improved"):
            continue
        for m in ("sub_rate", "del_rate", "ins_rate"):
            bv, cv = _num(bdf.loc[(r.system, r.bucket)].get(m)), _num(cdf.loc[(r.system, r.bucket)].get(m))
            if math.isfinite(bv) and math.isfinite(cv):
                out.append(CheckRow(r.system, r.bucket, m, bv, cv, cv - bv, math.nan, "info", False, verdict="info"))
    return out


@dataclass
class _Pairs:
    base: pd.DataFrame
    cand: pd.DataFrame
    cols: set[str]


def _paired_tables(cand_utt: Path | None, base_utt: Path | None, notes: list[str]) -> _Pairs | None:
    if cand_utt is None or base_utt is None:
        side = "candidate" if cand_utt is None else "baseline"
        notes.append(f"paired test unavailable: no per-utterance rows for the {side}; "
                     "verdicts use the tolerances alone")
        return None
    need = ["system", "id", "bucket"]
    b = _read(base_utt, "baseline utterances", need)
    c = _read(cand_utt, "candidate utterances", need)
    for df in (b, c):
        if "status" not in df.columns:
            df["status"] = "ok"
    return _Pairs(b, c, set(b.columns) & set(c.columns))


def _attach_test(row: CheckRow, pairs: _Pairs, seed: int, n_boot: int) -> None:
    def sel(df):
        d = df[df["system"] == row.system]
        return d if row.bucket == "all" else d[d["bucket"] == row.bucket]

    b, c = sel(pairs.base), sel(pairs.cand)
    if row.metric == "fail_rate":
        j = b[["id", "status"]].merge(c[["id", "status"]], on="id", suffixes=("_b", "_c"))
        arr_b = (j["status_b"] != "ok").to_numpy(float)[:, None]
        arr_c = (j["status_c"] != "ok").to_numpy(float)[:, None]
        stat = lambda a: a[..., 0].mean(axis=-1)  # noqa: E731
    else:
        spec = _stat_columns(row.metric, pairs.cols)
        if spec is None:
            return
        cols, stat = spec
        j = b[b["status"] == "ok"][["id", *cols]].merge(c[c["status"] == "ok"][["id", *cols]], on="id",
                                                         suffixes=("_b", "_c"))
        arr_b = j[[f"{k}_b" for k in cols]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        arr_c = j[[f"{k}_c" for k in cols]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        keep = np.isfinite(arr_b).all(axis=1) & np.isfinite(arr_c).all(axis=1)
        arr_b, arr_c = arr_b[keep], arr_c[keep]
    test = paired_bootstrap(arr_b, arr_c, stat, seeded_rng(seed, row.system, row.bucket), n_boot)
    if test is not None:
        row.n_paired, row.paired_delta, row.p_value, row.test = test.n, test.diff, test.p, "paired"


# ----------------------------------------------------------------------------- markdown


def _f(v: float | None, signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:+.4g}" if signed else f"{v:.4g}"


def _p(v: float | None) -> str:
    if v is None:
        return "–"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


_ORDER = {"regressed": 0, "worse (n.s.)": 1, "improved": 2, "better (n.s.)": 3, "info": 4}


def render_markdown(rows: list[CheckRow], candidate: Path, baseline: Path, paired: bool, notes: list[str],
                    n_boot: int, seed: int, alpha: float) -> str:
    reg = [r for r in rows if r.verdict == "regressed"]
    imp = [r for r in rows if r.verdict == "improved"]
    gated = [r for r in rows if r.verdict not in ("info", "unchecked")]
    head = "FAILED" if reg else "PASSED"
    lines = [f"## halle-bench check: {head}", "",
             f"- candidate: `{candidate}`", f"- baseline: `{baseline}`",
             f"- {len(gated)} comparisons ({len({(r.system, r.bucket) for r in gated})} system/bucket cells, "
             f"metrics: {', '.join(dict.fromkeys(r.metric for r in gated))}); "
             f"{len(reg)} regressed, {len(imp)} improved",
             ("- significance: paired bootstrap over utterances ok on both sides "
              f"(n_boot={n_boot}, seed={seed}), Holm-adjusted, alpha={alpha:g}") if paired else
             "- significance: no per-utterance rows on both sides; approximate Welch test from the two "
             f"leaderboards' 95% CIs where both have one, Holm-adjusted, alpha={alpha:g}"]
    if reg:
        cells: dict[tuple, list[str]] = {}
        for r in reg:
            cells.setdefault((r.system, r.bucket), []).append(r.metric)
        lines.append("- regressed: " + "; ".join(f"{s} {b} ({', '.join(m)})" for (s, b), m in cells.items()))
    moved = sorted([r for r in rows if r.verdict in _ORDER], key=lambda r: (
        _ORDER[r.verdict] if r.verdict != "info" else 0, r.system, bucket_sort_key(r.bucket),
        r.verdict == "info", r.metric))
    lines.append("")
    if moved:
        lines += ["| system | bucket | metric | baseline | candidate | Δ | tolerance | test | n paired | p (Holm) | verdict |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in moved:
            tol = "–" if r.verdict == "info" else f"{_f(r.tolerance)} ({r.tolerance_rule})"
            arrow = "↑" if r.higher_is_better else "↓"
            verdict = f"**{r.verdict}**" if r.verdict == "regressed" else r.verdict
            lines.append(f"| {r.system} | {r.bucket} | {r.metric} {arrow if r.verdict != 'info' else ''} | "
                         f"{_f(r.baseline)} | {_f(r.candidate)} | {_f(r.delta, True)} | {tol} | "
                         f"{r.test or '–'} | {r.n_paired or '–'} | {_p(r.p_adjusted)} | {verdict} |")
        lines.append("")
        lines.append("↓ lower is better, ↑ higher is better; Δ = candidate − baseline.")
    else:
        lines.append("No metric moved beyond its tolerance.")
    unchecked = [r for r in rows if r.verdict == "unchecked"]
    if unchecked:
        notes = notes + [f"{len(unchecked)} comparisons without a derivable tolerance (no CI), not gated: "
                         + ", ".join(f"{r.system}/{r.bucket}/{r.metric}" for r in unchecked[:10])
                         + (" ..." if len(unchecked) > 10 else "")]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
