"""Data problems are found before anything is generated: exit 2, every problem with
its manifest file and line, nothing charged to a system (issue 19's "Why" cases)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from halle_bench.audio import save_audio
from halle_bench.cli import main
from halle_bench.data import DataError, find_problems, read_manifest
from halle_bench.data.validate import audio_facts, text_has_words
from halle_bench.metrics.normalizers import get_normalizer

TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture
def setup(speech, tmp_path):
    """A folder with a good reference and prompt; `write(rows, extra)` makes the manifest
    and a config (ground truth only, no scorers) and returns the config path."""
    save_audio(tmp_path / "ref.wav", speech(TEXT), 16000)
    save_audio(tmp_path / "prompt.wav", speech("A second voice sample, a few seconds long.", voice="en-gb"), 16000)

    def write(rows: list[dict], extra: str = "") -> Path:
        (tmp_path / "set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        cfg = tmp_path / "bench.toml"
        cfg.write_text(f'[dataset]\nmanifest = "set.jsonl"\n{extra}\n[[systems]]\nname = "gt"\nkind = "ground-truth"\n'
                       "[metrics]\n[run]\nn_boot = 10\n")
        return cfg

    return tmp_path, write


def good(i: str, **kw) -> dict:
    return {"id": i, "text": TEXT, "audio": "ref.wav", "speaker": "s", "prompt_audio": "prompt.wav", **kw}


def run_cli(cfg: Path, capsys) -> tuple[int, str]:
    rc = main(["run", str(cfg), "--out", str(cfg.parent / "out"), "--quiet"])
    return rc, capsys.readouterr().err


def assert_nothing_generated(cfg: Path) -> None:
    out = cfg.parent / "out"
    assert not (out / "generation.jsonl").exists() and not (out / "audio").exists()


@pytest.mark.parametrize(
    "row, message",
    [
        (good("u", prompt_audio="nope.wav"), "prompt audio: file not found: {d}/nope.wav"),
        (good("u", prompt_audio="notaudio.wav"), "prompt audio: not readable as audio"),
        (good("u", audio="missing.wav"), "reference audio: file not found: {d}/missing.wav"),
        (good("u", text=" . , !"), "text has no words after normalisation: '. , !'"),
        (good("u", prompt_audio="short.wav"), "prompt audio lasts 0.10 s, under min_prompt_seconds = 1"),
        (good("u", prompt_audio="silent.wav"), "prompt audio is silent"),
    ],
    ids=["missing-prompt", "prompt-not-audio", "missing-reference", "punctuation-only", "0.1s-prompt", "silent-prompt"],
)
def test_each_bad_data_case_exits_2_with_file_line_and_nothing_generated(setup, capsys, row, message):
    d, write = setup
    (d / "notaudio.wav").write_text("this is a text file, not a wav\n")
    save_audio(d / "short.wav", (0.3 * np.sin(np.arange(1600) / 5.0)).astype(np.float32), 16000)  # 0.1 s
    save_audio(d / "silent.wav", np.zeros(3 * 16000, dtype=np.float32), 16000)
    cfg = write([good("ok"), row])
    rc, err = run_cli(cfg, capsys)
    assert rc == 2
    assert f"{d / 'set.jsonl'}:2: u: " + message.format(d=d) in err
    assert "1 data problem in the benchmark set; nothing was generated" in err
    assert_nothing_generated(cfg)


def test_every_problem_is_reported_not_just_the_first(setup, capsys):
    d, write = setup
    cfg = write([good("a", text="?"), good("b"), good("c", audio="gone.wav", prompt_audio="gone-too.wav"),
                 good("d", text="...")])
    rc, err = run_cli(cfg, capsys)
    assert rc == 2 and "3 data problems" not in err and "4 data problems" in err
    man = d / "set.jsonl"
    lines = [ln.strip() for ln in err.splitlines() if ln.strip().startswith(str(man))]
    assert [ln.split(": ")[0] for ln in lines] == [f"{man}:1", f"{man}:3", f"{man}:3", f"{man}:4"]
    assert_nothing_generated(cfg)


def test_min_prompt_seconds_is_configurable_and_validate_false_opts_out(setup, capsys, speech):
    d, write = setup
    save_audio(d / "p08.wav", speech(TEXT)[: int(0.8 * 16000)], 16000)
    cfg = write([good("a", prompt_audio="p08.wav")], "min_prompt_seconds = 0.5")
    assert run_cli(cfg, capsys)[0] == 0
    cfg = write([good("a", prompt_audio="p08.wav")], "min_prompt_seconds = 2")
    rc, err = run_cli(cfg, capsys)
    assert rc == 2 and "lasts 0.80 s, under min_prompt_seconds = 2" in err
    # opted out: the missing reference is the ground truth's failed row again (exit 1)
    cfg = write([good("a"), good("b", audio="missing.wav")], "validate = false")
    rc, err = run_cli(cfg, capsys)
    assert rc == 1 and "reference audio not found" in err


def test_wer_normaliser_decides_what_a_word_is(setup):
    whisper = get_normalizer("whisper-en")
    assert whisper("Uh... hmm!") == "."  # the reference word "." of the issue
    assert text_has_words("Hello.", whisper) and not text_has_words("Uh... hmm!", whisper)
    assert not text_has_words(" . , !", whisper)
    assert text_has_words("Uh... hmm!")  # without a normaliser: letters are words
    assert not text_has_words("  ") and not text_has_words(None) and not text_has_words("-- ; --")


def test_shared_prompt_decoded_once_and_problems_in_order(setup, monkeypatch):
    d, write = setup
    write([good(str(i)) for i in range(5)])
    utts = read_manifest(d / "set.jsonl")
    calls = []
    import halle_bench.data.validate as v

    real = v.audio_facts
    monkeypatch.setattr(v, "audio_facts", lambda p: calls.append(str(p)) or real(p))
    assert find_problems(utts) == []
    assert sorted(calls) == sorted({str(d / "ref.wav"), str(d / "prompt.wav")})


def test_truncated_flac_fails_to_decode(speech, tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "a.flac", speech(TEXT), 16000, format="FLAC")
    data = (tmp_path / "a.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    assert audio_facts(tmp_path / "a.flac").error is None
    f = audio_facts(tmp_path / "cut.flac")
    assert f.error is not None or f.seconds < audio_facts(tmp_path / "a.flac").seconds


def test_data_error_is_a_config_error_listing_problems(setup):
    d, write = setup
    write([good("a", audio="x.wav")])
    with pytest.raises(DataError) as e:
        from halle_bench.data import validate_utterances

        validate_utterances(read_manifest(d / "set.jsonl"), d / "set.jsonl")
    assert len(e.value.problems) == 1 and e.value.problems[0].utt_id == "a"
    assert str(e.value).startswith(f"{d / 'set.jsonl'}: 1 data problem")
