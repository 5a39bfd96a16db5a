"""The "does it speak" check's choice of texts and prompts."""

import numpy as np
import pytest

from halle_bench.baselines.training.speak import pair_prompts


def _item(uid: str, seconds: float, sr: int = 100):
    return uid, f"text of {uid}", np.zeros(int(seconds * sr), np.float32), sr


def test_shortest_texts_each_prompted_by_the_shortest_other_item():
    items = [_item("a", 30), _item("b", 4), _item("c", 12), _item("d", 3), _item("e", 50)]
    got = pair_prompts(items, 3)
    assert [g.id for g in got] == ["d", "b", "c"]  # the three shortest texts
    assert [g.prompt_text for g in got] == ["text of b", "text of d", "text of d"]  # never its own audio
    assert all(len(g.prompt_wav) <= 4 * 100 for g in got)
    assert len(pair_prompts(items, 10)) == 5


def test_needs_two_items():
    with pytest.raises(ValueError, match="at least 2"):
        pair_prompts([_item("a", 3)], 1)
