import torch

from halle_bench.baselines.nar import CodecNAR, NARConfig
from halle_bench.baselines.train import Example, TrainConfig, train
from halle_bench.baselines.transformer import TransformerConfig


def _tf():
    return TransformerConfig(d_model=64, n_heads=4, n_layers=2, d_ff=128, adaptive_norm=True, n_stages=3)


def test_stage_input_uses_only_lower_codebooks():
    torch.manual_seed(0)
    m = CodecNAR(NARConfig(10, 16, 4, _tf())).eval()
    text, tl = torch.randint(0, 10, (1, 5)), torch.tensor([5])
    prompt, pl = torch.randint(0, 16, (1, 4, 6)), torch.tensor([6])
    codes, cl = torch.randint(0, 16, (1, 4, 8)), torch.tensor([8])
    stage = torch.tensor([2])
    a = m(text, tl, prompt, pl, codes, cl, stage)
    c2 = codes.clone()
    c2[:, 2:] = torch.randint(0, 16, (1, 2, 8))  # codebooks >= stage must not matter
    assert torch.allclose(a, m(text, tl, prompt, pl, c2, cl, stage), atol=1e-6)
    c3 = codes.clone()
    c3[:, 1] = (c3[:, 1] + 1) % 16
    assert not torch.allclose(a, m(text, tl, prompt, pl, c3, cl, stage))
    assert a.shape == (1, 8, 16)


def test_batch_padding_equals_single():
    torch.manual_seed(0)
    m = CodecNAR(NARConfig(10, 16, 4, _tf())).eval()
    text, tl = torch.randint(0, 10, (2, 5)), torch.tensor([5, 3])
    prompt, pl = torch.randint(0, 16, (2, 4, 6)), torch.tensor([6, 2])
    first, cl = torch.randint(0, 16, (2, 8)), torch.tensor([8, 5])
    out = m.generate(text, tl, prompt, pl, first, cl)
    one = m.generate(text[1:, :3], tl[1:], prompt[1:, :, :2], pl[1:], first[1:, :5], cl[1:])
    assert torch.equal(out[1, :, :5], one[0])
    assert torch.equal(out[:, 0, :5], first[:, :5])


def test_overfit_nar_greedy():
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 32, (4, 48), generator=g).numpy()
    text = torch.randint(0, 20, (10,), generator=g).tolist()
    m = CodecNAR(NARConfig(20, 32, 4, _tf()))
    train(m, [Example(text, codes)], TrainConfig(steps=150, batch_size=2, lr=3e-3, warmup_steps=10))
    full = torch.from_numpy(codes[None]).long()
    tp = 16
    out = m.generate(torch.tensor([text]), torch.tensor([10]), full[:, :, :tp], torch.tensor([tp]), full[:, 0, tp:], torch.tensor([48 - tp]))
    acc = (out[0, 1:] == full[0, 1:, tp:]).float().mean().item()
    assert acc >= 0.9, acc
