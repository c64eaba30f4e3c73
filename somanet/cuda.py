"""``somanet.cuda``: PyTorch's CUDA queries, answered by CuPy when it and a GPU are there.

Install the backend with ``pip install somanet[cuda]`` (CuPy for CUDA 12). ``import somanet`` never
imports CuPy: the first call here (or the first tensor asked for on a 'cuda' device) does. Without CuPy or
a GPU, ``is_available()`` is False, seeding calls do nothing (as in PyTorch without CUDA) and calls that
need a GPU raise an error that says why.
"""

_probe = None  # (device count, reason there is none), once looked for


def _find():
    global _probe
    if _probe is None:
        try:
            import cupy
        except ImportError:
            _probe = (0, "CuPy is not installed: pip install somanet[cuda]")
        else:
            try:
                count = cupy.cuda.runtime.getDeviceCount()
            except Exception as exc:  # CuPy raises its CUDARuntimeError when no driver or GPU is found
                _probe = (0, f"CuPy found no usable GPU ({exc})")
            else:
                _probe = (count, None) if count else (0, "CuPy found no GPU")
    return _probe


def unavailable_reason():
    """Why no CUDA device can be used (``None`` when one can): CuPy missing, or no GPU found."""
    return _find()[1]


def is_available():
    """Whether a GPU backend (CuPy with at least one GPU) can run somanet's ops."""
    return _find()[0] > 0


def device_count():
    """The number of GPUs CuPy sees (0 without CuPy)."""
    return _find()[0]


def is_initialized():
    """Whether the CUDA backend has been set up (a CUDA device has been used)."""
    from . import devices

    return "cuda" in devices._modules


def is_bf16_supported(including_emulation=True):
    """Whether bfloat16 runs on the GPU: False, somanet keeps bfloat16 as float32 arrays (see somanet.amp)."""
    return False


def _cupy(op):
    if not is_available():
        raise RuntimeError(f"somanet.cuda.{op}(): no GPU is available ({unavailable_reason()}); run on device 'cpu'")
    import cupy

    return cupy


def _index(device, op):
    """The GPU index that ``device`` (None, an int, 'cuda:1' or a device) names; None means the current one."""
    if device is None:
        return _cupy(op).cuda.runtime.getDevice()
    from . import devices

    if isinstance(device, int) and not isinstance(device, bool):
        device = devices.device("cuda", device)
    d = devices.resolve(device, f"somanet.cuda.{op}")
    if d.type != "cuda":
        raise ValueError(f"somanet.cuda.{op}(): expected a CUDA device, got '{d}'")
    return d.index


def manual_seed(seed):
    """Seed CuPy's generator on the current GPU; does nothing without a GPU (as in PyTorch).

    somanet draws its random tensors and dropout masks on the host from ``somanet.manual_seed``'s
    generator, so a seed gives the same values on every device; this seeds only what calls CuPy's
    ``cupy.random`` directly.
    """
    if is_available():
        import cupy

        cupy.random.seed(int(seed) % (1 << 32))


def manual_seed_all(seed):
    """Seed CuPy's generator on every GPU; does nothing without a GPU."""
    if is_available():
        import cupy

        for i in range(device_count()):
            with cupy.cuda.Device(i):
                cupy.random.seed(int(seed) % (1 << 32))


def seed():
    """Seed the current GPU's CuPy generator from the operating system's entropy; nothing without a GPU."""
    if is_available():
        import cupy

        cupy.random.seed()


def seed_all():
    """Seed every GPU's CuPy generator from the operating system's entropy; nothing without a GPU."""
    if is_available():
        import cupy

        for i in range(device_count()):
            with cupy.cuda.Device(i):
                cupy.random.seed()


def empty_cache():
    """Free the blocks CuPy's memory pools cache; nothing is cached without a GPU."""
    if is_available():
        import cupy

        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()


def current_device():
    """The index of the GPU that new CUDA work goes to."""
    return _cupy("current_device").cuda.runtime.getDevice()


def set_device(device):
    """Make ``device`` (an index, 'cuda:1' or a device) the current GPU."""
    _cupy("set_device").cuda.runtime.setDevice(_index(device, "set_device"))


def synchronize(device=None):
    """Wait until every kernel queued on ``device`` (the current GPU by default) has finished."""
    cupy = _cupy("synchronize")
    cupy.cuda.Device(_index(device, "synchronize")).synchronize()


def get_device_name(device=None):
    """The GPU's product name, e.g. 'NVIDIA H100 80GB HBM3'."""
    cupy = _cupy("get_device_name")
    name = cupy.cuda.runtime.getDeviceProperties(_index(device, "get_device_name"))["name"]
    return name.decode() if isinstance(name, bytes) else name


def memory_allocated(device=None):
    """Bytes held by tensors on ``device`` (CuPy's memory pool in use), as ``torch.cuda.memory_allocated``."""
    cupy = _cupy("memory_allocated")
    with cupy.cuda.Device(_index(device, "memory_allocated")):
        return cupy.get_default_memory_pool().used_bytes()


def memory_reserved(device=None):
    """Bytes CuPy's memory pool holds on ``device``, in use or cached (``torch.cuda.memory_reserved``)."""
    cupy = _cupy("memory_reserved")
    with cupy.cuda.Device(_index(device, "memory_reserved")):
        return cupy.get_default_memory_pool().total_bytes()


def max_memory_allocated(device=None):
    """Not tracked: CuPy's memory pool keeps no peak; raises with what to use instead."""
    _cupy("max_memory_allocated")
    raise NotImplementedError("somanet.cuda.max_memory_allocated(): CuPy's memory pool keeps no peak; use "
                              "memory_allocated() or memory_reserved()")


def _amp_module():
    # somanet.cuda.amp (PyTorch's torch.cuda.amp): autocast and GradScaler that warn and turn themselves off,
    # as PyTorch's do without a GPU. Registered as a module so that `from somanet.cuda.amp import ...` works.
    import sys

    from .amp import _cuda_amp

    sys.modules[__name__ + ".amp"] = _cuda_amp
    return _cuda_amp


amp = _amp_module()
