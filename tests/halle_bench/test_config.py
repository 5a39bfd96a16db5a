import pytest

from halle_bench.config import load_config, parse_config
from halle_bench.errors import ConfigError

GOOD = """
[dataset]
manifest = "meta.lst"
buckets = [3, 10, 30]
prompt = "head"

[[systems]]
name = "gt"
kind = "ground-truth"

[[systems]]
name = "espeak"
kind = "command"
command = ["espeak-ng", "-w", "{out}", "{text}"]

[metrics]
wer = { asr = "whisper-tiny.en" }
sim = false

[run]
seed = 7
"""


def test_parse_good(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(GOOD)
    c = load_config(p)
    assert c.dataset.manifest == (tmp_path / "meta.lst").resolve()
    assert c.dataset.buckets == (3.0, 10.0, 30.0) and c.dataset.prompt == "head"
    assert [s.name for s in c.systems] == ["gt", "espeak"]
    assert c.systems[1].line == GOOD.splitlines().index("[[systems]]", 8) + 1
    assert c.metrics == {"wer": {"asr": "whisper-tiny.en"}}
    assert c.run.seed == 7


@pytest.mark.parametrize(
    "mutate,needle,key",
    [
        (lambda t: t.replace('prompt = "head"', 'prompt = "tail"'), "prompt policy", "prompt ="),
        (lambda t: t.replace("buckets = [3, 10, 30]", "buckets = [10, 3]"), "buckets", "buckets ="),
        (lambda t: t.replace("seed = 7", 'seed = "x"'), "seed", "seed ="),
        (lambda t: t.replace("seed = 7", "colour = 1"), "unknown key", "colour ="),
        (lambda t: t.replace('name = "espeak"', 'name = "gt"'), "used twice", "[[systems]]"),
    ],
)
def test_errors_name_file_and_line(tmp_path, mutate, needle, key):
    text = mutate(GOOD)
    p = tmp_path / "c.toml"
    with pytest.raises(ConfigError) as ei:
        parse_config(text, p)
    e = ei.value
    assert needle in e.message and e.path == str(p)
    assert e.line is not None and text.splitlines()[e.line - 1].strip().startswith(key)


def test_toml_syntax_error_has_line(tmp_path):
    with pytest.raises(ConfigError) as ei:
        parse_config(GOOD.replace("seed = 7", "seed = = 7"), tmp_path / "c.toml")
    assert ei.value.line == GOOD.splitlines().index("seed = 7") + 1


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/x.toml")
