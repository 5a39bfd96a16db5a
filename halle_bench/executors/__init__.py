"""Executors: who does the chunks of work of a run, behind one seam (`Executor.map`).

- `local`: this process, chunk after chunk (`LocalExecutor`, the default).
- `process`: N worker processes on this machine (`ProcessExecutor`).
- `ray`: N Ray actors, here or on a cluster (`RayExecutor`).
- `--shard K/N` (`Shard`): this job does the deterministic slice K of N of the items
  (a hash of system + id), for Slurm arrays or any scheduler; combinable with any
  executor. Shards are independent jobs, so they cannot share a queue.

The pools hand length-sorted chunks to whichever worker is free (`base.schedule`),
each worker keeps its models loaded across chunks, a chunk whose worker died is
retried elsewhere, and the driver writes every row: whatever runs the work, rows
carry the same keys and values, so `utterances.csv` is the same.
"""

from .base import EXECUTORS, Executor, make_executor, schedule
from .local import LocalExecutor
from .process import ProcessExecutor
from .shard import Shard, item_slot, parse_shard

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "ProcessExecutor", "RayExecutor", "Shard", "item_slot",
           "make_executor", "parse_shard", "schedule"]


def __getattr__(name: str):  # Ray is an optional extra: import it only when asked for
    if name == "RayExecutor":
        from .ray import RayExecutor

        return RayExecutor
    raise AttributeError(name)
