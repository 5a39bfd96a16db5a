"""The one reporter: rich progress bars on a terminal, plain log lines otherwise.

Nothing below the CLI prints directly; the runner calls `reporter.stage(...)` and
`reporter.log(...)`. `Reporter(quiet=True)` or a non-terminal stderr gives plain
lines: one at the start of a stage, at every 10% and at the end, with counts and an
ETA, which reads well in CI logs.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, TextIO


class _PlainStage:
    def __init__(self, out: TextIO, name: str, total: int):
        self.out, self.name, self.total = out, name, total
        self.done = 0
        self.t0 = time.perf_counter()
        self._next_pct = 10
        if total:
            print(f"[{self.name}] 0/{total}", file=out, flush=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.total:
            return
        pct = 100 * self.done / self.total
        if pct >= self._next_pct or self.done == self.total:
            el = time.perf_counter() - self.t0
            eta = el / self.done * (self.total - self.done) if self.done else 0.0
            print(f"[{self.name}] {self.done}/{self.total} ({el:.1f}s, eta {eta:.1f}s)", file=self.out, flush=True)
            while self._next_pct <= pct:
                self._next_pct += 10


class _RichStage:
    def __init__(self, progress, task):
        self.progress, self.task = progress, task

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.task, n)


class Reporter:
    def __init__(self, quiet: bool = False, stream: TextIO | None = None, force_plain: bool | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        plain = force_plain if force_plain is not None else (quiet or not self.stream.isatty())
        self.plain = plain
        self._console = None
        if not plain:
            from rich.console import Console

            self._console = Console(file=self.stream)

    def log(self, msg: str) -> None:
        if self._console is not None:
            self._console.log(msg)
        else:
            print(msg, file=self.stream, flush=True)

    @contextmanager
    def stage(self, name: str, total: int) -> Iterator[object]:
        if self.plain:
            yield _PlainStage(self.stream, name, total)
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        ) as progress:
            task = progress.add_task(name, total=total)
            yield _RichStage(progress, task)


class NullReporter(Reporter):
    """Swallows everything (library use, tests)."""

    def __init__(self) -> None:
        self.stream = sys.stderr
        self.quiet = True
        self.plain = True
        self._console = None

    def log(self, msg: str) -> None:
        return None

    @contextmanager
    def stage(self, name: str, total: int) -> Iterator[object]:
        class _S:
            def advance(self, n: int = 1) -> None:
                return None

        yield _S()
