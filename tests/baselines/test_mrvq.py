import pytest
import torch
import torch.nn.functional as F

from halle_bench.baselines.mrvq import MRVQ, MRVQConfig, level_ratios


def tiny_cfg(**kw):
    base = dict(dim=8, hidden=16, codebook_size=32, quant_n_q=(2, 1, 1, 1))
    base.update(kw)
    return MRVQConfig(**base)


def smooth_features(b=2, d=8, t=96, seed=0):
    """Speech-like embeddings: slowly varying plus some fast detail."""
    g = torch.Generator().manual_seed(seed)
    slow = F.interpolate(torch.randn(b, d, t // 6, generator=g), size=t, mode="linear", align_corners=False)
    return slow + 0.3 * torch.randn(b, d, t, generator=g)


def test_default_rates_and_ratios():
    cfg = MRVQConfig()
    assert cfg.rates == (8, 16, 24, 48) and cfg.ratios == (6, 3, 2, 1)
    assert MRVQ(tiny_cfg()).frame_multiple == 6


@pytest.mark.parametrize("rates", [(5, 48), (7,), (8, 96), (0,), (8, 8)])
def test_bad_rates_are_clear_errors(rates):
    with pytest.raises(ValueError, match="rate"):
        MRVQConfig(rates=rates)


def test_other_rate_sets_accepted():
    assert level_ratios(48, (12, 48)) == (4, 1)
    m = MRVQ(tiny_cfg(rates=(4, 12, 48), quant_n_q=1))
    toks = m.encode(torch.randn(1, 8, 48))
    assert {r: t.shape[-1] for r, t in toks.items()} == {4: 4, 12: 12, 48: 48}


def test_per_level_list_length_checked():
    with pytest.raises(ValueError, match="quant_n_q"):
        MRVQConfig(quant_n_q=(1, 1))


def test_shapes_and_decode_roundtrip():
    torch.manual_seed(0)
    m = MRVQ(tiny_cfg())
    z = smooth_features(t=48)
    m.train()
    out = m(z)
    assert [x.shape for x in out.b] == [(2, 2, 8), (2, 1, 16), (2, 1, 24), (2, 1, 48)]
    assert [x.shape for x in out.a] == [(2, 1, 48)] * 4
    m.eval()
    toks = m.encode(z)
    assert list(toks) == [8, 16, 24, 48]
    # decode(encode) equals the eval forward's student embedding
    assert torch.allclose(m.decode(toks), m(z).student, atol=1e-5)
    assert m.decode(toks).shape == z.shape
    with pytest.raises(ValueError, match="multiple of 6"):
        m.encode(torch.randn(1, 8, 50))


def test_trained_reconstruction_error_falls_as_levels_are_added():
    torch.manual_seed(0)
    m = MRVQ(tiny_cfg())
    z = smooth_features(b=4, t=96)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    m.train()
    for _ in range(150):
        out = m(z)
        loss = F.mse_loss(out.student, z) + out.hsr_loss + 0.25 * out.commit_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    toks = m.encode(z)
    errs = [float(F.mse_loss(m.decode(toks, n_levels=n), z)) for n in (1, 2, 3, 4)]
    var = float(z.var())
    assert all(errs[i + 1] < errs[i] for i in range(3)), errs
    assert errs[-1] < 0.5 * var, (errs, var)
