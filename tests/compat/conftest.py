"""Fixtures for the compat programs: PyTorch on one thread (the reference runs stay fast on a shared
two-core machine) and the path of the shared MNIST files."""
import os

import pytest


@pytest.fixture(autouse=True)
def _torch_one_thread():
    try:
        import torch
    except ImportError:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def mnist_root(data_dir):
    return os.path.join(data_dir, "mnist")
