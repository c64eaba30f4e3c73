"""``somanet.cpu``: PyTorch's ``torch.cpu`` queries for the one device somanet computes on, and
``somanet.cpu.amp`` (``torch.cpu.amp``): ``autocast`` and ``GradScaler`` for the CPU."""


def is_available():
    """The CPU is always there."""
    return True


def device_count():
    return 1


def current_device():
    return "cpu"


def synchronize(device=None):
    """Nothing to wait for: CPU ops finish before they return."""


from . import amp  # noqa: E402,F401  (somanet.cpu.amp: autocast and GradScaler)
