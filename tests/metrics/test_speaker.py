"""Speaker similarity: windowing maths, the resemblyzer backend, the `sim` scorer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from halle_bench.errors import ChecksumError, ConfigError
from halle_bench.metrics.base import ScoreItem, build_scorer
from halle_bench.metrics.speaker import (
    CheckpointError,
    SpeakerSimilarity,
    WindowConfig,
    cosine,
    embed_utterances,
    pool_embeddings,
    run_grouped,
    window_bounds,
)
from halle_bench.models import all_models

SR = 16000
TEXT_A = "The quick brown fox jumps over the lazy dog near the river bank."
TEXT_B = "She sells sea shells by the sea shore every summer morning."
TEXT_C = "A journey of a thousand miles begins with a single careful step forward."


# ---------------------------------------------------------------- pure maths


@pytest.mark.parametrize(
    "n_s, window, hop, expected",
    [
        (25.0, 10.0, None, [(0, 10), (10, 20), (20, 25)]),  # 5 s tail kept
        (20.5, 10.0, None, [(0, 10), (10, 20)]),  # 0.5 s tail dropped
        (0.5, 10.0, None, [(0, 0.5)]),  # a lone short window is kept
        (10.0, 10.0, None, [(0, 10)]),
        (16.0, 10.0, 5.0, [(0, 10), (5, 15), (10, 16)]),  # overlapping; stop at the end
    ],
)
def test_window_bounds(n_s, window, hop, expected):
    got = window_bounds(int(n_s * SR), SR, window, hop, 1.0)
    assert got == [(int(a * SR), int(b * SR)) for a, b in expected]


def test_window_bounds_empty():
    assert window_bounds(0) == []


def test_pool_embeddings_weights_and_norm():
    e = np.array([[3.0, 0.0], [0.0, 1.0]])
    # Each row normalised first, so scale does not matter; weights do.
    assert np.allclose(pool_embeddings(e), [np.sqrt(0.5), np.sqrt(0.5)])
    p = pool_embeddings(e, np.array([3.0, 1.0]))
    assert np.isclose(np.linalg.norm(p), 1.0)
    assert np.allclose(p, np.array([0.75, 0.25]) / np.linalg.norm([0.75, 0.25]))


def test_cosine_basic():
    assert cosine(np.array([1.0, 0]), np.array([2.0, 0])) == pytest.approx(1.0)
    assert cosine(np.array([1.0, 0]), np.array([0, 5.0])) == pytest.approx(0.0)
    assert cosine(np.array([1.0, 0]), np.array([-1.0, 0])) == pytest.approx(-1.0)


def test_run_grouped_keeps_order_and_groups_equal_lengths():
    arrays = [np.full(n, float(i)) for i, n in enumerate([3, 5, 3, 5, 4])]
    calls = []

    def fn(stack):
        calls.append(stack.shape)
        return stack.sum(axis=1, keepdims=True)

    out = run_grouped(arrays, fn, max_batch=2)
    assert out[:, 0].tolist() == [0.0, 5.0, 6.0, 15.0, 16.0]
    assert sorted(calls) == [(1, 4), (2, 3), (2, 5)]


class _ToyEncoder:
    """Deterministic stand-in: spectral-band energies, to test pooling logic exactly."""

    name = "toy"

    def prepare(self, audio):
        return audio

    def embed_windows(self, windows):
        return np.stack([np.abs(np.fft.rfft(w, 64))[:16] + 1e-3 for w in windows])


def test_embed_utterances_errors_per_item():
    rng = np.random.default_rng(0)
    good = rng.standard_normal(3 * SR).astype(np.float32) * 0.1
    out = embed_utterances(_ToyEncoder(), [good, np.zeros(SR, np.float32), np.zeros(10, np.float32)])
    assert isinstance(out[0], np.ndarray) and out[0].shape == (16,)
    assert isinstance(out[1], str) and "silent" in out[1]
    assert isinstance(out[2], str)


def test_embed_utterances_is_weighted_window_mean():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(int(12.5 * SR)).astype(np.float32) * 0.1
    enc = _ToyEncoder()
    (got,) = embed_utterances(enc, [x], WindowConfig(window_s=5.0))
    w = [x[: 5 * SR], x[5 * SR : 10 * SR], x[10 * SR :]]
    want = pool_embeddings(enc.embed_windows(w), np.array([5.0, 5.0, 2.5]))
    assert np.allclose(got, want, atol=1e-12)


# ---------------------------------------------------------------- registry + config


def test_registry_has_speaker_models():
    specs = all_models()
    for name in ("resemblyzer", "ecapa", "wavlm-tdnn"):
        assert name in specs, name
        assert specs[name].how_to_get and specs[name].licence
    assert specs["resemblyzer"].sha256 and specs["resemblyzer"].package == "resemblyzer"
    assert specs["ecapa"].sha256 is None and specs["wavlm-tdnn"].sha256 is None


def test_config_errors():
    with pytest.raises(ConfigError):
        SpeakerSimilarity({"model": "nope"})
    with pytest.raises(ConfigError):
        SpeakerSimilarity({"windw_seconds": 3})
    with pytest.raises(ConfigError):
        SpeakerSimilarity({"window_seconds": 5, "hop_seconds": 6})


def test_missing_user_model_is_clear(tmp_path):
    sc = SpeakerSimilarity({"model": "wavlm-tdnn", "model_path": str(tmp_path / "nope.pth")})
    with pytest.raises(Exception) as ei:
        sc.load("cpu")
    assert "nope.pth" in str(ei.value) and "wavlm_large_finetune.pth" in str(ei.value)


def test_resemblyzer_checksum_and_corrupt(tmp_path):
    bad = tmp_path / "pretrained.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ChecksumError):
        SpeakerSimilarity({"model_path": str(bad)}).load("cpu")
    from halle_bench.metrics.spk_resemblyzer import ResemblyzerEncoder

    with pytest.raises(CheckpointError, match="cannot read"):
        ResemblyzerEncoder.from_checkpoint(bad)


def test_resemblyzer_strict_keys(tmp_path):
    import torch

    from halle_bench.metrics.spk_resemblyzer import ResemblyzerEncoder, _build_module

    state = _build_module().state_dict()
    state.pop("linear.bias")
    state["extra.weight"] = torch.zeros(2)
    p = tmp_path / "w.pt"
    torch.save({"model_state": state}, p)
    with pytest.raises(CheckpointError) as ei:
        ResemblyzerEncoder.from_checkpoint(p)
    assert "linear.bias" in str(ei.value) and "extra.weight" in str(ei.value)


# ---------------------------------------------------------------- resemblyzer on speech


@pytest.fixture(scope="module")
def scorer():
    sc = build_scorer("sim", {"model": "resemblyzer", "window_seconds": 4.0})
    sc.load("cpu")
    yield sc
    sc.close()


def test_mel_matches_librosa(speech):
    import librosa

    from halle_bench.metrics.spk_resemblyzer import mel_frames

    x = speech(TEXT_A)
    ref = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=400, hop_length=160, n_mels=40).T
    assert np.allclose(mel_frames(x), ref, rtol=1e-4, atol=1e-5)


def test_parity_with_resemblyzer_package(speech, scorer):
    """On clean speech (<= one window) our embedding equals the package's own."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from resemblyzer import VoiceEncoder, preprocess_wav
    except Exception as e:  # webrtcvad / pkg_resources problems
        pytest.skip(f"resemblyzer package not importable: {e}")
    import torch

    enc = VoiceEncoder.__new__(VoiceEncoder)
    torch.nn.Module.__init__(enc)
    enc.lstm = torch.nn.LSTM(40, 256, 3, batch_first=True)
    enc.linear = torch.nn.Linear(256, 256)
    enc.relu = torch.nn.ReLU()
    enc.device = torch.device("cpu")
    from halle_bench.models import resolve

    sd = torch.load(resolve("resemblyzer"), map_location="cpu", weights_only=True)["model_state"]
    enc.load_state_dict(sd, strict=False)
    enc.eval()
    for text, voice in [(TEXT_A, "en-us"), (TEXT_B, "en-us+f3")]:
        x = speech(text, voice=voice)
        ref = enc.embed_utterance(preprocess_wav(x))
        (ours,) = scorer.embed([x])
        assert cosine(ref, ours) > 0.9999


