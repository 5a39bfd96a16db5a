import numpy as np
import pytest
import torch

from halle_bench.baselines.codec import Codec, CodecConfig
from halle_bench.baselines.mreq_tokenizer import MReQTokenizer
from halle_bench.baselines.mrvq import MRVQ, MRVQConfig
from halle_bench.errors import ChecksumError

SR = 4800  # a tiny 48 Hz codec (hop 100) keeps 3-minute inputs fast on CPU


def tiny_tokenizer(seed=0):
    codec = Codec.from_config(CodecConfig.tiny(sample_rate=SR, ratios=(5, 4, 5)), seed=seed)
    torch.manual_seed(seed)
    mrvq = MRVQ(MRVQConfig(dim=codec.dimension, hidden=16, codebook_size=16)).eval()
    return MReQTokenizer(codec, mrvq)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_frame_rule():
    t = tiny_tokenizer()
    assert t.frames(1.0) == {8: 8, 16: 16, 24: 24, 48: 48}
    assert t.frames(7.3) == {8: 59, 16: 118, 24: 177, 48: 354}
    assert t.frames(60.0) == {8: 480, 16: 960, 24: 1440, 48: 2880}
    assert t.frames(180.0) == {8: 1440, 16: 2880, 24: 4320, 48: 8640}


@pytest.mark.parametrize("seconds", [1.0, 7.3, 60.0, 180.0])
def test_encode_gives_exact_frame_counts(tok, seconds):
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal(int(round(seconds * 16000)))).astype(np.float32)
    toks = tok.encode(wav, 16000)  # resampled to the codec's rate
    assert {r: c.shape[-1] for r, c in toks.items()} == tok.frames(seconds)
    assert [c.shape[0] for c in toks.values()] == [2, 1, 1, 1]
    assert all(c.dtype == torch.long for c in toks.values())


@pytest.mark.parametrize("seconds", [1.0, 7.3])
def test_decode_encode_roundtrips_shapes(tok, seconds):
    wav = (0.1 * np.random.default_rng(1).standard_normal(int(seconds * SR))).astype(np.float32)
    toks = tok.encode(wav, SR)
    out = tok.decode(toks)
    assert out.dtype == np.float32 and out.ndim == 1
    assert out.shape[0] == tok.n_blocks(seconds) * SR // 8
    again = tok.encode(out, SR)
    assert {r: c.shape for r, c in again.items()} == {r: c.shape for r, c in toks.items()}
    # coarse decode (8 Hz level only) has the same length
    assert tok.decode(toks, n_levels=1).shape == out.shape


def test_decode_rejects_inconsistent_tokens(tok):
    toks = tok.encode(np.zeros(SR, dtype=np.float32) + 0.01, SR)
    bad = dict(toks)
    bad[16] = bad[16][:, :-1]
    with pytest.raises(ValueError, match="16 Hz"):
        tok.decode(bad)
    del bad[16]
    with pytest.raises(ValueError, match="missing"):
        tok.decode(bad)


def test_save_load_same_tokens_and_checksum(tok, tmp_path):
    wav = (0.1 * np.random.default_rng(2).standard_normal(2 * SR)).astype(np.float32)
    tok.save(tmp_path / "t")
    t2 = MReQTokenizer.load(tmp_path / "t")
    a, b = tok.encode(wav, SR), t2.encode(wav, SR)
    assert all(torch.equal(a[r], b[r]) for r in a)
    assert np.allclose(tok.decode(a), t2.decode(b), atol=1e-6)
    ident = t2.identity()
    assert ident["mrvq"]["rates"] == [8, 16, 24, 48] or tuple(ident["mrvq"]["rates"]) == (8, 16, 24, 48)
    assert ident["mrvq_sha256"]
    # a different codec file under the same MRVQ is refused
    other = tiny_tokenizer(seed=1)
    other.codec.save(tmp_path / "t" / "codec")
    with pytest.raises(ChecksumError):
        MReQTokenizer.load(tmp_path / "t")


def test_mismatched_codec_is_refused():
    codec = Codec.from_config(CodecConfig.tiny(sample_rate=SR, ratios=(5, 4, 4)))  # 60 Hz
    with pytest.raises(ValueError, match="frame rate"):
        MReQTokenizer(codec, MRVQ(MRVQConfig(dim=codec.dimension, hidden=8, codebook_size=8)))
