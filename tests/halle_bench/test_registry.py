"""The one registry mechanism: lookup order (registered, declared, defaults, entry
points, the plugins group), errors that are kept and shown, and plugins adding a system
kind and a quality model with no edit to halle-bench (entry points simulated by a
dist-info folder on sys.path, read by importlib.metadata like an installed package)."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from halle_bench.errors import ConfigError
from halle_bench.registry import Registry, UnknownName


def _install(site: Path, dist: str, modules: dict[str, str], entry_points: str) -> None:
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for name, src in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(src))


@pytest.fixture
def site(tmp_path, monkeypatch):
    d = tmp_path / "site"
    d.mkdir()
    monkeypatch.syspath_prepend(str(d))
    importlib.invalidate_caches()
    before = set(sys.modules)
    yield d
    for m in set(sys.modules) - before:
        if m.startswith("hb_test_"):
            sys.modules.pop(m, None)


def test_lookup_order_and_lazy_modules(site):
    (site / "hb_test_lazy.py").write_text("import hb_test_reg\nhb_test_reg.REG.register('b', 'B from lazy')\n")
    (site / "hb_test_defaults.py").write_text("import hb_test_reg\nhb_test_reg.REG.register('c', 'C from defaults')\n")
    (site / "hb_test_broken.py").write_text("raise RuntimeError('missing optional dependency')\n")
    (site / "hb_test_reg.py").write_text(
        "from halle_bench.registry import Registry\n"
        "REG = Registry('widget', 'hb_test.widgets', defaults=('hb_test_broken', 'hb_test_defaults'))\n")
    importlib.invalidate_caches()
    import hb_test_reg

    reg: Registry = hb_test_reg.REG
    reg.register("a", "A")
    reg.declare("b", "hb_test_lazy")
    assert reg.get("a") == "A"
    assert "hb_test_lazy" not in sys.modules
    assert reg.get("b") == "B from lazy" and "hb_test_defaults" not in sys.modules  # declared: only its module
    assert reg.get("c") == "C from defaults"  # found by importing the defaults in order
    with pytest.raises(UnknownName) as e:
        reg.get("nope")
    msg = str(e.value)
    assert "unknown widget 'nope'; known: a, b, c" in msg
    assert "hb_test_broken (RuntimeError: missing optional dependency)" in msg  # kept, shown, not raised


def test_entry_point_objects_and_plugin_modules_register(site):
    _install(site, "hb-test-widgets", {
        "hb_test_objs": "WIDGET = 'from an entry point'\n",
        "hb_test_plugin": "from halle_bench.registry import Registry\n"
                          "import hb_test_holder\nhb_test_holder.REG.register('w2', 'from the plugins group')\n",
        "hb_test_holder": "from halle_bench.registry import Registry\nREG = Registry('widget', 'hb_test.widgets')\n",
    }, """
        [hb_test.widgets]
        w1 = hb_test_objs:WIDGET
        bad = hb_test_objs:NOT_THERE

        [halle_bench.plugins]
        hb-test = hb_test_plugin
    """)
    importlib.invalidate_caches()
    import hb_test_holder

    reg = hb_test_holder.REG
    assert reg.get("w1") == "from an entry point"
    assert reg.get("w2") == "from the plugins group"
    assert any("NOT_THERE" in v for k, v in reg.errors.items() if "bad" in k)
    assert reg.names() == ["w1", "w2"]


def test_register_replaces_on_purpose_and_needs_a_name():
    reg: Registry[int] = Registry("number", "hb_test.numbers")
    reg.register("x", 1)
    reg.register("x", 2)
    assert reg.get("x") == 2
    with pytest.raises(ValueError):
        reg.register("", 3)


SYSTEM_PLUGIN = """
import numpy as np
from halle_bench.systems.base import BaseSystem, SynthesisResult


class Beep(BaseSystem):
    '''A sine beep as long as the text has words (0.25 s a word).'''
    kind = "beep"

    def synthesize(self, requests):
        out = []
        for r in requests:
            n = int(4000 * len(r.text.split()))
            out.append(SynthesisResult(r.utt_id, audio=np.sin(np.arange(n) * 0.1).astype(np.float32) * 0.1,
                                       sample_rate=16000))
        return out
"""

QUALITY_PLUGIN = """
import numpy as np
from halle_bench.metrics.quality_registry import QualityModelInfo, declare_quality_model, register_quality_model
from halle_bench.metrics.quality_windows import WindowScores

declare_quality_model(QualityModelInfo("loudness", __name__))


@register_quality_model("loudness")
class Loudness:
    '''RMS in dB per 1 s window: a stand-in MOS model (higher = louder).'''
    name = "loudness"
    label = "loudness-db"
    config_keys = frozenset()
    extra_columns = {}

    def __init__(self, config, model_path=None):
        pass

    def settings(self):
        return {}

    def models(self):
        return []

    def load(self, device):
        pass

    def score_clips(self, clips):
        out = []
        for x in clips:
            starts = list(range(0, max(1, x.size - 16000 + 1), 16000))
            db = tuple(float(10 * np.log10(np.mean(x[s:s + 16000] ** 2) + 1e-12)) for s in starts)
            out.append(WindowScores(db, tuple(starts), 16000, x.size))
        return out
"""


def test_a_plugin_adds_a_system_kind_and_a_quality_model(site, request):
    from halle_bench.metrics import quality_registry
    from halle_bench.metrics.base import ScoreItem, build_scorer
    from halle_bench.systems.base import SYSTEMS, SynthesisRequest, build_system, system_kinds

    _install(site, "hb-test-tts", {"hb_test_beep": SYSTEM_PLUGIN, "hb_test_loudness": QUALITY_PLUGIN}, """
        [halle_bench.systems]
        beep = hb_test_beep:Beep

        [halle_bench.plugins]
        loudness = hb_test_loudness
    """)
    importlib.invalidate_caches()
    request.addfinalizer(lambda: (SYSTEMS.unregister("beep"), quality_registry._REG.unregister("loudness")))
    s = build_system("b", {"kind": "beep"}, site)
    (r,) = s.synthesize([SynthesisRequest("u1", "four words right here")])
    assert r.ok and r.audio.size == 16000
    assert system_kinds()["beep"].startswith("A sine beep")

    q = build_scorer("quality", {"model": "loudness"})
    x = np.concatenate([np.full(16000, 0.1), np.full(16000, 0.01)]).astype(np.float32)
    (o,) = q.score([ScoreItem("s", "u", audio=x)])
    assert o.values["quality_model"] == "loudness-db"
    assert o.values["quality"] == pytest.approx(-30.0, abs=1e-3)  # mean of -20 dB and -40 dB


def test_unknown_names_stay_config_errors():
    from halle_bench.metrics.asr import get_backend
    from halle_bench.metrics.base import build_scorer
    from halle_bench.systems.base import build_system

    with pytest.raises(ConfigError, match="unknown metric 'nope'; known: .*quality"):
        build_scorer("nope", {})
    with pytest.raises(ConfigError, match="unknown ASR backend 'nope'; known: ctranslate2"):
        get_backend("nope")
    with pytest.raises(ConfigError, match="system 's': unknown kind 'nope'; known kinds: .*wavdir"):
        build_system("s", {"kind": "nope"}, Path("."))


def test_after_the_plugin_test_the_defaults_are_what_is_left():
    from halle_bench.metrics.quality_registry import quality_model_names

    assert quality_model_names() == ["dnsmos", "utmos"]
