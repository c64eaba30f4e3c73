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

This module holds the two node types behind the last two helpers, the tensor-level versions of the
engine's bookkeeping (summing broadcast dimensions, casting), and ``recompute_grad``: the gradient of an
op whose backward is a hand-written loop (a recurrence), found by running its forward again on tensor ops
and differentiating that.
"""
import numpy as np

from .function import Function, _new
from .grad_mode import _state, no_grad
from .tensor import Tensor, _wrap


def graph_tensor(edge, value):
    """The tensor standing for graph ``edge`` (``(node, index)``, ``(leaf, 0)`` or None) with ``value``."""
    if edge is None:
        return _wrap(value, False, None, 0) if isinstance(value, np.ndarray) else value
    target, index = edge
    if isinstance(target, Tensor):
        return target
    return _wrap(value, True, target, index)


def constant(value):
    """An array (or a tensor's values) as a tensor outside the graph."""
    if isinstance(value, Tensor):
        return value
    return _wrap(np.asarray(value), False, None, 0)


def _attach(cls, parents):
    """A node of ``cls`` whose inputs are ``parents`` (tensors or None), or None when nothing needs a gradient."""
    if not _state.enabled:
        return None
    edges, metas, generation, needed = [], [], 0, False
    for p in parents:
        if p is not None and p.requires_grad:
            needed = True
            fn = p.grad_fn
            if fn is None:
                edges.append((p, 0))
            else:
                edges.append((fn, p._out_index))
                if fn.generation >= generation:
                    generation = fn.generation + 1
            metas.append((p.array.shape, p.array.dtype))
        else:
            edges.append(None)
            metas.append(None)
    if not needed:
        return None
    node = _new(cls)
    node.edges, node.metas, node.generation = edges, metas, generation
    return node


def _arrays(results):
    if not isinstance(results, tuple):
        results = (results,)
    return tuple(None if r is None else (r.array if isinstance(r, Tensor) else np.asarray(r)) for r in results)


class Derived(Function):
    """Arrays that an op's forward computed from its inputs, as tensors of the graph (one output each).

    Its backward is the vector-Jacobian product the op declared, a function of tensors, so it is itself
    differentiable; the ordinary array backward runs the same function without recording. The node keeps
    the arrays, not tensors: the product receives its own outputs as fresh tensors, so no reference cycle
    forms through it.
    """

    def _outputs(ctx, record):
        return tuple(_wrap(v, record, ctx if record else None, k) for k, v in enumerate(ctx.values))

    def _call(ctx, grads, record):
        outs = ctx._outputs(record)
        if ctx.single:
            return ctx.vjp(grads[0], outs[0])
        grads = tuple(zeros(v.shape, v.dtype) if g is None else g for g, v in zip(grads, ctx.values))
        return ctx.vjp(grads, outs)

    def backward(ctx, *grads):
        with no_grad():
            wrapped = tuple(None if g is None else _wrap(g, False, None, 0) for g in grads)
            return _arrays(ctx._call(wrapped, False))

    def grad_graph(ctx, *grads):
        out = ctx._call(grads, True)
        return out if isinstance(out, tuple) else (out,)

    @property
    def name(self):
        return f"{self.owner}Derived"


def derived(values, parents, vjp, owner="op"):
    """``values`` (an array, or a tuple of arrays) as tensors depending on ``parents`` (tensors or None).

    ``vjp(grad, value)`` (for a tuple: ``vjp(grads, values)``, with zeros for unused outputs) gets the
    incoming gradient and the derived tensor itself and returns one gradient per parent.
    """
    single = not isinstance(values, tuple)
    arrays = (values,) if single else values
    node = _attach(Derived, parents)
    if node is None:
        outs = tuple(_wrap(v, False, None, 0) for v in arrays)
        return outs[0] if single else outs
    node.vjp, node.owner, node.single = vjp, owner, single
    node.values, node.n_out = arrays, len(arrays)
    outs = tuple(_wrap(v, True, node, k) for k, v in enumerate(arrays))
    return outs[0] if single else outs


class LinearBackward(Function):
    """The input gradients of a linear op as one node of the graph.

    Its values come from the op's own array ``backward`` (the transpose of the op); the transpose of that
    is the op itself, so this node's backward applies the op's forward to the tangents it receives.
    """

    def backward(ctx, *grads):
        with no_grad():
            tangents = [None if g is None else _wrap(g, False, None, 0) for g in grads]
            return _arrays(ctx._select(ctx.forward_fn(*ctx._spread(tangents))))

    def grad_graph(ctx, *grads):
        return ctx._select(ctx.forward_fn(*ctx._spread(list(grads))))

    def _spread(ctx, tangents):
        """Tangents of this node's outputs placed at the op's inputs: zeros for an output nothing used,
        None where the op gave no gradient."""
        full = [None] * ctx.n_inputs
        for k, t, (shape, dtype) in zip(ctx.positions, tangents, ctx.layouts):
            full[k] = zeros(shape, dtype) if t is None else t
        return full

    def _select(ctx, outs):
        """The op's output tangents, kept for this node's parents (the op's incoming gradients)."""
        if not isinstance(outs, tuple):
            outs = (outs,)
        return tuple(outs[k] for k in ctx.parent_positions)

    @property
    def name(self):
        return f"{self.owner}BackwardLinear"


def linear_backward(op, grads, forward_fn):
    """Input gradients of the linear op ``op`` for its output gradients ``grads`` (tensors or None).

    ``forward_fn(*tangents)`` applies the op to tangents of its inputs (None meaning zero) and returns one
    tensor per output of the op; it is what differentiating these gradients needs.
    """
    arrays = [None if g is None else g.array for g in grads]
    results = op.backward(*arrays)
    if not isinstance(results, tuple):
        results = (results,)
    parents = [g for g in grads if g is not None]
    node = _attach(LinearBackward, parents)
    if node is None:
        return tuple(None if r is None else _wrap(np.asarray(r), False, None, 0) for r in results)
    node.forward_fn, node.owner = forward_fn, op.name
    node.n_inputs = len(results)
    node.positions = [k for k, r in enumerate(results) if r is not None]
    node.parent_positions = [k for k, g in enumerate(grads) if g is not None]
    node.layouts = [(np.shape(results[k]), np.asarray(results[k]).dtype) for k in node.positions]
    node.n_out = len(node.positions)
    out = [None] * len(results)
    for j, k in enumerate(node.positions):
        out[k] = _wrap(np.asarray(results[k]), True, node, j)
    return tuple(out)


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


def zeros(shape, dtype):
    return _wrap(np.zeros(shape, dtype), False, None, 0)


def zeros_like(t):
    return _wrap(np.zeros(t.shape, t.dtype), False, None, 0)


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


# --------------------------------------------------------------------------- gradients by recomputation
class GraphAlias(Function):
    """The identity as a node of its own: a fresh tensor standing for one input of an op whose gradient is
    recomputed (see ``recompute_grad``), so the inner gradient stops there and nothing upstream is visited
    twice."""

    def forward(ctx, a):
        return a

    def backward(ctx, grad):
        return grad

    def grad_graph(ctx, grad):
        return grad


def recompute_grad(ctx, values, run, grads):
    """``grad_graph`` of an op whose backward is too involved to write with tensor ops (a recurrence): the
    op's forward runs again as ``run(*inputs)`` on differentiable somanet ops and is differentiated with
    ``create_graph=True``.

    ``values`` holds input ``i``'s array (None for an absent input); inputs on the graph enter ``run`` as
    tensors of the graph (those that need a gradient through a ``GraphAlias``), the others as constants.
    ``run`` returns the op's outputs (a tensor or a tuple), ``grads`` their incoming gradients (None for an
    unused output). Returns one gradient per input.
    """
    from .engine import grad as graph_grad
    from .grad_mode import enable_grad

    inputs, wanted, positions = [], [], []
    edges = ctx.edges
    for i, value in enumerate(values):
        if value is None:
            inputs.append(None)
        elif ctx.graph_needs(i):
            t = GraphAlias.apply(ctx.graph_input(i, value))
            inputs.append(t)
            wanted.append(t)
            positions.append(i)
        else:
            # Still a tensor of the graph when it has an edge: the gradient depends on it even where it
            # asks no gradient for it.
            inputs.append(ctx.graph_input(i, value) if i < len(edges) and edges[i] is not None else constant(value))
    results = [None] * len(values)
    if not wanted:
        return tuple(results)
    with enable_grad():
        outs = run(*inputs)
    if not isinstance(outs, tuple):
        outs = (outs,)
    pairs = [(o, g) for o, g in zip(outs, grads) if g is not None and o.requires_grad]
    if not pairs:
        return tuple(results)
    found = graph_grad([o for o, _ in pairs], wanted, [g for _, g in pairs], create_graph=True, allow_unused=True)
    for i, g in zip(positions, found):
        results[i] = g
    return tuple(results)
