"""`halle-bench train` with model = "codec": config checks and a tiny rebuild."""

import json

import pytest

from halle_bench.errors import ConfigError
from halle_bench.baselines.training import load_train_config, run_training

TINY = """model = "codec"
out = "out"
[corpus]
texts = "texts.txt"
voices = [["en-us", 160, 50], ["en-gb", 160, 60]]
voices_per_text = 1
[teacher]
n_q = 2
codebook_size = 16
iters = 3
gl_iters = 4
[naive]
stack = 6
n_q = 2
codebook_size = 8
iters = 2
[mreq]
hidden = 8
codebook_size = 8
steps = 3
batch_size = 2
segment_blocks = 2
ckpt_every = 2
"""


def test_config_errors_name_the_line(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(TINY.replace("iters = 3", "iters = 3\nbogus = 1"))
    with pytest.raises(ConfigError, match=r"\[teacher\]: unknown key 'bogus'") as e:
        load_train_config(p)
    assert "c.toml:11:" in str(e.value)
    p.write_text(TINY.replace('voices_per_text = 1', 'voices_per_text = 1\n[data]\nmanifest = "x"'))
    with pytest.raises(ConfigError, match="unknown table or key 'data' for model 'codec'"):
        load_train_config(p)
    p.write_text(TINY.replace("gl_iters = 4", "synth_hop = 300"))
    with pytest.raises(ConfigError, match=r"\[teacher\]: bad codec setting"):
        load_train_config(p)
    p.write_text(TINY.replace('voices = [["en-us", 160, 50], ["en-gb", 160, 60]]', 'voices = ["en-us"]'))
    with pytest.raises(ConfigError, match="list of \\[voice, words_per_minute, pitch\\]"):
        load_train_config(p)


def test_tiny_rebuild_and_resume(tmp_path, speech):
    (tmp_path / "texts.txt").write_text("# comment\nSeven hungry geese followed the farmer.\nA fox crossed the road.\n")
    p = tmp_path / "c.toml"
    p.write_text(TINY)
    job = load_train_config(p)
    assert job.model == "codec" and job.out == tmp_path / "out"
    out = run_training(job)
    from halle_bench.baselines.codec_api import load_codec
    from halle_bench.baselines.mreq_tokenizer import MReQTokenizer

    teacher = load_codec(out / "teacher")
    assert teacher.frame_rate == 48 and teacher.n_q == 2
    assert load_codec(out / "naive8").frame_rate == 8
    tok = MReQTokenizer.load(out / "mreq")
    assert tok.codec.weights_sha256 == teacher.weights_sha256  # the MRVQ's teacher is the fitted codec
    meta = json.loads((out / "mreq-train" / "mrvq.json").read_text())
    assert meta["step"] == 3
    sha = teacher.weights_sha256
    # re-running reuses the fitted codecs and resumes the MReQ training (more steps)
    run_training(load_train_config(p).with_overrides(steps=5))
    assert load_codec(out / "teacher").weights_sha256 == sha
    assert json.loads((out / "mreq-train" / "mrvq.json").read_text())["step"] == 5
