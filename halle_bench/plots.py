"""Report figures (matplotlib, headless): each `plot_*` returns a Figure, `save_plots` writes PNGs.

Which figures exist comes from the metric declarations, not from column names:
- `Metric.plot == "line"`: one figure per metric, `<name>_by_bucket`, a line per system
  with its 95% CI as a band (WER);
- `Metric.plot == "points"`: one figure with a panel per such metric,
  `<a>_<b>_by_bucket`, means with CI error bars (similarity, quality);
- `Metric.positional` with a numerator and a denominator: `<name>_by_position`, one
  panel per long bucket (WER per 30 s of the reference); with one list: one figure
  `<a>_<b>_by_position`, a row per metric (window similarity and quality per 30 s);
- a ratio metric with `plot == "vs_length"` (the real-time factor): its per-utterance
  value against the generated audio's length.

Figures are built with `matplotlib.figure.Figure` and the Agg canvas directly, not
pyplot, so nothing depends on a display, a global backend switch or pyplot's figure
registry. A system keeps its colour across all figures (tab10 in leaderboard order).
The "all" bucket is left out of the per-bucket x axes: it is not a length. Legends sit
outside the axes, so they never cover a point. PNGs are written without the
"Software" metadata, so the same data gives byte-identical files.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .exports import sorted_buckets
from .metric_decl import Metric
from .metric_registry import metric_declarations

DPI = 110


def _figure(w: float, h: float, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def system_colors(systems) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {s: cmap(i % 10) for i, s in enumerate(dict.fromkeys(systems))}


def _length_buckets(lb: pd.DataFrame) -> list[str]:
    b = [x for x in sorted_buckets(lb["bucket"]) if x != "all"]
    return b or ["all"]


def _col(g: pd.DataFrame, bucket: str, col: str) -> float:
    if col not in g.columns:
        return math.nan
    v = g.loc[g["bucket"] == bucket, col]
    return float(pd.to_numeric(v, errors="coerce").iloc[0]) if len(v) else math.nan


def _offsets(n: int, width: float = 0.3) -> np.ndarray:
    """Small x offsets so that error bars of several systems do not overlap."""
    return np.zeros(1) if n == 1 else np.linspace(-width / 2, width / 2, n)


def _legend(ax, fontsize: str = "small") -> None:
    """Outside the axes, right of the plot: it can never hide a point or a band."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=fontsize, frameon=False, borderaxespad=0)


def _ticks(buckets: list[str]) -> list[str]:
    return [f"{b} s" if b != "all" else b for b in buckets]


def _present(df: pd.DataFrame | None, col: str) -> bool:
    return df is not None and col in df.columns and pd.to_numeric(df[col], errors="coerce").notna().any()


def plot_line_by_bucket(lb: pd.DataFrame, m: Metric, colors: dict | None = None) -> Figure | None:
    """A metric per length bucket in report units, one line per system, 95% CI as a band."""
    if not _present(lb, m.name):
        return None
    buckets = _length_buckets(lb)
    colors = colors or system_colors(lb["system"])
    fig, (ax,) = _figure(8.5, 4.5)
    x = np.arange(len(buckets))
    lo_c, hi_c = m.ci_columns or ("", "")
    for s, g in lb.groupby("system", sort=False):
        y = np.array([_col(g, b, m.name) for b in buckets]) * m.scale
        lo = np.array([_col(g, b, lo_c) for b in buckets]) * m.scale
        hi = np.array([_col(g, b, hi_c) for b in buckets]) * m.scale
        ax.plot(x, y, marker="o", color=colors[s], label=str(s))
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            ax.fill_between(x, np.where(ok, lo, np.nan), np.where(ok, hi, np.nan), color=colors[s], alpha=0.18,
                            linewidth=0)
    ax.set_xticks(x, _ticks(buckets))
    ax.set_xlabel("utterance length bucket")
    ax.set_ylabel(m.label or m.name)
    ax.set_ylim(bottom=0)
    what = ", failures counted" if m.counts_failures else ""
    ax.set_title(f"{m.label or m.name} against length{what}" + (" (bands: 95% bootstrap CI)" if m.ci_columns else ""))
    ax.grid(True, alpha=0.3)
    _legend(ax)
    return fig


