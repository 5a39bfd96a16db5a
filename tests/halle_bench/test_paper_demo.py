"""`halle-bench run --demo paper`: the shipped VALL-E / HALL-E pair on the embedded demo."""

from __future__ import annotations

import tomllib

import pytest

from conftest import requires_espeak
from halle_bench.cli import main
from halle_bench.config import load_config
from halle_bench.data import paper as paper_mod

pytestmark = requires_espeak


def test_paper_config_is_the_demo_with_the_pair_as_systems(tmp_path, monkeypatch):
    ckpt = {"valle-pair": tmp_path / "v", "halle-pair": tmp_path / "h"}
    monkeypatch.setattr(paper_mod, "_checkpoint", lambda name: ckpt[name])
    path = paper_mod.build_paper(tmp_path / "home")
    demo = tomllib.loads((path.parent / "config.toml").read_text())
    paper = tomllib.loads(path.read_text())
    assert path.name == "paper.toml" and paper["dataset"]["manifest"] == demo["dataset"]["manifest"]
    assert paper["dataset"]["buckets"] == demo["dataset"]["buckets"] and paper["metrics"] == demo["metrics"]
    assert [(s["name"], s["kind"]) for s in paper["systems"]] == [("ground-truth", "ground-truth"), ("valle", "valle"),
                                                                ("halle", "halle")]
    assert paper["systems"][1]["checkpoint"] == str(tmp_path / "v")
    assert paper["systems"][1]["max_len_ratio"] / 48 == paper["systems"][2]["max_len_ratio"] / 8  # same s/phoneme
    cfg = load_config(path)  # the real config parser accepts it
    assert [s.name for s in cfg.systems] == ["ground-truth", "valle", "halle"]
    # rewritten on every call: a moved package is followed
    ckpt["valle-pair"] = tmp_path / "moved"
    assert tomllib.loads(paper_mod.build_paper(tmp_path / "home").read_text())["systems"][1]["checkpoint"] == str(
        tmp_path / "moved")


def test_demo_and_config_together_are_a_usage_error(tmp_path, capsys):
    cfg = tmp_path / "x.toml"
    cfg.write_text("")
    assert main(["run", str(cfg), "--demo", "paper", "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()
