"""One registry mechanism for every extension point: the package's defaults plus plugins.

Each extension point is a `Registry`: system kinds, scorers, ASR backends, ASR model
formats, speaker models, quality models and codec kinds (and whatever a later one,
e.g. metric declarations, needs). A name is found, in this order:

1. registered already (`@registry.register("name")`, or by a `[run] plugins` module);
2. declared lazily (`registry.declare("name", "module")`): importing that module
   registers it; the package declares its own heavy entries this way, so asking for
   one imports nothing else (a WER-only run never imports torch for the speaker model);
3. the package's default modules (`defaults`), imported in order until it turns up;
4. the registry's entry-point group (`group`, e.g. ``halle_bench.asr_formats``): an
   entry point named like the entry whose object is registered under that name (a
   module object instead is just imported: it registers itself);
5. the general group ``halle_bench.plugins``: modules imported for their
   registrations, any number of kinds at once.

So a plugin adds a system, scorer, ASR backend or model format, speaker or quality
model or codec without editing halle-bench: in its own package's pyproject,

    [project.entry-points."halle_bench.plugins"]
    myplugin = "myplugin.register"          # a module full of @register_... decorators

    [project.entry-points."halle_bench.asr_formats"]
    npz-whisper = "myplugin.formats:NPZ_FORMAT"   # one object, registered by name

or, without packaging, a module listed in the run config's `[run] plugins`.

A module that fails to import (a missing optional dependency, a bug) must not take
the other entries down with it, and must not vanish silently either: its error is
kept and shown when someone asks for a name it would have registered. A name that is
already registered is never replaced by an entry point (the first wins; the clash is
reported in `errors`); `register` itself replaces, so a test or plugin may override a
default on purpose.
"""

from __future__ import annotations

import importlib
import types
from typing import Any, Callable, Generic, Iterable, TypeVar

T = TypeVar("T")

PLUGIN_GROUP = "halle_bench.plugins"
_PLUGIN_ERRORS: dict[str, str] = {}
_PLUGINS_SEEN: set[str] = set()


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


def entry_points(group: str) -> list:
    """The installed entry points of a group, in a stable order (by name, then value)."""
    from importlib.metadata import entry_points as eps

    return sorted(eps(group=group), key=lambda ep: (ep.name, ep.value))


def load_plugins() -> dict[str, str]:
    """Import every module of the ``halle_bench.plugins`` group not imported yet;
    returns the errors so far (entry point -> error)."""
    for ep in entry_points(PLUGIN_GROUP):
        key = f"{ep.name} = {ep.value}"
        if key in _PLUGINS_SEEN:
            continue
        _PLUGINS_SEEN.add(key)
        try:
            ep.load()
        except Exception as e:  # noqa: BLE001
            _PLUGIN_ERRORS[f"plugin {key}"] = f"{type(e).__name__}: {e}"
    return _PLUGIN_ERRORS


class UnknownName(LookupError):
    """Raised by `Registry.get`; the message lists the known names and import errors.
    Callers turn it into their own error type (a ConfigError for a config's name)."""


