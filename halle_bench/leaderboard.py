"""The leaderboard and the positional table from per-utterance rows, as pure functions.

Every metric column comes from `metric_registry.METRICS`: its rows (failed
generations included for the WER family, where they carry all-deleted values;
successes only otherwise), its value from summed sufficient statistics, its count
column and its CI (clustered by speaker, per-cell seed, none under 5 utterances).
Numeric per-utterance scalars that no entry declares are averaged over successes
into a column of the same name (booleans become rates), so an unknown scorer's
columns still reach the leaderboard.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from .cell_stats import MIN_CI_N, cell_seed, percentile_ci
from .metric_registry import METRICS, PROVENANCE_COLUMNS, source_columns, sufficient, usable, weighted_value

# Per-utterance columns that are identities, texts or timing, never averaged generically.
_NOT_AVERAGED = {"duration", "audio_seconds", "wall_seconds", "rtf", "startup_seconds", "timed", "hits",
                 "n_ref_chars", "char_errors", "subs", "dels", "ins", "n_ref_words", "wer", "cer"}


def bucket_sort_key(label: Any) -> tuple[int, float, str]:
    from .exports import bucket_sort_key as key

    return key(label)


def as_float(v: Any) -> float:
    if v is None or isinstance(v, str):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


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
                notes: list[str], present: set[str] | None = None) -> dict[str, Any]:
    """Every registry metric of one (system, bucket) cell, with counts and CIs; `present`:
    the columns the run has anywhere (a cell where all failed still gets `n_sim` 0)."""
    ok = np.array([r.get("status") == "ok" for r in sel], dtype=bool)
    data = columns(sel, source_columns(), present)
    speakers = [r.get("speaker") for r in sel]
    out: dict[str, Any] = {}
    short_ci = []
    for m in METRICS.values():
        mask = usable(m, data, ok)
        n_used = int(mask.sum())
        if m.count_column and (m.count_column not in out or m.name == m.count_column.removeprefix("n_")):
            if any(c in data for c in m.source):
                out[m.count_column] = n_used
        if n_used == 0:
            continue
        suff = sufficient(m, {c: data[c][mask] for c in m.source})
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
    gt_names = {name for name, kind in systems if kind == "ground-truth"}
    buckets = sorted({str(r["bucket"]) for r in rows if r.get("bucket") is not None}, key=bucket_sort_key) + ["all"]
    declared = source_columns() | set(METRICS)
    present = {k for r in rows for k, v in r.items() if v is not None}
    extra_keys = sorted({k for r in rows for k, v in r.items() if k not in declared and k not in _NOT_AVERAGED
                         and isinstance(v, (int, float, bool)) and not isinstance(v, str)} - _id_columns())
    out = []
    for name, _kind in systems:
        mine_all = [r for r in rows if r["system"] == name]
        startup = [as_float(r.get("startup_seconds")) for r in mine_all]
        startup = [x for x in startup if math.isfinite(x)]
        for b in buckets:
            sel = [r for r in mine_all if b == "all" or str(r["bucket"]) == b]
            if not sel:
                continue
            ok = [r for r in sel if r.get("status") == "ok"]
            notes: list[str] = []
            lb: dict[str, Any] = {"system": name, "bucket": b, "n": len(sel), "n_failed": len(sel) - len(ok),
                                  "n_score_errors": sum(1 for r in sel if r.get("score_errors")),
                                  "audio_seconds": _seconds(ok, "audio_seconds")}
            lb.update(cell_values(sel, name, b, n_boot, seed, notes, present))
            words = [as_float(r.get("n_ref_words")) for r in sel]
            if any(math.isfinite(w) for w in words):
                lb["n_ref_words"] = float(sum(w for w in words if math.isfinite(w)))
            if startup:
                lb["startup_seconds"] = max(startup)
            for col in PROVENANCE_COLUMNS:
                vals = list(dict.fromkeys(str(r[col]) for r in sel if r.get(col) not in (None, "")
                                          and not (isinstance(r.get(col), float) and math.isnan(r[col]))))
                if vals:
                    lb[col] = "; ".join(vals)
            for k in extra_keys:
                vals = [as_float(r.get(k)) for r in ok]
                vals = [v for v in vals if math.isfinite(v)]
                if vals:
                    lb[k] = float(np.mean(vals))
            pw = _pause_w1(rows, lists, ok, gt_names, b)
            if pw is not None:
                lb["pause_w1"] = pw
            clipped = sum(1 for r in ok if as_float(r.get("clip_fraction")) > 0)
            if clipped:
                notes.append(f"{clipped} utterance(s) with samples at full scale (clip_fraction > 0)")
            if lb["n_failed"] and "wer" in lb:
                notes.append(f"{lb['n_failed']} failed generation(s) counted as all-deleted in the WER family")
            if notes:
                lb["notes"] = "; ".join(notes)
            out.append(lb)
    return out


def _id_columns() -> set[str]:
    return {"system", "id", "bucket", "speaker", "status", "error", "score_errors", "input_notes", "generation_notes",
            "duration_source",
            "ref_norm", "hyp_norm", "run"}


def _pause_w1(rows, lists, ok, gt_names, b) -> float | None:
    """Wasserstein-1 distance between this cell's pause lengths and the ground truth's."""
    if not gt_names or not any("pauses" in lists.get((r["system"], r["id"]), {}) for r in ok):
        return None
    gt = [p for r in rows if r["system"] in gt_names and r.get("status") == "ok" and (b == "all" or str(r["bucket"]) == b)
          for p in lists.get((r["system"], r["id"]), {}).get("pauses", [])]
    mine = [p for r in ok for p in lists.get((r["system"], r["id"]), {}).get("pauses", [])]
    if not (gt and mine):
        return None
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(mine, gt))


def positional_rows(rows: list[dict[str, Any]], lists: dict[tuple, dict[str, Any]],
                    window_seconds: float = 30.0) -> list[dict[str, Any]]:
    """By position within long utterances (two slices or more), per (system, bucket):
    WER per 30 s of the reference (errors / words summed), and the mean window similarity
    and quality per 30 s of the generated audio (`pos_sim`, `pos_quality`), over
    successful generations, with the number of utterances behind each value."""
    acc: dict[tuple, dict[int, dict[str, float]]] = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        extra = lists.get((r["system"], r["id"]), {})
        pe, pw = extra.get("pos_errors"), extra.get("pos_words")
        series = {}
        if isinstance(pe, list) and isinstance(pw, list) and len(pe) == len(pw) and len(pe) >= 2:
            series["wer"] = list(zip(pe, pw))
        for key, col in (("pos_sim", "sim"), ("pos_quality", "quality")):
            v = extra.get(key)
            if isinstance(v, list) and len(v) >= 2:
                series[col] = v
        if not series:
            continue
        for b in (str(r["bucket"]), "all"):
            cell = acc.setdefault((r["system"], b), {})
            for col, vals in series.items():
                for i, v in enumerate(vals):
                    c = cell.setdefault(i, {})
                    if col == "wer":
                        c["errors"] = c.get("errors", 0.0) + float(v[0])
                        c["words"] = c.get("words", 0.0) + float(v[1])
                        c["n_utterances"] = c.get("n_utterances", 0) + 1
                    elif v is not None and math.isfinite(as_float(v)):
                        c[f"{col}_sum"] = c.get(f"{col}_sum", 0.0) + float(v)
                        c[f"n_{col}"] = c.get(f"n_{col}", 0) + 1
    order = {s: i for i, s in enumerate(dict.fromkeys(r["system"] for r in rows))}
    out = []
    for (system, b), cell in sorted(acc.items(), key=lambda kv: (order[kv[0][0]], bucket_sort_key(kv[0][1]))):
        for i in sorted(cell):
            c = cell[i]
            row = {"system": system, "bucket": b, "window": i, "start_seconds": i * window_seconds,
                   "errors": c.get("errors", math.nan), "words": c.get("words", math.nan),
                   "n_utterances": c.get("n_utterances", 0),
                   "wer": c["errors"] / c["words"] if c.get("words") else math.nan}
            for col in ("sim", "quality"):
                n = c.get(f"n_{col}", 0)
                row[col] = c[f"{col}_sum"] / n if n else math.nan
                row[f"n_{col}"] = n
            out.append(row)
    return out


POSITIONAL_COLUMNS = ["system", "bucket", "window", "start_seconds", "errors", "words", "n_utterances", "wer",
                      "sim", "n_sim", "quality", "n_quality"]

__all__ = ["leaderboard_rows", "positional_rows", "cell_values", "columns", "POSITIONAL_COLUMNS"]
