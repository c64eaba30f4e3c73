"""Shape ops: reshape, view, permute, cat, stack, pad, ... and dtype casts."""
import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ._util import install

__all__ = ["to_dtype"]


class Cast(Function):
    def forward(ctx, a, dtype):
        ctx.src = a.dtype
        return a.astype(dtype)

    def backward(ctx, grad):
        return grad.astype(ctx.src) if ctx.src.kind == "f" else None


def to_dtype(input, dtype):
    """``input`` converted to ``dtype`` (differentiable between float dtypes)."""
    dtype = backend.to_dtype(dtype)
    if input.data.dtype == dtype:
        return input
    if dtype.kind != "f" and input.requires_grad:
        from ..autograd import grad_mode

        with grad_mode.no_grad():
            return Cast.apply(input, dtype)
    return Cast.apply(input, dtype)


def _to(self, *args, dtype=None, device=None, copy=False, non_blocking=False):
    for a in args:
        if isinstance(a, str):
            if a not in ("cpu",):
                raise RuntimeError(f"to(): device {a!r} is not available; somanet runs on 'cpu'")
        elif isinstance(a, Tensor):
            dtype = a.dtype
        else:
            dtype = a
    if dtype is None:
        return self.clone() if copy else self
    out = to_dtype(self, dtype)
    if copy and out is self:
        return self.clone()
    return out


install(
    to=_to, type=lambda self, dtype=None: str(self.dtype) if dtype is None else to_dtype(self, dtype),
    float=lambda self: to_dtype(self, np.float32), double=lambda self: to_dtype(self, np.float64),
    half=lambda self: to_dtype(self, np.float16), long=lambda self: to_dtype(self, np.int64),
    int=lambda self: to_dtype(self, np.int32), bool=lambda self: to_dtype(self, np.bool_),
    cpu=lambda self: self,
)
