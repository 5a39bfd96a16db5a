"""Golden tables for every normaliser: each row is (input, expected output)."""

from __future__ import annotations

import pytest

from halle_bench.metrics.normalizers import get_normalizer, normalizer_names

GOLDEN = {
    "whisper-en": [
        ("Mr. Smith paid $20.50 for twenty-five apples.", "mister smith paid $20.50 for 25 apples"),  # numbers
        ("I'm colour-blind; it's the 1990s.", "i am color blind it is the 1990s"),  # contractions, British
        ("Hello, WORLD!  ok", "hello world ok"),  # punctuation, casing, spaces
        ("the 3rd of May, 2nd place", "the 3rd of may 2nd place"),  # ordinals
        ("Don't STOP, won't stop!", "do not stop will not stop"),
        ("don’t “quote”", "don t quote"),  # whisper's own rule: the typographic apostrophe splits
        ("We organise our behaviour.", "we organize our behavior"),  # British spellings
        ("e-mail well-known", "e mail well known"),  # hyphens become spaces
        ("fifty percent is 50%", "50% is 50%"),
        ("Um, I think... uh, yes.", "i think yes"),  # fillers dropped
        ("  spaces\tand\nnewlines  ", "spaces and newlines"),
        ("It was 1,000 years ago", "it was 1000 years ago"),
    ],
    "seed-tts-eval": [
        ("Mr. Smith paid $20.50 for twenty-five apples.", "mr smith paid 2050 for twentyfive apples"),  # deleted, not spaced
        ("I'm colour-blind; it's the 1990s.", "i'm colourblind it's the 1990s"),  # apostrophes kept
        ("Hello, WORLD!  ok", "hello world ok"),
        ("the 3rd of May, 2nd place", "the 3rd of may 2nd place"),
        ("Don't STOP, won't stop!", "don't stop won't stop"),
        ("don’t “quote”", "dont quote"),  # ’ is in the CJK punctuation list
        ("We organise our behaviour.", "we organise our behaviour"),  # no spelling changes
        ("e-mail well-known", "email wellknown"),
        ("fifty percent is 50%", "fifty percent is 50"),  # numbers not normalised
        ("Um, I think... uh, yes.", "um i think uh yes"),
        ("  spaces\tand\nnewlines  ", "spaces and newlines"),
        ("你好，世界。", "你好世界"),  # CJK punctuation
    ],
    "f5": [
        ("Mr. Smith paid $20.50 for twenty-five apples.", "mr smith paid 2050 for twentyfive apples"),
        ("I'm colour-blind; it's the 1990s.", "im colourblind its the 1990s"),  # apostrophes stripped too
        ("Hello, WORLD!  ok", "hello world ok"),
        ("Don't STOP, won't stop!", "dont stop wont stop"),
        ("don’t “quote”", "dont quote"),
        ("We organise our behaviour.", "we organise our behaviour"),
        ("e-mail well-known", "email wellknown"),
        ("fifty percent is 50%", "fifty percent is 50"),
        ("Um, I think... uh, yes.", "um i think uh yes"),
        ("  spaces\tand\nnewlines  ", "spaces and newlines"),
    ],
    "none": [
        ("Mr. Smith paid $20.50 for twenty-five apples.", "Mr. Smith paid $20.50 for twenty-five apples."),
        ("Hello, WORLD!  ok", "Hello, WORLD! ok"),
        ("Don't STOP, won't stop!", "Don't STOP, won't stop!"),
        ("  spaces\tand\nnewlines  ", "spaces and newlines"),
    ],
}


@pytest.mark.parametrize("name,text,expected", [(n, t, e) for n, rows in GOLDEN.items() for t, e in rows])
def test_golden(name, text, expected):
    assert get_normalizer(name)(text) == expected


def test_names_and_versions():
    assert normalizer_names() == sorted(GOLDEN)
    for n in normalizer_names():
        norm = get_normalizer(n)
        assert norm.name == n and norm.version
        assert norm.id == f"{n}@{norm.version}"
    assert "whisper" in get_normalizer("whisper-en").version  # tied to the whisper release


def test_unknown_name():
    with pytest.raises(ValueError, match="known: f5"):
        get_normalizer("nope")


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_idempotent(name):
    norm = get_normalizer(name)
    for text, _ in GOLDEN[name]:
        once = norm(text)
        assert norm(once) == once
