"""Benchmark data: utterances, manifest readers, length buckets, prompt policies and
the embedded espeak-ng demo set (and its paper variant)."""

from .buckets import DEFAULT_BUCKETS, UNKNOWN_BUCKET, assign_buckets, bucket_label, bucket_labels, validate_edges
from .demo import DEMO_VERSION, build_demo
from .paper import PAPER_MODELS, build_paper
from .manifests import FORMATS, detect_format, read_manifest
from .prompts import PROMPT_ERROR, PROMPT_POLICIES, apply_prompt_policy
from .utterance import WORDS_PER_SECOND, Utterance

__all__ = [
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
    "build_paper",
    "detect_format",
    "read_manifest",
    "validate_edges",
]
