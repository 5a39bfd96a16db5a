"""WavLM-TDNN verifier: architecture pieces against torch's reference ops, checkpoint layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from halle_bench.metrics.base import ScoreItem
from halle_bench.metrics.speaker import CheckpointError, SpeakerSimilarity
from halle_bench.metrics.spk_wavlm import HeadConfig, WavLMECAPA, WavLMTDNNEncoder, infer_config, load_wavlm_ecapa
from halle_bench.metrics.spk_wavlm_net import GatedRelPosAttention, WavLMConfig, WeightNormConv, relative_position_bucket

TINY = WavLMConfig(
    conv_layers=((32, 10, 5), (32, 3, 2), (32, 3, 2), (32, 2, 2)),
    embed_dim=32,
    ffn_dim=64,
    layers=2,
    heads=4,
    conv_pos=16,
    conv_pos_groups=4,
    num_buckets=32,
)
TINY_HEAD = HeadConfig(feat_dim=32, channels=32, mid_channels=48, emb_dim=16, scale=4, se_dim=8, attention_channels=8)


def _tiny_model(seed: int = 0) -> WavLMECAPA:
    torch.manual_seed(seed)
    m = WavLMECAPA(TINY, TINY_HEAD)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "grep_a" in name or "feature_weight" in name:
                p.uniform_(0.2, 1.5)  # non-trivial gates and layer weights
        for name, b in m.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0, 0.1)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 1.5)
    return m.eval()


def test_real_size_layout_matches_published_keys():
    """WavLM-Large + head built on the meta device: shapes of wavlm_large_finetune.pth."""
    with torch.device("meta"):
        m = WavLMECAPA()
    sd = m.state_dict()
    p = "feature_extract.model."
    expected = {
        "feature_weight": (25,),
        p + "mask_emb": (1024,),
        p + "feature_extractor.conv_layers.0.0.weight": (512, 1, 10),
        p + "feature_extractor.conv_layers.0.2.1.weight": (512,),
        p + "feature_extractor.conv_layers.6.0.weight": (512, 512, 2),
        p + "layer_norm.weight": (512,),
        p + "post_extract_proj.weight": (1024, 512),
        p + "encoder.pos_conv.0.weight_g": (1, 1, 128),
        p + "encoder.pos_conv.0.weight_v": (1024, 64, 128),
        p + "encoder.layer_norm.weight": (1024,),
        p + "encoder.layers.0.self_attn.grep_a": (1, 16, 1, 1),
        p + "encoder.layers.0.self_attn.grep_linear.weight": (8, 64),
        p + "encoder.layers.0.self_attn.relative_attention_bias.weight": (320, 16),
        p + "encoder.layers.23.self_attn.k_proj.weight": (1024, 1024),
        p + "encoder.layers.0.fc1.weight": (4096, 1024),
        p + "encoder.layers.0.final_layer_norm.bias": (1024,),
        "layer1.conv.weight": (512, 1024, 5),
        "layer2.Res2Conv1dReluBn.convs.6.weight": (64, 64, 3),
        "layer4.SE_Connect.linear1.weight": (128, 512),
        "conv.weight": (1536, 1536, 1),
        "pooling.linear1.weight": (128, 1536, 1),
        "bn.running_var": (3072,),
        "linear.weight": (256, 3072),
    }
    for k, s in expected.items():
        assert tuple(sd[k].shape) == s, k
    # Only layer 0 owns the relative position table; no conv bias; no shortcut convs.
    assert p + "encoder.layers.1.self_attn.relative_attention_bias.weight" not in sd
    assert p + "feature_extractor.conv_layers.0.0.bias" not in sd
    assert not any("shortcut" in k for k in sd)
    assert infer_config(sd) == (WavLMConfig(), HeadConfig())
    assert 315e6 < sum(v.numel() for v in sd.values()) < 330e6


@pytest.mark.parametrize(
    "rel, bucket",
    [(0, 0), (-1, 1), (1, 161), (-79, 79), (79, 239), (-80, 80), (80, 240), (-200, 111), (-800, 159), (-10**6, 159), (10**6, 319)],
)
def test_relative_position_bucket(rel, bucket):
    # 160 buckets per direction: exact below 80, then 80 + 80*log(d/80)/log(800/80).
    assert relative_position_bucket(torch.tensor([rel]), 320, 800).item() == bucket


def test_weight_norm_conv_matches_torch_weight_norm():
    torch.manual_seed(0)
    ours = WeightNormConv(8, 6, 2)
    with torch.no_grad():
        ours.weight_g.uniform_(0.5, 2.0)
        ours.bias.normal_()
    conv = torch.nn.Conv1d(8, 8, 6, padding=3, groups=2)
    conv = torch.nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
    with torch.no_grad():
        conv.parametrizations.weight.original0.copy_(ours.weight_g)
        conv.parametrizations.weight.original1.copy_(ours.weight_v)
        conv.bias.copy_(ours.bias)
    x = torch.randn(2, 8, 20)
    assert torch.allclose(ours(x), conv(x), atol=1e-5)


def test_gated_attention_matches_torch_mha():
    """Our attention equals WavLM's path through F.multi_head_attention_forward."""
    torch.manual_seed(0)
    cfg = TINY
    att = GatedRelPosAttention(cfg, has_bias_table=True).eval()
    with torch.no_grad():
        att.grep_a.uniform_(0.2, 1.5)
    b, t, d, h = 3, 11, cfg.embed_dim, cfg.heads
    x = torch.randn(b, t, d)
    with torch.no_grad():
        got, bias = att(x, None)
        # reference: time-major MHA with the gated bias as a float mask per (batch*head)
        pos = att.compute_bias(t, "cpu").unsqueeze(0).repeat(b, 1, 1, 1).view(b * h, t, t)
        qh = x.view(b, t, h, d // h).permute(0, 2, 1, 3)
        ga, gb = torch.sigmoid(att.grep_linear(qh).view(b, h, t, 2, 4).sum(-1)).chunk(2, dim=-1)
        mask = (ga * (gb * att.grep_a - 1.0) + 2.0).view(b * h, -1, 1) * pos
        xt = x.transpose(0, 1)
        want, _ = F.multi_head_attention_forward(
            xt, xt, xt, d, h, torch.empty([0]),
            torch.cat((att.q_proj.bias, att.k_proj.bias, att.v_proj.bias)),
            None, None, False, 0.0, att.out_proj.weight, att.out_proj.bias,
            training=False, need_weights=False, attn_mask=mask, use_separate_proj_weight=True,
            q_proj_weight=att.q_proj.weight, k_proj_weight=att.k_proj.weight, v_proj_weight=att.v_proj.weight,
        )  # fmt: skip
    assert torch.allclose(got, want.transpose(0, 1), atol=1e-5)
    assert bias.shape == (h, t, t)


def _save(model: WavLMECAPA, path, extra: dict | None = None):
    sd = dict(model.state_dict())
    sd["loss_calculator.projection.weight"] = torch.randn(7, TINY_HEAD.emb_dim)  # training head, ignored
    sd.update(extra or {})
    torch.save({"model": sd}, path)


def test_checkpoint_roundtrip_equals_direct_model(tmp_path):
    model = _tiny_model()
    path = tmp_path / "wavlm_large_finetune.pth"
    _save(model, path)
    loaded = load_wavlm_ecapa(path)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((2, 8000)).astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)
    # batch of equal windows equals one at a time
    enc = WavLMTDNNEncoder(loaded)
    both = enc.embed_windows([x[0].numpy(), x[1].numpy()])
    one = enc.embed_windows([x[1].numpy()])
    assert np.allclose(both[1], one[0], atol=1e-5)


