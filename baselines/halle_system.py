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
request's `prompt_audio` is the prompt itself (the harness writes cuts to files).
The per-item result `info` carries `ar_seconds`, `nar_seconds`, `decode_seconds` and
`ar_steps`, so reports can split the real-time factor between AR and NAR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from halle_bench.audio import load_audio
from halle_bench.errors import ConfigError, HalleBenchError, UtteranceError
from halle_bench.systems.base import SynthesisRequest, SynthesisResult, register_system

from .model_system import CheckpointSystem
from .sampling import SamplingOptions

@register_system("halle", "HALL-E reference implementation (baselines/halle.py, MReQ tokens) from a local checkpoint")
class HALLESystem(CheckpointSystem):
    kind = "halle"
    extra_keys = frozenset({"nar_window", "nar_overlap"})
    default_max_len_ratio = 2.0
    extra_checkpoint_files = ("tokenizer/mrvq.safetensors", "tokenizer/codec/codec.safetensors")

    def checkpoint_extra_files(self) -> tuple[str, ...]:
        # A checkpoint on the shipped tokenizer has no tokenizer/: config.json (hashed) records
        # the tokenizer's sha256s, and loading checks them against the shipped files.
        from .checkpoint import CheckpointError, read_config

        try:
            shipped = read_config(self.checkpoint).get("config", {}).get("tokenizer_source") == "shipped"
        except (CheckpointError, OSError, ValueError):
            shipped = False  # checkpoint_sha256 reports the real problem
        return () if shipped else self.extra_checkpoint_files

    def __init__(self, name: str, config: dict[str, Any], base_dir: Path):
        super().__init__(name, config, base_dir)
        try:
            self.window = int(config["nar_window"]) if config.get("nar_window") else None
            self.overlap = int(config["nar_overlap"]) if config.get("nar_overlap") is not None else None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"system '{name}': bad setting: {e}") from None
        self.batch_size = 1  # the NAR's sliding window runs per item

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
