"""The array module behind every op, and somanet's dtype policy.

Op math asks this module which array library its inputs live in (``array_module(x)``) instead of
importing NumPy directly, so that CuPy (device 'cuda') and other registered devices need no change to
the ops (see ``somanet.devices``).
"""
import os
import sys

import numpy as np

from . import _process, devices
from ._process import BLAS_THREAD_TIMEOUT  # noqa: F401  - the value configure_process sets


def __getattr__(name):
    if name == "malloc_tuned":  # whether configure_process tuned malloc (see somanet._process)
        return _process.malloc_tuned()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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

    Scalars and NumPy arrays give NumPy, an array of a registered device its module (see
    ``somanet.devices``). Ops call this inside forward and backward instead of using NumPy directly, so
    a device backend needs no change to any op.
    """
    for a in arrays:
        kind = type(a)
        if kind is np.ndarray:
            continue
        name = devices._array_types.get(kind)
        if name is not None:
            return devices._modules[name][0]
        if kind.__module__.partition(".")[0] == "cupy" and hasattr(a, "__array_namespace__"):
            import cupy

            return cupy
    return np


def is_floating(dtype):
    return np.dtype(dtype).kind == "f"


def autocasting():
    """Whether an autocast region (``somanet.amp``) is active in this thread. Its ops take inputs of mixed
    float dtypes and cast them themselves, so checks that inputs and parameters share a dtype stand aside."""
    amp = sys.modules.get("somanet.amp.autocast_mode")
    return amp is not None and amp.is_autocast_enabled()


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
    if type(data) in devices._array_types:  # a device's array stays on its device
        if dtype is not None and data.dtype != dtype:
            return data.astype(dtype)
        return data.copy() if copy else data
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


# --------------------------------------------------------------------------- type promotion
# PyTorch's rules, which every op combining dtypes (arithmetic, comparisons, where, maximum, clamp with
# tensor bounds, pow) follows through ``result_type``:
#
# * Two dtypes promote as in ``torch.promote_types``: within a category (bool < integer < floating) to
#   the wider type, across categories to the higher category's type. That is NumPy's table except that a
#   float never widens because of an integer (NumPy makes int64 + float32 float64, PyTorch float32).
# * Operands are ranked: tensors with dimensions, then 0-d tensors, then Python scalars (bool, int,
#   float; a Python float counts as the default float dtype). A lower rank changes the result only when
#   it brings a higher category: int32 + 0-d int64 stays int32, uint8 + 300 stays uint8 (the 300 wraps
#   to 44, as in PyTorch), float16 + 0-d float64 stays float16, but int32 + 0-d float64 is float64 and
#   int32 + 1.5 is float32.
_INT_BOUNDS = {np.dtype(t): (int(np.iinfo(t).min), int(np.iinfo(t).max))
               for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)}


def promote_types(a, b):
    """The dtype two NumPy dtypes promote to, as ``torch.promote_types``."""
    if a == b:
        return a
    if a.kind == "f":
        if b.kind != "f":
            return a
    elif b.kind == "f":
        return b
    return np.promote_types(a, b)


def _combine(higher, lower):
    """The result of a higher-ranked group of operands (dtype ``higher``) meeting a lower-ranked one."""
    if higher is None:
        return lower
    if lower is None or higher.kind == "f":
        return higher
    if higher.kind == "b" or lower.kind == "f":
        return promote_types(higher, lower)
    return higher


def _scalar_dtype(x):
    """The dtype a Python (or NumPy) scalar takes part in promotion as: bool, int64 or the default float."""
    if isinstance(x, (bool, np.bool_)):
        return bool_
    if isinstance(x, (int, np.integer)):
        return int64
    if isinstance(x, (float, np.floating)):
        return default_float
    raise TypeError(f"result_type(): expected arrays, tensors or Python bool/int/float scalars, got "
                    f"{type(x).__name__}")


def result_type(*operands):
    """The dtype PyTorch gives an op combining ``operands`` (like ``torch.result_type``).

    Operands are arrays or tensors (anything with ``dtype`` and ``ndim``) and Python scalars. See the
    rules above.
    """
    dim = zero = wrapped = None
    for x in operands:
        dtype = getattr(x, "dtype", None)
        if dtype is None or isinstance(x, np.generic):
            d = _scalar_dtype(x)
            wrapped = d if wrapped is None else promote_types(wrapped, d)
        elif x.ndim:
            dim = dtype if dim is None else promote_types(dim, dtype)
        else:
            zero = dtype if zero is None else promote_types(zero, dtype)
    return _combine(dim, _combine(zero, wrapped))


def scalar_operand(value, dtype, op="op"):
    """A Python scalar to combine with arrays of ``dtype`` so that NumPy computes in ``dtype``.

    NumPy treats Python scalars as weakly typed, which is PyTorch's rule too, except that NumPy refuses
    an integer outside the range of an integer dtype: such a value is wrapped into the dtype (as PyTorch
    does: ``uint8 + 300`` adds 44) and returned as a 0-d array of ``dtype``.
    """
    if type(value) is int:
        bounds = _INT_BOUNDS.get(dtype)
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            if not -(1 << 63) <= value < (1 << 64):
                raise RuntimeError(f"{op}(): the Python int {value} does not fit in 64 bits")
            return np.asarray(value & ((1 << 64) - 1), dtype=np.uint64).astype(dtype)
    return value


# --------------------------------------------------------------------------- threads
# How many threads somanet's heavy ops use, and the BLAS libraries that count reaches. The batch split
# that uses the threads lives in ``somanet.kernels.threads``.
_num_threads = None
_blas_libs = None


def _default_threads():
    for name in ("SOMANET_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def get_num_threads():
    """The number of threads somanet's heavy ops use (like ``torch.get_num_threads``).

    Defaults to ``SOMANET_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the CPUs this process may run on.
    """
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_threads()
    return _num_threads


def set_num_threads(num_threads):
    """Set the number of threads for somanet's heavy ops and for NumPy's BLAS (``torch.set_num_threads``).

    The BLAS part needs ``threadpoolctl`` (installed with scikit-learn); without it only somanet's own
    threads change. Example: ``somanet.set_num_threads(1)`` for single-threaded timings.
    """
    global _num_threads
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ValueError(f"set_num_threads(): expected a positive int, got {num_threads!r}")
    _num_threads = int(num_threads)
    for lib in _blas():
        lib.set_num_threads(_num_threads)


def refresh_blas_libraries():
    """Find BLAS libraries loaded since the first look (Numba's compiler loads SciPy's), so that
    ``set_num_threads`` and ``kernels.threads.one_blas_thread`` reach them too; a new one gets somanet's
    thread count."""
    global _blas_libs
    known = {lib.filepath for lib in _blas_libs or ()}
    _blas_libs = None
    for lib in _blas():
        if lib.filepath not in known and _num_threads is not None:
            lib.set_num_threads(_num_threads)


def _blas():
    """threadpoolctl's controllers of the loaded BLAS libraries (empty without threadpoolctl)."""
    global _blas_libs
    if _blas_libs is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas_libs = []
        else:
            _blas_libs = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    return _blas_libs
