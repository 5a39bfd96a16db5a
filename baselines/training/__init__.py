"""Training VALL-E, MReQ and HALL-E at scale (`halle-bench train`).

| module   | what                                                                      |
|----------|---------------------------------------------------------------------------|
| config   | the TOML training config -> `TrainJob` (file + line errors)               |
| run      | `run_training(job)`: one function per model kind, the output folder layout |
| shards   | token extraction stage: codec / MReQ tokens written once into shards, read memory-mapped |
| sampler  | duration-bucketed batches under a frame budget, by seed + epoch, split by rank |
| dist     | torchrun / DDP set-up (nccl on CUDA, gloo on CPU)                          |
| loop     | the scalable loop: DataLoader workers, accumulation, DDP, EMA, validation |
| resident | batches kept on the device: every token in one device tensor, gathered there (default on CUDA) |
| pack     | token packs: a training's items, text ids and tokens with no audio (`[data] pack`, the GPU path) |
| prepare  | validation split, wav hashing, tokens -> memory-mapped example sets       |
| mreq_stream | MReQ training on random crops read from the files (no corpus in RAM)   |
| metrics  | metrics.jsonl / metrics.csv and the curves plot                            |
| speak    | the "does it speak" check: synthesise held-out texts, score with the WER scorer (WER, CER, time budget) |
| alignment | text-shuffle gap and top-k accuracy: does the model read its text?        |
| diagnose | `python -m ...training.diagnose CKPT MANIFEST`: those numbers for a checkpoint |
| corpus, texts | the pair's espeak-ng corpus (two parts) and its texts (grammar + pydoc prose) |
| export   | a trained folder with each stage's last raw weights instead of the EMA     |
| ship     | the packaged form: fp16, naming the shipped codec / tokenizer (sha256 to register) |

Names are imported lazily so that `import halle_bench.baselines.training` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "TrainJob": "config", "DataSpec": "config", "CodecSpec": "config", "load_train_config": "config",
    "parse_train_config": "config", "MODELS": "config", "CODEC_KINDS": "config",
    "run_training": "run",
    "TokenStore": "shards", "extract_tokens": "shards", "WavHasher": "shards",
    "DurationBatchSampler": "sampler", "plan_batches": "sampler",
    "DistInfo": "dist", "init_distributed": "dist",
    "train": "loop", "validation_loss": "loop", "StreamingMReQTrainer": "mreq_stream",
    "split_items": "prepare", "tokenize": "prepare", "ShardExamples": "shards",
    "MetricsLog": "metrics", "plot_curves": "metrics",
    "SpeakCheck": "speak",
    "ResidentTokens": "resident", "resident_batches": "resident", "build_pack": "pack", "Pack": "pack",
    "topk_hits": "alignment", "rotated_texts": "alignment", "diagnose": "diagnose",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(name)


__all__ = sorted(_LAZY)
