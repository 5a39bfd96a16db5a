"""Corpus readers: LibriSpeech, LibriTTS(-R) and LibriSpeech-Long folders as published."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import soundfile as sf

from halle_bench.cli import main
from halle_bench.config import parse_config
from halle_bench.data import detect_format, read_corpus, read_manifest
from halle_bench.data.espeak_corpora import librispeech_text
from halle_bench.errors import ConfigError

from corpus_trees import LS_CHAPTERS, LTTS_CHAPTERS, librispeech_tree, libritts_tree  # noqa: F401 (fixtures)


def test_librispeech_ids_speakers_chapters_order_and_sources(librispeech_tree):
    utts = read_manifest(librispeech_tree, "librispeech")
    assert len(utts) == sum(len(c.sentences) for c in LS_CHAPTERS)
    first = utts[0]
    assert first.id == "1001-5001-0000" and first.speaker == "1001" and first.extra["chapter"] == "5001"
    assert first.text == librispeech_text(LS_CHAPTERS[0].sentences[0]) and first.text.isupper()
    trans = librispeech_tree / "1001" / "5001" / "1001-5001.trans.txt"
    assert first.source == f"{trans}:1" and utts[3].source == f"{trans}:4"
    assert first.audio == librispeech_tree / "1001" / "5001" / "1001-5001-0000.flac"
    info = sf.info(str(first.audio))
    assert info.format == "FLAC" and info.samplerate == 16000
    assert first.duration == pytest.approx(info.frames / 16000) and first.duration_source == "audio"
    # corpus order: speaker, chapter, then utterance number within the chapter
    keys = [(u.speaker, u.extra["chapter"], u.extra["index"]) for u in utts]
    assert keys == sorted(keys)
    assert {u.speaker for u in utts} == {"1001", "2002"}


def test_librispeech_found_from_the_folder_above_the_split(librispeech_tree):
    above = librispeech_tree.parent  # LibriSpeech/ holding test-clean/
    assert detect_format(above) == "librispeech" and detect_format(librispeech_tree) == "librispeech"
    assert [u.id for u in read_manifest(above)] == [u.id for u in read_manifest(librispeech_tree)]


def test_librispeech_errors_name_file_and_line(librispeech_tree, tmp_path):
    tree = shutil.copytree(librispeech_tree, tmp_path / "tc")
    trans = tree / "2002" / "6001" / "2002-6001.trans.txt"
    lines = trans.read_text().splitlines()
    trans.write_text("\n".join(lines[:2] + ["not-an-id SOME WORDS"] + lines[3:]) + "\n")
    with pytest.raises(ConfigError) as e:
        read_corpus(tree, "librispeech")
    assert e.value.path == str(trans) and e.value.line == 3
    # an audio file no transcript line names: a half-extracted archive, refused
    trans.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ConfigError, match="without a transcript line") as e:
        read_corpus(tree, "librispeech")
    assert e.value.path == str(tree / "2002" / "6001")


def test_libritts_normalized_text_and_numeric_order(libritts_tree):
    utts = read_manifest(libritts_tree)
    assert detect_format(libritts_tree) == "libritts"
    ch = [u for u in utts if u.speaker == "84"]
    assert [u.id for u in ch][:4] == ["84_121123_000000_000000", "84_121123_000000_000001",
                                       "84_121123_000000_000002", "84_121123_000001_000000"]
    assert ch[0].text == LTTS_CHAPTERS[0].sentences[0]  # punctuation and case kept
    assert ch[0].extra["chapter"] == "121123" and ch[0].audio.suffix == ".wav"
    assert sf.info(str(ch[0].audio)).samplerate == 24000
    assert ch[0].source.endswith("84_121123_000000_000000.normalized.txt:1")
    # speakers sort as strings, chapters and positions as given by the corpus
    assert [u.speaker for u in utts] == sorted(u.speaker for u in utts)


def test_librispeech_long_layout(librispeech_tree, tmp_path):
    """<split>/<speaker>/<chapter>/<chapter>_<segment>.flac with a one-line .txt beside it."""
    root = tmp_path / "librispeech-long" / "test-clean"
    d = root / "1001" / "5001"
    d.mkdir(parents=True)
    src = sorted((librispeech_tree / "1001" / "5001").glob("*.flac"))[:3]
    for k, f in enumerate(src):
        shutil.copy(f, d / f"5001_{k:04d}.flac")
        (d / f"5001_{k:04d}.txt").write_text(f"SEGMENT NUMBER {k} TEXT")  # no newline, as published
    assert detect_format(root) == "librispeech-long" and detect_format(root.parent) == "librispeech-long"
    utts = read_manifest(root)
    assert [u.id for u in utts] == ["1001-5001-0000", "1001-5001-0001", "1001-5001-0002"]
    assert utts[1].text == "SEGMENT NUMBER 1 TEXT" and utts[1].speaker == "1001" and utts[1].extra["chapter"] == "5001"
    assert utts[1].duration == pytest.approx(sf.info(str(src[1])).duration)


def test_config_accepts_corpus_formats(librispeech_tree, tmp_path):
    cfg = parse_config(f'[dataset]\nmanifest = "{librispeech_tree}"\nformat = "librispeech"\nmin_prompt_seconds = 2.5\n'
                       '[[systems]]\nname = "gt"\nkind = "ground-truth"\n', tmp_path / "c.toml")
    assert cfg.dataset.format == "librispeech" and cfg.dataset.min_prompt_seconds == 2.5 and cfg.dataset.validate
    with pytest.raises(ConfigError, match="min_prompt_seconds") as e:
        parse_config('[dataset]\nmanifest = "x"\nmin_prompt_seconds = "long"\n[[systems]]\nname = "gt"\n'
                     'kind = "ground-truth"\n', tmp_path / "c.toml")
    assert e.value.line == 3


def test_empty_or_wrong_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no LibriSpeech transcripts"):
        read_corpus(tmp_path / "empty", "librispeech")
    with pytest.raises(ConfigError, match="corpus folder not found"):
        read_corpus(tmp_path / "nope", "libritts")


def test_corpus_folder_runs_end_to_end_with_cross_utterance_prompts(librispeech_tree, tmp_path, capsys):
    cfg = tmp_path / "bench.toml"
    cfg.write_text(f'[dataset]\nmanifest = "{librispeech_tree}"\nprompt = "cross-utterance"\nprompt_seconds = 2.0\n'
                   '[[systems]]\nname = "gt"\nkind = "ground-truth"\n[metrics]\n[run]\nn_boot = 10\n')
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    utt = pd.read_csv(tmp_path / "out" / "utterances.csv")
    assert len(utt) == sum(len(c.sentences) for c in LS_CHAPTERS) and (utt.status == "ok").all()
    # a prompt longer than any utterance of the set leaves whole files under the minimum: exit 2, all listed
    cfg.write_text(cfg.read_text().replace("prompt_seconds = 2.0", "prompt_seconds = 9.0\nmin_prompt_seconds = 8.0"))
    assert main(["run", str(cfg), "--out", str(tmp_path / "out2"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "under min_prompt_seconds = 8" in err and ".trans.txt:1: 1001-5001-0000: prompt audio (cut from 1001-" in err
