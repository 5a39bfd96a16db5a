"""Importing the modules that register things (system kinds, scorers, model specs).

Registration happens at import (`@register_system`, `@register_scorer`,
`register_model`). A module that fails to import — a missing optional dependency, a
bug — must not take the other kinds down with it, and must not vanish silently
either: its error is kept and shown when someone asks for a name it would have
registered.
"""

from __future__ import annotations

import importlib
from typing import Iterable


def import_all(modules: Iterable[str], errors: dict[str, str]) -> None:
    """Import each module once; record failures in `errors` (module -> repr)."""
    for mod in modules:
        if mod in errors:
            continue
        try:
            importlib.import_module(mod)
        except Exception as e:  # noqa: BLE001 - any import failure is reported, not raised
            errors[mod] = f"{type(e).__name__}: {e}"


def describe(errors: dict[str, str]) -> str:
    """A suffix for 'unknown name' messages: which modules could not be loaded."""
    if not errors:
        return ""
    return "; could not load: " + "; ".join(f"{m} ({e})" for m, e in sorted(errors.items()))
