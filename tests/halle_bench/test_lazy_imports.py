"""A scoring-only run (wavdir system, WER) must not import the model baselines: their
import (torch, the networks) was seconds of every such run's fixed cost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

PROBE = r"""
import json, sys
from pathlib import Path
from halle_bench.config import load_config
from halle_bench.plan import plan_run
plan_run(load_config(sys.argv[1]), Path(sys.argv[2]), metrics=["wer"])
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("halle_bench.baselines", "baselines", "transformers", "ray", "speechbrain")))))
"""


def _setup(tmp: Path, kind: str) -> Path:
    (tmp / "wav").mkdir()
    sf.write(tmp / "wav" / "u1.wav", np.zeros(16000, np.float32), 16000)
    (tmp / "m.jsonl").write_text(json.dumps({"id": "u1", "text": "hello there"}) + "\n")
    cfg = tmp / "bench.toml"
    cfg.write_text(f'[dataset]\nmanifest = "{tmp / "m.jsonl"}"\nformat = "jsonl"\n\n'
                   f'[[systems]]\nname = "s"\nkind = "{kind}"\npath = "{tmp / "wav"}"\n\n[metrics]\nwer = {{}}\n')
    return cfg


def _imported(cfg: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, str(cfg), str(out)], capture_output=True, text=True, timeout=300)


def test_wavdir_wer_plan_imports_no_baselines(tmp_path):
    p = _imported(_setup(tmp_path, "wavdir"), tmp_path / "out")
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == []


def test_unknown_kind_still_names_the_baseline_kinds(tmp_path):
    # the baselines are still loaded when the kind is not one of the harness's own
    p = _imported(_setup(tmp_path, "no-such-kind"), tmp_path / "out")
    assert p.returncode != 0
    assert "valle" in p.stderr and "wavdir" in p.stderr
