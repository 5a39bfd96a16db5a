"""Length buckets: labels, boundaries, edge validation."""

from __future__ import annotations

import math

import pytest

from halle_bench.data import DEFAULT_BUCKETS, Utterance, assign_buckets, bucket_label, bucket_labels
from halle_bench.errors import ConfigError


@pytest.mark.parametrize(
    "duration, label",
    [
        (0.0, "<3"),
        (2.999, "<3"),
        (3.0, "3-10"),  # lower edge is inclusive
        (9.999, "3-10"),
        (10.0, "10-30"),  # upper edge is exclusive...
        (29.99, "10-30"),
        (30.0, "30-60"),
        (60.0, "60-90"),
        (89.9, "60-90"),
        (90.0, "90-180"),
        (180.0, "90-180"),  # ...except for the last bucket, closed at its top
        (180.001, ">180"),
        (3600.0, ">180"),
        (None, "unknown"),
        (math.nan, "unknown"),
    ],
)
def test_default_edges(duration, label):
    assert bucket_label(duration, DEFAULT_BUCKETS) == label


def test_float_and_fractional_edges_format_like_the_paper():
    edges = (3.0, 10.0, 30.0)
    assert bucket_labels(edges) == ["<3", "3-10", "10-30", ">30"]
    assert bucket_label(30.0, edges) == "10-30"
    assert bucket_labels([0.5, 2.5, 7]) == ["<0.5", "0.5-2.5", "2.5-7", ">7"]
    assert bucket_label(2.5, [0.5, 2.5, 7]) == "2.5-7"
    # edges starting at zero: every non-negative duration is in some bucket
    assert bucket_label(0.0, [0, 5]) == "0-5" and bucket_label(5, [0, 5]) == "0-5"


@pytest.mark.parametrize("edges", [[3], [], [10, 3], [3, 3, 10], [-1, 3], [3, math.inf], ["a", "b"]])
def test_bad_edges(edges):
    with pytest.raises(ConfigError, match="bucket edges"):
        bucket_label(5.0, edges)


def test_assign_buckets_sets_bucket_and_keeps_order():
    utts = [Utterance(id=str(i), text="x", duration=d) for i, d in enumerate([1.0, 45.0, 120.0, 200.0])]
    out = assign_buckets(utts, DEFAULT_BUCKETS)
    assert [u.bucket for u in out] == ["<3", "30-60", "90-180", ">180"]
    assert [u.id for u in out] == ["0", "1", "2", "3"]
    assert utts[0].bucket is None  # inputs are not mutated
