"""Benchmark data: utterances, manifest and corpus readers, length buckets, prompt
policies, the data checks run before any work, and the embedded espeak-ng demo set
(and its paper variant)."""

from .corpora import CORPUS_FORMATS, detect_corpus, read_corpus
from .buckets import DEFAULT_BUCKETS, UNKNOWN_BUCKET, assign_buckets, bucket_label, bucket_labels, validate_edges
from .demo import DEMO_VERSION, build_demo
from .longform_build import build_longform
from .paper import PAPER_MODELS, build_paper
from .paper_set import build_paper_set
from .manifests import FORMATS, detect_format, read_manifest
from .prompts import PROMPT_ERROR, PROMPT_POLICIES, apply_prompt_policy
from .utterance import WORDS_PER_SECOND, Utterance
from .validate import DataError, DataProblem, find_problems, validate_plan, validate_utterances

__all__ = [
    "CORPUS_FORMATS",
    "DataError",
    "DataProblem",
    "DEFAULT_BUCKETS",
    "DEMO_VERSION",
    "FORMATS",
    "PAPER_MODELS",
    "PROMPT_ERROR",
    "PROMPT_POLICIES",
    "UNKNOWN_BUCKET",
    "WORDS_PER_SECOND",
    "Utterance",
    "apply_prompt_policy",
    "assign_buckets",
    "bucket_label",
    "bucket_labels",
    "build_demo",
    "build_longform",
    "build_paper",
    "build_paper_set",
    "detect_corpus",
    "detect_format",
    "find_problems",
    "read_corpus",
    "read_manifest",
    "validate_edges",
    "validate_plan",
    "validate_utterances",
]
