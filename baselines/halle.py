"""HALL-E: an AR over MReQ's 8 Hz tokens + a hierarchical NAR + the MReQ tokenizer.

`HALLE.synthesize(text, prompt_wav, prompt_text, opts, seed)`:

1. the prompt is tokenized by MReQ (all levels; padded to a whole 1/8 s block),
2. the AR (`baselines.ar.CodecAR`, the one AR implementation VALL-E also uses, KV-cached,
   with the delay pattern when the 8 Hz level has several codebooks) continues the
   prompt's b_1 tokens from phonemes(prompt_text) + word break + phonemes(text),
3. the NAR (`baselines.halle_nar.HalleNAR`) fills levels 2..K through the frozen MRVQ,
   with a sliding window at the teacher rate,
4. the tokenizer decodes the new frames only.

**Initialisation from VALL-E** (`init_from_valle`): HALL-E's AR has VALL-E's AR shape except
for its audio vocabulary and codebook count. What carries over, when shapes match: the
transformer blocks and final norm (`decoder.*`) and, when the symbol tables are equal, the
text side (`text_emb`, `text_pos.alpha`): phonemes mean the same in both models. Nothing
audio-side is copied: VALL-E's tokens are EnCodec 75 Hz codebook-1 codes, unrelated to the
MRVQ's 8 Hz codes, so `audio_emb.*` (which are also the tied output heads) and
`audio_pos.alpha` keep their own initialisation; in particular each 8 Hz codebook keeps its
own embedding, so the delay-pattern heads start distinct. The report lists each key as
loaded or skipped with the reason.

Checkpoint folder: model.safetensors (`ar.*`, `nar.*`), config.json (both architectures,
the symbol table, the tokenizer identity: codec + MRVQ config + MRVQ sha256), and
`tokenizer/` (the MReQ tokenizer the model was trained on). Loading checks that the MRVQ
sha256 equals the recorded one. A checkpoint whose config says `tokenizer_source = "shipped"`
has no `tokenizer/` and uses the package's own MReQ tokenizer (`baselines/shipped.py`): the
shipped HALL-E of the trained pair, which would otherwise carry a second copy of it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from halle_bench.errors import UtteranceError

from .ar import ARConfig, CodecAR
from .checkpoint import CheckpointError, load_checkpoint, read_config, save_checkpoint
from .halle_nar import HalleNAR, HalleNARConfig, level_features
from .mreq_tokenizer import MReQTokenizer
from .sampling import SamplingOptions
from .text import TextFrontend
from .transformer import TransformerConfig

ARCHITECTURE = "halle"


class HALLE:
    """Owns AR + NAR (an nn.ModuleDict `lm`), the MReQ tokenizer and the text frontend."""

    def __init__(self, ar: CodecAR, nar: HalleNAR, tokenizer: MReQTokenizer, frontend: TextFrontend):
        lv0 = tokenizer.mrvq.cfg.level(0)
        if ar.cfg.n_codebooks != lv0["quant_n_q"] or ar.cfg.codebook_size != lv0["codebook_size"]:
            raise ValueError(f"AR ({ar.cfg.n_codebooks} x {ar.cfg.codebook_size}) does not match the "
                             f"{tokenizer.rates[0]} Hz level ({lv0['quant_n_q']} x {lv0['codebook_size']})")
        if nar.cfg.ratios != tokenizer.mrvq.cfg.ratios:
            raise ValueError("NAR levels do not match the tokenizer's MRVQ")
        self.lm = nn.ModuleDict({"ar": ar, "nar": nar})
        self.tokenizer = tokenizer
        self.frontend = frontend
        self.device = torch.device("cpu")
        self.last_timing: dict[str, float] = {}

    @property
    def ar(self) -> CodecAR:
        return self.lm["ar"]

    @property
    def nar(self) -> HalleNAR:
        return self.lm["nar"]

    @property
    def mrvq(self):
        return self.tokenizer.mrvq

    @property
    def sample_rate(self) -> int:
        return self.tokenizer.sample_rate

    @classmethod
    def build(cls, tokenizer: MReQTokenizer, frontend: TextFrontend | None = None, size: str = "tiny",
              seed: int = 0, window: int = 480, overlap: int = 96, **tf_kw) -> "HALLE":
        fe = frontend or TextFrontend()
        lv0 = tokenizer.mrvq.cfg.level(0)
        k = tokenizer.mrvq.cfg.n_levels
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            ar = CodecAR(ARConfig(fe.vocab_size, lv0["codebook_size"], lv0["quant_n_q"], TransformerConfig.for_size(size, **tf_kw)))
            nar_tf = TransformerConfig.for_size(size, cross_attention=True, adaptive_norm=True, n_stages=max(1, k - 1), **tf_kw)
            nar = HalleNAR(HalleNARConfig.from_mrvq(tokenizer.mrvq, fe.vocab_size, nar_tf, window=window, overlap=overlap))
        return cls(ar.eval(), nar.eval(), tokenizer, fe)

    def to(self, device: str | torch.device) -> "HALLE":
        self.device = torch.device(device)
        self.lm.to(self.device).eval()
        self.tokenizer.codec.to(self.device)
        self.tokenizer.mrvq.to(self.device)
        return self

    # ------------------------------------------------------------ VALL-E init
    def init_from_valle(self, valle_checkpoint: str | Path) -> dict[str, Any]:
        """Copy the shared AR weights from a VALL-E checkpoint folder; returns {loaded, skipped}."""
        from safetensors.torch import load_file

        d = Path(valle_checkpoint)
        meta = read_config(d)
        cfg = meta["config"]
        if cfg.get("architecture") != "valle":
            raise CheckpointError(f"{d}: architecture {cfg.get('architecture')!r}, expected 'valle'")
        state = load_file(str(d / "model.safetensors"))
        src = {k[len("ar."):]: v for k, v in state.items() if k.startswith("ar.")}
        same_text = cfg.get("text") == self.frontend.to_dict()
        own = self.ar.state_dict()
        loaded, skipped = [], {}
        new = {}
        for key, v in src.items():
            if key.startswith("audio_emb.") or key.startswith("audio_pos."):
                skipped[key] = "audio side: VALL-E's codec tokens are unrelated to the MRVQ's"
                continue
            if not (key.startswith("decoder.") or key.startswith("text_emb.") or key.startswith("text_pos.")):
                skipped[key] = "not a transformer block or the text side"
                continue
            if not key.startswith("decoder.") and not same_text:
                skipped[key] = "symbol table differs"
                continue
            if key not in own:
                skipped[key] = "no such weight in HALL-E's AR"
            elif own[key].shape != v.shape:
                skipped[key] = f"shape {tuple(v.shape)} vs {tuple(own[key].shape)}"
            else:
                new[key] = v
                loaded.append(key)
        own.update({k: v.to(own[k].dtype) for k, v in new.items()})
        self.ar.load_state_dict(own, strict=True)
        return {"loaded": sorted(loaded), "skipped": skipped}

    # ------------------------------------------------------------ files
    def config(self) -> dict[str, Any]:
        return {
            "architecture": ARCHITECTURE,
            "ar": self.ar.cfg.to_dict(),
            "nar": self.nar.cfg.to_dict(),
            "text": self.frontend.to_dict(),
            "tokenizer": self.tokenizer.identity(),
        }

    def save(self, directory: str | Path, extra: dict | None = None) -> Path:
        d = Path(directory)
        self.tokenizer.save(d / "tokenizer")
        save_checkpoint(d, self.lm, self.config(), extra or {})
        return d

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> "HALLE":
        d = Path(directory)

        def build(cfg: dict[str, Any]) -> nn.Module:
            if cfg.get("architecture") != ARCHITECTURE:
                raise CheckpointError(f"checkpoint {d}: architecture {cfg.get('architecture')!r}, expected {ARCHITECTURE!r}")
            return nn.ModuleDict({"ar": CodecAR(ARConfig.from_dict(cfg["ar"])),
                                  "nar": HalleNAR(HalleNARConfig.from_dict(cfg["nar"]))})

        lm, meta = load_checkpoint(d, build)
        cfg = meta["config"]
        if cfg.get("tokenizer_source") == "shipped":
            from .shipped import mreq_dir  # the package's own MReQ tokenizer, not a second copy of it

            tok = MReQTokenizer.load(mreq_dir())
        else:
            tok = MReQTokenizer.load(d / "tokenizer")
        want = cfg["tokenizer"].get("mrvq_sha256")
        if want and tok.mrvq_sha256 != want:
            raise CheckpointError(f"checkpoint {d}: tokenizer MRVQ sha256 {tok.mrvq_sha256} != recorded {want}")
        return cls(lm["ar"].eval(), lm["nar"].eval(), tok, TextFrontend.from_dict(cfg["text"])).to(device)

    # ------------------------------------------------------------ inference
    def text_ids(self, text: str, prompt_text: str | None) -> list[int]:
        return self.frontend.prompt_and_target_ids(text, prompt_text)

    @torch.no_grad()
    def generate_tokens(self, text_ids: list[int], prompt_tokens: dict[int, torch.Tensor] | None,
                        opts: SamplingOptions, seed: int = 0, window: int | None = None,
                        overlap: int | None = None) -> dict[int, torch.Tensor]:
        """Text ids + the prompt's MReQ tokens -> the new tokens {rate: [n_q, T_rate]} (all levels)."""
        dev = self.device
        rates = self.tokenizer.rates
        mrvq = self.mrvq
        n1 = self.ar.cfg.n_codebooks
        text = torch.tensor([text_ids], device=dev)
        tl = torch.tensor([len(text_ids)], device=dev)
        if prompt_tokens:
            p1 = prompt_tokens[rates[0]].to(dev).unsqueeze(0)
            prompt_feats = level_features(mrvq, [prompt_tokens[r].to(dev).unsqueeze(0) for r in rates], len(rates))
        else:
            p1 = torch.zeros(1, n1, 0, dtype=torch.long, device=dev)
            prompt_feats = torch.zeros(1, mrvq.cfg.dim, 0, device=dev)
        gen = torch.Generator(device=dev).manual_seed(int(seed))
        _sync(dev)
        t0 = time.perf_counter()
        b1 = self.ar.generate(text, tl, p1, torch.tensor([p1.shape[-1]], device=dev), opts, gen)[0]
        _sync(dev)
        t1 = time.perf_counter()
        if b1.shape[-1] == 0:
            raise UtteranceError("the model produced no audio frames (EOS at once)")
        bs = self.nar.generate(mrvq, text, tl, prompt_feats, b1.unsqueeze(0), window, overlap)
        _sync(dev)
        t2 = time.perf_counter()
        self.last_timing = {"ar_seconds": t1 - t0, "nar_seconds": t2 - t1, "ar_steps": int(b1.shape[-1]) + n1,
                            "frames_8hz": int(b1.shape[-1]), **self.ar.last_info[0]}
        return {r: b[0] for r, b in zip(rates, bs)}

    def synthesize(self, text: str, prompt_wav: np.ndarray | None, prompt_text: str | None,
                   opts: SamplingOptions = SamplingOptions(top_k=50), seed: int = 0,
                   prompt_sr: int | None = None) -> np.ndarray:
        """Speech for `text` in the prompt's voice: mono float32 at `sample_rate`."""
        ids = self.text_ids(text, prompt_text)
        ptoks = None
        if prompt_wav is not None and len(prompt_wav) > 0:
            from .silence import trim_prompt

            psr = prompt_sr or self.sample_rate
            ptoks = self.tokenizer.encode(trim_prompt(prompt_wav, psr), psr)
        toks = self.generate_tokens(ids, ptoks, opts, seed)
        t0 = time.perf_counter()
        wav = self.tokenizer.decode(toks)
        self.last_timing["decode_seconds"] = time.perf_counter() - t0
        return wav


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


__all__ = ["HALLE", "ARCHITECTURE"]
