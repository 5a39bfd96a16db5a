"""On-disk ASR model formats by name: how to recognise one, what identifies its weights,
which engine runs it.

A `ModelFormat` is data plus two functions:

    detect(path) -> Path | None   # the model's folder or file when `path` holds this
                                  # format; None when it does not; MissingModelError
                                  # when it looks like it but is broken
    identify(model) -> ModelRef   # name + sha256 of the weights (recorded in rows)

`detect_format` asks each registered format in registration order (the package's
`ctranslate2`, `transformers`, `openai-whisper` first, then plugins); the first that
claims the path wins. A plugin adds a format — with the engine that runs it
(`backends.register_backend`, whose `formats` names it) — without editing halle-bench:
`FORMATS.register(ModelFormat(...))` in a `[run] plugins` module, or an entry point in
the group ``halle_bench.asr_formats`` (a `ModelFormat` object named like it) or
``halle_bench.plugins`` (a module that registers). See `halle_bench.registry`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from halle_bench.audio import sha256_file
from halle_bench.errors import MissingModelError
from halle_bench.registry import Registry

from ..base import ModelRef


@dataclass(frozen=True)
class ModelFormat:
    name: str
    backend: str  # the engine that runs this format when `backend = "auto"`
    detect: Callable[[Path], Path | None]
    identify: Callable[[Path], ModelRef]
    description: str = ""  # what a path of this format holds, for "not a model" messages


FORMATS: Registry[ModelFormat] = Registry("ASR model format", "halle_bench.asr_formats")


def register_format(fmt: ModelFormat) -> ModelFormat:
    if not isinstance(fmt, ModelFormat):
        raise TypeError(f"register_format needs a ModelFormat, got {type(fmt).__name__}")
    return FORMATS.register(fmt.name, fmt, description=fmt.description)


def formats() -> list[ModelFormat]:
    """Every format, in detection order (registration order)."""
    return list(FORMATS.load_all().values())


def detect_format(path: str | Path) -> tuple[str, Path]:
    """(format name, folder or file) of a model path; MissingModelError saying what is missing."""
    p = Path(path).expanduser()
    known = formats()
    if not p.exists():
        raise MissingModelError(
            f"ASR model {str(path)!r} not found: give a registered name, or the path of "
            + ", ".join(f.description for f in known if f.description)
        )
    for f in known:
        hit = f.detect(p)
        if hit is not None:
            return f.name, hit
    if p.is_file():
        raise MissingModelError(f"{p}: not a Whisper model file (expected "
                                + "; ".join(f.description for f in known if f.description) + ")")
    raise MissingModelError(f"{p} is not a Whisper model folder: it holds none of "
                            + "; ".join(f.description for f in known if f.description))


# ---------------------------------------------------------------- the package's formats

_HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


def _detect_ct2(p: Path) -> Path | None:
    if p.is_file():
        return p.parent if p.name == "model.bin" else None
    return p if (p / "model.bin").exists() else None


def _detect_hf(p: Path) -> Path | None:
    if not p.is_dir() or not (p / "config.json").exists() or not any((p / f).exists() for f in _HF_WEIGHTS):
        return None
    try:
        kind = json.loads((p / "config.json").read_text()).get("model_type")
    except (OSError, json.JSONDecodeError) as e:
        raise MissingModelError(f"{p / 'config.json'}: unreadable ({e})") from None
    if kind != "whisper":
        raise MissingModelError(f"{p / 'config.json'}: model_type is {kind!r}, not 'whisper'")
    return p


def _detect_pt(p: Path) -> Path | None:
    return p if p.is_file() and p.suffix == ".pt" else None


def hf_weights_sha256(folder: Path) -> str:
    """sha256 of the weight files of a transformers folder (one file: its own sha256)."""
    files = sorted(f for f in folder.iterdir() if f.suffix in (".safetensors", ".bin") and f.is_file())
    if len(files) == 1:
        return sha256_file(files[0])
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{sha256_file(f)}\n".encode())
    return h.hexdigest()


CTRANSLATE2 = register_format(ModelFormat(
    name="ctranslate2", backend="ctranslate2", detect=_detect_ct2,
    identify=lambda p: ModelRef(name=f"ct2:{p.name}", sha256=sha256_file(p / "model.bin"), path=str(p / "model.bin")),
    description="a CTranslate2 Whisper folder (model.bin)",
))
TRANSFORMERS = register_format(ModelFormat(
    name="transformers", backend="transformers", detect=_detect_hf,
    identify=lambda p: ModelRef(name=f"hf:{p.name}", sha256=hf_weights_sha256(p), path=str(p)),
    description="a transformers Whisper folder (config.json + model.safetensors / pytorch_model.bin)",
))
OPENAI_WHISPER = register_format(ModelFormat(
    name="openai-whisper", backend="openai-whisper", detect=_detect_pt,
    identify=lambda p: ModelRef(name=f"whisper:{p.stem}", sha256=sha256_file(p), path=str(p)),
    description="an openai-whisper checkpoint (.pt)",
))

__all__ = ["CTRANSLATE2", "FORMATS", "OPENAI_WHISPER", "TRANSFORMERS", "ModelFormat", "detect_format", "formats",
           "hf_weights_sha256", "register_format"]
