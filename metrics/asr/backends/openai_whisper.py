"""openai-whisper engine: an openai-whisper checkpoint (`.pt`) run by openai-whisper's
own `DecodingTask` (a CTranslate2 folder is converted once to such a checkpoint, see
`metrics/ct2.py`, so any Whisper can be run by the reference implementation).

Batched beam search: openai-whisper 20250625's batched beam search does not run (the
encoder output is not repeated per beam); `_DecodingTask` repeats it, so batches of
any size work. Float sums then differ between batch sizes in the 7th digit of log
probabilities; the texts were identical in every test. fp16 is used only on CUDA.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...base import ModelRef
from ...ct2 import CONVERTER_VERSION
from .base import Decoded, register_backend


@lru_cache(maxsize=1)
def _decoding_task_class():
    from whisper.decoding import DecodingTask

    class _DecodingTask(DecodingTask):
        """whisper's DecodingTask with the encoder output repeated per beam/sample, so
        batched beam search works (see the module docstring)."""

        def _get_audio_features(self, mel):
            feats = super()._get_audio_features(mel)
            return feats.repeat_interleave(self.n_group, dim=0) if self.n_group > 1 else feats

        def _detect_language(self, audio_features, tokens):
            return super()._detect_language(audio_features[:: self.n_group], tokens)

    return _DecodingTask


@register_backend("openai-whisper")
class OpenAIWhisperBackend:
    name = "openai-whisper"
    formats = ("openai-whisper", "ctranslate2")  # the latter converted once

    def __init__(self, checkpoint: str | Path, ref: ModelRef, settings, device: str = "cpu",
                 compute_type: str = "auto", threads: int | None = None, converted: bool = False):
        self.checkpoint = Path(checkpoint)
        self._ref = ref
        self.s = settings
        self.device = device
        if compute_type not in ("auto", "float16", "float32"):
            from halle_bench.errors import ConfigError

            raise ConfigError(f"[metrics] wer: the openai-whisper backend computes in float16 (CUDA) or float32; compute_type {compute_type!r} is not available")
        self.compute_type = compute_type
        # torch CPU threads while decoding (restored after); None keeps torch's setting.
        self.threads = threads
        self.converted = converted
        self._model = None

    @property
    def model_ref(self) -> ModelRef:
        return self._ref

    def _fp16(self) -> bool:
        return self.device.startswith("cuda") and self.compute_type != "float32"

    def settings(self) -> dict[str, Any]:
        import whisper

        d = {"engine": f"openai-whisper {whisper.__version__}", "compute_type": "float16" if self._fp16() else "float32"}
        if self.converted:
            d["converter"] = f"ct2->openai-whisper v{CONVERTER_VERSION}"
        return d

    @property
    def multilingual(self) -> bool:
        self.load()
        return bool(self._model.is_multilingual)

    def load(self) -> None:
        if self._model is None:
            import whisper

            model = whisper.load_model(str(self.checkpoint), device=self.device)
            model.eval()
            self._model = model

    def _options(self, temperature: float):
        import whisper

        s = self.s
        greedy_t0 = temperature == 0 and s.beam_size <= 1
        return whisper.DecodingOptions(
            task="transcribe",
            language=s.language,
            temperature=temperature,
            beam_size=s.beam_size if temperature == 0 and not greedy_t0 else None,
            best_of=s.best_of if temperature > 0 else None,
            without_timestamps=True,
            fp16=self._fp16(),
        )

    def decode(self, windows: Sequence[np.ndarray], temperature: float, seed: int | None = None) -> list[Decoded]:
        import torch
        import whisper

        self.load()
        prev = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        try:
            n_mels = self._model.dims.n_mels
            mel = torch.stack([whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))), n_mels=n_mels)
                               for w in windows]).to(self.device)
            task = _decoding_task_class()(self._model, self._options(temperature))
            if temperature > 0:
                devices = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(int(seed or 0))
                    res = task.run(mel)
            else:
                res = task.run(mel)
        finally:
            if self.threads:
                torch.set_num_threads(prev)
        return [Decoded(r.text.strip(), float(r.avg_logprob), float(r.compression_ratio), float(r.no_speech_prob), temperature) for r in res]

    def close(self) -> None:
        self._model = None
