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

PyTorch's way works too: a subclass whose ``forward`` and ``backward`` are ``@staticmethod``s gets tensors
(not arrays), uses ``ctx.save_for_backward``/``ctx.saved_tensors``, ``ctx.needs_input_grad`` and
``ctx.mark_non_differentiable``, and is called as ``F.apply(...)``, exactly as in PyTorch.
"""
from numpy import asarray, ndarray

from .. import devices
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

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("forward"), staticmethod):
            _init_tensor_function(cls)

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
        try:
            out = ctx.forward(*arrays, **params)
        except (TypeError, ValueError) as exc:
            _check_one_device(cls, inputs, exc)
            raise
        # NumPy turns 0-d results into scalars; a Tensor always holds an ndarray (or a device's array).
        if type(out) is not ndarray:
            out = tuple(_as_array(o) for o in out) if type(out) is tuple else _as_array(out)
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

    # ----------------------------------------------------------------- differentiable gradients
    # backward(create_graph=True) calls ``grad_graph`` instead of ``backward`` (see higher_order.py): the
    # same gradient, computed from tensors with differentiable ops. Nothing below runs otherwise.
    graph_mask = None

    def grad_graph(ctx, *grads):
        """The input gradients as tensors recorded in the graph, for output gradients ``grads`` (tensors,
        None for an unused output). An op defines it next to its ``backward``; without it the op cannot
        take part in higher-order gradients."""
        raise RuntimeError(f"create_graph=True: {ctx.name}'s backward is not differentiable in somanet yet")

    def graph_needs(ctx, i):
        """Whether input ``i`` needs a gradient in this ``grad_graph`` call (``needs`` for the graph pass)."""
        mask = ctx.graph_mask
        return ctx.needs(i) if mask is None else mask[i]

    def graph_input(ctx, i, value):
        """Input ``i`` as a tensor of the graph; ``value`` is its array (as saved by forward)."""
        from .higher_order import graph_tensor

        edges = ctx.edges
        return graph_tensor(edges[i] if i < len(edges) else None, value)

    def graph_parent(ctx, i):
        """Input ``i`` as a tensor of the graph when forward did not save its values (for ``graph_derived``),
        or None when it needs no gradient. Its values are a stand-in: only its place in the graph is real."""
        edges = ctx.edges
        edge = edges[i] if i < len(edges) else None
        if edge is None:
            return None
        target, index = edge
        if isinstance(target, Tensor):
            return target
        from numpy import broadcast_to, zeros

        shape, dtype = ctx.metas[i]
        return _wrap(broadcast_to(zeros((), dtype), shape), True, target, index)

    def graph_output(ctx, value, k=0):
        """Output ``k`` of this node (its array ``value``, as saved by forward) as a tensor of the graph."""
        return _wrap(value, True, ctx, k)

    def graph_derived(ctx, value, parents, vjp):
        """An array forward computed from inputs and saved (or a tuple of them), as a tensor of the graph
        depending on ``parents`` (graph tensors or None) through ``vjp(grad, value_tensor) -> one gradient
        per parent``, written with tensor ops (for a tuple: ``vjp(grads, value_tensors)``)."""
        from .higher_order import derived

        return derived(value, parents, vjp, ctx.name)

    def graph_linear(ctx, grads, forward):
        """``grad_graph`` of an op linear in its inputs: its array ``backward`` on ``grads``, recorded as a
        node whose own backward is ``forward(*tangents) -> output tangents`` (the op applied to tensors,
        None for a zero tangent)."""
        from .higher_order import linear_backward

        return linear_backward(ctx, grads, forward)


# --------------------------------------------------------------------------- PyTorch-style Functions
def _as_array(x):
    return x if type(x) is ndarray or type(x) in devices._array_types else asarray(x)


def _check_one_device(cls, inputs, exc):
    """Raise PyTorch's error when an op failed because its tensors are on different devices."""
    found = []
    for x in inputs:
        if isinstance(x, Tensor):
            d = devices.of_array(x.array)
            if d not in found:
                found.append(d)
    if len(found) > 1:
        op = cls.__name__.lower()
        raise RuntimeError(f"{op}(): expected all tensors to be on the same device, but found at least two "
                           f"devices, {found[0]} and {found[1]}; move them with .to(device)") from exc


