"""A plugin adds an ASR model format (and the engine that runs it) with no edit to
halle-bench: its module is found through an installed entry point (simulated by a
dist-info folder on sys.path, which importlib.metadata reads like any installed
package), and the WER scorer then scores with it from `asr = "<path>"` alone."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import numpy as np
import pytest

from halle_bench.errors import ConfigError
from halle_bench.metrics.base import ScoreItem, build_scorer

# The plugin: a "toyasr" file is a JSON word list; its engine "hears" one word per
# whole second of non-silent audio in a window (deterministic, depends on the audio).
PLUGIN = '''
import json
from pathlib import Path

from halle_bench.audio import sha256_file
from halle_bench.metrics.asr.backends.base import Decoded, compression_ratio
from halle_bench.metrics.asr.formats import ModelFormat
from halle_bench.metrics.base import ModelRef


def detect(p):
    return p if p.is_file() and p.suffix == ".toyasr" else None


TOY_FORMAT = ModelFormat(
    name="toyasr", backend="toyasr", detect=detect,
    identify=lambda p: ModelRef(name=f"toy:{p.stem}", sha256=sha256_file(p), path=str(p)),
    description="a toy word list (.toyasr)",
)


class ToyBackend:
    name = "toyasr"
    formats = ("toyasr",)

    def __init__(self, path, ref, settings, device="cpu", compute_type="auto", threads=None):
        self.path, self._ref = Path(path), ref
        self.words = None

    def load(self):
        if self.words is None:
            self.words = json.loads(self.path.read_text())["words"]

    @property
    def model_ref(self):
        return self._ref

    @property
    def multilingual(self):
        return False

    def settings(self):
        return {"engine": "toyasr 1"}

    def decode(self, windows, temperature, seed=None):
        self.load()
        out = []
        for w in windows:
            n = int((abs(w) > 1e-3).sum() // 16000)
            text = " ".join(self.words[:n])
            out.append(Decoded(text, 0.0, compression_ratio(text), 0.0, temperature))
        return out

    def close(self):
        self.words = None
'''

ENTRY_POINTS = """\
[halle_bench.asr_formats]
toyasr = toyasr_plugin:TOY_FORMAT

[halle_bench.asr_backends]
toyasr = toyasr_plugin:ToyBackend
"""


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "toyasr_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "toyasr_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (site / "toyasr_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toyasr-plugin\nVersion: 0.1\n")
    (site / "toyasr_plugin-0.1.dist-info" / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield site
    from halle_bench.metrics.asr import BACKENDS, FORMATS

    FORMATS.unregister("toyasr")
    BACKENDS.unregister("toyasr")
    sys.modules.pop("toyasr_plugin", None)


def test_a_plugin_adds_an_asr_model_format_without_editing_core(installed_plugin, tmp_path):
    from halle_bench.metrics.asr import backend_names, build_backend, detect_format, resolve_asr
    from halle_bench.metrics.asr.formats import formats

    model = tmp_path / "words.toyasr"
    model.write_text(json.dumps({"words": ["alpha", "beta", "gamma", "delta", "epsilon"]}))
    assert detect_format(model) == ("toyasr", model)  # found through the entry point
    assert [f.name for f in formats()][:3] == ["ctranslate2", "transformers", "openai-whisper"]  # defaults first
    assert "toyasr" in backend_names()
    m = resolve_asr(model)
    assert m.format == "toyasr" and m.ref.name == "toy:words" and len(m.ref.sha256) == 64
    with pytest.raises(ConfigError, match="cannot run a toyasr model"):
        build_backend(model, "ctranslate2", None)

    x = np.zeros(16000 * 4, np.float32)
    x[: 16000 * 3] = np.where(np.arange(16000 * 3) % 2, 0.1, -0.1)  # 3 s of "speech", 1 s of silence
    wer = build_scorer("wer", {"asr": str(model), "normalizer": "whisper-en"})
    good, bad = wer.score([ScoreItem("s", "u1", audio=x, text="alpha beta gamma"),
                           ScoreItem("s", "u2", audio=x, text="alpha beta gamma delta")])
    assert good.error is None and good.values["wer"] == 0.0 and good.values["hyp_raw"] == "alpha beta gamma"
    assert bad.values["wer"] == pytest.approx(0.25)  # one deletion in four words
    s = wer.settings()
    assert s["asr"] == "toy:words" and s["asr_backend"] == "toyasr" and s["decoding"]["engine"] == "toyasr 1"


def test_a_clashing_entry_point_never_replaces_a_default(installed_plugin, tmp_path):
    from halle_bench.metrics.asr.formats import FORMATS

    ep = installed_plugin / "toyasr_plugin-0.1.dist-info" / "entry_points.txt"
    ep.write_text("[halle_bench.asr_formats]\nctranslate2 = toyasr_plugin:TOY_FORMAT\ntoyasr = toyasr_plugin:TOY_FORMAT\n")
    importlib.invalidate_caches()
    FORMATS.load_all()
    assert FORMATS.get("ctranslate2").backend == "ctranslate2"
    assert any("already registered" in e for e in FORMATS.errors.values())
