"""Exporting a trained folder's raw (non-EMA) weights."""

import pytest
import torch
from safetensors.torch import save_file

from halle_bench.baselines.checkpoint import CheckpointError
from halle_bench.baselines.shipped import load_teacher
from halle_bench.baselines.training.export import export_raw
from halle_bench.baselines.valle import VALLE

TINY = dict(d_model=32, n_heads=2, n_layers=1, d_ff=64)


def _stage(d, module, shift):
    d.mkdir(parents=True)
    save_file({k: (v + shift).contiguous() for k, v in module.state_dict().items()}, str(d / "model.safetensors"))


def test_raw_weights_of_both_stages_replace_the_ema(tmp_path):
    v = VALLE.build(load_teacher(), size="tiny", seed=0, **TINY)
    v.save(tmp_path / "t")
    _stage(tmp_path / "t" / "train" / "ar" / "last", v.ar, 1.0)
    _stage(tmp_path / "t" / "train" / "nar" / "last", v.nar, 2.0)
    out = export_raw(tmp_path / "t", tmp_path / "raw")
    back = VALLE.load(out)  # the real loader; the sha256 in config.json matches the new weights
    k = "text_emb.weight"
    assert torch.equal(back.ar.state_dict()[k], v.ar.state_dict()[k] + 1.0)
    assert torch.equal(back.nar.state_dict()[k], v.nar.state_dict()[k] + 2.0)
    assert (out / "codec").is_dir() and not (out / "train").exists()
    with pytest.raises(FileExistsError):
        export_raw(tmp_path / "t", out)


def test_a_folder_without_stage_checkpoints_is_refused(tmp_path):
    VALLE.build(load_teacher(), size="tiny", seed=0, **TINY).save(tmp_path / "t")
    with pytest.raises(CheckpointError, match="train/ar/last"):
        export_raw(tmp_path / "t", tmp_path / "raw")
    assert not (tmp_path / "raw").exists()
