"""Token batches kept on the training device: no DataLoader, no host-to-device copy per step.

On a GPU a small VALL-E / HALL-E step takes a few milliseconds; the DataLoader path (Python
collation of memory-mapped slices, pinned copies) then costs as much as the step itself. Here
every item's token array is loaded once into one device tensor `[rows, sum of frames]` with an
offset per item, the text ids likewise into one flat tensor, and a batch is gathered on the
device from those offsets.

`resident_batches(tokens, sampler)` yields exactly what the DataLoader path of loop.py yields
for the same `DurationBatchSampler` (same seeds, same resume position), i.e.
`((text [B,L], text_lens, codes [B,K,T], code_lens), n_local, n_global, (epoch, index))`, with
the tensors already on the device: the same items in the same order, padded with 0 like
`baselines.train.collate`, as LongTensors (tested equal to the DataLoader's batches).

Decisions:

* Only the first `n_codebooks` rows are kept (the AR reads one row of eight): less memory.
* Tokens stay int32 on the device (half of int64) and are widened after the gather.
* The padded sizes of a batch come from the host-side lengths the sampler already holds, and
  an epoch's item indices go to the device once: a step neither copies nor waits.
* `resident = None` (the default of `TrainConfig.resident`) means "on CUDA": there the copy per
  step is what it saves; on CPU the gather still avoids per-item Python collation.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor


def use_resident(resident: bool | None, device: str | torch.device) -> bool:
    """Whether the loop keeps batches on the device: `resident` if set, else on CUDA."""
    if resident is not None:
        return bool(resident)
    return torch.device(device).type == "cuda"


class ResidentTokens:
    """Every example's text ids and first `n_codebooks` token rows, flat on `device`.

    `examples`: a list of `Example`s or a `shards.ShardExamples` (read once, item by item).
    """

    def __init__(self, examples, device: str | torch.device = "cpu", n_codebooks: int | None = None):
        n = len(examples)
        if n == 0:
            raise ValueError("no examples to keep on the device")
        self.device = torch.device(device)
        first = examples[0]
        rows = int(first.codes.shape[0])
        self.k = int(n_codebooks or rows)
        if self.k > rows:
            raise ValueError(f"{self.k} codebooks asked for, the tokens have {rows} rows")
        codes, texts = [], []
        code_lens = np.zeros(n, dtype=np.int64)
        text_lens = np.zeros(n, dtype=np.int64)
        for i in range(n):
            e = first if i == 0 else examples[i]
            c = np.asarray(e.codes)
            if c.shape[0] < self.k:
                raise ValueError(f"item {i} ({e.id}): {c.shape[0]} token rows, {self.k} needed")
            codes.append(np.asarray(c[: self.k], dtype=np.int32))
            texts.append(np.asarray(e.text, dtype=np.int32))
            code_lens[i], text_lens[i] = c.shape[1], len(e.text)
        self.code_lens = code_lens  # host copies: batch shapes without a device sync
        self.text_lens = text_lens
        self.codes = torch.from_numpy(np.concatenate(codes, axis=1)).to(self.device)  # [k, total frames]
        self.text = torch.from_numpy(np.concatenate(texts)).to(self.device)  # [total text ids]
        self._code_off = torch.from_numpy(np.concatenate([[0], np.cumsum(code_lens)[:-1]])).to(self.device)
        self._text_off = torch.from_numpy(np.concatenate([[0], np.cumsum(text_lens)[:-1]])).to(self.device)
        self._code_len = torch.from_numpy(code_lens).to(self.device)
        self._text_len = torch.from_numpy(text_lens).to(self.device)

    def __len__(self) -> int:
        return len(self.code_lens)

    @property
    def nbytes(self) -> int:
        return self.codes.numel() * self.codes.element_size() + self.text.numel() * self.text.element_size()

    def batch(self, items: Sequence[int], idx: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(text [B,L], text_lens, codes [B,k,T], code_lens) of `items`, gathered on the device.

        `idx`: the same items as a LongTensor already on the device (no copy here)."""
        items = list(items)
        if idx is None:
            idx = torch.as_tensor(items, dtype=torch.long).to(self.device)
        t_max = int(self.code_lens[items].max())
        l_max = int(self.text_lens[items].max())
        cl, tl = self._code_len[idx], self._text_len[idx]
        text = _gather(self.text.unsqueeze(0), self._text_off[idx], tl, l_max)[0]
        codes = _gather(self.codes, self._code_off[idx], cl, t_max).transpose(0, 1)
        return text, tl, codes.contiguous(), cl


def _gather(flat: Tensor, offsets: Tensor, lens: Tensor, width: int) -> Tensor:
    """[rows, B, width] LongTensor: row r of item b is flat[r, off_b : off_b + len_b], then 0s."""
    pos = torch.arange(width, device=flat.device)
    keep = pos.unsqueeze(0) < lens.unsqueeze(1)  # [B, width]
    where = torch.where(keep, offsets.unsqueeze(1) + pos.unsqueeze(0), torch.zeros_like(keep, dtype=torch.long))
    # index_select, not flat[:, where]: the advanced index is ~200x slower on CPU for these sizes
    out = flat.index_select(1, where.reshape(-1)).view(flat.shape[0], *where.shape).long()  # [rows, B, width]
    return out.masked_fill_(~keep.unsqueeze(0), 0)


def resident_batches(tokens: ResidentTokens, sampler) -> Iterator[tuple]:
    """The loop's micro-batches of `sampler` (a `DurationBatchSampler`: its plan, rank share and
    start position), collated on the device.

    The item indices of a whole epoch go to the device in one copy when the epoch starts, so a
    step copies nothing. The (epoch, index) after each batch is the sampler position a
    checkpoint stores, counted as loop.py's DataLoader path counts it, so that a resumed run
    continues with the same batches."""
    from .sampler import rank_share

    epoch, index = sampler.epoch, sampler.index
    while True:
        plan = sampler.plan(epoch)
        if not plan:
            raise ValueError("the batch plan is empty (fewer items than ranks?)")
        shares = [rank_share(b, sampler.lengths, sampler.rank, sampler.world) for b in plan]
        flat = torch.as_tensor([i for sh in shares for i in sh], dtype=torch.long).to(tokens.device)
        starts = np.concatenate([[0], np.cumsum([len(sh) for sh in shares])])
        for j in range(index, len(plan)):
            items = shares[j]
            nxt = (epoch, j + 1) if j + 1 < len(plan) else (epoch + 1, 0)
            yield (tokens.batch(items, flat[int(starts[j]):int(starts[j + 1])]), len(items), len(plan[j]), nxt)
        epoch, index = epoch + 1, 0


__all__ = ["ResidentTokens", "resident_batches", "use_resident"]
