"""Reference models (installed as `halle_bench.baselines`): VALL-E, MReQ/MRVQ, HALL-E.

| module          | what                                                                 |
|-----------------|----------------------------------------------------------------------|
| text            | English text -> phoneme ids (phonemizer/espeak), versioned symbol table |
| codec_api       | the codec interface (CodecInterface) and load_codec(folder) by kind   |
| codec           | EnCodec-style codec wrapper (24 kHz / 75 Hz, a 48 Hz teacher config)  |
| melcodec        | the shipped 48 Hz teacher: log-mel + residual k-means + Griffin-Lim   |
| codec_train     | `halle-bench train` model = "codec": espeak corpus, fit, MReQ, ship  |
| shipped         | the codecs shipped in checkpoints/mel48 (registry entries, loaders)   |
| transformer     | pre-norm blocks, KV cache, adaptive layer norm, cross-attention      |
| sampling        | top-k / top-p / temperature, explicit generators                     |
| ar, nar         | the one autoregressive codec LM (delay pattern) and VALL-E's NAR      |
| valle           | VALL-E = text + codec + AR + NAR; batched synthesis                  |
| rvq, mrvq       | residual VQ; LRVQ blocks and the multi-resolution MRVQ stack (8-48 Hz)|
| mreq            | MReQ post-training (L_NAC + L_FLD + L_HSR + commitment)              |
| mreq_tokenizer  | wav <-> {8, 16, 24, 48 Hz} token streams                             |
| halle, halle_nar| HALL-E: AR on 8 Hz tokens (init from VALL-E), hierarchical sliding-window NAR |
| checkpoint      | safetensors + JSON config, strict loading, never unpickles           |
| train, train_halle | examples, TrainConfig, the AR/NAR stages of VALL-E and HALL-E     |
| training/       | `halle-bench train`: config, token shards, bucketed sampler, DDP loop, EMA, validation, speak check |
| valle_system, halle_system | the `valle` / `halle` benchmark system kinds              |
| codec_system    | the `codec` system kind (resynthesis: teacher / MReQ levels / naive)  |

Names below are imported lazily: `import halle_bench.baselines` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "VALLE": "valle", "HALLE": "halle", "HalleNAR": "halle_nar",
    "Codec": "codec", "CodecConfig": "codec", "TextFrontend": "text",
    "CodecInterface": "codec_api", "load_codec": "codec_api", "MelCodec": "melcodec", "MelCodecConfig": "melcodec",
    "CodecAR": "ar", "ARConfig": "ar", "CodecNAR": "nar", "NARConfig": "nar",
    "Transformer": "transformer", "TransformerConfig": "transformer", "KVCache": "transformer",
    "SamplingOptions": "sampling", "sample_next": "sampling",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "RVQ": "rvq", "RVQConfig": "rvq", "MRVQ": "mrvq", "MRVQConfig": "mrvq",
    "MReQModel": "mreq", "MReQTrainer": "mreq", "MReQTokenizer": "mreq_tokenizer",
    "train": "train", "TrainConfig": "train",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(name)


__all__ = sorted(_LAZY)
