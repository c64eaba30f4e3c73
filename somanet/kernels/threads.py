"""The batch split that heavy kernels run on several threads, and the BLAS thread count around it.

NumPy's BLAS threads a GEMM only when it is large, so most of a network's products (a convolution's
per-image GEMMs, a recurrent layer's steps, an optimizer's update loops) would use one core. A kernel
therefore splits its batch into one contiguous block per thread and runs the blocks at once
(``split_batch``): NumPy releases the GIL inside its loops and BLAS calls, so Python threads run them in
parallel. While they do, BLAS is held to one thread (``one_blas_thread``), so the blocks do not fight
over cores. The threads are started once and handed each block through two locks, which costs a few
microseconds where a ``concurrent.futures`` pool costs about 60 per call.

``somanet.get_num_threads`` / ``set_num_threads`` (in ``somanet.backend``) set how many blocks there are.
"""
import contextlib
import os
import threading

from .. import backend

__all__ = ["PARALLEL_MIN_WORK", "parallel_blocks", "split_batch", "batch_ranges", "one_blas_thread",
           "blas_threads"]

_workers = []
_workers_busy = threading.Lock()
_local = threading.local()


def blas_threads():
    """How many threads NumPy's BLAS may use right now (threadpoolctl's reading; ``get_num_threads()``
    without threadpoolctl)."""
    libs = backend._blas()
    if not libs:
        return backend.get_num_threads()
    return max(lib.get_num_threads() for lib in libs)


@contextlib.contextmanager
def one_blas_thread():
    """Hold NumPy's BLAS to one thread inside the ``with`` block, then restore its thread count.

    For the blocks of ``split_batch``, and for small products made right next to them: on several
    threads OpenBLAS leaves its idle threads spinning afterwards (see ``somanet._process``), on the cores
    the blocks are about to use."""
    libs = backend._blas()
    saved = [lib.get_num_threads() for lib in libs]
    for lib in libs:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, count in zip(libs, saved):
            lib.set_num_threads(count)


class _Worker:
    """A thread that runs one block at a time, handed over through two locks."""

    def __init__(self):
        self.go = threading.Lock()
        self.go.acquire()
        self.done = threading.Lock()
        self.done.acquire()
        self.task = self.result = None
        threading.Thread(target=self._loop, name="somanet-worker", daemon=True).start()

    def _loop(self):
        _local.busy = True
        while True:
            self.go.acquire()
            fn, lo, hi = self.task
            try:
                self.result = (True, fn(lo, hi))
            except BaseException as exc:  # handed to the caller by join()
                self.result = (False, exc)
            self.done.release()

    def submit(self, fn, lo, hi):
        self.task = (fn, lo, hi)
        self.go.release()

    def join(self):
        """The block's result, or its exception raised here. Waits for the block even through a
        KeyboardInterrupt (re-raised after): its arrays must not be reused while it runs, and a later
        join must not read this block's result."""
        interrupted = None
        while True:
            try:
                self.done.acquire()
                break
            except BaseException as exc:
                interrupted = exc
        ok, value = self.result
        self.task = self.result = None
        if interrupted is not None:
            raise interrupted
        if not ok:
            raise value
        return value


def _forget_workers():
    # A forked child has the worker objects but none of their threads.
    global _workers, _workers_busy
    _workers, _workers_busy = [], threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


#: Least work (multiply-adds) worth splitting across threads; smaller ops run in the calling thread.
PARALLEL_MIN_WORK = 1 << 24


def parallel_blocks(n, work):
    """How many blocks to split a batch of ``n`` items into: ``get_num_threads()`` when ``work``
    (multiply-adds) is at least ``PARALLEL_MIN_WORK``, else 1. Always 1 inside a block already running
    in parallel."""
    threads = backend.get_num_threads()
    if threads < 2 or n < 2 or work < PARALLEL_MIN_WORK or getattr(_local, "busy", False):
        return 1
    return min(threads, n)


def batch_ranges(n, blocks):
    """``blocks`` consecutive ``(lo, hi)`` ranges of near-equal size covering ``range(n)``."""
    return [(n * i // blocks, n * (i + 1) // blocks) for i in range(blocks)]


def split_batch(fn, n, blocks):
    """Call ``fn(lo, hi)`` on ``blocks`` contiguous ranges covering ``range(n)``, at the same time on
    ``blocks`` threads (the caller runs the first), and return their results in order. ``fn`` must
    only write memory of its own range. BLAS runs single-threaded meanwhile. When another thread is
    already using the workers, the ranges run one after another in the caller."""
    ranges = batch_ranges(n, blocks)
    if blocks <= 1 or not _workers_busy.acquire(blocking=False):
        return [fn(lo, hi) for lo, hi in ranges]
    try:
        while len(_workers) < blocks - 1:
            _workers.append(_Worker())
        started = []
        with one_blas_thread():
            try:
                for i in range(1, blocks):
                    _workers[i - 1].submit(fn, *ranges[i])
                    started.append(_workers[i - 1])
                _local.busy = True
                try:
                    first = fn(*ranges[0])
                finally:
                    _local.busy = False
            finally:
                # Every block must finish before the caller's arrays are used (or an error is raised).
                results = []
                errors = []
                for worker in started:
                    try:
                        results.append(worker.join())
                    except BaseException as exc:
                        errors.append(exc)
        if errors:
            raise errors[0]
        return [first] + results
    finally:
        _workers_busy.release()
