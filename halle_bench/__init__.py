"""halle-bench: benchmark zero-shot long-form TTS per length bucket.

Library entry points (the CLI is a thin layer over these):

    from halle_bench import load_config, run
    summary = run(load_config("bench.toml"), "runs/x")
    summary.leaderboard  # path of leaderboard.csv

Subpackages: `halle_bench.data` (utterances, manifests, buckets, prompts, demo),
`halle_bench.systems` (System protocol and adapters), `halle_bench.metrics`
(scorers), `halle_bench.baselines` (VALL-E, MReQ, HALL-E). A plugin declares a
leaderboard metric with `register_metric(Metric(...))` (docs/metrics.md). Heavy dependencies
(torch, whisper...) are imported only when used.
"""

from .config import Config, load_config
from .data.utterance import Utterance
from .errors import ChecksumError, ConfigError, HalleBenchError, MissingModelError, UtteranceError
from .metric_decl import Bound, Metric
from .metric_registry import metric_declarations, register_metric
from .runner import RunSummary, run

__version__ = "0.1.0"

__all__ = [
    "Bound",
    "ChecksumError",
    "Config",
    "ConfigError",
    "HalleBenchError",
    "Metric",
    "MissingModelError",
    "RunSummary",
    "Utterance",
    "UtteranceError",
    "__version__",
    "load_config",
    "metric_declarations",
    "register_metric",
    "run",
]
