"""Linear algebra: matmul for 1-D to batched N-D inputs, einsum, and the fused ``linear`` layer op."""
import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module
from ..kernels import _select
from ._util import ensure_tensor, install

__all__ = ["matmul", "mm", "bmm", "mv", "dot", "einsum", "linear", "bilinear"]


def _matmul_shape_error(op, a, b):
    """The error for operands that cannot be multiplied, naming what does not fit: the inner dimensions
    (``k`` of ``(..., n, k) @ (..., k, m)``), or else the batch dimensions that do not broadcast."""
    sa, sb = tuple(a.shape), tuple(b.shape)
    k_a = sa[-1]
    k_b = sb[-2] if len(sb) > 1 else sb[0]
    if k_a != k_b:
        where = "second-to-last" if len(sb) > 1 else "only"
        return RuntimeError(f"{op}: shapes {sa} and {sb} cannot be multiplied: the last dimension of the first "
                            f"({k_a}) must equal the {where} dimension of the second ({k_b})")
    batch_a, batch_b = sa[:-2], sb[:-2]
    for i in range(1, min(len(batch_a), len(batch_b)) + 1):
        da, db = batch_a[-i], batch_b[-i]
        if da != db and da != 1 and db != 1:
            return RuntimeError(
                f"{op}: shapes {sa} and {sb} cannot be multiplied: their batch dimensions {batch_a} and {batch_b} "
                f"do not broadcast (dimension {len(sa) - 2 - i} of the first is {da}, dimension {len(sb) - 2 - i} "
                f"of the second is {db}; each pair must be equal or contain a 1)")
    return RuntimeError(f"{op}: shapes {sa} and {sb} cannot be multiplied")


def _swap(x):
    return x.swapaxes(-1, -2)


def few_row_matmul(a, b, out=None):
    """``a @ b`` for 2-D ``a`` (M, K) and ``b`` (K, N) -> (M, N), a fresh C-contiguous array or ``out``
    (C-contiguous) when given. Run by the kernel of op ``"matmul"`` that its chooser picks
    (``kernels/matmul.py``: column blocks for few-row float32 products); the reference is one ``matmul``."""
    name = _select.choose("matmul", a, b)
    if name == "reference":
        return array_module(a, b).matmul(a, b, out=out)
    return _select.implementation("matmul", name)(a, b, out=out)


def times_weight_t(a, w, out=None):
    """``a @ w.T`` for ``a`` (M, K) and a weight ``w`` (N, K): ``few_row_matmul(a, w.T)``."""
    return few_row_matmul(a, w.T, out=out)


class MatMul(Function):
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got shapes {a.shape} and {b.shape}")
        ctx.save_for_backward(a, b)
        if a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[0]:
            return few_row_matmul(a, b)
        try:
            return array_module(a, b).matmul(a, b)
        except ValueError:
            raise _matmul_shape_error("matmul", a, b) from None

    def backward(ctx, grad):
        a, b = ctx.saved
        if a.ndim == 1 and b.ndim == 1:
            return grad * b, grad * a
        xp = array_module(grad)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g = grad
        if a.ndim == 1:
            g = xp.expand_dims(g, -2)
        if b.ndim == 1:
            g = xp.expand_dims(g, -1)
        ga = gb = None
        if ctx.needs(0):
            ga = few_row_matmul(g, b2.T) if g.ndim == 2 and b2.ndim == 2 else xp.matmul(g, _swap(b2))
            if a.ndim == 1:
                ga = ga.reshape(ga.shape[:-2] + ga.shape[-1:]) if ga.ndim > 2 else ga.reshape(-1)
        if ctx.needs(1):
            if b.ndim >= 2 and a2.ndim > 2 and b2.ndim == 2:
                # Fold the batch into the rows: one GEMM instead of a batched product plus a sum.
                gb = xp.matmul(a2.reshape(-1, a2.shape[-1]).T, g.reshape(-1, g.shape[-1]))
            else:
                gb = xp.matmul(_swap(a2), g)
            if b.ndim == 1:
                gb = gb[..., 0]
                if gb.ndim > 1:
                    gb = gb.reshape(-1, gb.shape[-1]).sum(axis=0)
        return ga, gb

    def grad_graph(ctx, grad):
        from .shape import reshape, transpose

        a, b = ctx.saved
        ta, tb = ctx.graph_input(0, a), ctx.graph_input(1, b)
        if a.ndim == 1 and b.ndim == 1:
            return grad * tb, grad * ta
        a2 = reshape(ta, (1,) + a.shape) if a.ndim == 1 else ta
        b2 = reshape(tb, b.shape + (1,)) if b.ndim == 1 else tb
        g = grad
        if a.ndim == 1:
            g = reshape(g, g.shape[:-1] + (1,) + g.shape[-1:])
        if b.ndim == 1:
            g = reshape(g, g.shape + (1,))
        ga = gb = None
        if ctx.graph_needs(0):
            ga = matmul(g, transpose(b2, -1, -2))  # the engine sums broadcast batch dimensions
            if a.ndim == 1:
                ga = reshape(ga, ga.shape[:-2] + ga.shape[-1:])
        if ctx.graph_needs(1):
            gb = matmul(transpose(a2, -1, -2), g)
            if b.ndim == 1:
                gb = reshape(gb, gb.shape[:-1])
        return ga, gb


