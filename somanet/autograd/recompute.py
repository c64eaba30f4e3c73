"""Second derivatives by recomputation: ``recompute_grad`` differentiates an op by running its forward
again on differentiable tensor ops (for ops whose backward is too involved to write with tensor ops,
such as the recurrences of RNN/LSTM/GRU and LocalResponseNorm).

It sits above the engine, which it calls (``engine.grad(..., create_graph=True)``); the engine and the
graph helpers in ``function`` and ``higher_order`` do not import it.
"""
from .engine import grad as graph_grad
from .function import Function, constant
from .grad_mode import enable_grad

__all__ = ["GraphAlias", "recompute_grad"]


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
