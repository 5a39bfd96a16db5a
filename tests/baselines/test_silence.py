"""Silence trimming and varied pauses (issue 16: silence hid the end of speech)."""

import random

import numpy as np

from halle_bench.baselines.silence import join_with_pauses, speech_bounds, trim_silence

SR = 16000


def _tone(seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_trim_keeps_a_couple_of_frames():
    x = np.concatenate([np.zeros(SR // 2), _tone(1.0), 1e-5 * np.ones(SR)]).astype(np.float32)
    y = trim_silence(x, SR, keep=0.04)
    assert abs(len(y) / SR - 1.08) < 0.02
    s, e = speech_bounds(x, SR)
    assert abs(s / SR - 0.5) < 0.011 and abs(e / SR - 1.5) < 0.011


def test_silent_and_empty_signals_are_left_alone():
    z = np.zeros(SR, dtype=np.float32)
    assert speech_bounds(z, SR) == (0, 0) and len(trim_silence(z, SR)) == SR
    assert len(trim_silence(np.zeros(0, dtype=np.float32), SR)) == 0


def test_real_espeak_clip_ends_near_its_last_word(speech):
    x = speech("The end comes quickly.", sr=SR)
    y = trim_silence(x, SR)
    tail = y[-int(0.04 * SR):]
    assert len(y) < len(x) and np.abs(tail).max() < np.abs(y).max()
    s, e = speech_bounds(y, SR)
    assert (len(y) - e) / SR <= 0.05 and s / SR <= 0.05


def test_pauses_vary_and_are_seeded():
    parts = [np.concatenate([np.zeros(4000), _tone(0.3), np.zeros(4000)]).astype(np.float32) for _ in range(6)]
    a = join_with_pauses(parts, SR, random.Random(1))
    b = join_with_pauses(parts, SR, random.Random(1))
    c = join_with_pauses(parts, SR, random.Random(2))
    assert np.array_equal(a, b) and len(a) != len(c)
    # gaps between the tones: silent runs longer than the trim margin, and not all equal
    silent = np.abs(a) < 1e-6
    runs, n = [], 0
    for v in silent:
        if v:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    gaps = [r for r in runs if r > 0.1 * SR]
    assert len(gaps) == 5 and len(set(gaps)) > 1
    assert all(0.15 * SR <= g <= 0.7 * SR + 0.1 * SR for g in gaps)


def test_models_trim_their_prompts(monkeypatch):
    """VALL-E and HALL-E encode the trimmed prompt (issue 16: a prompt's trailing silence
    made the model stop right after it)."""
    import torch

    from halle_bench.baselines.codec import Codec, CodecConfig
    from halle_bench.baselines.valle import VALLE

    seen = []
    codec = Codec.from_config(CodecConfig.tiny())
    real = codec.encode

    def spy(x, sr=None):
        seen.append(len(x))
        return real(x, sr)

    m = VALLE.build(codec, size="tiny", seed=0)
    monkeypatch.setattr(m.codec, "encode", spy)
    sr = m.sample_rate
    t = np.arange(sr // 2) / sr
    prompt = np.concatenate([np.zeros(sr), 0.3 * np.sin(2 * np.pi * 220 * t), np.zeros(sr)]).astype(np.float32)
    from halle_bench.baselines.sampling import SamplingOptions

    m.synthesize_batch([("hi", prompt, sr, "a")], SamplingOptions(top_k=1, max_new_tokens=2), 0)
    assert seen and seen[0] < len(prompt) * 0.4