class _TensorFunctionNode(Function):
    """The graph node (and ``ctx``) of one call of a PyTorch-style ``Function`` subclass.

    PyTorch users write ``forward`` and ``backward`` as static methods on tensors; this node stores what
    ``ctx`` is given, and when the engine reaches it, hands the output gradients to the user's
    ``backward`` as tensors and passes the returned tensors on as arrays.
    """

    materialize_grads = True
    output_slots = None

    def save_for_backward(ctx, *tensors):
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"{ctx.name}: save_for_backward() takes tensors (or None), got {type(t).__name__}")
        ctx.saved = tensors

    @property
    def saved_tensors(ctx):
        if ctx.saved is _FREED:
            raise RuntimeError(f"{ctx.name}: the saved tensors were freed after the first backward; pass "
                               f"retain_graph=True to backward() to run it twice")
        return ctx.saved

    def mark_non_differentiable(ctx, *tensors):
        ctx.non_differentiable = {id(t) for t in tensors}

    def mark_dirty(ctx, *tensors):
        ctx.dirty = {id(t) for t in tensors}

    def set_materialize_grads(ctx, value):
        ctx.materialize_grads = bool(value)

    @property
    def name(self):
        return f"{self.fn_cls.__name__}Backward"

    def backward(ctx, *grads):
        from .grad_mode import no_grad

        wrapped = []
        for g, (shape, dtype) in zip(grads, ctx.out_metas):
            if g is None and ctx.materialize_grads:
                from numpy import zeros

                g = zeros(shape, dtype)
            wrapped.append(None if g is None else _wrap(g, False, None, 0))
        with no_grad():
            result = ctx.fn_cls.backward(ctx, *wrapped)
        # PyTorch allows extra trailing Nones (for arguments that were not tensors).
        result = ctx._results(result)
        out = []
        for i, (r, meta) in enumerate(zip(result, ctx.metas)):
            if r is None or meta is None:
                out.append(None)
                continue
            arr = r.array if isinstance(r, Tensor) else asarray(r)
            ctx._check_shape(i, arr.shape, meta[0])
            out.append(arr)
        return tuple(out)

    def _check_shape(ctx, i, shape, expected):
        if shape != expected:
            try:
                from numpy import broadcast_shapes

                ok = broadcast_shapes(expected, shape) == shape
            except ValueError:
                ok = False
            if not ok:
                raise RuntimeError(f"function {ctx.name} returned an invalid gradient at index {i}: got shape "
                                   f"{tuple(shape)} but expected a shape compatible with {tuple(expected)}")

    def _results(ctx, result):
        if not isinstance(result, tuple):
            result = (result,)
        n_inputs = len(ctx.edges)
        if len(result) > n_inputs and all(r is None for r in result[n_inputs:]):
            result = result[:n_inputs]
        if len(result) != n_inputs:
            raise RuntimeError(f"function {ctx.name} returned an incorrect number of gradients (expected "
                               f"{n_inputs}, got {len(result)})")
        return result

    def grad_graph(ctx, *grads):
        """create_graph=True: the user's backward already computes on tensors, so it runs with grad mode on.
        Outputs the user saved stand for this node's outputs, so that their gradient flows back through it."""
        from .grad_mode import enable_grad
        from .higher_order import constant, zeros

        wrapped = []
        for g, (shape, dtype) in zip(grads, ctx.out_metas):
            if g is None and ctx.materialize_grads:
                g = zeros(shape, dtype)
            wrapped.append(g)
        saved = ctx.saved
        slots = ctx.output_slots
        if slots and saved is not _FREED:
            ctx.saved = tuple(_wrap(t.array, True, ctx, slots[j]) if j in slots else t for j, t in enumerate(saved))
        try:
            with enable_grad():
                result = ctx._results(ctx.fn_cls.backward(ctx, *wrapped))
        finally:
            ctx.saved = saved
        out = []
        for i, (r, meta) in enumerate(zip(result, ctx.metas)):
            if r is None or meta is None:
                out.append(None)
                continue
            r = constant(r)
            ctx._check_shape(i, r.shape, meta[0])
            out.append(r)
        return tuple(out)


def _apply_tensor_function(cls, *args, **kwargs):
    """``F.apply(*args)`` for a ``Function`` subclass written PyTorch's way (static forward/backward)."""
    from .grad_mode import no_grad

    ctx = _new(_TensorFunctionNode)
    ctx.fn_cls = cls
    ctx.non_differentiable = ()
    ctx.dirty = ()
    ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
    record = _state.enabled and any(ctx.needs_input_grad)
    with no_grad():
        if cls._setup_context is not None:
            outputs = cls.forward(*args, **kwargs)
            cls.setup_context(ctx, args, outputs)
        else:
            outputs = cls.forward(ctx, *args, **kwargs)
    single = not isinstance(outputs, tuple)
    outs = (outputs,) if single else outputs
    if not record:
        return outputs
    edges, metas, checks, generation = [], [], [], 0
    for a in args:
        if isinstance(a, Tensor) and a.requires_grad:
            fn = a.grad_fn
            if fn is None:
                edges.append((a, 0))
            else:
                edges.append((fn, a._out_index))
                generation = max(generation, fn.generation + 1)
            metas.append((a.array.shape, a.array.dtype))
        else:
            edges.append(None)
            metas.append(None)
    ctx.edges, ctx.metas, ctx.generation = edges, metas, generation
    ctx.n_out = len(outs)
    ctx.out_metas = [(o.array.shape, o.array.dtype) if isinstance(o, Tensor) else ((), None) for o in outs]
    wrapped = []
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor):
            wrapped.append(o)
            continue
        differentiable = id(o) not in ctx.non_differentiable and o.array.dtype.kind in "fc"
        if id(o) in ctx.dirty:
            # Changed in place by forward: the same object now comes out of this node.
            o.grad_fn, o._out_index, o.requires_grad = (ctx, i, True) if differentiable else (None, 0, False)
            o._version[0] += 1
            wrapped.append(o)
        elif differentiable:
            wrapped.append(_wrap(o.array, True, ctx, i, o._version))
        else:
            wrapped.append(_wrap(o.array, False, None, 0, o._version))
    slots = {}
    for j, t in enumerate(ctx.saved or ()):
        if t is not None:
            checks.append((t._version, t._version[0]))
            for i, o in enumerate(outs):
                if o is t and isinstance(wrapped[i], Tensor) and wrapped[i].grad_fn is ctx:
                    slots[j] = i
    ctx.output_slots = slots or None
    ctx.version_checks = checks or None
    return wrapped[0] if single else tuple(wrapped)


def once_differentiable(fn):
    """Mark a ``backward`` as not itself differentiable (accepted for PyTorch code; it changes nothing here)."""
    return fn


def _init_tensor_function(cls):
    """Make a subclass whose ``forward`` is a staticmethod a PyTorch-style Function (tensors in and out)."""
    setup = cls.__dict__.get("setup_context")
    cls._setup_context = setup if isinstance(setup, staticmethod) else None
    cls.apply = classmethod(_apply_tensor_function)
