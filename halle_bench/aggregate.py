"""Join the run's rows into `utterances.csv`, the per-bucket `leaderboard.csv` and `positional.csv`.

Decisions (written down because they move numbers; the maths is in leaderboard.py and
metric_registry.py, what each metric is in its declaration beside its scorer):
- A failed generation (crash, timeout, no output, silence) stays `failed` and counts
  against the system: in the WER family it is all-deleted (its reference words,
  normalised with the run's WER normaliser, are deletions; `wer` 1.0), so `wer`,
  `wer_macro`, `cer` and the sub/del/ins rates cover every attempted utterance and a
  bucket where everything failed shows 1.0. `wer_ok` is WER over the successes.
  Similarity, quality and the other metrics are averaged over successes, and `n_sim`,
  `n_quality`, ... say over how many.
- A scorer error on one item (or a score row missing / stale for the current key)
  leaves only that scorer's columns empty for the item; the reason is in
  `score_errors`, the generation status stays `ok` and the other metrics keep it.
- `rtf` = sum(wall_seconds) / sum(audio_seconds) over the rows whose wall time is
  known (a failed or timed-out item's time counts, its audio is 0); ground-truth and
  wavdir rows (and rows with `timed` false) have no wall time, so their rtf is empty.
  `startup_seconds` (a command/model system's one-time start-up) is reported apart.
- CIs: percentile bootstrap clustered by speaker, seeded per (run seed, system, bucket,
  metric), none under 5 utterances (empty cell + `notes`).

All reading of the run directory happens in `collect()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .exports import UTTERANCE_COLUMNS
from .leaderboard import leaderboard_rows, positional_columns, positional_rows
from .metric_registry import leaderboard_columns
from .scoring import expected_keys
from .store import read_latest

UNTIMED_KINDS = {"ground-truth", "wavdir"}


@dataclass
class AggregateResult:
    leaderboard_path: Path
    utterances_path: Path
    positional_path: Path | None
    n_items: int
    n_failed: int  # failed generations
    failures: list[dict[str, Any]]
    score_errors: list[dict[str, Any]] = field(default_factory=list)


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (int, float, str, bool))


def collect(plan, keys: dict[tuple, str] | None = None) -> tuple[list[dict[str, Any]], dict[tuple, dict[str, Any]]]:
    """Per-utterance rows (one per planned (system, utterance)) and their list-valued extras.

    The only function that reads the run directory. `keys` (system, id, scorer) -> cache
    key; when None they are recomputed from the plan, and without that a score row is
    taken as it is."""
    gen = read_latest(plan.out, "generation", ("system", "id"))
    scores = read_latest(plan.out, "scores", ("system", "id", "scorer"))
    if keys is None:
        keys = expected_keys(plan, gen)
    rows: list[dict[str, Any]] = []
    lists: dict[tuple, dict[str, Any]] = {}
    notes: dict[str, str] = {}
    wer_fill = failure_filler(plan)
    for system in plan.systems:
        for u in plan.utterances:
            g = gen.get((system.name, u.id)) or {"status": "failed", "error": "not generated"}
            row: dict[str, Any] = {
                "system": system.name, "id": u.id, "bucket": u.bucket, "duration": u.duration,
                "duration_source": u.duration_source, "speaker": u.speaker, "text": u.text,
                "status": g.get("status"), "error": g.get("error"),
                "audio_seconds": g.get("audio_seconds"), "wall_seconds": g.get("wall_seconds"), "rtf": g.get("rtf"),
                "input_notes": notes.setdefault(u.id, _input_notes(u)),
            }
            for k in ("startup_seconds", "timed", "clip_fraction"):
                if k in g:
                    row[k] = g[k]
            if g.get("notes"):  # e.g. the runner's clipping note
                row["generation_notes"] = g["notes"]
            _timing(row, system.kind)
            errors = []
            if row["status"] == "ok":
                for sname in plan.scorers:
                    s = scores.get((system.name, u.id, sname))
                    if s is None or (keys is not None and s.get("key") != keys.get((system.name, u.id, sname))):
                        errors.append(f"{sname}: not scored")
                        continue
                    if s.get("error"):
                        errors.append(f"{sname}: {s['error']}")
                        continue
                    row[f"{sname}_version"] = s.get("version")
                    for k, v in (s.get("values") or {}).items():
                        if _is_scalar(v):
                            row[k] = v
                        else:
                            lists.setdefault((system.name, u.id), {})[k] = v
                row["score_errors"] = "; ".join(errors) or None
            elif wer_fill is not None:
                row.update(wer_fill(u.text))
            row["scorer_versions"] = _versions(row, plan.scorers)
            rows.append(row)
    return rows, lists


def _versions(row: dict[str, Any], scorers) -> str | None:
    """`wer@2 sim@1 ...`: the scorer versions behind a row (the leaderboard carries them
    so that `check` can refuse to compare numbers made by different maths)."""
    parts = []
    for name, sc in scorers.items():
        v = row.pop(f"{name}_version", None) or getattr(sc, "version", None)
        if v is not None:
            parts.append(f"{name}@{v}")
    return " ".join(sorted(parts)) or None


def _timing(row: dict[str, Any], kind: str) -> None:
    """Untimed systems (ground truth, pre-generated audio) have no synthesis time; a
    failed item has no audio but its time counts (a timeout costs its wall time)."""
    if kind in UNTIMED_KINDS or row.get("timed") is False:
        row["wall_seconds"] = row["rtf"] = None
    if row["status"] != "ok" and row.get("wall_seconds") is not None and row.get("audio_seconds") is None:
        row["audio_seconds"] = 0.0


def failure_filler(plan):
    """text -> the WER columns of an all-deleted utterance, with the run's normaliser;
    None when the run has no WER scorer."""
    sc = (getattr(plan, "scorers", None) or {}).get("wer")
    if sc is None:
        return None
    norm = getattr(sc, "normalizer", None)
    if norm is None:
        from .metrics.normalizers import get_normalizer

        norm = get_normalizer(str((sc.settings() or {}).get("normalizer", "whisper-en")))
    return lambda text: failed_wer_values(text or "", norm)


def failed_wer_values(text: str, normalizer) -> dict[str, Any]:
    """A failed generation in the WER family: every reference word deleted (wer 1.0)."""
    ref = normalizer(text)
    n_words, n_chars = len(ref.split()), len(ref.strip())
    if not n_words:
        return {}
    return {"wer": 1.0, "cer": 1.0, "hits": 0, "subs": 0, "dels": n_words, "ins": 0, "n_ref_words": n_words,
            "n_ref_chars": n_chars, "char_errors": n_chars, "ref_norm": ref, "hyp_norm": "",
            "normalizer": getattr(normalizer, "id", None)}


def _input_notes(u) -> str:
    """Conversions applied to this utterance's input files (stereo, sample rate), so that
    a mixed-down or resampled reference is recorded, not silent."""
    from .audio import conversion_note

    parts = [conversion_note(u.audio, "reference"), conversion_note(u.prompt_audio, "prompt")]
    return "; ".join(p for p in parts if p)


def _ordered(df_rows: list[dict[str, Any]], first: list[str]):
    import pandas as pd

    df = pd.DataFrame(df_rows)
    for c in first:
        if c not in df.columns:
            df[c] = np.nan
    rest = sorted(c for c in df.columns if c not in first)
    return df[first + rest]


def _write_csv(df, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False, float_format="%.6g")
    tmp.replace(path)


def _slice_seconds(plan) -> float:
    """Width of positional.csv's slices: the `window_seconds` setting of the scorer behind
    the first declared by-position ratio (WER per 30 s of the reference), else 30 s."""
    from .leaderboard import positional_metrics

    for m in positional_metrics():
        sc = (getattr(plan, "scorers", None) or {}).get(m.scorer)
        if sc is not None and len(m.positional) == 2:
            return float((sc.settings() or {}).get("window_seconds", 30.0) or 30.0)
    return 30.0


def aggregate(plan, keys: dict[tuple, str] | None = None) -> AggregateResult:
    """Write utterances.csv, leaderboard.csv and positional.csv of the plan's run directory."""
    rows, lists = collect(plan, keys)
    systems = [(s.name, s.kind) for s in plan.systems]
    lb = leaderboard_rows(rows, systems, plan.config.run.n_boot, plan.config.run.seed, lists)
    out = plan.out
    _write_csv(_ordered(rows, UTTERANCE_COLUMNS), out / "utterances.csv")
    _write_csv(_ordered(lb, leaderboard_columns()), out / "leaderboard.csv")
    window = _slice_seconds(plan)
    pos = positional_rows(rows, lists, window)
    ppath = out / "positional.csv"  # always written (header only when no utterance is long)
    _write_csv(_ordered(pos, positional_columns()), ppath)
    failures = [{"system": r["system"], "id": r["id"], "bucket": r["bucket"], "error": r["error"]}
                for r in rows if r["status"] != "ok"]
    score_errors = [{"system": r["system"], "id": r["id"], "bucket": r["bucket"], "error": r["score_errors"]}
                    for r in rows if r.get("score_errors")]
    return AggregateResult(out / "leaderboard.csv", out / "utterances.csv", ppath, len(rows), len(failures), failures,
                           score_errors)


__all__ = ["AggregateResult", "aggregate", "collect", "failed_wer_values", "failure_filler"]
