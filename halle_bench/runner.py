"""The run: plan -> generate -> score -> aggregate, as stages over the run directory.

Each stage reads and appends files of the run directory (architecture.md), so any
stage can be re-run alone and a killed run resumes where it stopped:

- `generation[.<writer>].jsonl`: one row per (system, utterance); the wav is written
  atomically *before* its row, so a row always points at a complete file.
- `scores[.<writer>].jsonl`: one row per (system, utterance, scorer).
Every row carries a cache key that hashes everything that changes its result; a
re-run skips rows whose key matches (and whose status is ok), recomputes the rest,
and `force=True` recomputes all. Failed rows are retried on the next run: a
deterministic failure fails again the same way, a transient one may recover.

Each stage is a map over chunks (`work.py`) through an executor (`executors`: this
process, a pool of processes, Ray actors): systems and scorer models are loaded once per
worker, never per item, and the driver writes the rows. Scoring is organised by
scorer: every system's audio goes through one loaded model in batches. An interrupt
(Ctrl-C, SIGTERM: `interrupts.py`) stops the workers and leaves the run resumable.

Seeds: each utterance's synthesis seed is derived from the run seed and the
utterance id (not its position), so adding or removing utterances never changes
the seed, hence the output, of the others.

Modules: `plan` plans; this one prepares the run directory and runs the stages
(`generation`, `scoring`) through an executor (`executors`: local, process, ray, and
`--shard K/N` slices), then `aggregate`s from the files alone; `provenance` writes
env.json and the resolved config. Old names (`Plan`, `plan_run`, ...) are re-exported here.

Scaling out: shards write their own JSONL files (`generation.<writer>.jsonl`) and
`store.read_latest` merges them by key. A shard does not aggregate (it sees only
its slice); a plain run over the same directory afterwards aggregates everything and
generates or scores nothing already done.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config
from .executors import Shard, make_executor, parse_shard
from .generation import GenerateStage, generate, generation_key, utterance_seed, wav_path
from .plan import Plan, plan_run, resolve_device
from .progress import NullReporter, Reporter
from .provenance import prepare, write_env, write_resolved_config
from .scoring import GROUND_TRUTH_KIND, ScoreStage, expected_keys, score, score_key, scorer_identity
from .store import read_latest
from .work import run_stage

# Re-exported: the stages' public functions (tests and tools import them from here).
__all__ = ["GROUND_TRUTH_KIND", "Plan", "RunSummary", "expected_keys", "generate", "generation_key", "plan_run",
           "resolve_device", "run", "score", "score_key", "scorer_identity", "utterance_seed", "wav_path",
           "write_env", "write_resolved_config"]


@dataclass
class RunSummary:
    out: Path
    n_items: int  # (system, utterance) pairs (of this shard's slice when sharded)
    n_failed: int
    failed_fraction: float
    max_failed_fraction: float
    generated: int  # items synthesised in this invocation (not cached)
    scored: int
    leaderboard: Path | None  # None for a shard: it does not aggregate
    utterances_csv: Path | None
    failures: list[dict[str, Any]]
    shard: Shard | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.failed_fraction > self.max_failed_fraction + 1e-12 else 0


def run(
    config: Config,
    out: str | Path,
    systems: list[str] | None = None,
    metrics: list[str] | None = None,
    limit: int | None = None,
    device: str | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    shard: str | Shard | None = None,
    score_device: str | None = None,
) -> RunSummary:
    """Plan, prepare, generate, score (each stage through the executor), aggregate.

    Raises ConfigError before any work. With `shard` ("K/N"), only that slice is
    worked on and nothing is aggregated (run again without `shard` to aggregate).
    An interrupt (KeyboardInterrupt, `interrupts.Interrupted`) propagates after the
    executor's workers are stopped; every row written so far stays, so a re-run resumes."""
    from .aggregate import aggregate
    from .data.validate import validate_plan

    reporter = reporter or NullReporter()
    out = Path(out)
    sh = parse_shard(shard) if isinstance(shard, str) else shard
    ex = make_executor(executor, workers, ray_address)
    plan = plan_run(config, out, systems, metrics, limit, device, force, score_device)
    validate_plan(plan, reporter)  # every data problem (file:line), exit 2, before anything is generated
    prepare(plan)
    reporter.log(f"{len(plan.utterances)} utterances x {len(plan.systems)} systems, "
                 f"metrics: {', '.join(plan.scorers) or 'none'}, device {plan.device}"
                 + (f" (scoring on {plan.score_device})" if plan.score_device else "") + f", out {out}"
                 + (f", shard {sh}" if sh else "") + (f", executor {ex.name}" if ex.name != "local" else ""))
    writer, select = (sh.writer, sh.keeps) if sh else (None, None)
    try:
        n_gen = run_stage(plan, GenerateStage(), ex, reporter, writer, select)
        plan.forget_audio_hashes()  # workers may have rewritten audio this process hashed
        n_scored = run_stage(plan, ScoreStage(), ex, reporter, writer, select)
    finally:
        ex.close()
    mff = config.run.max_failed_fraction
    if sh is not None:
        return _shard_summary(plan, sh, n_gen, n_scored, mff)
    result = aggregate(plan)
    return RunSummary(out=out, n_items=result.n_items, n_failed=result.n_failed,
                      failed_fraction=result.n_failed / result.n_items if result.n_items else 0.0,
                      max_failed_fraction=mff, generated=n_gen, scored=n_scored,
                      leaderboard=result.leaderboard_path, utterances_csv=result.utterances_path,
                      failures=result.failures)


def _shard_summary(plan: Plan, sh: Shard, n_gen: int, n_scored: int, mff: float) -> RunSummary:
    """Generation failures of this shard's slice (the exit code of a Slurm task)."""
    gen = read_latest(plan.out, "generation", ("system", "id"))
    failures = []
    n = 0
    for system in plan.systems:
        for u in plan.utterances:
            if not sh.keeps(system.name, u.id):
                continue
            n += 1
            g = gen.get((system.name, u.id)) or {"status": "failed", "error": "not generated"}
            if g.get("status") != "ok":
                failures.append({"system": system.name, "id": u.id, "bucket": u.bucket, "error": g.get("error")})
    return RunSummary(out=plan.out, n_items=n, n_failed=len(failures), failed_fraction=len(failures) / n if n else 0.0,
                      max_failed_fraction=mff, generated=n_gen, scored=n_scored, leaderboard=None,
                      utterances_csv=None, failures=failures, shard=sh)
