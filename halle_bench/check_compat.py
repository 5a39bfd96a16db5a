"""Comparability of two leaderboards: the same ASR model, normaliser, speaker and quality
models and scorer versions, or the comparison means nothing.

A difference in any `PROVENANCE_COLUMNS` value between the baseline and the candidate
(on the (system, bucket) cells both have), or a provenance column the baseline records
and the candidate does not, is a mismatch. `check` refuses it (exit 2) unless the user
passes `--allow-mismatch`, and then its report says so. A column only the candidate has
(an older baseline) is a note, not a mismatch: there is nothing to compare it with.
"""

from __future__ import annotations

import math

import pandas as pd

from .metric_registry import PROVENANCE_COLUMNS


def _val(v) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    s = str(v).strip()
    return s or None


def mismatches(base: pd.DataFrame, cand: pd.DataFrame, cells: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(mismatch messages, notes) over the common cells of two leaderboards indexed by (system, bucket)."""
    found: dict[tuple[str, str, str], list[str]] = {}
    notes = []
    for col in PROVENANCE_COLUMNS:
        in_b, in_c = col in base.columns, col in cand.columns
        if in_b and not in_c:
            if base[col].map(_val).notna().any():
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
            elif b is not None and c is None and col == "scorer_versions":
                found.setdefault((col, b, "absent"), []).append(f"{cell[0]}/{cell[1]}")
    msgs = []
    for (col, b, c), where in found.items():
        systems = sorted({w.split("/")[0] for w in where})
        msgs.append(f"{col}: baseline `{b}` vs candidate `{c}` ({', '.join(systems)})")
    return msgs, notes


__all__ = ["mismatches"]
