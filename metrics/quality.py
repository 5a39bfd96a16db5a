"""The "quality" scorer: predicted MOS per window, covering the whole clip.

Models are registered by name (`metrics/quality_registry.py`): `dnsmos` (the offline
default: the ONNX files inside `speechmos`, checked by sha256) and `utmos` (the user's
UTMOS22-strong checkpoint).

Config (`[metrics] quality = {...}`):

* `model` = "dnsmos" | "utmos" (default "dnsmos");
* `model_path`: for dnsmos, an optional folder holding `sig_bak_ovr.onnx` and
  `model_v8.onnx`; for utmos, the checkpoint (`.pt` state dict, e.g. tarepan/SpeechMOS's
  `utmos22_strong_step7459_v1.pt`), required;
* `batch_size` (default 8): items per `score` call the runner sends;
* `position_seconds` (default 30): slice width of `pos_quality`;
* dnsmos: `hop_seconds` (default 9.01 = the native window: non-overlapping windows plus
  the one ending at the clip's end; 1.0 is Microsoft's reference, ~9x the work),
  `threads` (default "auto" = the usable cores: windows scored concurrently) and
  `window_batch` (windows per ONNX call; default "auto" = 1 on CPU, 32 on CUDA); neither
  changes a number;
* utmos: `window_seconds` (default 10) and `hop_seconds` (default = window).

Values (maths in `metrics/quality_windows.py`): the windows cover the whole clip, the
last one ending exactly at the clip's end; a clip not longer than one window is scored
once. `quality` = mean of the window scores (DNSMOS: P.835 OVRL; UTMOS: its MOS),
`quality_min` = the lowest window, `quality_last` = the window ending at the clip's end,
`pos_quality` = mean per `position_seconds` slice of the clip (a window counts in the
slice holding its centre; None for a slice without one), `quality_model`; for DNSMOS
also `dnsmos_sig`, `dnsmos_bak`, `dnsmos_ovrl`, `dnsmos_p808` (window means) and
`dnsmos_windows`; for UTMOS `utmos`. Every window is scored alone, so batch size never
changes a number. While a batch is scored the scorer reports progress per window
through its `progress` hook (`metrics.base.score_with_progress`), so a long clip's
progress moves while it is scored.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from halle_bench.audio import SCORING_SR, resample
from halle_bench.errors import ConfigError

from .base import BaseScorer, ModelRef, ScoreItem, ScoreOutput, register_scorer
from .quality_registry import DNSMOS_P808, DNSMOS_P835, UTMOS22, quality_backend, quality_model_names
from .quality_windows import WindowScores, summarize

_COMMON_KEYS = frozenset({"model", "model_path", "batch_size", "position_seconds"})


@register_scorer("quality")
class QualityScorer(BaseScorer):
    name: ClassVar[str] = "quality"
    version: ClassVar[str] = "2"  # 2: windows reach the clip's end; quality_min/last, pos_quality; utmos windowed
    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        self.model_name = str(self.config.get("model", "dnsmos"))
        backend = quality_backend(self.model_name)  # ConfigError naming the known models
        unknown = sorted(set(self.config) - _COMMON_KEYS - backend.config_keys)
        if unknown:
            known = ", ".join(sorted(_COMMON_KEYS | backend.config_keys))
            raise ConfigError(f"metrics.quality ({self.model_name}): unknown key(s) {', '.join(unknown)}; known: {known}")
        self.model_path = self.config.get("model_path")
        try:
            self.batch_size = int(self.config.get("batch_size", 8))
            self.position_s = float(self.config.get("position_seconds", 30.0))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"metrics.quality: bad number: {e}") from None
        if self.batch_size < 1 or self.position_s <= 0:
            raise ConfigError("metrics.quality: batch_size must be >= 1 and position_seconds > 0")
        self.model = backend(self.config, self.model_path)
        self._loaded = False

    def settings(self) -> dict[str, Any]:
        return {"model": self.model_name, "position_seconds": self.position_s, **self.model.settings()}

    def models(self) -> list[ModelRef]:
        return self.model.models()

    def load(self, device: str) -> None:
        super().load(device)
        self.model.load(device)
        self._loaded = True

    def close(self) -> None:
        self.model = quality_backend(self.model_name)(self.config, self.model_path)
        self._loaded = False

    def score(self, items: list[ScoreItem]) -> list[ScoreOutput]:
        if not self._loaded:
            self.load(self.device)
        out: list[ScoreOutput | None] = [None] * len(items)
        clips: dict[int, np.ndarray] = {}
        for i, it in enumerate(items):
            x = np.asarray(it.audio, dtype=np.float32).reshape(-1)
            if x.size == 0:
                out[i] = ScoreOutput(error="quality: empty audio")
            elif not np.all(np.isfinite(x)):
                out[i] = ScoreOutput(error="quality: audio contains NaN/inf samples")
            else:
                clips[i] = x if it.sample_rate == SCORING_SR else resample(x, it.sample_rate, SCORING_SR)
        scored = (self.model.score_clips(list(clips.values()), progress=self._window_progress(len(clips)))
                  if getattr(self.model, "window_progress", False) else self.model.score_clips(list(clips.values())))
        for i, ws in zip(clips, scored):
            out[i] = ScoreOutput(error=ws) if isinstance(ws, str) else ScoreOutput(values=self._values(ws))
        return [o if o is not None else ScoreOutput(error="quality: not scored") for o in out]

    def _window_progress(self, n_items: int):
        """(windows done, windows in all) -> this batch's items done, as a fraction, to
        the driver's `progress` hook (none set: nothing reported)."""
        hook = self.progress
        if hook is None or n_items == 0:
            return None
        last = [0.0]

        def report(done: int, total: int) -> None:
            now = n_items * done / max(1, total)
            hook(now - last[0])
            last[0] = now

        return report

    def _values(self, ws: WindowScores) -> dict[str, Any]:
        s = summarize(ws, SCORING_SR, self.position_s)
        return {
            "quality": s.mean,
            "quality_min": s.min,
            "quality_last": s.last,
            "quality_model": self.model.label,
            **ws.extra,
            "pos_quality": s.pos,
        }


