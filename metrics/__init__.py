"""Scorers: one module per concern, each a pure function for the maths plus a thin
class that owns a loaded model (installed as `halle_bench.metrics`).

| config key  | class                 | module      | what                                               |
|-------------|-----------------------|-------------|----------------------------------------------------|
| `wer`       | `WERScorer`           | wer, asr    | long-form Whisper ASR, named normalisers, WER/CER, WER by position, loops |
| `sim`       | `SpeakerSimilarity`   | speaker     | resemblyzer / ECAPA / WavLM-TDNN, vs prompt and reference |
| `quality`   | `QualityScorer`       | quality     | DNSMOS P.835/P.808 (offline), UTMOS22 strong (user checkpoint) |
| `intrusive` | `IntrusiveScorer`     | intrusive   | PESQ wb/nb, STOI, ESTOI against the reference      |
| `longform`  | `LongformScorer`      | longform    | pauses, duration ratio, truncation / overrun       |

Pure maths: `normalizers.get_normalizer`, `edit.align_words`, `wer.summarize`,
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
    "QualityScorer": "quality",
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
