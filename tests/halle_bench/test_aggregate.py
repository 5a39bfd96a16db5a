"""aggregate(): failures count, scorer errors stay apart, timing, positional similarity (issue 9)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from halle_bench.aggregate import aggregate, failed_wer_values
from halle_bench.data.utterance import Utterance
from halle_bench.metrics.normalizers import get_normalizer

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()


def _text(n: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n))


# 8 utterances, 2 per bucket; the long ones have over 60 words
UTTS = [Utterance(id=f"u{b}{k}", text=_text(n), duration=d, duration_source="manifest", speaker=f"s{k}", bucket=b)
        for b, n, d in (("3-10", 15, 6.0), ("10-30", 45, 18.0), ("30-60", 110, 44.0), ("60-90", 190, 75.0))
        for k in range(2)]


class _WER:
    name, version = "wer", "2"
    normalizer = get_normalizer("seed-tts-eval")

    def settings(self):
        return {"normalizer": "seed-tts-eval", "window_seconds": 30.0}


class _Plain:
    def __init__(self, name, version="1"):
        self.name, self.version = name, version


def _plan(out: Path, systems, scorers=("wer", "sim")):
    sc = {s: (_WER() if s == "wer" else _Plain(s)) for s in scorers}
    return SimpleNamespace(out=out, utterances=UTTS, systems=[SimpleNamespace(name=n, kind=k) for n, k in systems],
                           scorers=sc, config=SimpleNamespace(run=SimpleNamespace(seed=0, n_boot=200)))


def _wer_values(text: str, errors: int, pos_sim=None) -> dict:
    n = len(text.split())
    v = {"wer": errors / n, "cer": errors / n, "hits": n - errors, "subs": errors, "dels": 0, "ins": 0,
         "n_ref_words": n, "n_ref_chars": len(text), "char_errors": errors, "ref_norm": text, "hyp_norm": text,
         "asr_model": "whisper-base", "normalizer": "seed-tts-eval@1",
         "pos_errors": [errors], "pos_words": [n]}
    return v


def _write(out: Path, systems, failing=lambda s, u: False, errors=1, score_error=None, timing=None):
    """generation.jsonl + scores.jsonl for `systems`; returns the keys dict for aggregate."""
    out.mkdir(parents=True, exist_ok=True)
    gen, scores, keys = [], [], {}
    for name, kind in systems:
        for u in UTTS:
            failed = failing(name, u)
            g = {"system": name, "id": u.id, "status": "failed" if failed else "ok",
                 "error": "command exited with status 1" if failed else None,
                 "audio_seconds": None if failed else u.duration, "wall_seconds": 2.0 if failed else u.duration / 4,
                 "rtf": None if failed else 0.25}
            g.update((timing or {}).get(name, {}))
            gen.append(g)
            if failed:
                continue
            for scorer, vals in (("wer", _wer_values(u.text, errors)),
                                 ("sim", {"sim": 0.8, "sim_model": "resemblyzer",
                                          "pos_sim": [0.8, 0.6, 0.4][: max(1, int(u.duration // 30) + 1)]})):
                keys[(name, u.id, scorer)] = k = f"{name}:{u.id}:{scorer}"
                err = score_error(name, u, scorer) if score_error else None
                scores.append({"system": name, "id": u.id, "scorer": scorer, "version": "2" if scorer == "wer" else "1",
                               "key": k, "values": {} if err else vals, "error": err})
    (out / "generation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gen))
    (out / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in scores))
    return keys


def _lb(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "leaderboard.csv", dtype={"bucket": str}).set_index(["system", "bucket"])


def test_failed_generations_count_as_all_deleted(tmp_path):
    """A command system that fails on every text over 60 words (the 30-60 and 60-90 buckets)."""
    systems = [("gt", "ground-truth"), ("cmd", "command")]
    keys = _write(tmp_path, systems, failing=lambda s, u: s == "cmd" and len(u.text.split()) > 60)
    res = aggregate(_plan(tmp_path, systems), keys)
    lb = _lb(tmp_path)
    assert res.n_failed == 4
    for b in ("30-60", "60-90"):  # every utterance failed: WER 1.0, never an empty cell
        row = lb.loc[("cmd", b)]
        assert row.wer == 1.0 and row.wer_macro == 1.0 and row.del_rate == 1.0 and row.cer == 1.0
        assert row.n_failed == 2 and row.n_wer == 2 and row.n_sim == 0 and math.isnan(row.sim)
        assert math.isnan(row.wer_ok)
    allrow = lb.loc[("cmd", "all")]
    spoken = 2 * 15 + 2 * 45  # words of the 4 short utterances, 1 error each
    total = spoken + 2 * 110 + 2 * 190
    assert allrow.wer == pytest.approx((4 + 2 * 110 + 2 * 190) / total)
    assert allrow.wer_ok == pytest.approx(4 / spoken)
    assert allrow.wer_macro == pytest.approx((2 / 15 + 2 / 45 + 4) / 8)
    assert allrow.n_sim == 4 and allrow.sim == pytest.approx(0.8)  # similarity over the successes, with its count
    assert "counted as all-deleted" in allrow.notes
    utt = pd.read_csv(tmp_path / "utterances.csv").set_index(["system", "id"])
    f = utt.loc[("cmd", "u60-900")]
    assert f.status == "failed" and f.wer == 1.0 and f.dels == 190 and f.n_ref_words == 190 and f.hits == 0
    assert lb.loc[("gt", "all")].wer == pytest.approx(8 / total)


def test_failed_values_use_the_run_normaliser():
    v = failed_wer_values("Hello, World! It's 5.", get_normalizer("seed-tts-eval"))
    assert v["ref_norm"] == "hello world it's 5" and v["n_ref_words"] == 4 and v["dels"] == 4
    assert failed_wer_values("  ...  ", get_normalizer("seed-tts-eval")) == {}


def test_scorer_error_leaves_only_its_columns_empty(tmp_path):
    systems = [("sys", "command")]
    keys = _write(tmp_path, systems,
                  score_error=lambda s, u, scorer: "PESQ-like crash" if (u.id, scorer) == ("u3-100", "sim") else None)
    res = aggregate(_plan(tmp_path, systems), keys)
    assert res.n_failed == 0 and len(res.score_errors) == 1
    utt = pd.read_csv(tmp_path / "utterances.csv").set_index("id")
    row = utt.loc["u3-100"]
    assert row.status == "ok" and row.score_errors == "sim: PESQ-like crash"
    assert math.isnan(row.sim) and row.wer == pytest.approx(1 / 15)  # WER keeps the item
    lb = _lb(tmp_path)
    assert lb.loc[("sys", "3-10")].n_sim == 1 and lb.loc[("sys", "3-10")].n_wer == 2
    assert lb.loc[("sys", "3-10")].n_score_errors == 1 and lb.loc[("sys", "3-10")].n_failed == 0


def test_stale_score_is_a_score_error_not_a_failure(tmp_path):
    systems = [("sys", "command")]
    keys = _write(tmp_path, systems)
    keys[("sys", "u3-100", "wer")] = "changed"
    aggregate(_plan(tmp_path, systems), keys)
    row = pd.read_csv(tmp_path / "utterances.csv").set_index("id").loc["u3-100"]
    assert row.status == "ok" and row.score_errors == "wer: not scored" and math.isnan(row.wer)


def test_rtf_timed_rows_only_and_startup_apart(tmp_path):
    systems = [("gt", "ground-truth"), ("cmd", "command")]
    timing = {"cmd": {"startup_seconds": 1.5, "clip_fraction": 0.01}}
    keys = _write(tmp_path, systems, failing=lambda s, u: s == "cmd" and u.id == "u60-901", timing=timing)
    aggregate(_plan(tmp_path, systems), keys)
    lb = _lb(tmp_path)
    assert math.isnan(lb.loc[("gt", "all")].rtf)  # file reading is no synthesis time
    audio = sum(u.duration for u in UTTS if u.id != "u60-901")
    # the failed item's 2 s count in the numerator, its (missing) audio adds nothing
    assert lb.loc[("cmd", "all")].rtf == pytest.approx((audio / 4 + 2.0) / audio, rel=1e-5)
    assert lb.loc[("cmd", "3-10")].startup_seconds == 1.5 and math.isnan(lb.loc[("gt", "all")].startup_seconds)
    # clipping is recorded, never silent
    assert lb.loc[("cmd", "3-10")].clip_fraction == pytest.approx(0.01)
    assert "2 utterance(s) with samples at full scale" in lb.loc[("cmd", "3-10")].notes


def test_positional_has_similarity_beside_wer(tmp_path):
    systems = [("sys", "command")]
    keys = _write(tmp_path, systems)
    aggregate(_plan(tmp_path, systems), keys)
    pos = pd.read_csv(tmp_path / "positional.csv", dtype={"bucket": str})
    p = pos[(pos.bucket == "60-90")].set_index("window")
    assert list(p.sim) == pytest.approx([0.8, 0.6, 0.4]) and list(p.n_sim) == [2, 2, 2]
    assert set(pos.bucket) == {"30-60", "60-90", "all"}  # long utterances only (two slices or more)


def test_scorer_versions_and_ci_notes_reach_the_leaderboard(tmp_path):
    systems = [("sys", "command")]
    keys = _write(tmp_path, systems)
    aggregate(_plan(tmp_path, systems), keys)
    lb = _lb(tmp_path)
    assert lb.loc[("sys", "all")].scorer_versions == "sim@1 wer@2"
    assert lb.loc[("sys", "all")].asr_model == "whisper-base" and lb.loc[("sys", "all")].sim_model == "resemblyzer"
    # buckets of 2: no CI (a bootstrap of 2 values is [min, max]), and a note says so
    assert math.isnan(lb.loc[("sys", "3-10")].wer_ci_low) and "no CI for wer" in lb.loc[("sys", "3-10")].notes
    assert not math.isnan(lb.loc[("sys", "all")].wer_ci_low)