def test_same_voice_beats_other_voice(speech, scorer):
    same1, same2 = speech(TEXT_A), speech(TEXT_B)
    other = speech(TEXT_B, voice="en-us+f3")
    e1, e2, e3 = scorer.embed([same1, same2, other])
    s_same, s_other = cosine(e1, e2), cosine(e1, e3)
    assert s_same > 0.8
    assert s_same > s_other + 0.1


def test_identical_audio_is_one(speech, scorer):
    x = speech(TEXT_C)
    out = scorer.score([ScoreItem("s", "u", audio=x, prompt=x.copy(), reference=x.copy())])[0]
    assert out.error is None
    assert out.values["sim"] == pytest.approx(1.0, abs=1e-6)
    assert out.values["sim_ref"] == pytest.approx(1.0, abs=1e-6)
    assert out.values["sim_model"] == "resemblyzer"


def _items(speech):
    prompt = speech(TEXT_A)
    long_a = np.concatenate([speech(TEXT_B), speech(TEXT_C), speech(TEXT_A)])  # ~13 s, several windows
    other = np.concatenate([speech(TEXT_B, voice="en-us+f3"), speech(TEXT_C, voice="en-us+f3")])
    ref = speech(TEXT_C)
    return [
        ScoreItem("sys", "u1", audio=long_a, prompt=prompt, reference=ref),
        ScoreItem("sys", "u2", audio=other, prompt=prompt, reference=ref),
        ScoreItem("gt", "u1", audio=ref, prompt=prompt, reference=ref, is_ground_truth=True),
        ScoreItem("sys", "u3", audio=long_a[: 2 * SR], prompt=prompt, reference=None),
        ScoreItem("sys", "u4", audio=np.zeros(SR, np.float32), prompt=prompt, reference=ref),
        ScoreItem("sys", "u5", audio=long_a, prompt=None, reference=ref),
    ]


