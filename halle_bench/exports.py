"""The tabular formats of a run: reading the contract tables, writing stable exports.

Exports (written by `write_exports` into `<report dir>/exports/`):

- `leaderboard.csv`: one row per (system, bucket); `LEADERBOARD_COLUMNS` first, in
  that order (a documented column that a run lacks is written empty, so the schema
  never depends on which scorers ran), then every other column alphabetically.
- `utterances.csv` and `utterances.parquet`: one row per (system, utterance);
  `UTTERANCE_COLUMNS` first, extras alphabetically. Parquet keeps dtypes (ids and
  buckets as strings, counts as numbers) for pandas / polars / DuckDB users.
- `summary.json`: `{"format": "halle-bench-summary", "version": 1, "runs": [...],
  "columns": [...], "leaderboard": [records in column order], "headline": {system:
  {n, n_failed and each declared headline metric with its CI, for the "all" bucket}}}`;
  NaN is written as null (strict JSON).

Rows are ordered by system (first appearance, i.e. config order), then bucket by its
numeric lower edge ("<3" first, "all" last), then utterance id. Floats in CSV keep 6
significant digits, like the runner's own tables, so exports diff cleanly in git.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .metric_registry import headline_metrics, leaderboard_columns, provenance_columns

# The leaderboard contract (architecture.md) comes from the metric declarations: ids and
# counts, then each metric with its CI columns, counts, provenance, notes
# (`leaderboard_columns()`, read when a table is written, so plugins' metrics are in it).
UTTERANCE_COLUMNS = [
    "system", "id", "bucket", "duration", "duration_source", "speaker", "text", "status", "error", "score_errors",
    "input_notes", "wer", "ref_norm", "hyp_norm", "sim", "sim_min", "sim_last", "sim_ref", "sim_ref_min",
    "sim_ref_last", "quality", "quality_min", "quality_last", "rtf", "audio_seconds", "wall_seconds",
    "startup_seconds", "clip_fraction", "cer", "hits", "subs", "dels", "ins", "n_ref_words", "asr_cuts", "asr_cut_db",
    "scorer_versions",
]
# Columns that identify a row, name a model or hold text: never averaged, compared or plotted.
_TEXT = {"system", "bucket", "id", "run", "status", "error", "score_errors", "input_notes", "generation_notes",
         "ref_norm", "hyp_norm", "speaker", "duration_source", "notes", "text"}


def text_columns() -> set[str]:
    return _TEXT | set(provenance_columns())


def headline_columns() -> list[str]:
    cols = ["n", "n_failed"]
    for m in headline_metrics():
        cols += [m.name, *(m.ci_columns or ())]
    return cols


def __getattr__(name: str):
    # Back-compatibility: snapshots of the declaration-derived lists.
    if name == "LEADERBOARD_COLUMNS":
        return leaderboard_columns()
    if name == "TEXT_COLUMNS":
        return text_columns()
    if name == "HEADLINE":
        return headline_columns()
    raise AttributeError(name)


FLOAT_FORMAT = "%.6g"


def bucket_sort_key(label: Any) -> tuple[int, float, str]:
    """"<3" < "3-10" < "10-30" < ... < ">180" < other labels ("unknown") < "all"."""
    s = str(label)
    if s == "all":
        return (3, 0.0, s)
    if s.startswith("<"):
        return (0, _num(s[1:]), s)
    if s.startswith(">"):
        return (1, _num(s[1:]) + 1e-9, s)
    lo = _num(s.split("-")[0])
    return (1, lo, s) if math.isfinite(lo) else (2, 0.0, s)


def _num(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        return math.inf


def sorted_buckets(labels) -> list[str]:
    return sorted({str(b) for b in labels}, key=bucket_sort_key)


def order_columns(df: pd.DataFrame, first: list[str], fill: bool = True) -> pd.DataFrame:
    """`first` in order (missing ones added empty when `fill`), then the rest alphabetically."""
    df = df.copy()
    head = []
    for c in first:
        if c in df.columns:
            head.append(c)
        elif fill:
            df[c] = np.nan
            head.append(c)
    return df[head + sorted(c for c in df.columns if c not in head)]


def order_rows(df: pd.DataFrame) -> pd.DataFrame:
    """System in first-appearance order, then bucket by lower edge, then id (stable)."""
    if df.empty or "system" not in df.columns:
        return df.reset_index(drop=True)
    sys_rank = {s: i for i, s in enumerate(dict.fromkeys(df["system"]))}
    keys = pd.DataFrame({"s": df["system"].map(sys_rank)}, index=df.index)
    if "bucket" in df.columns:
        keys["b"] = df["bucket"].map(lambda b: bucket_sort_key(b)[:2])
    if "id" in df.columns:
        keys["i"] = df["id"].astype(str)
    order = keys.sort_values(list(keys.columns), kind="mergesort").index
    return df.loc[order].reset_index(drop=True)


# ----------------------------------------------------------------------------- reading

_STR_COLS = {"system": str, "bucket": str, "id": str, "status": str, "speaker": str}


def read_table(path: str | Path) -> pd.DataFrame:
    """A leaderboard / utterances CSV with identifiers kept as strings ("007" stays "007")."""
    df = pd.read_csv(path, dtype=_STR_COLS, keep_default_na=True)
    for c in ("error", "score_errors", "ref_norm", "hyp_norm", "notes"):
        if c in df.columns:
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


# ----------------------------------------------------------------------------- writing


def export_leaderboard_csv(lb: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    order_columns(order_rows(lb), leaderboard_columns()).to_csv(path, index=False, float_format=FLOAT_FORMAT)
    return path


def export_utterances(utt: pd.DataFrame, csv_path: str | Path, parquet_path: str | Path | None) -> list[Path]:
    df = order_columns(order_rows(utt), UTTERANCE_COLUMNS)
    out = [Path(csv_path)]
    out[0].parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out[0], index=False, float_format=FLOAT_FORMAT)
    if parquet_path is not None:
        pq = df.copy()
        for c in pq.columns:  # object columns mixing None and str must be plain str for Arrow
            if pq[c].dtype == object:
                pq[c] = pq[c].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
        pq.to_parquet(parquet_path, index=False)
        out.append(Path(parquet_path))
    return out


def _clean(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else float(v)
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def summary(lb: pd.DataFrame, runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON summary as a dict (see the module docstring)."""
    df = order_columns(order_rows(lb), leaderboard_columns())
    head = headline_columns()
    records = [{c: _clean(v) for c, v in row.items()} for row in df.to_dict(orient="records")]
    headline: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["bucket"] == "all":
            headline[r["system"]] = {k: r.get(k) for k in head}
    return {"format": "halle-bench-summary", "version": 1, "runs": runs or [], "columns": list(df.columns),
            "leaderboard": records, "headline": headline}


def export_summary_json(lb: pd.DataFrame, path: str | Path, runs: list[dict[str, Any]] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary(lb, runs), indent=2, allow_nan=False) + "\n")
    return path


def write_exports(lb: pd.DataFrame, utt: pd.DataFrame | None, out_dir: str | Path,
                  runs: list[dict[str, Any]] | None = None) -> dict[str, Path]:
    """All exports into `out_dir`; returns {"leaderboard_csv", "utterances_csv", ...: path}."""
    out_dir = Path(out_dir)
    paths = {"leaderboard_csv": export_leaderboard_csv(lb, out_dir / "leaderboard.csv"),
             "summary_json": export_summary_json(lb, out_dir / "summary.json", runs)}
    if utt is not None and not utt.empty:
        csv, pq = export_utterances(utt, out_dir / "utterances.csv", out_dir / "utterances.parquet")
        paths.update(utterances_csv=csv, utterances_parquet=pq)
    return paths
