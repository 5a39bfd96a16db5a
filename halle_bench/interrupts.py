"""Ctrl-C and SIGTERM: stop within seconds in any stage, leave the run resumable.

`handle_interrupts()` (the CLI wraps a run in it) makes the first SIGINT or SIGTERM
raise `Interrupted` in the main thread, wherever the run is: planning, a model's
forward pass, waiting for a `command` system's program (its start-up probe
included), or waiting for workers. On the way out, the command's process group is
ended (`CommandSystem`), pool workers and Ray actors are stopped, and the rows
written so far stay: every row is appended and fsynced whole, every wav written
atomically before its row, so a re-run of the same command resumes.

A second signal does not wait for any of that: it kills what `track` knows to be
running (command process groups, worker processes) and exits at once.

Exit codes: 128 + the signal number, as shells report a process killed by it:
130 after SIGINT (Ctrl-C), 143 after SIGTERM.

The handlers are installed explicitly even when SIGINT was ignored on entry (a
background job of a non-interactive shell inherits SIGINT ignored): a user who sends
SIGINT to a run wants it to stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator

__all__ = ["Interrupted", "exit_code", "handle_interrupts", "kill_tracked", "track", "untrack"]

_TRACKED: dict[int, bool] = {}  # pid -> is the leader of its own process group
_LOCK = threading.Lock()
_SEEN: list[int] = []  # signals received under handle_interrupts, in order


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (a KeyboardInterrupt, so code that handles
    Ctrl-C handles SIGTERM the same way)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def track(pid: int, group: bool = False) -> None:
    """Remember a child process (or process group, when `group`) to kill on a second signal."""
    with _LOCK:
        _TRACKED[pid] = group


def untrack(pid: int) -> None:
    with _LOCK:
        _TRACKED.pop(pid, None)


def kill_tracked() -> None:
    """SIGKILL every tracked process group and process (best effort, never raises)."""
    with _LOCK:
        items = list(_TRACKED.items())
    for pid, group in items:
        with contextlib.suppress(OSError):
            if group:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)


def exit_code(exc: BaseException) -> int:
    """The exit code of a run stopped by `exc`: 128 + the signal that stopped it. Taken
    from the signal actually received, since a library (Ray's waits) may turn our
    exception into a plain KeyboardInterrupt on its way up; 130 when none was recorded."""
    if isinstance(exc, Interrupted):
        return exc.exit_code
    return 128 + (_SEEN[0] if _SEEN else signal.SIGINT)


@contextlib.contextmanager
def handle_interrupts() -> Iterator[None]:
    """SIGINT/SIGTERM -> `Interrupted` (first), immediate exit (second). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _SEEN.clear()

    def handler(signum: int, frame) -> None:
        _SEEN.append(signum)
        if len(_SEEN) > 1:
            kill_tracked()
            os.write(2, b"halle-bench: aborted\n")
            os._exit(128 + signum)
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
