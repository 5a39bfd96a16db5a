"""Reading weight files safely and strictly: one implementation for every model.

`torch_load` never unpickles arbitrary objects (`weights_only=True`) and turns a
corrupt or truncated file into a `CheckpointError` naming it. `load_state_strict`
requires exactly the module's keys and shapes: missing, unexpected and mis-shaped
tensors are all listed in one error, so a wrong file never loads silently (the
`strict=False` anti-pattern).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from .errors import CheckpointError


def torch_load(path: str | Path, what: str) -> Any:
    """`torch.load(weights_only=True)` on CPU, with a clear error for a corrupt file."""
    import torch

    p = Path(path)
    try:
        return torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # zip/pickle errors, truncated files, disallowed globals
        raise CheckpointError(f"{what}: cannot read checkpoint {p}: {type(e).__name__}: {e}") from None


def safetensors_load(path: str | Path, what: str, device: str = "cpu") -> dict[str, Any]:
    """A safetensors file as a state dict; absent or unreadable is a CheckpointError."""
    from safetensors.torch import load_file

    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{what}: weights file {p} not found")
    try:
        return load_file(str(p), device=device)
    except Exception as e:  # SafetensorError / OSError on a bad file
        raise CheckpointError(f"{what}: cannot read {p}: {e}") from None


def state_dict_mismatch(own: dict[str, Any], state: dict[str, Any]) -> list[str]:
    """Human-readable differences between a module's state dict and a loaded one."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shape = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    )
    parts = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", bad_shape)):
        if keys:
            more = f" ... (+{len(keys) - 12} more)" if len(keys) > 12 else ""
            parts.append(f"{label} ({len(keys)}): {', '.join(keys[:12])}{more}")
    return parts


def load_state_strict(module, state: dict, what: str, path: str | Path, ignore_prefixes: Iterable[str] = ()) -> None:
    """Load `state` into `module` requiring exactly its keys and shapes.

    Keys starting with one of `ignore_prefixes` (training-only heads such as a loss
    layer) are dropped first; anything else that does not fit raises CheckpointError.
    """
    ignore = tuple(ignore_prefixes)
    state = {k: v for k, v in state.items() if not (ignore and k.startswith(ignore))}
    parts = state_dict_mismatch(module.state_dict(), state)
    if parts:
        raise CheckpointError(f"{what}: {path} does not match the architecture; " + "; ".join(parts))
    module.load_state_dict(state, strict=True)
