"""Speaker similarity (`sim`): window cosines of the generated audio against the prompt.

Encoders are registered by name (`metrics/spk_registry.py`; `model = ...` in the
`[metrics] sim` table): `resemblyzer` (default, offline: the GE2E LSTM whose weights ship
inside the `Resemblyzer` wheel), `ecapa` (speechbrain's `spkrec-ecapa-voxceleb` from a
local folder) and `wavlm-tdnn` (the seed-tts-eval / F5 / HALL-E protocol: WavLM-Large +
ECAPA-TDNN from UniSpeech's `wavlm_large_finetune.pth`).

How a value is computed (the maths is in `metrics/spk_windows.py`):

1. Every waveform is cut into windows of `window_seconds` (10 s) every `hop_seconds`
   (= window) from sample 0; the last window ends at the clip's end (a tail shorter
   than `min_window_seconds`, 1 s, joins the window before it).
2. Each window goes through the encoder's own preprocessing (resemblyzer: volume,
   silence trimming) and is embedded; a window that is silent, or keeps less than
   `min_window_seconds` of signal after preprocessing, is left out (unless no window
   has that much: then those with at least 0.1 s count). A window's weight is the
   seconds it kept, so a mostly silent window counts little.
3. The prompt (and the reference) become one embedding each: the weighted mean of
   their normalised window embeddings, renormalised.
4. Per item: `sim` = weighted mean of the generated windows' cosines with the prompt
   embedding (not the cosine of an averaged embedding, which hides a drifting voice),
   `sim_min` = the lowest window, `sim_last` = the last scored window (normally the one
   ending at the clip's end); `sim_ref`, `sim_ref_min`, `sim_ref_last` the same windows
   against the reference (the prompt part already removed by the runner; None for the
   ground-truth row itself and without a reference); `pos_sim` = weighted mean cosine
   with the prompt per `position_seconds` (30 s) slice of the generated audio, a window
   assigned to the slice holding its centre (None for a slice without one);
   `sim_model` = the encoder's name (numbers of different encoders do not compare).

Batching never changes a number: windows of *exactly* equal length are stacked without
padding (tested to 1e-5). Identical waveforms (the prompt shared by every system) are
embedded once, keyed by sha256, in a small bounded cache. An empty or silent input is
that item's error, never a crash of the batch; so is an input too short for the encoder's
preprocessing (resemblyzer's VAD raised on 0.1 s): the message names the exception.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from halle_bench.audio import SCORING_SR, is_silent, sha256_array
from halle_bench.errors import CheckpointError, ConfigError, HalleBenchError

from .base import NEEDS_PROMPT, NEEDS_REFERENCE, BaseScorer, ModelRef, ScoreItem, ScoreOutput, register_scorer
from .spk_registry import SpeakerEncoder, load_speaker_encoder, speaker_model_info, speaker_model_names, weights_path
from .spk_windows import (
    WindowSimilarity,
    cosine,
    group_by_length,
    l2_normalize,
    pool_embeddings,
    position_profile,
    run_grouped,
    window_bounds,
    window_similarity,
)

MIN_INPUT_SECONDS = 0.1  # below this there is nothing to embed


@dataclass(frozen=True)
class WindowConfig:
    window_s: float = 10.0
    hop_s: float | None = None
    min_s: float = 1.0


@dataclass(frozen=True)
class WindowedEmbedding:
    """The scored windows of one waveform, in time order."""

    embs: np.ndarray  # (n, D), L2-normalised
    weights: np.ndarray  # (n,) seconds of signal each window kept after preprocessing
    centres: np.ndarray  # (n,) window centres, seconds of the original waveform
    seconds: float  # length of the original waveform

    @property
    def pooled(self) -> np.ndarray:
        return pool_embeddings(self.embs, self.weights)


def embed_windowed(
    encoder: SpeakerEncoder, audios: list[np.ndarray], windows: WindowConfig = WindowConfig()
) -> list[WindowedEmbedding | str]:
    """Window embeddings of many waveforms at once; an error string for a bad one.

    All kept windows of all inputs go through `encoder.embed_windows` in one call.
    """
    results: list[WindowedEmbedding | str] = [""] * len(audios)
    all_windows: list[np.ndarray] = []
    owners: list[tuple[int, list[int], list[float], list[float], float]] = []
    min_len = int(round(windows.min_s * SCORING_SR))
    floor = int(MIN_INPUT_SECONDS * SCORING_SR)
    for i, x in enumerate(audios):
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        if x.size < floor or is_silent(x):
            results[i] = f"audio is empty or silent ({x.size / SCORING_SR:.2f} s): no speaker embedding"
            continue
        cands = []  # (prepared window, centre seconds)
        try:
            for s, e in window_bounds(x.size, SCORING_SR, windows.window_s, windows.hop_s, windows.min_s):
                w = x[s:e]
                if not is_silent(w):
                    cands.append((encoder.prepare(w), (s + e) / 2 / SCORING_SR))
        except Exception as exc:  # an encoder's preprocessing may not cope with a very short input
            results[i] = f"{encoder.name} preprocessing failed on {x.size / SCORING_SR:.2f} s of audio: {type(exc).__name__}: {exc}"
            continue
        kept = [c for c in cands if c[0].size >= min_len] or [c for c in cands if c[0].size >= floor]
        if not kept:
            longest = max((c[0].size for c in cands), default=0)
            results[i] = f"no speech left after {encoder.name} preprocessing (longest window {longest / SCORING_SR:.2f} s)"
            continue
        ids = list(range(len(all_windows), len(all_windows) + len(kept)))
        all_windows.extend(y for y, _ in kept)
        owners.append((i, ids, [y.size / SCORING_SR for y, _ in kept], [c for _, c in kept], x.size / SCORING_SR))
    if all_windows:
        try:
            embs = np.asarray(encoder.embed_windows(all_windows), dtype=np.float64)
        except Exception:
            if len(owners) == 1:
                raise
            # One input the encoder cannot take must not fail the others: embed each alone.
            return _embed_each(encoder, audios, results, owners, all_windows)
        for i, ids, weights, centres, seconds in owners:
            e = embs[ids]
            if not np.all(np.isfinite(e)):
                results[i] = f"{encoder.name} produced non-finite embeddings"
            else:
                results[i] = WindowedEmbedding(l2_normalize(e), np.asarray(weights), np.asarray(centres), seconds)
    return results


def _embed_each(encoder: SpeakerEncoder, audios: list[np.ndarray], results: list[WindowedEmbedding | str],
                owners: list, all_windows: list[np.ndarray]) -> list[WindowedEmbedding | str]:
    """`embed_windowed`'s fallback when the batched call raised: input by input, so the
    error lands on the input that caused it (its message names the exception)."""
    for i, ids, weights, centres, seconds in owners:
        try:
            e = np.asarray(encoder.embed_windows([all_windows[j] for j in ids]), dtype=np.float64)
        except Exception as exc:
            results[i] = f"{encoder.name} could not embed {seconds:.2f} s of audio: {type(exc).__name__}: {exc}"
            continue
        if not np.all(np.isfinite(e)):
            results[i] = f"{encoder.name} produced non-finite embeddings"
        else:
            results[i] = WindowedEmbedding(l2_normalize(e), np.asarray(weights), np.asarray(centres), seconds)
    return results


def embed_utterances(
    encoder: SpeakerEncoder, audios: list[np.ndarray], windows: WindowConfig = WindowConfig()
) -> list[np.ndarray | str]:
    """One pooled embedding per waveform (see `embed_windowed`); an error string for a bad one."""
    return [e if isinstance(e, str) else e.pooled for e in embed_windowed(encoder, audios, windows)]


# ---------------------------------------------------------------------------
# The scorer
# ---------------------------------------------------------------------------

_KNOWN_KEYS = {
    "model", "model_path", "window_seconds", "hop_seconds", "min_window_seconds", "position_seconds",
    "batch_size", "encoder_batch",
}


@register_scorer("sim")
class SpeakerSimilarity(BaseScorer):
    """Window cosines vs the prompt (`sim*`) and vs the reference (`sim_ref*`)."""

    name: ClassVar[str] = "sim"
    version: ClassVar[str] = "2"  # 2: mean of window cosines, sim_min/sim_last/pos_sim, windows prepared alone
    needs: ClassVar[frozenset[str]] = frozenset({NEEDS_PROMPT})
    uses: ClassVar[frozenset[str]] = frozenset({NEEDS_REFERENCE})  # sim_ref* when there is one
    CACHE_SIZE: ClassVar[int] = 512

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        cfg = self.config
        unknown = sorted(set(cfg) - _KNOWN_KEYS)
        if unknown:
            raise ConfigError(f"[metrics] sim: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN_KEYS))}")
        self.model_name = str(cfg.get("model", "resemblyzer"))
        speaker_model_info(self.model_name)  # ConfigError naming the known models
        self.model_path = cfg.get("model_path")
        try:
            self.windows = WindowConfig(
                window_s=float(cfg.get("window_seconds", 10.0)),
                hop_s=float(cfg["hop_seconds"]) if cfg.get("hop_seconds") is not None else None,
                min_s=float(cfg.get("min_window_seconds", 1.0)),
            )
            self.position_s = float(cfg.get("position_seconds", 30.0))
            self.batch_size = int(cfg.get("batch_size", 8))
            self.encoder_batch = int(cfg.get("encoder_batch", 64))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"[metrics] sim: bad number: {e}") from None
        w = self.windows
        if not (w.window_s >= 1.0 and (w.hop_s is None or 0 < w.hop_s <= w.window_s) and 0 < w.min_s <= w.window_s):
            raise ConfigError("[metrics] sim: need window_seconds >= 1, 0 < hop_seconds <= window, 0 < min_window_seconds <= window")
        if self.batch_size < 1 or self.encoder_batch < 1 or self.position_s <= 0:
            raise ConfigError("[metrics] sim: batch_size and encoder_batch must be >= 1, position_seconds > 0")
        self.encoder: SpeakerEncoder | None = None
        self._ref: ModelRef | None = None
        self._cache: OrderedDict[str, WindowedEmbedding | str] = OrderedDict()

    def settings(self) -> dict[str, Any]:
        w = self.windows
        return {
            "model": self.model_name,
            "window_seconds": w.window_s,
            "hop_seconds": w.hop_s if w.hop_s is not None else w.window_s,
            "min_window_seconds": w.min_s,
            "position_seconds": self.position_s,
        }

    def models(self) -> list[ModelRef]:
        if self._ref is None:
            from halle_bench.audio import sha256_file

            path = weights_path(self.model_name, self.model_path)
            self._ref = ModelRef(self.model_name, sha256_file(path), str(path))
        return [self._ref]

    def load(self, device: str) -> None:
        super().load(device)
        path = weights_path(self.model_name, self.model_path)
        self.encoder = load_speaker_encoder(self.model_name, path, device=device, batch=self.encoder_batch)
        self._cache.clear()

    def close(self) -> None:
        self.encoder = None
        self._cache.clear()

    # -- scoring ---------------------------------------------------------

    def embed_windows(self, audios: list[np.ndarray]) -> list[WindowedEmbedding | str]:
        """Window embeddings of waveforms, each distinct waveform computed once (and cached)."""
        if self.encoder is None:
            raise RuntimeError("SpeakerSimilarity.load() must be called before scoring")
        keys = [sha256_array(np.asarray(a, dtype=np.float32).reshape(-1)) for a in audios]
        todo: dict[str, np.ndarray] = {}
        for k, a in zip(keys, audios):
            if k not in self._cache and k not in todo:
                todo[k] = a
        if todo:
            for k, e in zip(todo, embed_windowed(self.encoder, list(todo.values()), self.windows)):
                self._cache[k] = e
        out = []
        for k in keys:
            self._cache.move_to_end(k)
            out.append(self._cache[k])
        while len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)
        return out

    def embed(self, audios: list[np.ndarray]) -> list[np.ndarray | str]:
        """One pooled embedding per waveform (an error string for a bad one)."""
        return [e if isinstance(e, str) else e.pooled for e in self.embed_windows(audios)]

    def score(self, items: list[ScoreItem]) -> list[ScoreOutput]:
        outputs: list[ScoreOutput | None] = [None] * len(items)
        audios: list[np.ndarray] = []
        slots: list[tuple[int, int, int | None]] = []  # item index, generated slot, reference slot
        for i, it in enumerate(items):
            if it.sample_rate != SCORING_SR:
                outputs[i] = ScoreOutput(error=f"sim expects {SCORING_SR} Hz audio, got {it.sample_rate}")
                continue
            if it.prompt is None:
                outputs[i] = ScoreOutput(error="sim needs the prompt audio, which this item lacks")
                continue
            use_ref = it.reference is not None and not it.is_ground_truth
            g = len(audios)
            audios.extend([it.audio, it.prompt])
            r = None
            if use_ref:
                r = len(audios)
                audios.append(it.reference)
            slots.append((i, g, r))
        embs = self.embed_windows(audios) if audios else []
        for i, g, r in slots:
            gen, prompt = embs[g], embs[g + 1]
            if isinstance(gen, str):
                outputs[i] = ScoreOutput(error=f"generated audio: {gen}")
            elif isinstance(prompt, str):
                outputs[i] = ScoreOutput(error=f"prompt audio: {prompt}")
            else:
                # A reference that cannot be embedded only loses sim_ref*, not the item.
                ref = embs[r] if r is not None and not isinstance(embs[r], str) else None
                outputs[i] = ScoreOutput(values=self._values(gen, prompt, ref))
        return [o if o is not None else ScoreOutput(error="not scored") for o in outputs]

    def _values(self, gen: WindowedEmbedding, prompt: WindowedEmbedding, ref: WindowedEmbedding | None) -> dict[str, Any]:
        vs = window_similarity(gen.embs, gen.weights, prompt.pooled)
        values: dict[str, Any] = {"sim": vs.mean, "sim_min": vs.min, "sim_last": vs.last}
        rs: WindowSimilarity | None = window_similarity(gen.embs, gen.weights, ref.pooled) if ref is not None else None
        values["sim_ref"] = rs.mean if rs else None
        values["sim_ref_min"] = rs.min if rs else None
        values["sim_ref_last"] = rs.last if rs else None
        values["sim_model"] = self.model_name
        values["pos_sim"] = position_profile(
            list(vs.cosines), list(gen.weights), list(gen.centres), gen.seconds, self.position_s
        )
        return values


def speaker_similarity(encoder: SpeakerEncoder, a: np.ndarray, b: np.ndarray, windows: WindowConfig = WindowConfig()) -> float:
    """Weighted mean window cosine of `a` against `b`'s embedding (a convenience for scripts)."""
    ea, eb = embed_windowed(encoder, [a, b], windows)
    for e in (ea, eb):
        if isinstance(e, str):
            raise HalleBenchError(e)
    return window_similarity(ea.embs, ea.weights, eb.pooled).mean


