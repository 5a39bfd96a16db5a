"""The ASR backend protocol: an engine that decodes a batch of <= 30 s windows to text.

Everything long-form (cutting, silence, temperature fallback, merging) lives in
`metrics.asr.longform` and is shared; a backend only turns 16 kHz windows into
`Decoded` results, with the same prompt for every engine:
<|startoftranscript|><|lang|><|transcribe|><|notimestamps|>, the same suppressed
tokens (openai-whisper's default set) and the same log-mel front end
(`whisper.log_mel_spectrogram` of the window zero-padded to 30 s), so engines differ
only in their arithmetic and search implementation.

- temperature 0: beam search of `settings.beam_size` (greedy when <= 1), batched;
- temperature > 0: called with one window and a seed: `best_of` samples, the one with
  the highest length-normalised log probability wins; the engine must be seeded so the
  same window, seed and temperature always give the same text.

Register an engine with `@register_backend("name")` (see `BACKENDS`, a
`halle_bench.registry.Registry`); `backend_names()` lists them. An engine declares the
model `formats` it loads (`metrics.asr.formats`); a new on-disk format registers there.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Protocol, Sequence, runtime_checkable

import numpy as np

from halle_bench.registry import Registry, UnknownName

from ...base import ModelRef

SAMPLE_RATE = 16000


@dataclass
class Decoded:
    """One window's decoding result; fields as in openai-whisper's DecodingResult."""

    text: str
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    temperature: float


def compression_ratio(text: str) -> float:
    """gzip-style compression ratio of the text (openai-whisper's loop detector)."""
    b = text.encode("utf-8")
    return len(b) / len(zlib.compress(b)) if b else 0.0


@runtime_checkable
class ASRBackend(Protocol):
    name: ClassVar[str]  # registry name, recorded in every row as `asr_backend`
    formats: ClassVar[tuple[str, ...]]  # on-disk formats it loads (see models.detect_format)

    def load(self) -> None: ...

    @property
    def model_ref(self) -> ModelRef: ...

    @property
    def multilingual(self) -> bool: ...

    def settings(self) -> dict[str, Any]:
        """Engine settings that can change a transcript (compute type, dtype...)."""

    def decode(self, windows: Sequence[np.ndarray], temperature: float, seed: int | None = None) -> list[Decoded]: ...

    def close(self) -> None: ...


BackendFactory = Callable[..., ASRBackend]
# The package's engines, declared by module (each imports its engine lazily); plugins
# add engines with @register_backend in a `[run] plugins` module or through the
# entry-point groups ``halle_bench.asr_backends`` / ``halle_bench.plugins``.
BACKENDS: Registry[BackendFactory] = Registry("ASR backend", "halle_bench.asr_backends")
for _name, _mod in (("ctranslate2", "ctranslate2"), ("openai-whisper", "openai_whisper"), ("transformers", "transformers")):
    BACKENDS.declare(_name, f"halle_bench.metrics.asr.backends.{_mod}")


def register_backend(name: str) -> Callable[[BackendFactory], BackendFactory]:
    return BACKENDS.register(name)


def backend_names() -> list[str]:
    return BACKENDS.names()


def get_backend(name: str) -> BackendFactory:
    from halle_bench.errors import ConfigError

    try:
        return BACKENDS.get(name)
    except UnknownName as e:
        raise ConfigError(str(e)) from None


# -- shared pieces ------------------------------------------------------------------------
def log_mels(windows: Sequence[np.ndarray], n_mels: int) -> np.ndarray:
    """[batch, n_mels, 3000] float32 log-mel features, each window zero-padded to 30 s."""
    import torch
    import whisper

    mels = [whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))), n_mels=n_mels)
            for w in windows]
    return torch.stack(mels).numpy()


@dataclass(frozen=True)
class PromptTokens:
    sot_sequence: tuple[int, ...]  # sot, language, transcribe, notimestamps
    eot: int
    no_speech: int | None
    suppress: tuple[int, ...]  # openai-whisper's default suppression ("-1" + special tokens)
    blank: tuple[int, ...]  # suppressed at the first step only (space, eot)


def prompt_tokens(multilingual: bool, num_languages: int, language: str):
    """The openai-whisper tokenizer and the token ids every backend uses."""
    from whisper.tokenizer import get_tokenizer

    tok = get_tokenizer(multilingual, num_languages=num_languages, language=language if multilingual else "en", task="transcribe")
    sot = tuple(tok.sot_sequence) + (tok.no_timestamps,)  # English-only models: (sot, notimestamps)
    suppress = sorted({*tok.non_speech_tokens, tok.transcribe, tok.translate, tok.sot, tok.sot_prev, tok.sot_lm}
                      | ({tok.no_speech} if tok.no_speech is not None else set()))
    blank = tuple(tok.encode(" ")) + (tok.eot,)
    return tok, PromptTokens(sot, tok.eot, tok.no_speech, tuple(suppress), blank)


def num_languages_for(n_vocab: int) -> int:
    """As openai-whisper's ModelDimensions: 99 for most models, 100 for large-v3."""
    multilingual = n_vocab >= 51865
    return n_vocab - 51765 - int(multilingual)
