"""Higher-level differentiation: ``vjp``, ``jvp``, ``jacobian``, ``hessian``, ``vhp`` and ``hvp``.

Each takes a function of tensors and the point to differentiate it at, with PyTorch's signatures and
return structure (``torch.autograd.functional``): a tensor where the function takes or returns one tensor,
tuples where it takes or returns tuples. Everything is built on ``somanet.autograd.grad``; products that
need second derivatives (``jvp``, ``hessian``, ``vhp``, ``hvp``) use ``create_graph=True``.

``create_graph=True`` keeps the results differentiable; otherwise they are detached. ``strict=True``
raises when an output does not depend on an input (the result would be all zeros) instead of returning
zeros. ``vectorize`` is accepted for compatibility and changes nothing: the rows of a Jacobian are
computed one after the other.
"""
import numpy as np

from .engine import grad as _grad
from .grad_mode import enable_grad
from .tensor import Tensor, _wrap

__all__ = ["vjp", "jvp", "jacobian", "hessian", "vhp", "hvp"]


def _as_tuple(x, arg, fn):
    """``(tuple_of_tensors, was_tuple)``; a single tensor becomes a 1-tuple."""
    if isinstance(x, Tensor):
        return (x,), False
    if isinstance(x, (tuple, list)) and all(isinstance(t, Tensor) for t in x):
        return tuple(x), True
    raise TypeError(f"{fn}: the {arg} must be a Tensor or a tuple of Tensors, got {type(x).__name__}")


def _prepare(inputs, create_graph):
    """Inputs to differentiate at: cut from the caller's graph unless ``create_graph`` keeps it."""
    out = []
    for t in inputs:
        if create_graph and t.requires_grad:
            out.append(t.view_as(t))  # a new node on the caller's graph, so grads stay connected to it
        else:
            d = _wrap(t.array, False, None, 0)
            if t.array.dtype.kind in "fc":
                d.requires_grad = True
            out.append(d)
    return tuple(out)


def _finish(tensors, create_graph):
    """Results handed back: detached unless ``create_graph``."""
    return tuple(t if t is None or create_graph else t.detach() for t in tensors)


def _check_v(v, like, fn, what="v"):
    if len(v) != len(like):
        raise RuntimeError(f"{fn}: {what} has {len(v)} tensors but {len(like)} were expected")
    for i, (a, b) in enumerate(zip(v, like)):
        if tuple(a.shape) != tuple(b.shape):
            raise RuntimeError(f"{fn}: entry {i} of {what} has shape {tuple(a.shape)} but the matching tensor "
                               f"has shape {tuple(b.shape)}")


def _zeros_for_none(grads, like, strict, fn, what):
    out = []
    for i, (g, t) in enumerate(zip(grads, like)):
        if g is None:
            if strict:
                raise RuntimeError(f"{fn}: the output of the function is independent of input {i} ({what}); this "
                                   f"is not allowed in strict mode")
            g = _wrap(np.zeros(t.shape, t.dtype), False, None, 0)
        out.append(g)
    return tuple(out)


def _autograd(outputs, inputs, grad_outputs, create_graph):
    """``grad`` over the outputs that need it, None for inputs nothing reaches."""
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if not pairs:
        return (None,) * len(inputs)
    return _grad([o for o, _ in pairs], list(inputs), [g for _, g in pairs], create_graph=create_graph,
                 retain_graph=True, allow_unused=True)


def _single_element(out, fn):
    if out.array.size != 1:
        raise RuntimeError(f"{fn}: the function given to {fn} must return a single-element tensor, got shape "
                           f"{tuple(out.shape)}")


def _vector(v, like, fn, when):
    """``v`` as a tuple checked against ``like``; ``None`` means ones, allowed only for one single-element
    tensor (``when`` says which, for the error)."""
    if v is None:
        if len(like) != 1 or like[0].array.size != 1:
            raise RuntimeError(f"{fn}: v can be omitted only when {when}")
        return (_wrap(np.ones(like[0].shape, like[0].dtype), False, None, 0),)
    v, _ = _as_tuple(v, "v", fn)
    _check_v(v, like, fn)
    return v


