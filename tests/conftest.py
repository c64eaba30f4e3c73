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
    from somanet.kernels import threads

    monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", 0)


@pytest.fixture
def data_dir():
    if not os.path.isdir(DATA_DIR):
        pytest.skip(f"real data folder not found at {DATA_DIR}")
    return DATA_DIR


# --------------------------------------------------------------------------- the device suite
# ``pytest --somanet-device=standin tests/test_ops_*.py tests/nn tests/autograd`` runs the somanet side of
# the PyTorch comparisons on the stand-in device (tests/devices/standin.py): the helpers in reference.py
# put somanet's tensors there. Modules that never use those helpers would only repeat the CPU run, so
# they are deselected; tests that cannot run on a device are skipped with the reason listed in
# tests/devices/standin_suite.py.
def pytest_addoption(parser):
    parser.addoption("--somanet-device", default=None, metavar="TYPE",
                     help="run the somanet side of the reference comparisons on this device type ('standin': "
                          "the test-only stand-in device; 'cuda': a GPU)")


def pytest_configure(config):
    config.addinivalue_line("markers", "host_only(reason): cannot run on a device; skipped under "
                                       "--somanet-device")
    kind = config.getoption("--somanet-device")
    if kind:
        import reference

        if kind == "standin":
            from devices.standin import standin

            somanet.devices.register_device("standin", standin)
        reference.DEVICE = somanet.devices.resolve(kind, "--somanet-device")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--somanet-device"):
        return
    import reference
    from devices.standin_suite import DEVICE_GAPS, HOST_ONLY, uses_reference_helpers

    kept, deselected = [], []
    for item in items:
        if not uses_reference_helpers(item):
            deselected.append(item)
            continue
        kept.append(item)
        function = item.nodeid.split("[")[0]
        marker = item.get_closest_marker("host_only")
        reason = marker.args[0] if marker is not None and marker.args else HOST_ONLY.get(function,
                                                                                         HOST_ONLY.get(item.nodeid))
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"host only on {reference.DEVICE}: {reason}"))
        elif item.nodeid in DEVICE_GAPS:
            item.add_marker(pytest.mark.xfail(reason=f"device gap: {DEVICE_GAPS[item.nodeid]}", strict=True))
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
