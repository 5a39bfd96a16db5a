"""The Ray executor: N stateful actors fed from one queue, on one machine or a cluster.

Each actor rebuilds the plan from the config (`Plan.spec`) in its own process and
keeps every model it loads for all the chunks it gets (`work.Worker`). The driver
hands an actor its next chunk when it returns the previous one (`base.schedule`),
prints progress as chunks come back, and writes their rows. An actor that dies is
replaced and its chunk is handed to another actor. The run directory must be on a
file system every actor sees (one machine, or a shared mount on a cluster): actors
write the audio, the driver the rows.

The actors stay from one stage to the next when both need the same resources (their
imports and planning are paid once); at the end of a stage each releases the models
it loaded, so scoring's models never share a GPU with generation's. With
`--score-device cpu` and `--device cuda`, generation gets GPU actors and scoring new
CPU-only actors.

Without `address`, a local Ray cluster is started for the run and shut down at the end
(`close`); with `address` (`--ray-address`, e.g. `auto` or `ray://head:10001`) an
existing cluster is joined. With `cuda` as a stage's device and GPUs in the cluster, each of its actors
gets min(1, GPUs / workers) GPUs (two actors can share one GPU).

Interrupts: the driver polls (`WAIT_SECONDS`), so Ctrl-C is seen within a second;
stopping first has each busy actor kill the process groups of the commands it runs
(`interrupt`, on the actor's second thread), then kills the actors (`ray.kill`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import ConfigError, HalleBenchError
from .base import map_on_slots

if TYPE_CHECKING:
    from ..plan import Plan
    from ..work import Chunk, Stage
    from .base import Result

WAIT_SECONDS = 0.5
STOP_SECONDS = 3.0  # how long stopping waits for actors to end their commands


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install -e '.[ray]' (scripts/setup.sh installs it)") from None
    return ray


class _Actor:
    """One Ray actor: a plan of its own (systems and scorers built in this process)."""

    def __init__(self, config: Any, out: str, spec: dict[str, Any], sys_path: list[str]):
        for p in reversed(sys_path):  # the driver's import path (plugins, fixtures)
            if p not in sys.path:
                sys.path.insert(0, p)
        from ..plan import plan_run
        from ..work import Worker

        self.worker = Worker(plan_run(config, Path(out), **spec))

    def run(self, chunk: Chunk) -> tuple[str, Any]:
        from ..work import stage_for

        try:
            return "rows", stage_for(chunk.stage).run(self.worker, chunk)
        except Exception as e:
            return "error", f"{type(e).__name__}: {e}"

    def interrupt(self) -> None:
        """Kill the process groups of the commands `run` has running (runs on the actor's
        second thread while `run` is busy on the first)."""
        from ..interrupts import kill_tracked

        kill_tracked()

    def close(self) -> None:
        self.worker.close()


class _Slots:
    def __init__(self, ray, actor_cls, args: tuple, n: int):
        self.ray, self.actor_cls, self.args, self.n = ray, actor_cls, args, n
        self.actors: list[Any] = [None] * n
        self.refs: dict[Any, int] = {}

    def start(self, k: int) -> None:
        for i in range(min(k, self.n)):
            if self.actors[i] is None:
                self.actors[i] = self.actor_cls.remote(*self.args)

    def release(self) -> None:
        """End of a stage: each actor frees the models it loaded (a GPU shared with the next stage)."""
        try:
            self.ray.get([a.close.remote() for a in self.actors if a is not None], timeout=60)
        except Exception:
            pass

    def submit(self, slot: int, chunk: Chunk) -> None:
        if self.actors[slot] is None:
            self.actors[slot] = self.actor_cls.remote(*self.args)
        self.refs[self.actors[slot].run.remote(chunk)] = slot

    def wait(self, busy: list[int]) -> list[tuple[int, str, Any]]:
        ray = self.ray
        while True:
            ready, _ = ray.wait(list(self.refs), num_returns=1, timeout=WAIT_SECONDS)
            if ready:
                break
        out = []
        for ref in ready:
            slot = self.refs.pop(ref)
            try:
                kind, payload = ray.get(ref)
            except ray.exceptions.RayError as e:  # the actor died (killed, out of memory, node lost, failed to plan)
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                kind, payload = "died", f"{type(e).__name__}: {first}"
            if kind == "died":
                self._kill(slot)
            out.append((slot, kind, payload))
        return out

    def _kill(self, slot: int) -> None:
        if self.actors[slot] is not None:
            try:
                self.ray.kill(self.actors[slot])
            except Exception:
                pass
            self.actors[slot] = None

    def stop(self) -> None:
        busy = sorted(set(self.refs.values()))
        if busy:  # end the commands they run first: ray.kill alone would orphan their process groups
            try:
                self.ray.get([self.actors[i].interrupt.remote() for i in busy if self.actors[i] is not None],
                             timeout=STOP_SECONDS)
            except Exception:
                pass
        self.refs.clear()
        for i in range(self.n):
            self._kill(i)


class RayExecutor:
    name = "ray"

    def __init__(self, workers: int = 1, address: str | None = None):
        self.workers = int(workers)
        self.address = address
        self._started = False
        self._slots: _Slots | None = None
        self._profile: tuple[float, float] | None = None
        _import_ray()  # fail at flag time (exit 2), not after planning

    def _init(self):
        ray = _import_ray()
        if not ray.is_initialized():
            # ray.init replaces the driver's SIGTERM handler with sys.exit: keep ours
            # (interrupts.handle_interrupts: exit 143, a second signal aborts at once).
            main = threading.current_thread() is threading.main_thread()
            sigterm = signal.getsignal(signal.SIGTERM) if main else None
            try:
                if self.address:
                    ray.init(address=self.address, log_to_driver=False)
                else:
                    ray.init(num_cpus=max(self.workers, os.cpu_count() or 1), include_dashboard=False,
                             log_to_driver=False)
            except Exception as e:  # no cluster at that address, ports in use, ...
                where = f"join the Ray cluster at {self.address!r}" if self.address else "start a local Ray cluster"
                raise HalleBenchError(f"--executor ray: cannot {where}: {type(e).__name__}: {e}") from None
            finally:
                if main and sigterm is not None:
                    signal.signal(signal.SIGTERM, sigterm)
            self._started = True
        return ray

    def resources(self, plan: Plan, stage: str = "generate") -> tuple[float, float, dict[str, Any]]:
        """(CPUs, GPUs) per actor of `stage` and the plan spec its actors rebuild."""
        ray = self._init()
        res = ray.cluster_resources()
        spec = dict(plan.spec)
        gpus = 0.0
        cuda = plan.stage_device(stage).startswith("cuda") and res.get("GPU", 0) > 0
        if cuda:
            gpus = min(1.0, float(res["GPU"]) / self.workers)
        if stage == "score" and plan.score_device:
            # Scoring actors of their own: they plan (and load) on the scoring device only.
            spec["device"] = spec["score_device"] = "cuda" if cuda else plan.score_device
        elif cuda:
            spec["device"] = "cuda"  # Ray sets CUDA_VISIBLE_DEVICES: the actor's GPU is cuda:0
        # Whole CPUs per actor (Ray then sets OMP_NUM_THREADS to it, so torch in N
        # actors does not oversubscribe the cores); a fraction only when there are
        # more actors than CPUs.
        total = float(res.get("CPU", 1))
        cpus = float(max(1, int(total // self.workers))) if total >= self.workers else total / self.workers
        return cpus, gpus, spec

    def map(self, plan: Plan, stage: Stage, chunks: list[Chunk]) -> Iterator[Result]:
        ray = self._init()
        cpus, gpus, spec = self.resources(plan, stage.name)
        if self._slots is not None and self._profile != (cpus, gpus):
            self._slots.stop()  # this stage needs other resources (GPUs generate, CPUs score)
            self._slots = None
        if self._slots is None:
            # Two threads: `interrupt` must run while `run` is busy (the driver never sends
            # an actor a second chunk before the first comes back).
            actor_cls = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0, max_concurrency=2)(_Actor)
            args = (plan.config, str(Path(plan.out).resolve()), spec, list(sys.path))
            self._slots, self._profile = _Slots(ray, actor_cls, args, max(1, self.workers)), (cpus, gpus)
        yield from map_on_slots(self._slots, chunks, self._abort)

    def _abort(self) -> None:  # interrupted (or the driver failed): kill the actors now
        self._slots.stop()
        self._slots = None

    def close(self) -> None:
        if self._slots is not None:
            self._slots.stop()
            self._slots = None
        if self._started:
            _import_ray().shutdown()
            self._started = False