def plot_points_by_bucket(lb: pd.DataFrame, metrics: list[Metric], colors: dict | None = None) -> Figure | None:
    """Several metrics per bucket, a panel each: mean with 95% CI error bars."""
    panels = [m for m in metrics if _present(lb, m.name)]
    if not panels:
        return None
    buckets = _length_buckets(lb)
    systems = list(dict.fromkeys(lb["system"]))
    colors = colors or system_colors(systems)
    fig, axes = _figure(5.0 * len(panels) + 2.0, 4.3, ncols=len(panels))
    x = np.arange(len(buckets))
    for ax, m in zip(axes, panels):
        lo_c, hi_c = m.ci_columns or ("", "")
        for off, s in zip(_offsets(len(systems)), systems):
            g = lb[lb["system"] == s]
            y = np.array([_col(g, b, m.name) for b in buckets]) * m.scale
            lo = np.array([_col(g, b, lo_c) for b in buckets]) * m.scale
            hi = np.array([_col(g, b, hi_c) for b in buckets]) * m.scale
            err = np.vstack([np.nan_to_num(y - lo), np.nan_to_num(hi - y)])
            ax.errorbar(x + off, y, yerr=err, marker="o", capsize=3, color=colors[s], label=str(s))
        model = lb[m.model_column].dropna().unique() if m.model_column and m.model_column in lb.columns else []
        ax.set_title((m.label or m.name) + (f" ({', '.join(map(str, model))})" if len(model) else ""))
        ax.set_xticks(x, _ticks(buckets))
        ax.set_xlabel("utterance length bucket")
        ax.grid(True, alpha=0.3)
    _legend(axes[-1])
    return fig


def plot_ratio_vs_length(utt: pd.DataFrame | None, m: Metric, colors: dict | None = None) -> Figure | None:
    """A ratio metric per utterance (numerator / denominator: wall / audio seconds) against
    the denominator; systems without a positive value (ground truth, pre-generated audio)
    are left out. Log y axis when values span > 20x."""
    if m.kind != "ratio" or utt is None or not {*m.columns, "system"} <= set(utt.columns):
        return None
    num, den = m.columns[0], m.columns[-1]
    d = utt.copy()
    if "status" in d.columns:
        d = d[d["status"] == "ok"]
    d["_v"] = pd.to_numeric(d[num], errors="coerce") / pd.to_numeric(d[den], errors="coerce")
    d["_x"] = pd.to_numeric(d[den], errors="coerce")
    d = d[(d["_v"] > 0) & (d["_x"] > 0)]
    if d.empty:
        return None
    colors = colors or system_colors(utt["system"])
    fig, (ax,) = _figure(8.5, 4.5)
    for s, g in d.groupby("system", sort=False):
        ax.scatter(g["_x"], g["_v"], s=14, alpha=0.7, color=colors[s], label=str(s))
        overall = g["_v"].mul(g["_x"]).sum() / g["_x"].sum()  # sum num / sum den
        ax.axhline(overall, color=colors[s], linestyle="--", linewidth=1, alpha=0.8)
    if d["_v"].max() / d["_v"].min() > 20:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel(f"{den} per utterance")
    ax.set_ylabel(m.label or m.name)
    ax.set_title(f"{m.label or m.name} against length (dashed: overall per system; dotted: 1)")
    ax.grid(True, alpha=0.3)
    _legend(ax)
    return fig


def plot_ratio_by_position(pos: pd.DataFrame | None, m: Metric, colors: dict | None = None) -> Figure | None:
    """A ratio metric per position window within long utterances (WER per 30 s of the
    reference), one panel per length bucket."""
    if pos is None or pos.empty or not {"system", "bucket", "start_seconds", m.name} <= set(pos.columns):
        return None
    buckets = [b for b in sorted_buckets(pos["bucket"]) if b != "all"] or ["all"]
    colors = colors or system_colors(pos["system"])
    fig, axes = _figure(min(4.2 * len(buckets) + 2.0, 17), 4.2, ncols=len(buckets))
    ymax = 0.0
    n_col = f"n_{m.name}"
    for ax, b in zip(axes, buckets):
        pb = pos[pos["bucket"] == b]
        for s, g in pb.groupby("system", sort=False):
            g = g.sort_values("start_seconds")
            y = pd.to_numeric(g[m.name], errors="coerce") * m.scale
            ymax = max(ymax, float(np.nanmax(y)) if y.notna().any() else 0.0)
            n = int(pd.to_numeric(g[n_col], errors="coerce").max()) if n_col in g.columns else None
            ax.plot(g["start_seconds"], y, marker="o", color=colors[s], label=f"{s}" + (f" (n={n})" if n else ""))
        ax.set_title(f"{b} s" if b != "all" else "all long utterances")
        ax.set_xlabel("window start within utterance (s)")
        ax.grid(True, alpha=0.3)
        _legend(ax, "x-small")
    axes[0].set_ylabel(m.label or m.name)
    for ax in axes:
        ax.set_ylim(0, ymax * 1.1 + 1)
    fig.suptitle(f"{m.label or m.name} by position within long utterances")
    return fig


