"""Windowed speaker-similarity maths (pure functions, numpy only).

Shared by the `sim` scorer (`metrics/speaker.py`) and the encoder backends
(`spk_resemblyzer`, `spk_ecapa`, `spk_wavlm`), which only need `run_grouped`. Keeping it
here, apart from the scorer, is what breaks the old speaker <-> spk_* import cycle.

Decisions (they move numbers, so they are recorded here):

- Windows are cut from the *original* waveform (`window_bounds`): fixed `window_s`
  windows every `hop_s` from sample 0, so positions depend only on the length. The
  last window always ends at the clip's end: a tail shorter than `min_s` is merged into
  the window before it rather than dropped (a voice that changes in the last second
  must not vanish from `sim_last`).
- Similarity of long audio is the length-weighted mean of *window cosines*
  (`window_similarity`), never the cosine of averaged embeddings: averaging first lets
  a voice that drifts away score higher than its windows (cosines 0.8 and 0.4 give
  0.60 here, about 0.69 when the embeddings are averaged first).
- The target a window is compared with (the prompt, the reference) is one embedding:
  the length-weighted mean of its own normalised window embeddings, renormalised
  (`pool_embeddings`): a voice sample has one speaker, and pooling averages out noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np


def window_bounds(
    n_samples: int, sr: int = 16000, window_s: float = 10.0, hop_s: float | None = None, min_s: float = 1.0
) -> list[tuple[int, int]]:
    """Deterministic [start, end) sample windows; the last one ends at `n_samples`."""
    if n_samples <= 0:
        return []
    win = max(1, int(round(window_s * sr)))
    hop = max(1, int(round((hop_s if hop_s is not None else window_s) * sr)))
    min_len = int(round(min_s * sr))
    out: list[tuple[int, int]] = []
    start = 0
    while start < n_samples:
        end = min(start + win, n_samples)
        if end - start >= min_len or not out:
            out.append((start, end))
        else:  # a short tail joins the window before it, so the last window ends at the clip's end
            out[-1] = (out[-1][0], end)
        if end >= n_samples:
            break
        start += hop
    return out


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), eps)


def pool_embeddings(window_embs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted mean of L2-normalised window embeddings, renormalised: (n, D) -> (D,)."""
    e = l2_normalize(np.atleast_2d(window_embs))
    w = np.ones(len(e)) if weights is None else np.asarray(weights, dtype=np.float64)
    return l2_normalize((w[:, None] * e).sum(axis=0) / w.sum())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = l2_normalize(a), l2_normalize(b)
    return float(np.clip(np.dot(a, b), -1.0, 1.0))


@dataclass(frozen=True)
class WindowSimilarity:
    """Window cosines of one waveform against one target embedding."""

    mean: float  # length-weighted mean of the window cosines
    min: float  # the lowest window
    last: float  # the last window (it ends at the clip's end)
    cosines: tuple[float, ...]  # per window, in time order


def window_similarity(window_embs: np.ndarray, weights: np.ndarray, target: np.ndarray) -> WindowSimilarity:
    """Cosine of every window embedding with `target`, summarised (see module docstring)."""
    e = l2_normalize(np.atleast_2d(np.asarray(window_embs, dtype=np.float64)))
    t = l2_normalize(np.asarray(target, dtype=np.float64).reshape(-1))
    cos = np.clip(e @ t, -1.0, 1.0)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if cos.size == 0 or cos.size != w.size or not np.all(w > 0):
        raise ValueError(f"window_similarity: {cos.size} windows with {w.size} positive weights expected")
    return WindowSimilarity(
        mean=float(np.sum(w * cos) / np.sum(w)),
        min=float(cos.min()),
        last=float(cos[-1]),
        cosines=tuple(float(c) for c in cos),
    )


def position_profile(
    values: list[float], weights: list[float], centres_s: list[float], total_s: float, slice_s: float = 30.0
) -> list[float | None]:
    """Weighted mean of per-window values per `slice_s` slice of a clip of `total_s`,
    each window assigned to the slice holding its centre; None for a slice with no window."""
    n = max(1, math.ceil(total_s / slice_s - 1e-9))
    num, den = [0.0] * n, [0.0] * n
    for v, w, c in zip(values, weights, centres_s):
        k = min(n - 1, max(0, int(c // slice_s)))
        num[k] += w * v
        den[k] += w
    return [float(num[k] / den[k]) if den[k] > 0 else None for k in range(n)]


def group_by_length(arrays: list[np.ndarray]) -> dict[int, list[int]]:
    """Indices of equal-length arrays, lengths in ascending order (deterministic)."""
    groups: dict[int, list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(len(a), []).append(i)
    return dict(sorted(groups.items()))


def run_grouped(arrays: list[np.ndarray], fn: Callable[[np.ndarray], np.ndarray], max_batch: int) -> np.ndarray:
    """Apply `fn` to stacks of equal-length arrays (at most `max_batch` per call), keep order.

    This is how every backend batches: no padding, so batching cannot change results.
    """
    out: list[np.ndarray | None] = [None] * len(arrays)
    for _, idx in group_by_length(arrays).items():
        for s in range(0, len(idx), max_batch):
            chunk = idx[s : s + max_batch]
            res = np.asarray(fn(np.stack([arrays[i] for i in chunk])))
            for j, i in enumerate(chunk):
                out[i] = res[j]
    return np.stack(out) if out else np.zeros((0, 0), dtype=np.float32)


__all__ = [
    "WindowSimilarity",
    "cosine",
    "group_by_length",
    "l2_normalize",
    "pool_embeddings",
    "position_profile",
    "run_grouped",
    "window_bounds",
    "window_similarity",
]
