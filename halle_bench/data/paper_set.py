"""The paper demo's utterance set: the embedded demo's 8 utterances plus 8 more in 3-10 s.

`halle-bench run --demo paper` reports the pair's WER / CER per bucket, and its target is
set on the 3-10 s bucket, where the embedded demo has only 2 utterances: one babbled
word moves such a bucket's WER by several points. This set keeps the demo's 8 rows
(texts, prompts and audio byte for byte, so the longer buckets are the demo's) and adds
`len(EXTRA_TARGETS)` utterances in the 3-10 s bucket, so that bucket holds 10.

Decisions:
- Same source and speakers as the demo (`demo.py`): the extra texts are whole sentences of
  the bundled passage, which the pair's training corpus leaves out entirely
  (`baselines/training/corpus.py`), spoken by the demo's four espeak-ng voices in turn
  (two extra utterances each), with the demo's own speaking (`demo._speak`) and text fitting
  (`demo._fit`: estimate from a per-voice rate, then check the real audio's length).
- No sentence is used twice: the extra texts and prompts use only passage sentences that
  neither the demo's texts nor its prompts contain, and none that another extra row uses.
  Which sentences the demo used is read from the demo's manifest rather than re-derived,
  so the rule holds whatever the demo's fitting chose on this espeak-ng version.
- Each extra utterance has a prompt of its own voice, as the demo's: a short whole sentence
  (`PROMPT_WORDS`, taken from the passage's end as the demo does) whose audio is 2-4 s. The
  passage's 8-9-word sentences are all the demo's prompts already, hence the wider range.
- The demo's audio is copied in, not referenced: the set stays whole if the demo's cache
  folder is removed or rebuilt. About 8 MB.
- Built once, like the demo: into a temporary sibling folder renamed into place, with the
  demo's `COMPLETE` marker written last. The folder name carries this set's version and the
  demo's (`paper-v<PAPER_SET_VERSION>-on-v<DEMO_VERSION>`): bump `PAPER_SET_VERSION` whenever
  this set's content changes; a new demo version gives a new folder by itself.
- Deterministic: espeak-ng and the resampler are, and every choice here follows passage order,
  so two builds write identical manifests (the manifest names files by relative path).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import HalleBenchError
from .demo import (DEMO_VERSION, MARKER, SPEAKERS, _espeak_version, _fit, _is_complete, _speak, build_demo, build_once,
                   passage, split_sentences)

PAPER_SET_VERSION = 1
SHORT_BUCKET = (3.0, 10.0)
# Target seconds of the extra utterances: spread over the bucket, clear of its edges (the
# fit then checks the real audio against the edges themselves). Voices rotate, so each of
# the 4 speakers gets 2.
EXTRA_TARGETS = (4.5, 6.0, 7.5, 9.0, 5.0, 6.5, 8.0, 5.5)
PROMPT_WORDS = (7, 11)
PROMPT_SECONDS = (2.0, 4.0)


def paper_set_dir(home: Path) -> Path:
    return Path(home) / "demo" / f"paper-v{PAPER_SET_VERSION}-on-v{DEMO_VERSION}"


def sentence_key(sentence: str) -> str:
    """What counts as the same sentence: case and spacing aside."""
    return " ".join(sentence.lower().split())


def used_sentences(rows: list[dict]) -> set[str]:
    """Keys of every passage sentence in the rows' texts and prompts."""
    used = set()
    for r in rows:
        for field in ("text", "prompt_text"):
            used.update(sentence_key(s) for s in split_sentences(r.get(field) or ""))
    return used


def free_sentences(sentences: list[str], used: set[str]) -> list[str]:
    """`sentences` in order without the used ones and without repeats (the passage says
    "Down, down, down." twice)."""
    out, seen = [], set(used)
    for s in sentences:
        if sentence_key(s) not in seen:
            seen.add(sentence_key(s))
            out.append(s)
    return out


def prompt_candidates(free: list[str]) -> list[str]:
    """Short sentences for prompts, from the passage's end backwards (as the demo takes its own)."""
    return [s for s in reversed(free) if PROMPT_WORDS[0] <= len(s.split()) <= PROMPT_WORDS[1]]


