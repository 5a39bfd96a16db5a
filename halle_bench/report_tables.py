"""What report.md and report.html share: the loaded run and the leaderboard's display.

Both `report` (markdown, terminal) and `html` import this module; neither imports the
other (`report` loads `html` only to write the page). Columns shown and their formats
come from the metric registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .metric_registry import METRICS, display

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


# Registry metrics shown beyond the fixed columns when a run has them.
OPTIONAL_SHOWN = ["wer_ok", "sim_ref", "sim_min", "sim_last", "quality_min", "quality_last", "pesq", "stoi",
                  "loop_rate", "clip_fraction"]
OPTIONAL_EXTRA = ["pause_w1", "startup_seconds"]


def _count(r: dict, col: str) -> str:
    return str(int(r[col])) if _isnum(r.get(col)) else "–"


def _metric_ci(col: str) -> Callable[[dict], str]:
    m = METRICS[col]
    return lambda r: fmt_ci(r, col, m.scale, m.digits)


def _with_n(col: str, count: str) -> Callable[[dict], str]:
    """A success-only mean with the number of utterances behind it when some failed."""
    f = _metric_ci(col)

    def cell(r: dict) -> str:
        n, n_ok = r.get(count), r.get("n")
        text = f(r)
        if _isnum(n) and _isnum(n_ok) and int(n) != int(n_ok) and text != "–":
            text += f" (n={int(n)})"
        return text

    return cell


def display_columns(df: pd.DataFrame) -> list[tuple[str, Callable[[dict], str]]]:
    """(header, cell formatter) of the human-facing leaderboard; shared by md, rich and HTML."""
    cols: list[tuple[str, Callable[[dict], str]]] = [
        ("system", lambda r: str(r["system"])),
        ("bucket", lambda r: str(r["bucket"])),
        ("n", lambda r: _count(r, "n")),
        ("failed", lambda r: _count(r, "n_failed")),
        ("WER % [95% CI]", _metric_ci("wer")),
        ("WER macro %", lambda r: display("wer_macro", r.get("wer_macro"))),
        ("sub/del/ins %", lambda r: "/".join(display(k, r.get(k)) for k in ("sub_rate", "del_rate", "ins_rate"))),
        ("sim [95% CI]", _with_n("sim", "n_sim")),
        ("quality [95% CI]", _with_n("quality", "n_quality")),
        ("RTF", lambda r: fmt(r.get("rtf"), 1, 3)),
    ]
    for c in OPTIONAL_SHOWN:
        if c in df.columns and pd.to_numeric(df[c], errors="coerce").notna().any():
            header = f"{c} %" if METRICS[c].scale == 100 else c
            cols.append((header, lambda r, c=c: display(c, r.get(c))))
    for c in OPTIONAL_EXTRA:
        if c in df.columns and pd.to_numeric(df[c], errors="coerce").notna().any():
            cols.append((c, lambda r, c=c: fmt(r.get(c), 1, 3)))
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
    """A rich Table of the leaderboard: one section per system, the "all" row in bold."""
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


