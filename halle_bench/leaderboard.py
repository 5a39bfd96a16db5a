"""The leaderboard and the positional table from per-utterance rows, as pure functions.

Every metric column comes from a declaration (`metric_registry.metric_declarations()`):
its rows (failed generations included for the WER family, where they carry all-deleted
values; successes only otherwise), its value from summed sufficient statistics or its
own `compute` (pause lengths), its count column and its CI (clustered by speaker,
per-cell seed, none under 5 utterances). A value that cannot be computed says why in
`notes`. Numeric per-utterance scalars that no declaration claims are averaged over
successes into a column of the same name (booleans become rates): they stay in the
CSV, and nothing shows, plots or gates them.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from .cell_stats import MIN_CI_N, cell_seed, percentile_ci
from .metric_registry import (as_float, claimed_columns, metric_declarations, provenance_columns, source_columns,
                              sufficient, usable, weighted_value)

# The runner's per-utterance columns: identities, texts and timing, never averaged generically.
_RUNNER_COLUMNS = {"duration", "audio_seconds", "wall_seconds", "startup_seconds", "timed"}


def bucket_sort_key(label: Any) -> tuple[int, float, str]:
    from .exports import bucket_sort_key as key

    return key(label)


def columns(rows: Sequence[dict[str, Any]], names: Iterable[str], present: set[str] | None = None) -> dict[str, np.ndarray]:
    """Float arrays of the given per-utterance columns (missing / text -> NaN, bool -> 0/1);
    a column is there when some row has it, or when it is in `present` (the whole run's)."""
    return {c: np.array([as_float(r.get(c)) for r in rows], dtype=np.float64)
            for c in names if (present is not None and c in present) or any(c in r for r in rows)}


def _seconds(rows, col) -> float:
    v = [as_float(r.get(col)) for r in rows]
    v = [x for x in v if math.isfinite(x)]
    return float(sum(v))


def cell_values(sel: Sequence[dict[str, Any]], system: str, bucket: str, n_boot: int, seed: int,
                notes: list[str], present: set[str] | None = None,
                lists: dict[tuple, dict[str, Any]] | None = None,
                system_rows: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every declared metric of one (system, bucket) cell, with counts and CIs; `present`:
    the columns the run has anywhere (a cell where all failed still gets `n_sim` 0)."""
    ok = np.array([r.get("status") == "ok" for r in sel], dtype=bool)
    data = columns(sel, source_columns(), present)
    speakers = [r.get("speaker") for r in sel]
    out: dict[str, Any] = {}
    short_ci = []
    for m in metric_declarations():
        if m.kind == "custom":
            v, n_used, why = m.compute(list(sel), lists or {}, list(system_rows if system_rows is not None else sel))
            if math.isfinite(v):
                out[m.name] = float(v)
            elif why:
                notes.append(f"{m.name} {why}")
            continue
        mask = usable(m, data, ok)
        n_used = int(mask.sum())
        if m.count_column and (m.count_column not in out or m.name == m.count_column.removeprefix("n_")):
            if any(c in data for c in m.columns):
                out[m.count_column] = n_used
        if n_used == 0:
            continue
        suff = sufficient(m, {c: data[c][mask] for c in m.columns})
        out[m.name] = float(weighted_value(m, suff, np.ones(n_used)))
        if m.ci_columns:
            spk = [s for s, k in zip(speakers, mask) if k]
            lo, hi = percentile_ci(lambda w: weighted_value(m, suff, w), spk, n_used, n_boot,
                                   cell_seed(seed, system, bucket, m.name))
            out[m.ci_columns[0]], out[m.ci_columns[1]] = lo, hi
            if n_used < MIN_CI_N and n_boot > 0:
                short_ci.append(m.name)
    if short_ci:
        notes.append(f"no CI for {', '.join(short_ci)}: under {MIN_CI_N} utterances")
    return out


def leaderboard_rows(rows: list[dict[str, Any]], systems: Sequence[tuple[str, str]], n_boot: int, seed: int,
                     lists: dict[tuple, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per (system, bucket) plus bucket "all"; `systems` = [(name, kind)] in order."""
    lists = lists or {}
    buckets = sorted({str(r["bucket"]) for r in rows if r.get("bucket") is not None}, key=bucket_sort_key) + ["all"]
    decls = metric_declarations()
    claimed = claimed_columns() | _RUNNER_COLUMNS | set(provenance_columns())
    units = list(dict.fromkeys(m.units_column for m in decls if m.units_column))
    present = {k for r in rows for k, v in r.items() if v is not None}
    extra_keys = sorted({k for r in rows for k, v in r.items() if k not in claimed
                         and isinstance(v, (int, float, bool)) and not isinstance(v, str)} - _id_columns())
    flagged = [m for m in decls if m.flag_note and m.columns]
    out = []
    for name, _kind in systems:
        mine_all = [r for r in rows if r["system"] == name]
        for b in buckets:
            sel = [r for r in mine_all if b == "all" or str(r["bucket"]) == b]
            if not sel:
                continue
            ok = [r for r in sel if r.get("status") == "ok"]
            notes: list[str] = []
            lb: dict[str, Any] = {"system": name, "bucket": b, "n": len(sel), "n_failed": len(sel) - len(ok),
                                  "n_score_errors": sum(1 for r in sel if r.get("score_errors")),
                                  "audio_seconds": _seconds(ok, "audio_seconds")}
            lb.update(cell_values(sel, name, b, n_boot, seed, notes, present, lists, mine_all))
            for u in units:  # the denominators behind ratio metrics (reference words), summed
                vals = [as_float(r.get(u)) for r in sel]
                if any(math.isfinite(w) for w in vals):
                    lb[u] = float(sum(w for w in vals if math.isfinite(w)))
            for col in provenance_columns():
                vals = list(dict.fromkeys(str(r[col]) for r in sel if r.get(col) not in (None, "")
                                          and not (isinstance(r.get(col), float) and math.isnan(r[col]))))
                if vals:
                    lb[col] = "; ".join(vals)
            for k in extra_keys:
                vals = [as_float(r.get(k)) for r in ok]
                vals = [v for v in vals if math.isfinite(v)]
                if vals:
                    lb[k] = float(np.mean(vals))
            for m in flagged:  # e.g. clipping: how many utterances have a non-zero value
                k = sum(1 for r in ok if as_float(r.get(m.columns[0])) > 0)
                if k:
                    notes.append(m.flag_note.format(k=k))
            counted = [m for m in decls if m.counts_failures and m.count_column and m.name in lb]
            if lb["n_failed"] and counted:
                notes.append(f"{lb['n_failed']} failed generation(s) counted as all-deleted in {counted[0].name} "
                             f"and the metrics counted over n_{counted[0].name}")
            if notes:
                lb["notes"] = "; ".join(notes)
            out.append(lb)
    return out


def _id_columns() -> set[str]:
    return {"system", "id", "bucket", "speaker", "text", "status", "error", "score_errors", "input_notes",
            "generation_notes",
            "duration_source",
            "ref_norm", "hyp_norm", "run"}


def positional_metrics():
    """Declarations with a by-position series (`Metric.positional`)."""
    return [m for m in metric_declarations() if m.positional]


def positional_columns() -> list[str]:
    """positional.csv's columns: per declared positional metric, a ratio's summed
    numerator / denominator (`<name>_num`, `<name>_den`) or a mean, and `n_<name>`
    (the utterances behind the slice)."""
    cols = ["system", "bucket", "window", "start_seconds"]
    for m in positional_metrics():
        cols += ([f"{m.name}_num", f"{m.name}_den"] if len(m.positional) == 2 else []) + [m.name, f"n_{m.name}"]
    return cols


def positional_rows(rows: list[dict[str, Any]], lists: dict[tuple, dict[str, Any]],
                    window_seconds: float = 30.0) -> list[dict[str, Any]]:
    """By position within long utterances (two slices or more), per (system, bucket), for
    each declared positional metric: a ratio per slice from summed numerators and
    denominators (WER per 30 s of the reference), or the mean per slice (window similarity
    and quality per 30 s of the generated audio), over successful generations, with the
    number of utterances behind each value."""
    decls = positional_metrics()
    acc: dict[tuple, dict[int, dict[str, float]]] = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        extra = lists.get((r["system"], r["id"]), {})
        series: dict[str, list] = {}
        for m in decls:
            vals = [extra.get(c) for c in m.positional]
            if not all(isinstance(v, list) for v in vals) or len({len(v) for v in vals}) != 1 or len(vals[0]) < 2:
                continue
            series[m.name] = list(zip(*vals))
        if not series:
            continue
        for b in (str(r["bucket"]), "all"):
            cell = acc.setdefault((r["system"], b), {})
            for name, vals in series.items():
                for i, v in enumerate(vals):
                    if not all(math.isfinite(as_float(x)) for x in v):
                        continue
                    c = cell.setdefault(i, {})
                    c[f"{name}_num"] = c.get(f"{name}_num", 0.0) + float(v[0])
                    c[f"{name}_den"] = c.get(f"{name}_den", 0.0) + (float(v[1]) if len(v) == 2 else 1.0)
                    c[f"n_{name}"] = c.get(f"n_{name}", 0) + 1
    order = {s: i for i, s in enumerate(dict.fromkeys(r["system"] for r in rows))}
    out = []
    for (system, b), cell in sorted(acc.items(), key=lambda kv: (order[kv[0][0]], bucket_sort_key(kv[0][1]))):
        for i in sorted(cell):
            c = cell[i]
            row: dict[str, Any] = {"system": system, "bucket": b, "window": i, "start_seconds": i * window_seconds}
            for m in decls:
                num, den = c.get(f"{m.name}_num", math.nan), c.get(f"{m.name}_den", 0.0)
                if len(m.positional) == 2:
                    row[f"{m.name}_num"], row[f"{m.name}_den"] = num, (den if den else math.nan)
                row[m.name] = num / den if den else math.nan
                row[f"n_{m.name}"] = c.get(f"n_{m.name}", 0)
            out.append(row)
    return out


def __getattr__(name: str):
    if name == "POSITIONAL_COLUMNS":  # back-compatibility: a snapshot of positional_columns()
        return positional_columns()
    raise AttributeError(name)


__all__ = ["leaderboard_rows", "positional_rows", "positional_columns", "positional_metrics", "cell_values",
           "columns"]
