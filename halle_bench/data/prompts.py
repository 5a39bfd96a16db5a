"""Prompt policies: which audio each system hears as the voice to clone.

- ``given``: the manifest's prompt as is. An utterance whose manifest row names no
  prompt keeps none (we do not silently switch policy for some rows, which would mix
  two conditions in one bucket); ``extra["prompt_error"]`` says why, and the runner
  fails that utterance for every system that needs a prompt (ground-truth and wavdir
  do not).
- ``cross-utterance``: the prompt is another utterance of the same speaker, its
  reference audio cut to the first ``seconds``. The choice is a hash of (seed, id)
  into the speaker's other utterances sorted by id, so it does not depend on the
  manifest's order or on ``--limit``, and it is never the utterance itself. If the
  chosen file is unreadable the next one (in sorted order, wrapping) is tried.
  ``prompt_text`` is that utterance's text only when the whole file is used (it is
  not longer than ``seconds``); a cut has no known transcript without an aligner, so it
  is None then and systems that need a transcript must handle it.
- ``head``: the first ``seconds`` of the utterance's own reference audio, with
  ``prompt_from_reference=True, prompt_start=0, prompt_end=seconds`` so similarity
  scoring can leave the prompt part out. The system still speaks the whole text, so
  durations are compared over the whole reference: the long-form scorer puts the prompt
  back in front of the cut reference (``ScoreItem.prompt_cut``). A reference not longer
  than ``seconds`` leaves nothing to generate and gets no prompt. ``prompt_text`` is None
  (same reason).

Prompt files are written as mono 16-bit wavs at the source's own sample rate under
``workdir/prompts/<policy>/<id>.wav`` (same input, same bytes: cache keys hash them).
Problems are never raised for one utterance: it keeps no prompt and
``extra["prompt_error"]`` carries the reason for the runner's failed row.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..audio import save_audio
from ..errors import ConfigError, UtteranceError
from .utterance import Utterance

PROMPT_POLICIES = ("given", "cross-utterance", "head")
PROMPT_ERROR = "prompt_error"  # key in Utterance.extra


def read_head(path: Path, seconds: float) -> tuple[np.ndarray, int, float]:
    """The first `seconds` of a file as mono float32 at its own rate, plus the file's
    total length in seconds. Reads only the frames it needs (long references)."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise UtteranceError(f"audio file not found: {p}")
    try:
        with sf.SoundFile(str(p)) as f:
            sr = int(f.samplerate)
            total = f.frames / sr
            data = f.read(frames=min(f.frames, int(round(seconds * sr))), dtype="float32", always_2d=True)
    except Exception as e:  # LibsndfileError / RuntimeError for corrupt files
        raise UtteranceError(f"cannot read audio {p}: {e}") from None
    x = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if x.size == 0:
        raise UtteranceError(f"audio file has no samples: {p}")
    if not np.all(np.isfinite(x)):
        raise UtteranceError(f"audio contains NaN/inf samples: {p}")
    return x.astype(np.float32, copy=False), sr, total


def choose_index(seed: int, utt_id: str, n: int) -> int:
    """Deterministic, platform-independent choice in range(n) (not Python's hash())."""
    h = hashlib.sha256(f"{seed}\0{utt_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") % n


def _no_prompt(u: Utterance, reason: str) -> Utterance:
    return u.with_(
        prompt_audio=None,
        prompt_text=None,
        prompt_start=None,
        prompt_end=None,
        prompt_from_reference=False,
        extra={**u.extra, PROMPT_ERROR: reason},
    )


def _given(u: Utterance) -> Utterance:
    if u.prompt_audio is None:
        return u.with_(extra={**u.extra, PROMPT_ERROR: "the manifest names no prompt audio for this utterance"})
    return u


def _head(u: Utterance, seconds: float, out_dir: Path) -> Utterance:
    if u.audio is None:
        return _no_prompt(u, "head prompt: the utterance has no reference audio")
    try:
        x, sr, total = read_head(u.audio, seconds)
    except UtteranceError as e:
        return _no_prompt(u, f"head prompt: {e}")
    if total <= seconds:
        return _no_prompt(u, f"head prompt: reference audio ({total:.2f} s) is not longer than the prompt ({seconds:g} s)")
    dst = out_dir / f"{u.id}.wav"
    save_audio(dst, x, sr)
    return u.with_(
        prompt_audio=dst,
        prompt_text=None,
        prompt_start=0.0,
        prompt_end=float(seconds),
        prompt_from_reference=True,
        extra={**{k: v for k, v in u.extra.items() if k != PROMPT_ERROR}},
    )


def _cross(u: Utterance, by_speaker: dict[str, list[Utterance]], seconds: float, seed: int, out_dir: Path) -> Utterance:
    if u.speaker is None:
        return _no_prompt(u, "cross-utterance prompt: the manifest gives no speaker for this utterance")
    others = [c for c in by_speaker[u.speaker] if c.id != u.id]
    if not others:
        return _no_prompt(u, f"cross-utterance prompt: speaker {u.speaker!r} has no other utterance with audio")
    start = choose_index(seed, u.id, len(others))
    problems = []
    for k in range(len(others)):
        c = others[(start + k) % len(others)]
        try:
            x, sr, total = read_head(c.audio, seconds)  # type: ignore[arg-type]
        except UtteranceError as e:
            problems.append(str(e))
            continue
        dst = out_dir / f"{u.id}.wav"
        save_audio(dst, x, sr)
        whole = total <= seconds
        return u.with_(
            prompt_audio=dst,
            prompt_text=c.text if whole else None,
            prompt_start=None,
            prompt_end=None,
            prompt_from_reference=False,
            extra={**{k2: v for k2, v in u.extra.items() if k2 != PROMPT_ERROR}, "prompt_id": c.id},
        )
    return _no_prompt(u, "cross-utterance prompt: no readable audio among the speaker's other utterances: " + "; ".join(problems))


def apply_prompt_policy(
    utts: Sequence[Utterance], policy: str, seconds: float, workdir: Path, seed: int
) -> list[Utterance]:
    """Copies of `utts` with prompts set by `policy` (see the module docstring)."""
    if policy not in PROMPT_POLICIES:
        raise ConfigError(f"unknown prompt policy {policy!r}; expected one of {', '.join(PROMPT_POLICIES)}")
    if policy == "given":
        return [_given(u) for u in utts]
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"prompt_seconds must be a positive number, got {seconds!r}")
    out_dir = Path(workdir) / "prompts" / policy
    if policy == "head":
        return [_head(u, float(seconds), out_dir) for u in utts]
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for u in utts:
        if u.speaker is not None and u.audio is not None:
            by_speaker[u.speaker].append(u)
    for group in by_speaker.values():
        group.sort(key=lambda c: c.id)
    return [_cross(u, by_speaker, float(seconds), int(seed), out_dir) for u in utts]
