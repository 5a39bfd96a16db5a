"""End to end on the two most likely release shapes: a seed-tts-eval `meta.lst` and a
Hugging Face style audio folder, with a real `command` system (espeak-ng), real
Whisper (tiny.en) WER and the long-form scorer. Checks the contract's columns and
the bucket counts."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from halle_bench.audio import save_audio
from halle_bench.cli import main

CONTRACT = ["system", "bucket", "n", "n_failed", "audio_seconds", "wer", "wer_macro", "wer_median", "wer_p95",
            "cer", "sub_rate", "del_rate", "ins_rate", "sim", "sim_ci_low", "sim_ci_high", "quality",
            "quality_ci_low", "quality_ci_high", "rtf"]
UTT_CONTRACT = ["system", "id", "bucket", "duration", "status", "error", "wer", "ref_norm", "hyp_norm", "sim",
                "quality", "rtf"]
TEXTS = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog near the river bank.",
    "We went to the market early in the morning to buy fresh bread, some fruit and a bottle of milk "
    "for the children.",
]
SYSTEMS = """
[[systems]]
name = "gt"
kind = "ground-truth"

[[systems]]
name = "espeak"
kind = "command"
command = ["espeak-ng", "-v", "en-us+m3", "-w", "{out}", "--", "{text}"]
timeout = 60

[metrics]
wer = { asr = "whisper-tiny.en", normalizer = "seed-tts-eval", beam_size = 1 }
longform = {}

[run]
n_boot = 200
"""


@pytest.fixture
def corpus(speech):
    """(text, 16 kHz audio, duration) of each utterance, and one prompt clip."""
    items = [(t, speech(t, voice="en-gb")) for t in TEXTS]
    prompt = speech("Hello, this is my voice.", voice="en-gb")
    return items, prompt


def _check_run(out: Path, n_utts: int, expect_buckets: dict[str, int]) -> None:
    lb = pd.read_csv(out / "leaderboard.csv", dtype={"bucket": str})
    utt = pd.read_csv(out / "utterances.csv", dtype={"bucket": str, "id": str})
    assert list(lb.columns[: len(CONTRACT)]) != [] and all(c in lb.columns for c in CONTRACT)
    assert all(c in utt.columns for c in UTT_CONTRACT)
    assert (utt.status == "ok").all(), utt.error.tolist()
    for system in ("gt", "espeak"):
        rows = lb[lb.system == system].set_index("bucket")
        assert rows.loc["all", "n"] == n_utts and rows.loc["all", "n_failed"] == 0
        assert {b: int(rows.loc[b, "n"]) for b in expect_buckets} == expect_buckets
        assert list(rows.index)[-1] == "all"
    gt = lb[(lb.system == "gt") & (lb.bucket == "all")].iloc[0]
    assert 0.0 <= gt.wer < 0.6  # tiny.en on espeak-ng speech; the text is really recognised


def test_seed_tts_meta_lst(tmp_path, corpus):
    items, prompt = corpus
    save_audio(tmp_path / "wavs" / "prompt.wav", prompt, 16000)
    lines = []
    for i, (t, x) in enumerate(items):
        save_audio(tmp_path / "wavs" / f"gt{i}.wav", x, 16000)
        lines.append(f"utt{i}|Hello, this is my voice.|wavs/prompt.wav|{t}|wavs/gt{i}.wav")
    (tmp_path / "meta.lst").write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "bench.toml"
    cfg.write_text('[dataset]\nmanifest = "meta.lst"\nbuckets = [0, 3, 10, 30]\n' + SYSTEMS)
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    durations = [len(x) / 16000 for _, x in items]
    expect = {}
    for d in durations:
        b = "0-3" if d < 3 else "3-10" if d < 10 else "10-30"
        expect[b] = expect.get(b, 0) + 1
    _check_run(out, len(items), expect)


def test_audiofolder(tmp_path, corpus):
    items, _ = corpus
    folder = tmp_path / "minutes"
    folder.mkdir()
    with open(folder / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_name", "text", "speaker_id"])
        for i, (t, x) in enumerate(items):
            save_audio(folder / f"seg{i}.wav", x, 16000)
            w.writerow([f"seg{i}.wav", t, "spk"])
    cfg = tmp_path / "bench.toml"
    cfg.write_text('[dataset]\nmanifest = "minutes"\nformat = "audiofolder"\nbuckets = [0, 5, 30]\n'
                   'prompt = "head"\nprompt_seconds = 1.0\n' + SYSTEMS)
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    durations = [len(x) / 16000 for _, x in items]
    expect = {}
    for d in durations:
        b = "0-5" if d < 5 else "5-30"
        expect[b] = expect.get(b, 0) + 1
    _check_run(out, len(items), expect)
    assert len(list((out / "prompts").rglob("*.wav"))) == len(items)  # head cuts written
