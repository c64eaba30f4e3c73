"""``Function``: one differentiable op, with its forward and backward on raw arrays side by side.

A subclass writes::

    class Mul(Function):
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        def backward(ctx, grad):
            a, b = ctx.saved
            return grad * b, grad * a

``Mul.apply(x, y)`` unwraps tensors to arrays, runs ``forward`` and, when grad mode is on and an input
requires grad, records the call as a node of the graph. ``backward`` returns one gradient per input
(``None`` where there is none); gradients may keep broadcast dimensions, the engine sums them away.
The node is the ``ctx``: parameters needed by backward are plain attributes, arrays go through
``save_for_backward`` so the engine can free them after use.
"""
from numpy import asarray, ndarray

from .grad_mode import _state
from .tensor import Tensor, _wrap

_new = object.__new__

_FREED = "freed"


class Function:
    #: False for ops whose outputs never carry gradient (comparisons, argmax, integer results).
    differentiable = True
    #: True for ops whose output may be a view of input 0; views share its version counter.
    is_view = False

    saved = ()
    version_checks = None
    out_hooks = None

    def save_for_backward(ctx, *arrays):
        ctx.saved = arrays

    def needs(ctx, i):
        """Whether input ``i`` needs a gradient (lets backward skip work nobody will use)."""
        edges = ctx.edges
        return i < len(edges) and edges[i] is not None

    def forward(ctx, *arrays, **params):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(ctx, grad):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(ctx).__name__} has no backward")

    @classmethod
    def apply(cls, *inputs, **params):
        # This is the hottest path of the framework: every op of every step goes through it once, so it
        # is written as flat loops over the inputs with no helper calls.
        arrays = []
        append = arrays.append
        need_grad = False
        for x in inputs:
            if isinstance(x, Tensor):
                append(x.array)
                if x.requires_grad:
                    need_grad = True
            else:
                append(x)
        ctx = _new(cls)
        out = ctx.forward(*arrays, **params)
        # NumPy turns 0-d results into scalars; a Tensor always holds an ndarray.
        if type(out) is not ndarray:
            out = tuple(o if type(o) is ndarray else asarray(o) for o in out) if type(out) is tuple else asarray(out)
        if not need_grad or not _state.enabled or not cls.differentiable:
            version = inputs[0]._version if cls.is_view else None
            if type(out) is tuple:
                return tuple(_wrap(o, False, None, 0, version) for o in out)
            return _wrap(out, False, None, 0, version)

        generation = 0
        edges = []
        metas = []
        saved = ctx.saved
        checks = None
        for x in inputs:
            if isinstance(x, Tensor):
                data = x.array
                if x.requires_grad:
                    fn = x.grad_fn
                    if fn is None:
                        edges.append((x, 0))
                    else:
                        edges.append((fn, x._out_index))
                        if fn.generation >= generation:
                            generation = fn.generation + 1
                    metas.append((data.shape, data.dtype))
                else:
                    edges.append(None)
                    metas.append(None)
                if saved:
                    for s in saved:
                        if s is data:
                            if checks is None:
                                checks = []
                            checks.append((x._version, x._version[0]))
                            break
            else:
                edges.append(None)
                metas.append(None)
        ctx.generation = generation
        ctx.edges = edges
        ctx.metas = metas
        version = inputs[0]._version if cls.is_view else None
        if type(out) is tuple:
            ctx.n_out = len(out)
            outs = tuple(_wrap(o, True, ctx, i, version) for i, o in enumerate(out))
            if saved:
                for o in outs:
                    for s in saved:
                        if o.array is s:
                            if checks is None:
                                checks = []
                            checks.append((o._version, o._version[0]))
            ctx.version_checks = checks
            return outs
        ctx.n_out = 1
        t = _new(Tensor)
        t.array = out
        t.grad = None
        t.requires_grad = True
        t.grad_fn = ctx
        t._out_index = 0
        t._version = [0] if version is None else version
        t._hooks = None
        t._retains = False
        if saved:
            for s in saved:
                if s is out:
                    if checks is None:
                        checks = []
                    checks.append((t._version, t._version[0]))
                    break
        ctx.version_checks = checks
        return t

    def __repr__(self):
        return f"<{type(self).__name__}Backward>"

    @property
    def name(self):
        return type(self).__name__
