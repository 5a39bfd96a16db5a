"""Model checkpoints: `model.safetensors` + `config.json`, loaded strictly, never unpickled.

Layout of a checkpoint folder:

    model.safetensors   the state dict (safetensors: no code execution on load)
    config.json         {"format": "halle-bench-checkpoint", "format_version": 1,
                         "config": {...architecture, symbol table, codec identity...},
                         "extra": {...training step, metrics...},
                         "weights_sha256": "...", "versions": {...}}

Loading checks, in order, and raises `CheckpointError` naming the folder and the problem:
the files exist, config.json parses and has the format marker, the weights' sha256 equals
the recorded one (a corrupt or swapped file), the safetensors file reads, and the state dict
matches the model built from the config exactly (missing keys, unexpected keys, shapes).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from halle_bench.audio import sha256_file
from halle_bench import weights
from halle_bench.errors import CheckpointError

FORMAT = "halle-bench-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("halle-bench", "safetensors", "encodec", "phonemizer"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def save_checkpoint(directory: str | Path, model: nn.Module, config: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Write the model's weights and its config; atomic per file (tmp + rename)."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = d / (WEIGHTS + ".tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT})
    tmp.replace(d / WEIGHTS)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config,
        "extra": extra or {},
        "weights_sha256": sha256_file(d / WEIGHTS),
        "versions": versions(),
    }
    tmpc = d / (CONFIG + ".tmp")
    tmpc.write_text(json.dumps(meta, indent=2, sort_keys=True))
    tmpc.replace(d / CONFIG)
    return d


def read_config(directory: str | Path) -> dict[str, Any]:
    """The parsed config.json (whole metadata dict) of a checkpoint folder."""
    d = Path(directory)
    p = d / CONFIG
    if not d.is_dir():
        raise CheckpointError(f"checkpoint {d}: not a folder (expected {WEIGHTS} + {CONFIG} inside)")
    if not p.exists():
        raise CheckpointError(f"checkpoint {d}: {CONFIG} not found")
    try:
        meta = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {d}: {CONFIG} is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {d}: {CONFIG} is not a {FORMAT} file")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {d}: format version {meta['format_version']} is newer than this code ({FORMAT_VERSION})"
        )
    return meta


def load_state_strict(model: nn.Module, path: str | Path, where: str | None = None) -> None:
    """Load a safetensors state dict into `model`; any mismatch is a CheckpointError."""
    p = Path(path)
    where = f"checkpoint {where or p}"
    weights.load_state_strict(model, weights.safetensors_load(p, where), where, p.name)


def load_checkpoint(
    directory: str | Path, build_fn: Callable[[dict[str, Any]], nn.Module], verify: bool = True
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the model from config.json (`build_fn(meta["config"])`) and load its weights.

    Returns (model, meta). With `verify`, the weights' sha256 must equal the recorded one.
    """
    d = Path(directory)
    meta = read_config(d)
    w = d / WEIGHTS
    if not w.exists():
        raise CheckpointError(f"checkpoint {d}: weights file {WEIGHTS} not found")
    if verify and meta.get("weights_sha256"):
        got = sha256_file(w)
        if got != meta["weights_sha256"]:
            raise CheckpointError(
                f"checkpoint {d}: {WEIGHTS} has sha256 {got} but {CONFIG} records {meta['weights_sha256']}; "
                "the weights are corrupt or from another checkpoint"
            )
    try:
        model = build_fn(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {d}: cannot build the model from {CONFIG}: {e!r}") from None
    load_state_strict(model, w, where=str(d))
    return model, meta


def checkpoint_sha256(directory: str | Path) -> str:
    """One digest for a checkpoint folder (weights + config), for cache keys."""
    import hashlib

    d = Path(directory)
    h = hashlib.sha256()
    for name in (WEIGHTS, CONFIG):
        p = d / name
        if not p.exists():
            raise CheckpointError(f"checkpoint {d}: {name} not found")
        h.update(name.encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "load_state_strict",
    "read_config",
    "checkpoint_sha256",
]
