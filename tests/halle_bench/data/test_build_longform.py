"""`datasets build-longform`: segments, prompts, files, determinism, the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from corpus_trees import librispeech_tree, libritts_tree  # noqa: F401 (fixtures)

from halle_bench.audio import load_audio
from halle_bench.cli import main
from halle_bench.config import load_config
from halle_bench.data import build_longform, find_problems, read_manifest
from halle_bench.errors import ConfigError

EDGES = (3, 10, 30, 60)


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(librispeech_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "set"
    return build_longform(librispeech_tree, out, edges=EDGES, seed=0), librispeech_tree


def rows_of(res) -> list[dict]:
    return [json.loads(ln) for ln in res.manifest.read_text().splitlines()]


def test_segments_fill_buckets_from_consecutive_utterances_of_one_chapter(built):
    res, tree = built
    corpus = {u.id: u for u in read_manifest(tree)}
    rows = rows_of(res)
    assert {r["bucket"] for r in rows} == {"3-10", "10-30", "30-60"}
    for r in rows:
        lo, hi = map(float, r["bucket"].split("-"))
        assert lo <= r["duration"] < hi
        srcs = [corpus[s] for s in r["sources"]]
        assert len({(u.speaker, u.extra["chapter"]) for u in srcs}) == 1
        idx = [u.extra["index"] for u in srcs]
        assert idx == list(range(idx[0], idx[0] + len(idx)))  # consecutive, in order
        assert r["text"] == " ".join(u.text for u in srcs)
        assert r["speaker"] == srcs[0].speaker and r["chapter"] == srcs[0].extra["chapter"]
        # the audio is the sources joined as they are (natural gaps kept), sample for sample
        joined = np.concatenate([load_audio(u.audio, sr=None)[0] for u in srcs])
        got, sr, _ = load_audio(res.out / r["audio"], sr=None)
        assert sr == 16000 and np.array_equal(got, joined)
    for label in ("3-10", "10-30", "30-60"):  # disjoint within a bucket
        used = [s for r in rows if r["bucket"] == label for s in r["sources"]]
        assert len(used) == len(set(used))


def test_counts_balanced_and_recorded(built):
    res, _ = built
    counts = {r.bucket: r.n for r in res.rows}
    assert len(set(counts.values())) == 1 and counts["3-10"] >= 1
    recipe = json.loads(res.recipe.read_text())
    assert {k: v["n"] for k, v in recipe["buckets_built"].items()} == counts
    assert recipe["seed"] == 0 and recipe["buckets"] == [3.0, 10.0, 30.0, 60.0] and recipe["format"] == "librispeech"
    used = {s for r in rows_of(res) for s in r["sources"] + [r["prompt_source"]]}
    assert set(recipe["source_sha256"]) == used


def check_prompts(res, tree, seconds: float) -> tuple[int, int]:
    """Every prompt: another utterance of the segment's speaker, whole with its transcript
    or cut near `seconds` without one. Returns (whole, cut) counts."""
    corpus = {u.id: u for u in read_manifest(tree)}
    n_whole = n_cut = 0
    for r in rows_of(res):
        p = corpus[r["prompt_source"]]
        assert p.speaker == r["speaker"] and p.id not in r["sources"]
        x, sr, _ = load_audio(res.out / r["prompt_audio"], sr=None)
        whole = load_audio(p.audio, sr=None)[0]
        if r["prompt_cut"] is None:  # used whole: its transcript is exact
            assert r["prompt_text"] == p.text and np.array_equal(x, whole)
            assert seconds <= x.size / sr <= seconds + 1.0
            n_whole += 1
        else:  # cut at a pause near `seconds`: no transcript
            assert r["prompt_text"] is None and np.array_equal(x, whole[: x.size])
            assert seconds - 1.0 <= r["prompt_cut"][1] <= seconds + 1.0 and x.size < whole.size
            assert x.size / sr == pytest.approx(r["prompt_cut"][1], abs=1e-4)
            n_cut += 1
    return n_whole, n_cut


def test_prompt_is_another_utterance_of_the_speaker(built, tmp_path):
    res, tree = built
    assert check_prompts(res, tree, 3.0)[0] > 0
    short = build_longform(tree, tmp_path / "p2", edges=EDGES, seed=0, prompt_seconds=1.5)
    assert check_prompts(short, tree, 1.5)[1] > 0  # espeak sentences are longer than 2.5 s: cut


def test_built_set_reads_validates_and_configures(built):
    res, _ = built
    utts = read_manifest(res.manifest)
    assert find_problems(utts) == []
    assert all(u.prompt_audio is not None and u.duration_source == "audio" for u in utts)
    assert utts[0].extra["sources"] and utts[0].extra["prompt_source"]
    cfg = load_config(res.config)
    assert cfg.dataset.manifest == res.manifest.resolve() and cfg.dataset.buckets == (3.0, 10.0, 30.0, 60.0)
    assert [s.kind for s in cfg.systems] == ["ground-truth"] and set(cfg.metrics) == {"wer", "sim"}


def test_same_inputs_and_seed_same_bytes(built, tmp_path):
    res, tree = built
    again = build_longform(tree, tmp_path / "set", edges=EDGES, seed=0)
    assert digest(again.out) == digest(res.out)
    # rebuilt into the same folder: replaced, identical
    build_longform(tree, tmp_path / "set", edges=EDGES, seed=0)
    assert digest(tmp_path / "set") == digest(res.out)
    other = build_longform(tree, tmp_path / "seed1", edges=EDGES, seed=1)
    assert rows_of(other) != rows_of(res)


def test_per_bucket_and_folder_guard(librispeech_tree, tmp_path):
    res = build_longform(librispeech_tree, tmp_path / "one", edges=EDGES, per_bucket=1, seed=0)
    assert [r.n for r in res.rows] == [1, 1, 1]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not from a build"):
        build_longform(librispeech_tree, tmp_path / "mine", edges=EDGES)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_libritts_tree(libritts_tree, tmp_path):
    res = build_longform(libritts_tree, tmp_path / "ltts", edges=(3, 10, 20), seed=0)
    rows = rows_of(res)
    assert rows and all(r["bucket"] in ("3-10", "10-20") for r in rows)
    assert all(sf.info(str(res.out / r["audio"])).samplerate == 24000 for r in rows)
    assert all("_" in r["sources"][0] and r["prompt_source"] not in r["sources"] for r in rows)


def test_cli_build_and_bad_corpus_exit_2(librispeech_tree, tmp_path, capsys):
    rc = main(["datasets", "build-longform", str(librispeech_tree), str(tmp_path / "cli"), "--buckets", "3,10,30",
               "--per-bucket", "2", "--seed", "3", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "3-10" in out and "10-30" in out and "run with: halle-bench run" in out
    assert json.loads((tmp_path / "cli" / "recipe.json").read_text())["per_bucket"] == 2
    # a corpus with a broken flac and a missing one: both named, exit 2, nothing written
    bad = shutil.copytree(librispeech_tree, tmp_path / "bad")
    (bad / "1001" / "5001" / "1001-5001-0002.flac").write_bytes(b"not flac at all")
    (bad / "2002" / "6001" / "2002-6001-0001.flac").unlink()
    rc = main(["datasets", "build-longform", str(bad), str(tmp_path / "never"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "2 data problems" in err
    assert f"{bad / '1001' / '5001' / '1001-5001.trans.txt'}:3: 1001-5001-0002: reference audio: not readable" in err
    assert f"{bad / '2002' / '6001' / '2002-6001.trans.txt'}:2: 2002-6001-0001: reference audio: file not found" in err
    assert not (tmp_path / "never").exists()
    rc = main(["datasets", "build-longform", str(librispeech_tree), str(tmp_path / "x"), "--buckets", "10,3"])
    assert rc == 2 and "strictly increasing" in capsys.readouterr().err


def test_any_manifest_with_speakers_is_a_source(librispeech_tree, tmp_path):
    """Without a chapter column, each speaker's rows in manifest order are one chapter."""
    utts = read_manifest(librispeech_tree)
    rows = [{"id": u.id.replace("-", "_"), "text": u.text, "audio": str(u.audio), "speaker": u.speaker} for u in utts]
    (tmp_path / "src.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = build_longform(tmp_path / "src.jsonl", tmp_path / "out", edges=(3, 10, 30), seed=0)
    built = rows_of(res)
    assert built and all(r["chapter"] == "" for r in built)
    order = [r["id"] for r in rows]
    for r in built:
        pos = [order.index(s) for s in r["sources"]]
        assert pos == list(range(pos[0], pos[0] + len(pos)))
    (tmp_path / "nospk.jsonl").write_text(json.dumps({"id": "a", "text": "hello there", "audio": str(utts[0].audio)}) + "\n")
    with pytest.raises(ConfigError, match="nospk.jsonl:1: a: no speaker"):
        build_longform(tmp_path / "nospk.jsonl", tmp_path / "out2", edges=(3, 10))
