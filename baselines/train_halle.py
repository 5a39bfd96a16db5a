"""Training HALL-E: the AR on 8 Hz tokens and the hierarchical NAR, with the shared loop.

Both stages reuse `baselines.train.train` (AdamW, warmup + cosine, clipping, checkpoint +
resume) unchanged:

* AR: `Example(text, codes=b_1 [n_q1, T_8Hz])` and `CodecAR.loss` (delay pattern inside).
* NAR: `Example(text, codes=pack_levels(a, b))` (teacher-rate int rows, see
  `halle_nar.pack_levels`) and `NARTrainable.loss`, which unpacks them, decodes b through
  the frozen MRVQ and trains one random level per step. The MRVQ is held outside the
  module tree, so the optimizer and the checkpoints only see the NAR's own weights.

`prepare_examples(tokenizer, frontend, items)` tokenizes (text, wav, sr) items once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .halle_nar import HalleNAR, pack_levels
from .mreq_tokenizer import MReQTokenizer
from .text import TextFrontend
from .train import Example, TrainConfig, TrainResult, train


@dataclass
class HalleExamples:
    ar: list[Example]
    nar: list[Example]


def prepare_examples(tokenizer: MReQTokenizer, frontend: TextFrontend,
                     items: Sequence[tuple[str, np.ndarray, int]]) -> HalleExamples:
    """(text, wav, sr) -> AR and NAR training examples (one per item)."""
    ar, nar = [], []
    ratios = tokenizer.mrvq.cfg.ratios
    for i, (text, wav, sr) in enumerate(items):
        ids = frontend.encode(text).ids
        a, b = tokenizer.encode_levels(wav, sr)
        ar.append(Example(ids, b[0].cpu().numpy().astype(np.int64), id=str(i)))
        nar.append(Example(ids, pack_levels(a, b, ratios), id=str(i)))
    return HalleExamples(ar, nar)


class NARTrainable(nn.Module):
    """Adapter giving HalleNAR the `loss(text, text_lens, codes, code_lens, generator)` the
    shared loop calls; `mrvq` stays frozen and out of `parameters()`/`state_dict()`."""

    def __init__(self, nar: HalleNAR, mrvq):
        super().__init__()
        self.nar = nar
        self._frozen = [mrvq.eval()]  # a list hides it from nn.Module registration
        for p in mrvq.parameters():
            p.requires_grad_(False)

    @property
    def mrvq(self):
        return self._frozen[0]

    def loss(self, text: Tensor, text_lens: Tensor, codes: Tensor, code_lens: Tensor,
             generator: torch.Generator | None = None, stage: int | None = None):
        self.mrvq.to(codes.device)
        return self.nar.loss(self.mrvq, text, text_lens, codes, code_lens, generator=generator, stage=stage)


def train_ar(halle, examples: HalleExamples, cfg: TrainConfig, out_dir: str | Path | None = None, **kw) -> TrainResult:
    return train(halle.ar, examples.ar, cfg, None if out_dir is None else Path(out_dir) / "ar",
                 model_config={"ar": halle.ar.cfg.to_dict()}, **kw)


def train_nar(halle, examples: HalleExamples, cfg: TrainConfig, out_dir: str | Path | None = None, **kw) -> TrainResult:
    model = NARTrainable(halle.nar, halle.mrvq)
    return train(model, examples.nar, cfg, None if out_dir is None else Path(out_dir) / "nar",
                 model_config={"nar": halle.nar.cfg.to_dict()}, **kw)


__all__ = ["prepare_examples", "NARTrainable", "train_ar", "train_nar", "HalleExamples"]
