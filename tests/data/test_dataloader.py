"""DataLoader: batching, shuffling under a seed, argument checks, and worker processes (same batches
as in-process, per-worker seeding, errors, persistent workers, iterable datasets)."""
import os

import numpy as np
import pytest

import somanet
from somanet.data import DataLoader, Dataset, IterableDataset, TensorDataset, get_worker_info
from somanet.data import transforms as T


class Squares(Dataset):
    def __init__(self, n=23):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((2, 3), i, np.float32), i * i


class Failing(Squares):
    def __getitem__(self, i):
        if i == 13:
            raise ValueError("sample thirteen is corrupt")
        return super().__getitem__(i)


class Augmented(Squares):
    """Samples that draw random numbers (from the default generator, as transforms do)."""

    def __getitem__(self, i):
        return T.GaussianNoise(sigma=0.1, clip=False)(np.full((1, 4, 4), 0.5, np.float32)), i


class WorkerStream(IterableDataset):
    """Each worker yields its own share, split with get_worker_info()."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))


def _collect(loader):
    return [[b.array.copy() if isinstance(b, somanet.Tensor) else b for b in batch] for batch in loader]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


def test_batches_shapes_dtypes_and_len():
    loader = DataLoader(Squares(10), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [len(b[1]) for b in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.shape == (4, 2, 3) and x.dtype == np.float32 and y.dtype == np.int64
    assert y.array.tolist() == [0, 1, 4, 9]
    assert len(DataLoader(Squares(10), batch_size=4, drop_last=True)) == 2
    single = list(DataLoader(Squares(3), batch_size=None))
    assert single[1][1] == 1 and isinstance(single[1][0], somanet.Tensor)


def test_tensor_dataset_fast_path_matches_per_sample_collate():
    x = somanet.randn(17, 3)
    y = somanet.arange(17)
    ds = TensorDataset(x, y)
    fast = _collect(DataLoader(ds, batch_size=5, shuffle=True, generator=somanet.Generator(0)))
    slow = _collect(DataLoader(ds, batch_size=5, shuffle=True, generator=somanet.Generator(0),
                               collate_fn=lambda b: somanet.data.default_collate(b)))
    _same(fast, slow)


def test_shuffle_reproducible_and_seed_dependent():
    def order(seed):
        somanet.manual_seed(seed)
        return [b[1].array.tolist() for b in DataLoader(Squares(20), batch_size=5, shuffle=True)]

    assert order(1) == order(1)
    assert order(1) != order(2)
    epochs = DataLoader(Squares(20), batch_size=20, shuffle=True, generator=somanet.Generator(0))
    assert next(iter(epochs))[1].array.tolist() != next(iter(epochs))[1].array.tolist()


def test_argument_errors():
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(Squares(), sampler=[0, 1], shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler"):
        DataLoader(Squares(), batch_sampler=[[0]], batch_size=2)
    with pytest.raises(ValueError, match="persistent_workers"):
        DataLoader(Squares(), persistent_workers=True)
    with pytest.raises(ValueError, match="prefetch_factor"):
        DataLoader(Squares(), prefetch_factor=2)
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(Squares(), num_workers=-1)
    with pytest.raises(ValueError, match="shuffle"):
        DataLoader(WorkerStream(3), shuffle=True)


def test_in_process_error_names_the_index():
    with pytest.raises(ValueError, match="thirteen") as info:
        list(DataLoader(Failing(), batch_size=4))
    notes = "".join(getattr(info.value, "__notes__", []))
    assert "13" in notes or not hasattr(info.value, "add_note")


def test_workers_match_in_process_batches():
    kwargs = dict(batch_size=4, shuffle=True, drop_last=False)
    somanet.manual_seed(3)
    ref = _collect(DataLoader(Squares(), **kwargs))
    somanet.manual_seed(3)
    got = _collect(DataLoader(Squares(), num_workers=2, **kwargs))
    _same(ref, got)
    # The default generator advanced the same way in both modes.
    somanet.manual_seed(3)
    list(DataLoader(Squares(), **kwargs))
    after_ref = somanet.rand(3).array
    somanet.manual_seed(3)
    list(DataLoader(Squares(), num_workers=2, **kwargs))
    np.testing.assert_array_equal(after_ref, somanet.rand(3).array)


def test_worker_seeding_reproducible_per_worker_and_init_fn():
    def run(seed):
        somanet.manual_seed(seed)
        return _collect(DataLoader(Augmented(8), batch_size=2, num_workers=2))

    a, b, c = run(0), run(0), run(1)
    _same(a, b)
    assert not np.array_equal(a[0][0], c[0][0])
    # Workers 0 and 1 draw from differently seeded generators.
    assert not np.array_equal(a[0][0], a[1][0])
    seeds = _collect(DataLoader(Squares(4), batch_size=1, num_workers=2,
                                collate_fn=lambda b: [np.array([get_worker_info().id, get_worker_info().seed])]))
    (w0, s0), (w1, s1) = seeds[0][0], seeds[1][0]
    assert (w0, w1) == (0, 1) and s1 == s0 + 1


def _init_marks_env(worker_id):
    os.environ["SOMANET_TEST_WORKER"] = str(worker_id * 10)


def test_worker_init_fn_runs_in_each_worker():
    loader = DataLoader(Squares(4), batch_size=1, num_workers=2, worker_init_fn=_init_marks_env,
                        collate_fn=lambda b: int(os.environ["SOMANET_TEST_WORKER"]))
    assert list(loader) == [0, 10, 0, 10]
    assert "SOMANET_TEST_WORKER" not in os.environ


def test_worker_error_reports_original_error_and_index():
    loader = DataLoader(Failing(), batch_size=4, num_workers=2)
    with pytest.raises(ValueError) as info:
        list(loader)
    msg = str(info.value)
    assert "sample thirteen is corrupt" in msg and "index 13" in msg and "worker process" in msg
    assert "Traceback" in msg


def test_persistent_workers_and_iterable_dataset():
    loader = DataLoader(Squares(9), batch_size=3, num_workers=2, persistent_workers=True)
    first = _collect(loader)
    it = loader._iterator
    second = _collect(loader)
    assert loader._iterator is it and all(w.is_alive() for w in it._workers)
    _same(first, second)
    # Abandon an epoch half way; the next one must still be complete and in order.
    partial = iter(loader)
    next(partial)
    _same(_collect(loader), first)
    it._shutdown_workers()
    assert not any(w.is_alive() for w in it._workers)

    stream = DataLoader(WorkerStream(10), batch_size=3, num_workers=2)
    values = sorted(v for b in stream for v in b.array.tolist())
    assert values == list(range(10))
    assert [b.array.tolist() for b in DataLoader(WorkerStream(7), batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6]]


class DiesInWorker(Squares):
    def __getitem__(self, i):
        if i == 5 and get_worker_info() is not None:
            os._exit(3)  # a hard crash: no exception, no message
        return super().__getitem__(i)


def test_dead_worker_is_reported_not_waited_for():
    with pytest.raises(RuntimeError, match="exited unexpectedly with exit code 3"):
        list(DataLoader(DiesInWorker(12), batch_size=2, num_workers=2))


def test_out_of_order_delivery_gives_every_batch_once():
    batches = [b[1].array.tolist() for b in DataLoader(Squares(10), batch_size=2, num_workers=2, in_order=False)]
    assert sorted(batches) == [[0, 1], [4, 9], [16, 25], [36, 49], [64, 81]]


class HangsInWorker(Squares):
    """Index 2 never comes back from a worker (and the stuck worker ignores SIGTERM)."""

    def __getitem__(self, i):
        if i == 2 and get_worker_info() is not None:
            import signal
            import time
            if hasattr(signal, "SIGTERM"):
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(600)
        return super().__getitem__(i)


def test_timeout_is_reported_at_the_timeout_and_the_stuck_worker_ended():
    import time
    loader = DataLoader(HangsInWorker(8), batch_size=1, num_workers=2, timeout=1)
    it = iter(loader)
    next(it)
    next(it)
    start = time.monotonic()  # batch 2's wait starts now
    with pytest.raises(RuntimeError, match="timed out after 1 seconds"):
        next(it)
    elapsed = time.monotonic() - start
    # The error comes at the timeout (plus at most the half second a SIGTERM is given before SIGKILL),
    # not after waiting for the stuck worker to finish.
    assert 0.9 <= elapsed < 2.5, elapsed
    assert not any(w.is_alive() for w in it._workers)
