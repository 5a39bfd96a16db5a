"""Batches kept on the device (training/resident.py): the same batches as the DataLoader path,
and the same training."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from halle_bench.baselines.ar import ARConfig, CodecAR
from halle_bench.baselines.train import Example, TrainConfig, train
from halle_bench.baselines.training.loop import _Collate, _Items, _Positions
from halle_bench.baselines.training.resident import ResidentTokens, resident_batches, use_resident
from halle_bench.baselines.training.sampler import DurationBatchSampler


def _data(n=23, rows=3, seed=0):
    rng = np.random.default_rng(seed)
    return [Example(rng.integers(1, 40, int(rng.integers(3, 12))).tolist(),
                    rng.integers(0, 1000, (rows, int(rng.integers(5, 60)))).astype(np.int32), str(i))
            for i in range(n)]


def _loader_batches(ex, sampler, k, steps):
    dl = torch.utils.data.DataLoader(_Items(ex), batch_sampler=_Positions(sampler), collate_fn=_Collate(k),
                                     num_workers=0, generator=torch.Generator().manual_seed(0))
    it = iter(dl)
    return [next(it) for _ in range(steps)]


@pytest.mark.parametrize("k,max_frames,start", [(1, 150, (0, 0)), (None, 0, (0, 0)), (2, 200, (1, 2))])
def test_same_batches_as_the_dataloader(k, max_frames, start):
    ex = _data()
    lengths = [e.codes.shape[1] for e in ex]
    mk = lambda: DurationBatchSampler(lengths, seed=7, batch_size=4, max_frames=max_frames, pool=8,
                                      epoch=start[0], index=start[1])
    steps = 25  # past an epoch boundary
    want = _loader_batches(ex, mk(), k, steps)
    gen = resident_batches(ResidentTokens(ex, "cpu", k), mk())
    got = [next(gen) for _ in range(steps)]
    for (wt, wn, wg, wp), (gt, gn, gg, gp) in zip(want, got):
        assert (wn, wg, wp) == (gn, gg, gp)
        for a, b in zip(wt, gt):
            assert a.dtype == b.dtype == torch.long
            assert a.shape == b.shape
            assert torch.equal(a, b)
    assert any(p[0] > start[0] for _, _, _, p in got)  # the epoch advanced


def test_rows_are_checked_and_auto_means_cuda():
    with pytest.raises(ValueError, match="codebooks"):
        ResidentTokens(_data(rows=1), "cpu", 2)
    assert use_resident(None, "cuda") and use_resident(None, "cuda:1")
    assert not use_resident(None, "cpu") and use_resident(True, "cpu") and not use_resident(False, "cuda")


def test_training_is_the_same_resident_or_not(tmp_path):
    ex = [replace(e, codes=e.codes[:1] % 16, text=[t % 20 for t in e.text]) for e in _data(12, rows=1)]
    cfg = TrainConfig(steps=6, batch_size=2, max_frames=80, accum_steps=2, lr=2e-3, warmup_steps=2, log_every=1)
    hist = []
    for resident in (False, True):
        torch.manual_seed(0)
        m = CodecAR(ARConfig(20, 16, 1, _tiny()))
        r = train(m, ex, replace(cfg, resident=resident), tmp_path / str(resident), {"ar": m.cfg.to_dict()})
        hist.append([(h["step"], h["loss"], h["grad_norm"]) for h in r.history])
    assert hist[0] == hist[1] and len(hist[0]) == 6


def _tiny():
    from halle_bench.baselines.transformer import TransformerConfig

    return TransformerConfig.tiny(d_model=32, n_heads=2, n_layers=1, d_ff=64, dropout=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU machine)")
def test_on_cuda_batches_stay_there_and_bf16_trains(tmp_path, monkeypatch):
    import halle_bench.baselines.training.resident as R

    ex = _data()
    lengths = [e.codes.shape[1] for e in ex]
    mk = lambda: DurationBatchSampler(lengths, seed=3, batch_size=4, max_frames=150, pool=8)
    want = _loader_batches(ex, mk(), None, 10)
    gen = resident_batches(ResidentTokens(ex, "cuda", None), mk())
    for w, (g, *_rest) in zip(want, (next(gen) for _ in range(10))):
        assert all(t.is_cuda for t in g) and all(torch.equal(a, b.cpu()) for a, b in zip(w[0], g))
    made = []
    real = R.ResidentTokens
    monkeypatch.setattr(R, "ResidentTokens", lambda *a, **k: made.append(a[1]) or real(*a, **k))
    small = [replace(e, codes=e.codes[:1] % 16, text=[t % 20 for t in e.text]) for e in ex]
    torch.manual_seed(0)
    m = CodecAR(ARConfig(20, 16, 1, _tiny()))
    r = train(m, small, TrainConfig(steps=4, max_frames=150, lr=1e-3, warmup_steps=1, log_every=1, device="cuda",
                                    dtype="bfloat16"), tmp_path / "c", {"ar": m.cfg.to_dict()})
    assert [str(d) for d in made] == ["cuda"] and all(np.isfinite(h["loss"]) for h in r.history)
