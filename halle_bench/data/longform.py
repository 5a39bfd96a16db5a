"""Long-form segments planned from a corpus's utterances (pure: no audio is read here).

How a set is cut (LibriSpeech-Long's way, per length bucket):

- A segment is a run of *consecutive* utterances of one chapter, joined as they are
  (each file keeps its own leading and trailing silence, so the gaps between sentences
  are the reader's). Consecutive means adjacent in the chapter's order; LibriTTS drops
  some sentences, so its runs may skip one where the corpus did.
- The join follows LibriLight's ``cut_by_vad.py`` (the cutter LibriSpeech-Long used):
  walk the chapter in order, accumulate utterances while the piece stays under the
  target, and close it at an utterance boundary, which in these corpora is a pause. The
  target of each piece is drawn uniformly in the bucket [lo, hi) (seeded), so segment
  lengths spread over the bucket instead of piling up at its lower edge; a piece that
  cannot reach ``lo`` before the chapter ends or before the next utterance would take it
  to ``hi`` or beyond is abandoned and the walk starts again one utterance later.
- Segments are cut only between utterances, never inside one: cutting inside a file
  needs word timings to know which words fall on each side, and none of these corpora
  ship them. An utterance longer than a bucket's upper edge is therefore left out of that
  bucket (counted in ``recipe.json`` as ``too_long``); LibriSpeech-Long's examples (up to
  4 minutes) are used whole or joined, never re-cut.
- Within a bucket segments never share an utterance; across buckets they may (test-clean
  holds 5.4 hours, not enough for disjoint buckets of a useful size). ``recipe.json``
  lists each segment's sources, so anyone can check.
- Counts are balanced: every bucket gets the same number of segments (``per_bucket``;
  default the smallest non-empty bucket's count), picked round-robin over speakers in a
  seeded order so that no reader dominates a bucket.
- The prompt of a segment is another utterance of the same speaker that is not in the
  segment: preferably one that can be used whole (its length within ``[prompt_seconds,
  prompt_seconds + slack]``, so its transcript is exact), else one at least
  ``prompt_seconds`` long, cut at a pause near ``prompt_seconds`` (`pauses.cut_at_pause`:
  the first within ``slack`` after it, else the last within ``slack`` before it, never
  under the minimum prompt length) and without a transcript then (``prompt_text`` is
  null, ``prompt_cut`` says where it ends). Which one is a
  hash of (seed, segment id), not of the order of anything. A segment whose speaker has no
  such utterance gets no prompt and is dropped (counted as ``no_prompt``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .buckets import _fmt


@dataclass(frozen=True)
class Source:
    """One utterance of the corpus, as the planner needs it."""

    id: str
    text: str
    speaker: str
    chapter: str
    duration: float  # seconds, from the audio header


@dataclass(frozen=True)
class Segment:
    id: str
    bucket: str
    sources: tuple[Source, ...]

    @property
    def duration(self) -> float:
        return float(sum(s.duration for s in self.sources))

    @property
    def speaker(self) -> str:
        return self.sources[0].speaker

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sources)


@dataclass(frozen=True)
class PromptChoice:
    source: Source
    whole: bool  # used whole (transcript exact) or cut at a pause after prompt_seconds


@dataclass
class Plan:
    segments: list[tuple[Segment, PromptChoice]]
    candidates: dict[str, int]  # bucket -> segments that could be cut
    too_long: dict[str, int]  # bucket -> utterances longer than its upper edge
    no_prompt: dict[str, int] = field(default_factory=dict)  # bucket -> selected segments without a prompt


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator from the seed and names (not positions): adding a chapter never
    changes the draws of another."""
    h = hashlib.sha256("\0".join([str(seed), *keys]).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "big"))


def _chapters(sources: Sequence[Source]) -> dict[tuple[str, str], list[Source]]:
    """Chapter -> its utterances in corpus order (the input order is kept)."""
    out: dict[tuple[str, str], list[Source]] = defaultdict(list)
    for s in sources:
        out[(s.speaker, s.chapter)].append(s)
    return dict(sorted(out.items()))


