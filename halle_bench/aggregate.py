"""Join the run's rows into `utterances.csv` and the per-bucket `leaderboard.csv`.

Decisions (written down because they move numbers):
- An utterance is `failed` when its generation failed or any configured scorer
  failed on it; its metrics are then left out of every mean (so all metrics of a
  row are computed over the same utterances) but it is counted in `n_failed`.
- `wer` is corpus-level (total edits / total reference words), `wer_macro` the mean
  of per-utterance WER; both fractions. Confidence intervals are seeded percentile
  bootstraps over utterances (`run.n_boot` resamples, seed = run seed).
- `rtf` is total synthesis wall time / total generated audio seconds.
- Other numeric per-utterance scalars of any scorer are averaged into a column of
  the same name (booleans become rates), so a new scorer needs no code here.
- `pause_w1` is the Wasserstein-1 distance between a system's pause lengths and the
  ground-truth system's, within the bucket (NaN without a ground-truth system).
- Buckets are sorted by their lower edge; `all` comes last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .store import read_latest

# Column order of the contract (architecture.md): one list, in exports.py.
from .exports import LEADERBOARD_COLUMNS, UTTERANCE_COLUMNS, bucket_sort_key  # noqa: E402

# Per-utterance values that are aggregated specially (not plain means).
_SPECIAL = {"wer", "cer", "hits", "subs", "dels", "ins", "n_ref_words", "n_ref_chars", "char_errors",
            "sim", "quality", "rtf", "wall_seconds", "audio_seconds", "duration"}


@dataclass
class AggregateResult:
    leaderboard_path: Path
    utterances_path: Path
    positional_path: Path | None
    n_items: int
    n_failed: int
    failures: list[dict[str, Any]]


def bootstrap_ci(values: np.ndarray, n_boot: int, seed: int, stat=np.mean, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap CI of `stat` over the first axis; NaNs when < 2 values."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2 or n_boot <= 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n_boot, len(v)))
    stats = np.array([stat(v[i]) for i in idx]) if stat is not np.mean else v[idx].mean(axis=1)
    return (float(np.quantile(stats, alpha / 2)), float(np.quantile(stats, 1 - alpha / 2)))


def corpus_wer_ci(errors: np.ndarray, words: np.ndarray, n_boot: int, seed: int, alpha: float = 0.05) -> tuple[float, float]:
    if len(errors) < 2 or n_boot <= 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(errors), size=(n_boot, len(errors)))
    e, w = errors[idx].sum(axis=1), words[idx].sum(axis=1)
    s = np.where(w > 0, e / np.maximum(w, 1), np.nan)
    return (float(np.nanquantile(s, alpha / 2)), float(np.nanquantile(s, 1 - alpha / 2)))


def _wer_summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    try:
        from .metrics.wer import summarize
    except ImportError:  # the wer scorer is not installed: fall back to the plain maths
        summarize = _summarize_fallback
    return summarize(rows)


def _summarize_fallback(rows: list[dict[str, Any]]) -> dict[str, float]:
    if not rows:
        return {}
    words = sum(r["n_ref_words"] for r in rows)
    errs = sum(r["subs"] + r["dels"] + r["ins"] for r in rows)
    w = np.array([r["wer"] for r in rows], dtype=float)
    return {"wer": errs / words if words else math.nan, "wer_macro": float(w.mean()),
            "wer_median": float(np.median(w)), "wer_p95": float(np.quantile(w, 0.95)),
            "wer_over_50": float((w > 0.5).mean()),
            "sub_rate": sum(r["subs"] for r in rows) / words if words else math.nan,
            "del_rate": sum(r["dels"] for r in rows) / words if words else math.nan,
            "ins_rate": sum(r["ins"] for r in rows) / words if words else math.nan}


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (int, float, str, bool))


def collect(plan, keys: dict[tuple, str] | None = None) -> tuple[list[dict[str, Any]], dict[tuple, dict[str, dict]]]:
    """Per-utterance rows (one per planned (system, utterance)) and the list-valued extras.

    All disk reading is here: the rows of every writer (local run, shards, Ray workers)
    merged by key (`store.read_latest`), and the current score keys recomputed from the
    plan and the generation rows (`scoring.expected_keys`) unless given."""
    from .scoring import expected_keys

    gen = read_latest(plan.out, "generation", ("system", "id"))
    scores = read_latest(plan.out, "scores", ("system", "id", "scorer"))
    if keys is None:
        keys = expected_keys(plan, gen)
    rows: list[dict[str, Any]] = []
    lists: dict[tuple, dict[str, dict]] = {}
    notes: dict[str, str] = {}
    for system in plan.systems:
        for u in plan.utterances:
            g = gen.get((system.name, u.id)) or {"status": "failed", "error": "not generated"}
            row: dict[str, Any] = {
                "system": system.name, "id": u.id, "bucket": u.bucket, "duration": u.duration,
                "duration_source": u.duration_source, "speaker": u.speaker,
                "status": g.get("status"), "error": g.get("error"),
                "audio_seconds": g.get("audio_seconds"), "wall_seconds": g.get("wall_seconds"), "rtf": g.get("rtf"),
                "timed": g.get("timed"), "startup_seconds": g.get("startup_seconds"),
                "clip_fraction": g.get("clip_fraction"), "generation_notes": g.get("notes"),
                "input_notes": notes.setdefault(u.id, _input_notes(u)),
            }
            errors = []
            if row["status"] == "ok":
                for sname in plan.scorers:
                    s = scores.get((system.name, u.id, sname))
                    if s is None or s.get("key") != keys.get((system.name, u.id, sname)):
                        errors.append(f"{sname}: not scored")
                        continue
                    if s.get("error"):
                        errors.append(f"{sname}: {s['error']}")
                        continue
                    for k, v in (s.get("values") or {}).items():
                        if _is_scalar(v):
                            row[k] = v
                        else:
                            lists.setdefault((system.name, u.id), {})[k] = v
                if errors:
                    row["status"] = "failed"
                    row["error"] = "; ".join(errors)
            rows.append(row)
    return rows, lists


def _input_notes(u) -> str:
    """Conversions applied to this utterance's input files (stereo, sample rate), so that
    a mixed-down or resampled reference is recorded, not silent."""
    from .audio import conversion_note

    parts = [conversion_note(u.audio, "reference"), conversion_note(u.prompt_audio, "prompt")]
    return "; ".join(p for p in parts if p)


def _mean(vals: list[Any]) -> float:
    v = [float(x) for x in vals if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(v)) if v else math.nan


def leaderboard_rows(rows: list[dict[str, Any]], lists: dict[tuple, dict[str, dict]], systems: list,
                     n_boot: int, seed: int) -> list[dict[str, Any]]:
    gt_names = {s.name for s in systems if s.kind == "ground-truth"}
    buckets = sorted({r["bucket"] for r in rows if r["bucket"] is not None}, key=bucket_sort_key) + ["all"]
    extra_keys = sorted({k for r in rows for k, v in r.items()
                         if k not in _SPECIAL and k not in UTTERANCE_COLUMNS and isinstance(v, (int, float, bool))
                         and v is not None})
    out = []
    for system in systems:
        for b in buckets:
            sel = [r for r in rows if r["system"] == system.name and (b == "all" or r["bucket"] == b)]
            if not sel:
                continue
            ok = [r for r in sel if r["status"] == "ok"]
            lb: dict[str, Any] = {"system": system.name, "bucket": b, "n": len(sel), "n_failed": len(sel) - len(ok),
                                  "audio_seconds": float(sum(r["audio_seconds"] or 0 for r in ok))}
            wer_rows = [r for r in ok if r.get("n_ref_words") is not None]
            if wer_rows:
                summary = _wer_summary(wer_rows)
                summary.pop("n", None)  # the bucket's n counts failed utterances too
                if summary.get("cer") is not None and not math.isnan(summary["cer"]):
                    lb["cer"] = summary["cer"]
                lb.update({k: v for k, v in summary.items() if k != "cer"})
                errs = np.array([r["subs"] + r["dels"] + r["ins"] for r in wer_rows], dtype=float)
                words = np.array([r["n_ref_words"] for r in wer_rows], dtype=float)
                lb["wer_ci_low"], lb["wer_ci_high"] = corpus_wer_ci(errs, words, n_boot, seed)
                if all(r.get("char_errors") is not None and r.get("n_ref_chars") for r in wer_rows):
                    lb["cer"] = sum(r["char_errors"] for r in wer_rows) / sum(r["n_ref_chars"] for r in wer_rows)
                for k in ("asr_model", "normalizer"):
                    lb[k] = wer_rows[0].get(k)
            for col in ("sim", "quality"):
                vals = np.array([r[col] for r in ok if r.get(col) is not None], dtype=float)
                if len(vals):
                    lb[col] = float(vals.mean())
                    lb[f"{col}_ci_low"], lb[f"{col}_ci_high"] = bootstrap_ci(vals, n_boot, seed)
                    lb[f"{col}_model"] = next(r.get(f"{col}_model") for r in ok if r.get(col) is not None)
            wall = sum(r["wall_seconds"] or 0 for r in ok)
            lb["rtf"] = wall / lb["audio_seconds"] if lb["audio_seconds"] else math.nan
            for k in extra_keys:
                vals = [r.get(k) for r in ok if isinstance(r.get(k), (int, float, bool))]
                if vals:
                    lb[k] = _mean(vals)
            if gt_names and any("pauses" in lists.get((r["system"], r["id"]), {}) for r in ok):
                gt = [p for r in rows if r["system"] in gt_names and r["status"] == "ok" and (b == "all" or r["bucket"] == b)
                      for p in lists.get((r["system"], r["id"]), {}).get("pauses", [])]
                mine = [p for r in ok for p in lists.get((r["system"], r["id"]), {}).get("pauses", [])]
                if gt and mine:
                    from scipy.stats import wasserstein_distance

                    lb["pause_w1"] = float(wasserstein_distance(mine, gt))
            out.append(lb)
    return out


def positional_rows(rows: list[dict[str, Any]], lists: dict[tuple, dict[str, dict]], window_seconds: float = 30.0) -> list[dict[str, Any]]:
    """WER by position within the utterance, summed over each (system, bucket)."""
    acc: dict[tuple, list[list[float]]] = {}
    for r in rows:
        if r["status"] != "ok":
            continue
        extra = lists.get((r["system"], r["id"]), {})
        pe, pw = extra.get("pos_errors"), extra.get("pos_words")
        if not pe or not pw:
            continue
        for b in (r["bucket"], "all"):
            a = acc.setdefault((r["system"], b), [[], []])
            for i, (e, w) in enumerate(zip(pe, pw)):
                while len(a[0]) <= i:
                    a[0].append(0.0)
                    a[1].append(0.0)
                a[0][i] += e
                a[1][i] += w
    out = []
    # Systems in config order (as in the leaderboard, so plots keep their colours).
    order = {s: i for i, s in enumerate(dict.fromkeys(r["system"] for r in rows))}
    for (system, b), (errs, words) in sorted(acc.items(), key=lambda kv: (order[kv[0][0]], bucket_sort_key(kv[0][1]))):
        for i, (e, w) in enumerate(zip(errs, words)):
            out.append({"system": system, "bucket": b, "window": i, "start_seconds": i * window_seconds,
                        "errors": e, "words": w, "wer": e / w if w else math.nan})
    return out


def _ordered(df_rows: list[dict[str, Any]], first: list[str]):
    import pandas as pd

    df = pd.DataFrame(df_rows)
    for c in first:
        if c not in df.columns:
            df[c] = np.nan
    rest = sorted(c for c in df.columns if c not in first)
    return df[first + rest]


def aggregate(plan, keys: dict[tuple, str] | None = None) -> AggregateResult:
    rows, lists = collect(plan, keys)
    seed = plan.config.run.seed
    lb = leaderboard_rows(rows, lists, plan.systems, plan.config.run.n_boot, seed)
    out = plan.out
    udf = _ordered(rows, UTTERANCE_COLUMNS)
    udf.to_csv(_tmp(out / "utterances.csv"), index=False, float_format="%.6g")
    _tmp(out / "utterances.csv").replace(out / "utterances.csv")
    ldf = _ordered(lb, LEADERBOARD_COLUMNS)
    ldf.to_csv(_tmp(out / "leaderboard.csv"), index=False, float_format="%.6g")
    _tmp(out / "leaderboard.csv").replace(out / "leaderboard.csv")
    window = float((plan.scorers.get("wer").settings() if "wer" in plan.scorers else {}).get("window_seconds", 30.0) or 30.0)
    pos = positional_rows(rows, lists, window)
    ppath = None
    if pos:
        import pandas as pd

        ppath = out / "positional.csv"
        pd.DataFrame(pos).to_csv(ppath, index=False, float_format="%.6g")
    failures = [{"system": r["system"], "id": r["id"], "bucket": r["bucket"], "error": r["error"]}
                for r in rows if r["status"] != "ok"]
    return AggregateResult(out / "leaderboard.csv", out / "utterances.csv", ppath, len(rows), len(failures), failures)


def _tmp(p: Path) -> Path:
    return p.with_name(p.name + ".tmp")
