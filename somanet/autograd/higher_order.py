"""Differentiable gradients: the pieces ``backward(create_graph=True)`` builds its gradient graph from.

The ordinary backward pass runs every node's ``backward`` on raw arrays. With ``create_graph=True`` the
engine runs a second, slower pass (``engine._backward_graph``) in which gradients are tensors and every
node's gradient comes from its ``grad_graph(ctx, *grads)``: the same formula as its ``backward``, written
with differentiable somanet ops, so that the ops it runs are recorded and the gradient can be
differentiated again. A node's inputs and saved values enter that formula as tensors connected to the
original graph:

* ``ctx.graph_input(i, value)``: input ``i`` (its ``value`` is the array the op saved for it). A leaf is
  returned as itself; an intermediate tensor as a new tensor on the same graph edge.
* ``ctx.graph_output(value, k)``: output ``k`` of the node itself (ops that saved their result).
* ``ctx.graph_derived(value, parents, vjp)``: an array the forward computed from its inputs and saved
  (a softmax, a normalised input), tied to ``parents`` by its vector-Jacobian product ``vjp``.
* ``ctx.graph_linear(grads, forward)``: for an op that is linear in its inputs (reshape, index, pad,
  pooling by averaging, ...), its input gradients computed by its own array ``backward`` and recorded as
  one node whose backward applies the op itself, ``forward``, to the incoming tangents.

This module holds the tensor-level versions of the engine's bookkeeping (summing broadcast dimensions,
casting) and the ``grad_graph`` helpers of reductions and normalisations. The two node types behind
``graph_derived`` and ``graph_linear`` (``Derived``, ``LinearBackward``) and the small helpers
(``graph_tensor``, ``constant``, ``zeros``) live in ``function``, below ``Function``'s methods that use
them, and are re-exported here for the ops. ``recompute_grad`` (the gradient of an op whose backward is
a hand-written loop, found by running its forward again on tensor ops) is in ``recompute``, above the
engine it calls.
"""
# Re-exported for the ops' grad_graph methods.
from .function import (Derived, LinearBackward, constant, derived, graph_tensor, linear_backward,  # noqa: F401
                       zeros, zeros_like)

__all__ = ["Derived", "LinearBackward", "constant", "derived", "graph_tensor", "linear_backward", "zeros",
           "zeros_like", "sum_to_shape", "cast", "keep_all", "unreduce", "softmax_graph", "normalized_graph",
           "rms_graph"]


# --------------------------------------------------------------------------- engine bookkeeping on tensors
def sum_to_shape(grad, shape):
    """``grad`` (a tensor) summed over the dimensions broadcasting added or stretched to reach ``shape``."""
    if grad.shape == shape:
        return grad
    from ..ops.reduce import sum as sum_
    from ..ops.shape import reshape

    lead = grad.ndim - len(shape)
    if lead < 0:
        return reshape(grad, shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and grad.shape[i + lead] != 1)
    if axes:
        grad = sum_(grad, axes, keepdim=True)
    if grad.shape != shape:
        grad = reshape(grad, shape)
    return grad


def cast(grad, dtype):
    from ..ops.shape import to_dtype

    return to_dtype(grad, dtype)


# --------------------------------------------------------------------------- helpers for ops' grad_graph
def keep_all(t, ndim):
    """A full reduction's result (a 0-d tensor) reshaped to ``ndim`` dimensions of size 1."""
    from ..ops.shape import reshape

    return reshape(t, (1,) * ndim)


def unreduce(grad, shape, dims, keepdim, ndim=None):
    """The gradient ``grad`` of a reduction over ``dims`` (None: all) given back its reduced dimensions as
    size 1, and broadcast to ``shape`` when given (else ``ndim`` is the input's number of dimensions)."""
    from ..ops.shape import broadcast_to, reshape

    ndim = len(shape) if shape is not None else ndim
    if dims is None:
        if grad.ndim != ndim:
            grad = reshape(grad, (1,) * ndim)
    elif not keepdim:
        sizes = list(grad.shape)
        for d in dims:
            sizes.insert(d, 1)
        grad = reshape(grad, tuple(sizes))
    return grad if shape is None else broadcast_to(grad, shape)


def softmax_graph(ctx, p, axis, input_shape):
    """The saved probabilities ``p``, a softmax of ``ctx``'s input 0 along ``axis`` (``p`` may be a reshaped
    view of it), as a tensor of the graph."""
    from ..ops.reduce import sum as sum_
    from ..ops.shape import reshape

    def vjp(g, p_t):
        return (reshape(p_t * (g - sum_(p_t * g, axis, keepdim=True)), input_shape),)

    return ctx.graph_derived(p, [ctx.graph_parent(0)], vjp)


def normalized_graph(ctx, xhat, invstd, axes, input_shape):
    """LayerNorm-style saved values as tensors of the graph: ``xhat = (x - mean(x)) * invstd`` and
    ``invstd = 1 / sqrt(var(x) + eps)``, statistics over ``axes`` of a view of input 0 (``invstd`` keeps
    or drops those axes; it is reshaped to broadcast against ``xhat``)."""
    from ..ops.reduce import mean
    from ..ops.shape import reshape

    kept = tuple(1 if i in axes else n for i, n in enumerate(xhat.shape))
    parent = ctx.graph_parent(0)
    count = 1
    for i in axes:
        count *= xhat.shape[i]

    def vjp(grads, outs):
        g_xhat, g_inv = grads
        xhat_t, s = outs[0], reshape(outs[1], kept)
        # d xhat = s (dx - mean(dx) - xhat mean(xhat dx)) and d invstd = -s^2 mean(xhat dx), both symmetric.
        g = s * (g_xhat - mean(g_xhat, axes, keepdim=True) - xhat_t * mean(g_xhat * xhat_t, axes, keepdim=True))
        g = g - reshape(g_inv, kept) * s * s * xhat_t * (1.0 / count)
        return (reshape(g, input_shape),)

    xhat_t, invstd_t = ctx.graph_derived((xhat, invstd), [parent], vjp)
    return xhat_t, reshape(invstd_t, kept)


def rms_graph(ctx, y, rinv, axes, input_shape):
    """RMSNorm's saved values as tensors of the graph: ``y = x * rinv`` and ``rinv = 1 / sqrt(mean(x^2) + eps)``
    over ``axes`` of a view of input 0."""
    from ..ops.reduce import mean
    from ..ops.shape import reshape

    kept = tuple(1 if i in axes else n for i, n in enumerate(y.shape))
    parent = ctx.graph_parent(0)
    count = 1
    for i in axes:
        count *= y.shape[i]

    def vjp(grads, outs):
        g_y, g_r = grads
        y_t, s = outs[0], reshape(outs[1], kept)
        # d y = s (dx - y mean(y dx)) and d rinv = -s^2 mean(y dx), both symmetric.
        g = s * (g_y - y_t * mean(g_y * y_t, axes, keepdim=True)) - reshape(g_r, kept) * s * s * y_t * (1.0 / count)
        return (reshape(g, input_shape),)

    y_t, rinv_t = ctx.graph_derived((y, rinv), [parent], vjp)
    return y_t, reshape(rinv_t, kept)