def test_score_rows_and_errors(speech, scorer):
    out = scorer.score(_items(speech))
    assert [o.error is None for o in out] == [True, True, True, True, False, False]
    assert out[0].values["sim"] > out[1].values["sim"]
    assert out[2].values["sim_ref"] is None  # the ground-truth row vs itself
    assert out[3].values["sim_ref"] is None  # no reference
    assert "silent" in out[4].error and "prompt" in out[5].error


def test_batch_equals_per_item_and_is_deterministic(speech):
    items = _items(speech)
    batched = build_scorer("sim", {"window_seconds": 4.0, "encoder_batch": 64})
    batched.load("cpu")
    single = build_scorer("sim", {"window_seconds": 4.0, "encoder_batch": 1})
    single.load("cpu")
    b = batched.score(items)
    per = []
    for it in items:
        single._cache.clear()  # no sharing across items: truly per item
        per.extend(single.score([it]))
    again = build_scorer("sim", {"window_seconds": 4.0})
    again.load("cpu")
    c = again.score(items)
    for x, y, z in zip(b, per, c):
        assert (x.error is None) == (y.error is None)
        if x.error is None:
            for k in ("sim", "sim_ref"):
                if x.values[k] is None:
                    assert y.values[k] is None
                else:
                    assert abs(x.values[k] - y.values[k]) < 1e-5
                    assert x.values[k] == z.values[k]


def test_models_ref_records_sha(scorer):
    (ref,) = scorer.models()
    assert ref.name == "resemblyzer" and len(ref.sha256) == 64
