"""The texts of the pair's training corpus: the seeded grammar plus real prose.

`python -m halle_bench.baselines.training.texts OUT` writes one sentence per line.

The grammar (`corpus.grammar_sentences`) has a few hundred words; the demo's texts (a
retelling of *Alice*) use many more, so a model that only heard the grammar meets unseen
phoneme contexts at test time. Nothing can be downloaded here, but Python ships prose:
`pydoc_data.topics`, the language reference that `help()` prints. Its plain sentences
(5-22 words of letters, commas and apostrophes, ending in a period or question mark; no
code) are mixed with the grammar. The demo's sentences are dropped later by the corpus
builder, whatever the source.

Decisions: `pydoc_data` differs between Python versions, so the exact list (and a rebuilt
corpus) depends on the interpreter; the pair in results/pair was built with CPython 3.11.7. The
order is produced in two shuffles because that is how that pair's list was first
made; keeping it lets `scripts/train-pair.sh` rebuild the same corpus.
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

from .corpus import grammar_sentences

_PLAIN = re.compile(r"[A-Z][A-Za-z ,']*[a-z][.?]")


def prose_sentences(min_words: int = 5, max_words: int = 22, max_word_len: int = 14) -> list[str]:
    """Plain English sentences from Python's bundled documentation, in document order, deduplicated."""
    from pydoc_data.topics import topics

    text = re.sub(r"\s+", " ", " ".join(topics.values()))
    out, seen = [], set()
    for s in re.split(r"(?<=[.!?])\s+", text):
        s = s.strip()
        words = s.split()
        if not (min_words <= len(words) <= max_words) or not _PLAIN.fullmatch(s):
            continue
        if any(len(w) > max_word_len for w in words) or s.lower() in seen:
            continue
        seen.add(s.lower())
        out.append(s)
    return out


def corpus_texts(n_grammar: int = 4000, seed: int = 0, grammar_seed: int = 1) -> list[str]:
    """Prose + grammar sentences, shuffled (seeded), without repeats."""
    prose = prose_sentences()
    first = prose + grammar_sentences(len(prose), seed=grammar_seed)
    random.Random(seed).shuffle(first)
    texts = list(dict.fromkeys([t for t in first if t] + grammar_sentences(n_grammar, seed=grammar_seed)))
    random.Random(seed).shuffle(texts)
    return texts


def short_texts(n: int, exclude: set[str], seed: int = 2) -> list[str]:
    """Grammar sentences from another seed, without those in `exclude` (the first list), for
    the corpus's second part of short clips."""
    return [t for t in dict.fromkeys(grammar_sentences(n, seed=seed)) if t not in exclude]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--grammar", type=int, default=4000, help="grammar sentences to add (default 4000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--short", type=int, metavar="N",
                    help="instead: N grammar sentences of another seed, minus those of --exclude (the short part)")
    ap.add_argument("--exclude", help="a texts file whose sentences --short leaves out")
    a = ap.parse_args(argv)
    if a.exclude and not Path(a.exclude).is_file():
        ap.error(f"--exclude {a.exclude}: no such file")
    if a.short:
        ex = set(Path(a.exclude).read_text(encoding="utf-8").splitlines()) if a.exclude else set()
        texts = short_texts(a.short, ex)
    else:
        texts = corpus_texts(a.grammar, a.seed)
    Path(a.out).write_text("\n".join(texts) + "\n", encoding="utf-8")
    print(f"{len(texts)} sentences -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["prose_sentences", "corpus_texts", "short_texts"]
