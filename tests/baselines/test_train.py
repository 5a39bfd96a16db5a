import numpy as np
import torch

from halle_bench.audio import save_audio
from halle_bench.baselines.ar import ARConfig, CodecAR
from halle_bench.baselines.checkpoint import load_checkpoint
from halle_bench.baselines.codec import Codec, CodecConfig
from halle_bench.baselines.text import TextFrontend
from halle_bench.baselines.train import Example, TokenCache, TrainConfig, build_examples, lr_lambda, train


def _data():
    g = torch.Generator().manual_seed(0)
    return [Example(torch.randint(0, 20, (8,), generator=g).tolist(), torch.randint(0, 16, (1, 20), generator=g).numpy()) for _ in range(3)]


def _model():
    torch.manual_seed(0)
    return CodecAR(ARConfig(20, 16, 1))


def test_schedule_warmup_then_cosine():
    c = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_lambda(0, c) == 0.1 and lr_lambda(9, c) == 1.0
    assert abs(lr_lambda(100, c) - 0.1) < 1e-9 and lr_lambda(50, c) < lr_lambda(20, c)


def test_resume_equals_uninterrupted(tmp_path):
    cfg = TrainConfig(steps=12, batch_size=2, lr=1e-3, warmup_steps=2, log_every=1)
    full = _model()
    train(full, _data(), cfg, tmp_path / "a", {"ar": full.cfg.to_dict()})
    part = _model()
    train(part, _data(), cfg, tmp_path / "b", {"ar": part.cfg.to_dict()}, stop_after=6)  # "killed" at step 6
    resumed = _model()
    res = train(resumed, _data(), cfg, tmp_path / "b", {"ar": resumed.cfg.to_dict()})
    assert res.step == 12
    for (n, p), (_, q) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(p, q, atol=1e-6), n
    loaded, meta = load_checkpoint(tmp_path / "a" / "last", lambda c: CodecAR(ARConfig.from_dict(c["ar"])))
    assert meta["extra"]["step"] == 12
    assert torch.equal(loaded.state_dict()["text_emb.weight"], full.state_dict()["text_emb.weight"])


def test_build_examples_caches_tokens_and_reports_errors(speech, tmp_path):
    wav = tmp_path / "a.wav"
    save_audio(wav, speech("One two three."), 16000)
    codec = Codec.from_config(CodecConfig.tiny(), seed=0)
    fe = TextFrontend()
    ex, err = build_examples([(wav, "One two three."), (tmp_path / "missing.wav", "x")], fe, codec, tmp_path / "tok")
    assert len(ex) == 1 and len(err) == 1 and "missing.wav" in err[0]
    assert ex[0].codes.shape[0] == 8
    cache = TokenCache(tmp_path / "tok", codec)
    again = cache.codes(wav)
    assert cache.hits == 1 and np.array_equal(again, ex[0].codes)
