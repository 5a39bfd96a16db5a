"""Registers the model systems (`valle`, `halle`, `codec`) with the harness on import.

The harness imports this module lazily (halle_bench.systems.base); baselines itself
knows nothing of the runner beyond the System protocol its adapters implement.
"""

from __future__ import annotations

import importlib

REGISTERED: list[str] = []
for _mod in ("valle_system", "halle_system", "codec_system"):
    try:
        importlib.import_module(f"{__package__}.{_mod}")
        REGISTERED.append(_mod)
    except ModuleNotFoundError as e:  # not written/installed: the other kinds still work
        if e.name != f"{__package__}.{_mod}":
            raise
