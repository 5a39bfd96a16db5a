"""End-to-end runner tests with the test plugin (tone system, toy scorer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from halle_bench.cli import main
from halle_bench.config import load_config
from halle_bench.runner import run

HERE = Path(__file__).parent
TIMING = ["wall_seconds", "rtf"]

TEXTS = {
    "u1": "short one here",
    "u2": "a somewhat longer sentence that takes a few seconds to say out loud",
    "u3": " ".join(["many words in a long utterance"] * 12),
    "u4": "another short one",
    "u5": "   ",
    "u6": " ".join(["the quick brown fox jumps"] * 20),
}


def write_setup(tmp: Path, systems: str = "", metrics: str = 'toy = {}', extra_run: str = "", texts=TEXTS) -> Path:
    man = tmp / "meta.jsonl"
    with open(man, "w") as f:
        for k, t in texts.items():
            f.write(json.dumps({"id": k, "text": t, "speaker": "s1"}) + "\n")
    cfg = tmp / "bench.toml"
    cfg.write_text(f"""
[dataset]
manifest = "meta.jsonl"
buckets = [0, 3, 10, 30, 90]
validate = false  # u5's blank text must reach the runner as a failed row (the data checks: data/test_validate.py)

[[systems]]
name = "a"
kind = "tone"

[[systems]]
name = "b"
kind = "tone"
batch_size = 2
crash_on = "fox"
{systems}
[metrics]
{metrics}

