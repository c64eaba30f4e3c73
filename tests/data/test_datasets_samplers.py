"""Dataset combinators, random_split and samplers: behaviour, PyTorch parity of lengths and splits,
and reproducibility under a seed."""
import numpy as np
import pytest

import somanet
from somanet.data import (BatchSampler, ChainDataset, ConcatDataset, Dataset, DistributedSampler, IterableDataset,
                          RandomSampler, SequentialSampler, Subset, SubsetRandomSampler, TensorDataset,
                          WeightedRandomSampler, random_split)
from reference import torch_or_skip


class Range(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return i % self.n


class Stream(IterableDataset):
    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


def test_tensor_dataset_items_and_errors():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.arange(6)
    ds = TensorDataset(somanet.tensor(x), somanet.tensor(y))
    assert len(ds) == 6
    xi, yi = ds[4]
    assert isinstance(xi, somanet.Tensor) and xi.shape == (2,) and xi.dtype == np.float32
    np.testing.assert_array_equal(xi.array, x[4])
    assert yi.shape == () and yi.dtype == np.int64 and int(yi.array) == 4
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(somanet.zeros(3, 2), somanet.zeros(4))
    with pytest.raises(TypeError, match="TensorDataset"):
        TensorDataset([1, 2, 3])


def test_subset_concat_chain():
    sub = Subset(Range(10), [7, 2, 5])
    assert len(sub) == 3 and [sub[i] for i in range(3)] == [7, 2, 5]
    cat = Range(3) + Range(4)
    assert isinstance(cat, ConcatDataset) and len(cat) == 7
    assert [cat[i] for i in range(7)] == [0, 1, 2, 0, 1, 2, 3]
    assert cat[-1] == 3 and cat.cumulative_sizes == [3, 7]
    with pytest.raises(IndexError):
        cat[7]
    with pytest.raises(TypeError, match="IterableDataset"):
        ConcatDataset([Range(2), Stream([1])])
    assert list(Stream([1, 2]) + Stream([3])) == [1, 2, 3]
    assert isinstance(Stream([]) + Stream([]), ChainDataset)


def test_random_split_lengths_match_pytorch_and_are_disjoint():
    torch = torch_or_skip()
    for n, lengths in [(10, [0.8, 0.2]), (11, [0.5, 0.3, 0.2]), (7, [0.34, 0.33, 0.33]), (10, [3, 7])]:
        ours = random_split(Range(n), lengths, generator=somanet.Generator(0))
        ref = torch.utils.data.random_split(range(n), lengths, generator=torch.Generator().manual_seed(0))
        assert [len(s) for s in ours] == [len(s) for s in ref], (n, lengths)
        seen = sorted(i for s in ours for i in s.indices)
        assert seen == list(range(n))
    with pytest.raises(ValueError, match="sum of input lengths"):
        random_split(Range(5), [2, 2])


def test_random_split_reproducible_and_seed_dependent():
    a = [s.indices for s in random_split(Range(50), [0.7, 0.3], generator=somanet.Generator(1))]
    b = [s.indices for s in random_split(Range(50), [0.7, 0.3], generator=somanet.Generator(1))]
    c = [s.indices for s in random_split(Range(50), [0.7, 0.3], generator=somanet.Generator(2))]
    assert a == b and a != c
    somanet.manual_seed(5)
    d = [s.indices for s in random_split(Range(50), [35, 15])]
    somanet.manual_seed(5)
    e = [s.indices for s in random_split(Range(50), [35, 15])]
    assert d == e


def test_sequential_and_batch_sampler_match_pytorch():
    torch = torch_or_skip()
    for n, bs, drop in [(10, 3, False), (10, 3, True), (9, 3, True), (1, 4, False)]:
        ours = list(BatchSampler(SequentialSampler(range(n)), bs, drop))
        ref = list(torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(n)), bs, drop))
        assert ours == ref
        assert len(BatchSampler(SequentialSampler(range(n)), bs, drop)) == len(ref)
    with pytest.raises(ValueError, match="batch_size"):
        BatchSampler(SequentialSampler(range(3)), 0, False)


def test_random_sampler_permutation_replacement_and_seeds():
    perm = list(RandomSampler(Range(20), generator=somanet.Generator(3)))
    assert sorted(perm) == list(range(20)) and perm != list(range(20))
    assert perm == list(RandomSampler(Range(20), generator=somanet.Generator(3)))
    assert perm != list(RandomSampler(Range(20), generator=somanet.Generator(4)))
    more = list(RandomSampler(Range(5), num_samples=12, generator=somanet.Generator(0)))
    assert len(more) == 12 and sorted(more[:10]) == sorted(list(range(5)) * 2)
    rep = list(RandomSampler(Range(3), replacement=True, num_samples=300, generator=somanet.Generator(0)))
    assert len(rep) == 300 and set(rep) == {0, 1, 2}
    assert np.bincount(rep).min() > 60
    somanet.manual_seed(9)
    a = list(RandomSampler(Range(30)))
    somanet.manual_seed(9)
    assert a == list(RandomSampler(Range(30)))
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler(Range(3), num_samples=0)


def test_subset_random_and_weighted_samplers():
    idx = [3, 8, 11, 20]
    out = list(SubsetRandomSampler(idx, generator=somanet.Generator(0)))
    assert sorted(out) == idx
    w = [0.0, 1.0, 3.0]
    draws = list(WeightedRandomSampler(w, 4000, generator=somanet.Generator(0)))
    counts = np.bincount(draws, minlength=3)
    assert counts[0] == 0 and 2.5 < counts[2] / counts[1] < 3.5
    no_rep = list(WeightedRandomSampler([1, 1, 1, 1], 4, replacement=False, generator=somanet.Generator(1)))
    assert sorted(no_rep) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="without replacement"):
        WeightedRandomSampler([1, 0], 2, replacement=False)
    with pytest.raises(ValueError, match="non-negative"):
        WeightedRandomSampler([1, -1], 2)


@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (10, 3, True), (9, 3, False), (2, 4, False)])
def test_distributed_sampler_shares(n, replicas, drop_last):
    torch = torch_or_skip()
    shares = []
    for rank in range(replicas):
        ours = DistributedSampler(Range(n), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
        ref = torch.utils.data.DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False,
                                                  drop_last=drop_last)
        assert list(ours) == list(ref) and len(ours) == len(ref)
        shares.append(list(ours))
    if not drop_last:
        assert set(i for s in shares for i in s) == set(range(n))


def test_distributed_sampler_shuffle_agrees_across_ranks_and_epochs():
    a = [DistributedSampler(Range(12), 3, r, seed=7) for r in range(3)]
    covered = sorted(i for s in a for i in s)
    assert covered == list(range(12))
    epoch0 = [list(s) for s in a]
    for s in a:
        s.set_epoch(1)
    epoch1 = [list(s) for s in a]
    assert epoch1 != epoch0 and sorted(i for s in epoch1 for i in s) == list(range(12))
    assert epoch0 == [list(DistributedSampler(Range(12), 3, r, seed=7)) for r in range(3)]
    with pytest.raises(ValueError, match="rank"):
        DistributedSampler(Range(4), num_replicas=2, rank=2)


def test_distributed_sampler_needs_rank(monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedSampler(Range(4))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    s = DistributedSampler(Range(4), shuffle=False)
    assert (s.num_replicas, s.rank, list(s)) == (2, 1, [1, 3])
