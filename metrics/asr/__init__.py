"""Long-form Whisper ASR for scoring: windowing, engines (backends), model formats, presets.

| module        | what                                                                   |
|---------------|------------------------------------------------------------------------|
| windowing     | where to cut long audio (pauses; overlap where there is none), merging |
| longform      | `LongFormASR`: windows -> batched decoding -> fallback -> one text     |
| backends/     | `ctranslate2` (default), `openai-whisper`, `transformers` engines      |
| formats       | on-disk model formats by name (`FORMATS`): detect, identify, engine    |
| models        | registered Whisper models, `detect_format` of a path, `build_backend`  |
| protocols     | `seed-tts-eval` and `f5` presets                                       |
"""

from .backends import BACKENDS, ASRBackend, Decoded, backend_names, get_backend, register_backend
from .formats import FORMATS, ModelFormat, register_format
from .longform import DecodingSettings, LongFormASR, Transcript, WhisperASR, WindowResult, window_seed
from .models import ASRModel, build_backend, detect_format, resolve_asr, resolve_whisper
from .protocols import PROTOCOLS, Protocol, apply_protocol, get_protocol
from .windowing import Cut, WindowPlan, merge_texts, plan_windows, split_overlap, window_bounds

__all__ = [
    "BACKENDS", "FORMATS", "ModelFormat", "register_format",
    "ASRBackend", "ASRModel", "Cut", "Decoded", "DecodingSettings", "LongFormASR", "PROTOCOLS", "Protocol",
    "Transcript", "WhisperASR", "WindowPlan", "WindowResult", "apply_protocol", "backend_names", "build_backend",
    "detect_format", "get_backend", "get_protocol", "merge_texts", "plan_windows", "register_backend",
    "resolve_asr", "resolve_whisper", "split_overlap", "window_bounds", "window_seed",
]
