import os

import numpy as np
import pytest

import somanet

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
DATA_DIR = os.path.normpath(DATA_DIR)


@pytest.fixture(autouse=True)
def _seed():
    somanet.manual_seed(0)
    np.random.seed(0)
    yield


def _with_threads(count):
    previous = somanet.get_num_threads()
    somanet.set_num_threads(count)
    yield
    somanet.set_num_threads(previous)


@pytest.fixture
def one_thread():
    """somanet and NumPy's BLAS on one thread for the test (restored after)."""
    yield from _with_threads(1)


@pytest.fixture
def two_threads():
    """somanet and NumPy's BLAS on two threads for the test (restored after)."""
    yield from _with_threads(2)


@pytest.fixture
def split_always(monkeypatch, two_threads):
    """Two threads and no least work for a split: every op that can split its batch over threads does."""
    from somanet import backend

    monkeypatch.setattr(backend, "PARALLEL_MIN_WORK", 0)


@pytest.fixture
def data_dir():
    if not os.path.isdir(DATA_DIR):
        pytest.skip(f"real data folder not found at {DATA_DIR}")
    return DATA_DIR
