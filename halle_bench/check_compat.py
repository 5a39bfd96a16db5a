"""Comparability of two leaderboards: the same ASR model, normaliser, speaker and quality
models and scorer versions, or the comparison means nothing.

Only the scorers whose metrics are gated count (`scorers`; None: every scorer, which
`check` uses for notes). For each, a different provenance value
(the declarations' `model_column` / `provenance`, e.g. asr_model, normalizer) on the
cells both have, or a different version in `scorer_versions`, is a mismatch; so is a
provenance column the baseline records and the candidate drops while it still has that
scorer's metrics. A scorer the candidate did not run at all is no mismatch: its metrics
are missing, and the gate says so per metric. `check` refuses a mismatch (exit 2)
unless the user passes `--allow-mismatch`, and then its report says so. A column only
the candidate has (an older baseline) is a note, not a mismatch.
"""

from __future__ import annotations

import math

import pandas as pd

from .metric_registry import metric_declarations, provenance_scorers


def _val(v) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    s = str(v).strip()
    return s or None


def parse_versions(text: str | None) -> dict[str, str]:
    """"longform@2 sim@2 wer@3" -> {"longform": "2", "sim": "2", "wer": "3"}."""
    out = {}
    for tok in (text or "").split():
        name, _, ver = tok.partition("@")
        out[name] = ver
    return out


def _has_scorer(df: pd.DataFrame, scorer: str) -> bool:
    cols = [m.name for m in metric_declarations() if m.scorer == scorer]
    return any(c in df.columns and pd.to_numeric(df[c], errors="coerce").notna().any() for c in cols)


def mismatches(base: pd.DataFrame, cand: pd.DataFrame, cells: list[tuple[str, str]],
               scorers: set[str] | None = None) -> tuple[list[str], list[str]]:
    """(mismatch messages, notes) over the common cells of two leaderboards indexed by (system, bucket)."""
    found: dict[tuple[str, str, str], list[str]] = {}
    notes = []
    owner = provenance_scorers()
    for col, scorer in owner.items():
        if scorers is not None and scorer not in scorers:
            continue
        in_b, in_c = col in base.columns, col in cand.columns
        if in_b and not in_c:
            if base[col].map(_val).notna().any() and _has_scorer(cand, scorer):
                found.setdefault((col, "recorded", "absent"), []).append("all")
            continue
        if in_c and not in_b:
            notes.append(f"the baseline does not record `{col}` (an older leaderboard): not compared")
            continue
        if not in_b:
            continue
        for cell in cells:
            b, c = _val(base.loc[cell, col]), _val(cand.loc[cell, col])
            if b is not None and c is not None and b != c:
                found.setdefault((col, b, c), []).append(f"{cell[0]}/{cell[1]}")
    if "scorer_versions" in base.columns:
        for cell in cells:
            bv = parse_versions(_val(base.loc[cell, "scorer_versions"]))
            raw = _val(cand.loc[cell, "scorer_versions"]) if "scorer_versions" in cand.columns else None
            if bv and raw is None:
                found.setdefault(("scorer_versions", " ".join(f"{k}@{v}" for k, v in sorted(bv.items())), "absent"),
                                 []).append(f"{cell[0]}/{cell[1]}")
                continue
            cv = parse_versions(raw)
            for name in sorted(set(bv) & set(cv)):
                if (scorers is None or name in scorers) and bv[name] != cv[name]:
                    found.setdefault(("scorer_versions", f"{name}@{bv[name]}", f"{name}@{cv[name]}"),
                                     []).append(f"{cell[0]}/{cell[1]}")
    msgs = []
    for (col, b, c), where in found.items():
        systems = sorted({w.split("/")[0] for w in where})
        msgs.append(f"{col}: baseline `{b}` vs candidate `{c}` ({', '.join(systems)})")
    return msgs, notes


__all__ = ["mismatches", "parse_versions"]
