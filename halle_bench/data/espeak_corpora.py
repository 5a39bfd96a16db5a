"""Small corpora in the published LibriSpeech and LibriTTS layouts, spoken by espeak-ng.

For tests, the long-form benchmark script and trying `datasets build-longform` without
downloading anything: the readers and the builder see exactly the folder shapes the
real corpora have (LibriSpeech: 16 kHz flac + one ``.trans.txt`` per chapter, upper-case
text without punctuation; LibriTTS: 24 kHz wav + ``.normalized.txt``/``.original.txt``).
Each utterance gets `PAD_S` of silence at both ends, as LibriSpeech's segmentation
leaves around its utterances, so joined segments have pauses between sentences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..espeak import espeak

PAD_S = 0.2


@dataclass(frozen=True)
class Chapter:
    speaker: str  # digits, as in the corpora
    chapter: str  # digits
    voice: str  # espeak-ng voice, e.g. "en-us", "en-gb+f3"
    sentences: tuple[str, ...]
    speed: int = 160


def _padded(text: str, voice: str, speed: int, sr: int) -> np.ndarray:
    x = espeak(text, voice=voice, speed=speed, sr=sr)
    pad = np.zeros(int(PAD_S * sr), dtype=np.float32)
    return np.concatenate([pad, x, pad])


def librispeech_text(sentence: str) -> str:
    """LibriSpeech's transcript style: upper case, apostrophes kept, no other punctuation."""
    return " ".join(re.sub(r"[^A-Za-z0-9' ]+", " ", sentence).upper().split())


def make_librispeech(root: str | Path, chapters: Sequence[Chapter]) -> Path:
    """`root/<speaker>/<chapter>/<speaker>-<chapter>-<nnnn>.flac` + `.trans.txt`."""
    import soundfile as sf

    root = Path(root)
    for ch in chapters:
        d = root / ch.speaker / ch.chapter
        d.mkdir(parents=True, exist_ok=True)
        lines = []
        for i, s in enumerate(ch.sentences):
            uid = f"{ch.speaker}-{ch.chapter}-{i:04d}"
            sf.write(str(d / f"{uid}.flac"), _padded(s, ch.voice, ch.speed, 16000), 16000, format="FLAC", subtype="PCM_16")
            lines.append(f"{uid} {librispeech_text(s)}\n")
        (d / f"{ch.speaker}-{ch.chapter}.trans.txt").write_text("".join(lines), encoding="utf-8")
    return root


def make_libritts(root: str | Path, chapters: Sequence[Chapter], sentences_per_paragraph: int = 3) -> Path:
    """`root/<speaker>/<chapter>/<speaker>_<chapter>_<para>_<sent>.wav` (24 kHz) with
    `.normalized.txt` (the text spoken) and `.original.txt` beside each."""
    import soundfile as sf

    root = Path(root)
    for ch in chapters:
        d = root / ch.speaker / ch.chapter
        d.mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(ch.sentences):
            para, sent = divmod(i, sentences_per_paragraph)
            uid = f"{ch.speaker}_{ch.chapter}_{para:06d}_{sent:06d}"
            sf.write(str(d / f"{uid}.wav"), _padded(s, ch.voice, ch.speed, 24000), 24000, subtype="PCM_16")
            (d / f"{uid}.normalized.txt").write_text(s, encoding="utf-8")
            (d / f"{uid}.original.txt").write_text(s, encoding="utf-8")
    return root


__all__ = ["Chapter", "PAD_S", "librispeech_text", "make_librispeech", "make_libritts"]
