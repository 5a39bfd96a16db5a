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


class LazyBackends:
    """Names declared up front (light: no heavy imports), backend classes registered
    when their module is imported, which happens only when the name is asked for.
    Shared by the speaker and quality model registries; `what` names the kind in errors."""

    def __init__(self, what: str):
        self.what = what
        self.info: dict[str, object] = {}  # name -> info object with a `.module`
        self.backends: dict[str, type] = {}
        self.errors: dict[str, str] = {}

    def declare(self, name: str, info):
        self.info[name] = info
        return info

    def register(self, name: str):
        """Class decorator: the backend of a declared name."""
        from .errors import HalleBenchError

        def deco(cls: type) -> type:
            if name not in self.info:
                raise HalleBenchError(f"{self.what} {name!r} registered before it was declared")
            self.backends[name] = cls
            return cls

        return deco

    def names(self) -> list[str]:
        return sorted(self.info)

    def backend(self, name: str) -> type:
        """The backend class of a declared name (the caller checked the name)."""
        from .errors import HalleBenchError

        module = self.info[name].module  # type: ignore[attr-defined]
        if name not in self.backends:
            import_all([module], self.errors)
        if name not in self.backends:
            why = self.errors.get(module, "the module registers no backend for it")
            raise HalleBenchError(f"{self.what} {name!r}: cannot load backend {module} ({why})")
        return self.backends[name]
