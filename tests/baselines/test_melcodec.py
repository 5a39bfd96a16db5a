"""The mel codec (48 Hz teacher / naive 8 Hz) and the codec interface."""

import json

import numpy as np
import pytest
import torch

from halle_bench.baselines.checkpoint import CheckpointError
from halle_bench.baselines.codec import Codec, CodecConfig
from halle_bench.baselines.codec_api import CodecInterface, codec_kinds, load_codec
from halle_bench.baselines.melcodec import MelCodec, MelCodecConfig, log_mel, residual_kmeans

SR = 24000
SMALL = dict(n_q=4, codebook_size=32, gl_iters=16)


@pytest.fixture(scope="module")
def clips(speech):
    texts = ["Seven hungry geese followed the farmer.", "A thin layer of frost covered the car."]
    return [speech(t, sr=SR) for t in texts] + [speech(texts[0], voice="en-gb", sr=SR)]


@pytest.fixture(scope="module")
def codec(clips):
    return MelCodec(MelCodecConfig(**SMALL)).fit(clips, SR, seed=0, iters=8)


def test_shapes_frame_rule_and_interface(codec, clips):
    x = clips[0]
    assert isinstance(codec, CodecInterface) and isinstance(Codec.from_config(CodecConfig.tiny()), CodecInterface)
    assert codec.frame_rate == 48 and codec.dimension == 80
    z = codec.embed(x, SR)
    t = -(-len(x) // 500)
    assert z.shape == (1, 80, t)
    codes = codec.encode(x, SR)
    assert codes.shape == (1, 4, t) and int(codes.max()) < 32
    y = codec.decode(codes)
    assert y.shape == (1, 1, t * 500)
    assert torch.equal(y, codec.decode(codes))  # Griffin-Lim from zero phase: deterministic
    # 16 kHz numpy input is resampled to the codec's rate
    assert codec.embed(x[::3].copy(), 8000).shape[-1] == pytest.approx(t, abs=2)


def test_residual_codebooks_each_reduce_the_error(codec, clips):
    z = codec.embed(clips[1], SR)
    errs = []
    for n in range(1, 5):
        q = codec.dequantize(codec.quantize(z, n_q=n))
        errs.append(float((q - z).pow(2).mean()))
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    x = torch.randn(500, 8)
    books = residual_kmeans(x, 2, 16, 5, seed=0)
    assert torch.equal(books, residual_kmeans(x, 2, 16, 5, seed=0)) and books.shape == (2, 16, 8)


def test_griffin_lim_keeps_the_spectrum(codec, clips):
    """Unquantised resynthesis: the log-mel of the output is close to the input's
    (much closer than to another utterance's)."""
    x = clips[0]
    z = codec.embed(x, SR)
    y = codec.decode_emb(z)[0, 0].numpy()
    a = log_mel(torch.from_numpy(x)[None], codec.cfg, codec.fb)
    b = log_mel(torch.from_numpy(y[: len(x)])[None], codec.cfg, codec.fb)
    other = log_mel(torch.from_numpy(np.resize(clips[1], len(x)))[None], codec.cfg, codec.fb)
    err, base = float((a - b).abs().mean()), float((a - other).abs().mean())
    assert err < 0.5 * base, (err, base)


def test_stacked_codec_runs_at_8hz(clips):
    c = MelCodec(MelCodecConfig(stack=6, n_q=3, codebook_size=16, gl_iters=8)).fit(clips, SR, iters=4)
    assert c.frame_rate == 8 and c.dimension == 480
    codes = c.encode(clips[0], SR)
    t8 = -(-(-(-len(clips[0]) // 500)) // 6)
    assert codes.shape == (1, 3, t8)
    assert c.decode(codes).shape[-1] == t8 * 3000


def test_save_load_roundtrip_by_kind(codec, clips, tmp_path):
    codec.save(tmp_path / "mel")
    meta = json.loads((tmp_path / "mel" / "codec.json").read_text())
    assert meta["kind"] == "mel"
    back = load_codec(tmp_path / "mel")
    assert isinstance(back, MelCodec) and back.weights_sha256 == codec.weights_sha256
    # fp16 storage: the loaded codebooks are the fp16-rounded ones
    assert torch.equal(back.codebooks, codec.codebooks.half().float())
    seanet = Codec.from_config(CodecConfig.tiny())
    seanet.save(tmp_path / "sea")
    assert isinstance(load_codec(tmp_path / "sea"), Codec)
    assert set(codec_kinds()) >= {"mel", "seanet"}
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "codec.json").write_text('{"kind": "wavenet", "config": {}}')
    with pytest.raises(CheckpointError, match="bad/codec.json.*unknown codec kind 'wavenet'"):
        load_codec(tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match="no codec.json"):
        load_codec(tmp_path / "nothing")


def test_with_n_q_uses_fewer_codebooks(codec, clips):
    c = MelCodec(codec.cfg)
    c.load_state_dict(codec.state_dict())
    assert c.with_n_q(2).encode(clips[0], SR).shape[1] == 2
    with pytest.raises(ValueError, match="asked for 9"):
        c.with_n_q(9)


def test_mreq_trains_on_the_mel_codec_in_feature_space(codec, clips):
    from halle_bench.baselines.mreq import MReQModel, MReQTrainConfig, MReQTrainer
    from halle_bench.baselines.mrvq import MRVQ, MRVQConfig

    torch.manual_seed(0)
    mrvq = MRVQ(MRVQConfig(dim=80, hidden=16, codebook_size=16))
    tr = MReQTrainer(MReQModel(codec, mrvq), [torch.from_numpy(c) for c in clips],
                     MReQTrainConfig(steps=40, batch_size=4, segment_blocks=4, lr=3e-3))
    assert tr.feature_mode
    hist = tr.fit()
    first, last = np.mean([h["loss"] for h in hist[:5]]), np.mean([h["loss"] for h in hist[-5:]])
    assert last < first
    assert hist[-1]["wave"] == 0.0 and hist[-1]["spec"] > 0  # L_NAC on the log-mel


def test_16khz_and_24khz_inputs_give_the_same_features(clips):
    """Issue 16: the default front end covers only the band a 16 kHz input keeps (0-8 kHz),
    so a clip and its 16 kHz copy embed alike. With bins up to 12 kHz (the first teacher)
    about 10 of 80 bins sat at the log floor for 16 kHz input and the embeddings differed
    by several standard deviations there."""
    from halle_bench.audio import resample

    codec = MelCodec(MelCodecConfig(**SMALL))
    x24 = clips[0]
    codec.fit([x24], SR, seed=0, iters=2)
    z24 = codec.embed(x24, SR)
    z16 = codec.embed(resample(x24, SR, 16000), 16000)
    t = min(z24.shape[-1], z16.shape[-1])
    diff = (z24[..., :t] - z16[..., :t]).abs()
    assert float(diff.mean()) < 0.1, float(diff.mean())
    assert float(diff.mean(dim=(0, 2)).max()) < 0.3  # no bin left behind
    wide = MelCodec(MelCodecConfig(**SMALL, f_max=None)).fit([x24], SR, seed=0, iters=2)
    d_wide = (wide.embed(x24, SR)[..., :t] - wide.embed(resample(x24, SR, 16000), 16000)[..., :t]).abs()
    assert float(d_wide.mean(dim=(0, 2)).max()) > 1.0  # what the fix removes
