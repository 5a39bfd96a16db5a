"""scripts/gpu-check.sh: argument errors, and its whole path as a CPU dry run (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def test_bad_arguments_exit_2():
    p = _run("--no-such-flag")
    assert p.returncode == 2 and "unknown argument --no-such-flag" in p.stderr


def test_cuda_without_a_gpu_exits_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    p = _run("--device", "cuda", "--out", str(tmp_path))
    assert p.returncode == 2 and "CUDA is not available" in p.stderr
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
def test_cpu_quick_dry_run_writes_every_result(tmp_path):
    p = _run("--device", "cpu", "--quick", "--out", str(tmp_path), timeout=900)
    out = tmp_path / "cpu-quick"
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    scoring = json.loads((out / "scoring.json").read_text())
    assert set(scoring["scorers"]) == {"wer", "quality", "longform"}
    assert all(v["audio_s_per_s"] > 0 and v["errors"] == 0 for v in scoring["scorers"].values())
    rtf = json.loads((out / "rtf.json").read_text())
    assert {(r["model"], r["seconds"]) for r in rtf["rows"]} == {(m, s) for m in ("valle", "halle") for s in (2, 4)}
    assert all(r["ar_steps"] > 0 and r["rtf"] > 0 for r in rtf["rows"])
    train = json.loads((out / "train.json").read_text())
    assert [r["model"] for r in train["rows"]] == ["valle", "halle"]
    summary = (out / "summary.md").read_text()
    assert "# gpu-check: cpu" in summary and "| halle |" in summary and "ok in" in summary
