"""Has the model learned text -> audio, or only audio? Teacher-forced diagnostics.

* **Text-shuffle gap** (nats per target token): the validation loss with every item's text
  replaced by another item's text, minus the loss with the right texts. A model that
  ignores its text scores the same either way (gap ~0); one that reads it is surprised by
  the wrong text (gap > 0). Issue 16 measured 0.08 on a model that had memorised six clips,
  i.e. one that had learned audio, not alignment. Texts are rotated by one position over the
  validation items sorted by length (item j gets the text of item j+1, the last the first's):
  the substitute is a real text of about the same length, so a model cannot tell it is
  wrong from its length alone, and the gap measures what it reads. The shuffled pass uses
  the same batches and the same random draws (NAR prompt cut and stage) as the true one.
* **Top-k accuracy** of the AR's next-token predictions (the target among the k most likely):
  the maintainer's rule of thumb in lifeiteng/vall-e #37 is top-10 >= 40 % before a VALL-E
  speaks. Taken from the loss's own `top10` when it reports one (`CodecAR.loss`), else
  computed here for models with `targets(codes, code_lens)`; the NAR stages report the
  shuffle gap only.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from halle_bench.baselines.train import Example


def topk_hits(logits: Tensor, targets: Tensor, k: int) -> tuple[int, int]:
    """(targets among the k largest logits, number of targets) for logits [..., V], targets [...].

    Ties at the k-th value count as hits (the target's logit is >= the k-th largest)."""
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match targets {tuple(targets.shape)}")
    if targets.numel() == 0:
        return 0, 0
    k = min(k, logits.shape[-1])
    kth = logits.topk(k, dim=-1).values[..., -1]
    own = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return int((own >= kth).sum()), int(targets.numel())


def ar_topk_hits(model, text: Tensor, text_lens: Tensor, codes: Tensor, code_lens: Tensor,
                 k: int) -> tuple[int, int] | None:
    """Top-k hits of a teacher-forced AR over every real target (frames and EOS), or None for a
    model without `targets` (the NAR stages)."""
    if not callable(getattr(model, "targets", None)):
        return None
    logits = model(text, text_lens, codes, code_lens)
    tgt, valid = model.targets(codes, code_lens)
    return topk_hits(logits.float()[valid], tgt[valid], k)


def rotated_texts(examples: Sequence[Example], order: Sequence[int]) -> list[Example]:
    """Examples in `order` with texts rotated by one along it (needs at least 2 items)."""
    if len(order) < 2:
        raise ValueError("the text-shuffle gap needs at least 2 validation items")
    n = len(order)
    return [Example(examples[order[(j + 1) % n]].text, examples[order[j]].codes, examples[order[j]].id)
            for j in range(n)]


__all__ = ["topk_hits", "ar_topk_hits", "rotated_texts"]
