"""Append-only JSONL tables of the run directory, safe against kills.

Rows are appended one line at a time, flushed and fsynced, so a SIGKILL loses at
most the line being written. On open, a torn last line (no trailing newline, or not
valid JSON) is cut off before anything new is appended, so it can never glue onto
the next row. Readers keep the *last* row per identity (e.g. (system, id)), so a row
recomputed after a change supersedes the old one without rewriting the file.
Summaries never go into these files (anchors.md: "summary lines appended to JSONL").
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable


def cache_key(obj: Any) -> str:
    """Stable sha256 of a JSON-able object (sorted keys; Paths as strings)."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _repair_tail(path: Path) -> None:
    """Cut a torn final line left by a killed writer."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data.endswith(b"\n"):
            last_start = data.rfind(b"\n", 0, len(data) - 1) + 1
            try:
                json.loads(data[last_start:])
                return
            except ValueError:
                cut = last_start
        else:
            cut = data.rfind(b"\n") + 1
        f.seek(cut)
        f.truncate()


class JsonlTable:
    """One JSONL file: `append(row)` durable, `rows()` tolerant, `latest(key_fn)`."""

    def __init__(self, path: str | Path, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self._fh = None

    def _open(self):
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _repair_tail(self.path)
            self._fh = open(self.path, "a", encoding="utf-8")
        return self._fh

    def append(self, row: dict[str, Any]) -> None:
        fh = self._open()
        fh.write(json.dumps(row, sort_keys=True, default=_json_default, allow_nan=True) + "\n")
        fh.flush()
        if self.fsync:
            os.fsync(fh.fileno())

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        for r in rows:
            self.append(r)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # torn last line
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a torn line that a later writer already cut
        return out

    def latest(self, ident: tuple[str, ...]) -> dict[tuple, dict[str, Any]]:
        """Last row for each identity tuple, e.g. ("system", "id")."""
        d: dict[tuple, dict[str, Any]] = {}
        for r in self.rows():
            d[tuple(r.get(k) for k in ident)] = r
        return d

    def __enter__(self) -> "JsonlTable":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
