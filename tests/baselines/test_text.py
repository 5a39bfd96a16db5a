import pytest

from halle_bench.baselines.text import SYMBOLS_V1, UNK, VERSION, TextFrontend
from halle_bench.errors import UtteranceError


@pytest.fixture(scope="module")
def fe():
    return TextFrontend()


def test_phonemes_and_punctuation_kept(fe):
    e = fe.encode("Hello, world! Church?")
    assert e.symbols[:5] == ["h", "ə", "l", "ˈ", "oʊ"]
    assert "," in e.symbols and "!" in e.symbols and e.symbols[-1] == "?"
    assert "tʃ" in e.symbols and " " in e.symbols
    assert [fe.symbols[i] for i in e.ids] == e.symbols
    assert not e.unknown


def test_table_is_fixed_and_serialised(fe):
    assert fe.to_dict()["version"] == VERSION and fe.symbols == SYMBOLS_V1
    assert fe.index[UNK] == 0 and fe.index[" "] == 1  # ids must never move within v1
    fe2 = TextFrontend.from_dict(fe.to_dict())
    assert fe2.encode("A test.").ids == fe.encode("A test.").ids


def test_unknown_symbols_counted_or_raised(fe):
    syms, unk = fe.tokenize_phonemes("h|ə|☃ w|ɜː")
    assert syms == ["h", "ə", UNK, " ", "w", "ɜː"] and unk == {"☃": 1}
    small = TextFrontend(tuple(s for s in SYMBOLS_V1 if s not in ("ə",)), on_unknown="error")
    with pytest.raises(UtteranceError, match="ə"):
        small.encode("the cat")
    counted = TextFrontend(tuple(s for s in SYMBOLS_V1 if s not in ("ə",)))
    assert counted.encode("the cat").unknown["ə"] >= 1


def test_empty_text_is_an_error(fe):
    with pytest.raises(UtteranceError):
        fe.encode("   ")
