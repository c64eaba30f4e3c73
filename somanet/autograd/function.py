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
import numpy as np
from numpy import asarray, ndarray

from .. import devices
from .grad_mode import _state, enable_grad, no_grad
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
        shape, dtype = ctx.metas[i]
        return _wrap(np.broadcast_to(np.zeros((), dtype), shape), True, target, index)

    def graph_output(ctx, value, k=0):
        """Output ``k`` of this node (its array ``value``, as saved by forward) as a tensor of the graph."""
        return _wrap(value, True, ctx, k)

    def graph_derived(ctx, value, parents, vjp):
        """An array forward computed from inputs and saved (or a tuple of them), as a tensor of the graph
        depending on ``parents`` (graph tensors or None) through ``vjp(grad, value_tensor) -> one gradient
        per parent``, written with tensor ops (for a tuple: ``vjp(grads, value_tensors)``)."""
        return derived(value, parents, vjp, ctx.name)

    def graph_linear(ctx, grads, forward):
        """``grad_graph`` of an op linear in its inputs: its array ``backward`` on ``grads``, recorded as a
        node whose own backward is ``forward(*tangents) -> output tangents`` (the op applied to tensors,
        None for a zero tangent)."""
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
        wrapped = []
        for g, (shape, dtype) in zip(grads, ctx.out_metas):
            if g is None and ctx.materialize_grads:
                g = np.zeros(shape, dtype)
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


# --------------------------------------------------------------------------- graph nodes of the second pass
# The nodes and helpers that ``grad_graph`` methods build the differentiable gradient graph from (see
# ``higher_order``); they live here, under ``Function``, so that ``Function``'s graph helpers need no import
# from the modules above it.
def zeros(shape, dtype):
    return _wrap(np.zeros(shape, dtype), False, None, 0)


def zeros_like(t):
    return _wrap(np.zeros(t.shape, t.dtype), False, None, 0)


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
        return tuple(None if r is None else _wrap(_as_array(r), False, None, 0) for r in results)
    node.forward_fn, node.owner = forward_fn, op.name
    node.n_inputs = len(results)
    node.positions = [k for k, r in enumerate(results) if r is not None]
    node.parent_positions = [k for k, g in enumerate(grads) if g is not None]
    node.layouts = [(tuple(_as_array(results[k]).shape), _as_array(results[k]).dtype) for k in node.positions]
    node.n_out = len(node.positions)
    out = [None] * len(results)
    for j, k in enumerate(node.positions):
        out[k] = _wrap(_as_array(results[k]), True, node, j)
    return tuple(out)
