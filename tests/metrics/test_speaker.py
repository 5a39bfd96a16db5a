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
    embed_windowed,
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
        (20.5, 10.0, None, [(0, 10), (10, 20.5)]),  # 0.5 s tail joins the last window
        (15.5, 10.0, 5.0, [(0, 10), (5, 15), (10, 15.5)]),  # overlapping: the last ends at the end
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
            assert x.values == z.values  # deterministic
            for k in ("sim", "sim_min", "sim_last", "sim_ref", "sim_ref_min", "sim_ref_last"):
                if x.values[k] is None:
                    assert y.values[k] is None
                else:
                    assert abs(x.values[k] - y.values[k]) < 1e-5
            assert np.allclose(x.values["pos_sim"], y.values["pos_sim"], atol=1e-5)


def test_models_ref_records_sha(scorer):
    (ref,) = scorer.models()
    assert ref.name == "resemblyzer" and len(ref.sha256) == 64


# ---------------------------------------------------------------- windows: mean of cosines, min, last


def test_window_similarity_is_mean_of_window_cosines():
    from halle_bench.metrics.spk_windows import window_similarity

    target = np.array([1.0, 0.0, 0.0])
    a = np.array([0.8, 0.6, 0.0])  # cosine 0.8 with the target
    b = np.array([0.4, 0.0, np.sqrt(1 - 0.16)])  # cosine 0.4
    ws = window_similarity(np.stack([a, 3 * b]), np.array([10.0, 10.0]), target)  # scale must not matter
    assert ws.mean == pytest.approx(0.60) and ws.min == pytest.approx(0.4) and ws.last == pytest.approx(0.4)
    assert ws.cosines == pytest.approx((0.8, 0.4))
    # The old definition, cosine of the averaged embedding, rewards the drift:
    assert cosine(pool_embeddings(np.stack([a, b])), target) > 0.65
    # Length-weighted: a 2.5 s window counts a quarter of a 10 s one.
    assert window_similarity(np.stack([a, b]), np.array([10.0, 2.5]), target).mean == pytest.approx((8 + 1) / 12.5)
    with pytest.raises(ValueError):
        window_similarity(np.stack([a, b]), np.array([1.0]), target)


def test_position_profile_assigns_windows_by_centre():
    from halle_bench.metrics.spk_windows import position_profile

    # windows centred at 5, 15, 25, 35 s of a 40 s clip, 30 s slices
    got = position_profile([0.9, 0.8, 0.7, 0.2], [10, 10, 10, 10], [5, 15, 25, 35], 40.0, 30.0)
    assert got == pytest.approx([0.8, 0.2])
    # a slice with no window centre is None, not 0
    assert position_profile([0.5], [1.0], [5.0], 65.0, 30.0) == [0.5, None, None]


def test_silent_window_is_left_out_and_weights_are_kept_seconds():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(25 * SR).astype(np.float32) * 0.1
    x[10 * SR : 20 * SR] = 0.0  # a silent middle window
    (e,) = embed_windowed(_ToyEncoder(), [x], WindowConfig(window_s=10.0))
    assert np.allclose(e.weights, [10.0, 5.0]) and np.allclose(e.centres, [5.0, 22.5]) and e.seconds == 25.0
    assert np.allclose(np.linalg.norm(e.embs, axis=1), 1.0)


@pytest.fixture(scope="module")
def scorer10():
    sc = build_scorer("sim", {"model": "resemblyzer"})  # the default 10 s windows
    sc.load("cpu")
    yield sc
    sc.close()


SENTENCES = [TEXT_A, TEXT_B, TEXT_C, "Long form speech must keep the same voice from the first word to the last one."]


def _voice(speech, voice, seconds, offset=0):
    x = np.concatenate([speech(SENTENCES[(offset + k) % 4], voice=voice) for k in range(12)])
    assert x.size >= seconds * SR
    return x[: int(seconds * SR)]