def plot_means_by_position(pos: pd.DataFrame | None, metrics: list[Metric],
                           colors: dict | None = None) -> Figure | None:
    """Mean per 30 s slice of the generated audio within long utterances (window
    similarity, quality): where the voice drifts or the audio degrades. One row per
    metric, one panel per length bucket."""
    if pos is None or pos.empty or not {"system", "bucket", "start_seconds"} <= set(pos.columns):
        return None
    rows_m = [m for m in metrics if _present(pos, m.name)]
    if not rows_m:
        return None
    buckets = [b for b in sorted_buckets(pos["bucket"]) if b != "all"] or ["all"]
    colors = colors or system_colors(pos["system"])
    fig = Figure(figsize=(min(4.2 * len(buckets) + 2.0, 17), 3.6 * len(rows_m)), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(len(rows_m), len(buckets), squeeze=False)
    for i, m in enumerate(rows_m):
        for j, b in enumerate(buckets):
            ax = grid[i][j]
            pb = pos[pos["bucket"] == b]
            for s, g in pb.groupby("system", sort=False):
                g = g.sort_values("start_seconds")
                y = pd.to_numeric(g[m.name], errors="coerce") * m.scale
                if not y.notna().any():
                    continue
                n_col = f"n_{m.name}"
                n = int(pd.to_numeric(g[n_col], errors="coerce").max()) if n_col in g.columns else None
                ax.plot(g["start_seconds"], y, marker="o", color=colors[s], label=f"{s}" + (f" (n={n})" if n else ""))
            ax.set_title(f"{b} s" if b != "all" else "all long utterances")
            ax.grid(True, alpha=0.3)
            if j == 0:
                ax.set_ylabel(m.label or m.name)
            if i == len(rows_m) - 1:
                ax.set_xlabel("slice start within generated audio (s)")
            _legend(ax, "x-small")
    fig.suptitle(", ".join(m.label or m.name for m in rows_m) + " by position within long utterances")
    return fig


def save_figure(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    return path


def figures(lb: pd.DataFrame, utt: pd.DataFrame | None, pos: pd.DataFrame | None,
            colors: dict | None = None) -> dict[str, Figure | None]:
    """{name: figure or None} for every figure the declarations ask for (module docstring)."""
    decls = metric_declarations()
    colors = colors or system_colors(lb["system"])
    figs: dict[str, Figure | None] = {}
    for m in decls:
        if m.plot == "line":
            figs[f"{m.name}_by_bucket"] = plot_line_by_bucket(lb, m, colors)
    points = [m for m in decls if m.plot == "points"]  # a stable file name: every declared panel's
    if points:
        figs["_".join(m.name for m in points) + "_by_bucket"] = plot_points_by_bucket(lb, points, colors)
    for m in decls:
        if m.plot == "vs_length":
            figs[f"{m.name}_vs_length"] = plot_ratio_vs_length(utt, m, colors)
    for m in decls:
        if len(m.positional) == 2:
            figs[f"{m.name}_by_position"] = plot_ratio_by_position(pos, m, colors)
    means = [m for m in decls if len(m.positional) == 1]
    if means:
        figs["_".join(m.name for m in means) + "_by_position"] = plot_means_by_position(pos, means, colors)
    return figs


def save_plots(lb: pd.DataFrame, utt: pd.DataFrame | None, pos: pd.DataFrame | None, out_dir: Path) -> dict[str, Path]:
    """Draw every figure the data allows; returns {name: png path} (missing data: no file)."""
    out_dir = Path(out_dir)
    figs = figures(lb, utt, pos, system_colors(lb["system"]))  # one colour per system in every figure
    return {name: save_figure(f, out_dir / f"{name}.png") for name, f in figs.items() if f is not None}


__all__ = ["figures", "save_plots", "save_figure", "system_colors", "plot_line_by_bucket", "plot_points_by_bucket",
           "plot_ratio_vs_length", "plot_ratio_by_position", "plot_means_by_position"]
