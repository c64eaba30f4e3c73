import pytest

import somanet
from devices.standin import standin


@pytest.fixture
def device():
    """The stand-in device, registered for the test (see devices/standin.py) and removed after."""
    somanet.devices.register_device("standin", standin)
    try:
        yield somanet.device("standin", 0)
    finally:
        somanet.devices.unregister_device("standin")