def _read_rows(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]


def _build(root: Path, demo_folder: Path) -> None:
    """Write the whole set under `root` from the complete demo in `demo_folder`."""
    scratch = root / ".scratch"
    scratch.mkdir(parents=True)
    demo_rows = _read_rows(demo_folder / "manifest.jsonl")
    files = []
    for r in demo_rows:
        for field in ("audio", "prompt_audio"):
            (root / r[field]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(demo_folder / r[field], root / r[field])
            files.append(r[field])

    free = free_sentences(split_sentences(passage()), used_sentences(demo_rows))
    # Prompts first (whole short sentences of 2-4 s in the utterance's voice); the text pool
    # is what is left, so a prompt is never part of any utterance.
    candidates = iter(prompt_candidates(free))
    prompts = []  # (text, wav path) per extra utterance
    for j in range(len(EXTRA_TARGETS)):
        v = SPEAKERS[j % len(SPEAKERS)]
        pwav = Path("prompts") / f"paper{j + 1:02d}-{v.speaker}.wav"
        (root / pwav).parent.mkdir(parents=True, exist_ok=True)
        for text in candidates:
            if PROMPT_SECONDS[0] <= _speak(text, v, root / pwav, scratch) <= PROMPT_SECONDS[1]:
                prompts.append((text, pwav))
                break
        else:
            raise HalleBenchError("paper demo: the passage has too few unused short sentences for the prompts")
    taken = {sentence_key(t) for t, _ in prompts}
    body = [s for s in free if sentence_key(s) not in taken]

    calibration = " ".join(body[:3])  # per-voice words per second, as the demo measures it
    wps = {v.speaker: len(calibration.split()) / _speak(calibration, v, scratch / "cal.wav", scratch)
           for v in SPEAKERS}
    rows, pos = [], 0
    lo, hi = SHORT_BUCKET
    for j, target in enumerate(EXTRA_TARGETS):
        v = SPEAKERS[j % len(SPEAKERS)]
        uid = f"paper{j + 1:02d}-{v.speaker}"
        wav = Path("wavs") / f"{uid}.wav"
        (root / wav).parent.mkdir(parents=True, exist_ok=True)
        if pos >= len(body):
            raise HalleBenchError("paper demo: the passage has too few unused sentences for the extra utterances")
        n, secs = _fit(body[pos:], v, lo, hi, target, wps[v.speaker], root / wav, scratch)
        text = " ".join(body[pos : pos + n])
        pos += n
        prompt_text, pwav = prompts[j]
        rows.append({"id": uid, "text": text, "audio": wav.as_posix(), "duration": round(secs, 3),
                     "speaker": v.speaker, "prompt_audio": pwav.as_posix(), "prompt_text": prompt_text,
                     "voice": v.voice})
        files += [wav.as_posix(), pwav.as_posix()]
    shutil.rmtree(scratch)
    with open(root / "manifest.jsonl", "w", encoding="utf-8") as f:
        for r in demo_rows + rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    files.append("manifest.jsonl")
    # Written last: its presence (and the files it lists) is what "complete" means.
    (root / MARKER).write_text(json.dumps({"version": PAPER_SET_VERSION, "demo_version": DEMO_VERSION,
                                           "espeak_ng": _espeak_version(), "files": files}, indent=1))


def build_paper_set(home: Path) -> Path:
    """Build the set under `paper_set_dir(home)` (and the demo, if needed) unless a complete
    one is there; return the path of its manifest."""
    final = paper_set_dir(home)
    if not _is_complete(final):
        demo_folder = build_demo(home).parent
        build_once(final, f".{final.name}-", lambda folder: _build(folder, demo_folder))
    return final / "manifest.jsonl"


__all__ = ["EXTRA_TARGETS", "PAPER_SET_VERSION", "SHORT_BUCKET", "build_paper_set", "free_sentences",
           "paper_set_dir", "prompt_candidates", "sentence_key", "used_sentences"]
