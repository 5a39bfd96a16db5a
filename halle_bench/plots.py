"""Report figures (matplotlib, headless): each `plot_*` returns a Figure, `save_plots` writes PNGs.

Figures are built with `matplotlib.figure.Figure` and the Agg canvas directly, not
pyplot, so nothing depends on a display, a global backend switch or pyplot's figure
registry (no leaks when a report is written inside a long-lived process). A system
keeps its colour across all figures (tab10 in leaderboard order). The "all" bucket is
left out of the per-bucket x axes: it is not a length. PNGs are written without the
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
from .metric_registry import METRICS

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


def plot_wer_by_bucket(lb: pd.DataFrame, colors: dict | None = None) -> Figure:
    """Corpus WER (%) per length bucket, one line per system, 95% CI as a band."""
    buckets = _length_buckets(lb)
    colors = colors or system_colors(lb["system"])
    fig, (ax,) = _figure(7.5, 4.5)
    x = np.arange(len(buckets))
    for s, g in lb.groupby("system", sort=False):
        y = np.array([_col(g, b, "wer") for b in buckets]) * 100
        lo = np.array([_col(g, b, "wer_ci_low") for b in buckets]) * 100
        hi = np.array([_col(g, b, "wer_ci_high") for b in buckets]) * 100
        ax.plot(x, y, marker="o", color=colors[s], label=str(s))
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            ax.fill_between(x, np.where(ok, lo, np.nan), np.where(ok, hi, np.nan), color=colors[s], alpha=0.18,
                            linewidth=0)
    ax.set_xticks(x, [f"{b} s" if b != "all" else b for b in buckets])
    ax.set_xlabel("utterance length bucket")
    ax.set_ylabel(METRICS["wer"].label)
    ax.set_ylim(bottom=0)
    ax.set_title("WER against length, failures counted (bands: 95% bootstrap CI)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small", frameon=False)
    return fig


def plot_sim_quality(lb: pd.DataFrame, colors: dict | None = None) -> Figure | None:
    """Speaker similarity and predicted quality per bucket, mean with 95% CI error bars."""
    panels = [(c, t) for c, t in (("sim", "speaker similarity"), ("quality", "quality")) if c in lb.columns
              and pd.to_numeric(lb[c], errors="coerce").notna().any()]
    if not panels:
        return None
    buckets = _length_buckets(lb)
    systems = list(dict.fromkeys(lb["system"]))
    colors = colors or system_colors(systems)
    fig, axes = _figure(5.0 * len(panels) + 1.0, 4.3, ncols=len(panels))
    x = np.arange(len(buckets))
    for ax, (col, title) in zip(axes, panels):
        for off, s in zip(_offsets(len(systems)), systems):
            g = lb[lb["system"] == s]
            y = np.array([_col(g, b, col) for b in buckets])
            lo = np.array([_col(g, b, f"{col}_ci_low") for b in buckets])
            hi = np.array([_col(g, b, f"{col}_ci_high") for b in buckets])
            err = np.vstack([np.nan_to_num(y - lo), np.nan_to_num(hi - y)])
            ax.errorbar(x + off, y, yerr=err, marker="o", capsize=3, color=colors[s], label=str(s))
        model = lb[f"{col}_model"].dropna().unique() if f"{col}_model" in lb.columns else []
        ax.set_title(title + (f" ({', '.join(map(str, model))})" if len(model) else ""))
        ax.set_xticks(x, [f"{b} s" if b != "all" else b for b in buckets])
        ax.set_xlabel("utterance length bucket")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize="small", frameon=False)
    return fig


def plot_rtf_vs_length(utt: pd.DataFrame | None, colors: dict | None = None) -> Figure | None:
    """Per-utterance RTF against generated audio length; systems without a positive RTF
    (ground truth, pre-generated audio) are left out. Log y axis when RTFs span > 20x."""
    if utt is None or not {"audio_seconds", "rtf", "system"} <= set(utt.columns):
        return None
    d = utt.copy()
    if "status" in d.columns:
        d = d[d["status"] == "ok"]
    d["rtf"] = pd.to_numeric(d["rtf"], errors="coerce")
    d["audio_seconds"] = pd.to_numeric(d["audio_seconds"], errors="coerce")
    d = d[(d["rtf"] > 0) & (d["audio_seconds"] > 0)]
    if d.empty:
        return None
    colors = colors or system_colors(utt["system"])
    fig, (ax,) = _figure(7.5, 4.5)
    for s, g in d.groupby("system", sort=False):
        ax.scatter(g["audio_seconds"], g["rtf"], s=14, alpha=0.7, color=colors[s], label=str(s))
        overall = g["rtf"].mul(g["audio_seconds"]).sum() / g["audio_seconds"].sum()  # wall / audio
        ax.axhline(overall, color=colors[s], linestyle="--", linewidth=1, alpha=0.8)
    if d["rtf"].max() / d["rtf"].min() > 20:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("generated audio (s)")
    ax.set_ylabel("real-time factor (wall / audio)")
    ax.set_title("RTF against output length (dashed: overall per system; dotted: real time)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", frameon=False)
    return fig


def plot_wer_by_position(pos: pd.DataFrame | None, colors: dict | None = None) -> Figure | None:
    """WER (%) per position window within long utterances, one panel per length bucket."""
    if pos is None or pos.empty or not {"system", "bucket", "start_seconds", "wer"} <= set(pos.columns):
        return None
    buckets = [b for b in sorted_buckets(pos["bucket"]) if b != "all"] or ["all"]
    colors = colors or system_colors(pos["system"])
    fig, axes = _figure(min(4.2 * len(buckets) + 1.0, 16), 4.2, ncols=len(buckets))
    ymax = 0.0
    for ax, b in zip(axes, buckets):
        pb = pos[pos["bucket"] == b]
        for s, g in pb.groupby("system", sort=False):
            g = g.sort_values("start_seconds")
            y = pd.to_numeric(g["wer"], errors="coerce") * 100
            ymax = max(ymax, float(np.nanmax(y)) if y.notna().any() else 0.0)
            n = int(g["n_utterances"].max()) if "n_utterances" in g.columns else None
            ax.plot(g["start_seconds"], y, marker="o", color=colors[s], label=f"{s}" + (f" (n={n})" if n else ""))
        ax.set_title(f"{b} s" if b != "all" else "all long utterances")
        ax.set_xlabel("window start within utterance (s)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small", frameon=False)
    axes[0].set_ylabel("WER (%)")
    for ax in axes:
        ax.set_ylim(0, ymax * 1.1 + 1)
    fig.suptitle("WER by position within long utterances")
    return fig


def plot_sim_quality_by_position(pos: pd.DataFrame | None, colors: dict | None = None) -> Figure | None:
    """Mean window similarity and quality per 30 s slice of the generated audio within
    long utterances (positional.csv `sim` / `quality`): where the voice drifts or the
    audio degrades. One row per metric, one panel per length bucket."""
    if pos is None or pos.empty or not {"system", "bucket", "start_seconds"} <= set(pos.columns):
        return None
    metrics = [c for c in ("sim", "quality") if c in pos.columns and pd.to_numeric(pos[c], errors="coerce").notna().any()]
    if not metrics:
        return None
    buckets = [b for b in sorted_buckets(pos["bucket"]) if b != "all"] or ["all"]
    colors = colors or system_colors(pos["system"])
    fig = Figure(figsize=(min(4.2 * len(buckets) + 1.0, 16), 3.6 * len(metrics)), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(len(metrics), len(buckets), squeeze=False)
    for i, col in enumerate(metrics):
        for j, b in enumerate(buckets):
            ax = grid[i][j]
            pb = pos[pos["bucket"] == b]
            for s, g in pb.groupby("system", sort=False):
                y = pd.to_numeric(g.sort_values("start_seconds")[col], errors="coerce")
                if not y.notna().any():
                    continue
                n_col = f"n_{col}"
                n = int(pd.to_numeric(g[n_col], errors="coerce").max()) if n_col in g.columns else None
                ax.plot(g.sort_values("start_seconds")["start_seconds"], y, marker="o", color=colors[s],
                        label=f"{s}" + (f" (n={n})" if n else ""))
            ax.set_title(f"{b} s" if b != "all" else "all long utterances")
            ax.grid(True, alpha=0.3)
            if j == 0:
                ax.set_ylabel(METRICS[col].label)
            if i == len(metrics) - 1:
                ax.set_xlabel("slice start within generated audio (s)")
            ax.legend(fontsize="x-small", frameon=False)
    fig.suptitle("Similarity and quality by position within long utterances")
    return fig


def save_figure(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    return path


def save_plots(lb: pd.DataFrame, utt: pd.DataFrame | None, pos: pd.DataFrame | None, out_dir: Path) -> dict[str, Path]:
    """Draw every figure the data allows; returns {name: png path} (missing data: no file)."""
    out_dir = Path(out_dir)
    colors = system_colors(lb["system"])  # one colour per system in every figure
    figs = {"wer_by_bucket": plot_wer_by_bucket(lb, colors) if "wer" in lb.columns else None,
            "sim_quality_by_bucket": plot_sim_quality(lb, colors),
            "rtf_vs_length": plot_rtf_vs_length(utt, colors),
            "wer_by_position": plot_wer_by_position(pos, colors),
            "sim_quality_by_position": plot_sim_quality_by_position(pos, colors)}
    return {name: save_figure(f, out_dir / f"{name}.png") for name, f in figs.items() if f is not None}
