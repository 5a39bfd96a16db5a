import json

import pytest

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


# ---------------------------------------------------------------- several writers


def test_read_latest_merges_writers_by_key_latest_write_wins(tmp_path):
    from halle_bench.store import read_latest, table_path, writer_files

    main, s0 = JsonlTable(table_path(tmp_path, "generation")), JsonlTable(table_path(tmp_path, "generation", "shard-0-of-2"))
    s0.append({"system": "a", "id": "1", "status": "failed", "written_at": 10.0})
    s0.append({"system": "a", "id": "2", "status": "ok", "written_at": 11.0})
    main.append({"system": "a", "id": "1", "status": "ok", "written_at": 20.0})  # a later retry elsewhere
    main.append({"system": "a", "id": "3", "status": "ok", "written_at": 5.0})
    s0.append({"system": "a", "id": "3", "status": "failed", "written_at": 30.0})
    main.close(), s0.close()
    (tmp_path / "generation.jsonl.tmp").write_text("junk\n")  # not a writer's file
    assert [p.name for p in writer_files(tmp_path, "generation")] == ["generation.jsonl",
                                                                       "generation.shard-0-of-2.jsonl"]
    got = read_latest(tmp_path, "generation", ("system", "id"))
    assert {k: v["status"] for k, v in got.items()} == {("a", "1"): "ok", ("a", "2"): "ok", ("a", "3"): "failed"}
    with pytest.raises(ValueError):
        table_path(tmp_path, "generation", "../evil")


def test_a_writer_never_cuts_another_writers_torn_line(tmp_path):
    from halle_bench.store import read_latest, table_path

    other = table_path(tmp_path, "scores", "ray-1")
    other.write_text(json.dumps({"system": "a", "id": "1", "scorer": "x", "written_at": 1.0}) + "\n" + '{"system": "a", "i')
    before = other.read_bytes()
    t = JsonlTable(table_path(tmp_path, "scores", "ray-0"))
    t.append({"system": "a", "id": "2", "scorer": "x", "written_at": 2.0})
    t.close()
    assert other.read_bytes() == before  # still being written by its owner, maybe: untouched
    assert set(read_latest(tmp_path, "scores", ("system", "id", "scorer"))) == {("a", "1", "x"), ("a", "2", "x")}


def test_portable_drops_locations_not_contents():
    from halle_bench.store import portable

    a = {"kind": "valle", "checkpoint": "/data/ckpt/valle-small", "checkpoint_sha256": "ab" * 32,
         "command": ["tts", "--model", "/opt/models/m.pt", "{text}"], "n": 3, "rel": "models/m.pt"}
    b = dict(a, checkpoint="/mnt/shared/x/ckpt/valle-small", command=["tts", "--model", "/home/u/m.pt", "{text}"])
    assert cache_key(portable(a)) == cache_key(portable(b))
    assert portable(a)["checkpoint"] == "valle-small" and portable(a)["rel"] == "models/m.pt"
    assert cache_key(portable(a)) != cache_key(portable(dict(a, checkpoint_sha256="cd" * 32)))


def _hammer(args):
    from halle_bench.store import atomic_write_text, file_lock

    path, lock, i = args
    for k in range(30):
        with file_lock(lock):
            n = int(open(lock.with_suffix(".count")).read() or 0) if lock.with_suffix(".count").exists() else 0
            lock.with_suffix(".count").write_text(str(n + 1))
        atomic_write_text(path, json.dumps({"writer": i, "k": k, "pad": "x" * 20000}))
    return True


def test_atomic_writes_and_lock_across_processes(tmp_path):
    import multiprocessing as mp

    path, lock = tmp_path / "env.json", tmp_path / ".lock"
    with mp.get_context("fork").Pool(3) as pool:
        res = pool.map_async(_hammer, [(path, lock, i) for i in range(3)])
        seen = 0
        while not res.ready():
            if path.exists():
                json.loads(path.read_text())  # never a half-written file
                seen += 1
        assert all(res.get(60))
    assert int(lock.with_suffix(".count").read_text()) == 90  # no lost update under the lock
    assert json.loads(path.read_text())["k"] == 29
    assert not list(tmp_path.glob("*.tmp"))
