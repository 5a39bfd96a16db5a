import pytest

from halle_bench.baselines.training.sampler import DurationBatchSampler, plan_batches, position_after, rank_share

LENS = [5, 40, 12, 33, 7, 21, 50, 9, 18, 27, 3, 44, 15, 36, 11, 29, 8, 24, 60, 14]


def test_frame_budget_is_respected_and_every_item_is_used():
    b = plan_batches(LENS, seed=1, epoch=0, max_frames=80)
    assert sorted(i for x in b for i in x) == list(range(len(LENS)))
    for x in b:
        assert max(LENS[i] for i in x) * len(x) <= 80 or len(x) == 1
    # bucketing: similar lengths together -> little padding (far less than random batches)
    pad = sum(max(LENS[i] for i in x) * len(x) - sum(LENS[i] for i in x) for x in b)
    assert pad < 0.25 * sum(LENS)


def test_deterministic_by_seed_and_epoch():
    assert plan_batches(LENS, 1, 0, max_frames=80) == plan_batches(LENS, 1, 0, max_frames=80)
    assert plan_batches(LENS, 1, 0, max_frames=80) != plan_batches(LENS, 1, 1, max_frames=80)
    assert plan_batches(LENS, 1, 0, max_frames=80) != plan_batches(LENS, 2, 0, max_frames=80)


def test_ranks_split_the_same_global_batches():
    # budget per device x devices: the same plan, as long as no batch would hold fewer items
    # than ranks (equal lengths here; otherwise a lone item joins its neighbour for world 2)
    same = [10] * 20
    assert plan_batches(same, 3, 0, world=1, max_frames=40) == plan_batches(same, 3, 0, world=2, max_frames=20)
    two = plan_batches(LENS, 3, 0, world=2, max_frames=60)
    assert sorted(i for x in two for i in x) == list(range(len(LENS)))
    for x in two:
        a, b = rank_share(x, LENS, 0, 2), rank_share(x, LENS, 1, 2)
        assert a and b and sorted(a + b) == sorted(x) and not set(a) & set(b)


def test_an_item_longer_than_the_budget_is_not_dropped():
    b = plan_batches([5, 500, 6], 0, 0, max_frames=20)
    assert sorted(i for x in b for i in x) == [0, 1, 2]


def test_fixed_count_mode():
    b = plan_batches(LENS, 0, 0, world=2, batch_size=3)
    assert [len(x) for x in b] == [6, 6, 6, 2]
    with pytest.raises(ValueError, match="ranks"):
        plan_batches([1], 0, 0, world=2)


def test_sampler_resumes_at_a_position():
    s = DurationBatchSampler(LENS, seed=0, max_frames=60)
    it = iter(s)
    stream = [next(it) for _ in range(12)]  # crosses an epoch boundary
    ep, ix = position_after(LENS, 0, 1, 8, 60, 0, 0, 7)
    resumed = iter(DurationBatchSampler(LENS, seed=0, max_frames=60, epoch=ep, index=ix))
    assert [next(resumed) for _ in range(5)] == stream[7:]
