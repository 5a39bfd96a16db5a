"""Data-parallel training under `torchrun --nproc_per_node 2` (gloo, CPU) matches one process
with the same global batch: same losses and weights after a few steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run(out: Path, nproc: int, bs: int, accum: int, max_frames: int, steps: int = 4) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
              if nproc > 1 else [sys.executable])
    r = subprocess.run([*launch, str(WORKER), str(out), str(bs), str(accum), str(max_frames), str(steps)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return {"weights": load_file(str(out / "final.safetensors")), **json.loads((out / "history.json").read_text())}


def _same(a: dict, b: dict) -> None:
    la = [h["loss"] for h in a["history"]]
    lb = [h["loss"] for h in b["history"]]
    assert len(la) == len(lb) == 4
    assert max(abs(x - y) for x, y in zip(la, lb)) < 1e-4, (la, lb)
    for k, t in a["weights"].items():
        u = b["weights"][k]
        if k.endswith("qkv.bias"):
            # the attention's key bias (the middle third) has no true gradient (softmax ignores a
            # constant per query): its gradient is float noise that differs with the summation
            # order and Adam scales it up to ~lr per step, so it is left out; query and value
            # biases are compared like every other weight
            d = t.numel() // 3
            t, u = torch.cat([t[:d], t[2 * d:]]), torch.cat([u[:d], u[2 * d:]])
        assert torch.allclose(t, u, atol=1e-5, rtol=1e-4), k


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    one = _run(tmp_path / "one", 1, bs=4, accum=1, max_frames=0)
    two = _run(tmp_path / "two", 2, bs=2, accum=1, max_frames=0)
    assert one["world"] == 1 and two["world"] == 2
    _same(one, two)
    # the losses moved: the comparison is not between two untrained models
    assert one["history"][-1]["loss"] < one["history"][0]["loss"]


@pytest.mark.slow
def test_two_processes_with_a_frame_budget_and_accumulation(tmp_path):
    # budget 24 frames per device x 2 devices == 48 frames in one process; accumulation 2 both ways
    one = _run(tmp_path / "one", 1, bs=1, accum=2, max_frames=48)
    two = _run(tmp_path / "two", 2, bs=1, accum=2, max_frames=24)
    _same(one, two)


def test_accumulation_equals_one_big_batch(tmp_path):
    one = _run(tmp_path / "big", 1, bs=4, accum=1, max_frames=0)
    acc = _run(tmp_path / "acc", 1, bs=2, accum=2, max_frames=0)
    # micro-batches [p0 p1] + [p2 p3] vs [p0 .. p3]: same update, not the same batch plan though
    # (the plan is cut by batch size), so compare the first step only
    assert abs(one["history"][0]["loss"] - acc["history"][0]["loss"]) < 1e-5


@pytest.mark.slow
def test_halle_bench_train_under_torchrun_then_a_second_training_tokenises_nothing(tmp_path, speech):
    from halle_bench.audio import save_audio

    texts = {"a": "The quick brown fox jumps.", "b": "Hello there, how are you?", "c": "One two three four.",
             "d": "Seven eight nine ten."}
    with open(tmp_path / "m.jsonl", "w") as f:
        for uid, text in texts.items():
            save_audio(tmp_path / f"{uid}.wav", speech(text, sr=16000), 16000)
            f.write(json.dumps({"id": uid, "text": text, "audio": f"{uid}.wav"}) + "\n")
    body = '''model = "valle"
out = "OUT"
[data]
manifest = "m.jsonl"
tokens_dir = "tokens"
extract_batch = 2
[codec]
kind = "tiny"
fit_iters = 2
[model_config]
size = "tiny"
d_model = 32
n_heads = 2
n_layers = 1
d_ff = 64
[train]
steps = 2
batch_size = 1
warmup = 1
log_every = 1
'''
    (tmp_path / "two.toml").write_text(body.replace("OUT", "two"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "halle_bench", "train", "two.toml"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "on 2 processes" in r.stdout + r.stderr
    steps = json.loads((tmp_path / "two" / "config.json").read_text())["extra"]["step"]
    assert steps == {"ar": 2, "nar": 2}
    # another training (one process, another out and codec seed... same codec: same store) encodes nothing
    (tmp_path / "one.toml").write_text(body.replace("OUT", "one").replace('kind = "tiny"\n',
                                       'kind = "checkpoint"\ncheckpoint = "two/codec"\n').replace("fit_iters = 2\n", ""))
    r = subprocess.run([sys.executable, "-m", "halle_bench", "train", "one.toml"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "tokens: 0 encoded, 4 reused, 0 wavs hashed" in r.stdout + r.stderr
