"""What runs inside a DataLoader worker process, and the fetchers shared with the in-process path.

A worker takes tasks ``(epoch, send_idx, indices)`` from its own index queue, fetches and collates
that batch, and sends ``(epoch, send_idx, data)`` down its own result pipe. Sending serialises in
the worker, so a batch that cannot be sent is reported as an error instead of being lost, and a
worker that dies closes its pipe, which the main process notices at once. Errors travel back as
``ExceptionWrapper`` objects holding plain strings, so any exception, even one that cannot be
pickled, reaches the main process with its traceback and the dataset index that failed.
"""
import os
import queue
import random
import sys
import traceback

import numpy as np

from .. import random as somanet_random

_POLL_SECONDS = 1.0
_worker_info = None


class WorkerInfo:
    """What ``get_worker_info()`` returns inside a worker: ``id``, ``num_workers``, ``seed``, ``dataset``."""

    def __init__(self, id, num_workers, seed, dataset):
        self.id = id
        self.num_workers = num_workers
        self.seed = seed
        self.dataset = dataset

    def __repr__(self):
        return f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed})"


def get_worker_info():
    """Inside a DataLoader worker process: its ``WorkerInfo``; in the main process: ``None``."""
    return _worker_info


class ExceptionWrapper:
    """An exception caught in a worker, carried as text, re-raised in the main process."""

    def __init__(self, exc_info, where, index=None, what="dataset index"):
        exc_type, exc, _ = exc_info
        self.exc_type_name = exc_type.__name__
        self.where = where
        self.index = index
        self.what = what
        self.message = "".join(traceback.format_exception(*exc_info))
        # Only a class importable by name can travel to the main process; others become RuntimeError.
        self.exc_type = exc_type if _importable(exc_type) else None
        del exc

    def reraise(self):
        """Raise the original exception type with the worker's traceback in its message."""
        at = f" while loading {self.what} {self.index!r}" if self.index is not None else ""
        msg = f"Caught {self.exc_type_name} {self.where}{at}.\nOriginal {self.message}"
        if self.exc_type is KeyError:
            # KeyError quotes its message; wrap it so the traceback stays readable.
            raise KeyError(_KeyErrorMessage(msg))
        try:
            exc = self.exc_type(msg) if self.exc_type is not None else None
        except Exception:
            exc = None
        if not isinstance(exc, BaseException):
            raise RuntimeError(msg) from None
        raise exc


def _importable(cls):
    obj = sys.modules.get(cls.__module__)
    for part in cls.__qualname__.split("."):
        obj = getattr(obj, part, None)
    return obj is cls


class _KeyErrorMessage(str):
    def __repr__(self):
        return str(self)


class _IterableStop:
    """A worker's iterable dataset is exhausted."""

    def __init__(self, worker_id):
        self.worker_id = worker_id


class FetchError(Exception):
    """Internal: a sample failed; carries the index. Never escapes the data package."""

    def __init__(self, index):
        self.index = index


def _load(dataset, index):
    try:
        return dataset[index]
    except Exception as exc:
        raise FetchError(index) from exc


class MapFetcher:
    """Fetches one batch (or one sample without automatic batching) from a map-style dataset."""

    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        from .collate import default_collate
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        getitems = getattr(dataset, "__getitems__", None)
        self.getitems = getitems if callable(getitems) else None
        fast = getattr(dataset, "_fetch_batch", None)
        self.fast = fast if callable(fast) and collate_fn is default_collate and auto_collation else None

    def fetch(self, indices):
        if not self.auto_collation:
            return self.collate_fn(_load(self.dataset, indices))
        if self.fast is not None:
            batch = self.fast(indices)
            if batch is not None:
                return batch
        if self.getitems is not None:
            return self.collate_fn(self.getitems(indices))
        return self.collate_fn([_load(self.dataset, i) for i in indices])


class IterableFetcher:
    """Fetches the next batch (or sample) from an iterable dataset's iterator."""

    def __init__(self, dataset, auto_collation, collate_fn, drop_last, batch_size):
        self.iterator = iter(dataset)
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.batch_size = batch_size
        self.ended = False

    def fetch(self, _):
        if self.ended:
            raise StopIteration
        if not self.auto_collation:
            return self.collate_fn(next(self.iterator))
        data = []
        for _ in range(self.batch_size):
            try:
                data.append(next(self.iterator))
            except StopIteration:
                self.ended = True
                break
        if not data or (self.drop_last and len(data) < self.batch_size):
            raise StopIteration
        return self.collate_fn(data)


def make_fetcher(kind, dataset, auto_collation, collate_fn, drop_last, batch_size):
    if kind == "iterable":
        return IterableFetcher(dataset, auto_collation, collate_fn, drop_last, batch_size)
    return MapFetcher(dataset, auto_collation, collate_fn, drop_last)


def seed_worker(base_seed, worker_id):
    """Seed Python's, NumPy's global and somanet's default generators for one worker; return its seed."""
    seed = base_seed + worker_id
    random.seed(seed)
    np.random.seed(np.random.SeedSequence([worker_id, base_seed]).generate_state(4))
    somanet_random.manual_seed(seed)
    return seed


def worker_loop(kind, dataset, index_queue, result_conn, done_event, auto_collation, collate_fn, drop_last, batch_size,
                base_seed, init_fn, worker_id, num_workers, parent_pid):
    """The body of one worker process (see the module docstring for the protocol)."""
    global _worker_info
    try:
        seed = seed_worker(base_seed, worker_id)
        _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
        where = f"in DataLoader worker process {worker_id}"
        init_error = None
        fetcher = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            fetcher = make_fetcher(kind, dataset, auto_collation, collate_fn, drop_last, batch_size)
        except Exception:
            init_error = ExceptionWrapper(sys.exc_info(), where + " (in worker_init_fn or dataset setup)")
        ended = False
        while True:
            try:
                task = index_queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if os.getppid() != parent_pid:
                    break  # the main process is gone; nobody will read what we make
                continue
            if task is None or done_event.is_set():
                break
            if task[0] == "resume":
                # A persistent worker starts a new epoch: an iterable dataset is iterated afresh.
                ended = False
                if init_error is None:
                    try:
                        fetcher = make_fetcher(kind, dataset, auto_collation, collate_fn, drop_last, batch_size)
                    except Exception:
                        init_error = ExceptionWrapper(sys.exc_info(), where + " (restarting the dataset)")
                continue
            epoch, send_idx, indices = task
            if init_error is not None:
                data, init_error = init_error, None
            elif ended:
                continue
            else:
                try:
                    data = fetcher.fetch(indices)
                except StopIteration:
                    data = _IterableStop(worker_id)
                    ended = True
                except FetchError as err:
                    cause = err.__cause__
                    data = ExceptionWrapper((type(cause), cause, cause.__traceback__), where, index=err.index)
                except Exception:
                    data = ExceptionWrapper(sys.exc_info(), where, index=indices if kind == "map" else None,
                                            what="batch of indices")
            try:
                result_conn.send((epoch, send_idx, data))
            except (BrokenPipeError, ConnectionError, EOFError):
                break  # the main process has stopped listening
            except Exception:
                # The batch could not be serialised: report that instead of losing it.
                err = ExceptionWrapper(sys.exc_info(), where + " (sending a batch to the main process)")
                try:
                    result_conn.send((epoch, send_idx, err))
                except OSError:
                    break
            del data
    except KeyboardInterrupt:
        pass
    finally:
        try:
            result_conn.close()
        except OSError:
            pass
