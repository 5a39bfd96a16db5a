"""The markdown diff that `halle-bench check` prints (pure: rows in, text out)."""

from __future__ import annotations

import math
from pathlib import Path

from .exports import bucket_sort_key


def _f(v: float | None, signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:+.4g}" if signed else f"{v:.4g}"


def _p(v: float | None) -> str:
    if v is None:
        return "–"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


BAD = ("regressed", "missing")
_ORDER = {"missing": 0, "regressed": 0, "worse (n.s.)": 1, "improved": 2, "better (n.s.)": 3, "info": 4}


def render_markdown(rows: list, candidate: Path, baseline: Path, paired: bool, notes: list[str],
                    n_boot: int, seed: int, alpha: float, mismatches: list[str] | None = None) -> str:
    reg = [r for r in rows if r.verdict in BAD]
    imp = [r for r in rows if r.verdict == "improved"]
    gated = [r for r in rows if r.verdict not in ("info", "unchecked")]
    head = "FAILED" if reg else "PASSED"
    lines = [f"## halle-bench check: {head}", "",
             f"- candidate: `{candidate}`", f"- baseline: `{baseline}`",
             f"- {len(gated)} comparisons ({len({(r.system, r.bucket) for r in gated})} system/bucket cells, "
             f"metrics: {', '.join(dict.fromkeys(r.metric for r in gated))}); "
             f"{len(reg)} regressed, {len(imp)} improved",
             "- failures: any increase of a cell's failed count over the baseline's is a regression "
             "(no significance test)",
             ("- significance: paired bootstrap over utterances present on both sides "
              f"(n_boot={n_boot}, seed={seed}, seeded per cell), Holm-adjusted, alpha={alpha:g}") if paired else
             "- significance: no per-utterance rows on both sides; approximate Welch test from the two "
             f"leaderboards' 95% CIs where both have one, Holm-adjusted, alpha={alpha:g}; "
             "cells without a CI use a tolerance from n alone"]
    if mismatches:
        lines.append("- **not comparable, compared anyway (--allow-mismatch)**: " + "; ".join(mismatches))
    if reg:
        cells: dict[tuple, list[str]] = {}
        for r in reg:
            cells.setdefault((r.system, r.bucket), []).append(r.metric + (" missing" if r.verdict == "missing" else ""))
        lines.append("- regressed: " + "; ".join(f"{s} {b} ({', '.join(m)})" for (s, b), m in cells.items()))
    # Metrics that are compared but not gated (quantiles, timing) are named in a note, not tabled.
    shown = [r for r in rows if r.verdict in _ORDER and (r.verdict != "info" or r.tolerance_rule == "breakdown")]
    moved = sorted(shown, key=lambda r: (_ORDER[r.verdict] if r.verdict != "info" else 0, r.system,
                                         bucket_sort_key(r.bucket), r.verdict == "info", r.metric))
    info = list(dict.fromkeys(r.metric for r in rows if r.verdict == "info" and r.tolerance_rule != "breakdown"))
    if info:
        notes = notes + [f"compared, not gated (quantiles of few utterances, timing; gate them with --tolerance): "
                         f"{', '.join(info)}"]
    lines.append("")
    if moved:
        lines += ["| system | bucket | metric | baseline | candidate | Δ | tolerance | test | n paired | p (Holm) | verdict |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in moved:
            tol = "–" if r.verdict == "info" else f"{_f(r.tolerance)} ({r.tolerance_rule})"
            arrow = "↑" if r.higher_is_better else "↓"
            verdict = f"**{r.verdict}**" if r.verdict in BAD else r.verdict
            lines.append(f"| {r.system} | {r.bucket} | {r.metric} {arrow} | "
                         f"{_f(r.baseline)} | {_f(r.candidate)} | {_f(r.delta, True)} | {tol} | "
                         f"{r.test or '–'} | {r.n_paired or '–'} | {_p(r.p_adjusted)} | {verdict} |")
        lines.append("")
        lines.append("↓ lower is better, ↑ higher is better; Δ = candidate − baseline; info: shown, not gated.")
    else:
        lines.append("No metric moved beyond its tolerance.")
    unchecked = [r for r in rows if r.verdict == "unchecked"]
    if unchecked:
        notes = notes + [f"{len(unchecked)} comparisons without a derivable tolerance, not gated: "
                         + ", ".join(f"{r.system}/{r.bucket}/{r.metric}" for r in unchecked[:10])
                         + (" ..." if len(unchecked) > 10 else "")]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


__all__ = ["render_markdown", "BAD"]
