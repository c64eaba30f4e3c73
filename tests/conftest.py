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


@pytest.fixture
def data_dir():
    if not os.path.isdir(DATA_DIR):
        pytest.skip(f"real data folder not found at {DATA_DIR}")
    return DATA_DIR
