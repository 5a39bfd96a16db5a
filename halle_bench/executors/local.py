"""The local executor: this process does every chunk, in order (the default)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from ..work import Worker

if TYPE_CHECKING:
    from ..plan import Plan
    from ..work import Chunk, Stage
    from .base import Result


class LocalExecutor:
    name = "local"

    def map(self, plan: Plan, stage: Stage, chunks: list[Chunk]) -> Iterator[Result]:
        worker = Worker(plan)  # the driver's own plan: nothing is rebuilt
        try:
            for chunk in chunks:
                try:
                    rows = stage.run(worker, chunk)
                except Exception as e:  # a bug in a stage: this chunk's rows say so, the run goes on
                    yield chunk, None, f"{type(e).__name__}: {e}"
                    continue
                yield chunk, rows, None
        finally:
            worker.close()

    def close(self) -> None:
        return None
