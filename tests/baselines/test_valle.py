import numpy as np
import pytest
import torch

from halle_bench.baselines.checkpoint import CheckpointError
from halle_bench.baselines.codec import Codec, CodecConfig
from halle_bench.baselines.sampling import SamplingOptions
from halle_bench.baselines.train import Example, TrainConfig, train
from halle_bench.baselines.valle import VALLE

TEXT = "Hello there, my friend."


@pytest.fixture(scope="module")
def wav(speech):
    return speech(TEXT, sr=24000)


@pytest.fixture(scope="module")
def model(wav):
    codec = Codec.from_config(CodecConfig.tiny(), seed=0).fit_codebooks([wav])
    return VALLE.build(codec, size="tiny", seed=1)


def test_checkpoint_round_trip_gives_identical_audio(model, wav, tmp_path):
    o = SamplingOptions(top_k=10, max_new_tokens=30)
    a = model.synthesize("How are you?", wav, TEXT, o, seed=5)
    model.save(tmp_path / "ck")
    b = VALLE.load(tmp_path / "ck").synthesize("How are you?", wav, TEXT, o, seed=5)
    assert a.dtype == np.float32 and len(a) > 0 and np.array_equal(a, b)


def test_mismatched_or_corrupt_checkpoint(model, tmp_path):
    d = model.save(tmp_path / "ck")
    import json

    cfg = json.loads((d / "config.json").read_text())
    cfg["config"]["ar"]["transformer"]["d_ff"] = 256
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        VALLE.load(d)
    d2 = model.save(tmp_path / "ck2")
    (d2 / "model.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(CheckpointError, match="sha256"):
        VALLE.load(d2)


def test_batch_reports_bad_items(model, wav):
    outs = model.synthesize_batch([("Fine.", wav, 24000, TEXT), ("  ", wav, 24000, TEXT)],
                                  SamplingOptions(top_k=1, max_new_tokens=10), seed=[0, 1])
    assert outs[0].error is None and outs[0].wav is not None and outs[0].info["frames"] == 10
    assert outs[1].error == "empty target text"


@pytest.mark.slow
def test_overfit_pipeline_regenerates_the_utterance(wav, tmp_path):
    """The issue's overfit test: tiny VALL-E on one utterance, AR greedy + NAR >= 90 %, decode."""
    codec = Codec.from_config(CodecConfig.tiny(), seed=0).fit_codebooks([wav])
    v = VALLE.build(codec, size="tiny", seed=0, d_model=128, d_ff=256)
    codes = codec.encode(wav, 24000)[0].numpy()
    ids = v._text_ids(TEXT, None)
    ex = [Example(ids, codes)]
    train(v.ar, ex, TrainConfig(steps=300, batch_size=1, lr=3e-3, warmup_steps=20, n_codebooks=1))
    train(v.nar, ex, TrainConfig(steps=300, batch_size=2, lr=3e-3, warmup_steps=20))
    v.save(tmp_path / "ck")
    v = VALLE.load(tmp_path / "ck")
    tp = codes.shape[1] // 3
    full = torch.from_numpy(codes[None]).long()
    text, tl = torch.tensor([ids]), torch.tensor([len(ids)])
    first = v.ar.generate(text, tl, full[:, :1, :tp], torch.tensor([tp]), SamplingOptions(top_k=1))[0]
    ref = full[0, :, tp:]
    n = min(first.shape[1], ref.shape[1])
    assert (first[0, :n] == ref[0, :n]).float().sum().item() / ref.shape[1] >= 0.9
    out = v.nar.generate(text, tl, full[:, :, :tp], torch.tensor([tp]), first, torch.tensor([first.shape[1]]))
    assert (out[0, 1:, :n] == ref[1:, :n]).float().mean().item() >= 0.9
    wav_out = v.codec.decode(out)[0, 0].numpy()
    assert wav_out.shape[0] == first.shape[1] * 320 and np.isfinite(wav_out).all()
