"""The model registry: every weight file halle-bench can use, as data.

A `ModelSpec` says where a model's files come from — a file inside an installed
PyPI package (possibly split into parts that are concatenated), or a local path
the user provides — with its sha256 and licence. Nothing is ever downloaded.

Resolution order for a model's file:
1. an explicit path from the config (`model_path = ...`),
2. `$HALLE_BENCH_HOME/models/<name>/<filename>` (default home: ~/.cache/halle-bench),
3. the installed package (`package` + `package_files`; parts are concatenated once
   into the home folder, as `prefetch` does).
A file that is absent raises `MissingModelError` naming the file and how to
provide it; a file whose sha256 differs from the spec raises `ChecksumError`.

Modules that own a backend register their specs at import (`register_model`);
`all_models()` imports those modules so `halle-bench models list` sees them all.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from .audio import sha256_file
from .errors import ChecksumError, MissingModelError


def home() -> Path:
    return Path(os.environ.get("HALLE_BENCH_HOME", Path.home() / ".cache" / "halle-bench"))


@dataclass(frozen=True)
class ModelSpec:
    """One model's weights and provenance.

    `package_files` are paths inside the installed `package`'s folder; more than one
    means parts to concatenate in order into `filename`. `sha256` is of the final
    (concatenated) file; None for user-provided models, whose sha256 is computed and
    recorded instead of checked.
    """

    name: str
    backend: str  # which code loads it: "whisper-ct2", "whisper-pt", "resemblyzer", ...
    filename: str
    description: str = ""
    package: str | None = None
    package_files: tuple[str, ...] = ()
    sha256: str | None = None
    licence: str = "unknown"
    how_to_get: str = ""  # shown when the file is missing
    extra_files: tuple[str, ...] = field(default_factory=tuple)  # other files in the package folder

    @property
    def source(self) -> str:
        return f"pypi:{self.package}" if self.package else "user path"


_SPECS: dict[str, ModelSpec] = {}

# Modules that register specs when imported.
_SPEC_MODULES = (
    "halle_bench.metrics.asr",
    "halle_bench.metrics.speaker",
    "halle_bench.metrics.quality",
    "halle_bench.baselines.codec",
    "halle_bench.baselines.shipped",
)


def register_model(spec: ModelSpec) -> ModelSpec:
    _SPECS[spec.name] = spec
    return spec


_IMPORT_ERRORS: dict[str, str] = {}


def all_models() -> dict[str, ModelSpec]:
    from .registry import import_all

    import_all(_SPEC_MODULES, _IMPORT_ERRORS)
    return dict(sorted(_SPECS.items()))


def get_spec(name: str) -> ModelSpec:
    # import the registering modules only until the name turns up: a WER-only run
    # does not import the codec (torch and the baselines) to look up whisper-base
    from .registry import import_all

    for mod in _SPEC_MODULES:
        if name in _SPECS:
            return _SPECS[name]
        import_all((mod,), _IMPORT_ERRORS)
    specs = all_models()
    if name not in specs:
        from .registry import describe

        raise MissingModelError(f"unknown model {name!r}; known: {', '.join(specs)}{describe(_IMPORT_ERRORS)}")
    return specs[name]


def package_dir(package: str) -> Path | None:
    """Folder of an installed top-level package, without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent if spec.origin else None


def cached_path(spec: ModelSpec) -> Path:
    return home() / "models" / spec.name / spec.filename


def _package_parts(spec: ModelSpec) -> list[Path] | None:
    if not spec.package:
        return None
    parts: list[Path] = []
    for rel in spec.package_files:
        pkg, _, sub = rel.partition(":")  # "pkg:path" names another package's folder
        base = package_dir(pkg if sub else spec.package)
        if base is None:
            return None
        p = base / (sub if sub else rel)
        if not p.exists():
            return None
        parts.append(p)
    return parts


def _missing(spec: ModelSpec, where: str) -> MissingModelError:
    how = spec.how_to_get or (
        f"pip install {spec.package}" if spec.package else f"put the file at {cached_path(spec)} or give its path in the config"
    )
    return MissingModelError(f"model '{spec.name}': weight file not found ({where}). To provide it: {how}")


def check_sha256(path: Path, expected: str | None, name: str) -> str:
    got = sha256_file(path)
    if expected is not None and got != expected:
        raise ChecksumError(
            f"model '{name}': {path} has sha256 {got}, expected {expected}; the file is corrupt or a different model"
        )
    return got


def resolve(name_or_spec: str | ModelSpec, path: str | Path | None = None, verify: bool = True) -> Path:
    """Local path of a model's main file (see the module docstring for the order)."""
    spec = get_spec(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            raise _missing(spec, str(p))
        if verify and spec.sha256:
            check_sha256(p, spec.sha256, spec.name)
        return p
    cp = cached_path(spec)
    if cp.exists():
        if verify and spec.sha256:
            check_sha256(cp, spec.sha256, spec.name)
        return cp
    parts = _package_parts(spec)
    if parts is None:
        raise _missing(spec, str(cp) if not spec.package else f"package {spec.package} not installed or incomplete")
    if len(parts) == 1:
        if verify and spec.sha256:
            check_sha256(parts[0], spec.sha256, spec.name)
        return parts[0]
    return prefetch(spec)


def prefetch(spec: ModelSpec) -> Path:
    """Materialise a split package file into the home folder (no network)."""
    parts = _package_parts(spec)
    if parts is None:
        raise _missing(spec, f"package {spec.package}")
    out = cached_path(spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as w:
        for p in parts:
            with open(p, "rb") as r:
                while chunk := r.read(1 << 22):
                    w.write(chunk)
    if spec.sha256:
        try:
            check_sha256(tmp, spec.sha256, spec.name)
        except ChecksumError:
            tmp.unlink(missing_ok=True)
            raise
    tmp.replace(out)
    return out


def status(spec: ModelSpec) -> dict[str, str]:
    """Row for `models list`: present or not, where. Reads no weights and writes
    nothing (a split package file counts as present when all its parts are)."""
    cp = cached_path(spec)
    parts = _package_parts(spec)
    if cp.exists():
        present, where = "yes", str(cp)
    elif parts:
        present = "yes"
        where = str(parts[0]) if len(parts) == 1 else f"{len(parts)} parts in {spec.package} (joined on first use)"
    else:
        present, where = "no", str(_missing(spec, str(cp) if not spec.package else f"package {spec.package}"))
    return {
        "name": spec.name,
        "backend": spec.backend,
        "source": spec.source,
        "sha256": spec.sha256 or "(user file)",
        "licence": spec.licence,
        "present": present,
        "path": where,
    }
