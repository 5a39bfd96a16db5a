"""The local executor: this process generates, then scores (the stages in order)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..generation import generate
from ..scoring import score

if TYPE_CHECKING:
    from ..generation import Select
    from ..plan import Plan
    from ..progress import Reporter


class LocalExecutor:
    name = "local"

    def execute(self, plan: Plan, reporter: Reporter, writer: str | None = None, select: Select = None) -> tuple[int, int]:
        n_gen = generate(plan, reporter, writer, select)
        n_scored, _ = score(plan, reporter, writer, select)
        return n_gen, n_scored
