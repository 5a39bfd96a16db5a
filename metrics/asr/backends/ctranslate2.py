"""CTranslate2 engine: runs a CTranslate2 Whisper folder (`model.bin` + `config.json`)
directly, the format of the shipped Whisper base and of faster-whisper's models.

Windows are decoded in batches (one encoder call and one batched beam search per
batch). `compute_type` is CTranslate2's: "auto" picks int8 on CPU (8-bit weights and
activations; on espeak speech the same WER as float32 within noise, see
docs/protocols.md) and float16 on CUDA; "int8", "int8_float16", "float16", "float32"...
may be given; one the device cannot run is an error naming the supported ones.
`threads` is CTranslate2's intra-op thread count (0: its own default).

The temperature fallback (sampling) does not run on CTranslate2: its random generator
is per worker thread and seeded once, when that thread first samples, so
`set_random_seed` before a call does not make the call repeatable (measured: the same
window and seed gave two different texts). Sampled windows are decoded instead by the
openai-whisper engine on the same weights (converted once, on the first fallback), with
torch seeded per window, so the same window always gets the same text. Fallbacks are
rare (none on the ~400 s of bench_peers.py), so this costs nothing in the usual case.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from halle_bench.errors import ConfigError

from ...base import ModelRef
from .base import Decoded, compression_ratio, log_mels, num_languages_for, prompt_tokens, register_backend


@register_backend("ctranslate2")
class CTranslate2Backend:
    name = "ctranslate2"
    formats = ("ctranslate2",)

    def __init__(self, folder: str | Path, ref: ModelRef, settings, device: str = "cpu",
                 compute_type: str = "auto", threads: int | None = None):
        self.folder = Path(folder)
        self._ref = ref
        self.s = settings
        self.device = device
        self.compute_type = compute_type
        self.threads = int(threads or 0)
        self.workers = self._cpu_workers() if device == "cpu" and not self.threads else 1
        self._model = None
        self._sampler = None

    @property
    def model_ref(self) -> ModelRef:
        return self._ref

    def _resolved_compute_type(self) -> str:
        if self.compute_type != "auto":
            return self.compute_type
        return "float16" if self.device.startswith("cuda") else "int8"

    def settings(self) -> dict[str, Any]:
        import ctranslate2

        return {"engine": f"ctranslate2 {ctranslate2.__version__}", "compute_type": self._resolved_compute_type()}

    @property
    def multilingual(self) -> bool:
        self.load()
        return bool(self._model.is_multilingual)

    def load(self) -> None:
        if self._model is not None:
            return
        import ctranslate2

        dev, _, idx = self.device.partition(":")
        ct = self._resolved_compute_type()
        supported = ctranslate2.get_supported_compute_types(dev) if dev in ("cpu", "cuda") else set()
        if ct not in ("default", "auto") and ct not in supported:
            raise ConfigError(f"[metrics] wer: compute_type {ct!r} is not supported on {self.device}; supported: {', '.join(sorted(supported))}")
        try:
            intra = max(1, _cores() // self.workers) if self.workers > 1 else self.threads
            self._model = ctranslate2.models.Whisper(str(self.folder), device=dev, device_index=int(idx or 0),
                                                     compute_type=ct, intra_threads=intra, inter_threads=self.workers)
        except (RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot load CTranslate2 Whisper model from {self.folder}: {e}") from None
        n_vocab = self._vocab_size()
        self._tok, self._p = prompt_tokens(bool(self._model.is_multilingual), num_languages_for(n_vocab), self.s.language)

    def _vocab_size(self) -> int:
        # CTranslate2 does not expose the vocabulary size; vocabulary.txt / the model's
        # language count give it (large-v3: 100 languages, 51866 tokens).
        m = self._model
        if not m.is_multilingual:
            return 51864
        return 51765 + 1 + int(m.num_languages)

    def _features(self, windows: Sequence[np.ndarray]):
        import ctranslate2

        return ctranslate2.StorageView.from_array(np.ascontiguousarray(log_mels(windows, self._model.n_mels)))

    # On CPU the encoder is cheaper one window at a time than batched (measured on 2
    # cores, Whisper base int8: 0.85 s of CPU per 30 s window alone, 1.01 s in a batch
    # of 4: the batched activations fall out of cache), while the beam search gains from
    # the batch. So windows are encoded singly and their encoder outputs decoded together
    # (CTranslate2 skips its encoder when given encoder output). Same numbers either way:
    # the texts, scores and no-speech probabilities were compared equal.
    ENCODE_BATCH_CPU = 1

    @staticmethod
    def _cpu_workers() -> int:
        # Whisper's per-op parallelism is poor on a few cores (base's matrices are small:
        # measured ~1 core busy of 2), so on CPU two model replicas (CTranslate2
        # inter_threads) each take half the cores and half the windows. Same numbers:
        # every window's result is independent of the others in its batch.
        return 2 if _cores() >= 2 else 1

    def _encoded(self, windows: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Encoder outputs, one [1500, d] array per window (see ENCODE_BATCH_CPU)."""
        n = self.ENCODE_BATCH_CPU
        groups = [windows[i : i + n] for i in range(0, len(windows), n)]
        enc = lambda g: np.array(self._model.encode(self._features(g), to_cpu=True))  # noqa: E731
        if self.workers > 1 and len(groups) > 1:
            from concurrent.futures import ThreadPoolExecutor

            # CTranslate2 releases the GIL and runs concurrent calls on its replicas
            with ThreadPoolExecutor(self.workers) as ex:
                outs = list(ex.map(enc, groups))
        else:
            outs = [enc(g) for g in groups]
        return [e for o in outs for e in o]

    def _generate(self, windows: Sequence[np.ndarray], **kw) -> list:
        import ctranslate2

        prompt = list(self._p.sot_sequence)
        if self.device != "cpu":
            return self._model.generate(self._features(windows), [prompt] * len(windows), **kw)
        encs = self._encoded(windows)
        # windows come sorted by length: dealing them out in turn gives each replica a
        # similar share of the work
        parts = [list(range(w, len(windows), self.workers)) for w in range(min(self.workers, len(windows)))]
        pending = [self._model.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack([encs[i] for i in part]))),
                                        [prompt] * len(part), asynchronous=True, **kw) for part in parts]
        res: dict[int, Any] = {}
        for part, rs in zip(parts, pending):
            for i, r in zip(part, rs):
                res[i] = r.result()
        return [res[i] for i in range(len(windows))]

    def decode(self, windows: Sequence[np.ndarray], temperature: float, seed: int | None = None) -> list[Decoded]:
        import ctranslate2

        self.load()
        s, p = self.s, self._p
        common = dict(return_scores=True, return_no_speech_prob=True, suppress_blank=True,
                      suppress_tokens=list(p.suppress), max_length=448)
        if temperature == 0:
            res = self._generate(windows, beam_size=max(1, s.beam_size), **common)
        else:
            return self._sample(windows, temperature, seed)
        out = []
        for r in res:
            k = 0  # beam search returns the best hypothesis first
            ids = [t for t in r.sequences_ids[k] if t < p.eot]
            text = self._tok.decode(ids).strip()
            # CTranslate2's score is the sum log prob / length (length_penalty 1); openai-whisper's
            # avg_logprob divides by length + 1 (it counts the end token), as faster-whisper does.
            n = len(r.sequences_ids[k])
            avg = float(r.scores[k]) * n / (n + 1)
            out.append(Decoded(text, avg, compression_ratio(text), float(r.no_speech_prob), temperature))
        return out

    def _sample(self, windows: Sequence[np.ndarray], temperature: float, seed: int | None) -> list[Decoded]:
        """Seeded sampling on the openai-whisper engine (see the module docstring)."""
        if len(windows) != 1:
            raise ValueError("sampling decodes one window at a time (its seed is its own)")
        if self._sampler is None:
            from ..models import REGISTERED, resolve_whisper
            from .openai_whisper import OpenAIWhisperBackend

            pt, _ = resolve_whisper(self._ref.name if self._ref.name in REGISTERED else self.folder)
            self._sampler = OpenAIWhisperBackend(pt, self._ref, self.s, device=self.device, threads=self.threads or None, converted=True)
        return self._sampler.decode(windows, temperature, seed)

    def close(self) -> None:
        self._model = None
        self._sampler = None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
