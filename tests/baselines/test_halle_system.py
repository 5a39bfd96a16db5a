import numpy as np
import pytest

from halle_bench.audio import save_audio
from halle_bench.errors import ConfigError
from halle_bench.systems.base import SynthesisRequest, build_system

from test_halle import SR, TEXT, HALLE, tiny_tokenizer  # tests/baselines is on sys.path (rootdir mode)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, speech):
    d = tmp_path_factory.mktemp("halle") / "ckpt"
    wav = speech(TEXT, sr=SR)
    HALLE.build(tiny_tokenizer(wav=wav), size="tiny", window=96, overlap=24).save(d)
    return d


def test_registered_and_config_checked(ckpt, tmp_path):
    with pytest.raises(ConfigError, match="checkpoint"):
        build_system("h", {"kind": "halle"}, tmp_path)
    with pytest.raises(ConfigError, match="unknown keys"):
        build_system("h", {"kind": "halle", "checkpoint": str(ckpt), "topk": 3}, tmp_path)
    sys_ = build_system("h", {"kind": "halle", "checkpoint": str(ckpt)}, tmp_path)
    assert sys_.kind == "halle"
    (tmp_path / "empty").mkdir()
    bad = build_system("h", {"kind": "halle", "checkpoint": "empty"}, tmp_path)  # relative to the config folder
    with pytest.raises(ConfigError, match="empty"):
        bad.cache_key()
    with pytest.raises(ConfigError):
        bad.load("cpu")


def test_synthesize_and_cache_key(ckpt, tmp_path, speech):
    cfg = {"kind": "halle", "checkpoint": str(ckpt), "top_k": 5, "max_new_tokens": 5, "nar_window": 30, "nar_overlap": 6}
    s = build_system("h", cfg, tmp_path)
    key = s.cache_key()
    assert len(key["checkpoint_sha256"]) == 64 and "device" not in key
    s.load("cpu")
    s.warmup()
    prompt = tmp_path / "p.wav"
    save_audio(prompt, speech("Hello there.", sr=16000), 16000)
    reqs = [SynthesisRequest("a", TEXT, prompt, "Hello there.", seed=1),
            SynthesisRequest("b", "   ", prompt, None, seed=1),
            SynthesisRequest("c", TEXT, tmp_path / "missing.wav", None, seed=1)]
    out = s.synthesize(reqs)
    assert out[0].ok and out[0].sample_rate == SR and out[0].audio.dtype == np.float32
    assert {"ar_seconds", "nar_seconds", "ar_steps"} <= set(out[0].info)
    assert out[1].error and "empty" in out[1].error
    assert out[2].error and "not found" in out[2].error
    again = s.synthesize(reqs[:1])
    assert np.array_equal(again[0].audio, out[0].audio)
    assert s.models()[0]["sha256"] == key["checkpoint_sha256"]
    # another MRVQ in the tokenizer folder changes the key
    from halle_bench.baselines.mreq import save_mrvq

    save_mrvq(ckpt / "tokenizer", tiny_tokenizer(seed=7).mrvq)
    s2 = build_system("h", cfg, tmp_path)
    assert s2.cache_key()["checkpoint_sha256"] != key["checkpoint_sha256"]
