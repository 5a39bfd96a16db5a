"""Provenance of a run: env.json (versions, device, seeds, git revision, models with
sha256) and the resolved config.toml, written at the start of every run."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .scoring import scorer_identity

if TYPE_CHECKING:
    from .runner import Plan


def _git_revision() -> str | None:
    try:
        here = Path(__file__).resolve().parent.parent
        r = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if r.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain"], capture_output=True, text=True, timeout=5)
            return r.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def _versions() -> dict[str, str]:
    from importlib import metadata

    v = {"python": sys.version.split()[0]}
    for pkg in ("halle-bench", "torch", "numpy", "openai-whisper", "jiwer", "speechbrain", "resemblyzer",
                "speechmos", "onnxruntime", "pesq", "pystoi", "encodec", "phonemizer", "pandas", "scipy"):
        try:
            v[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return v


def write_env(plan: Plan) -> Path:
    models = []
    for name, sc in plan.scorers.items():
        models += [{"scorer": name, "name": m.name, "sha256": m.sha256, "path": m.path} for m in sc.models()]
    for s in plan.systems:
        models += [{"system": s.name, **m} for m in s.models()]
    versions = _versions()
    env = {
        "halle_bench": versions.get("halle-bench"),
        "git_revision": _git_revision(),
        "versions": versions,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "device": plan.device,
        "seed": plan.config.run.seed,
        "utterance_seeds": "sha256(f'{seed}:{utt_id}')[:8] as int",
        "models": models,
        "scorers": {n: scorer_identity(s) for n, s in plan.scorers.items()},
        "systems": {s.name: s.cache_key() for s in plan.systems},
        "manifest": str(plan.config.dataset.manifest),
        "n_utterances": len(plan.utterances),
    }
    p = plan.out / "env.json"
    p.write_text(json.dumps(env, indent=2, sort_keys=True, default=str))
    return p


def write_resolved_config(plan: Plan) -> Path:
    import tomli_w

    p = plan.out / "config.toml"
    p.write_text(tomli_w.dumps(plan.config.to_dict()))
    return p
