import pytest

from halle_bench.baselines.codec import Codec, CodecConfig
from halle_bench.baselines.valle import VALLE
from halle_bench.errors import ConfigError
from halle_bench.systems.base import SynthesisRequest, build_system


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck") / "valle"
    VALLE.build(Codec.from_config(CodecConfig.tiny(), seed=0), size="tiny").save(d)
    return d


def test_registered_and_synthesizes(ckpt, speech_wav):
    s = build_system("v", {"kind": "valle", "checkpoint": str(ckpt), "top_k": 5, "max_new_tokens": 12, "batch_size": 2}, ckpt.parent)
    key = s.cache_key()
    assert len(key["checkpoint_sha256"]) == 64 and "device" not in key
    s.load("cpu")
    p = speech_wav("p", "A prompt.")
    reqs = [SynthesisRequest("a", "Good morning.", p, "A prompt.", seed=1),
            SynthesisRequest("b", "", p, "A prompt.", seed=2),
            SynthesisRequest("c", "Again.", ckpt / "missing.wav", "x", seed=3)]
    out = s.synthesize(reqs)
    assert out[0].ok and out[0].sample_rate == 24000 and len(out[0].audio) == 12 * 320
    assert out[1].error and out[2].error and "not found" in out[2].error
    again = s.synthesize(reqs[:1])[0]  # per-request seed: same audio alone or in a batch
    assert (again.audio == out[0].audio).all()
    assert s.models()[0]["sha256"] == key["checkpoint_sha256"]


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs checkpoint"):
        build_system("v", {"kind": "valle"}, tmp_path)
    with pytest.raises(ConfigError, match="unknown keys"):
        build_system("v", {"kind": "valle", "checkpoint": "x", "topk": 3}, tmp_path)
    with pytest.raises(ConfigError, match="model.safetensors not found"):
        build_system("v", {"kind": "valle", "checkpoint": "nope"}, tmp_path).cache_key()
