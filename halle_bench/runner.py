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
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .audio import SCORING_SR, load_audio, save_audio, sha256_file
from .config import Config
from .data.utterance import Utterance
from .errors import ConfigError, HalleBenchError, MissingModelError, UtteranceError
from .progress import NullReporter, Reporter
from .store import JsonlTable, cache_key
from .systems.base import SynthesisRequest, SynthesisResult, System, build_system

GROUND_TRUTH_KIND = "ground-truth"


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


def utterance_seed(run_seed: int, utt_id: str) -> int:
    h = hashlib.sha256(f"{run_seed}:{utt_id}".encode()).hexdigest()
    return int(h[:8], 16)


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


# ------------------------------------------------------------------------ generate


def _request(plan: Plan, u: Utterance) -> SynthesisRequest:
    return SynthesisRequest(
        utt_id=u.id,
        text=u.text,
        prompt_audio=u.prompt_audio,
        prompt_text=u.prompt_text,
        seed=utterance_seed(plan.config.run.seed, u.id),
        reference_audio=u.audio,
        prompt_start=u.prompt_start,
        prompt_end=u.prompt_end,
        workdir=(plan.out / "work").resolve(),
    )


def generation_key(plan: Plan, system: System, u: Utterance, req: SynthesisRequest) -> str:
    fp = getattr(system, "item_fingerprint", None)
    return cache_key({
        "system": system.cache_key(),
        "item": fp(req) if fp else "",
        "text": u.text,
        "prompt": plan.file_sha(u.prompt_audio),
        "prompt_text": u.prompt_text,
        "prompt_cut": [u.prompt_start, u.prompt_end],
        "seed": req.seed,
    })


def wav_path(out: Path, system: str, utt_id: str) -> Path:
    return out / "audio" / system / f"{utt_id}.wav"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _validate_output(res: SynthesisResult) -> str | None:
    if res.error:
        return res.error
    if res.audio is None or res.sample_rate is None:
        return "system returned no audio"
    x = np.asarray(res.audio)
    if x.ndim != 1:
        x = x.reshape(-1) if x.size == max(x.shape, default=0) else None
        if x is None:
            return f"system returned audio of shape {np.asarray(res.audio).shape}, expected mono"
    if x.size == 0:
        return "system returned empty audio"
    if not np.all(np.isfinite(x)):
        return "system returned NaN/inf samples"
    from .audio import is_silent

    if is_silent(x.astype(np.float32)):
        return "system returned silence"
    return None


def generate(plan: Plan, reporter: Reporter) -> int:
    table = JsonlTable(plan.out / "generation.jsonl")
    done = table.latest(("system", "id"))
    n_new = 0
    try:
        for system in plan.systems:
            todo = []
            for u in plan.utterances:
                req = _request(plan, u)
                key = generation_key(plan, system, u, req)
                prev = done.get((system.name, u.id))
                wp = wav_path(plan.out, system.name, u.id)
                if (not plan.force and prev and prev.get("key") == key and prev.get("status") == "ok"
                        and wp.exists() and plan.file_sha(wp) == prev.get("audio_sha256")):
                    continue
                todo.append((u, req, key))
            if not todo:
                reporter.log(f"generate {system.name}: all {len(plan.utterances)} cached")
                continue
            n_new += _generate_system(plan, system, todo, table, reporter)
    finally:
        table.close()
    return n_new