def test_upstream_alias_prefix_loads(tmp_path):
    model = _tiny_model()
    sd = {k.replace("feature_extract.model.", "feature_extract.upstream.model."): v for k, v in model.state_dict().items()}
    torch.save({"model": sd}, tmp_path / "w.pth")
    load_wavlm_ecapa(tmp_path / "w.pth")


def test_strict_errors(tmp_path):
    model = _tiny_model()
    sd = dict(model.state_dict())
    sd.pop("feature_extract.model.encoder.layers.1.fc2.bias")
    sd["feature_extract.model.final_proj.weight"] = torch.zeros(2, 2)
    torch.save({"model": sd}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as ei:
        load_wavlm_ecapa(tmp_path / "bad.pth")
    assert "layers.1.fc2.bias" in str(ei.value) and "final_proj.weight" in str(ei.value)

    torch.save(model.state_dict(), tmp_path / "flat.pth")  # no {"model": ...} wrapper
    with pytest.raises(CheckpointError, match="'model'"):
        load_wavlm_ecapa(tmp_path / "flat.pth")

    (tmp_path / "corrupt.pth").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_wavlm_ecapa(tmp_path / "corrupt.pth")

    torch.save({"model": {"linear.weight": torch.zeros(2, 2)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a WavLM-TDNN checkpoint"):
        load_wavlm_ecapa(tmp_path / "other.pth")


def test_scorer_with_wavlm_tdnn(tmp_path, speech):
    path = tmp_path / "wavlm_large_finetune.pth"
    _save(_tiny_model(), path)
    sc = SpeakerSimilarity({"model": "wavlm-tdnn", "model_path": str(path), "window_seconds": 2.0})
    sc.load("cpu")
    a = speech("Testing the WavLM verifier on synthetic speech.")
    b = speech("Another sentence from a different voice.", voice="en-us+f3")
    out = sc.score([ScoreItem("s", "1", audio=a, prompt=a.copy(), reference=b)])[0]
    assert out.error is None and out.values["sim_model"] == "wavlm-tdnn"
    # Several 2 s windows, each compared with the prompt's pooled embedding: a copy of the
    # prompt scores below 1 unless its windows agree; the mean lies between min and 1.
    v = out.values
    assert len(v["pos_sim"]) == 1 and v["pos_sim"][0] == pytest.approx(v["sim"])
    assert v["sim_min"] <= v["sim"] <= 1.0 and v["sim_min"] <= v["sim_last"] <= 1.0
    assert -1.0 <= v["sim_ref_min"] <= v["sim_ref"] <= 1.0
    # One window covering the clip: a copy of the prompt is exactly 1.
    whole = SpeakerSimilarity({"model": "wavlm-tdnn", "model_path": str(path), "window_seconds": 10.0})
    whole.load("cpu")
    w = whole.score([ScoreItem("s", "1", audio=a, prompt=a.copy(), reference=b)])[0].values
    assert w["sim"] == pytest.approx(1.0, abs=1e-6) and w["sim_min"] == w["sim_last"] == w["sim"]
