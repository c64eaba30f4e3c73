"""``DataLoader``: batches from a dataset, in the main process or in worker processes.

With ``num_workers > 0`` the main process sends the indices of each batch to the workers in turn
and hands the results back in the order it sent them, so a loader gives the same batches, in the
same order, whatever its number of workers (for a dataset whose samples do not draw random
numbers). Each worker seeds Python's ``random``, NumPy's global generator and somanet's default
generator with ``base_seed + worker_id``, where ``base_seed`` is drawn from the loader's
``generator`` (or the default one) each time an iterator is created; random augmentations inside
workers are therefore reproducible under ``somanet.manual_seed`` for a given ``num_workers``.
"""
import itertools
import multiprocessing
import multiprocessing.connection
import os
import queue
import sys
import time
import weakref

import numpy as np

from ..random import numpy_rng
from . import _worker
from .collate import default_collate, default_convert
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = ["DataLoader", "get_worker_info"]

get_worker_info = _worker.get_worker_info

# How long the main process waits for a result before checking that its workers are still alive.
_LIVENESS_SECONDS = 2.0


class _InfiniteConstantSampler(Sampler):
    """The 'sampler' of an iterable dataset: the dataset decides what comes next."""

    def __iter__(self):
        while True:
            yield None


def _mp_context(context):
    if context is None:
        methods = multiprocessing.get_all_start_methods()
        return multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    if isinstance(context, str):
        if context not in multiprocessing.get_all_start_methods():
            raise ValueError(f"DataLoader: multiprocessing_context {context!r} is not available here; "
                             f"choose one of {multiprocessing.get_all_start_methods()}")
        return multiprocessing.get_context(context)
    return context


