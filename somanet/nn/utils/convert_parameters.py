"""Flatten parameters into one vector and back (``parameters_to_vector`` / ``vector_to_parameters``)."""
import numpy as np

from ...autograd.function import Function
from ...autograd.tensor import Tensor
from ...backend import array_module

__all__ = ["parameters_to_vector", "vector_to_parameters"]


class _FlattenCat(Function):
    """Concatenate the flattened inputs in one node; backward splits the gradient back into shapes."""

    def forward(ctx, *arrays):
        ctx.shapes = [a.shape for a in arrays]
        ctx.dtypes = [a.dtype for a in arrays]
        xp = array_module(*arrays)
        dtype = np.result_type(*ctx.dtypes)
        return xp.concatenate([a.reshape(-1) for a in arrays]).astype(dtype, copy=False)

    def backward(ctx, grad):
        grads = []
        start = 0
        for shape, dtype in zip(ctx.shapes, ctx.dtypes):
            n = int(np.prod(shape, dtype=np.int64))
            grads.append(grad[start:start + n].reshape(shape).astype(dtype, copy=False))
            start += n
        return tuple(grads)

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda *parts: _FlattenCat.apply(*parts))


def parameters_to_vector(parameters):
    """Flatten and concatenate ``parameters`` into one 1-D tensor (differentiable).

    Example::

        vec = somanet.nn.utils.parameters_to_vector(model.parameters())   # shape (num_params,)
    """
    params = list(parameters) if not isinstance(parameters, Tensor) else [parameters]
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"parameters_to_vector(): expected Tensors, got an element of type {type(p).__name__}")
    if not params:
        raise RuntimeError("parameters_to_vector(): expected a non-empty iterable of Tensors, got none")
    return _FlattenCat.apply(*params)


def vector_to_parameters(vec, parameters):
    """Copy slices of the 1-D tensor ``vec`` into ``parameters``, in order.

    As in PyTorch, each parameter's ``data`` becomes a view of ``vec``'s memory (no copy).

    Example::

        somanet.nn.utils.vector_to_parameters(vec, model.parameters())
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters(): expected somanet.Tensor, but got: {type(vec).__name__}")
    if vec.array.ndim != 1:
        raise ValueError(f"vector_to_parameters(): vec must be 1-D, got shape {tuple(vec.array.shape)}")
    params = list(parameters) if not isinstance(parameters, Tensor) else [parameters]
    needed = 0
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"vector_to_parameters(): expected Tensors, got an element of type {type(p).__name__}")
        needed += p.array.size
    if needed > vec.array.size:
        raise ValueError(f"vector_to_parameters(): vec has {vec.array.size} elements, but the parameters need "
                         f"{needed}")
    pointer = 0
    data = vec.array
    for p in params:
        n = p.array.size
        p.array = data[pointer:pointer + n].reshape(p.array.shape)
        pointer += n
