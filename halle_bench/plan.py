"""The plan of a run: which utterances, which systems, which scorers, on which device.

`plan_run` is where everything that can be wrong with a config or manifest fails
(exit 2), before any work. The stages (`generation`, `scoring`, `aggregate`), the
executors and `provenance` all import `Plan` from here, so none of them imports the
runner (which imports them).

`Plan.spec` keeps the arguments the plan was made from, so an executor can rebuild
the same plan in another process (a Ray actor) instead of pickling loaded systems.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio import sha256_file
from .config import Config, _line_of
from .data.utterance import Utterance
from .errors import ConfigError, MissingModelError
from .systems.base import System, build_system

__all__ = ["Plan", "RecordedScorer", "RecordedSystem", "plan_from_files", "plan_run", "resolve_device"]


@dataclass
class Plan:
    config: Config
    out: Path
    utterances: list[Utterance]
    systems: list[System]
    scorers: dict[str, Any]
    device: str
    force: bool = False
    # Where the scorers run, when not on `device` (e.g. GPUs generate, CPUs score).
    score_device: str | None = None
    # The plan_run arguments (systems, metrics, limit, device, force): enough to
    # rebuild this plan elsewhere from `config` and `out`.
    spec: dict[str, Any] = field(default_factory=dict)
    _sha_cache: dict[str, str] = field(default_factory=dict)
    _by_id: dict[str, Utterance] = field(default_factory=dict)

    def stage_device(self, stage: str) -> str:
        """The device a stage's models load on ("generate" | "score")."""
        return (self.score_device or self.device) if stage == "score" else self.device

    def system(self, name: str) -> System:
        """The planned system called `name` (chunks name their model, workers look it up)."""
        for s in self.systems:
            if s.name == name:
                return s
        raise KeyError(f"no planned system {name!r}")

    def utterance(self, utt_id: str) -> Utterance:
        if len(self._by_id) != len(self.utterances):
            self._by_id = {u.id: u for u in self.utterances}
        return self._by_id[utt_id]

    def forget_audio_hashes(self) -> None:
        """Drop the cached sha256 of generated audio (another process may have rewritten it)."""
        audio = str(self.out / "audio")
        for k in [k for k in self._sha_cache if k.startswith(audio)]:
            del self._sha_cache[k]

    def file_sha(self, path: Path | None) -> str | None:
        if path is None or not Path(path).exists():
            return None
        k = str(path)
        if k not in self._sha_cache:
            self._sha_cache[k] = sha256_file(path)
        return self._sha_cache[k]


def resolve_device(device: str) -> str:
    if device == "auto":
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"
    if device.startswith("cuda"):
        try:
            import torch

            ok = torch.cuda.is_available()
        except ImportError:
            ok = False
        if not ok:
            raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return device


def plan_run(
    config: Config,
    out: Path,
    systems: list[str] | None = None,
    metrics: list[str] | None = None,
    limit: int | None = None,
    device: str | None = None,
    force: bool = False,
    score_device: str | None = None,
) -> Plan:
    """Everything that can be wrong with the config or manifest fails here, before work."""
    from .metrics.base import build_scorer

    out = Path(out)
    _import_plugins(config)
    utts = _utterances(config, out, limit)

    sys_cfgs = list(config.systems)
    if systems:
        known = {s.name for s in sys_cfgs}
        unknown = [s for s in systems if s not in known]
        if unknown:
            raise ConfigError(f"--systems: unknown system(s) {unknown}; the config has {sorted(known)}")
        sys_cfgs = [s for s in sys_cfgs if s.name in systems]
    built: list[System] = []
    for sc in sys_cfgs:
        try:
            built.append(build_system(sc.name, sc.table, config.base_dir))
        except ConfigError as e:
            if e.path is None:
                raise ConfigError(e.message, config.path, sc.line) from None
            raise

    met = dict(config.metrics)
    if metrics:
        unknown = [m for m in metrics if m not in met]
        for m in unknown:
            met[m] = {}  # a metric asked for on the command line but not configured: defaults
        met = {m: met[m] for m in metrics}
    scorers: dict[str, Any] = {}
    for name, table in met.items():
        try:
            scorers[name] = build_scorer(name, table)
        except ConfigError as e:
            raise ConfigError(f"[metrics] {name}: {e.message}", config.path, _metric_line(config, name)) from None
    # Preflight: every model file must be present (and match its sha256) before work.
    for name, sc in scorers.items():
        try:
            sc.models()
        except MissingModelError as e:
            raise ConfigError(f"[metrics] {name}: {e}", config.path, _metric_line(config, name)) from None
    spec = {"systems": systems, "metrics": metrics, "limit": limit, "device": device, "force": force,
            "score_device": score_device}
    return Plan(config=config, out=out, utterances=utts, systems=built, scorers=scorers,
                device=resolve_device(device or config.run.device), force=force, spec=spec,
                score_device=resolve_device(score_device) if score_device else None)


