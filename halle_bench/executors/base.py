"""The executor seam: `execute(plan, reporter, writer, select) -> (generated, scored)`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..generation import Select
    from ..plan import Plan
    from ..progress import Reporter

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    name: str

    def execute(self, plan: Plan, reporter: Reporter, writer: str | None, select: Select) -> tuple[int, int]:
        """Generate then score the items `select` keeps; rows go to files of `writer`
        (an executor with several workers gives each its own writer name)."""


def make_executor(name: str = "local", workers: int | None = None, address: str | None = None) -> Executor:
    """Validate the executor flags (ConfigError -> exit 2) and build the executor."""
    if name not in EXECUTORS:
        raise ConfigError(f"--executor: unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    if name == "local":
        if workers not in (None, 1):
            raise ConfigError("--workers needs --executor ray (the local executor is one process; "
                              "use --shard K/N to split work between processes)")
        if address:
            raise ConfigError("--ray-address needs --executor ray")
        from .local import LocalExecutor

        return LocalExecutor()
    from .ray import RayExecutor

    return RayExecutor(workers=workers or 1, address=address)
