"""Exports: stable column and row order, CSV / Parquet / strict JSON."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from runfixtures import make_run

from halle_bench.exports import (LEADERBOARD_COLUMNS, UTTERANCE_COLUMNS, bucket_sort_key, order_columns,
                                 order_rows, read_table, write_exports)
from halle_bench.report import load_runs, merge_leaderboards, merge_utterances


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("e")
    runs = load_runs([make_run(root / "run", seed=0, audio=False)])
    lb, utt = merge_leaderboards(runs), merge_utterances(runs)
    return lb, utt, write_exports(lb.drop(columns=["cer"]), utt, root / "exports", [{"name": "run"}])


def test_bucket_order():
    labels = ["all", "60-90", "unknown", ">180", "3-10", "<3", "10-30", "90-180"]
    assert sorted(labels, key=bucket_sort_key) == ["<3", "3-10", "10-30", "60-90", "90-180", ">180", "unknown", "all"]


def test_leaderboard_columns_stable(exported):
    _, _, paths = exported
    df = pd.read_csv(paths["leaderboard_csv"])
    cols = list(df.columns)
    assert cols[: len(LEADERBOARD_COLUMNS)] == LEADERBOARD_COLUMNS
    assert df["cer"].isna().all()  # a documented column the input lacked is kept, empty
    extras = cols[len(LEADERBOARD_COLUMNS):]
    assert extras == sorted(extras) and "run" in extras
    assert list(dict.fromkeys(df.system)) == ["gt", "valle", "halle"]
    assert list(df[df.system == "valle"].bucket) == ["3-10", "10-30", "30-60", "60-90", "all"]


def test_utterances_csv_and_parquet_agree(exported):
    _, utt, paths = exported
    csv = read_table(paths["utterances_csv"])
    pq = pd.read_parquet(paths["utterances_parquet"])
    assert list(csv.columns) == list(pq.columns)
    assert list(csv.columns)[: len(UTTERANCE_COLUMNS)] == UTTERANCE_COLUMNS
    assert len(pq) == len(utt) == 96
    assert pq["id"].tolist() == csv["id"].tolist()
    assert pq.loc[pq.status == "failed", "error"].str.contains("out of memory").all()
    assert pq.loc[pq.status == "ok", "error"].isna().all()
    assert pq["wer"].dtype.kind == "f" and pq["subs"].dtype.kind in "fi"


def test_ids_stay_strings(tmp_path):
    df = pd.DataFrame({"system": ["a", "a"], "id": ["007", "10"], "bucket": ["3-10", "3-10"], "status": "ok"})
    df.to_csv(tmp_path / "u.csv", index=False)
    back = read_table(tmp_path / "u.csv")
    assert back["id"].tolist() == ["007", "10"]
    write_exports(pd.DataFrame({"system": ["a"], "bucket": ["all"]}), back, tmp_path / "x")
    assert pd.read_parquet(tmp_path / "x" / "utterances.parquet")["id"].tolist() == ["007", "10"]


def test_summary_json_strict(exported):
    lb, _, paths = exported
    text = paths["summary_json"].read_text()
    assert "NaN" not in text
    s = json.loads(text)
    assert s["format"] == "halle-bench-summary" and s["version"] == 1 and s["runs"] == [{"name": "run"}]
    assert s["columns"][:2] == ["system", "bucket"]
    assert list(s["headline"]) == ["gt", "valle", "halle"]
    want = lb[(lb.system == "halle") & (lb.bucket == "all")].iloc[0]
    assert s["headline"]["halle"]["wer"] == pytest.approx(want.wer)
    assert s["headline"]["halle"]["n_failed"] == 1
    rec = s["leaderboard"][0]
    assert list(rec)[:4] == ["system", "bucket", "n", "n_failed"] and rec["cer"] is None


def test_order_helpers():
    df = pd.DataFrame({"z": [1, 2, 3], "bucket": ["all", "10-30", "3-10"], "system": ["b", "b", "b"], "a": [0, 0, 0]})
    out = order_columns(order_rows(df), ["system", "bucket", "n"])
    assert list(out.columns) == ["system", "bucket", "n", "a", "z"]
    assert out.bucket.tolist() == ["3-10", "10-30", "all"] and out.z.tolist() == [3, 2, 1]
    assert math.isnan(out.n[0])
