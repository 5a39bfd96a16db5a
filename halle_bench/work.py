"""Work of a run as chunks: what generation and scoring share.

Both stages are the same skeleton: go over the planned (model, system, utterance)
items this process keeps (`select`: a shard), compute each item's cache key, skip
the ones whose current row is up to date, sort what is left by length, cut it into
chunks of the model's batch size, hand the chunks to an executor (which runs them on
whichever worker is free, see `executors`), and append the rows that come back to
this writer's file as each chunk finishes. Only the stage-specific parts differ:
the key, "is this row current", and how one chunk is done on a worker (`Stage`).

Decisions, because they move numbers or wall time:
- Chunks depend only on the plan, the run directory and `select`, never on how many
  workers there are or which one is free: the same items are batched the same way
  whoever runs them, so results do not depend on the executor.
- Within one model, the longest items go first (the classic longest-processing-time
  order): a long item started last would leave every other worker idle at the end.
  Models keep their configured order, so a worker loads a second model only when the
  first has nothing left to hand out.
- Rows are written by the driver, one file per writer (`store.table_path`), after the
  worker has written the chunk's audio (atomically): a row always points at a
  complete file, and an interrupted chunk is simply done again on the next run.
- A chunk that a worker could not finish because the worker died is handed to
  another worker, at most `MAX_ATTEMPTS` times; then its items get error rows that
  say so (a generation failure, or a scorer error), and the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from .progress import Reporter
from .store import JsonlTable, table_path

if TYPE_CHECKING:
    from .plan import Plan

__all__ = ["Chunk", "Item", "MAX_ATTEMPTS", "Select", "Stage", "Worker", "make_chunks", "pending", "run_stage",
           "stage_for"]

# Which (system name, utterance id) items this process works on (a shard); None = all.
Select = Callable[[str, str], bool] | None

MAX_ATTEMPTS = 3  # tries of a chunk whose worker died (the first try included)


@dataclass(frozen=True)
class Item:
    """One (system, utterance) item of a stage, with the cache key its row will carry."""

    system: str
    utt_id: str
    key: str
    cost: float = 0.0  # expected seconds of audio: the sort order of the chunks


@dataclass(frozen=True)
class Chunk:
    """Items of one model (a system to generate, a scorer to score) done together."""

    stage: str  # "generate" | "score"
    model: str  # system or scorer name: what the worker must have loaded
    items: tuple[Item, ...]
    seq: int  # position in the stage's chunk list (deterministic)
    attempt: int = 1


def pending(plan: Plan, select: Select, key: Callable[[Any, Any], str | None],
            current: Callable[[Any, Any, str], bool], cost: Callable[[Any, Any], float]) -> list[Item]:
    """The (system, utterance) items of the plan that `select` keeps, whose `key` is not
    None (None: nothing to do for it, e.g. no audio to score) and that have no
    `current` row (always all of them with `plan.force`)."""
    items = []
    for system in plan.systems:
        for u in plan.utterances:
            if select is not None and not select(system.name, u.id):
                continue
            k = key(system, u)
            if k is None or (not plan.force and current(system, u, k)):
                continue
            items.append(Item(system.name, u.id, k, float(cost(system, u) or 0.0)))
    return items


def make_chunks(stage: str, per_model: Iterable[tuple[str, int, list[Item]]]) -> list[Chunk]:
    """(model, batch size, items) in model order -> chunks, longest items first."""
    chunks: list[Chunk] = []
    for model, size, items in per_model:
        size = max(1, int(size or 1))
        items = sorted(items, key=lambda it: (-it.cost, it.system, it.utt_id))
        for i in range(0, len(items), size):
            chunks.append(Chunk(stage, model, tuple(items[i : i + size]), len(chunks)))
    return chunks


class Stage(Protocol):
    """One stage of a run (`generation.GENERATE`, `scoring.SCORE`)."""

    name: str  # "generate" | "score": the chunks' `stage` and the table's name prefix
    table: str  # "generation" | "scores"

    def chunks(self, plan: Plan, select: Select) -> list[Chunk]:
        """Driver: what is left to do (cached rows skipped), as chunks."""

    def run(self, worker: Worker, chunk: Chunk) -> list[dict[str, Any]]:
        """Worker: do one chunk (loading its model on first use); one row per item.
        Per-item problems are rows with an error, never exceptions."""

    def failed_rows(self, plan: Plan, chunk: Chunk, message: str) -> list[dict[str, Any]]:
        """Driver: rows for a chunk no worker could finish (the worker died, a bug)."""



@dataclass
class Worker:
    """A plan and the models loaded from it: one per process that does chunks.

    Models are loaded on first use and kept for every later chunk (a worker that gets
    ten chunks of one system loads it once); `close()` releases them all at the end
    of the stage, so the next stage (other models, maybe other resources) starts clean."""

    plan: Plan
    loaded: dict[tuple[str, str], Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)  # per-worker scratch (the scorers' audio cache)

    def model(self, stage: str, name: str, load: Callable[[], Any]) -> Any:
        k = (stage, name)
        if k not in self.loaded:
            self.loaded[k] = load()
        return self.loaded[k]

    def run(self, chunk: Chunk) -> list[dict[str, Any]]:
        return stage_for(chunk.stage).run(self, chunk)

    def close(self) -> None:
        for obj in self.loaded.values():
            close = getattr(obj, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # closing must not lose rows already returned
                    pass
        self.loaded.clear()
        self.cache.clear()


def stage_for(name: str) -> Stage:
    """The stage called `name` ("generate" | "score")."""
    from .generation import GenerateStage
    from .scoring import ScoreStage

    stages = {"generate": GenerateStage, "score": ScoreStage}
    if name not in stages:
        raise ValueError(f"unknown stage {name!r}")
    return stages[name]()


def _work(chunk: Chunk) -> float:
    """A chunk's expected cost for the ETA: its seconds of audio plus one per item (a
    per-item overhead), so one long item among short ones does not throw the ETA off."""
    return sum(it.cost + 1.0 for it in chunk.items)


def run_stage(plan: Plan, stage: Stage, executor: Any, reporter: Reporter, writer: str | None = None,
              select: Select = None) -> int:
    """Do what is left of `stage` through `executor`; returns the number of items done.

    The driver's loop: progress over items with an ETA over their expected cost
    (`_work`), whatever executor runs them; rows appended to this writer's file as
    each chunk comes back."""
    chunks = stage.chunks(plan, select)
    if not chunks:
        reporter.log(f"{stage.name}: all cached")
        return 0
    total = sum(len(c.items) for c in chunks)
    work = sum(_work(c) for c in chunks)
    models = list(dict.fromkeys(c.model for c in chunks))
    table = JsonlTable(table_path(plan.out, stage.table, writer))
    results = executor.map(plan, stage, chunks)
    n = 0
    try:
        with reporter.stage(f"{stage.name} {', '.join(models)}", total, work) as st:
            for chunk, rows, error in results:
                table.extend(rows if error is None else stage.failed_rows(plan, chunk, error))
                n += len(chunk.items)
                st.advance(len(chunk.items), _work(chunk))
    finally:
        # Now, not when the traceback is freed: an interrupt must stop the workers (and
        # their commands) before anything else happens.
        results.close()
        table.close()
    return n