def _call(func, inputs, fn):
    with enable_grad():
        out = func(*inputs)
    outputs, is_tuple = _as_tuple(out, "value returned by the function", fn)
    return outputs, is_tuple


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), v^T J)``: the vector-Jacobian product at ``inputs``. ``v`` has the outputs' shapes
    and may be omitted when the function returns a single-element tensor."""
    fn = "vjp"
    inputs, in_tuple = _as_tuple(inputs, "inputs", fn)
    inputs = _prepare(inputs, create_graph)
    outputs, out_tuple = _call(func, inputs, fn)
    v = _vector(v, outputs, fn, "the function returns a single-element tensor")
    grads = _autograd(outputs, inputs, v, create_graph)
    grads = _zeros_for_none(grads, inputs, strict, fn, "vjp")
    outputs, grads = _finish(outputs, create_graph), _finish(grads, create_graph)
    return (outputs if out_tuple else outputs[0]), (grads if in_tuple else grads[0])


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), J v)``: the Jacobian-vector product at ``inputs``, computed as the derivative of a
    vector-Jacobian product with respect to its vector (two reverse passes). ``v`` has the inputs' shapes
    and may be omitted when the input is a single element."""
    fn = "jvp"
    inputs, in_tuple = _as_tuple(inputs, "inputs", fn)
    inputs = _prepare(inputs, create_graph)
    v = _vector(v, inputs, fn, "the input is a single element")
    outputs, out_tuple = _call(func, inputs, fn)
    # u -> J^T u is linear in u; differentiating <J^T u, v> with respect to u gives J v.
    us = tuple(_wrap(np.zeros(o.shape, o.dtype), True, None, 0) for o in outputs)
    grads = _autograd(outputs, inputs, us, True)
    pairs = [(g, w) for g, w in zip(grads, v) if g is not None and g.requires_grad]
    if pairs:
        result = _grad([g for g, _ in pairs], list(us), [w for _, w in pairs], create_graph=create_graph,
                       retain_graph=True, allow_unused=True)
    else:
        result = (None,) * len(us)
    result = _zeros_for_none(result, outputs, strict, fn, "jvp")
    outputs, result = _finish(outputs, create_graph), _finish(result, create_graph)
    return (outputs if out_tuple else outputs[0]), (result if out_tuple else result[0])


def _jacobian_rows(outputs, inputs, create_graph, strict, fn):
    """``[per output: [per input: tensor of shape out.shape + in.shape]]`` by one vjp per output element."""
    table = []
    for i, out in enumerate(outputs):
        n = out.array.size
        rows = [[] for _ in inputs]
        for k in range(n):
            onehot = np.zeros(n, out.dtype)
            onehot[k] = 1
            grads = _autograd((out,), inputs, (_wrap(onehot.reshape(out.shape), False, None, 0),), create_graph)
            for j, (g, inp) in enumerate(zip(grads, inputs)):
                if g is None:
                    if strict:
                        raise RuntimeError(f"{fn}: output {i} of the function is independent of input {j}; this "
                                           f"is not allowed in strict mode")
                    g = _wrap(np.zeros(inp.shape, inp.dtype), False, None, 0)
                rows[j].append(g)
        entry = []
        for j, inp in enumerate(inputs):
            if n:
                from ..ops.shape import reshape, stack

                block = reshape(stack(rows[j], 0), tuple(out.shape) + tuple(inp.shape))
            else:
                block = _wrap(np.zeros(tuple(out.shape) + tuple(inp.shape), inp.dtype), False, None, 0)
            entry.append(block if create_graph else block.detach())
        table.append(entry)
    return table


