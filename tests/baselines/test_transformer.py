import torch

from halle_bench.baselines.transformer import KVCache, SinusoidalPositions, Transformer, TransformerConfig, attention_mask


def _model(**kw):
    torch.manual_seed(0)
    return Transformer(TransformerConfig.tiny(**kw)).eval()


def test_causal_output_does_not_see_the_future():
    m = _model()
    x = torch.randn(2, 10, 64)
    y1 = m(x, causal=True)
    x2 = x.clone()
    x2[:, 6:] = torch.randn(2, 4, 64)
    y2 = m(x2, causal=True)
    assert torch.allclose(y1[:, :6], y2[:, :6], atol=1e-5)
    assert not torch.allclose(y1[:, 6:], y2[:, 6:])


def test_kv_cache_matches_full_forward_token_by_token():
    m = _model()
    x = torch.randn(2, 12, 64)
    full = m(x, causal=True)
    cache = m.new_cache(capacity=2)  # forces the buffers to grow
    outs = [m(x[:, :5], causal=True, cache=cache)]
    for t in range(5, 12):
        outs.append(m(x[:, t : t + 1], causal=True, cache=cache))
    assert cache.length == 12
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-5)


def test_padding_is_ignored():
    m = _model()
    x = torch.randn(1, 6, 64)
    xp = torch.cat([x[:, :3], torch.randn(1, 2, 64), x[:, 3:]], 1)
    pad = torch.tensor([[False, False, False, True, True, False, False, False]])
    y = m(x, causal=False)
    yp = m(xp, causal=False, key_padding_mask=pad)
    assert torch.allclose(yp[:, ~pad[0]], y, atol=1e-5)


def test_adaptive_norm_depends_on_stage_and_cross_attention_on_memory():
    m = _model(adaptive_norm=True, n_stages=3, cross_attention=True)
    for p in m.parameters():  # move AdaLN away from its (1, 0) init
        torch.nn.init.normal_(p, std=0.2)
    x, mem = torch.randn(1, 4, 64), torch.randn(1, 3, 64)
    a = m(x, causal=False, stage=torch.tensor([0]), memory=mem)
    b = m(x, causal=False, stage=torch.tensor([2]), memory=mem)
    c = m(x, causal=False, stage=torch.tensor([0]), memory=torch.randn(1, 3, 64))
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


def test_positions_alpha_offset_and_explicit_positions():
    pe = SinusoidalPositions(8)
    x = torch.zeros(2, 3, 8)
    y = pe(x, offset=torch.tensor([0, 5]))
    assert torch.allclose(y[1, 0], pe.encoding(torch.tensor(5)))
    assert torch.allclose(pe(x, positions=torch.tensor([[5, 6, 7]] * 2))[0], y[1])
    assert torch.allclose(y[0, 0, 1::2], torch.ones(4))  # cos(0) = 1
    assert isinstance(pe.alpha, torch.nn.Parameter)


def test_attention_mask_shapes():
    assert attention_mask(None, 1, 10, True, torch.device("cpu")) is None
    m = attention_mask(torch.tensor([[False, True, False]]), 2, 3, True, torch.device("cpu"))
    assert m.shape == (1, 1, 2, 3)
    assert m[0, 0].tolist() == [[True, False, False], [True, False, True]]
    assert isinstance(KVCache(2), KVCache)
