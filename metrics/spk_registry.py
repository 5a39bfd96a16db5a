"""Speaker encoders by name: `@register_speaker_model("ecapa")` on a backend class.

The `sim` scorer never names a backend: it asks this registry for the model's weight
file (`weights_path`) and a loaded encoder (`load_speaker_encoder`). A backend module
registers its class at import; the built-in ones are imported only when their name is
asked for (torch, speechbrain), and an import failure is shown with the name, never
swallowed. Model specs (file name, sha256, how to get it) are declared here, light,
so `halle-bench models` lists them without importing torch. A plugin adds an encoder
without editing this file: `declare_speaker_model(SpeakerModelInfo(...))` and
`@register_speaker_model(name)` in its own module, listed in `[run] plugins` or as an
entry point (group ``halle_bench.speaker_models`` or ``halle_bench.plugins``; see
`halle_bench.registry`).

A backend class provides:

    name: str                                      # the registry name
    @classmethod load(path, device, batch) -> SpeakerEncoder   # path from weights_path
    prepare(audio) -> audio                        # whole-window preprocessing
    embed_windows(windows) -> (n, D) array         # batch-invariant
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from halle_bench.errors import ConfigError
from halle_bench.models import ModelSpec, register_model, resolve
from halle_bench.registry import LazyBackends


class SpeakerEncoder(Protocol):
    """What a loaded backend provides: preprocessing and window embeddings."""

    name: str

    def prepare(self, audio: np.ndarray) -> np.ndarray:
        """Preprocess one 16 kHz window (e.g. volume, silence trimming)."""

    def embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        """(n, D) embeddings of `windows` (any lengths), one row each, batch-invariant."""


@dataclass(frozen=True)
class SpeakerModelInfo:
    """A speaker model known by name before its backend is imported."""

    name: str
    spec: ModelSpec
    module: str  # importing it registers the backend class
    weights_in_folder: bool = False  # model_path may be a folder holding spec.filename


_REG = LazyBackends("speaker model", "halle_bench.speaker_models")


def declare_speaker_model(info: SpeakerModelInfo) -> SpeakerModelInfo:
    register_model(info.spec)
    return _REG.declare(info.name, info)


def register_speaker_model(name: str) -> Callable[[type], type]:
    """Class decorator: the backend for a declared speaker model."""
    return _REG.register(name)


def speaker_model_names() -> list[str]:
    return _REG.names()


def speaker_model_info(name: str) -> SpeakerModelInfo:
    info = _REG.find_info(name)
    if info is None:
        raise ConfigError(f"[metrics] sim: unknown model {name!r}; known: {', '.join(speaker_model_names())}")
    return info  # type: ignore[return-value]


def weights_path(name: str, model_path: str | Path | None) -> Path:
    """The main weight file of a model (checked by sha256 when the spec has one)."""
    info = speaker_model_info(name)
    if info.weights_in_folder and model_path is not None and Path(model_path).expanduser().is_dir():
        return resolve(info.spec, Path(model_path).expanduser() / info.spec.filename)
    return resolve(info.spec, model_path)


def speaker_backend(name: str) -> type:
    speaker_model_info(name)
    return _REG.backend(name)


def load_speaker_encoder(name: str, path: Path, device: str = "cpu", batch: int = 64) -> SpeakerEncoder:
    return speaker_backend(name).load(path, device=device, batch=batch)


# ---------------------------------------------------------------- built-in models

RESEMBLYZER = declare_speaker_model(SpeakerModelInfo(
    name="resemblyzer",
    module="halle_bench.metrics.spk_resemblyzer",
    spec=ModelSpec(
        name="resemblyzer",
        backend="resemblyzer",
        filename="pretrained.pt",
        description="GE2E speaker encoder (3-layer LSTM, 256-d), Resemblyzer 0.1.4",
        package="resemblyzer",
        package_files=("pretrained.pt",),
        sha256="39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
        licence="Apache-2.0",
        how_to_get="pip install Resemblyzer==0.1.4 (the weights ship inside the wheel)",
    ),
))

ECAPA = declare_speaker_model(SpeakerModelInfo(
    name="ecapa",
    module="halle_bench.metrics.spk_ecapa",
    weights_in_folder=True,
    spec=ModelSpec(
        name="ecapa",
        backend="speechbrain-ecapa",
        filename="embedding_model.ckpt",
        description="speechbrain spkrec-ecapa-voxceleb ECAPA-TDNN (192-d), local folder",
        sha256=None,
        licence="Apache-2.0",
        how_to_get=(
            "copy the Hugging Face folder speechbrain/spkrec-ecapa-voxceleb (hyperparams.yaml, "
            "embedding_model.ckpt, mean_var_norm_emb.ckpt, classifier.ckpt, label_encoder.txt) from a "
            "machine with network, then give the folder as `model_path` in [metrics] sim or place the "
            "files in $HALLE_BENCH_HOME/models/ecapa/"
        ),
        extra_files=("hyperparams.yaml", "mean_var_norm_emb.ckpt", "classifier.ckpt", "label_encoder.txt"),
    ),
))

WAVLM_TDNN = declare_speaker_model(SpeakerModelInfo(
    name="wavlm-tdnn",
    module="halle_bench.metrics.spk_wavlm",
    spec=ModelSpec(
        name="wavlm-tdnn",
        backend="unispeech-ecapa-wavlm",
        filename="wavlm_large_finetune.pth",
        description="WavLM-Large + ECAPA-TDNN speaker verifier (256-d), as in seed-tts-eval / F5-TTS",
        sha256=None,
        licence="see microsoft/UniSpeech (WavLM code: MIT); checkpoint terms as published there",
        how_to_get=(
            "download wavlm_large_finetune.pth (linked from microsoft/UniSpeech "
            "downstreams/speaker_verification) on a machine with network, then give its path as "
            "`model_path` in [metrics] sim or place it at $HALLE_BENCH_HOME/models/wavlm-tdnn/"
            "wavlm_large_finetune.pth"
        ),
    ),
))

__all__ = [
    "SpeakerEncoder",
    "SpeakerModelInfo",
    "declare_speaker_model",
    "load_speaker_encoder",
    "register_speaker_model",
    "speaker_backend",
    "speaker_model_info",
    "speaker_model_names",
    "weights_path",
]