def _jacobian_columns(func, inputs, create_graph, strict, fn):
    """The Jacobian from forward-mode products (one ``jvp`` per input element)."""
    outputs, out_tuple = _call(func, inputs, fn)
    table = [[None] * len(inputs) for _ in outputs]
    for j, inp in enumerate(inputs):
        cols = [[] for _ in outputs]
        m = inp.array.size
        for k in range(m):
            vs = []
            for jj, other in enumerate(inputs):
                e = np.zeros(other.array.size, other.dtype)
                if jj == j:
                    e[k] = 1
                vs.append(_wrap(e.reshape(other.shape), False, None, 0))
            _, col = jvp(func, tuple(inputs), tuple(vs), create_graph=create_graph, strict=strict)
            col = col if isinstance(col, tuple) else (col,)
            for i, c in enumerate(col):
                cols[i].append(c)
        from ..ops.shape import reshape, stack

        for i, out in enumerate(outputs):
            if m:
                block = stack(cols[i], -1)  # out.shape + (m,)
                block = reshape(block, tuple(out.shape) + tuple(inp.shape))
            else:
                block = _wrap(np.zeros(tuple(out.shape) + tuple(inp.shape), out.dtype), False, None, 0)
            table[i][j] = block if create_graph else block.detach()
    return outputs, out_tuple, table


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """The Jacobian of ``func`` at ``inputs``: for one input and one output a tensor of shape
    ``output.shape + input.shape``; tuples (per output, then per input) where the function takes or
    returns tuples. ``strategy`` is 'reverse-mode' (one vjp per output element) or 'forward-mode' (one
    jvp per input element, which needs ``vectorize=True`` as in PyTorch)."""
    fn = "jacobian"
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f"{fn}: expected strategy to be either 'forward-mode' or 'reverse-mode', got {strategy!r}")
    if strategy == "forward-mode":
        if strict:
            raise RuntimeError(f"{fn}: strict=True is not supported with strategy='forward-mode'")
        if not vectorize:
            raise NotImplementedError(f"{fn}: strategy='forward-mode' requires vectorize=True, as in PyTorch")
    inputs, in_tuple = _as_tuple(inputs, "inputs", fn)
    inputs = _prepare(inputs, create_graph)
    if strategy == "forward-mode":
        outputs, out_tuple, table = _jacobian_columns(func, inputs, create_graph, strict, fn)
    else:
        outputs, out_tuple = _call(func, inputs, fn)
        table = _jacobian_rows(outputs, inputs, create_graph, strict, fn)
    per_output = [tuple(row) if in_tuple else row[0] for row in table]
    return tuple(per_output) if out_tuple else per_output[0]


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """The Hessian of the scalar function ``func`` at ``inputs``: for one input a tensor of shape
    ``input.shape + input.shape``; for a tuple of inputs a tuple of tuples (block ``[i][j]`` has shape
    ``inputs[i].shape + inputs[j].shape``)."""
    fn = "hessian"
    if outer_jacobian_strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f"{fn}: expected outer_jacobian_strategy to be either 'forward-mode' or 'reverse-mode', "
                         f"got {outer_jacobian_strategy!r}")
    inputs_t, in_tuple = _as_tuple(inputs, "inputs", fn)

    def gradient(*xs):
        outputs, _ = _call(func, xs, fn)
        if len(outputs) != 1:
            raise RuntimeError(f"{fn}: the function given to hessian must return a single tensor")
        _single_element(outputs[0], fn)
        out = outputs[0]
        ones = _wrap(np.ones(out.shape, out.dtype), False, None, 0)
        grads = _autograd((out,), xs, (ones,), True)
        return _zeros_for_none(grads, xs, strict, fn, "hessian")

    result = jacobian(gradient, inputs_t, create_graph=create_graph, strict=strict, vectorize=vectorize,
                      strategy=outer_jacobian_strategy)
    if not in_tuple:
        return result[0][0] if isinstance(result[0], tuple) else result[0]
    return result


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), v^T H)``: the vector-Hessian product of the scalar function ``func`` at ``inputs``.
    ``v`` has the inputs' shapes and may be omitted when the input is a single element."""
    return _hessian_product(func, inputs, v, create_graph, strict, "vhp")


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), H v)``: the Hessian-vector product of the scalar function ``func`` at ``inputs``
    (equal to ``vhp``'s, the Hessian being symmetric)."""
    return _hessian_product(func, inputs, v, create_graph, strict, "hvp")


def _hessian_product(func, inputs, v, create_graph, strict, fn):
    inputs, in_tuple = _as_tuple(inputs, "inputs", fn)
    inputs = _prepare(inputs, create_graph)
    v = _vector(v, inputs, fn, "the input is a single element")
    outputs, out_tuple = _call(func, inputs, fn)
    if out_tuple or len(outputs) != 1:
        raise RuntimeError(f"{fn}: the function given to {fn} must return a single tensor")
    out = outputs[0]
    _single_element(out, fn)
    if strict and not out.requires_grad:
        raise RuntimeError(f"{fn}: the output of the function is independent of the inputs; this is not allowed "
                           f"in strict mode")
    ones = _wrap(np.ones(out.shape, out.dtype), False, None, 0)
    grads = _autograd((out,), inputs, (ones,), True)
    if strict and any(g is None for g in grads):
        raise RuntimeError(f"{fn}: the output of the function is independent of an input; this is not allowed in "
                           f"strict mode")
    pairs = [(g, w) for g, w in zip(grads, v) if g is not None and g.requires_grad]
    if pairs:
        result = _grad([g for g, _ in pairs], list(inputs), [w for _, w in pairs], create_graph=create_graph,
                       retain_graph=True, allow_unused=True)
    else:
        result = (None,) * len(inputs)
    if strict and any(r is None for r in result):
        raise RuntimeError(f"{fn}: the gradient of the function is independent of an input (its second derivative "
                           f"is zero); this is not allowed in strict mode")
    result = _zeros_for_none(result, inputs, False, fn, fn)
    out, result = _finish((out,), create_graph)[0], _finish(result, create_graph)
    return out, (result if in_tuple else result[0])
