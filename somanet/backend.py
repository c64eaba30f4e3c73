"""The array module behind every op, and somanet's dtype policy.

Op math asks this module which array library its inputs live in (``array_module(x)``) instead of
importing NumPy directly, so that a CuPy backend can be added without rewriting ops. NumPy is the only
backend today.
"""
import numpy as np

# Applied once, when somanet is imported: glibc keeps freed large blocks for reuse instead of returning
# them to the kernel (see _malloc.py; SOMANET_MALLOC_TUNING=0 turns it off).
from ._malloc import malloc_tuned  # noqa: F401

#: The default floating dtype: Python floats and float arrays become float32 unless told otherwise.
default_float = np.dtype(np.float32)
default_int = np.dtype(np.int64)

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

_FLOAT_KINDS = "f"


def array_module(*arrays):
    """Return the array library (module) that the given arrays belong to: NumPy, or CuPy for CuPy arrays.

    Scalars and NumPy arrays give NumPy. Ops call this inside forward and backward instead of using
    NumPy directly, so a CuPy backend needs no change to any op.
    """
    for a in arrays:
        kind = type(a)
        if kind is np.ndarray or kind.__module__ == "numpy" or not hasattr(a, "__array_namespace__"):
            continue
        module = kind.__module__.split(".", 1)[0]
        if module == "cupy":
            import cupy

            return cupy
    return np


def is_floating(dtype):
    return np.dtype(dtype).kind == "f"


def to_dtype(dtype):
    """Normalise a user dtype (somanet/NumPy dtype, Python type or string) to a NumPy dtype."""
    if dtype is None:
        return None
    if dtype is float:
        return default_float
    if dtype is int:
        return default_int
    if dtype is bool:
        return bool_
    try:
        return np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"unknown dtype {dtype!r}; expected a somanet or NumPy dtype such as somanet.float32") from exc


def as_array(data, dtype=None, copy=False):
    """Convert ``data`` to an ndarray with somanet's dtype policy.

    Python floats and float64 sequences become float32 (the default float), Python ints int64 and
    bools bool. An ndarray keeps its dtype unless ``dtype`` is given (as ``torch.as_tensor`` does).
    """
    if isinstance(data, np.ndarray):
        arr = data
        if dtype is not None and arr.dtype != dtype:
            return arr.astype(dtype)
        return arr.copy() if copy else arr
    if isinstance(data, np.generic):
        arr = np.asarray(data)
        if dtype is not None:
            arr = arr.astype(dtype)
        return arr
    arr = np.asarray(data)
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    if arr.dtype.kind == "f" and arr.dtype != default_float:
        arr = arr.astype(default_float)
    elif arr.dtype.kind in "iu" and arr.dtype != default_int and not isinstance(data, np.ndarray):
        arr = arr.astype(default_int)
    elif arr.dtype.kind not in "fiub":
        raise TypeError(f"tensor(): cannot make a tensor from {type(data).__name__} with dtype {arr.dtype}")
    return arr
