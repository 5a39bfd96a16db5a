"""Executors and shards: one process, 2 shards, a pool of 2 processes and 2 Ray workers
give the same tables; a worker that dies has its chunk retried elsewhere; a killed
shard resumes; a moved run directory stays cached (issues 12 §3, 18 §1)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from halle_bench.cli import main
from halle_bench.config import load_config
from halle_bench.executors import Shard, item_slot, parse_shard
from halle_bench.errors import ConfigError
from halle_bench.runner import run

HERE = Path(__file__).parent
TIMING = ["wall_seconds", "rtf", "startup_seconds"]
TEXTS = {
    "u1": "short one here",
    "u2": "a somewhat longer sentence that takes a few seconds to say out loud",
    "u3": " ".join(["many words in a long utterance"] * 6),
    "u4": "another short one",
    "u5": "   ",
    "u6": " ".join(["the quick brown fox jumps"] * 8),
    "u7": "seven is the last of them",
}


@pytest.fixture(autouse=True)
def _plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def write_setup(tmp: Path) -> Path:
    """References (tones), cross-utterance prompts cut into <out>/prompts, a wavdir,
    the ground truth and two tone systems (one crashes on 'fox'), toy + longform scorers."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "pre").mkdir(exist_ok=True)
    rows = []
    for i, (k, t) in enumerate(TEXTS.items()):
        tt = np.arange(int(16000 * (3.5 + 0.4 * i))) / 16000
        x = (0.25 * np.sin(2 * np.pi * (170 + 15 * i) * tt) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * tt))).astype(np.float32)
        sf.write(tmp / f"{k}.wav", x, 16000)
        sf.write(tmp / "pre" / f"{k}.wav", x[::-1].copy(), 16000)
        rows.append({"id": k, "text": t, "audio": f"{k}.wav", "speaker": "s1"})
    (tmp / "meta.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tmp / "bench.toml"
    cfg.write_text("""
[dataset]
manifest = "meta.jsonl"
buckets = [0, 3, 10, 30, 90]
prompt = "cross-utterance"
prompt_seconds = 1.0
validate = false  # u5 has no text on purpose: a failed row, not a refused run

[[systems]]
name = "gt"
kind = "ground-truth"

[[systems]]
name = "pre"
kind = "wavdir"
path = "pre"

[[systems]]
name = "a"
kind = "tone"

[[systems]]
name = "b"
kind = "tone"
batch_size = 2
crash_on = "fox"

[metrics]
toy = {}
longform = {}

[run]
seed = 3
plugins = ["plugin_fixtures"]
n_boot = 100
max_failed_fraction = 1.0
""")
    return cfg


def table(out: Path, name: str = "utterances.csv") -> pd.DataFrame:
    df = pd.read_csv(out / name).drop(columns=TIMING, errors="ignore")
    return df.sort_values([c for c in ("system", "id", "bucket") if c in df.columns]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One local run: the table every other way of running must reproduce."""
    tmp = tmp_path_factory.mktemp("ref")
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(HERE))
    try:
        cfg = write_setup(tmp)
        s = run(load_config(cfg), tmp / "out")
    finally:
        mp.undo()
    utt = pd.read_csv(tmp / "out" / "utterances.csv")
    # The fixture is worth comparing: failures (u5 has no text, b crashes on u6), scores
    # from both scorers, prompts cut into the run directory.
    assert s.n_failed == 5 and (utt.status == "ok").sum() == 4 * len(TEXTS) - 5
    assert utt.wer.notna().sum() == 23 and utt.n_pauses.notna().sum() == 23
    assert len(list((tmp / "out" / "prompts").rglob("*.wav"))) == len(TEXTS)
    return tmp / "out", s


def test_shard_slices_partition_the_items():
    items = [(s, f"utt{i}") for s in ("gt", "a", "halle") for i in range(200)]
    for n in (1, 2, 3, 8):
        owners = [[k for k in range(n) if Shard(k, n).keeps(s, u)] for s, u in items]
        assert all(len(o) == 1 for o in owners)  # each item in exactly one shard
        if n > 1:
            sizes = np.bincount([o[0] for o in owners], minlength=n)
            assert sizes.min() > 0.6 * len(items) / n  # and the slices are balanced
    # the slot of an item depends on the item only, not on what else is planned
    assert item_slot("a", "utt7", 4) == item_slot("a", "utt7", 4)
    assert parse_shard("1/4") == Shard(1, 4) and str(parse_shard(" 0 / 2 ")) == "0/2"
    for bad in ("4/4", "1", "-1/2", "a/b", "0/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_two_shards_then_a_plain_run_equal_one_process(tmp_path, reference):
    ref_out, ref_summary = reference
    cfg = write_setup(tmp_path)
    out = tmp_path / "out"
    s0 = run(load_config(cfg), out, shard="0/2")
    s1 = run(load_config(cfg), out, shard="1/2")
    assert s0.leaderboard is None and not (out / "utterances.csv").exists()  # a shard does not aggregate
    assert s0.n_items + s1.n_items == ref_summary.n_items == 4 * len(TEXTS)
    assert s0.n_items > 0 and s1.n_items > 0
    assert (out / "generation.shard-0-of-2.jsonl").exists() and (out / "scores.shard-1-of-2.jsonl").exists()
    assert not (out / "generation.jsonl").exists()
    # The plain run aggregates; it only retries the failed items, scores nothing again.
    s = run(load_config(cfg), out)
    assert s.generated == ref_summary.n_failed and s.scored == 0
    pd.testing.assert_frame_equal(table(ref_out), table(out))
    pd.testing.assert_frame_equal(table(ref_out, "leaderboard.csv"), table(out, "leaderboard.csv"))


def _cli(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "halle_bench", "run", *args, "--quiet"], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_killed_shard_resumes(tmp_path, reference):
    ref_out, _ = reference
    cfg = write_setup(tmp_path)
    out = tmp_path / "out"
    p = _cli([str(cfg), "--out", str(out), "--shard", "1/2"])
    assert p.returncode in (0, 1), p.stderr
    assert "without --shard to aggregate" in p.stdout
    p = _cli([str(cfg), "--out", str(out), "--shard", "0/2"], {"HALLE_TEST_KILL_GEN": "4"})
    assert p.returncode == -9  # really SIGKILLed mid-run
    own = out / "generation.shard-0-of-2.jsonl"
    other = out / "generation.shard-1-of-2.jsonl"
    with open(own, "a") as f:  # a torn line, as a kill inside a write leaves
        f.write('{"system": "a", "id": "u')
    other_bytes = other.read_bytes()
    p = _cli([str(cfg), "--out", str(out), "--shard", "0/2"])
    assert p.returncode in (0, 1), p.stderr
    assert other.read_bytes() == other_bytes  # a writer never touches another's file
    assert own.read_text().endswith("\n")  # its own torn line was cut
    p = _cli([str(cfg), "--out", str(out)])
    assert p.returncode in (0, 1), p.stderr
    pd.testing.assert_frame_equal(table(ref_out), table(out))


def test_score_device_is_where_scorers_load(tmp_path, reference, monkeypatch):
    """--score-device: the scorers load there, the systems on --device; nothing else moves."""
    from plugin_fixtures import ToyScorer

    ref_out, _ = reference
    cfg = write_setup(tmp_path)
    seen = []
    orig = ToyScorer.load
    monkeypatch.setattr(ToyScorer, "load", lambda self, device: (seen.append(device), orig(self, device))[1])
    # "meta": a device name nothing runs on, so only the scorers' load can have seen it
    run(load_config(cfg), tmp_path / "out", device="cpu", score_device="meta")
    assert seen == ["meta"]
    rows = [json.loads(x) for x in (tmp_path / "out" / "generation.jsonl").read_text().splitlines()]
    assert {r["device"] for r in rows if r["status"] == "ok"} == {"cpu"}
    pd.testing.assert_frame_equal(table(ref_out), table(tmp_path / "out"))


def test_models_load_once_per_worker_across_chunks(tmp_path, monkeypatch):
    from plugin_fixtures import ToneSystem, ToyScorer

    loads = []
    orig_sys, orig_sc = ToneSystem.load, ToyScorer.load
    monkeypatch.setattr(ToneSystem, "load", lambda self, d: (loads.append(self.name), orig_sys(self, d))[1])
    monkeypatch.setattr(ToyScorer, "load", lambda self, d: (loads.append("toy"), orig_sc(self, d))[1])
    cfg = write_setup(tmp_path)
    run(load_config(cfg), tmp_path / "out", metrics=["toy"])
    # a: 6 chunks of 1 (u5 has no text), b: 3 chunks of 2, toy: 8 chunks of 3
    assert sorted(loads) == ["a", "b", "toy"]


def test_moved_run_directory_keeps_every_row_cached(tmp_path, reference):
    ref_out, ref_summary = reference
    src = tmp_path / "machine-a"
    cfg = write_setup(src)
    run(load_config(cfg), src / "out")
    dst = tmp_path / "elsewhere" / "machine-b"
    shutil.copytree(src, dst)
    shutil.rmtree(src)  # nothing may still point at the old place
    s = run(load_config(dst / "bench.toml"), dst / "out")
    assert s.generated == ref_summary.n_failed  # only the failed items are retried
    assert s.scored == 0
    pd.testing.assert_frame_equal(table(ref_out), table(dst / "out"))


@pytest.mark.slow
def test_ray_two_workers_equal_one_process(tmp_path, reference, monkeypatch):
    """Also when actors die: each SIGKILLs itself on its 5th call (as in the process pool test)."""
    pytest.importorskip("ray")
    ref_out, ref_summary = reference
    cfg = write_setup(tmp_path)
    out = tmp_path / "out"
    monkeypatch.setenv("HALLE_TEST_KILL_GEN", "5")  # the local Ray cluster's workers inherit it
    s = run(load_config(cfg), out, executor="ray", workers=2)
    monkeypatch.delenv("HALLE_TEST_KILL_GEN")  # this process synthesises below
    assert s.generated == ref_summary.generated and s.scored == ref_summary.scored
    # The driver writes every row (the actors write the audio): one writer's files.
    assert (out / "generation.jsonl").exists() and not list(out.glob("generation.*.jsonl"))
    pd.testing.assert_frame_equal(table(ref_out), table(out))
    pd.testing.assert_frame_equal(table(ref_out, "leaderboard.csv"), table(out, "leaderboard.csv"))
    # a plain run over the workers' directory: nothing new to do
    s2 = run(load_config(cfg), out)
    assert s2.generated == ref_summary.n_failed and s2.scored == 0


def test_cli_flag_errors_exit_2(tmp_path, capsys):
    cfg = write_setup(tmp_path)
    assert main(["run", str(cfg), "--out", str(tmp_path / "o"), "--workers", "2"]) == 2
    assert "--workers needs --executor process or ray" in capsys.readouterr().err
    assert main(["run", str(cfg), "--out", str(tmp_path / "o"), "--shard", "2/2"]) == 2
    assert "--shard" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing was done


def _prepare_in_child(args):
    cfg, out = args
    sys.path.insert(0, str(HERE))
    from halle_bench.plan import plan_run
    from halle_bench.provenance import prepare

    for _ in range(2):
        prepare(plan_run(load_config(cfg), Path(out)))
    return sorted(p.name for p in Path(out).iterdir())


def test_prepare_is_idempotent_and_safe_when_shards_start_together(tmp_path):
    import multiprocessing as mp

    from halle_bench.plan import plan_run
    from halle_bench.provenance import prepare

    cfg = write_setup(tmp_path)
    out = tmp_path / "out"
    with mp.get_context("fork").Pool(3) as pool:  # three shards starting at once
        listings = pool.map(_prepare_in_child, [(cfg, out)] * 3, chunksize=1)
    env = json.loads((out / "env.json").read_text())
    assert env["n_utterances"] == len(TEXTS)
    assert (out / "config.toml").read_text().startswith("[dataset]")
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no temporary left behind
    assert all("env.json" in ls for ls in listings)
    before = {p: p.stat().st_mtime_ns for p in (out / "env.json", out / "config.toml")}
    prepare(plan_run(load_config(cfg), out))
    assert {p: p.stat().st_mtime_ns for p in before} == before  # same content: not rewritten


def test_process_pool_equals_one_process_even_when_workers_die(tmp_path, reference, monkeypatch):
    """2 worker processes fed from one queue; each worker SIGKILLs itself on its 4th synthesis (warm-up included)
    (HALLE_TEST_KILL_GEN, counted per process), so chunks are retried on new workers."""
    ref_out, ref_summary = reference
    cfg = write_setup(tmp_path)
    out = tmp_path / "out"
    monkeypatch.setenv("HALLE_TEST_KILL_GEN", "5")
    s = run(load_config(cfg), out, executor="process", workers=2)
    assert s.generated == ref_summary.generated and s.scored == ref_summary.scored
    assert not list(out.glob("generation.*.jsonl"))  # the driver wrote every row
    pd.testing.assert_frame_equal(table(ref_out), table(out))
    pd.testing.assert_frame_equal(table(ref_out, "leaderboard.csv"), table(out, "leaderboard.csv"))


class _FakeSlots:
    """Slots whose workers take `cost` ticks per chunk; `deaths` = chunk seqs whose
    first try kills the worker."""

    def __init__(self, n, deaths=()):
        self.n, self.deaths, self.now = n, set(deaths), 0
        self.running = {}  # slot -> (finish tick, chunk)
        self.log = []  # (slot, seq, attempt)
        self.started = [0] * n

    def submit(self, slot, chunk):
        self.log.append((slot, chunk.seq, chunk.attempt))
        self.running[slot] = (self.now + sum(it.cost for it in chunk.items), chunk)

    def wait(self, busy):
        t = min(self.running[s][0] for s in busy)
        self.now = t
        out = []
        for s in busy:
            if self.running[s][0] == t:
                _, c = self.running.pop(s)
                if c.seq in self.deaths and c.attempt == 1:
                    out.append((s, "died", "killed"))
                else:
                    out.append((s, "rows", [{"id": it.utt_id} for it in c.items]))
        return out


def test_schedule_is_a_shared_queue_longest_first_with_retries():
    from halle_bench.executors import schedule
    from halle_bench.work import Item, make_chunks

    items = [Item("a", "long", "k0", 10.0)] + [Item("a", f"s{i}", f"k{i}", 1.0) for i in range(1, 11)]
    chunks = make_chunks("generate", [("a", 1, items[::-1])])
    assert chunks[0].items[0].utt_id == "long" and [c.seq for c in chunks] == list(range(11))
    slots = _FakeSlots(2)
    done = [c.seq for c, rows, err in schedule(slots, chunks)]
    assert sorted(done) == list(range(11))
    # The long item went first; the other worker took all ten short ones meanwhile,
    # so both finish at tick 10 (a fixed half/half slice would take 15).
    assert slots.now == 10 and sum(1 for s, _, _ in slots.log if s == 1) == 10
    # A chunk whose worker died is retried, on the other worker when it is free.
    slots = _FakeSlots(2, deaths={3})
    res = list(schedule(slots, chunks))
    assert sorted(c.seq for c, _, err in res if err is None) == list(range(11))
    tries = [(s, a) for s, seq, a in slots.log if seq == 3]
    assert [a for _, a in tries] == [1, 2]
    # A chunk that kills every worker it meets ends as an error after MAX_ATTEMPTS tries.
    from halle_bench.work import MAX_ATTEMPTS

    class _Deadly(_FakeSlots):
        def wait(self, busy):
            out = super().wait(busy)
            return [(s, "died", "killed") if k == "rows" and self.log and any(
                seq == 0 for sl, seq, _ in self.log if sl == s) and rows[0]["id"] == "long" else (s, k, rows)
                for s, k, rows in out]

    res = list(schedule(_Deadly(2), chunks))
    bad = [(c.seq, c.attempt, err) for c, _, err in res if err]
    assert bad == [(0, MAX_ATTEMPTS, bad[0][2])] and "died" in bad[0][2]
