"""UTMOS22 strong: key layout, loading a tiny random model through the real loader,
batch-size invariance (no padding), strict keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from halle_bench.errors import CheckpointError, ConfigError
from halle_bench.metrics.base import ScoreItem, build_scorer
from halle_bench.metrics.utmos import UTMOS22Strong, UtmosConfig, config_from_state_dict, load_utmos

TINY = UtmosConfig(conv_dim=32, ssl_dim=128, n_layers=2, ffn_dim=64, pos_kernel=16, pos_groups=4,
                   domain_dim=8, judge_dim=8, rnn_dim=16, proj_dim=32)


def expected_keys(n_layers: int) -> set[str]:
    """The SpeechMOS `utmos22_strong_step7459_v1.pt` layout, written out independently."""
    keys = {f"wav2vec2.feature_extractor.conv_layers.{i}.0.weight" for i in range(7)}
    keys |= {"wav2vec2.feature_extractor.conv_layers.0.2.weight", "wav2vec2.feature_extractor.conv_layers.0.2.bias"}
    for m in ("wav2vec2.layer_norm", "wav2vec2.post_extract_proj", "wav2vec2.encoder.layer_norm"):
        keys |= {f"{m}.weight", f"{m}.bias"}
    keys |= {"wav2vec2.mask_emb", "domain_emb", "judge_emb"}
    keys |= {f"wav2vec2.encoder.pos_conv.0.{n}" for n in ("weight_g", "weight_v", "bias")}
    for i in range(n_layers):
        for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "fc1", "fc2",
                  "self_attn_layer_norm", "final_layer_norm"):
            keys |= {f"wav2vec2.encoder.layers.{i}.{m}.weight", f"wav2vec2.encoder.layers.{i}.{m}.bias"}
    for sfx in ("", "_reverse"):
        keys |= {f"blstm.{n}_l0{sfx}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    keys |= {"projection.0.weight", "projection.0.bias", "projection.2.weight", "projection.2.bias"}
    return keys


def save_tiny(path, seed=0):
    torch.manual_seed(seed)
    m = UTMOS22Strong(TINY)
    torch.save(m.state_dict(), path)
    return m


def test_full_size_layout_matches_speechmos_checkpoint():
    sd = UTMOS22Strong().state_dict()
    assert set(sd) == expected_keys(12)
    assert tuple(sd["wav2vec2.encoder.pos_conv.0.weight_v"].shape) == (768, 48, 128)
    assert tuple(sd["wav2vec2.encoder.pos_conv.0.weight_g"].shape) == (1, 1, 128)
    assert tuple(sd["blstm.weight_ih_l0"].shape) == (2048, 1024)
    assert tuple(sd["projection.0.weight"].shape) == (2048, 1024)
    assert config_from_state_dict(sd) == UtmosConfig()
    assert UtmosConfig().n_heads == 12


def test_tiny_round_trip(tmp_path):
    p = tmp_path / "tiny.pt"
    m = save_tiny(p)
    assert set(m.state_dict()) == expected_keys(2)
    u = load_utmos(p)
    assert u.model.cfg == TINY
    x = np.random.default_rng(0).uniform(-0.3, 0.3, 16000).astype(np.float32)
    with torch.inference_mode():
        direct = float(m.eval()(torch.from_numpy(x)[None])[0])
    assert u.score(x) == direct
    assert u.score(x) == u.score(x.copy())  # deterministic


def test_strict_keys(tmp_path):
    m = UTMOS22Strong(TINY)
    sd = m.state_dict()
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match="extra.weight"):
        load_utmos(tmp_path / "extra.pt")
    sd = m.state_dict()
    del sd["wav2vec2.encoder.layers.1.fc2.bias"]
    torch.save(sd, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="fc2.bias"):
        load_utmos(tmp_path / "missing.pt")
    torch.save({"not": "a model"}, tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="not a UTMOS22"):
        load_utmos(tmp_path / "junk.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_utmos(tmp_path / "corrupt.pt")


def test_scorer_batch_size_invariance(tmp_path, speech):
    p = tmp_path / "tiny.pt"
    save_tiny(p, seed=1)
    items = [
        ScoreItem(system="s", utt_id=str(i), audio=speech(t))
        for i, t in enumerate(["Short one.", "A somewhat longer second sentence to score.", "Third."])
    ]
    s1 = build_scorer("quality", {"model": "utmos", "model_path": str(p), "batch_size": 1})
    s8 = build_scorer("quality", {"model": "utmos", "model_path": str(p), "batch_size": 8})
    one = [s1.score([it])[0].values for it in items]
    eight = [o.values for o in s8.score(items)]
    assert one == eight
    assert eight[0]["quality_model"] == "utmos22-strong" and eight[0]["quality"] == eight[0]["utmos"]
    assert len({v["quality"] for v in eight}) == 3
    ref = s8.models()[0]
    assert ref.name == "utmos22-strong" and len(ref.sha256) == 64
    # a too-short clip is that item's error
    out = s8.score([ScoreItem(system="s", utt_id="x", audio=np.zeros(100, np.float32))])[0]
    assert "too short" in out.error


def test_scorer_rejects_wrong_file(tmp_path):
    torch.save({"a": torch.zeros(1)}, tmp_path / "bad.pt")
    s = build_scorer("quality", {"model": "utmos", "model_path": str(tmp_path / "bad.pt")})
    with pytest.raises(ConfigError, match="bad.pt"):
        s.load("cpu")


def test_scorer_windows_cover_the_clip(tmp_path):
    """10 s windows, the last ending at the clip's end; a clip of one window is scored whole."""
    p = tmp_path / "tiny.pt"
    save_tiny(p, seed=2)
    u = load_utmos(p)
    sr = 16000
    x = np.random.default_rng(4).uniform(-0.3, 0.3, 25 * sr).astype(np.float32)
    s = build_scorer("quality", {"model": "utmos", "model_path": str(p)})
    v = s.score([ScoreItem(system="s", utt_id="long", audio=x)])[0].values
    per = [u.score(x[a : a + 10 * sr]) for a in (0, 10 * sr, 15 * sr)]  # the last: 15-25 s
    assert v["quality"] == pytest.approx(np.mean(per), abs=1e-6) and v["utmos"] == v["quality"]
    assert v["quality_last"] == pytest.approx(per[-1], abs=1e-6) and v["quality_min"] == pytest.approx(min(per), abs=1e-6)
    assert v["pos_quality"] == pytest.approx([np.mean(per)])  # centres 5, 15, 20 s: one 30 s slice
    short = x[: 7 * sr]
    w = s.score([ScoreItem(system="s", utt_id="short", audio=short)])[0].values
    assert w["quality"] == pytest.approx(u.score(short), abs=1e-6) == w["quality_last"]
    assert s.settings() == {"model": "utmos", "position_seconds": 30.0, "window_seconds": 10.0, "hop_seconds": 10.0}
