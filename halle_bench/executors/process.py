"""The process-pool executor: N worker processes on this machine, fed from one queue.

Each worker is a fresh (spawned) Python process that rebuilds the plan from the
config (`Plan.spec`), so nothing loaded is ever pickled, and keeps every model it
loads for all the chunks it gets (`work.Worker`). The driver sends a worker its next
chunk when it returns the previous one (`base.schedule`), so a long item never holds
up a fixed slice of short ones. A worker that dies (killed, out of memory, a crash in
native code) is replaced, and its chunk is handed to another worker.

Interrupts: workers ignore SIGINT (a Ctrl-C in a terminal reaches the whole process
group; the driver decides). Workers stay from one stage to the next (the stage's models are
released at its end). When the driver stops (interrupted, or done), it tells the
workers to stop; SIGTERM makes a worker raise SystemExit, which ends any command
system's process group it is running (`systems.adapters.CommandSystem`).
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import sys
from multiprocessing.connection import wait as mp_wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import HalleBenchError
from ..interrupts import track, untrack
from .base import map_on_slots

if TYPE_CHECKING:
    from ..plan import Plan
    from ..work import Chunk, Stage
    from .base import Result

STOP_GRACE_SECONDS = 3.0  # how long a worker may take to stop before it is killed


def _terminate(*_: Any) -> None:
    raise SystemExit(143)


def _worker_main(conn, config: Any, out: str, spec: dict[str, Any], sys_path: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    for p in reversed(sys_path):  # the driver's import path (plugins, fixtures)
        if p not in sys.path:
            sys.path.insert(0, p)
    from ..plan import plan_run
    from ..work import Worker, stage_for

    try:
        worker = Worker(plan_run(config, Path(out), **spec))
    except Exception as e:
        conn.send(("fatal", f"a worker could not plan the run: {type(e).__name__}: {e}"))
        return
    conn.send(("ready", None))
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:  # the driver is gone
                break
            if msg is None:
                break
            if msg == "release":  # the stage is over: free its models, stay for the next stage
                worker.close()
                continue
            try:
                conn.send(("rows", stage_for(msg.stage).run(worker, msg)))
            except Exception as e:
                conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        worker.close()


class _Slots:
    def __init__(self, plan: Plan, n: int):
        self.n = n
        self.ctx = mp.get_context("spawn")  # never fork a process that may hold threads or CUDA
        self.args = (plan.config, str(Path(plan.out).resolve()), dict(plan.spec), list(sys.path))
        self.procs: list[Any] = [None] * n
        self.conns: list[Any] = [None] * n
        self.ready = [False] * n

    def start(self, k: int) -> None:
        """Start the first `k` workers at once (each spends a second or two importing and
        planning); the others start when they first get a chunk."""
        for i in range(min(k, self.n)):
            if self.procs[i] is None:
                self._start(i)

    def _start(self, i: int) -> None:
        parent, child = self.ctx.Pipe()
        p = self.ctx.Process(target=_worker_main, args=(child, *self.args), daemon=True, name=f"halle-bench-worker-{i}")
        p.start()
        track(p.pid)  # a second Ctrl-C kills it without waiting
        child.close()
        self.procs[i], self.conns[i], self.ready[i] = p, parent, False

    def _check_ready(self, i: int) -> None:
        self.ready[i] = True
        try:
            kind, payload = self.conns[i].recv()
        except (EOFError, OSError):
            kind, payload = "fatal", f"a worker exited while planning the run (exit code {self.procs[i].exitcode})"
        if kind == "fatal":
            raise HalleBenchError(payload)

    def submit(self, slot: int, chunk: Chunk) -> None:
        if self.procs[slot] is None or not self.procs[slot].is_alive():
            self._drop(slot)
            self._start(slot)
        if not self.ready[slot]:
            self._check_ready(slot)
        self.conns[slot].send(chunk)

    def wait(self, busy: list[int]) -> list[tuple[int, str, Any]]:
        waitables = {}
        for i in busy:
            waitables[self.conns[i]] = i
            waitables[self.procs[i].sentinel] = i
        ready = mp_wait(list(waitables))
        out = []
        for i in sorted({waitables[r] for r in ready}):
            try:
                if self.conns[i].poll():
                    kind, payload = self.conns[i].recv()
                    out.append((i, kind, payload))
                    continue
            except (EOFError, OSError):
                pass
            self.procs[i].join(1.0)
            out.append((i, "died", f"exit code {self.procs[i].exitcode}"))
            self._drop(i)
        return out

    def _drop(self, i: int) -> None:
        if self.procs[i] is not None:
            untrack(self.procs[i].pid)
        if self.conns[i] is not None:
            self.conns[i].close()
        self.procs[i] = self.conns[i] = None

    def release(self) -> None:
        """End of a stage: every worker frees the models it loaded (the next stage's differ)."""
        for i, c in enumerate(self.conns):
            if c is not None:
                try:
                    c.send("release")
                except OSError:
                    self._drop(i)

    def stop(self, graceful: bool) -> None:
        live = [(p, c) for p, c in zip(self.procs, self.conns) if p is not None]
        for p, c in live:
            try:
                if graceful:
                    c.send(None)
                else:
                    p.terminate()  # SIGTERM: the worker ends its command's process group
            except (OSError, BrokenPipeError):
                pass
        for p, _ in live:
            p.join(STOP_GRACE_SECONDS)
            if p.is_alive():
                p.kill()
                p.join(1.0)
        for i in range(self.n):
            self._drop(i)


class ProcessExecutor:
    """Worker processes kept from one stage to the next (each stage's models are released
    at its end, the processes and their imports stay), stopped by `close`."""

    name = "process"

    def __init__(self, workers: int = 2):
        self.workers = int(workers)
        self._slots: _Slots | None = None

    def map(self, plan: Plan, stage: Stage, chunks: list[Chunk]) -> Iterator[Result]:
        if self._slots is None:
            self._slots = _Slots(plan, max(1, self.workers))
        yield from map_on_slots(self._slots, chunks, self._abort)

    def _abort(self) -> None:  # interrupted (or the driver failed): stop the workers now
        self._slots.stop(graceful=False)
        self._slots = None

    def close(self) -> None:
        if self._slots is not None:
            self._slots.stop(graceful=True)
            self._slots = None
