"""`--shard K/N`: a deterministic slice of the (system, utterance) items.

An item's slot is a hash of its system name and utterance id, so it does not depend
on the manifest's order, on `--limit`, or on which other systems are configured: the
same item always lands in the same shard, and the N shards partition the items.
K counts from 0 (`--array=0-7` with `--shard $SLURM_ARRAY_TASK_ID/8`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..errors import ConfigError


def item_slot(system: str, utt_id: str, n: int) -> int:
    """Which of `n` slices the item (system, utt_id) belongs to."""
    h = hashlib.sha256(f"{system}\0{utt_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") % n


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @property
    def writer(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def keeps(self, system: str, utt_id: str) -> bool:
        return item_slot(system, utt_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise ConfigError(f"--shard: expected K/N (e.g. 0/4), got {text!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or k >= n:
        raise ConfigError(f"--shard {text}: need 0 <= K < N (K counts from 0)")
    return Shard(k, n)
