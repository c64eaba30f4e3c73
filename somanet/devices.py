"""Devices as PyTorch names them: ``somanet.device("cpu")``, ``device("cuda", 0)``, ``"cuda:1"``.

Each device type computes with one array module: NumPy for ``cpu``, CuPy for ``cuda`` (found the first
time a CUDA device is asked for, when CuPy and a GPU are there), and any module given to
``register_device``. A tensor's device is the device of its array, so ops need no device argument: they
take their array module from their inputs (``backend.array_module``). ``Tensor.to(device)``,
``Module.to(device)`` and ``device=`` on creation functions move arrays with ``move``.

An array module for a device provides NumPy's functions, an ``ndarray`` class (the arrays it makes),
``asarray`` (copies a NumPy array onto the device) and ``asnumpy`` (copies an array back to the host):
CuPy's interface.
"""

#: Device types PyTorch knows; a string naming any other type is a malformed device.
_KNOWN_TYPES = ("cpu", "cuda", "mps", "xpu", "meta", "hip", "xla", "ipu", "hpu", "mtia", "privateuseone")
#: Device types somanet can compute on right now ('cpu', plus every registered device).
AVAILABLE = ("cpu",)
#: The array module and device count of each device type besides 'cpu'.
_modules = {}
#: The device type of each registered array class (``cupy.ndarray`` -> 'cuda').
_array_types = {}


class device:  # noqa: N801 - PyTorch's spelling
    """A device type and an optional index: ``device("cuda", 0)``, ``device("cuda:0")``, ``device("cpu")``.

    Making a device object never fails for a known type, as in PyTorch; placing a tensor on a device that
    is not available does, with a clear error.
    """

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):  # noqa: A002
        if isinstance(type, device):
            if index is not None:
                raise ValueError("device(): an index cannot be given with a device object")
            self.type, self.index = type.type, type.index
            return
        if isinstance(type, int) and not isinstance(type, bool):
            # PyTorch reads a bare ordinal as the accelerator's index.
            self.type, self.index = "cuda", _check_index(type)
            return
        if not isinstance(type, str):
            raise TypeError(f"device(): expected a string, device or int, got {type.__class__.__name__}")
        name, sep, ordinal = type.partition(":")
        if name not in _KNOWN_TYPES:
            raise RuntimeError(f"device(): expected one of {', '.join(_KNOWN_TYPES)} device type at the start "
                               f"of the device string, got {type!r}")
        if sep:
            if index is not None:
                raise ValueError(f"device(): index given twice, in {type!r} and as index={index}")
            if not ordinal.isdigit():
                raise RuntimeError(f"device(): invalid device string {type!r} (expected 'type' or 'type:index')")
            index = int(ordinal)
        self.type = name
        self.index = None if index is None else _check_index(index)

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except (RuntimeError, ValueError):
                return False
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __reduce__(self):
        return (device, (self.type, self.index))


def _check_index(index):
    index = int(index)
    if index < 0:
        raise RuntimeError(f"device(): the device index must not be negative, got {index}")
    return index


CPU = device("cpu")
_default = CPU


def register_device(type, module, count=1):  # noqa: A002 - PyTorch's name for a device's kind
    """Make device ``type`` compute with the array module ``module`` (see the module docstring), with
    ``count`` devices (indices ``0 .. count-1``). Registering 'cuda' by hand is not needed: CuPy is found
    when a CUDA device is first asked for."""
    global AVAILABLE, _KNOWN_TYPES
    if not isinstance(type, str) or not type.isidentifier() or type == "cpu":
        raise ValueError(f"register_device(): expected a device type name other than 'cpu', got {type!r}")
    for attr in ("ndarray", "asarray", "asnumpy"):
        if not hasattr(module, attr):
            raise TypeError(f"register_device(): the array module for '{type}' has no '{attr}'")
    _modules[type] = (module, int(count))
    _array_types[module.ndarray] = type
    if type not in _KNOWN_TYPES:
        _KNOWN_TYPES = _KNOWN_TYPES + (type,)
    if type not in AVAILABLE:
        AVAILABLE = AVAILABLE + (type,)


