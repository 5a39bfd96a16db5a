"""Shipping a trained checkpoint: fp16 weights, a reference to the package's codec/tokenizer."""

import json

import pytest
import torch
from safetensors.torch import load_file

from halle_bench.baselines.checkpoint import CheckpointError
from halle_bench.baselines.codec import Codec, CodecConfig
from halle_bench.baselines.halle import HALLE
from halle_bench.baselines.shipped import load_mreq, load_teacher
from halle_bench.baselines.training.ship import ship
from halle_bench.baselines.valle import VALLE

TINY = dict(d_model=32, n_heads=2, n_layers=1, d_ff=64)


def _close_to_fp16(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k].to(torch.float16).float(), b[k].float()), k


def test_valle_ships_in_fp16_on_the_package_teacher_and_loads(tmp_path):
    v = VALLE.build(load_teacher(), size="tiny", seed=0, **TINY)
    v.save(tmp_path / "trained")
    assert (tmp_path / "trained" / "codec").is_dir()
    s = ship(tmp_path / "trained", tmp_path / "shipped")
    assert s.architecture == "valle" and s.n_params > 0
    assert not (tmp_path / "shipped" / "codec").exists()  # no second copy of the teacher
    meta = json.loads((tmp_path / "shipped" / "config.json").read_text())
    assert meta["config"]["codec_source"] == "shipped" and meta["weights_sha256"] == s.sha256
    w = load_file(str(tmp_path / "shipped" / "model.safetensors"))
    assert {t.dtype for t in w.values() if t.is_floating_point()} == {torch.float16}
    _close_to_fp16(load_file(str(tmp_path / "trained" / "model.safetensors")), w)
    back = VALLE.load(tmp_path / "shipped")  # the real loader, sha256 checked
    assert back.codec.weights_sha256 == v.codec.weights_sha256
    loaded = {f"ar.{k}": t for k, t in back.ar.state_dict().items()} | {f"nar.{k}": t for k, t in back.nar.state_dict().items()}
    assert all(torch.equal(loaded[k], w[k].float()) for k in w)  # fp16 values, run in float32


def test_halle_ships_on_the_package_tokenizer_and_the_system_hashes_it(tmp_path):
    from halle_bench.baselines.halle_system import HALLESystem

    h = HALLE.build(load_mreq(), size="tiny", seed=0, **TINY)
    h.save(tmp_path / "trained")
    s = ship(tmp_path / "trained", tmp_path / "shipped")
    assert s.architecture == "halle" and not (tmp_path / "shipped" / "tokenizer").exists()
    back = HALLE.load(tmp_path / "shipped")
    assert back.tokenizer.mrvq_sha256 == load_mreq().mrvq_sha256
    # the tokens mean what they meant in training: the trained folder's own (fp32) tokenizer agrees
    x = torch.sin(torch.arange(12000) * 0.07).numpy() * 0.3
    own = HALLE.load(tmp_path / "trained").tokenizer.encode(x, 24000)
    new = back.tokenizer.encode(x, 24000)
    assert own.keys() == new.keys() and all(torch.equal(own[r], new[r]) for r in own)
    sys_ = HALLESystem("halle", {"name": "halle", "kind": "halle", "checkpoint": str(tmp_path / "shipped")}, tmp_path)
    assert sys_.checkpoint_extra_files() == ()
    digest = sys_.checkpoint_sha256()
    trained = HALLESystem("halle", {"name": "halle", "kind": "halle", "checkpoint": str(tmp_path / "trained")}, tmp_path)
    assert len(trained.checkpoint_extra_files()) == 2 and trained.checkpoint_sha256() != digest


def test_a_model_on_another_codec_is_refused(tmp_path):
    codec = Codec.from_config(CodecConfig.tiny(), seed=3)
    VALLE.build(codec, size="tiny", seed=0, **TINY).save(tmp_path / "other")
    with pytest.raises(CheckpointError, match="trained on another codec"):
        ship(tmp_path / "other", tmp_path / "shipped")
    assert not (tmp_path / "shipped").exists()


def test_a_recorded_pair_sha_registers_a_checked_package_model():
    from halle_bench import models
    from halle_bench.baselines.shipped import pair_spec
    from halle_bench.errors import MissingModelError

    try:
        spec = pair_spec("valle", "0" * 64)
        assert models.get_spec("valle-pair") is spec and spec.package_files[0].endswith("checkpoints/pair/valle/model.safetensors")
        with pytest.raises(MissingModelError, match="train-pair.sh"):  # this build has no such file
            models.resolve("valle-pair")
    finally:
        models._SPECS.pop("valle-pair", None)
