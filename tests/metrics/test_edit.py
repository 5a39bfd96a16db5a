"""Alignment maths: parity with jiwer (counts and WER/CER) and the per-word views."""

from __future__ import annotations

import random

import jiwer
import pytest

from halle_bench.metrics.edit import Alignment, align, align_chars, align_words, cost_matrix
from halle_bench.metrics.normalizers import get_normalizer

SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
]


def _counts(a: Alignment):
    return a.hits, a.subs, a.dels, a.ins


def _jiwer_words(ref, hyp):
    o = jiwer.process_words(ref, hyp)
    return o.hits, o.substitutions, o.deletions, o.insertions


def _jiwer_chars(ref, hyp):
    o = jiwer.process_characters(ref, hyp)
    return o.hits, o.substitutions, o.deletions, o.insertions


def _perturb(words, rng, vocab):
    out = []
    for w in words:
        r = rng.random()
        if r < 0.1:
            continue  # deletion
        out.append(rng.choice(vocab) if r < 0.2 else w)
        if rng.random() < 0.08:
            out.append(rng.choice(vocab))  # insertion
        if rng.random() < 0.03:
            out.extend(out[-3:])  # a small loop
    return out


def test_parity_random_words_and_chars():
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrst"
    for _ in range(1500):
        v = rng.choice([2, 3, 5, 20])
        ref = " ".join(rng.choice(letters[:v]) for _ in range(rng.randint(1, 30)))
        hyp = " ".join(rng.choice(letters[:v]) for _ in range(rng.randint(1, 30)))
        assert _counts(align_words(ref, hyp)) == _jiwer_words(ref, hyp), (ref, hyp)
        assert _counts(align_chars(ref, hyp)) == _jiwer_chars(ref, hyp), (ref, hyp)


def test_parity_real_strings():
    rng = random.Random(1)
    norm = get_normalizer("whisper-en")
    vocab = sorted({w for s in SENTENCES for w in norm(s).split()})
    for _ in range(300):
        ref = norm(" ".join(rng.sample(SENTENCES, rng.randint(1, 6))))
        hyp = " ".join(_perturb(ref.split(), rng, vocab)) or "x"
        a = align_words(ref, hyp)
        assert _counts(a) == _jiwer_words(ref, hyp)
        assert a.error_rate == pytest.approx(jiwer.wer(ref, hyp))
        c = align_chars(ref, hyp)
        assert _counts(c) == _jiwer_chars(ref, hyp)
        assert c.error_rate == pytest.approx(jiwer.cer(ref, hyp))


def test_long_char_sequences_match_total_errors():
    """Above ~4M matrix cells rapidfuzz switches to Hirschberg's algorithm, whose
    tie-breaks differ: the total (hence CER) still matches exactly."""
    rng = random.Random(2)
    ref = "".join(rng.choice("abcde ") for _ in range(2700)).strip()
    hyp = "".join(rng.choice("abcde ") for _ in range(2500)).strip()
    c = align_chars(ref, hyp)
    assert c.errors == sum(_jiwer_chars(ref, hyp)[1:])
    assert c.error_rate == pytest.approx(jiwer.cer(ref, hyp))


def test_cost_matrix_against_textbook_dp():
    import numpy as np

    rng = random.Random(3)
    for _ in range(50):
        r = np.array([rng.randint(0, 3) for _ in range(rng.randint(0, 12))])
        h = np.array([rng.randint(0, 3) for _ in range(rng.randint(0, 12))])
        d = cost_matrix(r, h)
        for i in range(len(r) + 1):
            for j in range(len(h) + 1):
                if i == 0 or j == 0:
                    assert d[i, j] == i + j
                else:
                    want = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (r[i - 1] != h[j - 1]))
                    assert d[i, j] == want


def test_ops_are_a_valid_alignment():
    rng = random.Random(4)
    for _ in range(200):
        ref = [rng.choice("abc") for _ in range(rng.randint(0, 15))]
        hyp = [rng.choice("abc") for _ in range(rng.randint(0, 15))]
        a = align(ref, hyp)
        assert [i for _, i, _ in a.ops if i is not None] == list(range(len(ref)))
        assert [j for _, _, j in a.ops if j is not None] == list(range(len(hyp)))
        for tag, i, j in a.ops:
            if tag == "equal":
                assert ref[i] == hyp[j]
            if tag == "replace":
                assert ref[i] != hyp[j]
        assert a.hits + a.subs + a.dels == len(ref)
        assert a.hits + a.subs + a.ins == len(hyp)


def test_per_reference_views():
    a = align_words("a b c d", "x a c d y y")
    assert (a.hits, a.subs, a.dels, a.ins) == (3, 0, 1, 3)
    assert a.ref_ops() == ["equal", "delete", "equal", "equal"]
    # leading insertion goes to the first word, trailing ones to the last
    assert a.errors_per_ref() == [1, 1, 0, 2]
    assert sum(a.errors_per_ref()) == a.errors


def test_empty_sides():
    a = align_words("a b c", "")
    assert (a.hits, a.subs, a.dels, a.ins) == (0, 0, 3, 0) and a.error_rate == 1.0
    e = align_words("", "a b")
    assert e.ins == 2 and e.error_rate == 2.0 and e.errors_per_ref() == []
    assert align_words("", "").error_rate == 0.0
