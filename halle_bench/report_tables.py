"""What report.md and report.html share: the loaded run and the leaderboard's display.

Both `report` (markdown, terminal) and `html` import this module; neither imports the
other (`report` loads `html` only to write the page). Columns shown and their formats
come from the metric declarations (`show`, `role`, `short`, `unit`, `breakdown`):
system, bucket, n, failed, then the headline metrics with their CIs (and the number of
utterances behind a success-only mean when some failed; a headline's breakdown as one
column, "sub/del/ins %"), then the diagnostics declared `show=True` that the run has.

The console gets a compact summary by default (`summary_table`): one row per system,
its headline metrics over all buckets and the first headline metric (WER) per bucket,
sized to the terminal (or `COLUMNS`, 100 in a log); when even that is too wide, one
row per (system, bucket) with the headline metrics. `--wide` prints the full table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .metric_decl import ALIAS, HEADLINE, Metric
from .metric_registry import metric_declarations

@dataclass
class RunData:
    path: Path
    name: str
    leaderboard: pd.DataFrame
    utterances: pd.DataFrame | None
    env: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    positional: pd.DataFrame | None = None
    systems: dict[str, str] = field(default_factory=dict)  # shown name -> name inside the run

    def audio_path(self, shown_system: str, utt_id: str) -> Path:
        return self.path / "audio" / self.systems.get(shown_system, shown_system) / f"{utt_id}.wav"


# ----------------------------------------------------------------------------- formatting


def _isnum(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(float(v))


def fmt(v: Any, scale: float = 1.0, digits: int = 2) -> str:
    return f"{float(v) * scale:.{digits}f}" if _isnum(v) else "–"


def fmt_ci(row: dict, col: str, scale: float = 1.0, digits: int = 2) -> str:
    lo, hi = row.get(f"{col}_ci_low"), row.get(f"{col}_ci_high")
    main = fmt(row.get(col), scale, digits)
    if _isnum(lo) and _isnum(hi):
        return f"{main} [{fmt(lo, scale, digits)}, {fmt(hi, scale, digits)}]"
    return main


def _count(r: dict, col: str) -> str:
    return str(int(r[col])) if _isnum(r.get(col)) else "–"


def _metric_ci(m: Metric) -> Callable[[dict], str]:
    if m.ci_columns:
        return lambda r: fmt_ci(r, m.name, m.scale, m.digits)
    return lambda r: m.format(r.get(m.name))


def _with_n(m: Metric) -> Callable[[dict], str]:
    """A success-only mean with the number of utterances behind it when some failed."""
    f = _metric_ci(m)

    def cell(r: dict) -> str:
        n, n_all = r.get(m.count_column), r.get("n")
        text = f(r)
        if _isnum(n) and _isnum(n_all) and int(n) != int(n_all) and text != "–" and not m.counts_failures:
            text += f" (n={int(n)})"
        return text

    return cell


def _present(df: pd.DataFrame, col: str) -> bool:
    return col in df.columns and pd.to_numeric(df[col], errors="coerce").notna().any()


def shown_metrics(df: pd.DataFrame) -> tuple[list[Metric], list[Metric]]:
    """(headline metrics, shown diagnostics) that `df` has, in declaration order."""
    decls = [m for m in metric_declarations() if m.role != ALIAS and _present(df, m.name)]
    head = [m for m in decls if m.role == HEADLINE]
    diag = [m for m in decls if m.role != HEADLINE and m.show]
    return head, diag


def _has_ci(df: pd.DataFrame, m: Metric) -> bool:
    return bool(m.ci_columns) and _present(df, m.ci_columns[0])


def _header(m: Metric, ci: bool) -> str:
    return m.header + (" [95% CI]" if ci else "")


def display_columns(df: pd.DataFrame) -> list[tuple[str, Callable[[dict], str]]]:
    """(header, cell formatter) of the human-facing leaderboard; shared by md, rich and HTML."""
    from .metric_registry import get_metric

    cols: list[tuple[str, Callable[[dict], str]]] = [
        ("system", lambda r: str(r["system"])),
        ("bucket", lambda r: str(r["bucket"])),
        ("n", lambda r: _count(r, "n")),
        ("failed", lambda r: _count(r, "n_failed")),
    ]
    head, diag = shown_metrics(df)
    for m in head:
        cols.append((_header(m, _has_ci(df, m)), _with_n(m) if m.count_column else _metric_ci(m)))
        parts = [get_metric(b) for b in m.breakdown]
        if parts and all(p is not None and _present(df, p.name) for p in parts):
            unit = " %" if parts[0].unit == "%" else ""
            cols.append(("/".join(p.short or p.name for p in parts) + unit,
                         lambda r, parts=parts: "/".join(p.format(r.get(p.name)) for p in parts)))
    for m in diag:
        cols.append((m.header, lambda r, m=m: m.format(r.get(m.name))))
    return cols


def _md_cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def leaderboard_markdown(df: pd.DataFrame) -> str:
    cols = display_columns(df)
    rows = [[f(r) for _, f in cols] for r in df.to_dict(orient="records")]
    return markdown_table([h for h, _ in cols], rows)


def render_leaderboard_table(df: pd.DataFrame, title: str | None = "halle-bench leaderboard"):
    """The full leaderboard as a rich Table (`--wide`): one section per system, "all" in bold."""
    from rich.table import Table

    cols = display_columns(df)
    table = Table(title=title, show_lines=False)
    for h, _ in cols:
        table.add_column(h, justify="left" if h in ("system", "bucket") else "right", no_wrap=True)
    prev = None
    for r in df.to_dict(orient="records"):
        if prev is not None and r["system"] != prev:
            table.add_section()
        prev = r["system"]
        table.add_row(*[f(r) for _, f in cols], style="bold" if r["bucket"] == "all" else None)
    return table


def _fits(headers: list[str], rows: list[list[str]], width: int) -> bool:
    """Whether a rich table with these cells fits `width` (3 characters of padding and
    rule per column, plus the outer border)."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    return sum(widths) + 3 * len(widths) + 1 <= width


