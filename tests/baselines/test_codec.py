import numpy as np
import pytest
import torch

from halle_bench.baselines.codec import Codec, CodecConfig
from halle_bench.errors import ChecksumError, MissingModelError


@pytest.fixture(scope="module")
def wav(speech):
    return speech("Testing the codec wrapper.", sr=24000)


@pytest.fixture(scope="module")
def codec(wav):
    return Codec.from_config(CodecConfig.tiny(), seed=0).fit_codebooks([wav])


def test_shapes_and_frame_rate(codec, wav):
    assert codec.frame_rate == 75 and codec.n_q == 8 and codec.sample_rate == 24000
    codes = codec.encode(wav, 24000)
    assert codes.shape == (1, 8, int(np.ceil(len(wav) / 320)))
    assert int(codes.max()) < 64
    assert len(set(codes[0, 0].tolist())) > 10  # fitted codebooks give varied codes
    out = codec.decode(codes)
    assert out.shape == (1, 1, codes.shape[2] * 320)
    emb = codec.embed(wav, 24000)
    assert torch.equal(codec.quantize(emb), codes)
    assert torch.allclose(codec.decode_emb(codec.dequantize(codes)), out)


def test_resampling_input(codec, speech):
    x16 = speech("Testing the codec wrapper.", sr=16000)
    codes = codec.encode(x16, 16000)
    assert abs(codes.shape[2] - np.ceil(len(x16) * 1.5 / 320)) <= 1


def test_save_load_identical(codec, wav, tmp_path):
    codec.save(tmp_path / "c")
    c2 = Codec.load(tmp_path / "c")
    assert torch.equal(c2.encode(wav, 24000), codec.encode(wav, 24000))
    assert c2.identity()["weights_sha256"] is not None


def test_teacher_config_is_48hz():
    assert CodecConfig.teacher_48hz().frame_rate == 48
    assert CodecConfig.encodec_24khz(6.0).n_q == 8 and CodecConfig.encodec_24khz(12.0).n_q == 16


def test_encodec_weights_missing_or_wrong(tmp_path):
    with pytest.raises(MissingModelError, match="encodec_24khz-d7cc33bc.th"):
        Codec.encodec_24khz(tmp_path / "encodec_24khz-d7cc33bc.th")
    bad = tmp_path / "encodec_24khz-d7cc33bc.th"
    bad.write_bytes(b"not the model")
    with pytest.raises(ChecksumError, match="d7cc33bc"):
        Codec.encodec_24khz(bad)


def test_real_encodec_state_dict_keys_load(tmp_path):
    # The real checkpoint is a plain state dict of EncodecModel; our module must accept it.
    from encodec import EncodecModel

    ref = EncodecModel.encodec_model_24khz(pretrained=False)
    ours = Codec(CodecConfig.encodec_24khz())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 1, 2400) * 0.1
    ref.set_target_bandwidth(6.0)
    assert torch.equal(ref.encode(x)[0][0], ours.encode(x))
