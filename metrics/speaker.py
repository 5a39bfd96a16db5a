"""Speaker similarity (`sim`): cosine between speaker embeddings, windowed for long audio.

Three encoders sit behind one scorer (`model = ...` in the `[metrics] sim` table):

- `resemblyzer` (default, offline): the GE2E LSTM whose weights ship inside the
  `Resemblyzer` wheel (`metrics/spk_resemblyzer.py`).
- `ecapa`: speechbrain's `spkrec-ecapa-voxceleb` from a local folder (`metrics/spk_ecapa.py`).
- `wavlm-tdnn`: the seed-tts-eval / F5 / HALL-E protocol, WavLM-Large features + ECAPA-TDNN
  head from UniSpeech's `wavlm_large_finetune.pth` (`metrics/spk_wavlm.py`).

Values per item: `sim` (generated vs the prompt audio: the seed-tts-eval convention),
`sim_ref` (generated vs the reference audio, with the prompt part already removed by the
runner; None for the ground-truth row itself and when there is no reference) and
`sim_model` (the encoder's name: numbers from different encoders are not comparable).

Long audio (decisions the spec leaves open, recorded here):

- Each waveform is cut into fixed windows (`window_seconds`, default 10 s; hop
  `hop_seconds`, default = window) starting at sample 0, so positions depend only on the
  length. Windowing stops at the first window that reaches the end. A last, partial window
  is kept when it has at least `min_window_seconds` (1 s), or when it is the only one.
- Every window is embedded, its embedding L2-normalised; the utterance embedding is the
  mean of those weighted by window duration (a 1 s tail must not count as much as a full
  10 s window), renormalised. Similarity is the cosine of two utterance embeddings.
- Batching never changes the numbers: windows of *exactly* equal length are stacked and go
  through the encoder together, without padding or masks, so a batched result equals the
  per-item one up to float summation order (tested to 1e-5).
- Identical waveforms are embedded once (keyed by their sha256): the prompt is shared by
  every system's item for an utterance. A small bounded cache keeps this across batches.
- An input that is empty, silent, or has no speech left after the encoder's own
  preprocessing is that item's error, never a crash of the batch.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol

import numpy as np

from halle_bench.audio import SCORING_SR, is_silent, sha256_array
from halle_bench.errors import CheckpointError, ConfigError, HalleBenchError
from halle_bench.models import ModelSpec, register_model
from halle_bench.weights import load_state_strict, torch_load  # re-exported for the backends

from .base import NEEDS_PROMPT, NEEDS_REFERENCE, BaseScorer, ModelRef, ScoreItem, ScoreOutput, register_scorer

MIN_INPUT_SECONDS = 0.1  # below this there is nothing to embed: the item's error

# ---------------------------------------------------------------------------
# Model registry entries
# ---------------------------------------------------------------------------

RESEMBLYZER_SPEC = register_model(
    ModelSpec(
        name="resemblyzer",
        backend="resemblyzer",
        filename="pretrained.pt",
        description="GE2E speaker encoder (3-layer LSTM, 256-d), Resemblyzer 0.1.4",
        package="resemblyzer",
        package_files=("pretrained.pt",),
        sha256="39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
        licence="Apache-2.0",
        how_to_get="pip install Resemblyzer==0.1.4 (the weights ship inside the wheel)",
    )
)

ECAPA_SPEC = register_model(
    ModelSpec(
        name="ecapa",
        backend="speechbrain-ecapa",
        filename="embedding_model.ckpt",
        description="speechbrain spkrec-ecapa-voxceleb ECAPA-TDNN (192-d), local folder",
        sha256=None,
        licence="Apache-2.0",
        how_to_get=(
            "copy the Hugging Face folder speechbrain/spkrec-ecapa-voxceleb (hyperparams.yaml, "
            "embedding_model.ckpt, mean_var_norm_emb.ckpt, classifier.ckpt, label_encoder.txt) from a "
            "machine with network, then give the folder as `model_path` in [metrics] sim or place the "
            "files in $HALLE_BENCH_HOME/models/ecapa/"
        ),
        extra_files=("hyperparams.yaml", "mean_var_norm_emb.ckpt", "classifier.ckpt", "label_encoder.txt"),
    )
)

WAVLM_TDNN_SPEC = register_model(
    ModelSpec(
        name="wavlm-tdnn",
        backend="unispeech-ecapa-wavlm",
        filename="wavlm_large_finetune.pth",
        description="WavLM-Large + ECAPA-TDNN speaker verifier (256-d), as in seed-tts-eval / F5-TTS",
        sha256=None,
        licence="see microsoft/UniSpeech (WavLM code: MIT); checkpoint terms as published there",
        how_to_get=(
            "download wavlm_large_finetune.pth (linked from microsoft/UniSpeech "
            "downstreams/speaker_verification) on a machine with network, then give its path as "
            "`model_path` in [metrics] sim or place it at $HALLE_BENCH_HOME/models/wavlm-tdnn/"
            "wavlm_large_finetune.pth"
        ),
    )
)

MODEL_SPECS = {"resemblyzer": RESEMBLYZER_SPEC, "ecapa": ECAPA_SPEC, "wavlm-tdnn": WAVLM_TDNN_SPEC}

# ---------------------------------------------------------------------------
# Checkpoint helpers shared by the backends
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Windowed-embedding maths (pure functions)
# ---------------------------------------------------------------------------


def window_bounds(
    n_samples: int, sr: int = SCORING_SR, window_s: float = 10.0, hop_s: float | None = None, min_s: float = 1.0
) -> list[tuple[int, int]]:
    """Deterministic [start, end) sample windows covering a waveform (see module docstring)."""
    if n_samples <= 0:
        return []
    win = max(1, int(round(window_s * sr)))
    hop = max(1, int(round((hop_s if hop_s is not None else window_s) * sr)))
    min_len = int(round(min_s * sr))
    out: list[tuple[int, int]] = []
    start = 0
    while start < n_samples:
        end = min(start + win, n_samples)
        if end - start >= min_len or not out:
            out.append((start, end))
        if end >= n_samples:
            break
        start += hop
    return out


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), eps)


def pool_embeddings(window_embs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted mean of L2-normalised window embeddings, renormalised: (n, D) -> (D,)."""
    e = l2_normalize(np.atleast_2d(window_embs))
    w = np.ones(len(e)) if weights is None else np.asarray(weights, dtype=np.float64)
    return l2_normalize((w[:, None] * e).sum(axis=0) / w.sum())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = l2_normalize(a), l2_normalize(b)
    return float(np.clip(np.dot(a, b), -1.0, 1.0))