def _generate_system(plan: Plan, system: System, todo: list, table: JsonlTable, reporter: Reporter) -> int:
    base = {"system": system.name, "device": plan.device}

    def fail(u: Utterance, key: str, msg: str) -> None:
        table.append({**base, "id": u.id, "key": key, "status": "failed", "error": msg,
                      "audio_seconds": None, "wall_seconds": None, "rtf": None})

    # Inputs that no system can use fail before the system is even loaded.
    runnable = []
    for u, req, key in todo:
        if not u.text or not u.text.strip():
            fail(u, key, "empty text")
        else:
            runnable.append((u, req, key))
    if not runnable:
        return len(todo)
    try:
        system.load(plan.device)
        if plan.config.run.warmup:
            system.warmup()
    except Exception as e:  # a system that cannot load fails all its items, the run goes on
        msg = f"system failed to load: {type(e).__name__}: {e}"
        reporter.log(f"generate {system.name}: {msg}")
        for u, _, key in runnable:
            fail(u, key, msg)
        return len(todo)
    bs = max(1, int(getattr(system, "batch_size", 1) or 1))
    with reporter.stage(f"generate {system.name}", len(runnable)) as st:
        for i in range(0, len(runnable), bs):
            chunk = runnable[i : i + bs]
            _sync(plan.device)
            t0 = time.perf_counter()
            try:
                results = _synthesize_checked(system, [r for _, r, _ in chunk])
            except Exception as e:
                if len(chunk) == 1:
                    results = [SynthesisResult(utt_id=chunk[0][1].utt_id, error=f"{type(e).__name__}: {e}")]
                else:
                    # One bad item must not fail its batch-mates: retry them one by one
                    # (timed individually, so their RTF is still per item).
                    results = []
                    for _, r, _ in chunk:
                        t1 = time.perf_counter()
                        try:
                            res = _synthesize_checked(system, [r])[0]
                        except Exception as e1:
                            res = SynthesisResult(utt_id=r.utt_id, error=f"{type(e1).__name__}: {e1}")
                        _sync(plan.device)
                        if res.wall_seconds is None:
                            res.wall_seconds = time.perf_counter() - t1
                        results.append(res)
            _sync(plan.device)
            wall = time.perf_counter() - t0
            by_id = {r.utt_id: r for r in results}
            for u, req, key in chunk:
                res = by_id.get(u.id) or SynthesisResult(utt_id=u.id, error="system returned no result for this id")
                err = _validate_output(res)
                if err:
                    fail(u, key, err)
                    st.advance()
                    continue
                x = np.asarray(res.audio, dtype=np.float32).reshape(-1)
                wp = wav_path(plan.out, system.name, u.id)
                save_audio(wp, x, int(res.sample_rate))
                secs = x.size / float(res.sample_rate)
                w = res.wall_seconds if res.wall_seconds is not None else wall / len(chunk)
                plan._sha_cache.pop(str(wp), None)
                table.append({**base, "id": u.id, "key": key, "status": "ok", "error": None,
                              "audio_seconds": secs, "wall_seconds": w, "rtf": w / secs if secs else None,
                              "sample_rate": int(res.sample_rate), "batch_size": len(chunk),
                              "audio_sha256": plan.file_sha(wp), "info": res.info})
                st.advance()
    try:
        system.close()
    except Exception as e:  # closing must not lose the rows already written
        reporter.log(f"generate {system.name}: close failed: {e}")
    return len(todo)


def _synthesize_checked(system: System, reqs: list[SynthesisRequest]) -> list[SynthesisResult]:
    results = system.synthesize(reqs)
    if len(results) != len(reqs):
        raise HalleBenchError(f"system returned {len(results)} results for {len(reqs)} requests")
    return results


# --------------------------------------------------------------------------- score


class _AudioCache:
    """16 kHz arrays of references and prompts, shared by all scorers of a run."""

    def __init__(self, max_items: int = 64):
        self.d: dict[tuple, np.ndarray] = {}
        self.max_items = max_items

    def get(self, path: Path, start: float | None = None, end: float | None = None, cut: bool = False) -> np.ndarray:
        k = (str(path), start, end, cut)
        if k not in self.d:
            x, sr, _ = load_audio(path, SCORING_SR)
            if cut and end is not None:  # remove [start, end) (the prompt cut from it)
                a = int(round((start or 0.0) * sr))
                b = int(round(end * sr))
                x = np.concatenate([x[:a], x[b:]])
            if len(self.d) >= self.max_items:
                self.d.pop(next(iter(self.d)))
            self.d[k] = x
        return self.d[k]


def scorer_identity(scorer: Any) -> dict[str, Any]:
    return {
        "name": scorer.name,
        "version": scorer.version,
        "settings": scorer.settings(),
        "models": [[m.name, m.sha256] for m in scorer.models()],
    }


def score_key(plan: Plan, ident: dict, system: System, u: Utterance, audio_sha: str, needs: frozenset) -> str:
    return cache_key({
        "scorer": ident,
        "audio": audio_sha,
        "text": u.text if "text" in needs else None,
        "reference": plan.file_sha(u.audio) if "reference" in needs else None,
        "prompt": plan.file_sha(u.prompt_audio) if "prompt" in needs else None,
        "prompt_text": u.prompt_text if "prompt" in needs else None,
        "prompt_cut": [u.prompt_start, u.prompt_end, u.prompt_from_reference],
        "gt": system.kind == GROUND_TRUTH_KIND,
    })


