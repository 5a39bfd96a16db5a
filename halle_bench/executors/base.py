"""The executor seam: `map(plan, stage, chunks)` -> (chunk, rows, error) as chunks finish.

An executor is a way of running chunks of work (`work.Chunk`) on workers, in the
spirit of `concurrent.futures` and lhotse's executors: the driver plans the chunks,
the executor hands each one to whichever worker is free (a shared queue, not a fixed
slice), and the driver writes the rows that come back (`work.run_stage`). The pools
(processes, Ray actors) both go through `schedule`, so load balancing, retries and
ordering are the same for them; the local executor simply does the chunks in order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterator, Protocol

from ..errors import ConfigError
from ..work import MAX_ATTEMPTS, Chunk

if TYPE_CHECKING:
    from ..plan import Plan
    from ..work import Stage

EXECUTORS = ("local", "process", "ray")

# What `map` yields: the chunk, its rows (None when it failed), why it failed (or None).
Result = tuple[Chunk, "list[dict[str, Any]] | None", "str | None"]


class Executor(Protocol):
    name: str

    def map(self, plan: Plan, stage: Stage, chunks: list[Chunk]) -> Iterator[Result]:
        """Run `stage.run` on every chunk, on this executor's workers; yield each as it
        finishes. Workers are started for the stage and stopped when it ends (or when
        the generator is closed: an interrupt)."""

    def close(self) -> None:
        """Release what outlives one stage (a Ray cluster started for the run)."""


class Slots(Protocol):
    """Worker slots of a pool: `schedule` hands chunks to them one at a time."""

    n: int

    def submit(self, slot: int, chunk: Chunk) -> None:
        """Start the chunk on slot's worker (starting a new worker if it has none)."""

    def wait(self, busy: list[int]) -> list[tuple[int, str, Any]]:
        """Block until at least one busy slot is done: (slot, "rows" | "error" | "died",
        rows or message). A "died" slot has no worker any more."""


def map_on_slots(slots, chunks: list[Chunk], on_abort) -> Iterator[Result]:
    """The pool executors' `map`: schedule `chunks` on `slots`; when the driver finishes,
    release the workers (kept for the next stage); when it is interrupted or fails,
    `on_abort()` stops them at once."""
    slots.start(len(chunks))
    done = False
    try:
        yield from schedule(slots, chunks)
        done = True
    finally:
        if done:
            slots.release()
        else:
            on_abort()


def schedule(slots: Slots, chunks: list[Chunk]) -> Iterator[Result]:
    """Hand `chunks`, in order, to whichever slot is free; retry a chunk whose worker
    died on another worker, up to `work.MAX_ATTEMPTS` tries in all."""
    queue = deque(chunks)
    idle = list(range(slots.n))
    busy: dict[int, Chunk] = {}
    while queue or busy:
        while idle and queue:
            slot = idle.pop(0)
            chunk = queue.popleft()
            slots.submit(slot, chunk)
            busy[slot] = chunk
        for slot, kind, payload in slots.wait(sorted(busy)):
            chunk = busy.pop(slot)
            if kind == "died":
                idle.append(slot)  # last: a retry goes to a worker that is still alive when there is one
                if chunk.attempt < MAX_ATTEMPTS:
                    queue.appendleft(replace(chunk, attempt=chunk.attempt + 1))
                else:
                    yield chunk, None, f"the worker died on each of {MAX_ATTEMPTS} tries of this chunk ({payload})"
                continue
            idle.insert(0, slot)
            yield (chunk, payload, None) if kind == "rows" else (chunk, None, str(payload))


def make_executor(name: str = "local", workers: int | None = None, address: str | None = None) -> Executor:
    """Validate the executor flags (ConfigError -> exit 2) and build the executor."""
    if name not in EXECUTORS:
        raise ConfigError(f"--executor: unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    if address and name != "ray":
        raise ConfigError("--ray-address needs --executor ray")
    if name == "local":
        if workers not in (None, 1):
            raise ConfigError("--workers needs --executor process or ray (the local executor is this process; "
                              "use --shard K/N to split work between independent jobs)")
        from .local import LocalExecutor

        return LocalExecutor()
    if name == "process":
        from .process import ProcessExecutor

        return ProcessExecutor(workers=workers or 2)
    from .ray import RayExecutor

    return RayExecutor(workers=workers or 1, address=address)
