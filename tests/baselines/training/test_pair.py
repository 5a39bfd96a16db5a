"""The configs and corpus of the VALL-E / HALL-E pair (scripts/train-pair.sh)."""

import json
import shutil
from pathlib import Path

import pytest

from halle_bench.baselines.training import load_train_config, run_training
from halle_bench.baselines.training.corpus import build_corpus, demo_sentences, grammar_sentences
from halle_bench.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[3] / "baselines" / "training" / "configs"


def test_pair_configs_share_width_depth_and_ar_token_budget():
    v = load_train_config(CONFIGS / "pair-valle.toml")
    h = load_train_config(CONFIGS / "pair-halle.toml")
    assert v.model == "valle" and h.model == "halle" and v.codec.kind == "shipped-teacher"
    assert h.init_valle == v.out  # HALL-E continues from this VALL-E
    tf = ("d_model", "n_heads", "n_layers", "d_ff")
    assert {k: v.model_config[k] for k in tf} == {k: h.model_config[k] for k in tf}
    assert v.stage_values("ar")["max_frames"] == h.stage_values("ar")["max_frames"]
    assert v.stage_values("nar")["max_frames"] == h.stage_values("nar")["max_frames"]
    # the same token budget holds 6x longer clips at 8 Hz than at 48 Hz
    assert h.data.max_seconds > 4 * v.data.max_seconds
    assert v.speak and h.speak and v.data.val_items >= 2


def test_shipped_names_resolve_to_the_registered_checked_models():
    from halle_bench.baselines.codec_api import load_codec
    from halle_bench.baselines.training import shipped

    codec = load_codec(shipped.shipped_dir("shipped-teacher"))
    assert (codec.sample_rate, codec.frame_rate) == (24000, 48)
    assert (shipped.shipped_dir("shipped-mreq") / "mrvq.safetensors").is_file()
    with pytest.raises(KeyError, match="unknown shipped model"):
        shipped.shipped_dir("shipped-nothing")


def test_corpus_texts_are_disjoint_from_the_demo(tmp_path):
    demo = sorted(demo_sentences())
    assert demo and not demo_sentences() & {" ".join(s.lower().split()) for s in grammar_sentences(5000)}
    texts = ["A brand new sentence about boats.", demo[0].capitalize(), "Another one about trains."]
    items = build_corpus(tmp_path, minutes=0.05, texts=texts, max_sentences=1, log=lambda m: None)
    assert items and all(demo[0] not in i.text.lower() for i in items)
    assert len({i.speaker for i in items}) == len(items)  # voices take turns
    rows = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert rows[0]["audio"].startswith("wav/") and rows[0]["duration"] > 0.5
    again = build_corpus(tmp_path, minutes=0.05, texts=texts, max_sentences=1, log=lambda m: None)
    assert again == items  # resumed: the same utterances, wavs kept


def test_a_second_part_shares_the_folder_without_touching_the_first(tmp_path):
    texts = ["A brand new sentence about boats.", "Another one about trains."]
    first = build_corpus(tmp_path, minutes=0.03, texts=texts, max_sentences=1, log=lambda m: None)
    before = (tmp_path / "train.jsonl").read_text()
    short = build_corpus(tmp_path, minutes=0.03, texts=texts[::-1], max_sentences=1, log=lambda m: None, part="short")
    assert (tmp_path / "train.jsonl").read_text() == before
    rows = [json.loads(x) for x in (tmp_path / "short.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [i.id for i in short] and all(r["id"].startswith("short-") for r in rows)
    assert not {i.id for i in first} & {i.id for i in short}
    assert all((tmp_path / r["audio"]).is_file() for r in rows)
