"""The loop: interrupted == uninterrupted with a frame budget, EMA, validation and metrics."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from halle_bench.baselines.ar import ARConfig, CodecAR
from halle_bench.baselines.train import Example, TrainConfig, train
from halle_bench.baselines.training.metrics import finish, read_rows
from halle_bench.baselines.transformer import TransformerConfig


def _data(n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        t = int(torch.randint(8, 30, (1,), generator=g))
        out.append(Example(torch.randint(0, 20, (6,), generator=g).tolist(),
                           torch.randint(0, 16, (1, t), generator=g).numpy(), str(i)))
    return out


def _model():
    torch.manual_seed(0)
    return CodecAR(ARConfig(20, 16, 1, TransformerConfig.tiny(d_model=32, n_heads=2, n_layers=1, d_ff=64, dropout=0.1)))


CFG = TrainConfig(steps=10, batch_size=2, max_frames=60, accum_steps=2, lr=2e-3, warmup_steps=2, log_every=1,
                  ema=0.8, val_every=4, num_workers=0)


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_interrupted_equals_uninterrupted_with_ema_validation_and_metrics(tmp_path):
    tr, va = _data(), _data(3, seed=1)
    full = _model()
    train(full, tr, CFG, tmp_path / "a", {"ar": full.cfg.to_dict()}, val_examples=va, metrics_path=tmp_path / "a.jsonl",
          stage="ar")
    part = _model()
    train(part, tr, CFG, tmp_path / "b", {"ar": part.cfg.to_dict()}, val_examples=va, metrics_path=tmp_path / "b.jsonl",
          stage="ar", stop_after=5)  # "killed" at step 5 (a checkpoint between validations)
    # the killed run had logged a step past its checkpoint: the resumed run must drop it
    with open(tmp_path / "b.jsonl", "a") as f:
        f.write(json.dumps({"stage": "ar", "step": 6, "loss": 99.0}) + "\n")
    resumed = _model()
    res = train(resumed, tr, CFG, tmp_path / "b", {"ar": resumed.cfg.to_dict()}, val_examples=va,
                metrics_path=tmp_path / "b.jsonl", stage="ar")
    assert res.step == 10
    for (n, p), (_, q) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(p, q, atol=1e-6), n
    a, b = read_rows(tmp_path / "a.jsonl"), read_rows(tmp_path / "b.jsonl")
    assert _strip(a) == _strip(b)
    val = [r for r in a if "val_loss" in r]
    assert [r["step"] for r in val] == [4, 8, 10] and all(np.isfinite(r["val_loss"]) for r in val)
    # the alignment diagnostics ride along with every validation point (alignment.py)
    assert all(np.isfinite(r["val_shuffle_gap"]) and 0 <= r["val_top10"] <= 1 for r in val)
    assert len([r for r in a if "loss" in r]) == 10
    out = finish(tmp_path / "a.jsonl", "test")
    assert out["csv"].read_text().splitlines()[0].startswith("stage,step,loss")
    assert out["plot"].stat().st_size > 5000


def test_curves_get_one_panel_per_diagnostic(tmp_path):
    import matplotlib.image

    from halle_bench.baselines.training.metrics import plot_curves

    rows = [{"stage": "ar", "step": s, "loss": 3.0 / s} for s in (1, 2, 3)]
    one = plot_curves(rows, tmp_path / "one.png")
    rows += [{"stage": "ar", "step": s, "val_loss": 3.0 / s, "val_shuffle_gap": 0.1 * s, "val_top10": 0.2 * s}
             for s in (1, 3)] + [{"stage": "nar", "step": 2, "val_wer": 0.9, "val_cer": 0.5}]
    five = plot_curves(rows, tmp_path / "five.png")
    h1, w1 = matplotlib.image.imread(one).shape[:2]
    h5, w5 = matplotlib.image.imread(five).shape[:2]
    assert (h5, w5) == (2 * h1, 3 * w1), ((h1, w1), (h5, w5))  # loss + 4 panels: a 2 x 3 grid


def test_ema_is_saved_and_exported(tmp_path):
    m = _model()
    cfg = TrainConfig(steps=6, batch_size=2, lr=5e-3, warmup_steps=1, ema=0.5, log_every=1)
    train(m, _data(), cfg, tmp_path / "o", {"ar": m.cfg.to_dict()})
    state = load_file(str(tmp_path / "o" / "last" / "train_state.safetensors"))
    raw = load_file(str(tmp_path / "o" / "last" / "model.safetensors"))
    k = "text_emb.weight"
    # the model in memory after the stage holds the EMA; the checkpoint keeps the raw weights to resume
    assert torch.equal(m.state_dict()[k], state[f"ema.{k}"])
    assert not torch.allclose(raw[k], state[f"ema.{k}"])
    m2 = _model()
    train(m2, _data(), TrainConfig(**{**cfg.__dict__, "ema": 0.0}), tmp_path / "p", {"ar": m2.cfg.to_dict()})
    assert not any(n.startswith("ema.") for n in load_file(str(tmp_path / "p" / "last" / "train_state.safetensors")))


def test_dataloader_workers_give_the_same_training(tmp_path):
    a, b = _model(), _model()
    cfg = TrainConfig(steps=4, batch_size=2, max_frames=50, lr=2e-3, warmup_steps=1, log_every=1)
    train(a, _data(), cfg)
    train(b, _data(), TrainConfig(**{**cfg.__dict__, "num_workers": 2}))
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), n


def test_ema_warms_up_so_a_short_stage_does_not_export_its_initial_weights(tmp_path):
    from halle_bench.baselines.training.loop import ema_decay

    assert ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 10**6) == 0.999
    assert all(ema_decay(0.999, t) <= ema_decay(0.999, t + 1) for t in range(100))
    m = _model()
    init = {k: v.clone() for k, v in m.state_dict().items()}
    train(m, _data(), TrainConfig(steps=6, batch_size=2, lr=5e-3, warmup_steps=1, ema=0.999, log_every=1),
          tmp_path / "o", {"ar": m.cfg.to_dict()})
    raw = load_file(str(tmp_path / "o" / "last" / "model.safetensors"))
    k = "text_emb.weight"
    to_raw, to_init = (m.state_dict()[k] - raw[k]).norm(), (m.state_dict()[k] - init[k]).norm()
    assert to_raw < 0.05 * to_init  # a plain 0.999 EMA would still be 99.4% the initial weights
