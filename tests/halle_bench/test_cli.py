"""The CLI contract: subcommands and exit codes (0 ok, 1 failures/regression, 2 bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from halle_bench.cli import main

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def _plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def _setup(tmp: Path, keep: float = 1.0, n: int = 24) -> Path:
    man = tmp / "m.jsonl"
    with open(man, "w") as f:
        for i in range(n):
            words = " ".join(f"word{j}" for j in range(3 + (i * 7) % 60))
            f.write(json.dumps({"id": f"u{i:02d}", "text": words, "speaker": "s"}) + "\n")
    cfg = tmp / f"c{keep}.toml"
    cfg.write_text(f"""
[dataset]
manifest = "m.jsonl"
buckets = [0, 10, 30, 90]
[[systems]]
name = "tone"
kind = "tone"
keep = {keep}
[metrics]
toy = {{}}
[run]
plugins = ["plugin_fixtures"]
n_boot = 300
""")
    return cfg


def test_systems_and_datasets(capsys):
    assert main(["systems"]) == 0
    out = capsys.readouterr().out
    for kind in ("command", "wavdir", "python", "ground-truth", "valle"):
        assert kind in out
    assert main(["datasets"]) == 0
    assert "seed-tts" in capsys.readouterr().out


def test_models_list(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "whisper-base" in out and "resemblyzer" in out
    assert main(["models", "verify", "nope"]) == 2


def test_run_report_check_cycle(tmp_path, capsys):
    base = tmp_path / "base"
    assert main(["run", str(_setup(tmp_path)), "--out", str(base), "--quiet"]) == 0
    assert (base / "report.md").exists()
    assert main(["report", str(base), "--html"]) == 0
    assert (base / "report.html").exists()
    # same system, same inputs: no regression
    again = tmp_path / "again"
    assert main(["run", str(_setup(tmp_path)), "--out", str(again), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["check", str(again), "--baseline", str(base / "leaderboard.csv"),
                 "--baseline-utterances", str(base / "utterances.csv")]) == 0
    # a system that drops the second half of every utterance: regression, exit 1
    worse = tmp_path / "worse"
    main(["run", str(_setup(tmp_path, keep=0.5)), "--out", str(worse), "--quiet"])
    capsys.readouterr()
    rc = main(["check", str(worse), "--baseline", str(base / "leaderboard.csv"),
               "--baseline-utterances", str(base / "utterances.csv"), "--output", str(tmp_path / "diff.md")])
    assert rc == 1
    diff = (tmp_path / "diff.md").read_text()
    assert "wer" in diff and "tone" in diff
    # bad input: a baseline without the needed columns -> 2
    bad = tmp_path / "bad.csv"
    bad.write_text("foo,bar\n1,2\n")
    assert main(["check", str(worse), "--baseline", str(bad)]) == 2


def test_report_on_non_run_dir_is_usage_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