__all__ = ["DNSMOS_P808", "DNSMOS_P835", "UTMOS22", "QualityScorer", "quality_model_names"]


# ----------------------------------------------------------------------------- metric declarations
# What the leaderboard, report, plots and gate make of this scorer's columns (halle_bench/metric_decl.py).

from halle_bench.metric_decl import ALIAS, HEADLINE, Bound, Metric  # noqa: E402
from halle_bench.metric_registry import register_metric  # noqa: E402

_Q = dict(direction="higher", scorer="quality", count_column="n_quality", digits=2, unit="MOS",
          why_missing="no `quality` scorer in the candidate run")
QUALITY_METRICS = (
    # 0.8 MOS lost in any bucket (noise, babble) fails without a test (0.5 is chance in a cell of 2).
    Metric("quality", ("quality",), role=HEADLINE, ci="mean", model_column="quality_model", sd_prior=0.3,
           bound=Bound(abs=0.8), plot="points", positional=("pos_quality",), claims=("dnsmos_windows",),
           label="predicted quality (MOS)", short="quality", **_Q),
    Metric("quality_min", ("quality_min",), sd_prior=0.4, label="lowest window quality", short="q min", **_Q),
    Metric("quality_last", ("quality_last",), sd_prior=0.4, label="last window quality", short="q last", **_Q),
    Metric("dnsmos_sig", ("dnsmos_sig",), sd_prior=0.3, show=False, label="DNSMOS SIG", **_Q),
    Metric("dnsmos_bak", ("dnsmos_bak",), sd_prior=0.3, show=False, label="DNSMOS BAK", **_Q),
    Metric("dnsmos_p808", ("dnsmos_p808",), sd_prior=0.3, show=False, label="DNSMOS P.808", **_Q),
    # The same number as `quality` under the model that produced it: shown in the CSV, compared once (as quality).
    Metric("dnsmos_ovrl", ("dnsmos_ovrl",), role=ALIAS, alias_of="quality", show=False, label="DNSMOS OVRL", **_Q),
    Metric("utmos", ("utmos",), role=ALIAS, alias_of="quality", show=False, label="UTMOS", **_Q),
)
for _m in QUALITY_METRICS:
    register_metric(_m)
