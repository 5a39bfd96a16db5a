"""Confidence intervals of a leaderboard cell, as pure functions.

- `cell_seed(seed, system, bucket, metric)`: each cell gets its own resampling seed,
  derived from the run seed and the cell, so cells are not resampled in lockstep and a
  cell's CI does not change when other systems or buckets are added.
- `cluster_weights`: a two-stage bootstrap clustered by speaker (resample speakers with
  replacement, then, for each drawn speaker, its utterances with replacement), returned
  as integer weights per utterance. Utterances of one speaker are not independent (one
  voice is hard for a system on all its texts), so resampling utterances alone gives
  CIs that are too narrow. An utterance without a known speaker is its own cluster.
  Drawing speaker s c times and each time its n_s utterances with replacement is the
  same as one multinomial draw of c * n_s from its utterances, which vectorises.
- `percentile_ci`: the 2.5 / 97.5% quantiles of the weighted statistic; none (NaN)
  for fewer than `MIN_CI_N` utterances: a bootstrap of 2 values gives [min, max],
  which is no 95% interval.
"""

from __future__ import annotations

import hashlib
import math
from typing import Callable, Sequence

import numpy as np

MIN_CI_N = 5


def cell_seed(seed: int, *cell: str) -> int:
    h = hashlib.sha256("\0".join([str(seed), *map(str, cell)]).encode()).digest()
    return int.from_bytes(h[:8], "little")


def _clusters(speakers: Sequence | None, n: int) -> list[np.ndarray]:
    if speakers is None:
        return [np.array([i]) for i in range(n)]
    groups: dict[object, list[int]] = {}
    for i, s in enumerate(speakers):
        unknown = s is None or (isinstance(s, float) and math.isnan(s)) or s == ""
        groups.setdefault(("#", i) if unknown else ("s", str(s)), []).append(i)
    return [np.array(v) for v in groups.values()]


def cluster_weights(speakers: Sequence | None, n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) integer resampling weights: speakers, then their utterances."""
    clusters = _clusters(speakers, n)
    w = np.zeros((n_boot, n), dtype=np.float64)
    if len(clusters) == n:  # every utterance its own cluster: the plain bootstrap
        return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    k = len(clusters)
    times = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot)  # (n_boot, k): draws of each speaker
    for j, idx in enumerate(clusters):
        m = len(idx)
        w[:, idx] = rng.multinomial(times[:, j] * m, np.full(m, 1.0 / m)) if m > 1 else times[:, j:j + 1]
    return w


def percentile_ci(stat: Callable[[np.ndarray], np.ndarray], speakers: Sequence | None, n: int, n_boot: int,
                  seed: int, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile CI of `stat(weights)`; NaNs for n < MIN_CI_N or no resamples."""
    if n < MIN_CI_N or n_boot <= 0:
        return (math.nan, math.nan)
    w = cluster_weights(speakers, n, n_boot, np.random.default_rng(seed))
    s = np.asarray(stat(w), dtype=np.float64)
    s = s[np.isfinite(s)]
    if not len(s):
        return (math.nan, math.nan)
    return (float(np.quantile(s, alpha / 2)), float(np.quantile(s, 1 - alpha / 2)))


__all__ = ["MIN_CI_N", "cell_seed", "cluster_weights", "percentile_ci"]