[run]
seed = 3
plugins = ["plugin_fixtures"]
n_boot = 200
{extra_run}
""")
    return cfg


@pytest.fixture(autouse=True)
def _plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def test_run_writes_contract_files_and_counts_failures(tmp_path):
    cfg = write_setup(tmp_path)
    s = run(load_config(cfg), tmp_path / "out")
    out = tmp_path / "out"
    for name in ("config.toml", "env.json", "generation.jsonl", "scores.jsonl", "utterances.csv", "leaderboard.csv"):
        assert (out / name).exists(), name
    lb = pd.read_csv(out / "leaderboard.csv")
    for col in ["system", "bucket", "n", "n_failed", "audio_seconds", "wer", "wer_macro", "wer_median", "wer_p95",
                "cer", "sub_rate", "del_rate", "ins_rate", "sim", "sim_ci_low", "sim_ci_high", "quality",
                "quality_ci_low", "quality_ci_high", "rtf"]:
        assert col in lb.columns, col
    all_a = lb[(lb.system == "a") & (lb.bucket == "all")].iloc[0]
    assert all_a.n == 6 and all_a.n_failed == 1  # u5: whitespace-only text
    all_b = lb[(lb.system == "b") & (lb.bucket == "all")].iloc[0]
    assert all_b.n == 6 and all_b.n_failed == 2  # + u6 crashes; its batch-mate is retried alone
    # per-bucket n add up to "all"
    assert lb[(lb.system == "a") & (lb.bucket != "all")].n.sum() == 6
    assert list(lb[lb.system == "a"].bucket)[-1] == "all"
    utt = pd.read_csv(out / "utterances.csv")
    row = utt[(utt.system == "a") & (utt.id == "u5")].iloc[0]
    assert row.status == "failed" and "empty text" in row.error
    row = utt[(utt.system == "b") & (utt.id == "u6")].iloc[0]
    assert row.status == "failed" and "crashed" in row.error
    assert s.n_failed == 3 and s.exit_code == 1
    env = json.loads((out / "env.json").read_text())
    assert env["seed"] == 3 and "torch" in env["versions"]
    assert (out / "positional.csv").exists()


def test_cache_skips_done_and_recomputes_changed(tmp_path):
    cfg = write_setup(tmp_path)
    s1 = run(load_config(cfg), tmp_path / "out")
    assert s1.generated == 12
    s2 = run(load_config(cfg), tmp_path / "out")
    assert s2.generated == 3 and s2.scored == 0  # only the 3 failed items are retried
    texts = dict(TEXTS, u1="short one here but now changed")
    cfg = write_setup(tmp_path, texts=texts)
    s3 = run(load_config(cfg), tmp_path / "out")
    assert s3.generated == 3 + 2  # failed retries + u1 for both systems
    assert s3.scored == 2
    s4 = run(load_config(cfg), tmp_path / "out", force=True)
    assert s4.generated == 12 and s4.scored == 9


def test_same_run_twice_same_numbers(tmp_path):
    cfg = write_setup(tmp_path)
    run(load_config(cfg), tmp_path / "o1")
    run(load_config(cfg), tmp_path / "o2")
    for f in ("leaderboard.csv", "utterances.csv"):
        a = pd.read_csv(tmp_path / "o1" / f).drop(columns=TIMING, errors="ignore")
        b = pd.read_csv(tmp_path / "o2" / f).drop(columns=TIMING, errors="ignore")
        pd.testing.assert_frame_equal(a, b)


def test_silent_system_output_fails(tmp_path):
    cfg = write_setup(tmp_path, systems='[[systems]]\nname = "mute"\nkind = "tone"\nsilent = true\n')
    run(load_config(cfg), tmp_path / "out")
    utt = pd.read_csv(tmp_path / "out" / "utterances.csv")
    mute = utt[utt.system == "mute"]
    assert (mute.status == "failed").all()
    assert mute.error.str.contains("silence|empty text").all()


def _cli(cfg: Path, out: Path, env_extra: dict[str, str]) -> int:
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""), **env_extra)
    p = subprocess.run([sys.executable, "-m", "halle_bench", "run", str(cfg), "--out", str(out), "--quiet"],
                       env=env, capture_output=True, text=True, timeout=300)
    return p.returncode


@pytest.mark.parametrize("kill_env", [{"HALLE_TEST_KILL_GEN": "8"}, {"HALLE_TEST_KILL_SCORE": "5"}])
def test_sigkill_then_resume_gives_identical_results(tmp_path, kill_env):
    cfg = write_setup(tmp_path)
    assert _cli(cfg, tmp_path / "ref", {}) == 1  # failures present -> exit 1
    rc = _cli(cfg, tmp_path / "killed", kill_env)
    assert rc == -9  # really killed by SIGKILL
    assert not (tmp_path / "killed" / "leaderboard.csv").exists()
    # a torn line as a kill inside a write would leave
    with open(tmp_path / "killed" / "generation.jsonl", "a") as f:
        f.write('{"system": "a", "id": "u')
    assert _cli(cfg, tmp_path / "killed", {}) == 1
    for f in ("leaderboard.csv", "utterances.csv"):
        a = pd.read_csv(tmp_path / "ref" / f).drop(columns=TIMING, errors="ignore")
        b = pd.read_csv(tmp_path / "killed" / f).drop(columns=TIMING, errors="ignore")
        pd.testing.assert_frame_equal(a, b)
    # no duplicated rows for the same key
    rows = [json.loads(l) for l in open(tmp_path / "killed" / "scores.jsonl")]
    keys = [(r["system"], r["id"], r["scorer"], r["key"]) for r in rows if not r["error"]]
    assert len(keys) == len(set(keys))


def test_cli_bad_config_exit_2_with_file_and_line(tmp_path, capsys):
    cfg = write_setup(tmp_path, extra_run='max_failed_fraction = 7')
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bench.toml:" in err and "max_failed_fraction" in err
    line = int(err.split("bench.toml:")[1].split(":")[0])
    assert cfg.read_text().splitlines()[line - 1].startswith("max_failed_fraction")
    assert not (tmp_path / "o").exists()  # nothing was done


def test_cli_unknown_kind_and_metric_exit_2(tmp_path, capsys):
    cfg = write_setup(tmp_path, systems='[[systems]]\nname = "x"\nkind = "nope"\n')
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "unknown kind 'nope'" in capsys.readouterr().err
    cfg = write_setup(tmp_path, metrics="toy = {}\nbogus = {}")
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "bogus" in capsys.readouterr().err


def test_cli_max_failed_fraction_allows_exit_0(tmp_path):
    cfg = write_setup(tmp_path, extra_run="max_failed_fraction = 0.5")
    assert main(["run", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 0


def test_command_system_with_relative_out_dir(tmp_path, monkeypatch):
    """The command runs in the config's folder: paths handed to it must be absolute."""
    from halle_bench.espeak import espeak_available

    if not espeak_available():
        pytest.skip("espeak-ng not installed")
    cfgdir = tmp_path / "cfg"
    cfgdir.mkdir()
    cfg = write_setup(cfgdir, texts={"u1": "hello there", "u2": "a second short sentence"},
                      systems='[[systems]]\nname = "espeak"\nkind = "command"\n'
                              'command = ["espeak-ng", "-w", "{out}", "--", "{text}"]\n')
    monkeypatch.chdir(tmp_path)
    run(load_config(cfg), Path("rel_out"), systems=["espeak"])
    utt = pd.read_csv(tmp_path / "rel_out" / "utterances.csv")
    assert (utt.status == "ok").all(), utt.error.tolist()


