"""An espeak-ng training corpus: several voices as speakers, texts disjoint from the demo's.

`python -m halle_bench.baselines.training.corpus OUT [--minutes M] [--texts FILE] [--seed S]`
writes `OUT/wav/<speaker>/<id>.wav` (16 kHz) and `OUT/train.jsonl` (id, text, audio, speaker,
duration). Resumable: a wav already written is kept (its duration is read back), and the
manifest is rewritten at the end.

Texts: the lines of `--texts` (one sentence per line), or, by default, sentences made by a
seeded grammar over a few hundred common words (no text source is downloadable here). Either
way every sentence that also occurs in the demo passage is dropped, so that the benchmark's
texts stay held out. Utterances join 1-`max_sentences` sentences so that lengths spread
from ~2 s to ~40 s (long clips matter: HALL-E's point is training on longer audio for the
same token budget).

Each sentence is spoken on its own, trimmed to 40 ms of silence at each end, and the
sentences of a clip are joined by pauses drawn from 0.15-0.7 s (seeded per clip id), so the
clip ends 2 frames after its last word and no pause looks like the end (`silence.py`
says why). Clips are written at 16 kHz: the shipped teacher codes the 0-8 kHz band.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path

# Training speakers: espeak-ng voices with their own rate and pitch. Two share a base voice
# with the demo's speakers (en-us, en-gb) but with other pitch/rate; the rest are new.
VOICES = (
    ("t1", "en-us", 150, 40), ("t2", "en-us+f2", 140, 65), ("t3", "en-gb", 155, 55), ("t4", "en-gb-x-gbclan", 140, 45),
    ("t5", "en-029", 145, 50), ("t6", "en-us+m3", 160, 35), ("t7", "en-gb-x-gbcwmd", 145, 60), ("t8", "en-us+f4", 150, 75),
)

_SUBJ = ("the old man", "a young woman", "my neighbour", "the teacher", "our captain", "the small dog", "a tired farmer",
         "the children", "his brother", "the doctor", "a quiet student", "the baker", "her friend", "the pilot",
         "every visitor", "the river guide", "a clever fox", "the night nurse", "the engineer", "two musicians")
_VERB = ("carried", "painted", "found", "opened", "repaired", "counted", "watched", "cleaned", "sold", "described",
         "borrowed", "measured", "followed", "planted", "ordered", "explained", "collected", "wrapped", "lifted", "tested")
_OBJ = ("a heavy wooden box", "the blue door", "seven green bottles", "an old map", "the broken clock", "a basket of apples",
        "the garden fence", "three letters", "a warm blanket", "the kitchen table", "a silver coin", "the long ladder",
        "a bag of flour", "the morning paper", "twelve candles", "a paper kite", "the station bell", "a jar of honey")
_WHEN = ("before breakfast", "after the storm", "on a cold Monday", "late in the evening", "during the summer fair",
         "at half past nine", "in the spring", "just after lunch", "on the first of June", "while it was raining")
_WHERE = ("near the harbour", "behind the school", "in the market square", "at the top of the hill", "by the old mill",
          "under the bridge", "next to the library", "across the valley", "inside the barn", "along the canal")
_THEN = ("and then went home", "but nobody noticed", "and smiled at everyone", "because it was needed", "and wrote it down",
         "so the work could start", "and asked for more help", "although it took an hour", "and laughed quietly")
_QUEST = ("Why did {s} leave so early?", "Who {v} {o} {w}?", "Have you seen {o} {p}?", "Where did {s} put {o}?")


def grammar_sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s, v, o, w, p, t = (rng.choice(x) for x in (_SUBJ, _VERB, _OBJ, _WHEN, _WHERE, _THEN))
        form = rng.random()
        if form < 0.15:
            text = rng.choice(_QUEST).format(s=s, v=v, o=o, w=w, p=p)
        elif form < 0.5:
            text = f"{s} {v} {o} {p} {w}."
        elif form < 0.8:
            text = f"{w}, {s} {v} {o} {t}."
        else:
            text = f"{s} {v} {o} {p}, {t}, {w}."
        out.append(text[0].upper() + text[1:])
    return out


def demo_sentences() -> set[str]:
    from halle_bench.data.demo import passage, split_sentences

    return {" ".join(s.lower().split()) for s in split_sentences(passage())}


@dataclass(frozen=True)
class CorpusItem:
    id: str
    speaker: str
    text: str
    audio: str
    duration: float


def build_corpus(out: str | Path, minutes: float = 60.0, texts: list[str] | None = None, seed: int = 0,
                 max_sentences: int = 6, voices=VOICES, log=print, part: str | None = None) -> list[CorpusItem]:
    """`part`: a second set in the same folder (ids and wavs prefixed `<part>-`, manifest
    `<part>.jsonl` instead of `train.jsonl`), e.g. many short clips beside the long ones;
    concatenate the manifests to train on both."""
    from halle_bench.audio import SCORING_SR, load_audio, save_audio
    from halle_bench.baselines.silence import join_with_pauses
    from halle_bench.espeak import espeak_to_file

    out = Path(out)
    held = demo_sentences()
    rng = random.Random(seed)
    pool = [t for t in (texts if texts is not None else grammar_sentences(200_000, seed))
            if " ".join(t.lower().split()) not in held]
    if not pool:
        raise ValueError("no texts left after removing the demo's sentences")
    items: list[CorpusItem] = []
    total, k, cursor = 0.0, 0, 0
    scratch = out / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    while total < minutes * 60:
        spk, voice, speed, pitch = voices[k % len(voices)]
        n = rng.randint(1, max_sentences)
        text = " ".join(pool[(cursor + j) % len(pool)] for j in range(n))
        cursor += n
        uid = f"{spk}-{k:06d}" if part is None else f"{part}-{spk}-{k:06d}"
        wav = out / "wav" / spk / f"{uid}.wav"
        if not wav.exists():
            wav.parent.mkdir(parents=True, exist_ok=True)
            parts = []
            for j in range(n):
                raw = espeak_to_file(pool[(cursor - n + j) % len(pool)], scratch / "raw.wav", voice=voice,
                                     speed=speed, pitch=pitch)
                parts.append(load_audio(raw, sr=SCORING_SR)[0])
            x = join_with_pauses(parts, SCORING_SR, random.Random(f"{seed}/{uid}"))
            sr = SCORING_SR
            save_audio(wav, x, sr)
            dur = len(x) / sr
        else:
            import soundfile as sf

            dur = sf.info(str(wav)).duration
        items.append(CorpusItem(uid, spk, text, str(wav.relative_to(out)), round(dur, 3)))
        total += dur
        k += 1
        if k % 200 == 0:
            log(f"corpus: {k} utterances, {total / 60:.1f} min")
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)
    name = "train.jsonl" if part is None else f"{part}.jsonl"
    tmp = out / (name + ".tmp")
    tmp.write_text("".join(json.dumps(i.__dict__) + "\n" for i in items))
    tmp.replace(out / name)
    log(f"corpus: {len(items)} utterances, {total / 60:.1f} min, {len(voices)} voices -> {out / name}")
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--texts", help="a text file, one sentence per line (default: the seeded grammar)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-sentences", type=int, default=6)
    ap.add_argument("--part", help="a second set in OUT: ids prefixed PART-, manifest OUT/PART.jsonl")
    a = ap.parse_args(argv)
    texts = None
    if a.texts:
        texts = [ln.strip() for ln in Path(a.texts).read_text(encoding="utf-8").splitlines() if ln.strip()]
    build_corpus(a.out, a.minutes, texts, a.seed, a.max_sentences, part=a.part)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

__all__ = ["VOICES", "grammar_sentences", "demo_sentences", "build_corpus", "CorpusItem", "main"]
