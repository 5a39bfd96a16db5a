"""Stage 1 of a run: every system speaks every utterance (see runner.py).

`GenerateStage` is this stage as chunks (`work.py`): the driver lists what is left (a
re-run skips rows whose cache key matches and whose audio is still there, and retries
failed ones), a worker does one chunk (one batch of one system, loaded, warmed up and
start-up-measured once per worker) and returns its rows, the driver appends them. The
wav is written atomically *before* its row is returned, so a row always points at a
complete file. What is done is read from every writer's file (`store.read_latest`), so
shards, workers and plain runs share one run directory.

Timing (RTF) decisions, because they move numbers:
- A system that times its items itself (`SynthesisResult.wall_seconds`, or
  `info["wall_seconds"]`) is trusted per item; otherwise a batch's wall time is split
  evenly over its items (`timing` in the row says which).
- The clock is synchronised on the *system's* device (`system.device` after load),
  not the run's default device.
- Systems that do not synthesise (`timed = False`: ground truth, wavdir) get no wall
  time and no RTF: reading a file is not speech synthesis.
- A system with a one-time start-up per call (a command's process and model load)
  measures it once (`measure_startup`), reports it apart as `startup_seconds`, and
  leaves it out of each item's time.
- A failed item that took time (a timeout, a crash) records the time it took, so
  what a system spends on failures is not hidden.

Clipping: `clip_fraction` (share of samples with |x| >= 1) is computed on the system's
output before writing; such audio is written as float WAV, unaltered, with a note.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .audio import clip_fraction, save_audio
from .data.prompts import PROMPT_ERROR
from .data.utterance import Utterance
from .errors import HalleBenchError
from .progress import Reporter
from .store import cache_key, now, portable, read_latest
from .systems.base import SynthesisRequest, SynthesisResult, System
from .work import Chunk, Select, Worker, make_chunks, pending, run_stage

if TYPE_CHECKING:
    from .plan import Plan

__all__ = ["GenerateStage", "Select", "generate", "generation_key", "request_for", "utterance_seed", "wav_path"]


def utterance_seed(run_seed: int, utt_id: str) -> int:
    """Per-utterance seed from the run seed and the id (not the position), so adding or
    removing utterances never changes the others' outputs."""
    h = hashlib.sha256(f"{run_seed}:{utt_id}".encode()).hexdigest()
    return int(h[:8], 16)


def request_for(plan: Plan, u: Utterance) -> SynthesisRequest:
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


_request = request_for  # the old private name


def generation_key(plan: Plan, system: System, u: Utterance, req: SynthesisRequest) -> str:
    """Hashes contents only (text, prompt audio sha256, the system's settings and file
    hashes, seed), never where files lie: a moved run directory stays cached."""
    fp = getattr(system, "item_fingerprint", None)
    return cache_key({
        "system": portable(system.cache_key()),
        "item": fp(req) if fp else "",
        "text": u.text,
        "prompt": plan.file_sha(u.prompt_audio),
        "prompt_text": u.prompt_text,
        "prompt_cut": [u.prompt_start, u.prompt_end],
        "seed": req.seed,
    })


def wav_path(out: Path, system: str, utt_id: str) -> Path:
    return out / "audio" / system / f"{utt_id}.wav"


def _sync(device: str | None) -> None:
    if device and str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


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


class GenerateStage:
    """Stage 1 as chunks (`work.Stage`): one chunk = one batch of one system."""

    name = "generate"
    table = "generation"

    def chunks(self, plan: Plan, select: Select) -> list[Chunk]:
        done = read_latest(plan.out, "generation", ("system", "id"))

        def current(system: System, u: Utterance, key: str) -> bool:
            prev = done.get((system.name, u.id))
            wp = wav_path(plan.out, system.name, u.id)
            return bool(prev and prev.get("key") == key and prev.get("status") == "ok" and wp.exists()
                        and plan.file_sha(wp) == prev.get("audio_sha256"))

        items = pending(plan, select, lambda s, u: generation_key(plan, s, u, request_for(plan, u)), current,
                        lambda s, u: u.duration)
        per_system = [(s.name, getattr(s, "batch_size", 1), [it for it in items if it.system == s.name])
                      for s in plan.systems]
        return make_chunks(self.name, per_system)

    def failed_rows(self, plan: Plan, chunk: Chunk, message: str) -> list[dict]:
        system = plan.system(chunk.model)
        timed = bool(getattr(system, "timed", True))
        base = {"system": system.name, "device": plan.device, "timed": timed, "startup_seconds": None}
        return [_failed_row(base, plan.utterance(it.utt_id), it.key, message) for it in chunk.items]

    def run(self, worker: Worker, chunk: Chunk) -> list[dict]:
        plan = worker.plan
        system = plan.system(chunk.model)
        timed = bool(getattr(system, "timed", True))
        rows: list[dict] = []
        runnable = []
        for it in chunk.items:
            u = plan.utterance(it.utt_id)
            # Inputs that no system can use fail before the system is even loaded.
            if not u.text or not u.text.strip():
                rows.append(_failed_row({"system": system.name, "device": plan.device, "timed": timed,
                                         "startup_seconds": None}, u, it.key, "empty text"))
            else:
                runnable.append((u, request_for(plan, u), it.key))
        if not runnable:
            return rows
        loaded = worker.model(self.name, system.name, lambda: _LoadedSystem.load(plan, system, runnable[0][1]))
        base = dict(loaded.base)
        if loaded.error:
            return rows + [_failed_row(base, u, key, loaded.error) for u, _, key in runnable]
        dev = base["device"]
        results, wall = _timed_chunk(system, [r for _, r, _ in runnable], dev)
        by_id = {r.utt_id: r for r in results}
        for u, req, key in runnable:
            res = by_id.get(u.id) or SynthesisResult(utt_id=u.id, error="system returned no result for this id")
            own = _item_seconds(res)
            w = own if own is not None else wall / len(runnable)
            err = _validate_output(res)
            if err:
                if req.prompt_audio is None and u.extra.get(PROMPT_ERROR):
                    err += f" (no prompt: {u.extra[PROMPT_ERROR]})"
                rows.append(_failed_row(base, u, key, err, w))
                continue
            x = np.asarray(res.audio, dtype=np.float32).reshape(-1)
            clip = clip_fraction(x)
            wp = wav_path(plan.out, system.name, u.id)
            subtype = save_audio(wp, x, int(res.sample_rate))
            secs = x.size / float(res.sample_rate)
            plan._sha_cache.pop(str(wp), None)
            note = None
            if clip > 0:
                note = (f"{clip:.2%} of samples at or beyond full scale (peak {float(np.max(np.abs(x))):.3g}); "
                        f"written unaltered as {subtype} wav")
            rows.append({**base, "id": u.id, "key": key, "status": "ok", "error": None,
                         "audio_seconds": secs, "wall_seconds": w if timed else None,
                         "rtf": (w / secs if secs else None) if timed else None,
                         "timing": ("system" if own is not None else "batch") if timed else None,
                         "clip_fraction": clip, "notes": note, "sample_rate": int(res.sample_rate),
                         "batch_size": len(runnable), "audio_sha256": plan.file_sha(wp), "info": res.info,
                         "written_at": now()})
        return rows