def unregister_device(type):  # noqa: A002
    """Undo ``register_device(type, ...)`` (its tensors stay where they are but new ones cannot be made)."""
    global AVAILABLE, _default
    entry = _modules.pop(type, None)
    if entry is not None:
        _array_types.pop(entry[0].ndarray, None)
        AVAILABLE = tuple(t for t in AVAILABLE if t != type)
        if _default.type == type:
            _default = CPU


def _find(type):  # noqa: A002
    """The array module and device count of ``type``, registering CuPy for 'cuda' on first use; None when
    the device type has no backend here."""
    entry = _modules.get(type)
    if entry is None and type == "cuda":
        from . import cuda

        if cuda.is_available():
            import cupy

            from .backends import cuda_kernels

            register_device("cuda", cupy, cuda.device_count())
            cuda_kernels.install(cupy)  # the fused Adam and GELU kernels for CuPy arrays
            entry = _modules["cuda"]
    return entry


def resolve(spec, op="to"):
    """The device a ``device=`` argument names, checked to be available (``None`` means the default).

    A device type other than 'cpu' without an index means its device 0 (``'cuda'`` -> ``cuda:0``).
    """
    if spec is None:
        return _default
    d = spec if isinstance(spec, device) else device(spec)
    if d.type == "cpu":
        if d.index not in (None, 0):
            raise RuntimeError(f"{op}(): device '{d}' does not exist; the CPU is device 'cpu' (or 'cpu:0')")
        return CPU
    entry = _find(d.type)
    if entry is None:
        hint = ""
        if d.type == "cuda":
            from . import cuda

            hint = f" ({cuda.unavailable_reason()})"
        raise RuntimeError(f"{op}(): device '{d}' is not available{hint}; available devices: "
                           f"{', '.join(AVAILABLE)}")
    index = 0 if d.index is None else d.index
    if index >= entry[1]:
        raise RuntimeError(f"{op}(): device '{d}' does not exist; there are {entry[1]} '{d.type}' devices")
    return device(d.type, index)


def require(spec, owner):
    """The device ``spec`` names for ``owner`` (``Trainer``, ``somanet train --device``), resolved, with the
    error a user can act on when it is CUDA and no GPU backend is here."""
    d = spec if isinstance(spec, device) else device(spec)
    if d.type == "cuda" and _find("cuda") is None:
        from . import cuda

        raise RuntimeError(f"{owner}: CUDA is not available: install somanet[cuda] on a machine with an NVIDIA GPU "
                           f"({cuda.unavailable_reason()})")
    return resolve(d, owner)


def to_host(arr):
    """A NumPy array with the values of ``arr``, an array on any device (``arr`` itself on the CPU)."""
    if type(arr) in _array_types:
        return _modules[_array_types[type(arr)]][0].asnumpy(arr)
    return arr


def module_of(d):
    """The array module that computes on device ``d`` (a resolved device): NumPy for the CPU."""
    if d.type == "cpu":
        import numpy

        return numpy
    return _modules[d.type][0]


def of_array(arr):
    """The device that holds the array ``arr``: the CPU for NumPy arrays (and anything unregistered)."""
    kind = _array_types.get(type(arr))
    if kind is None:
        return CPU
    dev = getattr(arr, "device", None)
    return device(kind, getattr(dev, "id", 0))


def move(arr, d):
    """``arr`` on the resolved device ``d``: the array itself when it is there already, else a copy."""
    src = of_array(arr)
    if src == d:
        return arr
    if src.type != "cpu":
        arr = module_of(src).asnumpy(arr)
    if d.type == "cpu":
        return arr
    module = module_of(d)
    if d.type == "cuda":
        with module.cuda.Device(d.index):
            return module.asarray(arr)
    return module.asarray(arr)


def is_device_like(obj):
    """Whether a positional argument of ``.to()`` names a device (rather than a dtype)."""
    if isinstance(obj, device):
        return True
    if isinstance(obj, str):
        return obj.partition(":")[0] in _KNOWN_TYPES
    return isinstance(obj, int) and not isinstance(obj, bool)


def set_default_device(spec):
    """Make ``spec`` the device that creation functions use by default (``None`` means the CPU)."""
    global _default
    _default = CPU if spec is None else resolve(spec, "set_default_device")


def get_default_device():
    """The device creation functions use when not told (``device(type='cpu')``)."""
    return _default