class Registry(Generic[T]):
    """Names -> objects (factories, classes, infos) for one extension point."""

    def __init__(self, what: str, group: str, defaults: Iterable[str] = ()):
        self.what = what  # the kind of thing, for messages: "system kind", "ASR model format"
        self.group = group  # entry-point group
        self.defaults = tuple(defaults)  # the package's own modules that register entries
        self.entries: dict[str, T] = {}  # insertion order = registration order
        self.descriptions: dict[str, str] = {}
        self.lazy: dict[str, str] = {}  # declared name -> module that registers it
        self.errors: dict[str, str] = {}  # module or entry point -> import error
        self._eps_seen: set[str] = set()

    # ----------------------------------------------------------------- registering
    def register(self, name: str, obj: T | None = None, description: str = "") -> Any:
        """`registry.register("x", obj)`, or as a decorator `@registry.register("x")`."""
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.what}: a name must be a non-empty string, got {name!r}")

        def put(o: T) -> T:
            self.entries[name] = o
            self.descriptions[name] = description or (getattr(o, "__doc__", None) or "").strip().split("\n")[0]
            return o

        return put(obj) if obj is not None else put

    def unregister(self, name: str) -> None:
        """Forget a name (tests; a plugin withdrawing an entry). Declared names stay declared."""
        self.entries.pop(name, None)
        self.descriptions.pop(name, None)

    def declare(self, name: str, module: str) -> None:
        """`name` is registered by importing `module` (imported only when asked for)."""
        self.lazy[name] = module

    # ----------------------------------------------------------------- looking up
    def find(self, name: str) -> T | None:
        """The entry, loading what could register it (see the module docstring); None if none does."""
        if name in self.entries:
            return self.entries[name]
        if name in self.lazy:
            import_all([self.lazy[name]], self.errors)
            if name in self.entries:
                return self.entries[name]
        for mod in self.defaults:
            import_all([mod], self.errors)
            if name in self.entries:
                return self.entries[name]
        self._load_entry_points()
        if name not in self.entries:
            load_plugins()
        return self.entries.get(name)

    def get(self, name: str) -> T:
        obj = self.find(name)
        if obj is None:
            raise UnknownName(self.unknown_message(name))
        return obj

    def unknown_message(self, name: str) -> str:
        return f"unknown {self.what} {name!r}; known: {', '.join(self.names()) or '(none)'}{describe(self.all_errors())}"

    def why_missing(self, name: str) -> str:
        """The import error of the module declared for `name`, if any."""
        mod = self.lazy.get(name)
        return self.errors.get(mod, "") if mod else ""

    def load_all(self) -> dict[str, T]:
        """Import every default module, entry point and plugin; every entry so far."""
        import_all(self.defaults, self.errors)
        import_all(sorted(set(self.lazy.values())), self.errors)
        self._load_entry_points()
        load_plugins()
        return dict(self.entries)

    def names(self) -> list[str]:
        """Every known name (declared ones without importing their module)."""
        import_all(self.defaults, self.errors)
        self._load_entry_points()
        load_plugins()
        return sorted(set(self.entries) | set(self.lazy))

    def all_errors(self) -> dict[str, str]:
        return {**self.errors, **_PLUGIN_ERRORS}

    def _load_entry_points(self) -> None:
        for ep in entry_points(self.group):
            key = f"{ep.name} = {ep.value}"
            if key in self._eps_seen:
                continue
            self._eps_seen.add(key)
            if ep.name in self.entries:
                self.errors[f"entry point {key}"] = f"{self.what} {ep.name!r} is already registered; ignored"
                continue
            try:
                obj = ep.load()
            except Exception as e:  # noqa: BLE001
                self.errors[f"entry point {key}"] = f"{type(e).__name__}: {e}"
                continue
            if not isinstance(obj, types.ModuleType) and ep.name not in self.entries:
                self.register(ep.name, obj)


class LazyBackends:
    """Names declared up front with an info object (light: no heavy imports), backend
    classes registered when their module is imported, which happens only when the name
    is asked for. Shared by the speaker and quality model registries; `what` names the
    kind in errors. Plugins declare more through the entry-point group `group` (an
    info object named like the model, or a module that declares and registers)."""

    def __init__(self, what: str, group: str):
        self.what = what
        self.reg: Registry[Any] = Registry(what, group)  # name -> info object with a `.module`
        self.backends: dict[str, type] = {}

    @property
    def info(self) -> dict[str, Any]:
        return self.reg.entries

    @property
    def errors(self) -> dict[str, str]:
        return self.reg.errors

    def declare(self, name: str, info):
        self.reg.register(name, info, description=getattr(info, "description", ""))
        return info

    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator: the backend of a declared name."""
        from .errors import HalleBenchError

        def deco(cls: type) -> type:
            if name not in self.reg.entries:
                raise HalleBenchError(f"{self.what} {name!r} registered before it was declared")
            self.backends[name] = cls
            return cls

        return deco

    def unregister(self, name: str) -> None:
        self.reg.unregister(name)
        self.backends.pop(name, None)

    def find_info(self, name: str):
        return self.reg.find(name)

    def names(self) -> list[str]:
        return self.reg.names()

    def backend(self, name: str) -> type:
        """The backend class of a declared name (the caller checked the name)."""
        from .errors import HalleBenchError

        module = self.reg.entries[name].module
        if name not in self.backends:
            import_all([module], self.reg.errors)
        if name not in self.backends:
            why = self.reg.errors.get(module, "the module registers no backend for it")
            raise HalleBenchError(f"{self.what} {name!r}: cannot load backend {module} ({why})")
        return self.backends[name]


__all__ = ["PLUGIN_GROUP", "LazyBackends", "Registry", "UnknownName", "describe", "entry_points", "import_all",
           "load_plugins"]
