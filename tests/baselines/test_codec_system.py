"""The `codec` system kind (resynthesis) on small codecs saved in the test."""

import numpy as np
import pytest
import torch

from halle_bench.audio import save_audio
from halle_bench.baselines.melcodec import MelCodec, MelCodecConfig
from halle_bench.baselines.mreq_tokenizer import MReQTokenizer
from halle_bench.baselines.mrvq import MRVQ, MRVQConfig
from halle_bench.errors import ConfigError
from halle_bench.systems.base import SynthesisRequest, build_system, system_kinds

SR = 24000


@pytest.fixture(scope="module")
def folders(speech, tmp_path_factory):
    d = tmp_path_factory.mktemp("codecs")
    x = speech("A thin layer of frost covered the car.", sr=SR)
    save_audio(d / "ref.wav", x, SR)
    teacher = MelCodec(MelCodecConfig(n_q=4, codebook_size=32, gl_iters=8)).fit([x], SR, iters=4)
    teacher.save(d / "teacher")
    naive = MelCodec(MelCodecConfig(stack=6, n_q=4, codebook_size=16, gl_iters=8)).fit([x], SR, iters=4)
    naive.save(d / "naive")
    torch.manual_seed(0)
    mrvq = MRVQ(MRVQConfig(dim=80, hidden=16, codebook_size=16))
    for lv in mrvq.levels:  # as if trained: the sub-decoders start at zero output
        torch.nn.init.normal_(lv.decoder.net[-1].weight, std=0.1)
    tok = MReQTokenizer(teacher, mrvq)
    mrvq.train()
    mrvq(tok._prepare(x, SR))
    mrvq.eval()
    tok.save(d / "mreq")
    return d, x


def test_registered():
    assert "codec" in system_kinds()


@pytest.mark.parametrize("cfg", [{"tokens": "teacher", "checkpoint": "teacher", "n_codebooks": 2},
                                 {"tokens": "mreq", "checkpoint": "mreq", "levels": 1},
                                 {"tokens": "mreq", "checkpoint": "mreq"},
                                 {"tokens": "naive", "checkpoint": "naive"}])
def test_resynthesis_keeps_length_and_is_deterministic(folders, cfg):
    d, x = folders
    s = build_system("c", {"kind": "codec", **cfg}, d)
    key = s.cache_key()
    assert all(len(h) == 64 for h in key["weights_sha256"]) and "device" not in key
    s.load("cpu")
    reqs = [SynthesisRequest("a", "t", reference_audio=d / "ref.wav"), SynthesisRequest("b", "t"),
            SynthesisRequest("c", "t", reference_audio=d / "missing.wav")]
    out = s.synthesize(reqs)
    assert out[0].ok and out[0].sample_rate == SR and len(out[0].audio) == len(x)
    assert float(np.abs(out[0].audio).max()) > 0.01
    assert "no reference audio" in out[1].error and "not found" in out[2].error
    assert np.array_equal(s.synthesize(reqs[:1])[0].audio, out[0].audio)
    assert out[0].info["tokens"] > 0


def test_mreq_levels_and_teacher_codebooks_change_the_output(folders):
    d, _ = folders
    outs = {}
    for name, cfg in {"t2": {"checkpoint": "teacher", "n_codebooks": 2}, "t4": {"checkpoint": "teacher"},
                      "m1": {"tokens": "mreq", "checkpoint": "mreq", "levels": 1},
                      "m4": {"tokens": "mreq", "checkpoint": "mreq"}}.items():
        s = build_system(name, {"kind": "codec", **cfg}, d)
        s.load("cpu")
        outs[name] = s.synthesize([SynthesisRequest("a", "t", reference_audio=d / "ref.wav")])[0]
    assert not np.array_equal(outs["t2"].audio, outs["t4"].audio)
    assert not np.array_equal(outs["m1"].audio, outs["m4"].audio)
    assert outs["m1"].info["tokens"] < outs["m4"].info["tokens"]  # 8 Hz alone: fewer tokens


def test_config_errors(folders, tmp_path):
    d, _ = folders
    for cfg, msg in [({"tokens": "wav2vec"}, "tokens must be one of"), ({"levels": 2}, "levels applies"),
                     ({"tokens": "mreq", "n_codebooks": 2}, "n_codebooks applies"),
                     ({"n_codebooks": 0}, "positive integer"), ({"bitrate": 3}, "unknown keys")]:
        with pytest.raises(ConfigError, match=msg):
            build_system("c", {"kind": "codec", **cfg}, d)
    with pytest.raises(ConfigError, match="checkpoint folder not found"):
        build_system("c", {"kind": "codec", "checkpoint": "nope"}, tmp_path).cache_key()
    s = build_system("c", {"kind": "codec", "tokens": "mreq", "checkpoint": "mreq", "levels": 9}, d)
    with pytest.raises(ConfigError, match="levels = 9"):
        s.load("cpu")


def test_cache_key_follows_the_codec_config(folders, tmp_path):
    import json
    import shutil

    d, _ = folders
    shutil.copytree(d / "teacher", tmp_path / "teacher")
    key = build_system("c", {"kind": "codec", "checkpoint": "teacher"}, tmp_path).cache_key()
    meta = json.loads((tmp_path / "teacher" / "codec.json").read_text())
    meta["edited"] = True  # any change to the config folder's JSON must invalidate cached audio
    (tmp_path / "teacher" / "codec.json").write_text(json.dumps(meta))
    again = build_system("c", {"kind": "codec", "checkpoint": "teacher"}, tmp_path).cache_key()
    assert again["weights_sha256"] == key["weights_sha256"] and again != key
