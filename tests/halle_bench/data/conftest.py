"""Small espeak-ng corpora in the LibriSpeech and LibriTTS layouts (built once per session)."""

from __future__ import annotations

import pytest

from corpus_trees import LS_CHAPTERS, LTTS_CHAPTERS

from halle_bench.data.espeak_corpora import make_librispeech, make_libritts
from halle_bench.espeak import espeak_available


@pytest.fixture(scope="session")
def librispeech_tree(tmp_path_factory):
    """`LibriSpeech/test-clean/<spk>/<chapter>/*.flac + .trans.txt` (16 kHz)."""
    if not espeak_available():
        pytest.skip("espeak-ng not installed")
    root = tmp_path_factory.mktemp("ls") / "LibriSpeech" / "test-clean"
    return make_librispeech(root, LS_CHAPTERS)


@pytest.fixture(scope="session")
def libritts_tree(tmp_path_factory):
    """`LibriTTS/test-clean/<spk>/<chapter>/*.wav + .normalized.txt + .original.txt` (24 kHz)."""
    if not espeak_available():
        pytest.skip("espeak-ng not installed")
    root = tmp_path_factory.mktemp("ltts") / "LibriTTS" / "test-clean"
    return make_libritts(root, LTTS_CHAPTERS)