def generate(plan: Plan, reporter: Reporter, writer: str | None = None, select: Select = None,
             executor=None) -> int:
    """Synthesise every planned item that `select` keeps and that is not done yet, through
    `executor` (default: this process); rows go to this writer's file. Returns the number
    of items attempted."""
    from .executors import LocalExecutor

    return run_stage(plan, GenerateStage(), executor or LocalExecutor(), reporter, writer, select)


@dataclass
class _LoadedSystem:
    """A system as a worker holds it: loaded, warmed up, its start-up measured once."""

    system: System
    base: dict  # the row fields every item of this system shares in this process
    error: str | None = None

    @classmethod
    def load(cls, plan: Plan, system: System, probe: SynthesisRequest) -> "_LoadedSystem":
        timed = bool(getattr(system, "timed", True))
        base = {"system": system.name, "device": plan.device, "timed": timed, "startup_seconds": None,
                "system_key": cache_key(portable(system.cache_key()))}
        try:
            system.load(plan.device)
            if plan.config.run.warmup:
                system.warmup()
            measure = getattr(system, "measure_startup", None)
            if timed and callable(measure):
                # Once per system per process: a command's process start-up, reported
                # apart and left out of each item's time (the system subtracts it).
                base["startup_seconds"] = measure(probe)
        except Exception as e:  # a system that cannot load fails its items, the run goes on
            return cls(system, base, f"system failed to load: {type(e).__name__}: {e}")
        # Synchronise the device the system actually runs on (a system may pin its own).
        base["device"] = str(getattr(system, "device", None) or plan.device)
        return cls(system, base)

    def close(self) -> None:
        if self.error is None:
            self.system.close()


def _failed_row(base: dict, u: Utterance, key: str, msg: str, wall: float | None = None) -> dict:
    timed = base.get("timed", True)
    return {**base, "id": u.id, "key": key, "status": "failed", "error": msg, "audio_seconds": None,
            "wall_seconds": wall if timed else None, "rtf": None, "clip_fraction": None, "written_at": now()}


def _item_seconds(res: SynthesisResult) -> float | None:
    """The system's own per-item timing, when it reports one."""
    if res.wall_seconds is not None:
        return float(res.wall_seconds)
    w = (res.info or {}).get("wall_seconds")
    return float(w) if isinstance(w, (int, float)) and not isinstance(w, bool) else None


def _timed_chunk(system: System, reqs: list[SynthesisRequest], dev: str) -> tuple[list[SynthesisResult], float]:
    """Synthesise one batch; (results, wall seconds of the whole batch)."""
    _sync(dev)
    t0 = time.perf_counter()
    try:
        results = _synthesize_checked(system, reqs)
    except Exception as e:
        if len(reqs) == 1:
            results = [SynthesisResult(utt_id=reqs[0].utt_id, error=f"{type(e).__name__}: {e}")]
        else:
            # One bad item must not fail its batch-mates: retry them one by one
            # (timed individually, so their RTF is still per item).
            results = []
            for r in reqs:
                t1 = time.perf_counter()
                try:
                    res = _synthesize_checked(system, [r])[0]
                except Exception as e1:
                    res = SynthesisResult(utt_id=r.utt_id, error=f"{type(e1).__name__}: {e1}")
                _sync(dev)
                if _item_seconds(res) is None:
                    res.wall_seconds = time.perf_counter() - t1
                results.append(res)
    _sync(dev)
    return results, time.perf_counter() - t0


def _synthesize_checked(system: System, reqs: list[SynthesisRequest]) -> list[SynthesisResult]:
    results = system.synthesize(reqs)
    if len(results) != len(reqs):
        raise HalleBenchError(f"system returned {len(results)} results for {len(reqs)} requests")
    return results
