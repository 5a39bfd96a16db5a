"""`halle-bench report`: read run directories, merge them, write report.md (+ plots, HTML, exports).

Decisions where the spec is silent:
- Several runs merge into one leaderboard with a `run` column (the run folder's name).
  A system name that occurs in more than one run is shown as "name [run]", so two runs
  of the same system (e.g. two checkpoints) stay apart instead of being averaged.
- Output folder: the run directory itself for one run (report.md beside
  leaderboard.csv, as architecture.md places it); for several runs,
  `<first run's parent>/merged-report`, unless `out_dir` is given.
- WER is shown in percent in human-facing tables (report.md, terminal, HTML); the CSV
  and JSON exports keep fractions, like the contract.
- The WER-by-position table is computed from scores.jsonl (`pos_errors` / `pos_words`
  per utterance) over *long* utterances only (two windows or more), failed ones left
  out, so that short utterances do not dilute the first window. Without those rows it
  falls back to the runner's positional.csv.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .errors import ConfigError
from .exports import (LEADERBOARD_COLUMNS, TEXT_COLUMNS, order_rows, read_table, sorted_buckets,
                      write_exports)

DEFAULT_WINDOW_SECONDS = 30.0
# Leaderboard columns shown beyond the fixed ones when a run has them.
OPTIONAL_SHOWN = ["pesq", "stoi", "sim_ref", "pause_w1", "loop_rate"]


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


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL table; a torn (killed) line is skipped, later rows win later."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def load_run(run_dir: str | Path) -> RunData:
    """One run directory; ConfigError when it has no leaderboard.csv (not a finished run)."""
    p = Path(run_dir)
    lb_path = p / "leaderboard.csv"
    if not p.is_dir():
        raise ConfigError(f"not a run directory: {p} does not exist")
    if not lb_path.exists():
        raise ConfigError(f"not a finished run: {lb_path} is missing (run `halle-bench run --out {p}` first)")
    lb = read_table(lb_path)
    for c in ("system", "bucket"):
        if c not in lb.columns:
            raise ConfigError(f"{lb_path} has no `{c}` column", path=lb_path)
    utt = read_table(p / "utterances.csv") if (p / "utterances.csv").exists() else None
    env = json.loads((p / "env.json").read_text()) if (p / "env.json").exists() else {}
    try:
        config = tomllib.loads((p / "config.toml").read_text()) if (p / "config.toml").exists() else {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"cannot parse the run's config: {e}", path=p / "config.toml") from None
    run = RunData(p, p.resolve().name, lb, utt, env, config)
    run.positional = positional_table(run)
    return run


def window_seconds(run: RunData) -> float:
    wer_cfg = (run.config.get("metrics") or {}).get("wer") or {}
    return float(wer_cfg.get("window_seconds") or DEFAULT_WINDOW_SECONDS)


def positional_table(run: RunData) -> pd.DataFrame | None:
    """WER per position window, per (system, bucket), over long utterances (>= 2 windows)."""
    sp = run.path / "scores.jsonl"
    ok_ids = None
    if run.utterances is not None and "status" in run.utterances.columns:
        ok = run.utterances[run.utterances["status"] == "ok"]
        ok_ids = set(zip(ok["system"], ok["id"].astype(str)))
    win = window_seconds(run)
    latest: dict[tuple, dict] = {}
    if sp.exists():
        for r in _read_jsonl(sp):
            vals = r.get("values") or {}
            if not r.get("error") and "pos_errors" in vals and "pos_words" in vals:
                latest[(r.get("system"), str(r.get("id")))] = r
    acc: dict[tuple, dict[int, list]] = {}
    bucket_of = {}
    if run.utterances is not None:
        bucket_of = dict(zip(zip(run.utterances["system"], run.utterances["id"].astype(str)), run.utterances["bucket"]))
    for (system, uid), r in latest.items():
        if ok_ids is not None and (system, uid) not in ok_ids:
            continue
        pe, pw = r["values"]["pos_errors"], r["values"]["pos_words"]
        if not isinstance(pe, list) or len(pe) < 2 or len(pe) != len(pw):
            continue
        w = float(r["values"].get("window_seconds") or win)
        for b in (bucket_of.get((system, uid), "unknown"), "all"):
            cell = acc.setdefault((system, b, w), {})
            for i, (e, n) in enumerate(zip(pe, pw)):
                c = cell.setdefault(i, [0.0, 0.0, 0])
                c[0] += float(e)
                c[1] += float(n)
                c[2] += 1
    rows = [{"system": s, "bucket": b, "window": i, "start_seconds": i * w, "errors": e, "words": n,
             "n_utterances": k, "wer": e / n if n else math.nan}
            for (s, b, w), cell in acc.items() for i, (e, n, k) in sorted(cell.items())]
    if rows:
        return order_rows(pd.DataFrame(rows)).sort_values(["system", "bucket", "window"], kind="mergesort",
                                                          key=_bucket_aware).reset_index(drop=True)
    if (run.path / "positional.csv").exists():
        return read_table(run.path / "positional.csv")
    return None


def _bucket_aware(col: pd.Series) -> pd.Series:
    from .exports import bucket_sort_key

    if col.name == "bucket":
        return col.map(lambda b: bucket_sort_key(b)[:2])
    if col.name == "system":
        rank = {s: i for i, s in enumerate(dict.fromkeys(col))}
        return col.map(rank)
    return col


def load_runs(run_dirs: list[str | Path]) -> list[RunData]:
    """Load and name several runs (see the module docstring for name clashes)."""
    if not run_dirs:
        raise ConfigError("no run directory given")
    runs = [load_run(d) for d in run_dirs]
    seen: dict[str, int] = {}
    for r in runs:  # two folders both called "run": run, run-2
        k = seen.get(r.name, 0)
        seen[r.name] = k + 1
        if k:
            r.name = f"{r.name}-{k + 1}"
    counts: dict[str, int] = {}
    for r in runs:
        for s in dict.fromkeys(r.leaderboard["system"]):
            counts[s] = counts.get(s, 0) + 1
    for r in runs:
        r.systems = {(f"{s} [{r.name}]" if counts[s] > 1 else s): s for s in dict.fromkeys(r.leaderboard["system"])}
        rename = {v: k for k, v in r.systems.items()}
        for df in (r.leaderboard, r.utterances, r.positional):
            if df is not None:
                df["system"] = df["system"].map(lambda s: rename.get(s, s))
    return runs


def merge_leaderboards(runs: list[RunData]) -> pd.DataFrame:
    return order_rows(pd.concat([r.leaderboard.assign(run=r.name) for r in runs], ignore_index=True))


def merge_utterances(runs: list[RunData]) -> pd.DataFrame | None:
    parts = [r.utterances.assign(run=r.name) for r in runs if r.utterances is not None]
    return order_rows(pd.concat(parts, ignore_index=True)) if parts else None


def merge_positional(runs: list[RunData]) -> pd.DataFrame | None:
    parts = [r.positional.assign(run=r.name) for r in runs if r.positional is not None]
    return pd.concat(parts, ignore_index=True) if parts else None


def failures(utt: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["system", "id", "bucket", "error"]
    if utt is None or "status" not in utt.columns:
        return pd.DataFrame(columns=cols)
    f = utt[utt["status"] != "ok"]
    return f[[c for c in cols if c in f.columns]].reset_index(drop=True)


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


def display_columns(df: pd.DataFrame) -> list[tuple[str, Callable[[dict], str]]]:
    """(header, cell formatter) of the human-facing leaderboard; shared by md, rich and HTML."""
    cols: list[tuple[str, Callable[[dict], str]]] = [
        ("system", lambda r: str(r["system"])),
        ("bucket", lambda r: str(r["bucket"])),
        ("n", lambda r: str(int(r["n"])) if _isnum(r.get("n")) else "–"),
        ("failed", lambda r: str(int(r["n_failed"])) if _isnum(r.get("n_failed")) else "–"),
        ("WER % [95% CI]", lambda r: fmt_ci(r, "wer", 100, 1)),
        ("WER macro %", lambda r: fmt(r.get("wer_macro"), 100, 1)),
        ("sub/del/ins %", lambda r: "/".join(fmt(r.get(k), 100, 1) for k in ("sub_rate", "del_rate", "ins_rate"))),
        ("sim [95% CI]", lambda r: fmt_ci(r, "sim", 1, 3)),
        ("quality [95% CI]", lambda r: fmt_ci(r, "quality", 1, 2)),
        ("RTF", lambda r: fmt(r.get("rtf"), 1, 3)),
    ]
    for c in OPTIONAL_SHOWN:
        if c in df.columns and df[c].notna().any():
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


# ----------------------------------------------------------------------------- write


def default_out_dir(run_dirs: list[Path]) -> Path:
    return Path(run_dirs[0]) if len(run_dirs) == 1 else Path(run_dirs[0]).resolve().parent / "merged-report"


def runs_meta(runs: list[RunData]) -> list[dict[str, Any]]:
    return [{"name": r.name, "path": str(r.path), "git_revision": r.env.get("git_revision"),
             "halle_bench": r.env.get("halle_bench"), "seed": r.env.get("seed"),
             "systems": list(r.systems)} for r in runs]


def build_markdown(runs: list[RunData], lb: pd.DataFrame, fails: pd.DataFrame, plots: dict[str, Path],
                   out_dir: Path, exports: dict[str, Path]) -> str:
    parts = ["# halle-bench report", ""]
    parts += ["Runs: " + ", ".join(f"`{r.name}` ({r.path})" for r in runs), ""]
    parts += ["## Leaderboard", "",
              "WER is corpus-level (total edits / reference words) in percent, with a bootstrap 95% CI; "
              "`failed` utterances are counted, not scored.", "", leaderboard_markdown(lb), ""]
    if plots:
        parts += ["## Plots", ""]
        for name, p in plots.items():
            parts += [f"![{name}]({p.relative_to(out_dir).as_posix()})", ""]
    parts += ["## Settings", ""]
    for r in runs:
        parts += [settings_markdown(r), ""]
    parts += [f"## Failures ({len(fails)})", ""]
    if len(fails):
        parts += [markdown_table(list(fails.columns), [[("" if v is None else (str(v)[:300])) for v in row]
                                                       for row in fails.itertuples(index=False)]), ""]
    else:
        parts += ["None.", ""]
    if exports:
        parts += ["## Exports", ""]
        parts += [f"- [{p.relative_to(out_dir).as_posix()}]({p.relative_to(out_dir).as_posix()})"
                  for p in exports.values()] + [""]
    return "\n".join(parts)


def write_report(run_dirs: list[Path], out_dir: Path | None = None, html: bool = False, console=None) -> Path:
    """Write report.md, plots/*.png, exports/ (and report.html) and return report.md's path.

    `console` (a rich Console) receives the leaderboard table; nothing is printed without one.
    """
    from .plots import save_plots

    run_dirs = [Path(d) for d in run_dirs]
    runs = load_runs(run_dirs)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(run_dirs)
    out_dir.mkdir(parents=True, exist_ok=True)
    lb = merge_leaderboards(runs)
    utt = merge_utterances(runs)
    pos = merge_positional(runs)
    fails = failures(utt)
    plots = save_plots(lb, utt, pos, out_dir / "plots")
    exports = write_exports(lb, utt, out_dir / "exports", runs_meta(runs))
    md = out_dir / "report.md"
    md.write_text(build_markdown(runs, lb, fails, plots, out_dir, exports))
    if html:
        from .html import write_html

        write_html(runs, lb, fails, plots, out_dir / "report.html")
    if console is not None:
        console.print(render_leaderboard_table(lb))
        console.print(f"report: {md}" + (f"  html: {out_dir / 'report.html'}" if html else ""))
    return md


__all__ = ["RunData", "load_run", "load_runs", "merge_leaderboards", "merge_utterances", "failures",
           "render_leaderboard_table", "leaderboard_markdown", "settings_markdown", "write_report",
           "LEADERBOARD_COLUMNS", "TEXT_COLUMNS", "sorted_buckets"]
