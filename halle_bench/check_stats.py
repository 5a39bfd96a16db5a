"""The statistics of the regression gate, as pure functions (no files, no pandas).

- `paired_bootstrap`: candidate vs baseline on the same utterances, with Student's t
  from the bootstrap standard error (calibrated for small buckets);
- `paired_ratio_bootstrap`: the same on sufficient statistics with weights clustered
  by speaker (what `check` uses);
- `ci_welch_p`: the fallback when only the two leaderboards' CIs are known;
- `holm`: Holm-Bonferroni adjustment over all gated cells.
Calibration figures: benchmarks/check_calibration.py.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np


def seeded_rng(seed: int, system: str, bucket: str) -> np.random.Generator:
    h = hashlib.sha256(f"{seed}\0{system}\0{bucket}".encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


@dataclass
class PairedTest:
    n: int
    diff: float  # candidate - baseline on the paired utterances
    se: float
    p: float


def paired_bootstrap(base: np.ndarray, cand: np.ndarray, stat: Callable[[np.ndarray], np.ndarray],
                     rng: np.random.Generator, n_boot: int) -> PairedTest | None:
    """Paired bootstrap of stat(cand) - stat(base) over rows (utterances); None when < 2 rows.

    `base` / `cand` are (n, k) arrays aligned row by row (same utterance)."""
    n = len(base)
    if n < 2 or n_boot < 2:
        return None
    diff = float(stat(cand[None])[0] - stat(base[None])[0])
    # Resample in blocks: a (n_boot, n, k) array for a few thousand utterances would be GBs.
    block = max(1, min(n_boot, 4_000_000 // (n * base.shape[1])))
    d = np.empty(n_boot)
    for start in range(0, n_boot, block):
        idx = rng.integers(0, n, size=(min(block, n_boot - start), n))
        d[start:start + len(idx)] = stat(cand[idx]) - stat(base[idx])
    # The bootstrap variance of a mean is (n-1)/n times the usual unbiased one; undo that
    # and use Student's t with n-1 degrees of freedom: with the 8-30 utterances of a demo
    # bucket, a normal approximation is far too confident in the tails (measured with
    # benchmarks/check_calibration.py: ~30% of noise-only runs failed; with t, ~0-3%).
    se = float(np.std(d, ddof=1)) * math.sqrt(n / (n - 1))
    if not math.isfinite(se) or se == 0.0:
        p = 1.0 if diff == 0 else 0.0
    else:
        from scipy.stats import t as student_t

        p = float(2 * student_t.sf(abs(diff) / se, df=n - 1))
    return PairedTest(n, diff, se, p)


def paired_ratio_bootstrap(base: np.ndarray, cand: np.ndarray, speakers, rng: np.random.Generator,
                           n_boot: int) -> PairedTest | None:
    """Paired bootstrap of a ratio of sums (corpus WER; a mean when column 1 is all ones)
    on (n, 2) sufficient statistics (numerator, denominator) aligned by utterance,
    resampled with the same integer weights on both sides, clustered by speaker
    (`cell_stats.cluster_weights`). Student's t with (clusters - 1) degrees of freedom."""
    from .cell_stats import _clusters, cluster_weights

    n = len(base)
    k = len(_clusters(speakers, n))
    if n < 2 or k < 2 or n_boot < 2:
        return None

    def stat(a, w):
        return (w @ a[:, 0]) / np.maximum(w @ a[:, 1], 1e-12)

    one = np.ones(n)
    diff = float(stat(cand, one) - stat(base, one))
    w = cluster_weights(speakers, n, n_boot, rng)
    d = stat(cand, w) - stat(base, w)
    d = d[np.isfinite(d)]
    se = float(np.std(d, ddof=1)) * math.sqrt(k / (k - 1)) if len(d) > 1 else math.nan
    if not math.isfinite(se) or se == 0.0:
        p = 1.0 if diff == 0 else 0.0
    else:
        from scipy.stats import t as student_t

        p = float(2 * student_t.sf(abs(diff) / se, df=k - 1))
    return PairedTest(n, diff, se, p)


def ci_welch_p(delta: float, hw_a: float, n_a: float, hw_b: float, n_b: float) -> float:
    """Two-sided p of a difference of two independent estimates known only by their 95% CIs.

    se = half-width / 1.96, rescaled by sqrt(n/(n-1)) (percentile-bootstrap CIs are
    narrow by that factor), and Welch's t with Satterthwaite degrees of freedom; with
    unknown n, a normal tail. Approximate, but calibrated on small buckets where the
    plain z-test is not (benchmarks/check_calibration.py)."""
    from scipy.stats import t as student_t

    def var(hw, n):
        v = (hw / 1.96) ** 2
        return v * n / (n - 1) if math.isfinite(n) and n > 1 else v

    va, vb = var(hw_a, n_a), var(hw_b, n_b)
    se = math.sqrt(va + vb)
    if se == 0:
        return 1.0 if delta == 0 else 0.0
    if math.isfinite(n_a) and math.isfinite(n_b) and n_a > 1 and n_b > 1:
        df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
        return float(2 * student_t.sf(abs(delta) / se, df=df))
    return math.erfc(abs(delta) / se / math.sqrt(2))


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adj = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adj[i] = running
    return adj
