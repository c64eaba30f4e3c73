"""``somanet.cuda``: PyTorch's CUDA queries, answered for an install without a GPU backend.

Code written for PyTorch checks ``somanet.cuda.is_available()`` and takes its CPU branch; seeding calls
are accepted and do nothing (as PyTorch does without CUDA). Calls that need a GPU raise a clear error.
"""


def is_available():
    """Whether a GPU backend can run somanet's ops: False in this install."""
    return False


def device_count():
    return 0


def is_initialized():
    return False


def is_bf16_supported(including_emulation=True):
    return False


def manual_seed(seed):
    """Seed the GPU generators: nothing to seed without a GPU, so this does nothing (as in PyTorch)."""


def manual_seed_all(seed):
    """Seed every GPU's generator: nothing to seed without a GPU, so this does nothing (as in PyTorch)."""


def seed():
    """Nothing to seed without a GPU."""


def seed_all():
    """Nothing to seed without a GPU."""


def empty_cache():
    """Nothing is cached without a GPU."""


def _no_gpu(op):
    raise RuntimeError(f"somanet.cuda.{op}(): no GPU is available (somanet.cuda.is_available() is False); "
                       f"run on device 'cpu'")


def current_device():
    _no_gpu("current_device")


def set_device(device):
    _no_gpu("set_device")


def synchronize(device=None):
    _no_gpu("synchronize")


def get_device_name(device=None):
    _no_gpu("get_device_name")


def memory_allocated(device=None):
    _no_gpu("memory_allocated")


def max_memory_allocated(device=None):
    _no_gpu("max_memory_allocated")


def _amp_module():
    # somanet.cuda.amp (PyTorch's torch.cuda.amp): autocast and GradScaler that warn and turn themselves off,
    # as PyTorch's do without a GPU. Registered as a module so that `from somanet.cuda.amp import ...` works.
    import sys

    from .amp import _cuda_amp

    sys.modules[__name__ + ".amp"] = _cuda_amp
    return _cuda_amp


amp = _amp_module()