def group_by_length(arrays: list[np.ndarray]) -> dict[int, list[int]]:
    """Indices of equal-length arrays, lengths in ascending order (deterministic)."""
    groups: dict[int, list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(len(a), []).append(i)
    return dict(sorted(groups.items()))


def run_grouped(arrays: list[np.ndarray], fn: Callable[[np.ndarray], np.ndarray], max_batch: int) -> np.ndarray:
    """Apply `fn` to stacks of equal-length arrays (at most `max_batch` per call), keep order.

    This is how every backend batches: no padding, so batching cannot change results.
    """
    out: list[np.ndarray | None] = [None] * len(arrays)
    for _, idx in group_by_length(arrays).items():
        for s in range(0, len(idx), max_batch):
            chunk = idx[s : s + max_batch]
            res = np.asarray(fn(np.stack([arrays[i] for i in chunk])))
            for j, i in enumerate(chunk):
                out[i] = res[j]
    return np.stack(out) if out else np.zeros((0, 0), dtype=np.float32)


class SpeakerEncoder(Protocol):
    """What a backend provides: whole-utterance preprocessing and window embeddings."""

    name: str

    def prepare(self, audio: np.ndarray) -> np.ndarray:
        """Preprocess one whole 16 kHz utterance (e.g. volume, silence trimming)."""

    def embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        """(n, D) embeddings of `windows` (any lengths), one row each, batch-invariant."""


@dataclass(frozen=True)
class WindowConfig:
    window_s: float = 10.0
    hop_s: float | None = None
    min_s: float = 1.0


def embed_utterances(
    encoder: SpeakerEncoder, audios: list[np.ndarray], windows: WindowConfig = WindowConfig()
) -> list[np.ndarray | str]:
    """Utterance embeddings for many waveforms at once; an error string for a bad one.

    All windows of all (valid) inputs go through `encoder.embed_windows` in one call.
    """
    results: list[np.ndarray | str] = [""] * len(audios)
    all_windows: list[np.ndarray] = []
    owners: list[tuple[int, list[int], list[float]]] = []
    for i, x in enumerate(audios):
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        if x.size < MIN_INPUT_SECONDS * SCORING_SR or is_silent(x):
            results[i] = f"audio is empty or silent ({x.size / SCORING_SR:.2f} s): no speaker embedding"
            continue
        y = encoder.prepare(x)
        if y.size < MIN_INPUT_SECONDS * SCORING_SR:
            results[i] = f"no speech left after {encoder.name} preprocessing ({y.size / SCORING_SR:.2f} s)"
            continue
        bounds = window_bounds(len(y), SCORING_SR, windows.window_s, windows.hop_s, windows.min_s)
        ids = list(range(len(all_windows), len(all_windows) + len(bounds)))
        all_windows.extend(y[s:e] for s, e in bounds)
        owners.append((i, ids, [float(e - s) for s, e in bounds]))
    if all_windows:
        embs = np.asarray(encoder.embed_windows(all_windows), dtype=np.float64)
        for i, ids, weights in owners:
            e = embs[ids]
            if not np.all(np.isfinite(e)):
                results[i] = f"{encoder.name} produced non-finite embeddings"
            else:
                results[i] = pool_embeddings(e, np.asarray(weights))
    return results


# ---------------------------------------------------------------------------
# The scorer
# ---------------------------------------------------------------------------

_KNOWN_KEYS = {"model", "model_path", "window_seconds", "hop_seconds", "min_window_seconds", "batch_size", "encoder_batch"}


@register_scorer("sim")
class SpeakerSimilarity(BaseScorer):
    """Cosine speaker similarity vs the prompt (`sim`) and vs the reference (`sim_ref`)."""

    name: ClassVar[str] = "sim"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"sim": True, "sim_ref": True}
    needs: ClassVar[frozenset[str]] = frozenset({NEEDS_PROMPT})
    uses: ClassVar[frozenset[str]] = frozenset({NEEDS_REFERENCE})  # sim_ref when there is one
    CACHE_SIZE: ClassVar[int] = 512

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        cfg = self.config
        unknown = sorted(set(cfg) - _KNOWN_KEYS)
        if unknown:
            raise ConfigError(f"[metrics] sim: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN_KEYS))}")
        self.model_name = str(cfg.get("model", "resemblyzer"))
        if self.model_name not in MODEL_SPECS:
            raise ConfigError(f"[metrics] sim: unknown model {self.model_name!r}; known: {', '.join(MODEL_SPECS)}")
        self.model_path = cfg.get("model_path")
        try:
            self.windows = WindowConfig(
                window_s=float(cfg.get("window_seconds", 10.0)),
                hop_s=float(cfg["hop_seconds"]) if cfg.get("hop_seconds") is not None else None,
                min_s=float(cfg.get("min_window_seconds", 1.0)),
            )
            self.batch_size = int(cfg.get("batch_size", 8))
            self.encoder_batch = int(cfg.get("encoder_batch", 64))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"[metrics] sim: bad number: {e}") from None
        w = self.windows
        if not (w.window_s >= 1.0 and (w.hop_s is None or 0 < w.hop_s <= w.window_s) and 0 < w.min_s <= w.window_s):
            raise ConfigError("[metrics] sim: need window_seconds >= 1, 0 < hop_seconds <= window, 0 < min_window_seconds <= window")
        if self.batch_size < 1 or self.encoder_batch < 1:
            raise ConfigError("[metrics] sim: batch_size and encoder_batch must be >= 1")
        self.encoder: SpeakerEncoder | None = None
        self._ref: ModelRef | None = None
        self._cache: OrderedDict[str, np.ndarray | str] = OrderedDict()

    def settings(self) -> dict[str, Any]:
        w = self.windows
        return {
            "model": self.model_name,
            "window_seconds": w.window_s,
            "hop_seconds": w.hop_s if w.hop_s is not None else w.window_s,
            "min_window_seconds": w.min_s,
        }

    def models(self) -> list[ModelRef]:
        if self._ref is None:
            from halle_bench.audio import sha256_file

            path = self._weights_path()
            self._ref = ModelRef(self.model_name, sha256_file(path), str(path))
        return [self._ref]

    def _weights_path(self) -> Path:
        """The main weight file (for ecapa: embedding_model.ckpt inside the folder)."""
        from halle_bench.models import resolve

        spec = MODEL_SPECS[self.model_name]
        if self.model_name == "ecapa" and self.model_path is not None and Path(self.model_path).expanduser().is_dir():
            return resolve(spec, Path(self.model_path).expanduser() / spec.filename)
        return resolve(spec, self.model_path)

    def load(self, device: str) -> None:
        super().load(device)
        path = self._weights_path()
        if self.model_name == "resemblyzer":
            from .spk_resemblyzer import ResemblyzerEncoder

            self.encoder = ResemblyzerEncoder.from_checkpoint(path, device=device, batch=self.encoder_batch)
        elif self.model_name == "ecapa":
            from .spk_ecapa import EcapaEncoder

            self.encoder = EcapaEncoder.from_folder(path.parent, device=device, batch=self.encoder_batch)
        else:
            from .spk_wavlm import WavLMTDNNEncoder

            self.encoder = WavLMTDNNEncoder.from_checkpoint(path, device=device, batch=self.encoder_batch)
        self._cache.clear()

    def close(self) -> None:
        self.encoder = None
        self._cache.clear()

    # -- scoring ---------------------------------------------------------

    def embed(self, audios: list[np.ndarray]) -> list[np.ndarray | str]:
        """Embeddings for waveforms, each distinct waveform computed once (and cached)."""
        if self.encoder is None:
            raise RuntimeError("SpeakerSimilarity.load() must be called before scoring")
        keys = [sha256_array(np.asarray(a, dtype=np.float32).reshape(-1)) for a in audios]
        todo: dict[str, np.ndarray] = {}
        for k, a in zip(keys, audios):
            if k not in self._cache and k not in todo:
                todo[k] = a
        if todo:
            for k, e in zip(todo, embed_utterances(self.encoder, list(todo.values()), self.windows)):
                self._cache[k] = e
        out = []
        for k in keys:
            self._cache.move_to_end(k)
            out.append(self._cache[k])
        while len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)
        return out

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
        embs = self.embed(audios) if audios else []
        for i, g, r in slots:
            gen, prompt = embs[g], embs[g + 1]
            if isinstance(gen, str):
                outputs[i] = ScoreOutput(error=f"generated audio: {gen}")
                continue
            if isinstance(prompt, str):
                outputs[i] = ScoreOutput(error=f"prompt audio: {prompt}")
                continue
            values: dict[str, Any] = {"sim": cosine(gen, prompt), "sim_ref": None, "sim_model": self.model_name}
            if r is not None:
                ref = embs[r]
                # A reference that cannot be embedded only loses sim_ref, not the item.
                values["sim_ref"] = None if isinstance(ref, str) else cosine(gen, ref)
            outputs[i] = ScoreOutput(values=values)
        return [o if o is not None else ScoreOutput(error="not scored") for o in outputs]


def speaker_similarity(encoder: SpeakerEncoder, a: np.ndarray, b: np.ndarray, windows: WindowConfig = WindowConfig()) -> float:
    """Cosine similarity of two waveforms' utterance embeddings (a convenience for scripts)."""
    ea, eb = embed_utterances(encoder, [a, b], windows)
    for e in (ea, eb):
        if isinstance(e, str):
            raise HalleBenchError(e)
    return cosine(ea, eb)


__all__ = [
    "CheckpointError",
    "SpeakerEncoder",
    "SpeakerSimilarity",
    "WindowConfig",
    "cosine",
    "embed_utterances",
    "group_by_length",
    "load_state_strict",
    "pool_embeddings",
    "run_grouped",
    "speaker_similarity",
    "torch_load",
    "window_bounds",
]
