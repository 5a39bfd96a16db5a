"""`halle-bench check`: a regression gate of a candidate run against a committed baseline.

What is compared comes from the metric declarations (`metric_decl.Metric`), never from
column names:

- **failures**: a candidate `n_failed` above the baseline's by more than the tolerance
  (`n_failed=K`, default 0) is a regression, with no significance test.
- **headline metrics** (WER, similarity, quality: `role="headline"`) are gated in every
  (system, bucket) both sides have. **Diagnostics** (wer_macro, cer, sim_min, rtf,
  pause_w1, ...) are gated only when a `--tolerance` or `--metrics` names them; the
  others are listed as compared, not gated. An **alias** (dnsmos_ovrl = quality) is
  never compared on its own. A target metric (duration_ratio: closer to 1 is better)
  is gated through its deviation column. Undeclared columns are never gated.
- `metrics` (`--metrics a,b`) restricts the comparison to those metrics, and the
  comparability check to their scorers (n_failed is always compared).
- a gated metric that the baseline has for a cell and the candidate lacks is a
  regression (`missing`) with its reason: no such column (the scorer did not run), or
  the candidate's own note for the cell ("pause_w1 not computed: no reference audio").
- **large effects**: a metric's declared bound (`Metric.bound`; WER: doubling and at
  least 5 points) fails in any bucket without a significance test, so that a truncated
  bucket of 2 utterances fails.
- **smaller moves** need both: worse beyond the tolerance (from the CIs, or from n) and
  significant after Holm over the family = the gated metrics x buckets x systems (the
  declared headline metrics by default, not every column). Paired bootstrap when both
  sides have per-utterance rows (the candidate run's utterances.csv; for the baseline
  `baseline_utterances` or the file beside it whose name has "utterances" for
  "leaderboard"; resampled by utterance: the paired difference already removes each
  speaker's level); without them `ci_welch_p` from the two CIs, or a z-test from counts.
- **identical numbers, identical verdicts**: within a cell, a metric whose baseline and
  candidate values, tolerance and bound equal those of a metric already compared (wer
  and wer_macro in a one-utterance cell) takes that verdict and is tested once.
- **comparability** (check_compat.py): another model, normaliser or scorer version of a
  compared scorer raises CheckMismatchError (exit 2) unless `allow_mismatch`.

Bad input (a missing file or column, no overlapping (system, bucket), an unknown metric)
raises CheckInputError, which the CLI maps to exit code 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .cell_stats import cell_seed
from .check_compat import mismatches as find_mismatches
from .check_render import BAD, render_markdown
from .check_stats import ci_welch_p, holm, paired_ratio_bootstrap
from .check_tolerance import (CheckInputError, Tolerance, default_tolerance, gated_name, higher_is_better,
                              known_metrics, parse_tolerance, parse_tolerances, se_from_counts)
from .exports import bucket_sort_key, read_table
from .metric_decl import ALIAS, HEADLINE, Metric
from .metric_registry import declared, metric_declarations, sufficient, usable


class CheckMismatchError(CheckInputError):
    """The two runs were scored differently (another ASR model, normaliser, ...)."""


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
    tolerance_rule: str  # "0.01", "5%", "ci", "n", "info", "breakdown"
    higher_is_better: bool
    n_paired: int = 0
    paired_delta: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    significant: bool | None = None  # None: no test for this cell
    test: str = ""  # "paired" | "ci" | "" (none)
    verdict: str = "ok"  # ok | regressed | missing | improved | worse (n.s.) | better (n.s.) | unchecked | info
    reason: str = ""  # why a regression is one (bound, significance, missing: what is missing)
    bound: str = ""  # the declared large-effect bound, in report units
    bound_crossed: bool = False
    same_as: str = ""  # compared once: the metric with the same numbers in this cell

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
    mismatches: list[str] = field(default_factory=list)  # accepted with allow_mismatch

    @property
    def regressions(self) -> list[CheckRow]:
        return [r for r in self.rows if r.verdict in BAD]

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
    return df.set_index(["system", "bucket"])


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _half_width(row: pd.Series, metric: str) -> float:
    lo, hi = _num(row.get(f"{metric}_ci_low")), _num(row.get(f"{metric}_ci_high"))
    return (hi - lo) / 2 if math.isfinite(lo) and math.isfinite(hi) else math.nan


def _n_behind(row: pd.Series, m: Metric | None) -> float:
    """How many utterances a leaderboard value stands on (its count column, else n (- failed))."""
    if m is not None and m.count_column and math.isfinite(_num(row.get(m.count_column))):
        return _num(row.get(m.count_column))
    n, f = _num(row.get("n")), _num(row.get("n_failed"))
    if m is not None and m.counts_failures:
        return n
    return n - (f if math.isfinite(f) else 0.0)


def _words_behind(row: pd.Series, m: Metric) -> float:
    """Denominator units behind a ratio (`units_column`, e.g. reference words); for a metric
    over successes only, scaled by its count over n."""
    if not m.units_column:
        return math.nan
    w = _num(row.get(m.units_column))
    if m.ok_only and math.isfinite(w):
        a, b = _num(row.get(m.count_column)) if m.count_column else math.nan, _num(row.get("n"))
        w = w * a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan
    return w


@dataclass
class _Gate:
    metric: Metric
    tolerance: Tolerance
    rel_base: str | None = None  # a target metric's own column: a relative tolerance is a share of it


def _selection(metrics: list[str] | None) -> set[str] | None:
    if not metrics:
        return None
    return {gated_name(name) for name in metrics}  # CheckInputError naming the known metrics


def _gate_plan(bdf: pd.DataFrame, tol: dict[str, Tolerance], select: set[str] | None,
               notes: list[str]) -> list[_Gate]:
    """The metrics compared, in declaration order, with their tolerances (see the docstring)."""
    by_gated = {gated_name(k): t for k, t in tol.items() if k != "n_failed"}
    targets = {d.name: m.name for m in metric_declarations() if (d := m.deviation()) is not None}
    plan, info, aliases = [], [], []
    for m in metric_declarations():
        if m.role == ALIAS:
            if m.name in bdf.columns:
                aliases.append(f"{m.name} (= {m.alias_of})")
            continue
        if m.higher_is_better is None or (select is not None and m.name not in select) or m.name not in bdf.columns:
            continue
        if m.name in by_gated:
            t = by_gated[m.name]
        elif m.role == HEADLINE or select is not None:
            t = default_tolerance(m)
        else:
            info.append(m.name)
            continue
        if t.kind == "off":
            continue
        if t.kind == "info":
            info.append(m.name)
            continue
        plan.append(_Gate(m, t, targets.get(m.name)))
    if info:
        notes.append("compared, not gated (diagnostics; gate one with --tolerance METRIC=VALUE or --metrics): "
                     + ", ".join(info))
    if aliases:
        notes.append("the same number as another metric, compared once under that name: " + ", ".join(aliases))
    return plan


# ----------------------------------------------------------------------------- check


def check(candidate: Path, baseline: Path, tolerances: dict[str, str] | dict[str, Tolerance] | None = None,
          baseline_utterances: Path | None = None, seed: int = 0, n_boot: int = 2000,
          alpha: float = 0.05, allow_mismatch: bool = False, metrics: list[str] | None = None) -> CheckResult:
    """Compare a candidate run dir (or leaderboard.csv) with a baseline leaderboard CSV;
    `metrics`: compare only these (declared names; n_failed always)."""
    tol = {m: (t if isinstance(t, Tolerance) else parse_tolerance(t, m)) for m, t in (tolerances or {}).items()}
    for m in tol:
        gated_name(m)  # CheckInputError for an unknown, alias or direction-less name
    select = _selection(metrics)
    cand_lb, cand_utt = _resolve(Path(candidate), "candidate")
    base_lb, base_utt = _resolve(Path(baseline), "baseline")
    if baseline_utterances is not None:
        base_utt = Path(baseline_utterances)
        if not base_utt.exists():
            raise CheckInputError(f"baseline utterances not found: {base_utt}")
    cdf = _index(_read(cand_lb, "candidate", ["system", "bucket"]), cand_lb, "candidate")
    bdf = _index(_read(base_lb, "baseline", ["system", "bucket"]), base_lb, "baseline")
    missing_b = [m if gated_name(m) == m else f"{m} (compared as {gated_name(m)}, which this baseline predates)"
                 for m in tol if m != "n_failed" and gated_name(m) not in bdf.columns]
    if missing_b:
        raise CheckInputError(f"baseline {base_lb} is missing columns for the tolerances given: {', '.join(missing_b)}")
    common = [k for k in bdf.index if k in cdf.index]
    if not common:
        def desc(df):
            return (f"systems {sorted(set(df.index.get_level_values(0)))}, "
                    f"buckets {sorted(set(df.index.get_level_values(1)), key=bucket_sort_key)}")
        raise CheckInputError(f"no overlapping (system, bucket) between candidate ({desc(cdf)}) and "
                              f"baseline ({desc(bdf)})")
    notes: list[str] = []
    plan = _gate_plan(bdf, tol, select, notes)
    # Comparable where it matters: the scorers whose metrics are gated. Another version
    # of a scorer nothing gated comes from (longform, when no tolerance names its
    # metrics) is a note, not a refusal.
    scorers = {g.metric.scorer for g in plan}
    mism, cnotes = find_mismatches(bdf, cdf, common, scorers)
    other, _ = find_mismatches(bdf, cdf, common, None)
    notes = cnotes + [f"differs, but nothing gated comes from it: {m}" for m in other if m not in mism] + notes
    if mism and not allow_mismatch:
        raise CheckMismatchError("the runs are not comparable: " + "; ".join(mism)
                                 + " (pass --allow-mismatch to compare them anyway)")
    only_b = [f"{s}/{b}" for s, b in bdf.index if (s, b) not in cdf.index]
    only_c = [f"{s}/{b}" for s, b in cdf.index if (s, b) not in bdf.index]
    if only_b:
        notes.append(f"in the baseline only (not compared): {', '.join(only_b)}")
    if only_c:
        notes.append(f"in the candidate only (not compared): {', '.join(only_c)}")

    pairs = _paired_tables(cand_utt, base_utt, notes)
    fail_tol = tol.get("n_failed", Tolerance("abs", 0.0))
    rows: list[CheckRow] = []
    for (system, bucket) in common:
        b, c = bdf.loc[(system, bucket)], cdf.loc[(system, bucket)]
        rows += _failed_row(system, bucket, b, c, fail_tol, notes)
        seen: dict[tuple, CheckRow] = {}
        for g in plan:
            row = _compare(system, bucket, b, c, g, cdf, pairs, seed, n_boot, seen)
            if row is not None:
                rows.append(row)
    family = [r for r in rows if r.p_value is not None and math.isfinite(r.tolerance) and r.verdict == "ok"
              and not r.same_as]
    for r, p in zip(family, holm([r.p_value for r in family])):
        r.p_adjusted = p
        r.significant = p < alpha and (r.paired_delta or 0.0) * r.delta > 0
    by_key = {(r.system, r.bucket, r.metric): r for r in rows}
    for r in rows:
        if r.verdict == "ok" and not r.same_as:
            r.verdict, r.reason = _verdict(r)
    for r in rows:
        if r.same_as:
            first = by_key[(r.system, r.bucket, r.same_as)]
            r.verdict, r.p_adjusted, r.significant = first.verdict, first.p_adjusted, first.significant
            r.reason = f"the same numbers as {r.same_as}" + (f": {first.reason}" if first.reason else "")
    rows += _breakdown(rows, bdf, cdf)
    md = render_markdown(rows, cand_lb if not Path(candidate).is_dir() else Path(candidate), base_lb,
                         pairs is not None, notes, n_boot, seed, alpha, mism, len(family))
    return CheckResult(rows, md, Path(candidate), Path(baseline), pairs is not None, notes, mism)


def _missing_reason(m: Metric, c: pd.Series, cdf: pd.DataFrame) -> str:
    if m.name not in cdf.columns:
        return (f"the candidate has no `{m.name}` column ({m.why_missing or 'not scored'}); "
                f"compare the rest with --metrics")
    note = c.get("notes")
    if isinstance(note, str):
        for part in note.split("; "):
            if part.startswith(m.name + " "):
                return f"empty in the candidate: {part}"
    return f"empty in the candidate ({m.why_missing or 'no value'})"


def _compare(system: str, bucket: str, b: pd.Series, c: pd.Series, g: _Gate, cdf: pd.DataFrame, pairs,
             seed: int, n_boot: int, seen: dict[tuple, CheckRow]) -> CheckRow | None:
    m, t = g.metric, g.tolerance
    bv = _num(b.get(m.name))
    if not math.isfinite(bv):
        return None  # e.g. no sim scorer for this system in the baseline: nothing to compare
    cv = _num(c.get(m.name)) if m.name in cdf.columns else math.nan
    hib = bool(m.higher_is_better)
    bound = m.bound.describe(m.scale, m.unit) if m.bound else ""
    if not math.isfinite(cv):  # gone from the candidate: a regression, and why
        return CheckRow(system, bucket, m.name, bv, cv, math.nan, 0.0, str(t), hib, verdict="missing",
                        reason=_missing_reason(m, c, cdf), bound=bound)
    # Identical numbers, identical verdicts: compared once, under the first metric.
    key = (hib, float(np.float32(bv)), float(np.float32(cv)), str(t), bound)
    if key in seen:
        first = seen[key]
        return CheckRow(system, bucket, m.name, bv, cv, cv - bv, first.tolerance, first.tolerance_rule, hib,
                        first.n_paired, first.paired_delta, first.p_value, test=first.test, bound=first.bound,
                        bound_crossed=first.bound_crossed, same_as=first.metric)
    hb, hc = _half_width(b, m.name), _half_width(c, m.name)
    se_n = se_from_counts(m, bv, _n_behind(b, m), _words_behind(b, m), cv)
    base_for_rel = _num(b.get(g.rel_base)) if g.rel_base and t.kind == "rel" else bv
    allowed, rule = t.allowed(base_for_rel, hb, hc, se_n)
    row = CheckRow(system, bucket, m.name, bv, cv, cv - bv, allowed, rule, hib, bound=bound)
    # An explicit absolute / relative tolerance (`wer=0.5`) is the user's own bound; otherwise the declared one holds.
    z = abs(cv - bv) / se_n if math.isfinite(se_n) and se_n > 0 else math.inf
    row.bound_crossed = bool(m.bound and (m.bound.crossed(bv, cv, hib) or m.bound.crossed(cv, bv, hib))
                             and z >= m.bound.min_z
                             and not (t.kind in ("abs", "rel") and abs(cv - bv) <= allowed + 1e-12))
    if pairs is not None:
        _attach_test(row, m, pairs, seed, n_boot)
    if row.p_value is None and math.isfinite(hb) and math.isfinite(hc) and hb + hc > 0:
        row.p_value = ci_welch_p(row.delta, hb, _n_behind(b, m), hc, _n_behind(c, m))
        row.paired_delta, row.test = row.delta, "ci"
    if row.p_value is None and rule == "n" and se_n > 0:
        row.p_value = math.erfc(abs(row.delta) / se_n / math.sqrt(2))  # z-test from counts
        row.paired_delta, row.test = row.delta, "n"
    seen[key] = row
    return row


def _failed_row(system: str, bucket: str, b: pd.Series, c: pd.Series, t: Tolerance, notes: list[str]) -> list[CheckRow]:
    bf, cf = _num(b.get("n_failed")), _num(c.get("n_failed"))
    if not math.isfinite(bf):
        return []
    if not math.isfinite(cf):
        return [CheckRow(system, bucket, "n_failed", bf, cf, math.nan, 0.0, str(t), False, verdict="missing")]
    bn, cn = _num(b.get("n")), _num(c.get("n"))
    if math.isfinite(bn) and math.isfinite(cn) and bn != cn:
        notes.append(f"{system}/{bucket}: {int(cn)} utterances in the candidate vs {int(bn)} in the baseline")
    allowed = t.value if t.kind == "abs" else t.allowed(bf, math.nan, math.nan)[0]
    row = CheckRow(system, bucket, "n_failed", bf, cf, cf - bf, allowed, str(t), False)
    row.verdict = "regressed" if cf - bf > allowed + 1e-12 else ("improved" if cf < bf else "ok")
    return [row]


def _verdict(r: CheckRow) -> tuple[str, str]:
    """(verdict, reason): a crossed bound decides alone; a smaller move beyond the
    tolerance needs significance where a test exists."""
    if r.bound_crossed:
        if r.worse_by > 0:
            return "regressed", f"beyond the large-effect bound ({r.bound}): fails without a significance test"
        return "improved", f"beyond the large-effect bound ({r.bound})"
    if not math.isfinite(r.tolerance):
        return "unchecked", ""
    if r.worse_by > r.tolerance + 1e-12:
        if r.significant is None:
            return "regressed", "worse than the tolerance (no significance test for this cell)"
        if r.significant:
            return "regressed", "worse than the tolerance and significant"
        return "worse (n.s.)", ""
    if -r.worse_by > r.tolerance + 1e-12:
        return ("improved" if r.significant is not False else "better (n.s.)"), ""
    return "ok", ""


def _breakdown(rows: list[CheckRow], bdf: pd.DataFrame, cdf: pd.DataFrame) -> list[CheckRow]:
    """Where a metric with a declared breakdown moved (any WER of the family), its
    components (substitution / deletion / insertion rates) as `info` rows, once per cell."""
    d = declared()
    out, done = [], set()
    for r in rows:
        m = d.get(r.metric)
        if m is None or not m.breakdown or r.verdict not in ("regressed", "improved", "worse (n.s.)", "better (n.s.)"):
            continue
        for name in m.breakdown:
            if (r.system, r.bucket, name) in done or name not in bdf.columns or name not in cdf.columns:
                continue
            done.add((r.system, r.bucket, name))
            bv, cv = _num(bdf.loc[(r.system, r.bucket)].get(name)), _num(cdf.loc[(r.system, r.bucket)].get(name))
            if math.isfinite(bv) and math.isfinite(cv):
                hib = bool(d[name].higher_is_better) if name in d else False
                out.append(CheckRow(r.system, r.bucket, name, bv, cv, cv - bv, math.nan, "breakdown", hib,
                                    verdict="info", reason=f"breakdown of {r.metric}"))
    return out


# ----------------------------------------------------------------------------- paired test


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
        if "speaker" not in df.columns:
            df["speaker"] = None
    return _Pairs(b, c, set(b.columns) & set(c.columns))


def _side(df: pd.DataFrame, m, cols: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    data = {c: pd.to_numeric(df[c], errors="coerce").to_numpy(float) for c in cols}
    keep = usable(m, data, (df["status"] == "ok").to_numpy())
    return df[keep], sufficient(m, {c: v[keep] for c, v in data.items()})


def _attach_test(row: CheckRow, m: Metric, pairs: _Pairs, seed: int, n_boot: int) -> None:
    if not m.mergeable or not set(m.columns) <= pairs.cols:
        return

    def sel(df):
        d = df[df["system"] == row.system]
        return (d if row.bucket == "all" else d[d["bucket"] == row.bucket]).reset_index(drop=True)

    b, sb = _side(sel(pairs.base), m, list(m.columns))
    c, sc = _side(sel(pairs.cand), m, list(m.columns))
    ib = {u: i for i, u in enumerate(b["id"])}
    both = [(ib[u], j) for j, u in enumerate(c["id"]) if u in ib]
    if len(both) < 2:
        return
    bi, ci = (np.array(x) for x in zip(*both))
    # Utterance-level resampling: the paired difference already removes each speaker's
    # own level, and clustering by the 2-4 voices of a small set would leave 1-3 df.
    speakers = None
    rng = np.random.default_rng(cell_seed(seed, row.system, row.bucket, row.metric))
    test = paired_ratio_bootstrap(sb[bi], sc[ci], speakers, rng, n_boot)
    if test is not None:
        row.n_paired, row.paired_delta, row.p_value, row.test = test.n, test.diff, test.p, "paired"


__all__ = ["check", "CheckResult", "CheckRow", "CheckInputError", "CheckMismatchError", "Tolerance",
           "parse_tolerance", "parse_tolerances", "higher_is_better", "known_metrics"]
