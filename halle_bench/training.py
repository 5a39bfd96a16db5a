"""Moved to `halle_bench.baselines.training` (the training code lives with the models);
this module re-exports its public names for the CLI and old imports."""

from halle_bench.baselines.training.config import (  # noqa: F401
    CODEC_KINDS,
    MODELS,
    CodecSpec,
    DataSpec,
    TrainJob,
    load_train_config,
    parse_train_config,
)
from halle_bench.baselines.training.run import run_training  # noqa: F401

__all__ = ["CODEC_KINDS", "MODELS", "CodecSpec", "DataSpec", "TrainJob", "load_train_config",
           "parse_train_config", "run_training"]