class DataLoader:
    """Iterate over a dataset in batches.

    Args:
        dataset: a map-style ``Dataset`` (indexable, with ``len``) or an ``IterableDataset``.
        batch_size: samples per batch; ``None`` turns automatic batching off (each item is one
            sample, converted with ``default_convert``).
        shuffle: reshuffle the order every epoch (map-style datasets only).
        sampler: the order of indices (an iterable of indices); excludes ``shuffle``.
        batch_sampler: yields whole lists of indices; excludes ``batch_size``, ``shuffle``,
            ``sampler`` and ``drop_last``.
        num_workers: worker processes to load with; ``0`` loads in the main process.
        collate_fn: turns a list of samples into a batch; ``default_collate`` by default.
        pin_memory: accepted for compatibility; somanet's CPU tensors have nothing to pin.
        drop_last: drop the last incomplete batch.
        timeout: seconds to wait for a batch from the workers (``0``: no limit).
        worker_init_fn: called as ``worker_init_fn(worker_id)`` in each worker after seeding.
        multiprocessing_context: ``"fork"``, ``"spawn"``, ``"forkserver"`` or a context; by
            default fork where the platform has it, else spawn.
        generator: a ``somanet.Generator`` for the shuffle order and the workers' base seed.
        prefetch_factor: batches each worker loads ahead (2 by default with workers).
        persistent_workers: keep the workers alive between epochs.
        pin_memory_device: accepted for compatibility; unused.
        in_order: hand batches back in sampler order (``False``: as soon as a worker has one).

    Yields:
        batches as ``collate_fn`` builds them; with the default, tensors ``(B, ...)``.

    >>> import somanet
    >>> from somanet.data import TensorDataset
    >>> ds = TensorDataset(somanet.randn(10, 3), somanet.arange(10))
    >>> [tuple(x.shape) for x, y in DataLoader(ds, batch_size=4, shuffle=True)]
    [(4, 3), (4, 3), (2, 3)]
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be a non-negative integer, got {num_workers!r}")
        if timeout < 0:
            raise ValueError(f"DataLoader: timeout option should be non-negative, got {timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified in multiprocessing; "
                             "let num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        if prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError(f"DataLoader: prefetch_factor option should be non-negative, got {prefetch_factor!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                       or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size should be a positive integer or None, got {batch_size!r}")

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.persistent_workers = persistent_workers
        self.in_order = in_order
        self.generator = generator

        if isinstance(dataset, IterableDataset):
            self._dataset_kind = "iterable"
            if shuffle not in (None, False):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, "
                                 f"but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, "
                                 f"but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified batch_sampler option, "
                                 f"but got batch_sampler={batch_sampler}")
        else:
            self._dataset_kind = "map"
            shuffle = bool(shuffle)

        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size = None
            drop_last = False
        elif batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")

        if sampler is None:
            if self._dataset_kind == "iterable":
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self._iterator = None

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __iter__(self):
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if self.persistent_workers:
            if self._iterator is None or self._iterator._shutdown:
                self._iterator = _MultiProcessIter(self)
            else:
                self._iterator._reset(self)
            return self._iterator
        return _MultiProcessIter(self)

    def __len__(self):
        if self._dataset_kind == "iterable":
            n = len(self.dataset)
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
            return n
        return len(self._index_sampler)

    def __del__(self):
        it = getattr(self, "_iterator", None)
        if it is not None and not sys.is_finalizing():
            it._shutdown_workers()


class _BaseIter:
    def __init__(self, loader):
        self._dataset = loader.dataset
        self._kind = loader._dataset_kind
        self._auto_collation = loader._auto_collation
        self._drop_last = loader.drop_last
        self._collate_fn = loader.collate_fn
        self._batch_size = loader.batch_size
        self._index_sampler = loader._index_sampler
        # A weak reference: a persistent iterator held by its loader must not keep the loader alive.
        self._loader_ref = weakref.ref(loader)
        # Drawn on every new iterator whatever the number of workers, so the default generator
        # advances the same way (and the shuffle order matches) with and without workers.
        self._base_seed = int(numpy_rng(loader.generator).integers(0, 2**62))
        self._sampler_iter = iter(self._index_sampler)

    def __iter__(self):
        return self

    def __len__(self):
        loader = self._loader_ref()
        if loader is None:
            raise TypeError("len() of a DataLoader iterator whose DataLoader no longer exists")
        return len(loader)


class _SingleProcessIter(_BaseIter):
    def __init__(self, loader):
        super().__init__(loader)
        self._fetcher = _worker.make_fetcher(self._kind, self._dataset, self._auto_collation, self._collate_fn,
                                             self._drop_last, self._batch_size)

    def __next__(self):
        index = next(self._sampler_iter)
        try:
            return self._fetcher.fetch(index)
        except _worker.FetchError as err:
            exc = err.__cause__
            if hasattr(exc, "add_note"):
                exc.add_note(f"(raised by the dataset while DataLoader loaded index {err.index!r})")
            raise exc.with_traceback(exc.__traceback__) from None


class _MultiProcessIter(_BaseIter):
    def __init__(self, loader):
        super().__init__(loader)
        self._num_workers = loader.num_workers
        self._prefetch = loader.prefetch_factor
        self._timeout = loader.timeout
        self._persistent = loader.persistent_workers
        self._in_order = loader.in_order
        self._shutdown = False
        self._epoch = 0
        ctx = _mp_context(loader.multiprocessing_context)
        self._index_queues, self._workers, self._readers = [], [], []
        self._done_event = ctx.Event()
        try:
            for worker_id in range(self._num_workers):
                index_queue = ctx.Queue()
                # cancel_join_thread: unsent indices may be dropped at shutdown instead of blocking exit.
                index_queue.cancel_join_thread()
                reader, writer = ctx.Pipe(duplex=False)
                w = ctx.Process(
                    target=_worker.worker_loop, daemon=True,
                    args=(self._kind, self._dataset, index_queue, writer, self._done_event, self._auto_collation,
                          self._collate_fn, self._drop_last, self._batch_size, self._base_seed,
                          loader.worker_init_fn, worker_id, self._num_workers, os.getpid()))
                w.start()
                # Only the worker may hold the writing end, so that its death reads as end-of-file here.
                writer.close()
                self._index_queues.append(index_queue)
                self._workers.append(w)
                self._readers.append(reader)
        except BaseException:
            self._shutdown_workers()
            raise
        self._start_epoch()

    def _start_epoch(self):
        self._send_idx = 0
        self._rcvd_idx = 0
        self._task_info = {}  # send_idx -> [worker_id] while pending, [worker_id, data] once arrived
        self._workers_status = [True] * self._num_workers
        self._worker_cycle = itertools.cycle(range(self._num_workers))
        for _ in range(self._prefetch * self._num_workers):
            self._try_put_index()

    def _reset(self, loader):
        # A persistent iterator starting a new epoch: new sampler pass, workers told to restart.
        self._base_seed = int(numpy_rng(loader.generator).integers(0, 2**62))
        self._sampler_iter = iter(self._index_sampler)
        self._epoch += 1
        for q in self._index_queues:
            q.put(("resume", self._epoch))
        self._start_epoch()

    def _try_put_index(self):
        try:
            index = next(self._sampler_iter)
        except StopIteration:
            return
        for _ in range(self._num_workers):
            worker_id = next(self._worker_cycle)
            if self._workers_status[worker_id]:
                break
        else:
            return
        self._index_queues[worker_id].put((self._epoch, self._send_idx, index))
        self._task_info[self._send_idx] = [worker_id]
        self._send_idx += 1

    def _get_result(self):
        deadline = time.monotonic() + self._timeout if self._timeout > 0 else None
        while True:
            wait = _LIVENESS_SECONDS if deadline is None else min(_LIVENESS_SECONDS, deadline - time.monotonic())
            ready = multiprocessing.connection.wait(self._readers, timeout=max(wait, 0))
            for conn in ready:
                try:
                    return conn.recv()
                except (EOFError, OSError):
                    self._worker_died(self._readers.index(conn))
            dead = [i for i, w in enumerate(self._workers) if not w.is_alive()]
            if dead:
                self._worker_died(dead[0])
            if deadline is not None and time.monotonic() >= deadline:
                # A worker that missed the deadline may never answer: stop the workers without
                # waiting for them, so that the error comes at the timeout.
                self._shutdown_workers(terminate=True)
                raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds waiting for a batch "
                                   f"from its workers")

    def _worker_died(self, worker_id):
        w = self._workers[worker_id]
        w.join(timeout=1.0)
        self._shutdown_workers()
        raise RuntimeError(f"DataLoader worker {worker_id} (pid {w.pid}) exited unexpectedly with exit code "
                           f"{w.exitcode}; a negative code is the signal that killed it (-9 is often "
                           f"running out of memory)")

    def __next__(self):
        while True:
            # Skip tasks already handed out of order, or owned by a worker whose stream has ended.
            while self._rcvd_idx < self._send_idx:
                info = self._task_info.get(self._rcvd_idx)
                if info is not None and (len(info) == 2 or self._workers_status[info[0]]):
                    break
                self._task_info.pop(self._rcvd_idx, None)
                self._rcvd_idx += 1
            else:
                if not self._persistent:
                    self._shutdown_workers()
                raise StopIteration
            info = self._task_info[self._rcvd_idx]
            if len(info) == 2:
                del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
                return self._deliver(info[1])
            epoch, idx, data = self._get_result()
            if epoch != self._epoch or idx not in self._task_info:
                continue  # left over from an epoch that was abandoned before its end
            if isinstance(data, _worker._IterableStop):
                self._workers_status[data.worker_id] = False
                self._try_put_index()
                continue
            if idx == self._rcvd_idx or not self._in_order:
                del self._task_info[idx]
                if idx == self._rcvd_idx:
                    self._rcvd_idx += 1
                return self._deliver(data)
            self._task_info[idx].append(data)

    def _deliver(self, data):
        self._try_put_index()
        if isinstance(data, _worker.ExceptionWrapper):
            if not self._persistent:
                self._shutdown_workers()
            data.reraise()
        return data

    def _shutdown_workers(self, terminate=False):
        """Stop the workers: ask them to finish (waiting up to 5 s), or with ``terminate`` end them at
        once (after a timeout, when a worker may be stuck for good)."""
        if getattr(self, "_shutdown", True):
            return
        self._shutdown = True
        self._done_event.set()
        if terminate:
            for w in self._workers:
                if w.is_alive():
                    w.terminate()
            for w in self._workers:
                w.join(timeout=0.5)
                if w.is_alive():
                    w.kill()  # one that ignores SIGTERM
                    w.join(timeout=0.5)
        for q in self._index_queues:
            try:
                q.put(None)
            except Exception:
                pass
        # A worker may be blocked sending a batch nobody will use: read and drop until each closes.
        open_readers = [] if terminate else list(self._readers)
        deadline = time.monotonic() + 5.0
        while open_readers and time.monotonic() < deadline:
            for conn in multiprocessing.connection.wait(open_readers, timeout=0.1):
                try:
                    conn.recv()
                except (EOFError, OSError):
                    open_readers.remove(conn)
        for w in self._workers:
            w.join(timeout=max(deadline - time.monotonic(), 0.1))
            if w.is_alive():
                w.terminate()
                w.join(timeout=1.0)
        for conn in self._readers:
            conn.close()
        for q in self._index_queues:
            q.close()

    def __del__(self):
        if sys.is_finalizing():
            return
        self._shutdown_workers()
