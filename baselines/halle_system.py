"""The `halle` system kind: a HALL-E checkpoint as a benchmark system.

```toml
[[systems]]
name = "halle"
kind = "halle"
checkpoint = "ckpt/halle"      # folder written by HALLE.save (with its tokenizer/)
top_k = 50
top_p = 1.0
temperature = 1.0
max_len_ratio = 2.0            # cap: 2 x phoneme count new 8 Hz frames
nar_window = 480               # NAR sliding window / overlap, teacher frames (default: the checkpoint's)
nar_overlap = 96
device = "cpu"                 # overrides the run's device when set
```

Decisions: the length cap defaults to 2 frames at 8 Hz per phoneme, the same duration as
VALL-E's 16 frames at 75 Hz (16 x 8 / 75 = 1.7, rounded up). Items run one at a time (the
NAR's sliding window is per item); each request's seed drives its own generator. When a
request carries `prompt_start`/`prompt_end`, only that cut of the prompt audio is used.
The per-item result `info` carries `ar_seconds`, `nar_seconds`, `decode_seconds` and
`ar_steps`, so reports can split the real-time factor between AR and NAR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from halle_bench.audio import load_audio
from halle_bench.errors import ConfigError, HalleBenchError, UtteranceError
from halle_bench.systems.base import BaseSystem, SynthesisRequest, SynthesisResult, register_system

from .sampling import SamplingOptions

_KEYS = {"name", "kind", "checkpoint", "top_k", "top_p", "temperature", "max_len_ratio", "max_new_tokens",
         "nar_window", "nar_overlap", "batch_size", "device"}


@register_system("halle", "HALL-E reference implementation (baselines/halle.py, MReQ tokens) from a local checkpoint")
class HALLESystem(BaseSystem):
    kind = "halle"

    def __init__(self, name: str, config: dict[str, Any], base_dir: Path):
        super().__init__(name, config, base_dir)
        unknown = sorted(set(config) - _KEYS)
        if unknown:
            raise ConfigError(f"system '{name}': unknown keys {unknown}; known: {sorted(_KEYS)}")
        if not config.get("checkpoint"):
            raise ConfigError(f"system '{name}': kind 'halle' needs checkpoint = <folder>")
        q = Path(config["checkpoint"]).expanduser()
        self.checkpoint = q if q.is_absolute() else base_dir / q
        try:
            self.opts = SamplingOptions(
                top_k=int(config.get("top_k", 50)),
                top_p=float(config.get("top_p", 1.0)),
                temperature=float(config.get("temperature", 1.0)),
                max_len_ratio=float(config.get("max_len_ratio", 2.0)),
                max_new_tokens=int(config["max_new_tokens"]) if config.get("max_new_tokens") else None,
            )
            self.window = int(config["nar_window"]) if config.get("nar_window") else None
            self.overlap = int(config["nar_overlap"]) if config.get("nar_overlap") is not None else None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"system '{name}': bad setting: {e}") from None
        self.batch_size = 1
        self.model = None
        self._sha: str | None = None

    def checkpoint_sha256(self) -> str:
        """Digest of weights + config + the tokenizer's MRVQ and codec files."""
        if self._sha is None:
            import hashlib

            from halle_bench.audio import sha256_file

            from .checkpoint import CheckpointError, checkpoint_sha256

            try:
                h = hashlib.sha256(checkpoint_sha256(self.checkpoint).encode())
                for rel in ("tokenizer/mrvq.safetensors", "tokenizer/codec/codec.safetensors"):
                    p = self.checkpoint / rel
                    if not p.exists():
                        raise CheckpointError(f"checkpoint {self.checkpoint}: {rel} not found")
                    h.update(sha256_file(p).encode())
            except CheckpointError as e:
                raise ConfigError(f"system '{self.name}': {e}") from None
            self._sha = h.hexdigest()
        return self._sha

    def cache_key(self) -> dict[str, Any]:
        key = super().cache_key()
        key.pop("device", None)
        key.pop("batch_size", None)
        key["checkpoint"] = str(self.checkpoint)
        key["checkpoint_sha256"] = self.checkpoint_sha256()
        return key

    def load(self, device: str) -> None:
        from .halle import HALLE

        self.device = str(self.config.get("device") or device)
        try:
            self.model = HALLE.load(self.checkpoint, device=self.device)
        except (HalleBenchError, ValueError, FileNotFoundError) as e:  # CheckpointError, ChecksumError, ...
            raise ConfigError(f"system '{self.name}': {e}") from None

    def warmup(self) -> None:
        if self.model is None:
            return
        try:
            self.model.generate_tokens(self.model.text_ids("warm up.", None), None,
                                       SamplingOptions(top_k=1, max_new_tokens=4), 0)
        except UtteranceError:
            pass

    def models(self) -> list[dict[str, str]]:
        return [{"name": f"halle:{self.checkpoint}", "sha256": self.checkpoint_sha256()}]

    def synthesize(self, requests: list[SynthesisRequest]) -> list[SynthesisResult]:
        if self.model is None:
            raise HalleBenchError(f"system '{self.name}' used before load()")
        out = []
        for r in requests:
            res = SynthesisResult(r.utt_id)
            try:
                ptoks = None
                if r.prompt_audio is not None:
                    wav, sr, _ = load_audio(r.prompt_audio, sr=None)
                    if r.prompt_start is not None or r.prompt_end is not None:
                        wav = wav[int((r.prompt_start or 0) * sr): None if r.prompt_end is None else int(r.prompt_end * sr)]
                    ptoks = self.model.tokenizer.encode(wav, sr)
                ids = self.model.text_ids(r.text, r.prompt_text)
                toks = self.model.generate_tokens(ids, ptoks, self.opts, int(r.seed), self.window, self.overlap)
                res.audio = self.model.tokenizer.decode(toks)
                res.sample_rate = self.model.sample_rate
                res.info = dict(self.model.last_timing)
            except (UtteranceError, ValueError) as e:
                res.error = str(e)
            except RuntimeError as e:  # e.g. CUDA out of memory for this item
                res.error = f"synthesis failed: {e}"
            out.append(res)
        return out

    def close(self) -> None:
        self.model = None
