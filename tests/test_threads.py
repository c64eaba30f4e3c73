"""somanet's own threads: get/set_num_threads and the batch split heavy ops run on (kernels.threads.split_batch)."""
import json
import multiprocessing
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import somanet
from somanet import backend
from somanet.kernels import threads


def test_set_num_threads_validates_and_round_trips(two_threads):
    assert somanet.get_num_threads() == 2
    for bad in (0, -1, 1.5, "2", True, None):
        with pytest.raises(ValueError, match=r"set_num_threads\(\): expected a positive int"):
            somanet.set_num_threads(bad)
    assert somanet.get_num_threads() == 2


def test_set_num_threads_sets_numpys_blas(two_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    somanet.set_num_threads(1)
    blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert blas and all(i["num_threads"] == 1 for i in blas)


def test_default_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SOMANET_NUM_THREADS", "3")
    assert backend._default_threads() == 3
    monkeypatch.setenv("SOMANET_NUM_THREADS", "zero")
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert backend._default_threads() == 5
    monkeypatch.delenv("SOMANET_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert backend._default_threads() >= 1


def test_parallel_blocks_rules(two_threads):
    assert threads.parallel_blocks(64, threads.PARALLEL_MIN_WORK) == 2
    assert threads.parallel_blocks(64, threads.PARALLEL_MIN_WORK - 1) == 1  # too little work
    assert threads.parallel_blocks(1, 10 ** 12) == 1                        # one item
    somanet.set_num_threads(1)
    assert threads.parallel_blocks(64, 10 ** 12) == 1


def test_split_batch_covers_the_range_in_order_on_two_threads(two_threads):
    seen = []

    def block(lo, hi):
        seen.append(threading.get_ident())
        return (lo, hi)

    assert threads.split_batch(block, 7, 2) == [(0, 3), (3, 7)]
    assert len(set(seen)) == 2  # the second block ran on a worker
    assert threads.split_batch(block, 5, 1) == [(0, 5)]


def test_blocks_run_at_the_same_time(two_threads):
    # Each block waits for the other: this only finishes if they run concurrently.
    barrier = threading.Barrier(2, timeout=10)
    assert threads.split_batch(lambda lo, hi: barrier.wait() is not None, 4, 2) == [True, True]


def test_an_error_in_any_block_reaches_the_caller_after_all_blocks_end(two_threads):
    finished = []

    def block(lo, hi):
        if lo:
            raise ValueError("block 2 failed")
        finished.append(lo)
        return lo

    with pytest.raises(ValueError, match="block 2 failed"):
        threads.split_batch(block, 4, 2)
    with pytest.raises(ZeroDivisionError):
        threads.split_batch(lambda lo, hi: 1 // lo, 4, 2)
    assert finished == [0]
    assert threads.split_batch(lambda lo, hi: hi - lo, 4, 2) == [2, 2]  # the workers still serve


def test_a_block_does_not_split_again(two_threads):
    inner = threads.split_batch(lambda lo, hi: threads.parallel_blocks(64, 10 ** 12), 4, 2)
    assert inner == [1, 1]


def test_concurrent_callers_each_get_their_whole_range(two_threads):
    results = {}

    def caller(k):
        results[k] = [threads.split_batch(lambda lo, hi: (lo, hi), 10 + k, 2) for _ in range(200)]

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, runs in results.items():
        n = 10 + k
        assert all(r == [(0, n // 2), (n // 2, n)] for r in runs)


def _split_in_child(queue):
    queue.put(threads.split_batch(lambda lo, hi: hi - lo, 6, 2))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_forked_child_starts_its_own_workers(two_threads):
    threads.split_batch(lambda lo, hi: hi, 4, 2)  # the parent's workers exist
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_split_in_child, args=(queue,))
    proc.start()
    assert queue.get(timeout=30) == [3, 3]
    proc.join(30)
    assert proc.exitcode == 0


def test_numpy_work_in_blocks_matches_one_thread(two_threads):
    a = np.random.default_rng(0).standard_normal((9, 64, 64)).astype(np.float32)
    out = np.empty_like(a)

    def block(lo, hi):
        np.matmul(a[lo:hi], a[lo:hi], out=out[lo:hi])

    threads.split_batch(block, 9, 2)
    np.testing.assert_array_equal(out, np.matmul(a, a))


def test_an_interrupted_wait_still_waits_for_the_block_and_keeps_the_workers_consistent(two_threads):
    # Ctrl-C while the caller waits for a worker: the wait goes on until the block is done (its arrays
    # are in use), the interrupt is raised after, and the next split gets its own results.
    threads.split_batch(lambda lo, hi: hi, 4, 2)  # the worker exists
    worker = threads._workers[0]
    real_done = worker.done
    release = threading.Event()

    class InterruptOnce:
        def __init__(self):
            self.fired = False

        def acquire(self):
            if not self.fired:
                self.fired = True
                raise KeyboardInterrupt
            return real_done.acquire()

        def release(self):
            real_done.release()

    worker.done = InterruptOnce()
    finished = []

    def block(lo, hi):
        if lo:
            release.wait(5)
            finished.append(lo)
        return lo

    timer = threading.Timer(0.2, release.set)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            threads.split_batch(block, 4, 2)
        assert finished == [2]  # the worker's block had ended before the interrupt came through
    finally:
        worker.done = real_done
        timer.cancel()
    assert threads.split_batch(lambda lo, hi: (lo, hi), 6, 2) == [(0, 3), (3, 6)]


TIMEOUT_PROBE = """
import ctypes, os, sys
{first}
from threadpoolctl import ThreadpoolController
read = None
for lib in ThreadpoolController().lib_controllers:
    if lib.internal_api == "openblas":
        fn = getattr(ctypes.CDLL(lib.filepath), "openblas_thread_timeout", None)
        if fn is not None:
            read = fn()
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), read)
"""


def _timeout_probe(first, **env):
    pytest.importorskip("threadpoolctl")
    full = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", TIMEOUT_PROBE.format(first=first)], capture_output=True,
                         text=True, env=full, check=True)
    env_value, read = out.stdout.split()
    return env_value, read


def test_somanet_first_shortens_openblas_spin():
    env_value, read = _timeout_probe("import somanet")
    assert env_value == backend.BLAS_THREAD_TIMEOUT
    if read != "None":  # the BLAS is OpenBLAS and says what it read when it loaded
        assert read == backend.BLAS_THREAD_TIMEOUT


def test_users_timeout_is_kept_and_numpy_first_is_left_alone():
    assert _timeout_probe("import somanet", OPENBLAS_THREAD_TIMEOUT="12")[0] == "12"
    assert _timeout_probe("import numpy\nimport somanet")[0] == "None"


def test_somanet_num_threads_limits_blas_from_the_first_product():
    # SOMANET_NUM_THREADS reaches OpenBLAS when it loads, as OMP_NUM_THREADS would; a value the user gave
    # OpenBLAS itself wins.
    code = ("import json, somanet, numpy as np\n"
            "from threadpoolctl import threadpool_info\n"
            "print(somanet.get_num_threads(), json.dumps([i['num_threads'] for i in threadpool_info() "
            "if i['user_api'] == 'blas']))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env={**env, "SOMANET_NUM_THREADS": "1"}, capture_output=True,
                         text=True, check=True).stdout.split(None, 1)
    assert out[0] == "1" and set(json.loads(out[1])) == {1}
