"""VALL-E: text frontend + AR (codebook 1) + NAR (codebooks 2..N) + codec.

`VALLE.synthesize(text, prompt_wav, prompt_text, opts, seed)` continues the prompt's voice:
the AR sees phonemes(prompt_text) + word break + phonemes(text) and the prompt's first
codebook, samples codebook 1 of the new speech; the NAR fills codebooks 2..N greedily
from the same text and the prompt's full codes; the codec decodes the new frames only.

Checkpoint folder (`save` / `load`): model.safetensors holds `ar.*` and `nar.*`;
config.json holds both architectures, the symbol table and the codec identity. The codec
itself is either embedded (`codec/`, a random or self-trained codec saved as
safetensors) or named (`encodec-24khz`: its file is resolved through the models
registry or given as `codec_path`, and its sha256 is checked against the recorded one), or
`shipped`: the package's own 48 Hz teacher (`baselines/shipped.py`), which is how the shipped
VALL-E of the trained pair avoids carrying a second copy of it.

Sizes: `VALLE.build(size="paper")` is the paper's 12 x 16 heads x 1024 x 4096 for both
AR and NAR; `size="tiny"` is for tests and CPU smoke runs.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from halle_bench.errors import UtteranceError

from .ar import ARConfig, CodecAR
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .codec import Codec, CodecConfig
from .codec_api import load_codec
from .nar import CodecNAR, NARConfig
from .sampling import SamplingOptions
from .text import TextFrontend
from .transformer import TransformerConfig

ARCHITECTURE = "valle"


@dataclass
class SynthesisOutput:
    wav: np.ndarray | None  # float32 mono at `sample_rate`
    sample_rate: int
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


class VALLE:
    """Owns the loaded models; not an nn.Module itself (the codec is not part of the LM weights)."""

    def __init__(self, ar: CodecAR, nar: CodecNAR, codec: Codec, frontend: TextFrontend):
        if ar.cfg.codebook_size != codec.codebook_size or nar.cfg.n_codebooks != codec.n_q:
            raise ValueError("AR/NAR codebook sizes do not match the codec")
        self.lm = nn.ModuleDict({"ar": ar, "nar": nar})
        self.codec = codec
        self.frontend = frontend
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    @property
    def ar(self) -> CodecAR:
        return self.lm["ar"]

    @property
    def nar(self) -> CodecNAR:
        return self.lm["nar"]

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @classmethod
    def build(cls, codec: Codec, frontend: TextFrontend | None = None, size: str = "tiny", seed: int = 0, **tf_kw) -> "VALLE":
        fe = frontend or TextFrontend()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            ar = CodecAR(ARConfig(fe.vocab_size, codec.codebook_size, 1, TransformerConfig.for_size(size, **tf_kw)))
            nar_tf = TransformerConfig.for_size(size, adaptive_norm=True, n_stages=codec.n_q - 1, **tf_kw)
            nar = CodecNAR(NARConfig(fe.vocab_size, codec.codebook_size, codec.n_q, nar_tf))
        return cls(ar.eval(), nar.eval(), codec, fe)

    def to(self, device: str | torch.device, dtype: str | torch.dtype = torch.float32) -> "VALLE":
        """Move to a device; fp16/bf16 run the LMs under autocast on CUDA (weights stay fp32)."""
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if self.dtype != torch.float32 and self.device.type != "cuda":
            raise ValueError(f"dtype {self.dtype} needs a CUDA device (autocast); use float32 on {self.device}")
        self.lm.to(self.device).eval()
        self.codec.to(self.device)
        return self

    def _autocast(self):
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.dtype)

    # ------------------------------------------------------------ config
    def config(self) -> dict[str, Any]:
        return {
            "architecture": ARCHITECTURE,
            "ar": self.ar.cfg.to_dict(),
            "nar": self.nar.cfg.to_dict(),
            "text": self.frontend.to_dict(),
            "codec": self.codec.identity(),
            "codec_config": self.codec.cfg.to_dict(),
        }

    def save(self, directory: str | Path, embed_codec: bool | None = None, extra: dict | None = None) -> Path:
        """Write the checkpoint; the codec is embedded unless it is the real EnCodec."""
        d = Path(directory)
        if embed_codec is None:
            embed_codec = not self.codec.cfg.name.startswith("encodec_24khz")
        cfg = self.config()
        cfg["codec_source"] = "embedded" if embed_codec else "encodec-24khz"
        if embed_codec:
            self.codec.save(d / "codec")
            cfg["codec"] = load_codec(d / "codec").identity()
        save_checkpoint(d, self.lm, cfg, extra or {})
        return d

    @classmethod
    def load(cls, directory: str | Path, codec_path: str | Path | None = None) -> "VALLE":
        d = Path(directory)

        def build(cfg: dict[str, Any]) -> nn.Module:
            if cfg.get("architecture") != ARCHITECTURE:
                raise CheckpointError(f"checkpoint {d}: architecture {cfg.get('architecture')!r}, expected {ARCHITECTURE!r}")
            return nn.ModuleDict({"ar": CodecAR(ARConfig.from_dict(cfg["ar"])), "nar": CodecNAR(NARConfig.from_dict(cfg["nar"]))})

        lm, meta = load_checkpoint(d, build)
        cfg = meta["config"]
        if cfg.get("codec_source") == "embedded":
            codec = load_codec(d / "codec")  # either codec kind (codec_api)
        elif cfg.get("codec_source") == "shipped":
            from .shipped import teacher_dir  # the package's own teacher codec, not a second copy of it

            codec = load_codec(teacher_dir())
        else:
            codec = Codec.encodec_24khz(codec_path, bandwidth=_bandwidth(cfg["codec"]))
        want = cfg["codec"].get("weights_sha256")
        if want and codec.weights_sha256 != want:
            raise CheckpointError(
                f"checkpoint {d} was trained with codec weights sha256 {want}, got {codec.weights_sha256}"
            )
        return cls(lm["ar"].eval(), lm["nar"].eval(), codec, TextFrontend.from_dict(cfg["text"]))

    # --------------------------------------------------------- inference
    def _text_ids(self, text: str, prompt_text: str | None) -> list[int]:
        return self.frontend.prompt_and_target_ids(text, prompt_text)

    def synthesize(self, text: str, prompt_wav: np.ndarray | None, prompt_text: str | None,
                   opts: SamplingOptions = SamplingOptions(top_k=50), seed: int = 0, prompt_sr: int | None = None) -> np.ndarray:
        out = self.synthesize_batch([(text, prompt_wav, prompt_sr, prompt_text)], opts, seed)[0]
        if out.error:
            raise UtteranceError(out.error)
        return out.wav

    @torch.no_grad()
    def synthesize_batch(self, items: list[tuple[str, np.ndarray | None, int | None, str | None]],
                         opts: SamplingOptions = SamplingOptions(top_k=50), seed: int | list[int] = 0) -> list[SynthesisOutput]:
        """items: (text, prompt_wav, prompt_sr, prompt_text). A bad item gets `error`; the rest run batched.

        `seed`: one int (one generator for the whole batch: reproducible for the same batch)
        or one per item (each item's draws independent of the batch's composition).
        """
        sr = self.sample_rate
        outs = [SynthesisOutput(None, sr) for _ in items]
        prepared = []
        for i, (text, pw, psr, ptext) in enumerate(items):
            try:
                ids = self._text_ids(text, ptext)
                if pw is not None and len(pw) > 0:
                    from .silence import trim_prompt

                    pc = self.codec.encode(trim_prompt(pw, psr or sr), psr or sr)[0]
                else:
                    pc = torch.zeros(self.codec.n_q, 0, dtype=torch.long, device=self.device)
                prepared.append((i, ids, pc))
            except (UtteranceError, ValueError, RuntimeError) as e:
                outs[i].error = str(e)
        if not prepared:
            return outs
        dev = self.device
        b = len(prepared)
        lt = max(len(p[1]) for p in prepared)
        tp = max(p[2].shape[1] for p in prepared)
        text = torch.zeros(b, lt, dtype=torch.long, device=dev)
        prompt = torch.zeros(b, self.codec.n_q, tp, dtype=torch.long, device=dev)
        for j, (_, ids, pc) in enumerate(prepared):
            text[j, : len(ids)] = torch.tensor(ids, device=dev)
            prompt[j, :, : pc.shape[1]] = pc
        tl = torch.tensor([len(p[1]) for p in prepared], device=dev)
        pl = torch.tensor([p[2].shape[1] for p in prepared], device=dev)
        if isinstance(seed, (list, tuple)):
            seeds = [int(seed[i]) for i, _, _ in prepared]
            gen = [torch.Generator(device=dev).manual_seed(s) for s in seeds]
        else:
            gen = torch.Generator(device=dev).manual_seed(int(seed))
        _sync(dev)
        t0 = time.perf_counter()
        with self._autocast():
            firsts = self.ar.generate(text, tl, prompt[:, :1], pl, opts, gen)
        _sync(dev)
        t1 = time.perf_counter()
        lens = torch.tensor([f.shape[1] for f in firsts], device=dev)
        first = torch.zeros(b, max(1, int(lens.max())), dtype=torch.long, device=dev)
        for j, f in enumerate(firsts):
            first[j, : f.shape[1]] = f[0]
        with self._autocast():
            codes = self.nar.generate(text, tl, prompt, pl, first, lens)
        _sync(dev)
        t2 = time.perf_counter()
        for j, (i, _, _) in enumerate(prepared):
            n = int(lens[j])
            info = {"frames": n, **self.ar.last_info[j], "ar_seconds": (t1 - t0) / b, "nar_seconds": (t2 - t1) / b}
            if n == 0:
                outs[i].error = "the model produced no audio frames (EOS at once)"
                outs[i].info = info
                continue
            wav = self.codec.decode(codes[j : j + 1, :, :n])[0, 0].float().cpu().numpy()
            outs[i].wav = wav.astype(np.float32)
            outs[i].info = info
        _sync(dev)
        for o in outs:
            if o.info:
                o.info["decode_seconds"] = (time.perf_counter() - t2) / b
        return outs


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _bandwidth(identity: dict[str, Any]) -> float:
    n_q = int(identity.get("n_q", 8))
    return {2: 1.5, 4: 3.0, 8: 6.0, 16: 12.0, 32: 24.0}.get(n_q, 6.0)


__all__ = ["VALLE", "SynthesisOutput", "Codec", "CodecConfig", "SamplingOptions"]