def _check_linear_dtypes(x, weight, bias):
    """PyTorch's rule for ``linear``: input, weight and bias of one dtype (NumPy would promote them)."""
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != x.dtype):
        got = f"input {x.dtype}, weight {weight.dtype}" + ("" if bias is None else f", bias {bias.dtype}")
        raise RuntimeError(f"linear: input, weight and bias must have the same dtype, got {got}; convert the input "
                           f"(e.g. input.float()) or the layer (e.g. module.double())")


class Linear(Function):
    """``y = x @ W.T + b`` as one node: the input may have any number of leading dimensions."""

    def forward(ctx, x, weight, bias=None):
        if x.dtype is not weight.dtype or (bias is not None and bias.dtype is not x.dtype):
            _check_linear_dtypes(x, weight, bias)
        if x.shape[-1] != weight.shape[1]:
            raise RuntimeError(
                f"linear: input has {x.shape[-1]} features (shape {tuple(x.shape)}) but the weight expects "
                f"{weight.shape[1]} (weight shape {tuple(weight.shape)})"
            )
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        out = times_weight_t(x2, weight)
        if bias is not None:
            out += bias
        return out.reshape(x.shape[:-1] + (weight.shape[0],)) if x.ndim != 2 else out

    def backward(ctx, grad):
        x, weight = ctx.saved
        g2 = grad.reshape(-1, grad.shape[-1]) if grad.ndim != 2 else grad
        gx = gw = gb = None
        if ctx.needs(0):
            gx = few_row_matmul(g2, weight).reshape(x.shape)
        if ctx.needs(1):
            x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
            gw = g2.T @ x2
        if ctx.has_bias and ctx.needs(2):
            gb = g2.sum(axis=0)
        return gx, gw, gb

    def grad_graph(ctx, grad):
        from .reduce import sum as sum_
        from .shape import reshape, transpose

        x, weight = ctx.saved
        tx, tw = ctx.graph_input(0, x), ctx.graph_input(1, weight)
        g2 = reshape(grad, (-1, grad.shape[-1])) if grad.ndim != 2 else grad
        gx = gw = gb = None
        if ctx.graph_needs(0):
            gx = reshape(matmul(g2, tw), x.shape)
        if ctx.graph_needs(1):
            gw = matmul(transpose(g2, 0, 1), reshape(tx, (-1, x.shape[-1])) if x.ndim != 2 else tx)
        if ctx.has_bias and ctx.graph_needs(2):
            gb = sum_(g2, 0)
        return gx, gw, gb


class Bilinear(Function):
    def forward(ctx, x1, x2, weight, bias=None):
        ctx.save_for_backward(x1, x2, weight)
        ctx.has_bias = bias is not None
        out = array_module(x1).einsum("...i,oij,...j->...o", x1, weight, x2, optimize=True)
        if bias is not None:
            out += bias
        return out

    def backward(ctx, grad):
        x1, x2, weight = ctx.saved
        xp = array_module(grad)
        g1 = xp.einsum("...o,oij,...j->...i", grad, weight, x2, optimize=True)
        g2 = xp.einsum("...o,oij,...i->...j", grad, weight, x1, optimize=True)
        gw = xp.einsum("...o,...i,...j->oij", grad, x1, x2, optimize=True)
        gb = grad.reshape(-1, grad.shape[-1]).sum(axis=0) if ctx.has_bias else None
        return g1, g2, gw, gb

    def grad_graph(ctx, grad):
        from .reduce import sum as sum_
        from .shape import reshape

        x1, x2, weight = ctx.saved
        t1, t2, tw = ctx.graph_input(0, x1), ctx.graph_input(1, x2), ctx.graph_input(2, weight)
        g1 = einsum("...o,oij,...j->...i", grad, tw, t2) if ctx.graph_needs(0) else None
        g2 = einsum("...o,oij,...i->...j", grad, tw, t1) if ctx.graph_needs(1) else None
        gw = einsum("...o,...i,...j->oij", grad, t1, t2) if ctx.graph_needs(2) else None
        gb = sum_(reshape(grad, (-1, grad.shape[-1])), 0) if ctx.has_bias and ctx.graph_needs(3) else None
        return g1, g2, gw, gb


