"""The markdown diff that `halle-bench check` prints (pure: rows in, text out).

It speaks the report's units (a metric's declared `unit` and `scale`: WER in percent,
deltas in points) and gives one line per regressed (system, bucket, metric): baseline
and candidate values, the delta, the tolerance and the declared bound, the adjusted p
and the reason. The table below lists every gated comparison that moved, with the
breakdown (sub/del/ins) of any WER that moved.
"""

from __future__ import annotations

import math
from pathlib import Path

from .exports import bucket_sort_key
from .metric_registry import get_metric


def _f(v: float | None, signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:+.4g}" if signed else f"{v:.4g}"


def _p(v: float | None) -> str:
    if v is None:
        return "–"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def value_text(metric: str, v: float) -> str:
    m = get_metric(metric)
    return m.format_unit(v) if m is not None else _f(v)


def delta_text(metric: str, d: float) -> str:
    m = get_metric(metric)
    return m.format_delta(d) if m is not None else _f(d, True)


def tolerance_text(r) -> str:
    if not math.isfinite(r.tolerance):
        return "–"
    m = get_metric(r.metric)
    amount = f"{r.tolerance * m.scale:.{m.digits + 1}f}" if m is not None else _f(r.tolerance)
    if m is not None and m.unit == "%":
        amount += " points"
    elif m is not None and m.unit:
        amount += f" {m.unit}"
    return f"{amount} ({r.tolerance_rule})"


BAD = ("regressed", "missing")
_ORDER = {"missing": 0, "regressed": 0, "worse (n.s.)": 1, "improved": 2, "better (n.s.)": 3, "info": 4}


def regression_line(r) -> str:
    """One line per regressed cell: value, delta, bound, p, reason."""
    if r.verdict == "missing":
        return f"- **{r.system} {r.bucket}** {r.metric}: baseline {value_text(r.metric, r.baseline)}, " \
               f"candidate missing: {r.reason}"
    parts = [f"{value_text(r.metric, r.baseline)} → {value_text(r.metric, r.candidate)} "
             f"({delta_text(r.metric, r.delta)})", f"tolerance {tolerance_text(r)}"]
    if r.bound:
        parts.append(f"bound {r.bound}")
    parts.append(f"p(Holm) {_p(r.p_adjusted)}" + (f" ({r.test})" if r.test else ""))
    return f"- **{r.system} {r.bucket}** {r.metric}: " + "; ".join(parts) + f": {r.reason}"


def render_markdown(rows: list, candidate: Path, baseline: Path, paired: bool, notes: list[str],
                    n_boot: int, seed: int, alpha: float, mismatches: list[str] | None = None,
                    family: int | None = None) -> str:
    reg = [r for r in rows if r.verdict in BAD]
    imp = [r for r in rows if r.verdict == "improved"]
    gated = [r for r in rows if r.verdict not in ("info", "unchecked")]
    head = "FAILED" if reg else "PASSED"
    fam = f"Holm over the {family} tested comparisons (gated metrics x buckets x systems)" if family is not None \
        else "Holm-adjusted"
    lines = [f"## halle-bench check: {head}", "",
             f"- candidate: `{candidate}`", f"- baseline: `{baseline}`",
             f"- {len(gated)} comparisons ({len({(r.system, r.bucket) for r in gated})} system/bucket cells, "
             f"metrics: {', '.join(dict.fromkeys(r.metric for r in gated))}); "
             f"{len(reg)} regressed, {len(imp)} improved",
             "- failures: any increase of a cell's failed count over the baseline's is a regression "
             "(no significance test); a move beyond a metric's declared bound fails without one too",
             (f"- significance: paired bootstrap over utterances present on both sides "
              f"(n_boot={n_boot}, seed={seed}, seeded per cell), {fam}, alpha={alpha:g}") if paired else
             "- significance: no per-utterance rows on both sides; approximate Welch test from the two "
             f"leaderboards' 95% CIs where both have one, else a z-test from counts; {fam}, alpha={alpha:g}"]
    if mismatches:
        lines.append("- **not comparable, compared anyway (--allow-mismatch)**: " + "; ".join(mismatches))
    if reg:
        cells: dict[tuple, list[str]] = {}
        for r in reg:
            cells.setdefault((r.system, r.bucket), []).append(r.metric + (" missing" if r.verdict == "missing" else ""))
        lines.append("- regressed: " + "; ".join(f"{s} {b} ({', '.join(m)})" for (s, b), m in cells.items()))
        lines += ["", "Regressions:", ""]
        lines += [regression_line(r)
                  for r in sorted(reg, key=lambda r: (r.system, bucket_sort_key(r.bucket), r.metric))]
    shown = [r for r in rows if r.verdict in _ORDER]
    moved = sorted(shown, key=lambda r: (_ORDER[r.verdict] if r.verdict != "info" else 0, r.system,
                                         bucket_sort_key(r.bucket), r.verdict == "info", r.metric))
    lines.append("")
    if moved:
        lines += ["| system | bucket | metric | baseline | candidate | Δ | tolerance | bound | test | n paired | "
                  "p (Holm) | verdict |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in moved:
            tol = "–" if r.verdict == "info" else tolerance_text(r)
            arrow = "↑" if r.higher_is_better else "↓"
            verdict = f"**{r.verdict}**" if r.verdict in BAD else r.verdict
            if r.same_as:
                verdict += f" (= {r.same_as})"
            lines.append(f"| {r.system} | {r.bucket} | {r.metric} {arrow} | "
                         f"{value_text(r.metric, r.baseline)} | {value_text(r.metric, r.candidate)} | "
                         f"{delta_text(r.metric, r.delta)} | {tol} | {r.bound or '–'} | "
                         f"{r.test or '–'} | {r.n_paired or '–'} | {_p(r.p_adjusted)} | {verdict} |")
        lines.append("")
        lines.append("↓ lower is better, ↑ higher is better; Δ = candidate − baseline in the report's units "
                     "(WER in percent, Δ in points); info: a breakdown, shown, not gated.")
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


__all__ = ["render_markdown", "regression_line", "BAD"]
