"""`halle-bench check`: a regression gate of a candidate run against a committed baseline.

For every (system, bucket) present on both sides:

- **failures**: a candidate `n_failed` above the baseline's by more than the tolerance
  (`n_failed=K`, default 0) is a regression, with no significance test: a test that 2-8
  utterances can never pass would let a bucket fail half its utterances.
- **every baseline metric** with a direction (the metric registry, then the scorers'
  `higher_is_better`) is compared. Tolerances (check_tolerance.py): given per metric,
  else the registry's default: `ci` from the two leaderboards' CIs, or, without a CI,
  from n (so WER is gated from the contract's columns alone); fixed absolute
  tolerances for the window / rate metrics; quantiles and timing are `info` (shown in
  a note, gated only with a `--tolerance`).
- a metric that the baseline has for a cell and the candidate lacks (no column, or an
  empty cell) is a regression (`missing`), never a silent pass.
- **paired bootstrap** when both sides have per-utterance rows (the candidate run's
  utterances.csv; for the baseline, `baseline_utterances` or the file beside the
  baseline whose name has "utterances" for "leaderboard"): the utterances both sides
  have for that metric (for the WER family failed ones too, with their all-deleted
  values; otherwise successes on both sides) are resampled together (by utterance:
  the paired difference already removes each speaker's level; the leaderboard's own
  CIs are the ones clustered by speaker), seeded per cell, and the statistic
  recomputed from the registry's sufficient statistics. The bootstrap standard error of the paired difference gives
  a two-sided p from Student's t with n-1 df; p-values are Holm-adjusted over all
  tested cells. Without per-utterance rows on one side, `ci_welch_p` from the two
  CIs stands in where both have one.
- verdict: `regressed` = worse beyond tolerance AND (significant, in the same
  direction, when a test exists for that cell); `improved` likewise; `worse (n.s.)` /
  `better (n.s.)`; otherwise `ok`.
- **comparability** (check_compat.py): a different asr_model, normalizer, sim_model,
  quality_model or scorer version raises CheckMismatchError (exit 2) naming the
  difference, unless `allow_mismatch`; then the markdown says so.

Bad input (a missing file or column, no overlapping (system, bucket)) raises
CheckInputError, which the CLI maps to exit code 2.
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
from .check_tolerance import (CheckInputError, Tolerance, default_tolerance, higher_is_better, parse_tolerance,
                              parse_tolerances, se_from_counts)
from .exports import TEXT_COLUMNS, bucket_sort_key, read_table
from .metric_registry import METRICS, sufficient, usable


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


def _n_behind(row: pd.Series, metric: str) -> float:
    """How many utterances a leaderboard value stands on (its count column, else n (- failed))."""
    m = METRICS.get(metric)
    if m is not None and m.count_column and math.isfinite(_num(row.get(m.count_column))):
        return _num(row.get(m.count_column))
    n, f = _num(row.get("n")), _num(row.get("n_failed"))
    if m is not None and m.counts_failures:
        return n
    return n - (f if math.isfinite(f) else 0.0)


def _words_behind(row: pd.Series, metric: str) -> float:
    """Reference words behind a WER-family value (`n_ref_words`; for wer_ok scaled to the successes)."""
    w = _num(row.get("n_ref_words"))
    if metric == "wer_ok" and math.isfinite(w):
        a, b = _num(row.get("n_wer_ok")), _num(row.get("n_wer"))
        w = w * a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan
    return w


def _gated_metrics(base: pd.DataFrame, tolerances: dict[str, Tolerance]) -> dict[str, Tolerance]:
    """Every baseline column with a direction, with its tolerance (given, else the default)."""
    gated: dict[str, Tolerance] = {}
    for c in base.columns:
        if c in TEXT_COLUMNS or c.endswith(("_ci_low", "_ci_high")) or c in ("n", "n_failed"):
            continue
        if higher_is_better(c) is not None:
            gated[c] = default_tolerance(c)
    gated.update({m: t for m, t in tolerances.items() if m != "n_failed"})
    return {m: t for m, t in gated.items() if t.kind != "off"}


# ----------------------------------------------------------------------------- check


def check(candidate: Path, baseline: Path, tolerances: dict[str, str] | dict[str, Tolerance] | None = None,
          baseline_utterances: Path | None = None, seed: int = 0, n_boot: int = 2000,
          alpha: float = 0.05, allow_mismatch: bool = False) -> CheckResult:
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
    missing_b = [m for m in tol if m not in bdf.columns and m != "n_failed"]
    if missing_b:
        raise CheckInputError(f"baseline {base_lb} is missing columns for the tolerances given: {', '.join(missing_b)}")
    common = [k for k in bdf.index if k in cdf.index]
    if not common:
        def desc(df):
            return (f"systems {sorted(set(df.index.get_level_values(0)))}, "
                    f"buckets {sorted(set(df.index.get_level_values(1)), key=bucket_sort_key)}")
        raise CheckInputError(f"no overlapping (system, bucket) between candidate ({desc(cdf)}) and "
                              f"baseline ({desc(bdf)})")
    mism, notes = find_mismatches(bdf, cdf, common)
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
        for metric, t in gated.items():
            bv = _num(b.get(metric))
            if not math.isfinite(bv):
                continue  # e.g. no sim scorer for this system in the baseline: nothing to compare
            cv = _num(c.get(metric)) if metric in cdf.columns else math.nan
            hib = bool(higher_is_better(metric))
            if not math.isfinite(cv):  # gone from the candidate: a regression, unless not gated (then a note)
                verdict = "missing" if t.kind != "info" else "info"
                rows.append(CheckRow(system, bucket, metric, bv, cv, math.nan, 0.0, str(t), hib, verdict=verdict))
                continue
            hb, hc = _half_width(b, metric), _half_width(c, metric)
            se_n = se_from_counts(metric, bv, _n_behind(b, metric), _words_behind(b, metric), cv)
            allowed, rule = t.allowed(bv, hb, hc, se_n)
            row = CheckRow(system, bucket, metric, bv, cv, cv - bv, allowed, rule, hib)
            if t.kind == "info":
                row.verdict = "info"
                rows.append(row)
                continue
            if pairs is not None:
                _attach_test(row, pairs, seed, n_boot)
            if row.p_value is None and math.isfinite(hb) and math.isfinite(hc) and hb + hc > 0:
                row.p_value = ci_welch_p(row.delta, hb, _n_behind(b, metric), hc, _n_behind(c, metric))
                row.paired_delta, row.test = row.delta, "ci"
            if row.p_value is None and rule == "n" and se_n > 0:
                row.p_value = math.erfc(abs(row.delta) / se_n / math.sqrt(2))  # z-test from counts
                row.paired_delta, row.test = row.delta, "n"
            rows.append(row)
    testable = [r for r in rows if r.p_value is not None and math.isfinite(r.tolerance) and r.verdict == "ok"]
    for r, p in zip(testable, holm([r.p_value for r in testable])):
        r.p_adjusted = p
        r.significant = p < alpha and (r.paired_delta or 0.0) * r.delta > 0
    for r in rows:
        if r.verdict == "ok":
            r.verdict = _verdict(r)
    rows += _breakdown(rows, bdf, cdf)
    md = render_markdown(rows, cand_lb if not Path(candidate).is_dir() else Path(candidate), base_lb,
                         pairs is not None, notes, n_boot, seed, alpha, mism)
    return CheckResult(rows, md, Path(candidate), Path(baseline), pairs is not None, notes, mism)


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
            if m not in bdf.columns or m not in cdf.columns:
                continue
            bv, cv = _num(bdf.loc[(r.system, r.bucket)].get(m)), _num(cdf.loc[(r.system, r.bucket)].get(m))
            if math.isfinite(bv) and math.isfinite(cv):
                out.append(CheckRow(r.system, r.bucket, m, bv, cv, cv - bv, math.nan, "breakdown", False,
                                    verdict="info"))
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


def _attach_test(row: CheckRow, pairs: _Pairs, seed: int, n_boot: int) -> None:
    m = METRICS.get(row.metric)
    if m is None or not m.mergeable or not set(m.source) <= pairs.cols:
        return

    def sel(df):
        d = df[df["system"] == row.system]
        return (d if row.bucket == "all" else d[d["bucket"] == row.bucket]).reset_index(drop=True)

    b, sb = _side(sel(pairs.base), m, list(m.source))
    c, sc = _side(sel(pairs.cand), m, list(m.source))
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
           "parse_tolerance", "parse_tolerances", "higher_is_better"]
