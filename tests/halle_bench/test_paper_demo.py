"""`halle-bench run --demo paper`: the shipped VALL-E / HALL-E pair on the paper demo's set."""

from __future__ import annotations

import json
import tomllib

import pytest

from conftest import requires_espeak
from halle_bench.cli import main
from halle_bench.config import load_config
from halle_bench.data import paper as paper_mod
from halle_bench.data import read_manifest
from halle_bench.errors import ConfigError, MissingModelError

pytestmark = requires_espeak


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")  # one demo and paper set build for the module


def test_paper_config_is_the_demo_with_the_pair_as_systems(home, tmp_path, monkeypatch):
    from halle_bench.data.demo import demo_dir
    from halle_bench.data.paper_set import paper_set_dir

    ckpt = {"valle-pair": tmp_path / "v", "halle-pair": tmp_path / "h"}
    monkeypatch.setattr(paper_mod, "_checkpoint", lambda name: ckpt[name])
    path = paper_mod.build_paper(home)
    demo = tomllib.loads((demo_dir(home) / "config.toml").read_text())
    paper = tomllib.loads(path.read_text())
    # the paper set's manifest (the demo's rows and more 3-10 s ones), beside it; the rest the demo's
    assert path == paper_set_dir(home) / "paper.toml"
    assert paper["dataset"]["manifest"] == str(path.parent / "manifest.jsonl") != demo["dataset"]["manifest"]
    assert paper["dataset"]["name"] == demo["dataset"]["name"] + "-paper-v1"
    assert paper["dataset"]["buckets"] == demo["dataset"]["buckets"] and paper["metrics"] == demo["metrics"]
    assert paper["dataset"]["prompt"] == demo["dataset"]["prompt"] == "given"
    assert [(s["name"], s["kind"]) for s in paper["systems"]] == [("ground-truth", "ground-truth"), ("valle", "valle"),
                                                                ("halle", "halle")]
    assert paper["systems"][1]["checkpoint"] == str(tmp_path / "v")
    assert paper["systems"][1]["max_len_ratio"] / 48 == paper["systems"][2]["max_len_ratio"] / 8  # same s/phoneme
    cfg = load_config(path)  # the real config parser accepts it
    assert [s.name for s in cfg.systems] == ["ground-truth", "valle", "halle"]
    assert sum(3 <= u.duration < 10 for u in read_manifest(cfg.dataset.manifest)) >= 8
    # rewritten on every call: a moved package is followed
    ckpt["valle-pair"] = tmp_path / "moved"
    assert tomllib.loads(paper_mod.build_paper(home).read_text())["systems"][1]["checkpoint"] == str(
        tmp_path / "moved")


def test_demo_and_config_together_are_a_usage_error(tmp_path, capsys):
    cfg = tmp_path / "x.toml"
    cfg.write_text("")
    assert main(["run", str(cfg), "--demo", "paper", "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def _fake_checkpoint(d, arch):
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"config": {"architecture": arch}}))


def test_pair_from_a_training_folder(home, tmp_path):
    _fake_checkpoint(tmp_path / "work" / "valle", "valle")
    _fake_checkpoint(tmp_path / "work" / "halle", "halle")
    got = paper_mod.pair_checkpoints(tmp_path / "work")
    assert got == {"valle": (tmp_path / "work" / "valle").resolve(), "halle": (tmp_path / "work" / "halle").resolve()}
    path = paper_mod.build_paper(home, tmp_path / "work")
    assert [s.get("checkpoint") for s in tomllib.loads(path.read_text())["systems"]][1:] == [str(got["valle"]),
                                                                                           str(got["halle"])]


def test_a_wrong_or_missing_pair_is_a_clear_error(tmp_path, capsys):
    _fake_checkpoint(tmp_path / "work" / "valle", "halle")
    with pytest.raises(ConfigError, match="holds a 'halle' checkpoint, expected 'valle'"):
        paper_mod.pair_checkpoints(tmp_path / "work")
    with pytest.raises(ConfigError, match="not a trained checkpoint"):
        paper_mod.pair_checkpoints(tmp_path / "nowhere")
    assert main(["run", "--demo", "paper", "--pair", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    assert main(["run", "--pair", str(tmp_path / "work"), "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def test_without_a_shipped_pair_the_error_says_how_to_get_one(tmp_path, capsys):
    from halle_bench.models import all_models

    if "valle-pair" in all_models():
        pytest.skip("this build ships a pair")
    with pytest.raises(MissingModelError, match="train-pair.sh"):
        paper_mod.pair_checkpoints(None)
