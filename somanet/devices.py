"""Devices as PyTorch names them: ``somanet.device("cpu")``, ``device("cuda", 0)``, ``"cuda:1"``.

somanet computes on the CPU. Device-aware PyTorch code (``x.to(device)``, ``model.cuda()`` behind a
``cuda.is_available()`` check, ``device=`` on creation functions) runs unchanged on it: the CPU is always
there, and asking for a device that is not gives an error that names it and what is available.
"""

#: Device types PyTorch knows; a string naming any other type is a malformed device.
_KNOWN_TYPES = ("cpu", "cuda", "mps", "xpu", "meta", "hip", "xla", "ipu", "hpu", "mtia", "privateuseone")
#: Device types somanet can compute on.
AVAILABLE = ("cpu",)


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


def resolve(spec, op="to"):
    """The device a ``device=`` argument names, checked to be available (``None`` means the default)."""
    if spec is None:
        return _default
    d = spec if isinstance(spec, device) else device(spec)
    if d.type not in AVAILABLE:
        hint = " (somanet.cuda.is_available() is False: there is no GPU backend in this install)" \
            if d.type == "cuda" else ""
        raise RuntimeError(f"{op}(): device '{d}' is not available{hint}; available devices: "
                           f"{', '.join(AVAILABLE)}")
    if d.type == "cpu" and d.index not in (None, 0):
        raise RuntimeError(f"{op}(): device '{d}' does not exist; the CPU is device 'cpu' (or 'cpu:0')")
    return CPU


def is_device_like(obj):
    """Whether a positional argument of ``.to()`` names a device (rather than a dtype)."""
    if isinstance(obj, device):
        return True
    if isinstance(obj, str):
        return obj.partition(":")[0] in _KNOWN_TYPES
    return isinstance(obj, int) and not isinstance(obj, bool)


def set_default_device(spec):
    """Make ``spec`` the device that creation functions use by default (only 'cpu' exists here)."""
    global _default
    _default = CPU if spec is None else resolve(spec, "set_default_device")


def get_default_device():
    """The device creation functions use when not told (``device(type='cpu')``)."""
    return _default