def bucket_segments(sources: Sequence[Source], lo: float, hi: float, seed: int) -> tuple[list[Segment], int]:
    """Every segment of [lo, hi) the chapters allow, disjoint (see the module
    docstring), and the number of utterances longer than `hi`."""
    label = f"{_fmt(lo)}-{_fmt(hi)}"
    segments: list[Segment] = []
    too_long = 0
    for (spk, chap), utts in _chapters(sources).items():
        rng = _rng(seed, label, spk, chap)
        too_long += sum(1 for u in utts if u.duration >= hi)
        i = 0
        while i < len(utts):
            target = float(rng.uniform(lo, hi))
            total, j = 0.0, i
            while j < len(utts) and total + utts[j].duration < hi:
                total += utts[j].duration
                j += 1
                if total >= target:
                    break
            if j > i and total >= lo:
                run = tuple(utts[i:j])
                segments.append(Segment(f"{label}_{run[0].id}_{len(run)}", label, run))
                i = j
            else:
                i += 1
    return segments, too_long


def balance(segments: Sequence[Segment], n: int, seed: int, label: str) -> list[Segment]:
    """`n` segments taken round-robin over speakers (speaker order and each speaker's
    segments shuffled with the seed), returned sorted by id."""
    by_spk: dict[str, list[Segment]] = defaultdict(list)
    for s in sorted(segments, key=lambda s: s.id):
        by_spk[s.speaker].append(s)
    rng = _rng(seed, "balance", label)
    speakers = sorted(by_spk)
    order = [speakers[k] for k in rng.permutation(len(speakers))]
    queues = {spk: [by_spk[spk][k] for k in rng.permutation(len(by_spk[spk]))] for spk in speakers}
    out: list[Segment] = []
    while len(out) < n and any(queues.values()):
        for spk in order:
            if queues[spk] and len(out) < n:
                out.append(queues[spk].pop(0))
    return sorted(out, key=lambda s: s.id)


def choose_prompt(segment: Segment, by_speaker: dict[str, list[Source]], seconds: float, slack: float,
                  min_seconds: float, seed: int) -> PromptChoice | None:
    """The prompt source of a segment (see the module docstring), or None."""
    inside = {s.id for s in segment.sources}
    others = [s for s in by_speaker.get(segment.speaker, []) if s.id not in inside]
    whole = [s for s in others if max(seconds, min_seconds) <= s.duration <= seconds + slack]
    longer = [s for s in others if s.duration > seconds + slack]
    pool, is_whole = (whole, True) if whole else (longer, False)
    if not pool:
        return None
    h = hashlib.sha256(f"{seed}\0prompt\0{segment.id}".encode()).digest()
    return PromptChoice(pool[int.from_bytes(h[:8], "big") % len(pool)], is_whole)


def plan_longform(sources: Sequence[Source], edges: Sequence[float], per_bucket: int | None, seed: int,
                  prompt_seconds: float, prompt_slack: float, min_prompt_seconds: float) -> Plan:
    """Segments per bucket, balanced, each with its prompt choice."""
    by_speaker: dict[str, list[Source]] = defaultdict(list)
    for s in sorted(sources, key=lambda s: s.id):
        by_speaker[s.speaker].append(s)
    per: dict[str, list[Segment]] = {}
    too_long: dict[str, int] = {}
    for lo, hi in zip(edges, edges[1:]):
        segs, tl = bucket_segments(sources, float(lo), float(hi), seed)
        label = f"{_fmt(lo)}-{_fmt(hi)}"
        per[label] = segs
        too_long[label] = tl
    candidates = {k: len(v) for k, v in per.items()}
    usable: dict[str, list[tuple[Segment, PromptChoice]]] = {}
    no_prompt: dict[str, int] = {}
    # A segment whose speaker has no usable prompt cannot be benchmarked: left out before
    # balancing, so that every bucket still gets its count when other segments can.
    for label, segs in per.items():
        pairs = [(s, choose_prompt(s, by_speaker, prompt_seconds, prompt_slack, min_prompt_seconds, seed)) for s in segs]
        usable[label] = [(s, p) for s, p in pairs if p is not None]
        no_prompt[label] = len(pairs) - len(usable[label])
    if per_bucket is None:
        counts = [len(v) for v in usable.values() if v]
        per_bucket = min(counts) if counts else 0
    chosen: list[tuple[Segment, PromptChoice]] = []
    for label, pairs in usable.items():
        prompt_of = {s.id: p for s, p in pairs}
        for s in balance([s for s, _ in pairs], per_bucket, seed, label):
            chosen.append((s, prompt_of[s.id]))
    return Plan(chosen, candidates, too_long, no_prompt)


__all__ = ["Plan", "PromptChoice", "Segment", "Source", "balance", "bucket_segments", "choose_prompt", "plan_longform"]
