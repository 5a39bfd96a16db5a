"""The run: plan -> generate -> score -> aggregate, as stages over the run directory.

Each stage reads and appends files of the run directory (architecture.md), so any
stage can be re-run alone and a killed run resumes where it stopped:

- `generation.jsonl`: one row per (system, utterance); the wav is written atomically
  *before* its row, so a row always points at a complete file.
- `scores.jsonl`: one row per (system, utterance, scorer).
Every row carries a cache key that hashes everything that changes its result; a
re-run skips rows whose key matches (and whose status is ok), recomputes the rest,
and `force=True` recomputes all. Failed rows are retried on the next run: a
deterministic failure fails again the same way, a transient one may recover.

Systems and scorer models are loaded once per stage, never per item. Scoring is
organised by scorer: every system's audio goes through one loaded model in batches.

Seeds: each utterance's synthesis seed is derived from the run seed and the
utterance id (not its position), so adding or removing utterances never changes
the seed, hence the output, of the others.

Modules: this one plans and runs; the stages are `generation`, `scoring`,
`aggregate`; `provenance` writes env.json and the resolved config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio import sha256_file
from .config import Config
from .data.utterance import Utterance
from .errors import ConfigError, MissingModelError
from .generation import generate, generation_key, utterance_seed, wav_path
from .progress import NullReporter, Reporter
from .provenance import write_env, write_resolved_config
from .scoring import GROUND_TRUTH_KIND, score, score_key, scorer_identity
from .systems.base import System, build_system

# Re-exported: the stages' public functions (tests and tools import them from here).
__all__ = ["GROUND_TRUTH_KIND", "Plan", "RunSummary", "generate", "generation_key", "plan_run", "resolve_device",
           "run", "score", "score_key", "scorer_identity", "utterance_seed", "wav_path", "write_env",
           "write_resolved_config"]


@dataclass
class Plan:
    config: Config
    out: Path
    utterances: list[Utterance]
    systems: list[System]
    scorers: dict[str, Any]
    device: str
    force: bool = False
    _sha_cache: dict[str, str] = field(default_factory=dict)

    def file_sha(self, path: Path | None) -> str | None:
        if path is None or not Path(path).exists():
            return None
        k = str(path)
        if k not in self._sha_cache:
            self._sha_cache[k] = sha256_file(path)
        return self._sha_cache[k]


@dataclass
class RunSummary:
    out: Path
    n_items: int  # (system, utterance) pairs
    n_failed: int
    failed_fraction: float
    max_failed_fraction: float
    generated: int  # items synthesised in this invocation (not cached)
    scored: int
    leaderboard: Path
    utterances_csv: Path
    failures: list[dict[str, Any]]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed_fraction > self.max_failed_fraction + 1e-12 else 0


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


# ---------------------------------------------------------------------------- plan


def plan_run(
    config: Config,
    out: Path,
    systems: list[str] | None = None,
    metrics: list[str] | None = None,
    limit: int | None = None,
    device: str | None = None,
    force: bool = False,
) -> Plan:
    """Everything that can be wrong with the config or manifest fails here, before work."""
    from .data import apply_prompt_policy, assign_buckets, read_manifest
    from .metrics.base import build_scorer

    out = Path(out)
    import importlib

    for mod in config.run.plugins:
        try:
            importlib.import_module(mod)
        except Exception as e:
            raise ConfigError(f"[run] plugins: cannot import {mod!r}: {type(e).__name__}: {e}", config.path,
                              _line_of_key(config, "plugins")) from None
    ds = config.dataset
    utts = read_manifest(ds.manifest, ds.format)
    if not utts:
        raise ConfigError("the manifest has no utterances", ds.manifest)
    lim = limit if limit is not None else ds.limit
    if lim is not None:
        utts = utts[:lim]
    utts = assign_buckets(utts, ds.buckets)
    utts = apply_prompt_policy(utts, ds.prompt, ds.prompt_seconds, out.resolve(), config.run.seed)

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
    return Plan(config=config, out=out, utterances=utts, systems=built, scorers=scorers,
                device=resolve_device(device or config.run.device), force=force)


def _line_of_key(config: Config, key: str) -> int | None:
    from .config import _line_of

    return _line_of(config.text, key)


def _metric_line(config: Config, name: str) -> int | None:
    from .config import _line_of

    return _line_of(config.text, name, "[metrics]")


# ----------------------------------------------------------------------------- run


def run(
    config: Config,
    out: str | Path,
    systems: list[str] | None = None,
    metrics: list[str] | None = None,
    limit: int | None = None,
    device: str | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
) -> RunSummary:
    """Plan, generate, score and aggregate. Raises ConfigError before any work."""
    from .aggregate import aggregate

    reporter = reporter or NullReporter()
    out = Path(out)
    plan = plan_run(config, out, systems, metrics, limit, device, force)
    out.mkdir(parents=True, exist_ok=True)
    write_resolved_config(plan)
    write_env(plan)
    reporter.log(f"{len(plan.utterances)} utterances x {len(plan.systems)} systems, "
                 f"metrics: {', '.join(plan.scorers) or 'none'}, device {plan.device}, out {out}")
    n_gen = generate(plan, reporter)
    n_scored, keys = score(plan, reporter)
    result = aggregate(plan, keys)
    return RunSummary(out=out, n_items=result.n_items, n_failed=result.n_failed,
                      failed_fraction=result.n_failed / result.n_items if result.n_items else 0.0,
                      max_failed_fraction=config.run.max_failed_fraction, generated=n_gen, scored=n_scored,
                      leaderboard=result.leaderboard_path, utterances_csv=result.utterances_path,
                      failures=result.failures)
