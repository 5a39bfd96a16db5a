import json

from halle_bench.store import JsonlTable, cache_key


def test_append_and_latest(tmp_path):
    t = JsonlTable(tmp_path / "x.jsonl", fsync=False)
    t.append({"system": "a", "id": "1", "v": 1})
    t.append({"system": "a", "id": "1", "v": 2})
    t.append({"system": "b", "id": "1", "v": 3})
    t.close()
    latest = JsonlTable(tmp_path / "x.jsonl").latest(("system", "id"))
    assert latest[("a", "1")]["v"] == 2 and latest[("b", "1")]["v"] == 3


def test_torn_line_is_ignored_and_cut_before_append(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"id": "1"}) + "\n" + '{"id": "2", "v"')
    t = JsonlTable(p, fsync=False)
    assert [r["id"] for r in t.rows()] == ["1"]
    t.append({"id": "3"})
    t.close()
    assert [r["id"] for r in JsonlTable(p).rows()] == ["1", "3"]
    assert p.read_text().count("\n") == 2


def test_cache_key_stable_and_sensitive():
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})
