"""The alignment prior (training only): guided attention on a few heads."""

import torch

from halle_bench.baselines.align_prior import AlignPrior, capture_attention, guide_weights, guided_attention_loss
from halle_bench.baselines.ar import ARConfig, CodecAR
from halle_bench.baselines.transformer import TransformerConfig


def _diag_probs(text_len: int, audio_len: int) -> torch.Tensor:
    n_text = text_len + 1
    s = audio_len
    p = torch.zeros(1, 1, n_text + s, n_text + s)
    for t in range(s):
        p[0, 0, n_text + t, round(t / s * n_text)] = 1.0
    return p


def test_diagonal_costs_little_and_audio_keys_cost_one():
    tl, al = torch.tensor([9]), torch.tensor([40])
    diag = guided_attention_loss(_diag_probs(9, 40), tl, al, 10, 0.2)
    anti = _diag_probs(9, 40).flip(-1)  # reversed keys: audio keys and the wrong text end
    assert float(diag) < 0.1  # rounding to whole tokens costs a little
    p_audio = torch.zeros(1, 1, 50, 50)
    p_audio[0, 0, 10:, 10] = 1.0  # every audio query on the first audio key
    assert abs(float(guided_attention_loss(p_audio, tl, al, 10, 0.2)) - 1.0) < 1e-6
    assert float(guided_attention_loss(anti, tl, al, 10, 0.2)) > 0.5
    w = guide_weights(tl, al, 10, 40, 0.2)
    assert w.shape == (1, 40, 50) and float(w[0, 0, 0]) == 0.0 and float(w[0, 39, 0]) > 0.9


def test_captured_probs_match_sdpa_and_leave_inference_alone():
    torch.manual_seed(0)
    ar = CodecAR(ARConfig(20, 16, 1, TransformerConfig.tiny()))
    text = torch.randint(0, 20, (2, 7))
    tl = torch.tensor([7, 4])
    codes = torch.randint(0, 16, (2, 1, 12))
    cl = torch.tensor([12, 9])
    ar.eval()
    ref = ar(text, tl, codes, cl)
    with capture_attention(ar.decoder, (1,), 2) as mods:
        out = ar(text, tl, codes, cl)
        p = mods[1].captured
    assert torch.allclose(ref, out, atol=1e-5)
    assert p.shape == (2, 2, 8 + 12, 8 + 12)
    assert torch.allclose(p.sum(-1), torch.ones_like(p.sum(-1)), atol=1e-5)
    assert ar.decoder.layers[1].attn.capture_heads == 0  # switched off again


def test_prior_adds_a_loss_with_gradients_only_in_training():
    torch.manual_seed(0)
    ar = CodecAR(ARConfig(20, 16, 1, TransformerConfig.tiny()))
    text, tl = torch.randint(0, 20, (2, 7)), torch.tensor([7, 4])
    codes, cl = torch.randint(0, 16, (2, 1, 12)), torch.tensor([12, 9])
    ar.train()
    plain, info0 = ar.loss(text, tl, codes, cl)
    ar.align_prior = AlignPrior(weight=2.0, heads=1, layers=(0, 1))
    total, info = ar.loss(text, tl, codes, cl)
    assert "align" in info and "align" not in info0 and info["top10"] >= info["accuracy"]
    assert abs(float(total) - (info["loss"] + 2.0 * info["align"])) < 1e-4
    total.backward()
    q_grad = ar.decoder.layers[0].attn.qkv.weight.grad
    assert q_grad is not None and float(q_grad.abs().sum()) > 0
    ar.eval()
    _, info_eval = ar.loss(text, tl, codes, cl)
    assert "align" not in info_eval
