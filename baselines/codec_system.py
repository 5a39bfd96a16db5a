"""The `codec` system kind: resynthesis (encode the reference audio, decode it).

The paper's Table 3 (MReQ reconstruction) as a benchmark run: every utterance's reference
audio goes through a codec and back, and the usual scorers (WER, PESQ/STOI, similarity)
say what the tokens keep.

```toml
[[systems]]
name = "teacher"
kind = "codec"
tokens = "teacher"     # teacher | mreq | naive  (default teacher)
n_codebooks = 8        # teacher only: the first n RVQ codebooks (default all)
levels = 4             # mreq only: levels 1..k (k = 1: the 8 Hz tokens alone; default all)
checkpoint = "..."     # optional: a codec folder (teacher / naive) or an MReQ tokenizer
                       # folder (mreq); default: the codecs shipped in the package
device = "cpu"
```

With no settings it is the shipped teacher with all its codebooks. The output is the
whole reference (like `ground-truth`: with the `head` prompt policy it still starts with
the prompt), at the codec's sample rate, cut to the input's length. Decoding is
deterministic, so the seed plays no part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from halle_bench.audio import load_audio, sha256_file
from halle_bench.errors import ConfigError, HalleBenchError, UtteranceError
from halle_bench.systems.base import BaseSystem, SynthesisRequest, SynthesisResult, register_system

TOKENS = ("teacher", "mreq", "naive")
_KEYS = frozenset({"name", "kind", "tokens", "n_codebooks", "levels", "checkpoint", "device"})


def _positive_int(name: str, config: dict[str, Any], key: str) -> int | None:
    v = config.get(key)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ConfigError(f"system '{name}': `{key}` must be a positive integer, got {v!r}")
    return v


@register_system("codec", "codec resynthesis of the reference audio (shipped mel teacher, MReQ levels, naive 8 Hz)")
class CodecSystem(BaseSystem):
    kind = "codec"

    def __init__(self, name: str, config: dict[str, Any], base_dir: Path):
        super().__init__(name, config, base_dir)
        unknown = sorted(set(config) - _KEYS)
        if unknown:
            raise ConfigError(f"system '{name}': unknown keys {unknown}; known: {sorted(_KEYS)}")
        self.tokens = str(config.get("tokens", "teacher"))
        if self.tokens not in TOKENS:
            raise ConfigError(f"system '{name}': tokens must be one of {list(TOKENS)}, got {self.tokens!r}")
        self.n_codebooks = _positive_int(name, config, "n_codebooks")
        self.levels = _positive_int(name, config, "levels")
        if self.n_codebooks is not None and self.tokens != "teacher":
            raise ConfigError(f"system '{name}': n_codebooks applies to tokens = \"teacher\" only")
        if self.levels is not None and self.tokens != "mreq":
            raise ConfigError(f"system '{name}': levels applies to tokens = \"mreq\" only")
        ck = config.get("checkpoint")
        self.checkpoint = None if not ck else (Path(ck).expanduser() if Path(ck).expanduser().is_absolute()
                                               else base_dir / Path(ck).expanduser())
        self.model = None  # a codec or an MReQ tokenizer
        self._digests: list[dict[str, str]] | None = None

    # ------------------------------------------------------------ files
    def _folder(self) -> Path:
        from . import shipped

        if self.checkpoint is not None:
            if not self.checkpoint.is_dir():
                raise ConfigError(f"system '{self.name}': checkpoint folder not found: {self.checkpoint}")
            return self.checkpoint
        return {"teacher": shipped.teacher_dir, "mreq": shipped.mreq_dir, "naive": shipped.naive_dir}[self.tokens]()

    def models(self) -> list[dict[str, str]]:
        if self._digests is None:
            d = self._folder()
            files = ([("codec", d / "codec" / "codec.safetensors"), ("mrvq", d / "mrvq.safetensors")]
                     if self.tokens == "mreq" else [("codec", d / "codec.safetensors")])
            out = []
            for what, p in files:
                if not p.exists():
                    raise ConfigError(f"system '{self.name}': {p} not found (not a {self.tokens} folder)")
                out.append({"name": f"{what}:{p.parent.name if what == 'codec' else d.name}:{p}", "sha256": sha256_file(p)})
            self._digests = out
        return self._digests

    def cache_key(self) -> dict[str, Any]:
        key = super().cache_key()
        key.pop("device", None)
        key["weights_sha256"] = [m["sha256"] for m in self.models()]
        # the JSON configs set synthesis too (e.g. Griffin-Lim iterations): hash them by content
        d = self._folder()
        key["config_sha256"] = [sha256_file(p) for p in sorted(d.rglob("*.json"))]
        return key

    def item_fingerprint(self, request: SynthesisRequest) -> str:
        p = request.reference_audio
        return sha256_file(p) if p is not None and Path(p).is_file() else "missing"

    # ------------------------------------------------------------ running
    def load(self, device: str) -> None:
        from .checkpoint import CheckpointError
        from .codec_api import load_codec
        from .mreq_tokenizer import MReQTokenizer

        self.device = str(self.config.get("device") or device)
        try:
            d = self._folder()
            if self.tokens == "mreq":
                tok = MReQTokenizer.load(d, self.device)
                if self.levels is not None and self.levels > len(tok.rates):
                    raise ConfigError(f"system '{self.name}': levels = {self.levels}, the MRVQ has {len(tok.rates)}")
                self.model = tok
            else:
                codec = load_codec(d).to(self.device)
                if self.n_codebooks is not None:
                    codec.with_n_q(self.n_codebooks)
                self.model = codec
        except (CheckpointError, HalleBenchError, OSError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"system '{self.name}': {e}") from None
        self.models()

    def resynthesize(self, wav: np.ndarray, sr: int) -> tuple[np.ndarray, int, dict[str, Any]]:
        """Mono audio -> (resynthesised mono float32, its sample rate, info)."""
        import torch

        from halle_bench.audio import resample

        if self.model is None:
            raise HalleBenchError(f"system '{self.name}' used before load()")
        with torch.no_grad():
            if self.tokens == "mreq":
                tok = self.model
                toks = tok.encode(wav, sr)
                out = tok.decode(toks, n_levels=self.levels)
                out_sr = tok.sample_rate
                rates = tok.rates[: self.levels or len(tok.rates)]
                frames = sum(int(toks[r].numel()) for r in rates)
            else:
                codec = self.model
                x = resample(np.asarray(wav, np.float32), sr, codec.sample_rate) if sr != codec.sample_rate else wav
                codes = codec.encode(np.asarray(x, np.float32), None)
                out = codec.decode(codes).reshape(-1).cpu().numpy()
                out_sr = codec.sample_rate
                frames = int(codes.numel())
        n = int(round(len(wav) * out_sr / sr))
        out = np.asarray(out[:n], dtype=np.float32)
        if out.size < n:
            out = np.pad(out, (0, n - out.size))
        seconds = len(wav) / sr
        return out, out_sr, {"tokens": frames, "tokens_per_second": frames / seconds if seconds else None}

    def synthesize(self, requests: list[SynthesisRequest]) -> list[SynthesisResult]:
        out = []
        for r in requests:
            res = SynthesisResult(r.utt_id)
            if r.reference_audio is None:
                res.error = "no reference audio to resynthesise for this utterance"
            else:
                try:
                    wav, sr, _ = load_audio(r.reference_audio, sr=None)
                    res.audio, res.sample_rate, res.info = self.resynthesize(wav, sr)
                except (UtteranceError, HalleBenchError, ValueError, RuntimeError) as e:
                    res.error = f"resynthesis failed: {e}"
            out.append(res)
        return out


__all__ = ["CodecSystem", "TOKENS"]
