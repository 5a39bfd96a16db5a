"""Executors: who does the (system, utterance) work of a run, behind one seam.

- `local`: this process, as always (`LocalExecutor`).
- `ray`: N stateful Ray actors, each holding its loaded system / scorer models and
  working through a deterministic slice of the items (`RayExecutor`).
- `--shard K/N` (`Shard`): this process does slice K of N (by a hash of system + id),
  for Slurm arrays or any scheduler; combinable with either executor.

Whatever runs the work, rows carry the same keys and values and go to per-writer
JSONL files that `store.read_latest` merges, so the aggregate is the same.
"""

from .base import Executor, make_executor
from .local import LocalExecutor
from .shard import Shard, item_slot, parse_shard

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "Shard", "item_slot", "make_executor", "parse_shard"]


def __getattr__(name: str):  # Ray is an optional extra: import it only when asked for
    if name == "RayExecutor":
        from .ray import RayExecutor

        return RayExecutor
    raise AttributeError(name)
