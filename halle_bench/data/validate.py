"""Data checks before anything is generated: a bad set stops the run (exit 2), naming
every problem with its manifest file and line, and nothing is charged to a system.

What is checked, per planned utterance (after ``--limit`` and the prompt policy, so the
prompts checked are the ones systems would receive):

- the text holds at least one word after normalisation (the WER scorer's normaliser
  when one is configured), a word being a token with a letter or digit: a text of "."
  would otherwise become a reference of "." (whisper-en keeps it) or of nothing, and
  every system's WER on it is noise;
- every audio file the row names (reference ``audio`` and ``prompt_audio``) exists,
  decodes to the end (a truncated flac fails here, not in the middle of scoring), holds
  samples and no NaN/inf;
- the reference is not silent, the prompt is not silent (RMS below `SILENCE_RMS`) and
  lasts at least ``[dataset] min_prompt_seconds`` (default 1.0 s: the speaker encoders
  need about a second of speech, and no zero-shot system clones a voice from less).

Decisions:

- Every problem is reported, not the first: fixing a 2,000-line manifest one error per
  run is not acceptable. Each line reads ``<manifest file>:<line>: <id>: <problem>``.
- A row that names *no* prompt is not a problem here: whether a prompt is needed
  depends on the systems (ground truth and pre-generated audio need none); the runner
  records the policy's reason on the items that needed one, as before.
- A file shared by many rows (a prompt used for every item) is decoded once.
- ``[dataset] validate = false`` skips all of this (for a set already checked, when
  decoding every file first costs too much); problems then surface as failed rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import SILENCE_RMS
from ..errors import ConfigError
from .utterance import Utterance

_WORD = re.compile(r"[^\W_]")
_BLOCK = 1 << 20  # frames per read: a 4-minute file is never held twice in memory


@dataclass(frozen=True)
class AudioFacts:
    """What decoding a whole file found: its length and level, or why it failed."""

    seconds: float = 0.0
    rms: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class DataProblem:
    where: str  # "file:line" of the manifest row (or the file when no line is known)
    utt_id: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.utt_id}: {self.message}"


class DataError(ConfigError):
    """All the problems found in a set; the CLI prints them and exits 2."""

    def __init__(self, problems: Sequence[DataProblem], manifest: str | Path | None = None):
        self.problems = list(problems)
        n = len(self.problems)
        head = (f"{n} data problem{'s' if n != 1 else ''} in the benchmark set; nothing was generated "
                f"(fix the data, or set [dataset] validate = false to record them as failed rows instead):")
        super().__init__(head + "".join(f"\n  {p}" for p in self.problems), manifest)


def audio_facts(path: Path) -> AudioFacts:
    """Decode `path` to the end in blocks; its seconds and RMS, or the reason it fails."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        return AudioFacts(error=f"file not found: {p}")
    if not p.is_file():
        return AudioFacts(error=f"not a file: {p}")
    try:
        with sf.SoundFile(str(p)) as f:
            sr = int(f.samplerate)
            n, sq = 0, 0.0
            while True:
                # Never ask for more than is left: soundfile allocates the frames asked for.
                block = f.read(frames=max(1, min(_BLOCK, f.frames - n)), dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                x = block.mean(axis=1, dtype=np.float64)
                if not np.all(np.isfinite(x)):
                    return AudioFacts(error=f"audio holds NaN/inf samples: {p}")
                n += x.size
                sq += float(np.einsum("i,i->", x, x))  # not np.dot: BLAS threads cost more than they save here
    except Exception as e:  # LibsndfileError, RuntimeError: not audio, or truncated
        return AudioFacts(error=f"not readable as audio ({type(e).__name__}: {e}): {p}")
    if n == 0:
        return AudioFacts(error=f"audio file holds no samples: {p}")
    return AudioFacts(seconds=n / sr, rms=math.sqrt(sq / n))


def text_has_words(text: str | None, normalizer: Callable[[str], str] | None = None) -> bool:
    if not text or not text.strip():
        return False
    # A word holds a letter or digit: whisper-en keeps "..." as ".", which is no word.
    return any(_WORD.search(w) for w in (normalizer(text) if normalizer is not None else text).split())


def find_problems(
    utts: Sequence[Utterance],
    min_prompt_seconds: float = 1.0,
    normalizer: Callable[[str], str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[DataProblem]:
    """Every problem of `utts`, in manifest order (see the module docstring)."""
    facts: dict[str, AudioFacts] = {}

    def check(path: Path) -> AudioFacts:
        k = str(path)
        if k not in facts:
            facts[k] = audio_facts(path)
        return facts[k]

    norm_name = getattr(normalizer, "id", None) or getattr(normalizer, "name", None)
    out: list[DataProblem] = []
    for u in utts:
        where = u.source or "?"
        if not text_has_words(u.text, normalizer):
            how = f" ({norm_name})" if norm_name else ""
            out.append(DataProblem(where, u.id, f"text has no words after normalisation{how}: {u.text!r}"))
        if u.audio is not None:
            f = check(u.audio)
            if f.error:
                out.append(DataProblem(where, u.id, f"reference audio: {f.error}"))
            elif f.rms < SILENCE_RMS:
                out.append(DataProblem(where, u.id, f"reference audio is silent ({f.seconds:.2f} s, RMS {f.rms:.1e}): {u.audio}"))
        if u.prompt_audio is not None:
            f = check(u.prompt_audio)
            src = f" (cut from {u.extra['prompt_id']})" if u.extra.get("prompt_id") else ""
            if f.error:
                out.append(DataProblem(where, u.id, f"prompt audio{src}: {f.error}"))
            elif f.seconds < min_prompt_seconds:
                out.append(DataProblem(where, u.id, f"prompt audio{src} lasts {f.seconds:.2f} s, under "
                                       f"min_prompt_seconds = {min_prompt_seconds:g}: {u.prompt_audio}"))
            elif f.rms < SILENCE_RMS:
                out.append(DataProblem(where, u.id, f"prompt audio{src} is silent ({f.seconds:.2f} s, RMS {f.rms:.1e}): "
                                       f"{u.prompt_audio}"))
        if progress is not None:
            progress(1)
    return out


def validate_utterances(
    utts: Sequence[Utterance],
    manifest: str | Path | None = None,
    min_prompt_seconds: float = 1.0,
    normalizer: Callable[[str], str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Raise `DataError` listing every problem of `utts`; return when there is none."""
    problems = find_problems(utts, min_prompt_seconds, normalizer, progress)
    if problems:
        raise DataError(problems, manifest)


def validate_plan(plan: Any, reporter: Any = None) -> None:
    """The runner's call, before any work: checks `plan.utterances` with the config's
    ``min_prompt_seconds`` and the `wer` scorer's normaliser (when there is one)."""
    ds = plan.config.dataset
    if not getattr(ds, "validate", True):
        return
    wer = plan.scorers.get("wer") if isinstance(plan.scorers, dict) else None
    normalizer = getattr(wer, "normalizer", None)
    if reporter is None:
        validate_utterances(plan.utterances, ds.manifest, ds.min_prompt_seconds, normalizer)
        return
    with reporter.stage("check data", len(plan.utterances)) as st:
        validate_utterances(plan.utterances, ds.manifest, ds.min_prompt_seconds, normalizer, st.advance)


__all__ = ["AudioFacts", "DataError", "DataProblem", "audio_facts", "find_problems", "text_has_words",
           "validate_plan", "validate_utterances"]
