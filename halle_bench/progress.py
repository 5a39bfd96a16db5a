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
    def __init__(self, out: TextIO, name: str, total: int, work: float | None = None):
        self.out, self.name, self.total = out, name, total
        self.done = 0
        # Progress is measured in `work` when given (e.g. seconds of audio), else in items:
        # with one long item among short ones, items done say little about time left.
        self.work = float(work) if work else None
        self.work_done = 0.0
        self.t0 = time.perf_counter()
        self._next_pct = 10
        if total:
            print(f"[{self.name}] 0/{total}", file=out, flush=True)

    def advance(self, n: int = 1, work: float | None = None) -> None:
        self.done += n
        if not self.total:
            return
        if self.work is not None:
            self.work_done += float(work) if work is not None else self.work * n / self.total
            frac = min(1.0, self.work_done / self.work)
        else:
            frac = self.done / self.total
        pct = 100 * frac
        if pct >= self._next_pct or self.done == self.total:
            el = time.perf_counter() - self.t0
            eta = el / frac * (1 - frac) if frac > 0 else 0.0
            print(f"[{self.name}] {self.done}/{self.total} ({el:.1f}s, eta {eta:.1f}s)", file=self.out, flush=True)
            while self._next_pct <= pct:
                self._next_pct += 10


class _RichStage:
    def __init__(self, progress, task, total: int, work: float | None = None):
        self.progress, self.task, self.total, self.work = progress, task, total, work
        self.done = 0

    def advance(self, n: int = 1, work: float | None = None) -> None:
        self.done += n
        # The bar (and its ETA) in work when given, the count always in items.
        w = n if self.work is None else (float(work) if work is not None else self.work * n / max(1, self.total))
        self.progress.update(self.task, advance=w, items=f"{self.done}/{self.total}")


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
    def stage(self, name: str, total: int, work: float | None = None) -> Iterator[object]:
        """A progress bar over `total` items; with `work` (their expected cost, e.g.
        seconds of audio), the ETA follows the work done, and `advance(n, work=...)`."""
        if self.plain:
            yield _PlainStage(self.stream, name, total, work)
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[items]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        ) as progress:
            task = progress.add_task(name, total=work if work else total, items=f"0/{total}")
            yield _RichStage(progress, task, total, work if work else None)


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
    def stage(self, name: str, total: int, work: float | None = None) -> Iterator[object]:
        class _S:
            def advance(self, n: int = 1, work: float | None = None) -> None:
                return None

        yield _S()