def test_stereo_44k_reference_is_mixed_resampled_and_recorded(tmp_path):
    import numpy as np
    import soundfile as sf

    t = np.arange(int(44100 * 2.0)) / 44100
    left = 0.3 * np.sin(2 * np.pi * 220 * t)
    sf.write(tmp_path / "ref.wav", np.stack([left, 0.5 * left], axis=1).astype(np.float32), 44100)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "s1", "text": "two seconds of tone", "audio": "ref.wav"}) + "\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[dataset]\nmanifest = "m.jsonl"\n[[systems]]\nname = "gt"\nkind = "ground-truth"\n'
                   '[metrics]\ntoy = {}\n[run]\nplugins = ["plugin_fixtures"]\n')
    run(load_config(cfg), tmp_path / "out")
    utt = pd.read_csv(tmp_path / "out" / "utterances.csv")
    row = utt.iloc[0]
    assert row.status == "ok"
    assert abs(row.duration - 2.0) < 1e-6 and row.duration_source == "audio"
    assert "2 channels mixed to mono" in row.input_notes and "44100 -> 16000" in row.input_notes


def test_missing_prompt_reason_reaches_the_row(tmp_path):
    """cross-utterance with a speaker who has one utterance only: the prompt-needing
    scorer fails that utterance with the policy's reason."""
    import numpy as np
    import soundfile as sf

    from halle_bench.metrics.base import BaseScorer, ScoreOutput, register_scorer

    @register_scorer("needs-prompt")
    class _NeedsPrompt(BaseScorer):
        name = "needs-prompt"
        needs = frozenset({"prompt"})

        def score(self, items):
            return [ScoreOutput({"p": float(len(it.prompt))}) for it in items]

    rows = []
    for i, spk in enumerate(["a", "a", "lonely"]):
        t = np.arange(16000 * 4) / 16000
        sf.write(tmp_path / f"r{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32), 16000)
        rows.append({"id": f"u{i}", "text": "some words here", "audio": f"r{i}.wav", "speaker": spk})
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[dataset]\nmanifest = "m.jsonl"\nprompt = "cross-utterance"\n'
                   '[[systems]]\nname = "gt"\nkind = "ground-truth"\n[metrics]\nneeds-prompt = {}\n')
    run(load_config(cfg), tmp_path / "out")
    utt = pd.read_csv(tmp_path / "out" / "utterances.csv").set_index("id")
    assert utt.loc["u0", "status"] == "ok" and utt.loc["u1", "status"] == "ok"
    # a scorer that cannot score an item is a score error, not a failed generation (issue 9)
    assert utt.loc["u2", "status"] == "ok"
    assert "no prompt:" in utt.loc["u2", "score_errors"] and "speaker" in utt.loc["u2", "score_errors"]
