"""The `valle` system kind: a VALL-E checkpoint as a benchmark system.

```toml
[[systems]]
name = "valle"
kind = "valle"
checkpoint = "ckpt/valle"      # folder written by VALLE.save / the training loop
codec_path = "encodec_24khz-d7cc33bc.th"   # only for checkpoints that name EnCodec
top_k = 50                     # sampling (VALL-E's default: top-k only)
top_p = 1.0
temperature = 1.0
max_len_ratio = 16.0           # cap: 16 x phoneme count new frames
batch_size = 1
device = "cpu"                 # overrides the run's device when set
dtype = "float32"              # float16 | bfloat16: autocast on CUDA
```

Each request's own seed drives its draws (one generator per item), so an utterance gets
the same audio whatever it is batched with. The cache key carries the checkpoint's
sha256 (weights + config), so a retrained checkpoint at the same path is not mistaken
for the old one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from halle_bench.audio import load_audio
from halle_bench.errors import ConfigError, HalleBenchError, UtteranceError
from halle_bench.systems.base import SynthesisRequest, SynthesisResult, register_system

from .model_system import CheckpointSystem
from .sampling import SamplingOptions

_DTYPES = ("float32", "float16", "bfloat16")


@register_system("valle", "VALL-E reference implementation (baselines/valle.py) from a local checkpoint")
class VALLESystem(CheckpointSystem):
    kind = "valle"
    extra_keys = frozenset({"codec_path", "dtype"})
    default_max_len_ratio = 16.0

    def __init__(self, name: str, config: dict[str, Any], base_dir: Path):
        super().__init__(name, config, base_dir)
        self.codec_path = self._path(config["codec_path"]) if config.get("codec_path") else None
        self.dtype = str(config.get("dtype", "float32"))
        if self.dtype not in _DTYPES:
            raise ConfigError(f"system '{name}': dtype must be one of {_DTYPES}, got {self.dtype!r}")

    def load(self, device: str) -> None:
        from .checkpoint import CheckpointError
        from .valle import VALLE

        self.device = str(self.config.get("device") or device)
        try:
            self.model = VALLE.load(self.checkpoint, codec_path=self.codec_path).to(self.device, self.dtype)
        except (CheckpointError, ValueError) as e:
            raise ConfigError(f"system '{self.name}': {e}") from None

    def warmup(self) -> None:
        import numpy as np

        if self.model is None:
            return
        sr = self.model.sample_rate
        tone = (0.1 * np.sin(np.arange(sr // 2) * 2 * np.pi * 220 / sr)).astype(np.float32)
        self.model.synthesize_batch([("warm up.", tone, sr, "hello.")], SamplingOptions(top_k=1, max_new_tokens=8), 0)

    def models(self) -> list[dict[str, str]]:
        out = super().models()
        if self.model is not None and self.model.codec.weights_sha256:
            out.append({"name": f"codec:{self.model.codec.cfg.name}", "sha256": self.model.codec.weights_sha256})
        return out

    def synthesize(self, requests: list[SynthesisRequest]) -> list[SynthesisResult]:
        if self.model is None:
            raise HalleBenchError(f"system '{self.name}' used before load()")
        results = {r.utt_id: SynthesisResult(r.utt_id) for r in requests}
        items, seeds, ids = [], [], []
        for r in requests:
            try:
                if r.prompt_audio is not None:
                    wav, sr, _ = load_audio(r.prompt_audio, sr=None)
                else:
                    wav, sr = None, None
                items.append((r.text, wav, sr, r.prompt_text))
                seeds.append(int(r.seed))
                ids.append(r.utt_id)
            except UtteranceError as e:
                results[r.utt_id].error = str(e)
        if items:
            try:
                outs = self.model.synthesize_batch(items, self.opts, seeds)
            except RuntimeError as e:  # e.g. CUDA out of memory for this batch
                outs = None
                for uid in ids:
                    results[uid].error = f"synthesis failed: {e}"
            for uid, o in zip(ids, outs or []):
                res = results[uid]
                res.error = o.error
                res.info = dict(o.info)
                if o.wav is not None and o.error is None:
                    res.audio, res.sample_rate = o.wav, o.sample_rate
        return [results[r.utt_id] for r in requests]