class Einsum(Function):
    def forward(ctx, *operands, equation):
        ctx.save_for_backward(*operands)
        inputs, _, output = equation.partition("->")
        ctx.terms = inputs.split(",")
        ctx.output = output
        return array_module(*operands).einsum(equation, *operands, optimize=len(operands) > 2)

    def backward(ctx, grad):
        ops = ctx.saved
        xp = array_module(grad)
        grads = []
        for i, term in enumerate(ctx.terms):
            if not ctx.needs(i):
                grads.append(None)
                continue
            others = [t for j, t in enumerate(ctx.terms) if j != i]
            other_ops = [o for j, o in enumerate(ops) if j != i]
            # Letters of this operand missing from the output and the other operands are summed in
            # forward; their gradient is a broadcast, restored after the einsum below.
            available = set(ctx.output).union(*map(set, others)) if others else set(ctx.output)
            kept = "".join(c for c in term if c in available)
            seen = []
            for c in kept:
                if c not in seen:
                    seen.append(c)
            target = "".join(seen)
            eq = ",".join([ctx.output] + others) + "->" + target
            g = xp.einsum(eq, grad, *other_ops, optimize=len(other_ops) > 1)
            full_shape = ops[i].shape
            # Expand to the operand's own subscripts (repeated letters = diagonals, missing = broadcast).
            if len(set(term)) == len(term):
                expand = g
                missing = [k for k, c in enumerate(term) if c not in seen]
                order = [c for c in term if c in seen]
                expand = xp.transpose(expand, [seen.index(c) for c in order]) if order else expand
                for k in missing:
                    expand = xp.expand_dims(expand, k)
                grads.append(xp.broadcast_to(expand, full_shape).astype(grad.dtype, copy=True))
            else:
                out = xp.zeros(full_shape, dtype=grad.dtype)
                grid, mask, first = _diagonal(xp, full_shape, term)
                src_index = tuple(grid[first[c]] for c in seen)
                vals = g[src_index] if seen else xp.broadcast_to(g, full_shape)
                out[mask] = vals[mask]
                grads.append(out)
        return tuple(grads)

    def grad_graph(ctx, grad):
        from .shape import broadcast_to, reshape

        ops = [ctx.graph_input(i, o) for i, o in enumerate(ctx.saved)]
        grads = []
        for i, term in enumerate(ctx.terms):
            if not ctx.graph_needs(i):
                grads.append(None)
                continue
            others = [t for j, t in enumerate(ctx.terms) if j != i]
            other_ops = [o for j, o in enumerate(ops) if j != i]
            available = set(ctx.output).union(*map(set, others)) if others else set(ctx.output)
            seen = [c for c in term if c in available]
            if len(set(term)) != len(term):
                grads.append(_repeated_subscript_grad(ctx, i, term, others, other_ops, available, grad))
                continue
            g = einsum(",".join([ctx.output] + others) + "->" + "".join(seen), grad, *other_ops)
            # Back to the operand's subscripts: letters summed away in forward come back as broadcast dims.
            shape = ctx.saved[i].shape
            g = reshape(g, tuple(shape[k] if c in seen else 1 for k, c in enumerate(term)))
            grads.append(broadcast_to(g, shape))
        return tuple(grads)


def _diagonal(xp, shape, term):
    """``(grid, mask, first)`` for an operand of ``shape`` with subscripts ``term``: ``xp.indices(shape)``,
    where the positions of each repeated letter agree (the diagonal), and each letter's first position."""
    grid = xp.indices(shape)
    mask = xp.ones(shape, dtype=bool)
    first = {}
    for k, c in enumerate(term):
        if c in first:
            mask &= grid[k] == grid[first[c]]
        else:
            first[c] = k
    return grid, mask, first


