"""The "quality" scorer: predicted MOS from DNSMOS (the offline default) or UTMOS.

Config (`[metrics] quality = {...}`):

* `model` = "dnsmos" | "utmos" (default "dnsmos");
* `model_path`: for dnsmos, an optional folder holding `sig_bak_ovr.onnx` and
  `model_v8.onnx` (default: the files inside the installed `speechmos` package,
  checked by sha256); for utmos, the user's UTMOS22-strong checkpoint (`.pt`
  state dict, e.g. tarepan/SpeechMOS's `utmos22_strong_step7459_v1.pt`), required;
* `batch_size` (default 8): items per `score` call the runner sends;
* `hop_seconds` (dnsmos, default 1.0 as in Microsoft's reference): window hop;
* `threads` (dnsmos, default 1): windows scored concurrently (numbers unchanged).

Values: `quality` (DNSMOS P.835 OVRL, or the UTMOS score), `quality_model`,
and for DNSMOS also `dnsmos_sig`, `dnsmos_bak`, `dnsmos_ovrl`, `dnsmos_p808`,
`dnsmos_windows`. Every score is computed per item (windows for DNSMOS, the
item's own length for UTMOS), so batch size never changes a number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from halle_bench.audio import SCORING_SR, resample
from halle_bench.errors import CheckpointError, ConfigError
from halle_bench.models import ModelSpec, check_sha256, register_model, resolve

from .base import BaseScorer, ModelRef, ScoreItem, ScoreOutput, register_scorer

DNSMOS_P835 = register_model(
    ModelSpec(
        name="dnsmos-p835",
        backend="onnx",
        filename="sig_bak_ovr.onnx",
        description="Microsoft DNSMOS P.835 (SIG/BAK/OVRL), non-personalised",
        package="speechmos",
        package_files=("dnsmos_models/sig_bak_ovr.onnx",),
        sha256="269fbebdb513aa23cddfbb593542ecc540284a91849ac50516870e1ac78f6edd",
        licence="MIT",
    )
)
DNSMOS_P808 = register_model(
    ModelSpec(
        name="dnsmos-p808",
        backend="onnx",
        filename="model_v8.onnx",
        description="Microsoft DNSMOS P.808 (overall MOS)",
        package="speechmos",
        package_files=("dnsmos_models/model_v8.onnx",),
        sha256="9246480c58567bc6affd4200938e77eef49468c8bc7ed3776d109c07456f6e91",
        licence="MIT",
    )
)
UTMOS22 = register_model(
    ModelSpec(
        name="utmos22-strong",
        backend="utmos",
        filename="utmos22_strong_step7459_v1.pt",
        description="UTMOS22 strong learner (wav2vec2-base + BLSTM), SpeechMOS state dict",
        sha256=None,  # user file: its sha256 is computed and recorded
        licence="MIT",
        how_to_get=(
            "download utmos22_strong_step7459_v1.pt (tarepan/SpeechMOS release v1.0.0) on a machine with "
            "network access and give its path as metrics.quality.model_path, or put it at "
            "$HALLE_BENCH_HOME/models/utmos22-strong/utmos22_strong_step7459_v1.pt"
        ),
    )
)

MODELS = ("dnsmos", "utmos")


@register_scorer("quality")
class QualityScorer(BaseScorer):
    name: ClassVar[str] = "quality"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {
        "quality": True,
        "dnsmos_sig": True,
        "dnsmos_bak": True,
        "dnsmos_ovrl": True,
        "dnsmos_p808": True,
        "utmos": True,
    }
    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        self.model_name = str(self.config.get("model", "dnsmos"))
        if self.model_name not in MODELS:
            raise ConfigError(f"metrics.quality.model must be one of {', '.join(MODELS)}, got {self.model_name!r}")
        self.model_path = self.config.get("model_path")
        self.batch_size = int(self.config.get("batch_size", 8))
        self.hop_seconds = float(self.config.get("hop_seconds", 1.0))
        self.threads = int(self.config.get("threads", 1))
        if self.batch_size < 1 or self.hop_seconds <= 0:
            raise ConfigError("metrics.quality: batch_size must be >= 1 and hop_seconds > 0")
        self._model = None
        self._refs: list[ModelRef] = []

    def settings(self) -> dict[str, Any]:
        s: dict[str, Any] = {"model": self.model_name}
        if self.model_name == "dnsmos":
            s["hop_seconds"] = self.hop_seconds  # threads: not here, it never changes a number
        return s

    def _dnsmos_paths(self) -> tuple[Path, Path]:
        base = Path(self.model_path).expanduser() if self.model_path else None
        p835 = resolve(DNSMOS_P835, base / DNSMOS_P835.filename if base else None)
        p808 = resolve(DNSMOS_P808, base / DNSMOS_P808.filename if base else None)
        return p835, p808

    def models(self) -> list[ModelRef]:
        if self._refs:
            return list(self._refs)
        if self.model_name == "dnsmos":
            p835, p808 = self._dnsmos_paths()
            return [
                ModelRef(DNSMOS_P835.name, DNSMOS_P835.sha256 or "", str(p835)),
                ModelRef(DNSMOS_P808.name, DNSMOS_P808.sha256 or "", str(p808)),
            ]
        p = resolve(UTMOS22, self.model_path)
        return [ModelRef(UTMOS22.name, check_sha256(p, None, UTMOS22.name), str(p))]

    def load(self, device: str) -> None:
        super().load(device)
        self._refs = self.models()
        if self.model_name == "dnsmos":
            from .dnsmos import Dnsmos

            self._model = Dnsmos(self._refs[0].path, self._refs[1].path, hop_seconds=self.hop_seconds, threads=self.threads)
        else:
            from .utmos import load_utmos

            try:
                self._model = load_utmos(self._refs[0].path, device=device)
            except CheckpointError as e:  # a corrupt file, or not a UTMOS22-strong state dict
                raise ConfigError(f"metrics.quality.model_path: {e}") from None

    def close(self) -> None:
        self._model = None

    def score(self, items: list[ScoreItem]) -> list[ScoreOutput]:
        if self._model is None:
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
        if self.model_name == "dnsmos":
            # All windows of the batch in one pool (each still scored alone).
            for i, s in zip(clips, self._model.score_many(list(clips.values()), SCORING_SR)):
                out[i] = ScoreOutput(values=_dnsmos_values(s))
        else:
            for i, x in clips.items():
                try:
                    v = float(self._model.score(x, SCORING_SR))
                    out[i] = ScoreOutput(values={"quality": v, "quality_model": UTMOS22.name, "utmos": v})
                except ValueError as e:  # too short for the conv stack
                    out[i] = ScoreOutput(error=f"quality: {e}")
        return [o if o is not None else ScoreOutput(error="quality: not scored") for o in out]


def _dnsmos_values(s) -> dict[str, Any]:
    return {
        "quality": s.ovrl,
        "quality_model": "dnsmos-p835-ovrl",
        "dnsmos_sig": s.sig,
        "dnsmos_bak": s.bak,
        "dnsmos_ovrl": s.ovrl,
        "dnsmos_p808": s.p808,
        "dnsmos_windows": s.n_windows,
    }
