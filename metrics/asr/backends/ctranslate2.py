"""CTranslate2 engine: runs a CTranslate2 Whisper folder (`model.bin` + `config.json`)
directly, the format of the shipped Whisper base and of faster-whisper's models.

Windows are decoded in batches (one encoder call and one batched beam search per
batch). `compute_type` is CTranslate2's: "auto" picks int8 on CPU (8-bit weights and
activations; on espeak speech the same WER as float32 within noise, see
docs/protocols.md) and float16 on CUDA; "int8", "int8_float16", "float16", "float32"...
may be given; one the device cannot run is an error naming the supported ones.
`threads` is CTranslate2's intra-op thread count (0: its own default).
"""

from __future__ import annotations

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
        self._model = None

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
            self._model = ctranslate2.models.Whisper(str(self.folder), device=dev, device_index=int(idx or 0),
                                                     compute_type=ct, intra_threads=self.threads)
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

    def decode(self, windows: Sequence[np.ndarray], temperature: float, seed: int | None = None) -> list[Decoded]:
        import ctranslate2

        self.load()
        s, p = self.s, self._p
        feats = self._features(windows)
        prompts = [list(p.sot_sequence)] * len(windows)
        common = dict(return_scores=True, return_no_speech_prob=True, suppress_blank=True,
                      suppress_tokens=list(p.suppress), max_length=448)
        if temperature == 0:
            res = self._model.generate(feats, prompts, beam_size=max(1, s.beam_size), **common)
        else:
            if len(windows) != 1:
                raise ValueError("sampling decodes one window at a time (its seed is its own)")
            ctranslate2.set_random_seed(int(seed or 0) % (2**31))
            res = self._model.generate(feats, prompts, beam_size=1, num_hypotheses=s.best_of, sampling_topk=0,
                                       sampling_temperature=temperature, **common)
        out = []
        for r in res:
            # best hypothesis: beam search returns it first; for samples take the best score
            k = int(np.argmax(r.scores)) if temperature > 0 else 0
            ids = [t for t in r.sequences_ids[k] if t < p.eot]
            text = self._tok.decode(ids).strip()
            # CTranslate2's score is the sum log prob / length (length_penalty 1); openai-whisper's
            # avg_logprob divides by length + 1 (it counts the end token), as faster-whisper does.
            n = len(r.sequences_ids[k])
            avg = float(r.scores[k]) * n / (n + 1)
            out.append(Decoded(text, avg, compression_ratio(text), float(r.no_speech_prob), temperature))
        return out

    def close(self) -> None:
        self._model = None
