import pytest
import torch

from halle_bench.baselines.ar import ARConfig, CodecAR, delay_pattern, undelay
from halle_bench.baselines.sampling import SamplingOptions
from halle_bench.baselines.train import Example, TrainConfig, train
from halle_bench.baselines.transformer import TransformerConfig


def _batch(k):
    g = torch.Generator().manual_seed(0)
    text = torch.randint(0, 20, (3, 7), generator=g)
    prompt = torch.randint(0, 16, (3, k, 6), generator=g)
    return text, torch.tensor([7, 5, 3]), prompt, torch.tensor([6, 2, 0])


def test_delay_pattern_round_trip():
    codes = torch.arange(2 * 3 * 4).view(2, 3, 4)
    d = delay_pattern(codes, torch.tensor([4, 2]), after=-1, fill=99)
    assert d.shape == (2, 3, 4 + 2 + 1)
    assert d[0, 2, :2].tolist() == [99, 99] and d[0, 2, 2] == codes[0, 2, 0]
    assert d[1, 0, 2] == -1
    assert torch.equal(undelay(d[0], 4), codes[0])


@pytest.mark.parametrize("k", [1, 3])
def test_cached_equals_uncached_and_batch_equals_single(k):
    torch.manual_seed(0)
    m = CodecAR(ARConfig(20, 16, k)).eval()
    text, tl, prompt, pl = _batch(k)
    o = SamplingOptions(top_k=5, max_new_tokens=25)
    a = m.generate(text, tl, prompt, pl, o, torch.Generator().manual_seed(1), use_cache=True)
    b = m.generate(text, tl, prompt, pl, o, torch.Generator().manual_seed(1), use_cache=False)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(x.shape[0] == k for x in a)
    gens = [torch.Generator().manual_seed(s) for s in (3, 4, 5)]
    batched = m.generate(text, tl, prompt, pl, o, gens)
    for i in range(3):
        alone = m.generate(text[i : i + 1, : tl[i]], tl[i : i + 1], prompt[i : i + 1, :, : pl[i]], pl[i : i + 1], o,
                           [torch.Generator().manual_seed(3 + i)])
        assert torch.equal(alone[0], batched[i])


def test_loss_masks_padding_and_counts_eos():
    torch.manual_seed(0)
    m = CodecAR(ARConfig(20, 16, 2))
    text, tl, _, _ = _batch(2)
    codes = torch.randint(0, 16, (3, 2, 9))
    cl = torch.tensor([9, 4, 6])
    loss, met = m.loss(text, tl, codes, cl)
    # per item, S = T + 1 delayed columns, S + 1 targets per codebook: codebook 0 has T codes
    # and two EOS, codebook 1 has the delay fill (not a target), T codes and one EOS
    assert met["tokens"] == sum(2 * n + 3 for n in (9, 4, 6))
    codes2 = codes.clone()
    codes2[1, :, 4:] = 7  # changing padding must not change the loss
    assert torch.allclose(m.loss(text, tl, codes2, cl)[0], loss)
    assert torch.isfinite(loss) and 0 <= met["accuracy"] <= 1


def test_overfit_one_utterance_greedy_regenerates_it():
    """Fast variant of the issue's overfit test (AR only; the full one is in test_valle)."""
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 32, (1, 60), generator=g).numpy()
    text = torch.randint(0, 30, (12,), generator=g).tolist()
    m = CodecAR(ARConfig(30, 32, 1, TransformerConfig(d_model=64, n_heads=4, n_layers=2, d_ff=128)))
    train(m, [Example(text, codes)], TrainConfig(steps=120, batch_size=1, lr=3e-3, warmup_steps=10, n_codebooks=1))
    tp = 20
    out = m.generate(torch.tensor([text]), torch.tensor([12]), torch.from_numpy(codes[None, :, :tp]).long(),
                     torch.tensor([tp]), SamplingOptions(top_k=1))
    ref = torch.from_numpy(codes[0, tp:])
    got = out[0][0]
    n = min(len(got), len(ref))
    acc = (got[:n] == ref[:n]).float().sum().item() / len(ref)
    assert acc >= 0.9, acc
    assert m.last_info[0]["eos"] and len(got) == len(ref)
