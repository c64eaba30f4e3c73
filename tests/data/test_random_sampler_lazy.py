"""RandomSampler draws its indices as it is iterated: a huge ``num_samples`` costs no memory up front."""
import itertools
import time
import tracemalloc

import pytest

import somanet
from somanet.utils.data import RandomSampler


def test_ten_billion_samples_start_at_once_with_small_memory():
    tracemalloc.start()
    try:
        start = time.perf_counter()
        sampler = RandomSampler(range(10), replacement=True, num_samples=10**10,
                                generator=somanet.Generator().manual_seed(0))
        first = list(itertools.islice(iter(sampler), 5))
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(sampler) == 10**10
    assert len(first) == 5 and all(0 <= i < 10 for i in first)
    assert elapsed < 1.0
    assert peak < 5 * 2**20  # a few blocks of indices, not 74.5 GiB


@pytest.mark.parametrize("replacement", [True, False])
def test_reproducible_with_a_generator(replacement):
    def draw(seed):
        g = somanet.Generator().manual_seed(seed)
        return list(RandomSampler(range(7), replacement=replacement, num_samples=3000, generator=g))

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)
    assert len(draw(5)) == 3000


def test_blocks_do_not_change_the_counts_or_range():
    g = somanet.Generator().manual_seed(1)
    sampler = RandomSampler(range(3), replacement=True, num_samples=2500, generator=g)
    out = list(sampler)
    assert len(out) == 2500 and set(out) == {0, 1, 2}


def test_without_replacement_more_samples_than_data_concatenates_permutations():
    """PyTorch's rule: ``num_samples // n`` whole permutations, then the start of one more."""
    g = somanet.Generator().manual_seed(2)
    out = list(RandomSampler(range(4), num_samples=10, generator=g))
    assert len(out) == 10
    assert sorted(out[:4]) == sorted(out[4:8]) == [0, 1, 2, 3]
    assert len(set(out[8:])) == 2
    try:
        import torch
    except ImportError:
        return
    tout = list(torch.utils.data.RandomSampler(range(4), num_samples=10,
                                               generator=torch.Generator().manual_seed(2)))
    assert len(tout) == 10 and sorted(tout[:4]) == sorted(tout[4:8]) == [0, 1, 2, 3] and len(set(tout[8:])) == 2


def test_default_generator_seeding():
    somanet.manual_seed(3)
    a = list(RandomSampler(range(50), replacement=True, num_samples=100))
    somanet.manual_seed(3)
    b = list(RandomSampler(range(50), replacement=True, num_samples=100))
    assert a == b
