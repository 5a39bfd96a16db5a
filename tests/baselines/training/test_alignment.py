"""Alignment diagnostics: top-k accuracy by hand, and the text-shuffle gap of a model that
reads its text (positive) against the same model made deaf to it (zero)."""

import numpy as np
import pytest
import torch

from halle_bench.baselines.ar import ARConfig, CodecAR
from halle_bench.baselines.train import Example, TrainConfig, collate, train
from halle_bench.baselines.training.alignment import ar_topk_hits, rotated_texts, topk_hits
from halle_bench.baselines.training.loop import validation_loss
from halle_bench.baselines.transformer import TransformerConfig


def test_topk_hits_by_hand():
    logits = torch.tensor([[0.0, 5.0, 1.0, 2.0],   # ranks: 1, 3, 2, 0
                           [3.0, 2.0, 1.0, 0.0],
                           [1.0, 1.0, 1.0, 1.0]])  # all tied: every target is in any top-k
    targets = torch.tensor([3, 2, 0])
    assert topk_hits(logits, targets, 1) == (1, 3)  # only the tie row
    assert topk_hits(logits, targets, 2) == (2, 3)  # + row 0 (its 2nd best)
    assert topk_hits(logits, targets, 3) == (3, 3)
    assert topk_hits(logits, targets, 10) == (3, 3)  # k above the vocabulary: all
    assert topk_hits(logits[:0], targets[:0], 10) == (0, 0)
    with pytest.raises(ValueError, match="do not match"):
        topk_hits(logits, targets[:2], 2)


def test_rotated_texts_rotate_along_the_order():
    ex = [Example([i], np.zeros((1, 3 + i), np.int64), str(i)) for i in range(3)]
    got = rotated_texts(ex, [2, 0, 1])
    assert [e.id for e in got] == ["2", "0", "1"] and [e.text for e in got] == [[0], [1], [2]]
    with pytest.raises(ValueError, match="at least 2"):
        rotated_texts(ex, [0])


V, N_TEXT, L = 64, 64, 6


def _data(n, seed):
    """Each clip repeats one code, its text's first token: only the text predicts it."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        text = torch.randint(0, N_TEXT, (L,), generator=g).tolist()
        t = 12 + i % 3
        out.append(Example(text, np.full((1, t), text[0] % V, np.int64), str(i)))
    return out


class Deaf(CodecAR):
    """The same AR with every text replaced by one fixed text: it cannot read what it is given."""

    def loss(self, text, text_lens, codes, code_lens):
        return super().loss(torch.ones_like(text), torch.full_like(text_lens, L), codes, code_lens)


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: threads only contend
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("cls", [CodecAR, Deaf])
def test_shuffle_gap_positive_when_the_model_reads_the_text_and_zero_when_it_cannot(cls, one_thread):
    torch.manual_seed(0)
    model = cls(ARConfig(N_TEXT, V, 1, TransformerConfig.tiny(d_model=32, n_heads=2, n_layers=2, d_ff=64, dropout=0.0)))
    train(model, _data(16, 0), TrainConfig(steps=60, batch_size=16, lr=3e-3, warmup_steps=5, log_every=100,
                                           n_codebooks=1, weight_decay=0.0))
    row = validation_loss(model, _data(16, 0), 8, 1, "cpu")
    assert row["val_loss_shuffled"] - row["val_loss"] == pytest.approx(row["val_shuffle_gap"])
    assert 0 <= row["val_top10"] <= 1
    if cls is Deaf:
        assert row["val_shuffle_gap"] == pytest.approx(0.0, abs=1e-6)
    else:
        # the loss's own top-10 (CodecAR.loss reports it) agrees with the one computed here
        text, tl, codes, cl = collate(_data(16, 0), 1)
        hits, n = ar_topk_hits(model, text, tl, codes, cl, 10)
        assert hits / n == pytest.approx(row["val_top10"], abs=0.02)
        top5 = validation_loss(model, _data(16, 0), 8, 1, "cpu", shuffle=False, topk=5)
        assert set(top5) == {"val_loss", "val_accuracy", "val_top5"} and top5["val_top5"] <= row["val_top10"] + 1e-9
        assert row["val_shuffle_gap"] > 0.2, row  # the wrong text costs the first frame of each clip dearly
        assert row["val_top10"] > 0.9 and row["val_accuracy"] > 0.5, row
    assert "val_shuffle_gap" not in validation_loss(model, _data(1, 0), 8, 1, "cpu")  # one item: nothing to rotate
    assert "val_top10" not in validation_loss(model, _data(4, 0), 8, 1, "cpu", topk=0)
