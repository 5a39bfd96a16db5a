"""Training metrics on disk: `metrics.jsonl` (one row per log / validation point, appended as it
goes), `metrics.csv` (the same rows, a column per key) and `curves.png`, one panel per
quantity against the step: loss and validation loss; the text-shuffle gap; the AR's top-10
accuracy; the speak check's WER; its CER (panels appear when their column was logged).

A resumed stage first drops the rows logged after its checkpoint (they were logged by the
interrupted run and will be logged again), so an interrupted + resumed run ends with the same
file as an uninterrupted one (timing columns aside).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable

TIMING = ("seconds", "speak_seconds")  # columns that differ between runs of the same training


class MetricsLog:
    def __init__(self, path: str | Path, stage: str, resume_step: int = 0):
        self.path = Path(path)
        self.stage = stage
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = read_rows(self.path)
        keep = [r for r in rows if r.get("stage") != stage or int(r.get("step", 0)) <= resume_step]
        if len(keep) != len(rows) or not self.path.exists():
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
            tmp.replace(self.path)

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"stage": self.stage, **row}) + "\n")


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return []
    rows = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{n}: not a JSON row ({e})") from None
    return rows


def write_csv(rows: Iterable[dict[str, Any]], path: str | Path) -> Path:
    rows = list(rows)
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in cols})
    return Path(path)


# (column, y label) of the panels after the loss panel, in order
PANELS = (
    ("val_shuffle_gap", "text-shuffle gap (nats/token): > 0 reads the text"),
    ("val_top10", "top-10 accuracy (validation)"),
    ("val_wer", "WER of held-out texts (does it speak)"),
    ("val_cer", "CER of held-out texts (speak check)"),
)


def plot_curves(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Loss and validation loss per stage, then one panel per logged `PANELS` column."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(dict.fromkeys(r.get("stage", "") for r in rows))
    panels = [(k, label) for k, label in PANELS if any(k in r for r in rows)]
    n = 1 + len(panels)
    cols = min(n, 3)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5.5 * cols, 4 * nrows), squeeze=False)
    flat = [a for row in axes for a in row]
    ax = flat[0]
    for st in stages:
        tr = [r for r in rows if r.get("stage") == st and "loss" in r]
        va = [r for r in rows if r.get("stage") == st and "val_loss" in r]
        if tr:
            ax.plot([r["step"] for r in tr], [r["loss"] for r in tr], label=f"{st} train")
        if va:
            ax.plot([r["step"] for r in va], [r["val_loss"] for r in va], "o--", label=f"{st} validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy / loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    for ax, (key, label) in zip(flat[1:], panels):
        for st in stages:
            pts = [r for r in rows if r.get("stage") == st and key in r]
            if pts:
                ax.plot([r["step"] for r in pts], [r[key] for r in pts], "o-", label=st)
        if key == "val_shuffle_gap":
            ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xlabel("step")
        ax.set_ylabel(label, fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    for ax in flat[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def finish(metrics_jsonl: str | Path, title: str = "") -> dict[str, Path | None]:
    """metrics.csv and curves.png next to `metrics_jsonl`."""
    p = Path(metrics_jsonl)
    rows = read_rows(p)
    return {"csv": write_csv(rows, p.with_name("metrics.csv")),
            "plot": plot_curves(rows, p.with_name("curves.png"), title)}


__all__ = ["MetricsLog", "read_rows", "write_csv", "plot_curves", "finish", "TIMING", "PANELS"]
