"""The Ray executor: N stateful actors, each holding its loaded models.

Each actor rebuilds the plan from the config (`Plan.spec`) in its own process, then
works through its slice of the items (`item_slot(system, id, N) == i`, further
restricted by `--shard`): every system is loaded once per actor and every scorer
model once per actor, as in a local run. Rows go to the actor's own files
(`generation.ray-<i>.jsonl`), merged by key afterwards, so the result equals a local
run's. The run directory must be on a file system every actor sees (one machine, or
a shared mount on a cluster).

Without `address`, a local Ray cluster is started for the run and shut down after it;
with `address` (`--ray-address`, e.g. `auto` or `ray://head:10001`) an existing cluster
is joined. With `cuda` as the device and GPUs in the cluster, each actor gets
min(1, GPUs / workers) GPUs (two actors can share one GPU).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, HalleBenchError
from .shard import item_slot

if TYPE_CHECKING:
    from ..generation import Select
    from ..plan import Plan
    from ..progress import Reporter


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install -e '.[ray]' (scripts/setup.sh installs it)") from None
    return ray


class _Worker:
    """One Ray actor: a plan of its own (systems and scorers built in this process)."""

    def __init__(self, config: Any, out: str, spec: dict[str, Any], sys_path: list[str]):
        # The driver's import path (plugins, fixtures); missing entries are harmless.
        for p in reversed(sys_path):
            if p not in sys.path:
                sys.path.insert(0, p)
        from ..plan import plan_run

        self.plan = plan_run(config, Path(out), **spec)

    def work(self, index: int, n: int, writer: str, select: Select) -> tuple[int, int]:
        from ..generation import generate
        from ..progress import NullReporter
        from ..scoring import score

        def keep(system: str, utt_id: str) -> bool:
            return item_slot(system, utt_id, n) == index and (select is None or select(system, utt_id))

        n_gen = generate(self.plan, NullReporter(), writer, keep)
        n_scored, _ = score(self.plan, NullReporter(), writer, keep)
        return n_gen, n_scored


class RayExecutor:
    name = "ray"

    def __init__(self, workers: int = 1, address: str | None = None):
        self.workers = int(workers)
        self.address = address
        _import_ray()  # fail at flag time (exit 2), not after planning

    def execute(self, plan: Plan, reporter: Reporter, writer: str | None = None, select: Select = None) -> tuple[int, int]:
        ray = _import_ray()
        started = False
        if not ray.is_initialized():
            try:
                if self.address:
                    ray.init(address=self.address, log_to_driver=False)
                else:
                    ray.init(num_cpus=max(self.workers, os.cpu_count() or 1), include_dashboard=False,
                             log_to_driver=False)
            except Exception as e:  # no cluster at that address, ports in use, ...
                where = f"join the Ray cluster at {self.address!r}" if self.address else "start a local Ray cluster"
                raise HalleBenchError(f"--executor ray: cannot {where}: {type(e).__name__}: {e}") from None
            started = True
        try:
            return self._run(ray, plan, reporter, writer, select)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray, plan: Plan, reporter: Reporter, writer: str | None, select: Select) -> tuple[int, int]:
        res = ray.cluster_resources()
        spec = dict(plan.spec)
        gpus = 0.0
        if plan.device.startswith("cuda") and res.get("GPU", 0) > 0:
            gpus = min(1.0, float(res["GPU"]) / self.workers)
            spec["device"] = "cuda"  # Ray sets CUDA_VISIBLE_DEVICES: the actor's GPU is cuda:0
        # Whole CPUs per actor (Ray then sets OMP_NUM_THREADS to it, so torch in N
        # actors does not oversubscribe the cores); a fraction only when there are
        # more actors than CPUs.
        total = float(res.get("CPU", 1))
        cpus = float(max(1, int(total // self.workers))) if total >= self.workers else total / self.workers
        actor_cls = ray.remote(num_cpus=cpus, num_gpus=gpus)(_Worker)
        out = str(Path(plan.out).resolve())
        reporter.log(f"ray: {self.workers} workers ({cpus:g} CPU, {gpus:g} GPU each), out {out}")
        actors = [actor_cls.remote(plan.config, out, spec, list(sys.path)) for _ in range(self.workers)]
        try:
            names = [f"{writer}-ray-{i}" if writer else f"ray-{i}" for i in range(self.workers)]
            done = ray.get([a.work.remote(i, self.workers, names[i], select) for i, a in enumerate(actors)])
        finally:
            for a in actors:
                ray.kill(a)
        return sum(d[0] for d in done), sum(d[1] for d in done)
