"""Presets for the peers' WER protocols: `[metrics] wer = { protocol = "f5", asr = "/path" }`.

A preset fills the wer scorer's settings that define a peer's number (engine, beam,
normaliser) and names what the rest of its protocol uses (how WER is averaged, the
similarity model), so a run can be compared with the figures those papers print.
Their ASR models do not exist offline: `asr` must be given as a path, and a preset
without one is a config error naming the model to provide. Keys given explicitly
beside `protocol` win, and the row's `protocol` then says which were changed.

What each reproduces and where halle-bench goes beyond: docs/protocols.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Protocol:
    name: str
    backend: str  # the engine the peer runs
    beam_size: int
    normalizer: str
    wer_average: str  # "macro": mean of per-utterance WER (the leaderboard's wer_macro)
    sim_model: str  # the speaker model the peer reports similarity with ([metrics] sim = { model = ... })
    asr_model: str  # what `asr` should point to
    source: str  # where the peer's protocol is defined

    def wer_settings(self) -> dict[str, Any]:
        return {"backend": self.backend, "beam_size": self.beam_size, "normalizer": self.normalizer}


PROTOCOLS: dict[str, Protocol] = {
    "seed-tts-eval": Protocol(
        name="seed-tts-eval",
        backend="transformers",
        beam_size=1,  # the transformers ASR pipeline's default generation: greedy
        normalizer="seed-tts-eval",
        wer_average="macro",
        sim_model="wavlm-tdnn",
        asr_model="a Hugging Face transformers folder of openai/whisper-large-v3",
        source="seed-tts-eval run_wer.py (English: whisper-large-v3 via transformers, punctuation removed "
        "except apostrophes, lower-cased; per-utterance WER averaged)",
    ),
    "f5": Protocol(
        name="f5",
        backend="ctranslate2",
        beam_size=5,
        normalizer="f5",
        wer_average="macro",
        sim_model="wavlm-tdnn",
        asr_model="a CTranslate2 (faster-whisper) folder of Whisper large-v3",
        source="F5-TTS eval utils (English: faster-whisper large-v3, beam 5, punctuation and apostrophes "
        "removed, lower-cased; per-utterance WER averaged)",
    ),
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(sorted(PROTOCOLS))}")
    return PROTOCOLS[name]


def apply_protocol(config: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The wer config with the preset's defaults filled in, and the protocol label for rows.

    Raises ValueError for an unknown protocol or a missing `asr` path.
    """
    name = config.get("protocol")
    if not name:
        return dict(config), None
    p = get_protocol(str(name))
    if not config.get("asr"):
        raise ValueError(f"protocol {p.name!r} scores with {p.asr_model}, which cannot be downloaded here: give its path as asr = \"/path\"")
    out = {**p.wer_settings(), **config}
    changed = sorted(k for k, v in p.wer_settings().items() if k in config and config[k] != v)
    return out, p.name + (f" (changed: {', '.join(changed)})" if changed else "")
