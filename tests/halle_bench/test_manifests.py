"""Manifest readers: every format, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from halle_bench.audio import load_audio
from halle_bench.data import WORDS_PER_SECOND, detect_format, read_manifest
from halle_bench.errors import ConfigError


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def wavs(speech_wav, tmp_path):
    """Two espeak wavs under tmp_path/wavs/ (16 kHz) and their true durations."""
    (tmp_path / "wavs").mkdir()
    a = speech_wav("wavs/a", "The quick brown fox jumps over the lazy dog.")
    b = speech_wav("wavs/b", "A second sentence, spoken by another voice.", voice="en-gb")
    return {p.stem: (p, sf.info(str(p)).frames / sf.info(str(p)).samplerate) for p in (a, b)}


# ---------------------------------------------------------------------- formats


def test_jsonl_reads_all_columns_and_resolves_relative_paths(tmp_path, wavs):
    m = write_jsonl(
        tmp_path / "set.jsonl",
        [
            {"id": "a", "text": " Hello there. ", "audio": "wavs/a.wav", "speaker": "s1",
             "prompt_audio": "wavs/b.wav", "prompt_text": "A second sentence.", "lang": "en"},
            {"id": "b", "text": "Only text, no audio at all here", "duration": 12.5},
            {"id": 7, "text": "Numeric id and no duration"},
        ],
    )
    assert detect_format(m) == "jsonl"
    a, b, c = read_manifest(m)
    assert a.id == "a" and a.text == "Hello there." and a.speaker == "s1"
    assert a.audio == tmp_path / "wavs/a.wav" and a.prompt_audio == tmp_path / "wavs/b.wav"
    assert a.prompt_text == "A second sentence."
    assert a.duration == pytest.approx(wavs["a"][1]) and a.duration_source == "audio"
    assert a.extra == {"lang": "en"}
    assert a.source == f"{m}:1"
    assert b.duration == 12.5 and b.duration_source == "manifest" and b.audio is None
    assert c.id == "7" and c.duration_source == "text-estimate"
    assert c.duration == pytest.approx(5 / WORDS_PER_SECOND)


def test_csv_with_quoted_multiline_field_keeps_line_numbers(tmp_path, wavs):
    m = tmp_path / "set.csv"
    m.write_text(
        'id,text,audio,speaker,duration\n'
        'a,"Hello, world",wavs/a.wav,s1,\n'
        'b,"two\nlines",,s2,4.0\n'
        '\n'
        'c,last,,s2,\n',
        encoding="utf-8",
    )
    assert detect_format(m) == "csv"
    a, b, c = read_manifest(m)
    assert a.text == "Hello, world" and a.duration_source == "audio"
    assert b.text == "two\nlines" and b.duration == 4.0 and b.source == f"{m}:3"
    assert c.source == f"{m}:6" and c.speaker == "s2"


def test_seed_tts_meta_lst(tmp_path, wavs):
    m = tmp_path / "meta.lst"
    m.write_text(
        "u1|A second sentence.|wavs/b.wav|The target text one.|wavs/a.wav\n"
        "u2|A second sentence.|wavs/b.wav|Target two, without ground truth.\n",
        encoding="utf-8",
    )
    assert detect_format(m) == "seed-tts"
    u1, u2 = read_manifest(m)
    assert u1.text == "The target text one." and u1.prompt_text == "A second sentence."
    assert u1.prompt_audio == tmp_path / "wavs/b.wav" and u1.audio == tmp_path / "wavs/a.wav"
    assert u1.duration_source == "audio"
    assert u2.audio is None and u2.duration_source == "text-estimate"


def test_librispeech_pc_cross_sentence_list(tmp_path, speech_wav):
    root = tmp_path / "LibriSpeech" / "test-clean" / "1089" / "134686"
    root.mkdir(parents=True)
    ref = speech_wav("ref", "He hoped there would be stew for dinner.")
    gen = speech_wav("gen", "Stuff it into you, his belly counselled him.")
    x, sr, _ = load_audio(gen)
    sf.write(str(root / "1089-134686-0002.flac"), x, sr)  # LibriSpeech ships flac
    x, sr, _ = load_audio(ref)
    sf.write(str(root / "1089-134686-0000.flac"), x, sr)
    m = tmp_path / "librispeech_pc_test_clean_cross_sentence.lst"
    m.write_text(
        "1089-134686-0000\t2.9\tHe hoped there would be stew for dinner.\t"
        "1089-134686-0002\t9.5\tStuff it into you, his belly counselled him.\n"
        "1089-134686-0000\t2.9\tHe hoped.\t1089-134686-0099\t7.25\tMissing audio here.\n",
        encoding="utf-8",
    )
    assert detect_format(m) == "librispeech-pc"
    u, missing = read_manifest(m)
    assert u.id == "1089-134686-0002" and u.speaker == "1089"
    assert u.audio == root / "1089-134686-0002.flac" and u.duration_source == "audio"
    assert u.prompt_audio == root / "1089-134686-0000.flac"
    assert u.prompt_text == "He hoped there would be stew for dinner."
    assert missing.duration == 7.25 and missing.duration_source == "manifest"
    assert not missing.audio.exists()  # kept: the runner fails it with the path


@pytest.mark.parametrize("meta", ["metadata.csv", "metadata.jsonl"])
def test_audiofolder(tmp_path, wavs, meta):
    folder = tmp_path / "wavs"
    if meta.endswith(".csv"):
        (folder / meta).write_text("file_name,transcription,speaker_id\na.wav,Hello there,7\nb.wav,Again,7\n")
    else:
        write_jsonl(folder / meta, [{"file_name": "a.wav", "text": "Hello there", "speaker_id": 7},
                                    {"file_name": "b.wav", "text": "Again", "speaker_id": 7}])
    for p in (folder, folder / meta):
        assert detect_format(p) == "audiofolder"
        a, b = read_manifest(p)
        assert (a.id, a.text, a.speaker, a.audio) == ("a", "Hello there", "7", folder / "a.wav")
        assert a.duration == pytest.approx(wavs["a"][1]) and a.duration_source == "audio"
        assert b.id == "b"


def test_audiofolder_without_metadata(tmp_path):
    with pytest.raises(ConfigError, match="metadata"):
        read_manifest(tmp_path, "audiofolder")


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "name, body, line, match",
    [
        ("m.jsonl", '{"id": "a", "text": "ok"}\n{"id": "b", "text": \n', 2, "invalid JSON"),
        ("m.jsonl", '{"id": "a", "text": "ok"}\n\n["not", "an", "object"]\n', 3, "JSON object"),
        ("m.jsonl", '{"text": "no id"}\n', 1, "missing 'id'"),
        ("m.jsonl", '{"id": "a"}\n', 1, "missing 'text'"),
        ("m.jsonl", '{"id": "a", "text": "x", "duration": "long"}\n', 1, "not a number"),
        ("m.jsonl", '{"id": "a", "text": "x", "duration": -1}\n', 1, ">= 0"),
        ("m.jsonl", '{"id": "../escape", "text": "x"}\n', 1, "file name"),
        ("m.jsonl", '{"id": "  ", "text": "x"}\n', 1, "empty utterance id"),
        ("m.jsonl", '{"id": "a", "text": 3}\n', 1, "text must be a string"),
        ("m.csv", "id,text\na,ok\nb,too,many\n", 3, "3 fields but the header has 2"),
        ("m.csv", "id,text\na\n", 2, "1 fields"),
        ("m.csv", "name,text\na,ok\n", 2, "missing 'id'"),
        ("meta.lst", "u1|p|p.wav|target\nu2|p|p.wav\n", 2, "4 or 5"),
        ("meta.lst", "u1|p|p.wav|t|g.wav|extra\n", 1, "got 6"),
        ("ls.tsv", "1-2-3\t2.0\tref\t1-2-4\t3.0\n", 1, "6 tab-separated"),
        ("ls.tsv", "1-2-3\t2.0\tref\tbadid\t3.0\tgen\n", 1, "speaker"),
        ("ls.tsv", "1-2-3\t2.0\tref\t1-2-4\tx\tgen\n", 1, "not a number"),
    ],
)
def test_malformed_lines_report_file_and_line(tmp_path, name, body, line, match):
    m = tmp_path / name
    m.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=match) as ei:
        read_manifest(m)
    assert ei.value.path == str(m.resolve()) and ei.value.line == line
    assert str(ei.value).startswith(f"{m.resolve()}:{line}: ")


def test_duplicate_ids_name_both_lines(tmp_path):
    m = write_jsonl(tmp_path / "d.jsonl", [{"id": "x", "text": "one"}, {"id": "y", "text": "two"},
                                           {"id": "x", "text": "three"}])
    with pytest.raises(ConfigError) as ei:
        read_manifest(m)
    assert ei.value.line == 3 and f"{m.resolve()}:1" in ei.value.message and "'x'" in ei.value.message


def test_unknown_format_missing_manifest_and_empty_manifest(tmp_path):
    m = write_jsonl(tmp_path / "ok.jsonl", [{"id": "a", "text": "x"}])
    with pytest.raises(ConfigError, match="unknown manifest format"):
        read_manifest(m, "kaldi")
    with pytest.raises(ConfigError, match="not found"):
        read_manifest(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(ConfigError, match="no utterances"):
        read_manifest(empty)
    odd = tmp_path / "list.txt"
    odd.write_text("just some words\n")
    with pytest.raises(ConfigError, match="cannot infer"):
        detect_format(odd)


def test_missing_corrupt_and_stereo_audio_and_empty_text_are_kept(tmp_path, speech):
    rng = np.random.default_rng(0)
    (tmp_path / "corrupt.wav").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    x = speech("Stereo at forty four point one kilohertz.", sr=44100)
    stereo = np.stack([x, 0.5 * x], axis=1)
    sf.write(str(tmp_path / "stereo.wav"), stereo, 44100)
    m = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"id": "missing", "text": "one two three four five", "audio": "nope.wav", "duration": 4.0},
            {"id": "corrupt", "text": "one two three four five", "audio": "corrupt.wav"},
            {"id": "stereo", "text": "stereo", "audio": "stereo.wav"},
            {"id": "empty", "text": "", "audio": "stereo.wav"},
            {"id": "blank", "text": "   \t ", "audio": "stereo.wav"},
            {"id": "null", "text": None},
        ],
    )
    utts = {u.id: u for u in read_manifest(m)}
    assert list(utts) == ["missing", "corrupt", "stereo", "empty", "blank", "null"]
    assert utts["missing"].duration == 4.0 and utts["missing"].duration_source == "manifest"
    assert utts["corrupt"].duration_source == "text-estimate"
    assert utts["corrupt"].duration == pytest.approx(5 / WORDS_PER_SECOND)
    assert utts["stereo"].duration == pytest.approx(len(x) / 44100)
    assert utts["stereo"].duration_source == "audio"
    assert utts["empty"].text == "" and utts["blank"].text == "" and utts["null"].text == ""
    # Loading for scoring mixes down and resamples; the info records what changed.
    y, sr, info = load_audio(utts["stereo"].audio)
    assert sr == 16000 and y.ndim == 1 and info.orig_sr == 44100 and info.orig_channels == 2
    assert len(y) / sr == pytest.approx(len(x) / 44100, abs=1e-3)
    assert "mixed 2 channels" in info.notes