def test_tail_in_another_voice_drops_sim_last_and_min(speech, scorer10):
    """30 s in the prompt's voice, then 10 s of another voice: the last window and the
    minimum fall, the mean stays between, and pos_sim shows where."""
    prompt = speech("Please say something in my voice, then keep it the same throughout.")
    same = _voice(speech, "en-us", 40.0, offset=1)
    drift = np.concatenate([same[: 30 * SR], _voice(speech, "en-us+f3", 10.0, offset=2)])
    ref = _voice(speech, "en-us", 40.0, offset=3)
    clean, bad = scorer10.score([
        ScoreItem("s", "clean", audio=same, prompt=prompt, reference=ref),
        ScoreItem("s", "drift", audio=drift, prompt=prompt, reference=ref),
    ])
    c, d = clean.values, bad.values
    assert clean.error is None and bad.error is None
    assert d["sim_last"] < c["sim_last"] - 0.1 and d["sim_min"] < c["sim_min"] - 0.1
    assert d["sim_min"] == pytest.approx(d["sim_last"])  # the other voice is the worst window
    assert d["sim_min"] < d["sim"] < max(d["pos_sim"][0], c["sim"])
    assert d["sim_ref_last"] < c["sim_ref_last"] - 0.1 and d["sim_ref_min"] <= d["sim_ref"]
    # 40 s -> two 30 s slices; the tail window (centre 35 s) alone in the second one
    assert len(d["pos_sim"]) == 2 and d["pos_sim"][1] == pytest.approx(d["sim_last"])
    assert all(type(v) is float for v in d["pos_sim"])  # plain floats: they go to JSON
    assert d["pos_sim"][0] > d["pos_sim"][1] + 0.1
    # the first 30 s are the same audio in both: their windows score the same
    assert d["pos_sim"][0] == pytest.approx(c["pos_sim"][0], abs=1e-6)
    # the mean weights windows by the speech seconds they kept: between the two slices,
    # nearer the first (three windows against one)
    assert d["pos_sim"][1] < d["sim"] < d["pos_sim"][0]
    assert d["sim"] - d["pos_sim"][1] > 2 * (d["pos_sim"][0] - d["sim"])


# ---------------------------------------------------------------- registry of speaker models


def test_backends_do_not_import_the_scorer():
    """The old speaker <-> spk_* cycle: a backend needs only the maths and the registry."""
    import subprocess
    import sys

    code = (
        "import sys, halle_bench.metrics.spk_resemblyzer, halle_bench.metrics.spk_ecapa, halle_bench.metrics.spk_wavlm;"
        "print('halle_bench.metrics.speaker' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_registered_speaker_model_is_used_by_name(tmp_path):
    from halle_bench.metrics import spk_registry as reg
    from halle_bench.models import ModelSpec

    weights = tmp_path / "toy.bin"
    weights.write_bytes(b"toy")
    reg.declare_speaker_model(reg.SpeakerModelInfo(
        name="toy-fft", module=__name__,
        spec=ModelSpec(name="toy-fft", backend="toy", filename="toy.bin", description="test", sha256=None,
                       licence="test", how_to_get="test"),
    ))

    @reg.register_speaker_model("toy-fft")
    class Toy(_ToyEncoder):
        @classmethod
        def load(cls, path, device="cpu", batch=64):
            assert path == weights
            return cls()

    try:
        assert "toy-fft" in reg.speaker_model_names()
        sc = SpeakerSimilarity({"model": "toy-fft", "model_path": str(weights)})
        sc.load("cpu")
        assert isinstance(sc.encoder, Toy)
        x = np.random.default_rng(3).standard_normal(3 * SR).astype(np.float32) * 0.1
        out = sc.score([ScoreItem("s", "u", audio=x, prompt=x.copy())])[0]
        assert out.values["sim"] == pytest.approx(1.0) and out.values["sim_model"] == "toy-fft"
    finally:
        reg._REG.info.pop("toy-fft", None)
        reg._REG.backends.pop("toy-fft", None)
        __import__("halle_bench.models").models._SPECS.pop("toy-fft", None)
    with pytest.raises(ConfigError, match="known: ecapa, resemblyzer, wavlm-tdnn"):
        SpeakerSimilarity({"model": "toy-fft"})
    with pytest.raises(Exception, match="before it was declared"):
        reg.register_speaker_model("undeclared")(Toy)
