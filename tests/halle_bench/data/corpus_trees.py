"""Small espeak-ng corpora in the LibriSpeech and LibriTTS layouts for the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from halle_bench.data.demo import passage, split_sentences
from halle_bench.data.espeak_corpora import Chapter, make_librispeech, make_libritts
from halle_bench.espeak import espeak_available

SENTENCES = tuple(split_sentences(passage()))

# Two readers; reader 1001 has two chapters, so a prompt may come from the other one.
LS_CHAPTERS = (
    Chapter("1001", "5001", "en-us", SENTENCES[0:9]),
    Chapter("1001", "5002", "en-us", SENTENCES[9:13]),
    Chapter("2002", "6001", "en-gb+f3", SENTENCES[13:24], speed=175),
)
LTTS_CHAPTERS = (
    Chapter("84", "121123", "en-us+m3", SENTENCES[24:31]),
    Chapter("174", "50561", "en-gb", SENTENCES[31:36]),
)

# Fixtures (imported by the test modules: a conftest.py here would shadow tests/conftest.py
# for modules that `from conftest import ...`). Each tree is built once per session.
_BUILT: dict[str, Path] = {}


def _tree(name: str, tmp_path_factory, make) -> Path:
    if not espeak_available():
        pytest.skip("espeak-ng not installed")
    if name not in _BUILT:
        _BUILT[name] = make(tmp_path_factory.mktemp(name))
    return _BUILT[name]


@pytest.fixture(scope="session")
def librispeech_tree(tmp_path_factory) -> Path:
    """`LibriSpeech/test-clean/<spk>/<chapter>/*.flac + .trans.txt` (16 kHz)."""
    return _tree("ls", tmp_path_factory, lambda d: make_librispeech(d / "LibriSpeech" / "test-clean", LS_CHAPTERS))


@pytest.fixture(scope="session")
def libritts_tree(tmp_path_factory) -> Path:
    """`LibriTTS/test-clean/<spk>/<chapter>/*.wav + .normalized.txt + .original.txt` (24 kHz)."""
    return _tree("ltts", tmp_path_factory, lambda d: make_libritts(d / "LibriTTS" / "test-clean", LTTS_CHAPTERS))