def _repeated_subscript_grad(ctx, i, term, others, other_ops, available, grad):
    """The graph gradient of an einsum operand with a repeated subscript (a diagonal, ``'ii'``): the
    gradient over its distinct letters, gathered onto the diagonal positions and zero elsewhere."""
    from .shape import broadcast_to

    seen = []
    for c in term:
        if c in available and c not in seen:
            seen.append(c)
    g = einsum(",".join([ctx.output] + others) + "->" + "".join(seen), grad, *other_ops)
    shape = ctx.saved[i].shape
    grid, mask, first = _diagonal(np, shape, term)
    vals = g[tuple(Tensor(grid[first[c]]) for c in seen)] if seen else broadcast_to(g, shape)
    return vals * Tensor(mask.astype(grad.dtype))


def matmul(input, other):
    """Matrix product with NumPy/PyTorch semantics: 1-D vectors, 2-D matrices, batched and broadcast N-D.

    ``(b, n, m) @ (m, p) -> (b, n, p)``; a 1-D operand is a vector (its dimension is removed after).
    """
    return MatMul.apply(ensure_tensor(input, "matmul"), ensure_tensor(other, "matmul"))


def mm(input, mat2):
    """2-D matrix product ``(n, m) @ (m, p)``."""
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D matrices, got shapes {tuple(input.shape)} and {tuple(mat2.shape)}")
    return matmul(input, mat2)


def bmm(input, mat2):
    """Batched product ``(b, n, m) @ (b, m, p)``."""
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError(f"bmm: expected 3-D tensors (b, n, m) and (b, m, p), got shapes {tuple(input.shape)} "
                           f"and {tuple(mat2.shape)}")
    if input.shape[0] != mat2.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ: {input.shape[0]} (shape {tuple(input.shape)}) and "
                           f"{mat2.shape[0]} (shape {tuple(mat2.shape)}); bmm does not broadcast, both must be equal")
    if input.shape[2] != mat2.shape[1]:
        raise _matmul_shape_error("bmm", input, mat2)
    return matmul(input, mat2)


def mv(input, vec):
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"mv: expected a matrix and a vector, got shapes {tuple(input.shape)} and {tuple(vec.shape)}")
    return matmul(input, vec)


def dot(input, other):
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"dot: expected 1-D tensors, got shapes {tuple(input.shape)} and {tuple(other.shape)}")
    return matmul(input, other)


def einsum(equation, *operands):
    """Einstein summation, e.g. ``einsum('bij,bjk->bik', a, b)``; differentiable for every operand."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    equation = equation.replace(" ", "")
    ops = [ensure_tensor(o, "einsum") for o in operands]
    if "->" not in equation:
        letters = equation.replace(",", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c != "."))
        equation = equation + "->" + out
    if "..." in equation:
        equation = _expand_ellipsis(equation, [o.ndim for o in ops])
    terms = equation.split("->")[0].split(",")
    if len(terms) != len(ops):
        raise RuntimeError(f"einsum: equation '{equation}' has {len(terms)} operands but {len(ops)} were given")
    for t, o in zip(terms, ops):
        if len(t) != o.ndim:
            raise RuntimeError(f"einsum: subscript '{t}' has {len(t)} dimensions but its operand has shape {tuple(o.shape)}")
    return Einsum.apply(*ops, equation=equation)


def _expand_ellipsis(equation, ndims):
    inputs, out = equation.split("->")
    terms = inputs.split(",")
    used = set(c for c in equation if c.isalpha())
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used]
    n_ell = max((nd - (len(t) - 3)) for t, nd in zip(terms, ndims) if "..." in t)
    ell = "".join(spare[:n_ell])
    new_terms = []
    for t, nd in zip(terms, ndims):
        if "..." in t:
            k = nd - (len(t) - 3)
            t = t.replace("...", ell[n_ell - k:])
        new_terms.append(t)
    out = out.replace("...", ell)
    return ",".join(new_terms) + "->" + out


def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` as one fused op. input ``(*, in)``, weight ``(out, in)``, bias ``(out,)``."""
    if weight.ndim != 2:
        raise RuntimeError(f"linear: weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    if bias is None:
        return Linear.apply(input, weight)
    return Linear.apply(input, weight, bias)


def bilinear(input1, input2, weight, bias=None):
    """``y_o = x1 @ W_o @ x2 + b_o``; weight ``(out, in1, in2)``."""
    if bias is None:
        return Bilinear.apply(input1, input2, weight)
    return Bilinear.apply(input1, input2, weight, bias)


def _rmatmul(self, other):
    return matmul(other, self)


install(__matmul__=matmul, __rmatmul__=_rmatmul, matmul=matmul, mm=mm, bmm=bmm, mv=mv, dot=dot)
