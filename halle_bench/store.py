"""Append-only JSONL tables of the run directory, safe against kills.

Rows are appended one line at a time, flushed and fsynced, so a SIGKILL loses at
most the line being written. On open, a torn last line (no trailing newline, or not
valid JSON) is cut off before anything new is appended, so it can never glue onto
the next row. Readers keep the *last* row per identity (e.g. (system, id)), so a row
recomputed after a change supersedes the old one without rewriting the file.
Summaries never go into these files (anchors.md: "summary lines appended to JSONL").

Several writers (shards, Ray workers) share one run directory: each appends only to
its own file, `<stage>.<writer>.jsonl` (the plain local run writes `<stage>.jsonl`),
so no writer ever cuts another's line: the torn-tail repair above only ever touches
the writer's own file. `read_latest` merges every writer's file by key; when two
files hold a row for the same key, the one written last (`written_at`) wins, so a
plain run that retries a shard's failed item supersedes the shard's row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["JsonlTable", "atomic_write_text", "cache_key", "file_lock", "portable", "read_latest", "table_path",
           "writer_files"]

_WRITER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def cache_key(obj: Any) -> str:
    """Stable sha256 of a JSON-able object (sorted keys; Paths as strings)."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def portable(obj: Any) -> Any:
    """`obj` with every absolute path string replaced by its last component.

    Cache keys must survive moving a run directory (and its data) to another machine:
    what a file *contains* is hashed separately (audio, checkpoint and program sha256),
    so where it lies must not be part of the key."""
    if isinstance(obj, dict):
        return {k: portable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v) for v in obj]
    if isinstance(obj, Path):
        obj = str(obj)
    if isinstance(obj, str) and len(obj) > 1 and os.path.isabs(obj):
        return os.path.basename(obj.rstrip(os.sep)) or obj
    return obj


def table_path(out: str | Path, stage: str, writer: str | None = None) -> Path:
    """`<out>/<stage>.jsonl` for the plain local run, `<out>/<stage>.<writer>.jsonl` otherwise."""
    if writer is None:
        return Path(out) / f"{stage}.jsonl"
    if not _WRITER_RE.match(writer):
        raise ValueError(f"writer name {writer!r}: use letters, digits, '-' and '_'")
    return Path(out) / f"{stage}.{writer}.jsonl"


def writer_files(out: str | Path, stage: str) -> list[Path]:
    """Every writer's file of a stage, in a fixed order (the local run's first)."""
    out = Path(out)
    files = [out / f"{stage}.jsonl"] if (out / f"{stage}.jsonl").exists() else []
    files += sorted(p for p in out.glob(f"{stage}.*.jsonl") if _WRITER_RE.match(p.name[len(stage) + 1 : -6]))
    return files


def read_latest(out: str | Path, stage: str, key_fields: tuple[str, ...]) -> dict[tuple, dict[str, Any]]:
    """The current row per key over all writers' files of `stage` ("generation", "scores").

    Within a file the last row wins (append order); across files the row with the
    larger `written_at` wins (ties: the later file in `writer_files` order), so the
    result does not depend on how the work was split."""
    best: dict[tuple, tuple[float, int, dict[str, Any]]] = {}
    for fi, p in enumerate(writer_files(out, stage)):
        for k, r in JsonlTable(p).latest(key_fields).items():
            rank = (float(r.get("written_at") or 0.0), fi)
            if k not in best or rank >= best[k][:2]:
                best[k] = (*rank, r)
    return {k: v[2] for k, v in best.items()}


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a uniquely named temporary file + rename: concurrent writers of the
    same file (several shards starting at once) never interleave or expose a half file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) held for the block; released when the process
    dies, so a killed shard never leaves the run directory locked."""
    import fcntl

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def now() -> float:
    """`written_at` of a row: wall clock, so rows of different processes can be ordered."""
    return time.time()


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
