"""Stage 2 of a run: every scorer scores every generated wav (see runner.py).

Organised by scorer, not by utterance (`ScoreStage`, chunks as in `work.py`): a model is
loaded once per worker and sees every system's audio in batches (longest first,
deterministic); a failed item or batch becomes error rows, never a crash. What is done
is read from every writer's file (`store.read_latest`). `expected_keys(plan)`
recomputes the current key of every scorable item from the run directory, with the
scorers' identities alone (a `plan.RecordedScorer` from env.json will do), so
aggregation needs neither what was held in memory by whoever scored nor the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .audio import SCORING_SR, load_audio
from .data.prompts import PROMPT_ERROR
from .data.utterance import Utterance
from .errors import HalleBenchError, UtteranceError
from .generation import wav_path
from .progress import Reporter
from .store import cache_key, now, portable, read_latest
from .systems.base import System
from .work import Chunk, Item, Select, Worker, make_chunks, pending, run_stage

if TYPE_CHECKING:
    from .plan import Plan

__all__ = ["GROUND_TRUTH_KIND", "ScoreStage", "expected_keys", "score", "score_key", "scorer_identity"]

GROUND_TRUTH_KIND = "ground-truth"


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
    """What identifies a scorer's results: name, version, settings and model sha256.
    Paths in settings are reduced to their last component (`store.portable`): the
    model's content is in its sha256, its location must not invalidate a moved run.
    A scorer read back from env.json (`plan.RecordedScorer`) is its recorded identity."""
    recorded = getattr(scorer, "identity", None)
    if isinstance(recorded, dict):
        return recorded
    return portable({
        "name": scorer.name,
        "version": scorer.version,
        "settings": scorer.settings(),
        "models": [[m.name, m.sha256] for m in scorer.models()],
    })


def _inputs(scorer: Any) -> tuple[frozenset, frozenset]:
    needs = frozenset(getattr(scorer, "needs", frozenset()))
    return needs, needs | frozenset(getattr(scorer, "uses", frozenset()))


def expected_keys(plan: Plan, gen: dict[tuple, dict] | None = None) -> dict[tuple, str]:
    """{(system, id, scorer): the key a current score row must carry}, for every planned
    item whose generation is ok, from the run directory alone."""
    gen = read_latest(plan.out, "generation", ("system", "id")) if gen is None else gen
    keys: dict[tuple, str] = {}
    for sname, scorer in plan.scorers.items():
        ident = scorer_identity(scorer)
        _, inputs = _inputs(scorer)
        for system in plan.systems:
            for u in plan.utterances:
                g = gen.get((system.name, u.id))
                if g and g.get("status") == "ok":
                    keys[(system.name, u.id, sname)] = score_key(plan, ident, system, u, g.get("audio_sha256"), inputs)
    return keys


def score_key(plan: Plan, ident: dict, system: System, u: Utterance, audio_sha: str, inputs: frozenset) -> str:
    return cache_key({
        "scorer": ident,
        "audio": audio_sha,
        "text": u.text if "text" in inputs else None,
        "reference": plan.file_sha(u.audio) if "reference" in inputs else None,
        "prompt": plan.file_sha(u.prompt_audio) if "prompt" in inputs else None,
        "prompt_text": u.prompt_text if "prompt" in inputs else None,
        "prompt_cut": [u.prompt_start, u.prompt_end, u.prompt_from_reference],
        "gt": system.kind == GROUND_TRUTH_KIND,
    })


def _build_item(plan: Plan, cache: _AudioCache, system: System, u: Utterance, inputs: frozenset):
    from .metrics.base import ScoreItem

    is_gt = system.kind == GROUND_TRUTH_KIND
    x, _, _ = load_audio(wav_path(plan.out, system.name, u.id), SCORING_SR)
    if is_gt and u.prompt_from_reference and "prompt" in inputs and u.prompt_end is not None:
        # The prompt was cut from this very audio: comparing it with itself would
        # inflate similarity, so the ground-truth row is scored without that part.
        a, b = int(round((u.prompt_start or 0) * SCORING_SR)), int(round(u.prompt_end * SCORING_SR))
        x = np.concatenate([x[:a], x[b:]])
    ref = None
    if "reference" in inputs and u.audio is not None and Path(u.audio).exists():
        ref = cache.get(u.audio, u.prompt_start, u.prompt_end, cut=u.prompt_from_reference)
    prompt = None
    if "prompt" in inputs and u.prompt_audio is not None and Path(u.prompt_audio).exists():
        prompt = cache.get(u.prompt_audio)
    return ScoreItem(system=system.name, utt_id=u.id, audio=x, sample_rate=SCORING_SR, text=u.text,
                     reference=ref, prompt=prompt, prompt_text=u.prompt_text, is_ground_truth=is_gt,
                     duration_ref=u.duration if u.duration_source in ("audio", "manifest") else None,
                     prompt_cut=(u.prompt_start or 0.0, u.prompt_end) if u.prompt_from_reference and u.prompt_end is not None else None)


class ScoreStage:
    """Stage 2 as chunks (`work.Stage`): one chunk = one batch of one scorer, over every
    system's audio (a scorer model is loaded once per worker and sees them all)."""

    name = "score"
    table = "scores"

    def chunks(self, plan: Plan, select: Select) -> list[Chunk]:
        gen = read_latest(plan.out, "generation", ("system", "id"))
        done = read_latest(plan.out, "scores", ("system", "id", "scorer"))
        per_scorer = []
        for sname, scorer in plan.scorers.items():
            ident = scorer_identity(scorer)
            _, inputs = _inputs(scorer)

            def key(system: System, u: Utterance) -> str | None:
                g = gen.get((system.name, u.id))
                if not g or g.get("status") != "ok":
                    return None  # nothing to score
                return score_key(plan, ident, system, u, g.get("audio_sha256"), inputs)

            def current(system: System, u: Utterance, k: str) -> bool:
                prev = done.get((system.name, u.id, sname))
                return bool(prev and prev.get("key") == k and not prev.get("error"))

            items = pending(plan, select, key, current, lambda s, u: gen[(s.name, u.id)].get("audio_seconds"))
            per_scorer.append((sname, getattr(scorer, "batch_size", 1), items))
        return make_chunks(self.name, per_scorer)

    def failed_rows(self, plan: Plan, chunk: Chunk, message: str) -> list[dict]:
        from .metrics.base import ScoreOutput

        scorer = plan.scorers[chunk.model]
        return [_row(plan, scorer, chunk.model, it, ScoreOutput(error=message)) for it in chunk.items]

    def run(self, worker: Worker, chunk: Chunk) -> list[dict]:
        from .metrics.base import ScoreOutput

        plan = worker.plan
        sname = chunk.model
        scorer = worker.model(self.name, sname, lambda: _loaded(plan.scorers[sname], plan.stage_device("score")))
        cache = worker.cache.setdefault("audio", _AudioCache())
        needs, inputs = _inputs(scorer)
        items, idx, outs = [], [], [None] * len(chunk.items)
        for j, it in enumerate(chunk.items):
            system, u = plan.system(it.system), plan.utterance(it.utt_id)
            if "prompt" in needs and u.prompt_audio is None and u.extra.get(PROMPT_ERROR):
                # The prompt policy could not give this utterance a prompt: say why,
                # rather than letting the scorer report a bare "no prompt".
                outs[j] = ScoreOutput(error=f"no prompt: {u.extra[PROMPT_ERROR]}")
                continue
            try:
                items.append(_build_item(plan, cache, system, u, inputs))
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
        return [_row(plan, scorer, sname, it, o) for it, o in zip(chunk.items, outs)]


def _loaded(scorer: Any, device: str) -> Any:
    scorer.load(device)
    return scorer


def _row(plan: Plan, scorer: Any, sname: str, it: Item, o: Any) -> dict:
    """A score row: the key it was made with, the scorer's version and identity hash, and
    the sha256 of the audio it scored, so the row says by itself what it is."""
    return {"system": it.system, "id": it.utt_id, "scorer": sname, "version": scorer.version,
            "scorer_key": cache_key(scorer_identity(scorer)),
            "audio_sha256": plan.file_sha(wav_path(plan.out, it.system, it.utt_id)),
            "key": it.key, "values": o.values if o.error is None else {}, "error": o.error, "written_at": now()}


def score(plan: Plan, reporter: Reporter, writer: str | None = None, select: Select = None, executor=None) -> int:
    """Score every generated item that `select` keeps and that has no current row, through
    `executor` (default: this process). Returns the number of items scored now."""
    from .executors import LocalExecutor

    return run_stage(plan, ScoreStage(), executor or LocalExecutor(), reporter, writer, select)
