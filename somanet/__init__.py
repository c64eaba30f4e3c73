"""somanet: a deep learning framework in Python on NumPy, with its own tensors and autograd.

>>> import somanet
>>> x = somanet.tensor([1.0, 2.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad
tensor([2., 4.])
"""
from ._process import configure_process as _configure_process
_configure_process()  # the process-wide settings, before NumPy loads (see somanet._process)
from .backend import (float16, float32, float64, int8, int16, int32, int64, uint8, bool_)
from .backend import bool_ as bool  # noqa: A001  - PyTorch spells it somanet.bool
from .backend import get_num_threads, set_num_threads
from . import backend
from .autograd import (Tensor, Function, no_grad, enable_grad, set_grad_enabled, inference_mode,
                       is_grad_enabled)
from . import autograd
from .random import Generator, manual_seed, seed, initial_seed, get_rng_state, set_rng_state
from .devices import device, set_default_device, get_default_device
from . import ops
from .ops.creation import *  # noqa: F401,F403
from .ops.elementwise import *  # noqa: F401,F403
from .ops.reduce import *  # noqa: F401,F403
from .ops.shape import *  # noqa: F401,F403
from .ops.index import *  # noqa: F401,F403
from .ops.linalg import *  # noqa: F401,F403
from .ops.pointwise import *  # noqa: F401,F403
from .ops.matrix import *  # noqa: F401,F403
from .ops.statistics import *  # noqa: F401,F403
from .ops.layout import *  # noqa: F401,F403
from .ops.tensor_api import *  # noqa: F401,F403
from .ops.sparse import sparse_coo_tensor, spmm, mm, matmul, strided, sparse_coo  # noqa: F401

half = float16
float = float32  # noqa: A001
double = float64
long = int64
int = int32  # noqa: A001

__version__ = "0.1.0"


def save(obj, f):
    """Save tensors, state dicts and containers of them in PyTorch's format (see ``somanet.serialization``)."""
    from .serialization import save as _save

    return _save(obj, f)


def load(f, map_location=None, *, weights_only=True):
    """Load a file written by ``somanet.save`` or ``torch.save`` without running any code from it."""
    from .serialization import load as _load

    return _load(f, map_location=map_location, weights_only=weights_only)


def set_default_dtype(d):
    """Make ``d`` (float32 or float64; float16 too) the dtype of Python floats and float creation functions."""
    d = backend.to_dtype(d)
    if d.kind != "f":
        raise TypeError(f"set_default_dtype(): only floating point dtypes are supported, got {d}")
    backend.default_float = d


def get_default_dtype():
    """The dtype Python floats and float creation functions take (float32 unless changed)."""
    return backend.default_float


# Submodules that PyTorch makes attributes of ``torch``: imported on first use, so ``import somanet`` stays
# fast (``import somanet.nn`` works as usual too).
_LAZY_SUBMODULES = frozenset({
    "nn", "optim", "utils", "data", "distributions", "onnx", "backends", "cuda", "accelerator", "vision", "train",
    "models", "func", "amp", "distributed", "special", "linalg", "fft", "testing", "serialization", "sparse",
    "cpu", "rl", "interpret",
})


# PyTorch functions somanet does not provide: each name resolves to a function that raises
# NotImplementedError when called, so a program fails where it uses one, with a message naming it.
_UNIMPLEMENTED = frozenset({
    "stft", "istft", "view_as_real", "view_as_complex", "polar", "complex", "lu", "lu_solve", "lu_unpack",
    "svd_lowrank", "pca_lowrank", "lobpcg", "vmap", "quantize_per_tensor", "dequantize", "from_dlpack",
    "sparse_csr_tensor", "sparse_csc_tensor", "geqrf", "ormqr", "histogramdd", "nonzero_static",
})


def _refused(name):
    def refused(*args, **kwargs):
        raise NotImplementedError(f"somanet does not implement torch.{name} yet")

    refused.__name__ = refused.__qualname__ = name
    refused.__doc__ = f"Not implemented in somanet: calling it raises NotImplementedError (PyTorch's torch.{name})."
    return refused


def __getattr__(name):
    if name in _UNIMPLEMENTED:
        return _refused(name)
    if name in _LAZY_SUBMODULES:
        import importlib

        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"somanet.{name} is not implemented yet (PyTorch's torch.{name})") from None
    if name == "bfloat16":
        # A dtype object that NumPy reads as ml_dtypes' bfloat16 and somanet counts as floating (see somanet.amp).
        from .amp._lowp import load_bfloat16

        dtype = load_bfloat16()
        if dtype is None:
            raise AttributeError("somanet.bfloat16 needs the ml_dtypes package: pip install 'somanet[bf16]'")
        return dtype
    if name in _AMP_NAMES:
        from . import amp

        return getattr(amp, name)
    raise AttributeError(f"module 'somanet' has no attribute '{name}'")


# PyTorch's top-level autocast names, from somanet.amp (imported on first use).
_AMP_NAMES = frozenset({"autocast", "is_autocast_enabled", "get_autocast_dtype", "is_autocast_available",
                        "clear_autocast_cache"})


def __dir__():
    return sorted(set(globals()) | _LAZY_SUBMODULES | _AMP_NAMES | {"bfloat16"})