__all__ = [
    "CheckpointError",
    "SpeakerEncoder",
    "SpeakerSimilarity",
    "WindowConfig",
    "WindowedEmbedding",
    "cosine",
    "embed_utterances",
    "embed_windowed",
    "group_by_length",
    "pool_embeddings",
    "run_grouped",
    "speaker_model_names",
    "speaker_similarity",
    "window_bounds",
    "window_similarity",
]


# ----------------------------------------------------------------------------- metric declarations
# What the leaderboard, report, plots and gate make of this scorer's columns (halle_bench/metric_decl.py).

from halle_bench.metric_decl import HEADLINE, Bound, Metric  # noqa: E402
from halle_bench.metric_registry import register_metric  # noqa: E402

_SIM = dict(direction="higher", scorer="sim", count_column="n_sim", model_column="sim_model",
            why_missing="no `sim` scorer in the candidate run")
_SIM_REF = dict(_SIM, count_column="n_sim_ref", why_missing="no `sim` scorer or no reference audio")
SIM_METRICS = (
    # A voice that drops 0.15 in mean cosine in any bucket has become another speaker: fails without a test.
    Metric("sim", ("sim",), role=HEADLINE, ci="mean", sd_prior=0.05, bound=Bound(abs=0.15), plot="points",
           positional=("pos_sim",), label="speaker similarity (vs prompt)", short="sim", **_SIM),
    Metric("sim_min", ("sim_min",), sd_prior=0.07, label="lowest window similarity", short="sim min", **_SIM),
    Metric("sim_last", ("sim_last",), sd_prior=0.07, label="last window similarity", short="sim last", **_SIM),
    Metric("sim_ref", ("sim_ref",), ci="mean", sd_prior=0.05, label="speaker similarity (vs reference)",
           short="sim ref", **_SIM_REF),
    Metric("sim_ref_min", ("sim_ref_min",), sd_prior=0.07, show=False,
           label="lowest window similarity (vs reference)", **_SIM_REF),
    Metric("sim_ref_last", ("sim_ref_last",), sd_prior=0.07, show=False,
           label="last window similarity (vs reference)", **_SIM_REF),
)
for _m in SIM_METRICS:
    register_metric(_m)
