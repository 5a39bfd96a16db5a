import pytest
import torch

from halle_bench.baselines.sampling import SamplingOptions, filter_logits, sample_next


def test_greedy_is_argmax_and_does_not_draw():
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    logits = torch.tensor([[0.1, 3.0, 0.2], [5.0, 0.0, 1.0]])
    for o in (SamplingOptions(top_k=1), SamplingOptions(temperature=0)):
        assert sample_next(logits, o, g).tolist() == [1, 0]
    assert torch.equal(g.get_state(), state)


def test_top_k_and_top_p_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)[0, 2:]).all()
    f = filter_logits(logits, top_p=0.7)  # 0.5 + 0.3 reaches 0.7
    assert torch.isfinite(f[0, :2]).all() and torch.isinf(f[0, 2:]).all()
    assert torch.isfinite(filter_logits(logits, top_p=0.1)[0, 0])  # the top token always stays


def test_sampling_is_seeded_and_respects_top_k():
    logits = torch.randn(4, 50)
    o = SamplingOptions(top_k=5, temperature=1.5)
    a = torch.stack([sample_next(logits, o, torch.Generator().manual_seed(7)) for _ in range(2)])
    assert torch.equal(a[0], a[1])
    draws = torch.stack([sample_next(logits, o, torch.Generator().manual_seed(s)) for s in range(200)])
    top5 = torch.topk(logits, 5).indices
    assert all(int(draws[i, r]) in top5[r].tolist() for i in range(200) for r in range(4))
    assert len(set(draws[:, 0].tolist())) > 1


def test_options_validate_and_cap():
    with pytest.raises(ValueError):
        SamplingOptions(top_p=0)
    assert SamplingOptions(max_len_ratio=16).max_frames(10) == 160
    assert SamplingOptions(max_new_tokens=20).max_frames(10) == 20
