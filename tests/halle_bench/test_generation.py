"""Generation rows: per-item timing, the system's device, untimed systems, command
start-up, timeouts and clipping (issue 9, runner side)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from halle_bench.config import load_config
from halle_bench.runner import run
from halle_bench.store import read_latest

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def _plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def _setup(tmp: Path, systems: str, texts: dict[str, str] | None = None, refs: bool = False, metrics: str = "") -> Path:
    texts = texts or {"u1": "short one here", "u2": "a somewhat longer sentence to say", "u3": "third one"}
    rows = []
    for i, (k, t) in enumerate(texts.items()):
        row = {"id": k, "text": t, "speaker": "s1"}
        if refs:
            tt = np.arange(int(16000 * (1.0 + 0.5 * i))) / 16000
            sf.write(tmp / f"{k}.wav", (0.3 * np.sin(2 * np.pi * (180 + 20 * i) * tt)).astype(np.float32), 16000)
            row["audio"] = f"{k}.wav"
        rows.append(row)
    (tmp / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tmp / "c.toml"
    cfg.write_text(f'[dataset]\nmanifest = "m.jsonl"\nbuckets = [0, 3, 10, 30]\n{systems}\n[metrics]\n{metrics}\n'
                   f'[run]\nseed = 1\nplugins = ["plugin_fixtures"]\nn_boot = 50\nmax_failed_fraction = 1.0\n')
    return cfg


def _gen(out: Path) -> dict[tuple, dict]:
    return read_latest(out, "generation", ("system", "id"))


def test_per_item_timing_from_the_system_is_not_split_evenly(tmp_path):
    cfg = _setup(tmp_path, '[[systems]]\nname = "t"\nkind = "tone"\nbatch_size = 3\nreport_seconds = true\n')
    run(load_config(cfg), tmp_path / "out")
    gen = _gen(tmp_path / "out")
    texts = {"u1": "short one here", "u2": "a somewhat longer sentence to say", "u3": "third one"}
    for uid, text in texts.items():
        g = gen[("t", uid)]
        assert g["batch_size"] == 3 and g["timing"] == "system"
        assert g["wall_seconds"] == pytest.approx(0.01 * len(text))  # the system's own, not batch/3
        assert g["rtf"] == pytest.approx(g["wall_seconds"] / g["audio_seconds"])


def test_clock_is_synchronised_on_the_systems_device(tmp_path, monkeypatch):
    import halle_bench.generation as generation

    synced = []
    monkeypatch.setattr(generation, "_sync", lambda dev: synced.append(dev))
    cfg = _setup(tmp_path, '[[systems]]\nname = "t"\nkind = "tone"\npin_device = "cuda:7"\n')
    run(load_config(cfg), tmp_path / "out", device="cpu")
    assert synced and set(synced) == {"cuda:7"}  # never the run's default "cpu"
    assert _gen(tmp_path / "out")[("t", "u1")]["device"] == "cuda:7"


def test_ground_truth_and_wavdir_are_not_timed(tmp_path):
    (tmp_path / "pre").mkdir()
    for k, secs in (("u1", 1.0), ("u2", 1.5), ("u3", 2.0)):
        tt = np.arange(int(16000 * secs)) / 16000
        sf.write(tmp_path / "pre" / f"{k}.wav", (0.2 * np.sin(2 * np.pi * 300 * tt)).astype(np.float32), 16000)
    cfg = _setup(tmp_path, '[[systems]]\nname = "gt"\nkind = "ground-truth"\n'
                           '[[systems]]\nname = "pre"\nkind = "wavdir"\npath = "pre"\n'
                           '[[systems]]\nname = "t"\nkind = "tone"\n', refs=True)
    run(load_config(cfg), tmp_path / "out")
    gen = _gen(tmp_path / "out")
    for s in ("gt", "pre"):
        for u in ("u1", "u2", "u3"):
            g = gen[(s, u)]
            assert g["status"] == "ok" and g["timed"] is False
            assert g["wall_seconds"] is None and g["rtf"] is None
    assert gen[("t", "u1")]["timed"] is True and gen[("t", "u1")]["rtf"] > 0
    utt = pd.read_csv(tmp_path / "out" / "utterances.csv")
    assert utt[utt.system.isin(["gt", "pre"])].rtf.isna().all()
    assert utt[utt.system == "t"].rtf.notna().all()


def test_command_startup_is_measured_once_and_not_counted_per_item(tmp_path):
    from halle_bench.espeak import espeak_available

    if not espeak_available():
        pytest.skip("espeak-ng not installed")
    prog = tmp_path / "slow_tts.sh"
    # A TTS command that loads "a model" for 0.8 s on every call, then speaks.
    prog.write_text('#!/bin/sh\nsleep 0.8\nexec espeak-ng -w "$1" -- "$2"\n')
    prog.chmod(0o755)
    cfg = _setup(tmp_path, '[[systems]]\nname = "cmd"\nkind = "command"\n'
                           'command = ["./slow_tts.sh", "{out}", "{text}"]\ntimeout = 30\n')
    run(load_config(cfg), tmp_path / "out")
    gen = _gen(tmp_path / "out")
    rows = [gen[("cmd", u)] for u in ("u1", "u2", "u3")]
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    startup = rows[0]["startup_seconds"]
    assert startup is not None and startup >= 0.8
    assert all(r["startup_seconds"] == startup for r in rows)  # one measurement per system
    for r in rows:
        assert r["info"]["process_seconds"] >= 0.8  # each process did pay the start-up ...
        assert r["wall_seconds"] < 0.5 * startup  # ... but it is not counted in the item
        assert r["wall_seconds"] == pytest.approx(max(0.0, r["info"]["process_seconds"] - startup))
    utt = pd.read_csv(tmp_path / "out" / "utterances.csv")
    assert np.allclose(utt.startup_seconds, startup, rtol=1e-5)  # csv keeps 6 digits


def test_timed_out_item_counts_its_time(tmp_path):
    cfg = _setup(tmp_path, '[[systems]]\nname = "hang"\nkind = "command"\n'
                           'command = ["sh", "-c", "sleep 5", "sh", "{out}"]\ntimeout = 0.4\n',
                 texts={"u1": "will never finish"})
    run(load_config(cfg), tmp_path / "out")
    g = _gen(tmp_path / "out")[("hang", "u1")]
    assert g["status"] == "failed" and "timed out" in g["error"]
    assert g["wall_seconds"] >= 0.4 and g["rtf"] is None
    assert g["startup_seconds"] is None  # the start-up probe timed out too: nothing subtracted


def test_clipping_is_recorded_and_the_audio_is_not_altered(tmp_path):
    cfg = _setup(tmp_path, '[[systems]]\nname = "loud"\nkind = "python"\ncallable = "plugin_fixtures:loud"\n',
                 texts={"u1": "too loud"})
    run(load_config(cfg), tmp_path / "out")
    g = _gen(tmp_path / "out")[("loud", "u1")]
    from plugin_fixtures import loud

    x, _ = loud("too loud")
    expected = float(np.mean(np.abs(x) >= 1.0))
    assert 0.1 < expected < 0.5 and g["clip_fraction"] == pytest.approx(expected)
    assert "full scale" in g["notes"] and "unaltered" in g["notes"]
    y, sr = sf.read(tmp_path / "out" / "audio" / "loud" / "u1.wav", dtype="float32")
    assert sf.info(str(tmp_path / "out" / "audio" / "loud" / "u1.wav")).subtype == "FLOAT"
    np.testing.assert_array_equal(y, x)  # bit-exact: nothing clipped or rescaled
    utt = pd.read_csv(tmp_path / "out" / "utterances.csv")
    assert utt.clip_fraction.iloc[0] == pytest.approx(expected, rel=1e-5)
    assert "full scale" in utt.generation_notes.iloc[0]


def test_audio_within_full_scale_stays_16_bit(tmp_path):
    cfg = _setup(tmp_path, '[[systems]]\nname = "t"\nkind = "tone"\n', texts={"u1": "fine"})
    run(load_config(cfg), tmp_path / "out")
    g = _gen(tmp_path / "out")[("t", "u1")]
    assert g["clip_fraction"] == 0.0 and g["notes"] is None
    assert sf.info(str(tmp_path / "out" / "audio" / "t" / "u1.wav")).subtype == "PCM_16"
