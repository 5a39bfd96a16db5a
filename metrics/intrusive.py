"""The "intrusive" scorer: PESQ (P.862.2 wb / P.862 nb) and STOI / ESTOI against reference audio.

Meant for codec resynthesis and other outputs that are time-aligned with the
reference; for free-running TTS the numbers mean little (no alignment is done).

Config (`[metrics] intrusive = {...}`): `pesq` = "wb" | "nb" | false (default "wb"),
`stoi` = true, `estoi` = true, `batch_size` (default 16).
Values: `pesq`, `stoi`, `estoi` (each only when enabled), `intrusive_seconds`
(the compared length). All higher is better.

Decisions where the packages are silent:

* **Lengths** differ for generated audio: both signals are trimmed to the shorter
  one (from the start), the usual choice of codec evaluations; `intrusive_seconds`
  records how much was compared, and a generation that stops early is therefore
  judged only on what it produced (the long-form scorer flags truncation).
* **Rates**: wide-band PESQ runs at 16 kHz; narrow-band PESQ resamples both signals
  to 8 kHz (polyphase, `halle_bench.audio.resample`), as P.862 narrow-band expects.
  STOI/ESTOI get the 16 kHz signals; pystoi resamples to 10 kHz itself.
* **Errors**: a PESQ failure (no utterance detected, buffer too short) or a silent
  signal makes the item an error with the reason; nothing raises out of a batch.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from halle_bench.audio import SCORING_SR, is_silent, resample
from halle_bench.errors import ConfigError

from .base import NEEDS_REFERENCE, BaseScorer, ScoreItem, ScoreOutput, register_scorer

PESQ_MODES = ("wb", "nb")


def align_lengths(ref: np.ndarray, deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trim both signals to the shorter length (from the start)."""
    n = min(ref.size, deg.size)
    return ref[:n], deg[:n]


def pesq_score(ref: np.ndarray, deg: np.ndarray, sr: int = SCORING_SR, mode: str = "wb") -> float:
    """PESQ of `deg` against `ref` (equal lengths, same rate); raises the package's PesqError."""
    from pesq import pesq

    if mode not in PESQ_MODES:
        raise ValueError(f"PESQ mode must be 'wb' or 'nb', got {mode!r}")
    if mode == "nb" and sr != 8000:
        ref, deg, sr = resample(ref, sr, 8000), resample(deg, sr, 8000), 8000
    if mode == "wb" and sr != 16000:
        ref, deg, sr = resample(ref, sr, 16000), resample(deg, sr, 16000), 16000
    return float(pesq(sr, ref, deg, mode))


def stoi_score(ref: np.ndarray, deg: np.ndarray, sr: int = SCORING_SR, extended: bool = False) -> float:
    """(E)STOI of `deg` against `ref` (equal lengths), pystoi's implementation."""
    from pystoi import stoi

    return float(stoi(ref, deg, sr, extended=extended))


@register_scorer("intrusive")
class IntrusiveScorer(BaseScorer):
    name: ClassVar[str] = "intrusive"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset({NEEDS_REFERENCE})

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        pesq_mode = self.config.get("pesq", "wb")
        if pesq_mode is True:
            pesq_mode = "wb"
        if pesq_mode not in (*PESQ_MODES, False, None):
            raise ConfigError(f"metrics.intrusive.pesq must be 'wb', 'nb' or false, got {pesq_mode!r}")
        self.pesq_mode: str | None = pesq_mode or None
        self.use_stoi = bool(self.config.get("stoi", True))
        self.use_estoi = bool(self.config.get("estoi", True))
        if not (self.pesq_mode or self.use_stoi or self.use_estoi):
            raise ConfigError("metrics.intrusive: pesq, stoi and estoi are all disabled")
        self.batch_size = int(self.config.get("batch_size", 16))

    def settings(self) -> dict[str, Any]:
        return {"pesq": self.pesq_mode or False, "stoi": self.use_stoi, "estoi": self.use_estoi, "align": "trim-to-shorter"}

    def score(self, items: list[ScoreItem]) -> list[ScoreOutput]:
        return [self._score_one(it) for it in items]

    def _score_one(self, item: ScoreItem) -> ScoreOutput:
        if item.reference is None:
            return ScoreOutput(error="intrusive: needs reference audio, none for this utterance")
        deg = np.asarray(item.audio, dtype=np.float32).reshape(-1)
        ref = np.asarray(item.reference, dtype=np.float32).reshape(-1)
        if item.sample_rate != SCORING_SR:  # the reference always arrives at 16 kHz
            deg = resample(deg, item.sample_rate, SCORING_SR)
        if not (np.all(np.isfinite(deg)) and np.all(np.isfinite(ref))):
            return ScoreOutput(error="intrusive: audio contains NaN/inf samples")
        ref, deg = align_lengths(ref, deg)
        if ref.size == 0:
            return ScoreOutput(error="intrusive: empty audio")
        if is_silent(ref) or is_silent(deg):
            return ScoreOutput(error="intrusive: {} is silent".format("reference" if is_silent(ref) else "audio"))
        values: dict[str, Any] = {"intrusive_seconds": ref.size / SCORING_SR}
        if self.pesq_mode:
            try:
                values["pesq"] = pesq_score(ref, deg, SCORING_SR, self.pesq_mode)
            except Exception as e:  # pesq.PesqError subclasses RuntimeError; its message is bytes
                msg = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
                return ScoreOutput(error=f"intrusive: PESQ failed ({type(e).__name__}: {msg})")
        if self.use_stoi:
            values["stoi"] = stoi_score(ref, deg, SCORING_SR, extended=False)
        if self.use_estoi:
            values["estoi"] = stoi_score(ref, deg, SCORING_SR, extended=True)
        return ScoreOutput(values=values)


# ----------------------------------------------------------------------------- metric declarations

from halle_bench.metric_decl import Metric  # noqa: E402
from halle_bench.metric_registry import register_metric  # noqa: E402

INTRUSIVE_METRICS = (
    Metric("pesq", ("pesq",), direction="higher", scorer="intrusive", digits=2, sd_prior=0.3, label="PESQ",
           short="PESQ", why_missing="no `intrusive` scorer or no reference audio"),
    Metric("stoi", ("stoi",), direction="higher", scorer="intrusive", sd_prior=0.03, label="STOI", short="STOI",
           why_missing="no `intrusive` scorer or no reference audio"),
    Metric("estoi", ("estoi",), direction="higher", scorer="intrusive", sd_prior=0.03, show=False, label="ESTOI",
           why_missing="no `intrusive` scorer or no reference audio"),
)
for _m in INTRUSIVE_METRICS:
    register_metric(_m)
