"""Training metrics on disk: `metrics.jsonl` (one row per log / validation point, appended as it
goes), `metrics.csv` (the same rows, a column per key) and `curves.png` (loss, validation loss
and validation WER against the step).

A resumed stage first drops the rows logged after its checkpoint (they were logged by the
interrupted run and will be logged again), so an interrupted + resumed run ends with the same
file as an uninterrupted one (timing columns aside).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable

TIMING = ("seconds",)  # columns that differ between runs of the same training


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


def plot_curves(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Loss and validation loss per stage (left), validation WER per stage (right, when logged)."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(dict.fromkeys(r.get("stage", "") for r in rows))
    has_wer = any("val_wer" in r for r in rows)
    fig, axes = plt.subplots(1, 2 if has_wer else 1, figsize=(11 if has_wer else 6, 4), squeeze=False)
    ax = axes[0][0]
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
    if has_wer:
        ax2 = axes[0][1]
        for st in stages:
            w = [r for r in rows if r.get("stage") == st and "val_wer" in r]
            if w:
                ax2.plot([r["step"] for r in w], [r["val_wer"] for r in w], "o-", label=st)
        ax2.set_xlabel("step")
        ax2.set_ylabel("WER of held-out texts (does it speak)")
        ax2.legend(fontsize=8)
        ax2.grid(alpha=0.3)
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


__all__ = ["MetricsLog", "read_rows", "write_csv", "plot_curves", "finish", "TIMING"]