def _import_plugins(config: Config) -> None:
    for mod in config.run.plugins:
        try:
            importlib.import_module(mod)
        except Exception as e:
            raise ConfigError(f"[run] plugins: cannot import {mod!r}: {type(e).__name__}: {e}", config.path,
                              _line_of(config.text, "plugins")) from None


def _utterances(config: Config, out: Path, limit: int | None) -> list[Utterance]:
    """The manifest's utterances, limited, bucketed, with their prompts (cut into `out`)."""
    from .data import apply_prompt_policy, assign_buckets, read_manifest

    ds = config.dataset
    utts = read_manifest(ds.manifest, ds.format)
    if not utts:
        raise ConfigError("the manifest has no utterances", ds.manifest)
    lim = limit if limit is not None else ds.limit
    if lim is not None:
        utts = utts[:lim]
    utts = assign_buckets(utts, ds.buckets)
    return apply_prompt_policy(utts, ds.prompt, ds.prompt_seconds, out.resolve(), config.run.seed)


@dataclass(frozen=True)
class RecordedSystem:
    """A system as the run directory knows it: name and kind, nothing loaded or built
    (aggregation needs no more; its program, checkpoint or module may be absent)."""

    name: str
    kind: str
    timed: bool = True


@dataclass(frozen=True)
class RecordedScorer:
    """A scorer as env.json recorded it: its identity (name, version, settings, model
    sha256) and which inputs its keys hash. Enough to recompute the key every current
    score row must carry, and to read its settings, on a machine without its models."""

    name: str
    identity: dict[str, Any]
    needs: frozenset = frozenset()
    uses: frozenset = frozenset()

    @property
    def version(self) -> str:
        return self.identity.get("version")

    def settings(self) -> dict[str, Any]:
        return dict(self.identity.get("settings") or {})


def plan_from_files(out: str | Path, config: Config | None = None) -> Plan:
    """The plan of an existing run directory from its files alone, for aggregating,
    reporting and checking where the systems and scorer models are not installed.

    Reads `<out>/config.toml` (or `config`) and `<out>/env.json` (the scorers'
    identities and inputs, the --systems / --metrics / --limit of the run, written by
    `provenance.prepare`); the manifest (and the audio it names, for the prompt cuts
    and the hashes in the keys) must still be readable. Nothing is built or loaded."""
    import json

    from .config import load_config

    out = Path(out)
    try:
        env = json.loads((out / "env.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"not a run directory (env.json unreadable: {e})", out) from None
    if "scorer_inputs" not in env or "plan" not in env:
        raise ConfigError("env.json was written by an older halle-bench (no scorer_inputs): run `halle-bench run` "
                          "over it once where its models are installed", out / "env.json")
    config = config or load_config(out / "config.toml")
    _import_plugins(config)
    spec = dict(env["plan"])
    utts = _utterances(config, out, spec.get("limit"))
    chosen = spec.get("systems")
    systems = [RecordedSystem(s.name, str(s.table.get("kind"))) for s in config.systems
               if not chosen or s.name in chosen]
    scorers: dict[str, Any] = {}
    for name, ident in env.get("scorers", {}).items():
        io = env["scorer_inputs"].get(name, {})
        scorers[name] = RecordedScorer(name, ident, frozenset(io.get("needs", ())), frozenset(io.get("uses", ())))
    return Plan(config=config, out=out, utterances=utts, systems=systems, scorers=scorers,
                device=str(env.get("device", "cpu")), spec=spec)


def _metric_line(config: Config, name: str) -> int | None:
    return _line_of(config.text, name, "[metrics]")