def _build_item(plan: Plan, cache: _AudioCache, system: System, u: Utterance, needs: frozenset):
    from .metrics.base import ScoreItem

    is_gt = system.kind == GROUND_TRUTH_KIND
    x, _, _ = load_audio(wav_path(plan.out, system.name, u.id), SCORING_SR)
    if is_gt and u.prompt_from_reference and "prompt" in needs and u.prompt_end is not None:
        # The prompt was cut from this very audio: comparing it with itself would
        # inflate similarity, so the ground-truth row is scored without that part.
        a, b = int(round((u.prompt_start or 0) * SCORING_SR)), int(round(u.prompt_end * SCORING_SR))
        x = np.concatenate([x[:a], x[b:]])
    ref = None
    if "reference" in needs and u.audio is not None and Path(u.audio).exists():
        ref = cache.get(u.audio, u.prompt_start, u.prompt_end, cut=u.prompt_from_reference)
    prompt = None
    if "prompt" in needs and u.prompt_audio is not None and Path(u.prompt_audio).exists():
        prompt = cache.get(u.prompt_audio)
    return ScoreItem(system=system.name, utt_id=u.id, audio=x, sample_rate=SCORING_SR, text=u.text,
                     reference=ref, prompt=prompt, prompt_text=u.prompt_text, is_ground_truth=is_gt,
                     duration_ref=u.duration if u.duration_source in ("audio", "manifest") else None)


def score(plan: Plan, reporter: Reporter) -> tuple[int, dict[tuple, str]]:
    """Returns (items scored now, {(system, id, scorer): current key})."""
    from .metrics.base import ScoreOutput

    gen = JsonlTable(plan.out / "generation.jsonl").latest(("system", "id"))
    table = JsonlTable(plan.out / "scores.jsonl")
    done = table.latest(("system", "id", "scorer"))
    keys: dict[tuple, str] = {}
    cache = _AudioCache()
    n_new = 0
    try:
        for sname, scorer in plan.scorers.items():
            ident = scorer_identity(scorer)
            needs = frozenset(getattr(scorer, "needs", frozenset()))
            todo = []
            for system in plan.systems:
                for u in plan.utterances:
                    g = gen.get((system.name, u.id))
                    if not g or g.get("status") != "ok":
                        continue
                    k = score_key(plan, ident, system, u, g.get("audio_sha256"), needs)
                    keys[(system.name, u.id, sname)] = k
                    prev = done.get((system.name, u.id, sname))
                    if not plan.force and prev and prev.get("key") == k and not prev.get("error"):
                        continue
                    todo.append((system, u, k, g.get("audio_seconds") or 0.0))
            if not todo:
                continue
            # Similar lengths together: less padding for batched models; the order is
            # deterministic and scorers are batch-invariant, so numbers do not depend on it.
            todo.sort(key=lambda t: (t[3], t[0].name, t[1].id))
            scorer.load(plan.device)
            bs = max(1, int(getattr(scorer, "batch_size", 1) or 1))
            with reporter.stage(f"score {sname}", len(todo)) as st:
                for i in range(0, len(todo), bs):
                    chunk = todo[i : i + bs]
                    items, idx, outs = [], [], [None] * len(chunk)
                    for j, (system, u, _, _) in enumerate(chunk):
                        try:
                            items.append(_build_item(plan, cache, system, u, needs))
                            idx.append(j)
                        except (UtteranceError, OSError) as e:
                            outs[j] = ScoreOutput(error=str(e))
                    if items:
                        try:
                            res = scorer.score(items)
                            if len(res) != len(items):
                                raise HalleBenchError(f"scorer returned {len(res)} outputs for {len(items)} items")
                        except Exception as e:
                            res = [ScoreOutput(error=f"{type(e).__name__}: {e}")] * len(items)
                        for j, r in zip(idx, res):
                            outs[j] = r
                    for (system, u, k, _), o in zip(chunk, outs):
                        table.append({"system": system.name, "id": u.id, "scorer": sname, "version": scorer.version,
                                      "key": k, "values": o.values if o.error is None else {}, "error": o.error})
                        st.advance()
                    n_new += len(chunk)
            scorer.close()
    finally:
        table.close()
    return n_new, keys


# ------------------------------------------------------------------------- env.json


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
    env = {
        "halle_bench": _versions().get("halle-bench"),
        "git_revision": _git_revision(),
        "versions": _versions(),
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
