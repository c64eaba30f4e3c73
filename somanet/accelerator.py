"""``somanet.accelerator``: PyTorch's device-agnostic accelerator queries. There is none in this install."""


def is_available():
    """Whether an accelerator (a GPU backend) is available: False here."""
    return False


def current_accelerator(check_available=False):
    """The accelerator device, or None when there is none (as here)."""
    return None


def device_count():
    return 0
