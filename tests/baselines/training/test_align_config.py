"""`[align]` in a training config: parsed, checked with file and line, and applied to the AR."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from halle_bench.audio import save_audio
from halle_bench.errors import ConfigError
from halle_bench.baselines.training import load_train_config, run_training

BASE = '''model = "valle"
out = "ckpt"
[data]
manifest = "train.jsonl"
[codec]
kind = "tiny"
seed = 1
fit_iters = 2
[model_config]
size = "tiny"
d_model = 32
n_heads = 2
n_layers = 2
d_ff = 64
[train]
steps = 2
batch_size = 2
warmup = 1
log_every = 1
[train.nar]
steps = 1
'''


def _cfg(tmp_path: Path, extra: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(BASE + extra)
    return p


def test_align_table_is_parsed(tmp_path):
    job = load_train_config(_cfg(tmp_path, "[align]\nweight = 0.5\nheads = 1\nlayers = [0, 1]\n"))
    assert job.align == {"weight": 0.5, "heads": 1, "layers": (0, 1)}
    assert load_train_config(_cfg(tmp_path, "")).align is None


@pytest.mark.parametrize("extra,needle", [
    ("[align]\nweight = -1\n", "weight"),
    ("[align]\nlayers = []\n", "layers"),
    ("[align]\nhead = 1\n", "head"),
])
def test_bad_align_tables_name_the_line(tmp_path, extra, needle):
    with pytest.raises(ConfigError) as e:
        load_train_config(_cfg(tmp_path, extra))
    assert needle in str(e.value) and re.search(r"c\.toml:\d+:", str(e.value))


def test_training_logs_the_prior_and_rejects_a_missing_layer(tmp_path, speech):
    with open(tmp_path / "train.jsonl", "w") as f:
        for uid, text in {"a": "One two three.", "b": "Four five six."}.items():
            save_audio(tmp_path / f"{uid}.wav", speech(text, sr=16000), 16000)
            f.write(json.dumps({"id": uid, "text": text, "audio": f"{uid}.wav"}) + "\n")
    logs: list[str] = []

    class R:
        def log(self, msg):
            logs.append(str(msg))

    run_training(load_train_config(_cfg(tmp_path, "[align]\nlayers = [1]\n")), reporter=R())
    assert any("alignment prior" in m for m in logs)
    with pytest.raises(ConfigError, match="layer 5"):
        run_training(load_train_config(_cfg(tmp_path, "[align]\nlayers = [5]\n")).with_overrides(steps=4), reporter=R())
