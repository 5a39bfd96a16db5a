import json

import pytest
import torch
from torch import nn

from halle_bench.baselines.checkpoint import CheckpointError, checkpoint_sha256, load_checkpoint, read_config, save_checkpoint


def build(cfg):
    return nn.Sequential(nn.Linear(cfg["d"], cfg["h"]), nn.ReLU(), nn.Linear(cfg["h"], 2))


def test_round_trip(tmp_path):
    torch.manual_seed(0)
    m = build({"d": 4, "h": 8})
    save_checkpoint(tmp_path / "c", m, {"d": 4, "h": 8}, {"step": 3})
    m2, meta = load_checkpoint(tmp_path / "c", build)
    x = torch.randn(3, 4)
    assert torch.equal(m(x), m2(x))
    assert meta["extra"]["step"] == 3 and "torch" in meta["versions"]
    assert len(checkpoint_sha256(tmp_path / "c")) == 64


def test_shape_mismatch_missing_and_unexpected_keys(tmp_path):
    save_checkpoint(tmp_path / "c", build({"d": 4, "h": 8}), {"d": 4, "h": 8})
    with pytest.raises(CheckpointError, match=r"shape mismatches.*0.weight"):
        load_checkpoint(tmp_path / "c", lambda c: build({"d": 4, "h": 16}))
    with pytest.raises(CheckpointError, match=r"missing keys \(2\): 3.bias, 3.weight"):
        load_checkpoint(tmp_path / "c", lambda c: nn.Sequential(*build(c), nn.Linear(2, 2)))
    with pytest.raises(CheckpointError, match=r"unexpected keys.*2.weight"):
        load_checkpoint(tmp_path / "c", lambda c: nn.Sequential(nn.Linear(4, 8)))


def test_corrupt_files_give_clear_errors(tmp_path):
    d = tmp_path / "c"
    save_checkpoint(d, build({"d": 4, "h": 8}), {"d": 4, "h": 8})
    w = d / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-3] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(d, build)
    w.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(d, build, verify=False)
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_config(d)
    (d / "config.json").write_text(json.dumps({"format": "pickle"}))
    with pytest.raises(CheckpointError, match="not a halle-bench-checkpoint"):
        read_config(d)
    with pytest.raises(CheckpointError, match="not a folder"):
        read_config(tmp_path / "nope")
