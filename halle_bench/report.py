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
- The by-position figures come from the run's positional.csv (aggregate: long
  utterances only, two 30 s slices or more, so that short ones do not dilute the first
  slice; WER per slice of the reference, similarity and quality per slice of the
  generated audio). The report reads no JSONL table: the run directory's layout is
  aggregate's business.
- "Common set": the leaderboard recomputed (the same registry maths) over the
  utterances that every system of the report completed, so that no comparison there
  mixes different sets; a system that gives up on long texts shows its failures in the
  main table and cannot look better in this one.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import ConfigError
from .report_tables import (RunData, display_columns, fmt, fmt_ci, leaderboard_markdown, markdown_table,
                            render_leaderboard_table, settings_markdown, summary_table)
from .exports import (LEADERBOARD_COLUMNS, TEXT_COLUMNS, order_rows, read_table, sorted_buckets,
                      write_exports)



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


def positional_table(run: RunData) -> pd.DataFrame | None:
    """The run's positional.csv (aggregate writes it: WER, similarity and quality by
    position within long utterances); None when the run has none or it is empty."""
    p = run.path / "positional.csv"
    if not p.exists():
        return None
    try:
        df = read_table(p)
    except pd.errors.EmptyDataError:
        return None
    return df if len(df) else None


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


def common_set(utt: pd.DataFrame | None, runs: list[RunData]) -> tuple[pd.DataFrame | None, int]:
    """(leaderboard over the utterances every system completed, how many utterances)."""
    from .leaderboard import leaderboard_rows

    if utt is None or "status" not in utt.columns or utt["system"].nunique() < 2:
        return None, 0
    systems = list(dict.fromkeys(utt["system"]))
    ok = utt[utt["status"] == "ok"]
    done = ok.groupby("id")["system"].nunique()
    ids = set(done[done == len(systems)].index)
    if not ids:
        return None, 0
    if len(ids) == utt["id"].nunique():  # nothing failed anywhere: the leaderboard is already common
        return None, len(ids)
    sel = utt[utt["id"].isin(ids)]
    rows = [{k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}
            for r in sel.to_dict(orient="records")]
    cfg = runs[0].config.get("run") or {}
    n_boot = int(cfg.get("n_boot", 1000))
    seed = int(runs[0].env.get("seed") or cfg.get("seed") or 0)
    lb = pd.DataFrame(leaderboard_rows(rows, [(s, "") for s in systems], n_boot, seed))
    return order_rows(lb), len(ids)


def failures(utt: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["system", "id", "bucket", "error"]
    if utt is None or "status" not in utt.columns:
        return pd.DataFrame(columns=cols)
    f = utt[utt["status"] != "ok"]
    return f[[c for c in cols if c in f.columns]].reset_index(drop=True)


# ----------------------------------------------------------------------------- write


def default_out_dir(run_dirs: list[Path]) -> Path:
    return Path(run_dirs[0]) if len(run_dirs) == 1 else Path(run_dirs[0]).resolve().parent / "merged-report"


def runs_meta(runs: list[RunData]) -> list[dict[str, Any]]:
    return [{"name": r.name, "path": str(r.path), "git_revision": r.env.get("git_revision"),
             "halle_bench": r.env.get("halle_bench"), "seed": r.env.get("seed"),
             "systems": list(r.systems)} for r in runs]


def build_markdown(runs: list[RunData], lb: pd.DataFrame, fails: pd.DataFrame, plots: dict[str, Path],
                   out_dir: Path, exports: dict[str, Path], common: pd.DataFrame | None = None,
                   n_common: int = 0) -> str:
    parts = ["# halle-bench report", ""]
    parts += ["Runs: " + ", ".join(f"`{r.name}` ({r.path})" for r in runs), ""]
    parts += ["## Leaderboard", "",
              "WER is corpus-level (total edits / reference words) in percent over every attempted utterance, "
              "with a 95% CI (bootstrap clustered by speaker; none under 5 utterances): a failed generation counts "
              "as all-deleted. Similarity and quality are means over the successes (n= when some failed).", "",
              leaderboard_markdown(lb), ""]
    if common is None and n_common:
        parts += ["Every system completed every utterance: the leaderboard is over one common set.", ""]
    if common is not None:
        parts += [f"## Common set ({n_common} utterances every system completed)", "",
                  "The same metrics over the utterances that no system failed, so that these rows compare "
                  "systems on the same texts.", "", leaderboard_markdown(common), ""]
    notes = [f"{r['system']} {r['bucket']}: {r['notes']}" for r in lb.to_dict(orient="records")
             if isinstance(r.get("notes"), str) and r["notes"]]
    if notes:
        parts += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
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


def write_report(run_dirs: list[Path], out_dir: Path | None = None, html: bool = False, console=None,
                 wide: bool = False) -> Path:
    """Write report.md, plots/*.png, exports/ (and report.html) and return report.md's path.

    `console` (a rich Console) receives the compact summary that fits its width (the full
    leaderboard with `wide`); nothing is printed without one.
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
    common, n_common = common_set(utt, runs)
    md.write_text(build_markdown(runs, lb, fails, plots, out_dir, exports, common, n_common))
    if html:
        from .html import write_html

        write_html(runs, lb, fails, plots, out_dir / "report.html", common=common, n_common=n_common)
    if console is not None:
        console.print(render_leaderboard_table(lb) if wide else summary_table(lb, console.width))
        console.print(f"report: {md}" + (f"  html: {out_dir / 'report.html'}" if html else ""))
    return md


__all__ = ["RunData", "load_run", "load_runs", "merge_leaderboards", "merge_utterances", "failures", "common_set",
           "positional_table", "display_columns", "fmt", "fmt_ci", "markdown_table",
           "render_leaderboard_table", "summary_table", "leaderboard_markdown", "settings_markdown", "write_report",
           "LEADERBOARD_COLUMNS", "TEXT_COLUMNS", "sorted_buckets"]
