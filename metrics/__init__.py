"""Scorers: one module per concern, each a pure function for the maths plus a thin
class that owns a loaded model (installed as `halle_bench.metrics`).

| config key  | class                 | module      | what                                               |
|-------------|-----------------------|-------------|----------------------------------------------------|
| `wer`       | `WERScorer`           | wer, asr    | long-form Whisper ASR, named normalisers, WER/CER, WER by position, loops |
| `sim`       | `SpeakerSimilarity`   | speaker     | window cosines vs prompt and reference (mean, min, last, by position); encoders by name in spk_registry |
| `quality`   | `QualityScorer`       | quality     | MOS per window to the clip's end (mean, min, last, by position); DNSMOS / UTMOS by name in quality_registry |
| `intrusive` | `IntrusiveScorer`     | intrusive   | PESQ wb/nb, STOI, ESTOI against the reference      |
| `longform`  | `LongformScorer`      | longform    | pauses, duration ratio, truncation / overrun       |

Pure maths: `normalizers.get_normalizer`, `edit.align_words`, `wer.summarize`,
`spk_windows.window_similarity`, `quality_windows.cover_starts`,
`longform.pause_segments`, `longform.wasserstein_1d`, `intrusive.pesq_score`, ...
Scorer classes are imported lazily (they pull in torch, whisper, onnxruntime).
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import (
    NEEDS_PROMPT,
    NEEDS_REFERENCE,
    NEEDS_TEXT,
    BaseScorer,
    ModelRef,
    Scorer,
    ScoreItem,
    ScoreOutput,
    build_scorer,
    register_scorer,
    scorer_names,
)

_LAZY = {
    "WERScorer": "wer",
    "summarize": "wer",
    "WhisperASR": "asr",
    "LongFormASR": "asr",
    "DecodingSettings": "asr",
    "get_normalizer": "normalizers",
    "align_words": "edit",
    "SpeakerSimilarity": "speaker",
    "register_speaker_model": "spk_registry",
    "speaker_model_names": "spk_registry",
    "window_similarity": "spk_windows",
    "QualityScorer": "quality",
    "register_quality_model": "quality_registry",
    "quality_model_names": "quality_registry",
    "Dnsmos": "dnsmos",
    "IntrusiveScorer": "intrusive",
    "LongformScorer": "longform",
    "pause_segments": "longform",
    "wasserstein_1d": "longform",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(name)


__all__ = [
    "NEEDS_PROMPT", "NEEDS_REFERENCE", "NEEDS_TEXT", "BaseScorer", "ModelRef", "Scorer", "ScoreItem",
    "ScoreOutput", "build_scorer", "register_scorer", "scorer_names", *sorted(_LAZY),
]
