"""Stage 1 of a run: every system speaks every utterance (see runner.py).

The wav is written atomically *before* its row in generation.jsonl, so a row always
points at a complete file; a re-run skips rows whose cache key matches and whose
audio is still there, and retries failed ones.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .audio import save_audio
from .data.prompts import PROMPT_ERROR
from .data.utterance import Utterance
from .errors import HalleBenchError
from .progress import Reporter
from .store import JsonlTable, cache_key
from .systems.base import SynthesisRequest, SynthesisResult, System

if TYPE_CHECKING:
    from .runner import Plan


def utterance_seed(run_seed: int, utt_id: str) -> int:
    """Per-utterance seed from the run seed and the id (not the position), so adding or
    removing utterances never changes the others' outputs."""
    h = hashlib.sha256(f"{run_seed}:{utt_id}".encode()).hexdigest()
    return int(h[:8], 16)


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
                    if req.prompt_audio is None and u.extra.get(PROMPT_ERROR):
                        err += f" (no prompt: {u.extra[PROMPT_ERROR]})"
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
