"""The pair's corpus texts: grammar plus the prose of Python's bundled documentation."""

import re

from halle_bench.baselines.training.corpus import grammar_sentences
from halle_bench.baselines.training.texts import corpus_texts, prose_sentences, short_texts


def test_prose_is_plain_sentences_without_code():
    prose = prose_sentences()
    assert len(prose) > 100
    for s in prose:
        assert re.fullmatch(r"[A-Z][A-Za-z ,']*[a-z][.?]", s), s
        assert 5 <= len(s.split()) <= 22
    assert len({s.lower() for s in prose}) == len(prose)


def test_corpus_texts_mix_both_sources_deterministically_without_repeats():
    a, b = corpus_texts(200), corpus_texts(200)
    assert a == b and len(set(a)) == len(a)
    prose, grammar = set(prose_sentences()), set(grammar_sentences(200, seed=1))
    assert prose <= set(a) and grammar <= set(a)
    assert corpus_texts(200, seed=1) != a  # the seed drives the order


def test_short_texts_leave_out_the_first_list():
    first = set(corpus_texts(50))
    short = short_texts(300, exclude=first)
    assert short and not first & set(short) and len(set(short)) == len(short)
    assert set(short) <= set(grammar_sentences(300, seed=2))
