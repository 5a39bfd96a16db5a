"""Provenance of a run: env.json (versions, device, seeds, git revision, models with
sha256) and the resolved config.toml.

`prepare(plan)` is the one-time prepare step of a run directory: it writes both files
under an exclusive lock, atomically, and only when their content changes, so several
shards or workers starting at once neither race nor rewrite each other's files (the
prompt cuts are written by the plan itself, atomically and deterministically)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .scoring import scorer_identity
from .store import atomic_write_text, file_lock

if TYPE_CHECKING:
    from .plan import Plan

__all__ = ["env_dict", "prepare", "write_env", "write_resolved_config"]


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


def env_dict(plan: Plan) -> dict:
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
        # What else aggregation needs to recompute the score keys without the models
        # (`plan.plan_from_files`): the inputs each scorer's key hashes, and the plan's
        # subset of systems, metrics and utterances.
        "scorer_inputs": {n: {"needs": sorted(getattr(s, "needs", ())), "uses": sorted(getattr(s, "uses", ()))}
                          for n, s in plan.scorers.items()},
        "plan": {k: plan.spec.get(k) for k in ("systems", "metrics", "limit")},
        "systems": {s.name: s.cache_key() for s in plan.systems},
        "manifest": str(plan.config.dataset.manifest),
        "n_utterances": len(plan.utterances),
    }
    return env


def _write_if_changed(p: Path, text: str) -> bool:
    try:
        if p.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(p, text)
    return True


def write_env(plan: Plan) -> Path:
    p = plan.out / "env.json"
    _write_if_changed(p, json.dumps(env_dict(plan), indent=2, sort_keys=True, default=str))
    return p


def write_resolved_config(plan: Plan) -> Path:
    import tomli_w

    p = plan.out / "config.toml"
    _write_if_changed(p, tomli_w.dumps(plan.config.to_dict()))
    return p


def prepare(plan: Plan) -> None:
    """The run directory's one-time set-up (config.toml, env.json); idempotent and safe
    when several processes call it at once."""
    plan.out.mkdir(parents=True, exist_ok=True)
    with file_lock(plan.out / ".prepare.lock"):
        write_resolved_config(plan)
        write_env(plan)
