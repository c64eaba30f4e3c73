import pytest

import somanet


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs CUDA (CuPy and a GPU: pip install somanet[cuda]); skipped without")


def pytest_collection_modifyitems(config, items):
    if somanet.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=f"CUDA is not available: {somanet.cuda.unavailable_reason()}")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture
def cuda():
    """The first GPU, with CuPy's generator seeded."""
    somanet.cuda.manual_seed(0)
    return somanet.device("cuda", 0)
