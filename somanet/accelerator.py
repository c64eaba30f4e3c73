"""``somanet.accelerator``: PyTorch's device-agnostic accelerator queries, answered by the CUDA backend
(``somanet.cuda``, CuPy) when it is available."""


def is_available():
    """Whether an accelerator (a GPU through CuPy) is available."""
    from . import cuda

    return cuda.is_available()


def current_accelerator(check_available=False):
    """The accelerator device (``device(type='cuda')``), or None when there is none."""
    from . import cuda, devices

    return devices.device("cuda") if cuda.is_available() else None


def device_count():
    """The number of accelerators (GPUs CuPy sees); 0 without one."""
    from . import cuda

    return cuda.device_count()
