"""The paper demo's set: the embedded demo's rows plus enough 3-10 s utterances, none sharing a sentence."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
import soundfile as sf

from conftest import requires_espeak
from halle_bench.data import DEFAULT_BUCKETS, assign_buckets, build_demo, read_manifest
from halle_bench.data import paper_set as ps
from halle_bench.data.demo import SPEAKERS, demo_dir, split_sentences

pytestmark = requires_espeak


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    return home, ps.build_paper_set(home)


def _rows(manifest):
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]


def test_enough_short_utterances_and_the_demo_rows_unchanged(built):
    home, manifest = built
    assert manifest == ps.paper_set_dir(home) / "manifest.jsonl"
    utts = assign_buckets(read_manifest(manifest), DEFAULT_BUCKETS)
    # the durations the scorer's buckets see come from the audio itself
    assert all(u.duration_source == "audio" for u in utts)
    assert sum(3 <= u.duration < 10 for u in utts) >= 8
    assert Counter(u.bucket for u in utts) == {"3-10": 2 + len(ps.EXTRA_TARGETS), "10-30": 2, "30-60": 2, "60-90": 2}
    assert len({u.id for u in utts}) == len(utts)
    demo_manifest = demo_dir(home) / "manifest.jsonl"
    demo_rows = _rows(demo_manifest)
    rows = _rows(manifest)
    assert rows[: len(demo_rows)] == demo_rows  # the demo's rows verbatim, then the extras
    for r in demo_rows:  # and the demo's audio, copied byte for byte
        for field in ("audio", "prompt_audio"):
            assert (manifest.parent / r[field]).read_bytes() == (demo_manifest.parent / r[field]).read_bytes()
    extras = rows[len(demo_rows):]
    assert [r["speaker"] for r in extras] == [SPEAKERS[j % len(SPEAKERS)].speaker for j in range(len(extras))]
    for r in extras:
        assert 3 <= sf.info(str(manifest.parent / r["audio"])).duration < 10
        p = sf.info(str(manifest.parent / r["prompt_audio"]))
        assert p.samplerate == 16000 and 2.0 <= p.duration <= 4.0  # ~3 s prompts, as the demo's
        assert r["voice"] == next(v.voice for v in SPEAKERS if v.speaker == r["speaker"])
        assert r["text"][-1] in ".!?"  # whole sentences


def test_no_sentence_is_used_twice_and_all_come_from_the_passage(built):
    _, manifest = built
    passage = {ps.sentence_key(s) for s in split_sentences(ps.passage())}
    seen = Counter()
    for r in _rows(manifest):
        text = [ps.sentence_key(s) for s in split_sentences(r["text"])]
        prompt = ps.sentence_key(r["prompt_text"])
        assert prompt not in text and ps.sentence_key(r["prompt_text"]) not in ps.sentence_key(r["text"])
        for k in text + [prompt]:
            assert k in passage  # held out of the pair's training corpus
            seen[k] += 1
    # "Down, down, down." occurs twice in the passage, and twice in the demo's own texts
    assert {k: n for k, n in seen.items() if n > 1} in ({}, {"down, down, down.": 2})
    extras = [r for r in _rows(manifest) if r["id"].startswith("paper")]
    extra_keys = [ps.sentence_key(s) for r in extras for s in split_sentences(r["text"]) + [r["prompt_text"]]]
    assert all(seen[k] == 1 for k in extra_keys)


def test_building_twice_gives_the_same_set_and_a_complete_set_is_cached(built, tmp_path, monkeypatch):
    home, manifest = built
    other = tmp_path / "home"
    shutil.copytree(demo_dir(home), demo_dir(other))  # the same demo: rebuild only the paper set
    again = ps.build_paper_set(other)
    assert again != manifest and again.read_bytes() == manifest.read_bytes()
    for r in _rows(manifest)[-len(ps.EXTRA_TARGETS):]:
        assert (again.parent / r["audio"]).read_bytes() == (manifest.parent / r["audio"]).read_bytes()

    def boom(*a, **k):
        raise AssertionError("rebuilt a complete set")

    monkeypatch.setattr(ps, "_build", boom)
    before = {p: p.stat().st_mtime_ns for p in again.parent.rglob("*")}
    assert ps.build_paper_set(other) == again
    assert {p: p.stat().st_mtime_ns for p in again.parent.rglob("*")} == before
    assert not list(again.parent.parent.glob(".paper-*"))  # no temp folder left


def test_an_incomplete_set_is_rebuilt_and_stale_temp_removed(built, tmp_path):
    home, manifest = built
    other = tmp_path / "home"
    shutil.copytree(demo_dir(home), demo_dir(other))
    final = ps.paper_set_dir(other)
    final.mkdir(parents=True)
    (final / "manifest.jsonl").write_text("half written")  # a killed build: no marker
    stale = final.parent / f".{final.name}-999999999-abc"  # a dead builder's temp folder
    stale.mkdir()
    assert ps.build_paper_set(other).read_bytes() == manifest.read_bytes() and not stale.exists()
    assert build_demo(other) == demo_dir(other) / "config.toml"  # the demo's cache untouched by it


def test_sentence_selection():
    sentences = ["One two three four five six seven.", "Down, down.", "Eight words are here in this short one.",
                 "down,  down.", "Used  sentence here."]
    used = ps.used_sentences([{"text": "Used sentence here. Other.", "prompt_text": None}])
    assert used == {"used sentence here.", "other."}
    free = ps.free_sentences(sentences, used)
    assert free == sentences[:3]  # the used one and the repeat (case and spacing aside) dropped
    # prompt candidates: 7-11 words, from the end backwards
    assert ps.prompt_candidates(free) == [sentences[2], sentences[0]]