def summary_rows(df: pd.DataFrame, width: int = 100) -> tuple[list[str], list[list[str]], list[str], str]:
    """(headers, rows, justification) of the compact console summary (module docstring)."""
    from .exports import sorted_buckets

    head, _ = shown_metrics(df)
    buckets = [b for b in sorted_buckets(df["bucket"]) if b != "all"]
    primary = head[0] if head else None
    records = df.to_dict(orient="records")
    by = {(r["system"], str(r["bucket"])): r for r in records}
    systems = list(dict.fromkeys(df["system"]))
    # 1) one row per system: all-bucket headline metrics, then the primary one per bucket
    for with_ci in (True, False):
        headers = ["system", "n", "failed"] + [_header(m, with_ci and _has_ci(df, m)) for m in head]
        if primary is not None:
            headers += [f"{b} s" for b in buckets]  # the title names the metric
        rows = []
        for s in systems:
            r = by.get((s, "all"), {"system": s})
            row = [str(s), _count(r, "n"), _count(r, "n_failed")]
            row += [(_with_n(m) if with_ci else (lambda x, m=m: m.format(x.get(m.name))))(r) for m in head]
            if primary is not None:
                row += [primary.format(by.get((s, b), {}).get(primary.name)) for b in buckets]
            rows.append(row)
        if _fits(headers, rows, width):
            what = f"; per length bucket: {primary.header}" if primary is not None and buckets else ""
            return headers, rows, ["left"] + ["right"] * (len(headers) - 1), f"all buckets{what}"
    # 2) too wide (many buckets or headline metrics): one row per (system, bucket)
    headers = ["system", "bucket", "n", "failed"] + [m.short or m.name for m in head]
    rows = [[str(r["system"]), str(r["bucket"]), _count(r, "n"), _count(r, "n_failed")]
            + [m.format(r.get(m.name)) for m in head] for r in records]
    return headers, rows, ["left", "left"] + ["right"] * (len(headers) - 2), "per bucket"


def summary_table(df: pd.DataFrame, width: int = 100, title: str | None = "halle-bench summary"):
    """The compact console summary as a rich Table that fits `width` columns."""
    from rich.table import Table

    headers, rows, just, layout = summary_rows(df, width)
    table = Table(title=f"{title} ({layout})" if title else None,
                  caption="full table: leaderboard.csv, report.md, or --wide", show_lines=False)
    for h, j in zip(headers, just):
        table.add_column(h, justify=j, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


# ----------------------------------------------------------------------------- settings


def settings_markdown(run: RunData) -> str:
    """What produced a run: code, models (+ sha256), dataset, normaliser, decoding, seeds."""
    env, cfg = run.env, run.config
    lines = [f"### {run.name}", "", f"- path: `{run.path}`"]
    for label, key in (("halle-bench", "halle_bench"), ("git revision", "git_revision"), ("device", "device"),
                       ("platform", "platform"), ("seed", "seed")):
        if env.get(key) is not None:
            lines.append(f"- {label}: `{env[key]}`")
    run_cfg = cfg.get("run") or {}
    if run_cfg:
        lines.append("- run: " + ", ".join(f"{k} = `{v}`" for k, v in run_cfg.items()))
    if env.get("utterance_seeds"):
        lines.append(f"- per-utterance seeds: {env['utterance_seeds']}")
    ds = cfg.get("dataset") or {}
    if ds:
        lines.append("- dataset: " + ", ".join(f"{k} = `{v}`" for k, v in ds.items()))
    versions = env.get("versions") or {}
    if versions:
        lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    metrics = cfg.get("metrics") or {}
    if metrics:
        lines += ["", "Metrics (models, normaliser, decoding):", ""]
        lines.append(markdown_table(["metric", "settings"], [[k, ", ".join(f"{a} = {b}" for a, b in v.items())
                                                              if isinstance(v, dict) else v] for k, v in metrics.items()]))
    systems = cfg.get("systems") or []
    if systems:
        lines += ["", "Systems:", ""]
        lines.append(markdown_table(["name", "kind", "settings"], [
            [s.get("name"), s.get("kind"), ", ".join(f"{k} = {v}" for k, v in s.items() if k not in ("name", "kind"))]
            for s in systems]))
    models = env.get("models") or []
    if models:
        lines += ["", "Model files:", ""]
        lines.append(markdown_table(["used by", "model", "sha256", "path"], [
            [m.get("scorer") or m.get("system") or "", m.get("name", ""), f"`{m.get('sha256') or 'n/a'}`",
             m.get("path") or ""] for m in models]))
    return "\n".join(lines)


