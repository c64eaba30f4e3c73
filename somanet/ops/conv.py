"""Convolutions: conv1d/conv2d, their transposes, and unfold/fold.

Every convolution is computed in 2-d (a 1-d input is a 2-d one of height 1) on NCHW arrays. The math,
in the plain form below (the ``"reference"`` kernel, also the one for CuPy arrays):

- forward: the im2col buffer ``(N, C*kh*kw, Ho*Wo)`` of the padded input (every window's elements in a
  column) times the weight ``(O, C*kh*kw)``, one product per group;
- input gradient: the weight's transpose times the output gradient gives the gradient of every column,
  and col2im adds the columns back onto the padded image;
- weight gradient: the output gradient times the columns' transpose, summed over the batch.

A transposed convolution's forward is a convolution's input gradient, and its gradients are a
convolution and a weight gradient. Backward rebuilds the windows instead of saving them. Which kernel
runs is the ``conv2d`` chooser's choice (``somanet.backends.cpu.kernel``); the fast kernels are in
``kernels/conv.py``.
"""
import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..kernels import _select
from ._windows import col2im, im2col, out_size, pad2d, unpad2d

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "unfold", "fold"]


# --------------------------------------------------------------------------- argument normalisation
def _tuple(value, n, name, op):
    """An int or a length-``n`` sequence of ints as an ``n``-tuple, with a clear error otherwise."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    try:
        out = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}") from None
    if len(out) == 1:
        return out * n
    if len(out) != n:
        raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    return out


def _positive(values, name, op):
    if any(v <= 0 for v in values):
        raise ValueError(f"{op}: {name} must be positive, got {values}")
    return values


# --------------------------------------------------------------------------- the reference kernel
def _columns(x4, kernel, pads, stride, dilation, out_hw):
    """The im2col buffer of ``x4`` padded by ``pads``, as a fresh ``(N, C*kh*kw, Ho*Wo)`` array."""
    return im2col(pad2d(x4, pads), kernel, stride, dilation, out_hw)


def _out_hw(in_hw, kernel, pads, stride, dilation):
    return tuple(out_size(n, lo, hi, k, s, d) for n, (lo, hi), k, s, d in zip(in_hw, pads, kernel, stride, dilation))


def reference_forward(x4, w4, groups, pads, stride, dilation, bias=None):
    """Cross-correlation of ``x4`` (N, C, H, W) with ``w4`` (O, C/G, kh, kw), plus ``bias`` -> (N, O, Ho, Wo)."""
    xp = backend.array_module(x4)
    n = x4.shape[0]
    o, cg, kh, kw = w4.shape
    out_hw = _out_hw(x4.shape[2:], (kh, kw), pads, stride, dilation)
    cols = _columns(x4, (kh, kw), pads, stride, dilation, out_hw)
    k = cg * kh * kw
    out = xp.matmul(w4.reshape(groups, o // groups, k), cols.reshape(n, groups, k, out_hw[0] * out_hw[1]))
    out = out.reshape((n, o) + out_hw)
    if bias is not None:
        out += bias.reshape(1, o, 1, 1)
    return out


def reference_input_grad(g4, w4, groups, pads, stride, dilation, in_hw):
    """dX (N, C, H, W) of ``reference_forward`` from the output gradient ``g4`` (N, O, Ho, Wo)."""
    xp = backend.array_module(g4)
    n, o, ho, wo = g4.shape
    _, cg, kh, kw = w4.shape
    k = cg * kh * kw
    w3 = w4.reshape(groups, o // groups, k)
    cols = xp.matmul(w3.transpose(0, 2, 1), g4.reshape(n, groups, o // groups, ho * wo))
    padded = (in_hw[0] + sum(pads[0]), in_hw[1] + sum(pads[1]))
    image = col2im(cols.reshape(n, groups * k, ho * wo), padded, (kh, kw), stride, dilation, (ho, wo))
    return xp.ascontiguousarray(unpad2d(image, pads))


def reference_weight_grad(g4, x4, groups, pads, stride, dilation, kernel):
    """dW (O, C/G, kh, kw) of ``reference_forward`` from the output gradient ``g4`` and the input ``x4``."""
    xp = backend.array_module(g4)
    n, o, ho, wo = g4.shape
    cg = x4.shape[1] // groups
    k = cg * kernel[0] * kernel[1]
    cols = _columns(x4, tuple(kernel), pads, stride, dilation, (ho, wo)).reshape(n, groups, k, ho * wo)
    g3 = g4.reshape(n, groups, o // groups, ho * wo)
    gw = xp.matmul(g3, cols.transpose(0, 1, 3, 2)).sum(axis=0)
    return xp.ascontiguousarray(gw).reshape((o, cg) + tuple(kernel))


def _kernel(x4, w4, groups, pads, stride, dilation, backward=False):
    """The ``conv2d`` kernel chosen for this convolution (None for the reference code above)."""
    name = _select.choose("conv2d", x4, w4, groups, pads, stride, dilation, backward)
    return _select.implementation("conv2d", name)


def _weight_grad(g4, x4, groups, pads, stride, dilation, kernel):
    """dW by the ``conv2d_weight_grad`` chooser's kernel (or the reference)."""
    name = _select.choose("conv2d_weight_grad", g4, x4, groups, pads, stride, dilation, tuple(kernel))
    if name == "reference":
        return reference_weight_grad(g4, x4, groups, pads, stride, dilation, kernel)
    return _select.implementation("conv2d_weight_grad", name)(g4, x4, groups, pads, stride, dilation, tuple(kernel))


def _backward(g4, x4, w4, groups, pads, stride, dilation, need_x, need_w):
    """``(dX, dW)`` of a 2-d convolution (None where not needed), by the chosen kernel."""
    impl = _kernel(x4, w4, groups, pads, stride, dilation, backward=True)
    if impl is None:
        gw = reference_weight_grad(g4, x4, groups, pads, stride, dilation, w4.shape[2:]) if need_w else None
        gx = reference_input_grad(g4, w4, groups, pads, stride, dilation, x4.shape[2:]) if need_x else None
        return gx, gw

    def weight_grad(g, x):
        return _weight_grad(g, x, groups, pads, stride, dilation, w4.shape[2:])

    return impl.backward(g4, x4, w4, groups, pads, stride, dilation, need_x, need_w, weight_grad)


def _forward(x4, w4, groups, pads, stride, dilation, bias=None):
    impl = _kernel(x4, w4, groups, pads, stride, dilation)
    if impl is None:
        return reference_forward(x4, w4, groups, pads, stride, dilation, bias)
    return impl.forward(x4, w4, groups, pads, stride, dilation, bias)


def _input_grad(g4, w4, groups, pads, stride, dilation, in_hw):
    """dX alone (a transposed convolution's forward): the kernel is chosen for the convolution whose input
    gradient it is, with ``g4`` standing in for its (same-sized batch of) outputs."""
    impl = _kernel(g4, w4, groups, pads, stride, dilation)
    if impl is None:
        return reference_input_grad(g4, w4, groups, pads, stride, dilation, in_hw)
    return impl.input_grad(g4, w4, groups, pads, stride, dilation, in_hw)


def _check_dtypes(op, x, w, b):
    if (x.dtype != w.dtype or (b is not None and b.dtype != x.dtype)) and not backend.autocasting():
        got = f"input {x.dtype}, weight {w.dtype}" + ("" if b is None else f", bias {b.dtype}")
        raise TypeError(f"{op}: input, weight and bias must have the same floating dtype, got {got}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got dtype {x.dtype}")


def _as_4d(x, w, spatial):
    """Views of a 1-d problem as 2-d: (N, C, L) -> (N, C, 1, L) and (O, C, k) -> (O, C, 1, k)."""
    if spatial == 1:
        return x[:, :, None, :], w[:, :, None, :]
    return x, w


def _contiguous(a):
    return a if a.flags.c_contiguous else backend.array_module(a).ascontiguousarray(a)


# --------------------------------------------------------------------------- convolution
class ConvNd(Function):
    """Cross-correlation of ``x`` (N, C, [H,] W) with ``weight`` (O, C/groups, [kh,] kw), plus bias.

    ``stride``/``dilation`` are 2-tuples and ``pads`` is ``((top, bottom), (left, right))`` in 2-d terms.
    Only the input and weight are saved; backward rebuilds the windows it needs.
    """

    def forward(ctx, x, weight, bias, stride, pads, dilation, groups):
        spatial = x.ndim - 2
        ctx.x_shape, ctx.w_shape, ctx.spatial = x.shape, weight.shape, spatial
        x4, w4 = _as_4d(x, weight, spatial)
        out = _forward(x4, w4, groups, pads, stride, dilation, bias)
        ctx.geometry = (stride, pads, dilation, groups)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight)
        return out if spatial == 2 else out.reshape(out.shape[0], out.shape[1], out.shape[3])

    def backward(ctx, grad):
        x, weight = ctx.saved
        stride, pads, dilation, groups = ctx.geometry
        x4, w4 = _as_4d(x, weight, ctx.spatial)
        g = _contiguous(grad if ctx.spatial == 2 else grad[:, :, None, :])
        gb = None
        gx, gw = _backward(g, x4, w4, groups, pads, stride, dilation, ctx.needs(0), ctx.needs(1))
        gx = None if gx is None else gx.reshape(ctx.x_shape)
        gw = None if gw is None else gw.reshape(ctx.w_shape)
        if ctx.has_bias and ctx.needs(2):
            gb = g.sum(axis=(0, 2, 3))
        return gx, gw, gb

    def grad_graph(ctx, grad):
        from .reduce import sum as sum_
        from .shape import reshape

        x4, w4, g, (stride, pads, dilation, groups) = _graph_operands(ctx, grad)
        gx = gw = gb = None
        if ctx.graph_needs(0):
            gx = reshape(ConvTransposeNd.apply(g, w4, None, stride, pads, dilation, groups, x4.shape[2:]), ctx.x_shape)
        if ctx.graph_needs(1):
            gw = reshape(ConvNd.weight_grad_graph(g, x4, groups, pads, stride, dilation, w4.shape[2:]), ctx.w_shape)
        if ctx.has_bias and ctx.graph_needs(2):
            gb = sum_(g, (0, 2, 3))
        return gx, gw, gb

    @staticmethod
    def weight_grad_graph(g4, x4, groups, pads, stride, dilation, kernel):
        """The weight gradient of a 2-d convolution of ``x4`` with output gradient ``g4``, from differentiable
        ops (unfold and einsum), as ``grad_graph`` needs it."""
        from .linalg import einsum
        from .shape import reshape

        n, o = g4.shape[:2]
        c = x4.shape[1]
        cols = Unfold.apply(x4, tuple(kernel), tuple(stride), pads, tuple(dilation))  # (N, C*kh*kw, L)
        g3 = reshape(g4, (n, groups, o // groups, -1))
        c3 = reshape(cols, (n, groups, (c // groups) * kernel[0] * kernel[1], -1))
        return reshape(einsum("ngol,ngkl->gok", g3, c3), (o, c // groups) + tuple(kernel))


class ConvTransposeNd(Function):
    """Transposed convolution: the input gradient of the convolution that maps its output back to ``x``.

    ``x`` (N, C_in, [H,] W), ``weight`` (C_in, C_out/groups, [kh,] kw). ``pads`` are that convolution's
    ``((top, bottom), (left, right))`` padding: ``padding`` on top/left and ``padding - output_padding``
    on bottom/right (negative when the output is longer than the padded input).
    """

    def forward(ctx, x, weight, bias, stride, pads, dilation, groups, out_hw):
        spatial = x.ndim - 2
        ctx.x_shape, ctx.w_shape, ctx.spatial = x.shape, weight.shape, spatial
        x4, w4 = _as_4d(x, weight, spatial)
        out = _input_grad(_contiguous(x4), w4, groups, pads, stride, dilation, out_hw)
        out = _contiguous(out)
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
        ctx.geometry = (stride, pads, dilation, groups)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight)
        return out if spatial == 2 else out.reshape(out.shape[0], out.shape[1], out.shape[3])

    def backward(ctx, grad):
        x, weight = ctx.saved
        stride, pads, dilation, groups = ctx.geometry
        x4, w4 = _as_4d(x, weight, ctx.spatial)
        g = grad if ctx.spatial == 2 else grad[:, :, None, :]
        gx = gw = gb = None
        if ctx.needs(0):
            gx = _forward(_contiguous(g), w4, groups, pads, stride, dilation).reshape(ctx.x_shape)
        if ctx.needs(1):
            # In the underlying convolution x is the output gradient and ours is its input.
            gw = _weight_grad(_contiguous(x4), _contiguous(g), groups, pads, stride, dilation, w4.shape[2:])
            gw = gw.reshape(ctx.w_shape)
        if ctx.has_bias and ctx.needs(2):
            gb = g.sum(axis=(0, 2, 3))
        return gx, gw, gb

    def grad_graph(ctx, grad):
        from .reduce import sum as sum_
        from .shape import reshape

        x4, w4, g, (stride, pads, dilation, groups) = _graph_operands(ctx, grad)
        gx = gw = gb = None
        if ctx.graph_needs(0):
            gx = reshape(ConvNd.apply(g, w4, None, stride, pads, dilation, groups), ctx.x_shape)
        if ctx.graph_needs(1):
            # In the underlying convolution x is the output gradient and ours is its input.
            gw = reshape(ConvNd.weight_grad_graph(x4, g, groups, pads, stride, dilation, w4.shape[2:]), ctx.w_shape)
        if ctx.has_bias and ctx.graph_needs(2):
            gb = sum_(g, (0, 2, 3))
        return gx, gw, gb


def _graph_operands(ctx, grad):
    """For a convolution's ``grad_graph``: its input, weight and output gradient as 4-d graph tensors (a
    1-d convolution gains a height of 1), and its geometry."""
    from .shape import reshape

    x, weight = ctx.saved
    tx, tw = ctx.graph_input(0, x), ctx.graph_input(1, weight)
    if ctx.spatial == 2:
        return tx, tw, grad, ctx.geometry
    x4_shape, w4_shape = (a.shape for a in _as_4d(x, weight, 1))
    return (reshape(tx, x4_shape), reshape(tw, w4_shape), reshape(grad, grad.shape[:2] + (1,) + grad.shape[2:]),
            ctx.geometry)


def _check_conv_args(op, spatial, input, weight, bias, groups, transposed=False):
    """Validate shapes for conv ops; returns (x, batched) where an unbatched input gains a batch dim."""
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{op}: input and weight must be Tensors, got {type(input).__name__} and "
                        f"{type(weight).__name__}")
    dims = "(N, C, L)" if spatial == 1 else "(N, C, H, W)"
    x_nd = input.array.ndim
    if x_nd not in (spatial + 1, spatial + 2):
        raise ValueError(f"{op}: expected a {spatial + 1}-D (unbatched) or {spatial + 2}-D (batched) input "
                         f"of shape {dims}, got shape {tuple(input.shape)}")
    if weight.array.ndim != spatial + 2:
        kdims = "(O, C/groups, k)" if spatial == 1 else "(O, C/groups, kh, kw)"
        if transposed:
            kdims = "(C_in, C_out/groups, k)" if spatial == 1 else "(C_in, C_out/groups, kh, kw)"
        raise ValueError(f"{op}: expected a {spatial + 2}-D weight of shape {kdims}, got shape {tuple(weight.shape)}")
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    c = input.shape[0] if x_nd == spatial + 1 else input.shape[1]
    if transposed:
        if weight.shape[0] != c:
            raise ValueError(f"{op}: input has {c} channels (shape {tuple(input.shape)}) but the weight of shape "
                             f"{tuple(weight.shape)} expects {weight.shape[0]} (weight.shape[0])")
        if c % groups:
            raise ValueError(f"{op}: input channels {c} are not divisible by groups={groups}")
        n_out = weight.shape[1] * groups
    else:
        if weight.shape[1] * groups != c:
            raise ValueError(f"{op}: input has {c} channels (shape {tuple(input.shape)}) but the weight of shape "
                             f"{tuple(weight.shape)} with groups={groups} expects {weight.shape[1] * groups} "
                             f"(weight.shape[1] * groups)")
        if weight.shape[0] % groups:
            raise ValueError(f"{op}: out channels {weight.shape[0]} (weight shape {tuple(weight.shape)}) are not "
                             f"divisible by groups={groups}")
        n_out = weight.shape[0]
    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError(f"{op}: bias must be a Tensor or None, got {type(bias).__name__}")
        if tuple(bias.shape) != (n_out,):
            raise ValueError(f"{op}: bias must have shape ({n_out},) to match {n_out} output channels, got "
                             f"{tuple(bias.shape)}")
    _check_dtypes(op, input.array, weight.array, None if bias is None else bias.array)
    return x_nd == spatial + 2


def _with_batch(fn, input, batched):
    """Run ``fn`` on ``input``, giving an unbatched input a batch dimension of 1 and removing it after."""
    if batched:
        return fn(input)
    return fn(input.unsqueeze(0)).squeeze(0)


def conv_padding(padding, kernel, dilation, stride, op):
    """PyTorch's ``padding`` (int, tuple, 'same' or 'valid') as ``((lo, hi), ...)`` per spatial dim."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return tuple((0, 0) for _ in range(n))
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride={stride})")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(f"{op}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    p = _tuple(padding, n, "padding", op)
    if any(v < 0 for v in p):
        raise ValueError(f"{op}: padding must be non-negative, got {p}")
    return tuple((v, v) for v in p)


def _to_2d(values, spatial, fill):
    return values if spatial == 2 else (fill,) + tuple(values)


def _conv(op, spatial, input, weight, bias, stride, padding, dilation, groups):
    batched = _check_conv_args(op, spatial, input, weight, bias, groups)
    kernel = tuple(weight.shape[2:])
    stride = _positive(_tuple(stride, spatial, "stride", op), "stride", op)
    dilation = _positive(_tuple(dilation, spatial, "dilation", op), "dilation", op)
    pads = conv_padding(padding, kernel, dilation, stride, op)
    in_size = input.shape[-spatial:]
    for size, (lo, hi), k, d in zip(in_size, pads, kernel, dilation):
        if size + lo + hi < d * (k - 1) + 1:
            raise ValueError(f"{op}: the (dilated) kernel of size {d * (k - 1) + 1} is larger than the padded input "
                             f"of size {size + lo + hi} (input shape {tuple(input.shape)}, weight shape "
                             f"{tuple(weight.shape)}, padding {pads})")
    args = (_to_2d(stride, spatial, 1), _to_2d(pads, spatial, (0, 0)), _to_2d(dilation, spatial, 1), int(groups))
    return _with_batch(lambda x: ConvNd.apply(x, weight, bias, *args), input, batched)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-d cross-correlation: ``(N, C_in, L)`` with weight ``(C_out, C_in/groups, k)`` -> ``(N, C_out, L_out)``.

    ``padding`` is an int, a 1-tuple, 'valid' or 'same' (stride 1 only). An unbatched ``(C_in, L)`` input
    gives ``(C_out, L_out)``.
    """
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-d cross-correlation: ``(N, C_in, H, W)`` with weight ``(C_out, C_in/groups, kh, kw)`` ->
    ``(N, C_out, H_out, W_out)`` where ``H_out = (H + 2*pad - dilation*(kh-1) - 1) // stride + 1``.

    ``padding`` is an int, a pair, 'valid' or 'same' (stride 1 only; extra padding goes bottom/right as in
    PyTorch). ``groups=C_in`` is a depthwise convolution. An unbatched ``(C_in, H, W)`` input is accepted.

    >>> y = conv2d(x, w, b, stride=2, padding=1)   # x (8, 3, 32, 32), w (16, 3, 3, 3) -> y (8, 16, 16, 16)
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def transposed_padding(in_size, kernel, stride, padding, output_padding, dilation, op):
    """Per-dim ``(lo, hi)`` crop of the full transposed-conv output and the resulting output size."""
    pads, sizes = [], []
    for n, k, s, p, op_, d in zip(in_size, kernel, stride, padding, output_padding, dilation):
        if op_ >= max(s, d) or op_ < 0:
            raise ValueError(f"{op}: output_padding {op_} must be non-negative and smaller than either stride {s} "
                             f"or dilation {d}")
        full = (n - 1) * s + d * (k - 1) + 1
        out = full - 2 * p + op_
        if out <= 0:
            raise ValueError(f"{op}: input size {n} with kernel {k}, stride {s}, padding {p} and dilation {d} gives a "
                             f"non-positive output size {out}")
        pads.append((p, p - op_))
        sizes.append(out)
    return tuple(pads), tuple(sizes)


def _conv_transpose(op, spatial, input, weight, bias, stride, padding, output_padding, groups, dilation,
                    output_size=None):
    batched = _check_conv_args(op, spatial, input, weight, bias, groups, transposed=True)
    kernel = tuple(weight.shape[2:])
    stride = _positive(_tuple(stride, spatial, "stride", op), "stride", op)
    dilation = _positive(_tuple(dilation, spatial, "dilation", op), "dilation", op)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of ints (strings are not supported for "
                         f"transposed convolutions), got {padding!r}")
    padding = _tuple(padding, spatial, "padding", op)
    if any(v < 0 for v in padding):
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    in_size = tuple(input.shape[-spatial:])
    if output_size is not None:
        output_padding = output_padding_for(output_size, in_size, kernel, stride, padding, dilation, op)
    output_padding = _tuple(output_padding, spatial, "output_padding", op)
    pads, out_size = transposed_padding(in_size, kernel, stride, padding, output_padding, dilation, op)
    args = (_to_2d(stride, spatial, 1), _to_2d(pads, spatial, (0, 0)), _to_2d(dilation, spatial, 1), int(groups),
            _to_2d(out_size, spatial, 1))
    return _with_batch(lambda x: ConvTransposeNd.apply(x, weight, bias, *args), input, batched)


def output_padding_for(output_size, in_size, kernel, stride, padding, dilation, op):
    """The ``output_padding`` that makes a transposed convolution produce ``output_size`` (PyTorch's rule)."""
    spatial = len(in_size)
    size = tuple(int(s) for s in output_size)
    if len(size) == spatial + 2:
        size = size[2:]
    elif len(size) == spatial + 1:
        size = size[1:]
    if len(size) != spatial:
        raise ValueError(f"{op}: output_size must have {spatial} or {spatial + 2} elements, got {tuple(output_size)}")
    result = []
    for want, n, k, s, p, d in zip(size, in_size, kernel, stride, padding, dilation):
        smallest = (n - 1) * s - 2 * p + d * (k - 1) + 1
        if not smallest <= want < smallest + s:
            raise ValueError(f"{op}: requested output size {want} is not reachable from input size {n}; valid sizes "
                             f"are {smallest} to {smallest + s - 1}")
        result.append(want - smallest)
    return tuple(result)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """1-d transposed convolution: ``(N, C_in, L)`` with weight ``(C_in, C_out/groups, k)`` ->
    ``(N, C_out, (L-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1)``."""
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-d transposed convolution ("deconvolution"), the gradient of ``conv2d`` with respect to its input:
    ``(N, C_in, H, W)`` with weight ``(C_in, C_out/groups, kh, kw)`` -> ``(N, C_out, H_out, W_out)`` where
    ``H_out = (H-1)*stride - 2*padding + dilation*(kh-1) + output_padding + 1``.

    >>> y = conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)  # (4, 16, 8, 8) -> (4, C_out, 16, 16)
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


# --------------------------------------------------------------------------- unfold / fold
class Unfold(Function):
    """im2col as an op: (N, C, H, W) -> (N, C * kh * kw, L)."""

    def forward(ctx, x, kernel, stride, pads, dilation):
        n, c, h, w = x.shape
        (pt, pb), (pl, pr) = pads
        out_hw = (out_size(h, pt, pb, kernel[0], stride[0], dilation[0]),
                  out_size(w, pl, pr, kernel[1], stride[1], dilation[1]))
        ctx.geometry = (kernel, stride, pads, dilation, out_hw, (h + pt + pb, w + pl + pr))
        cols = im2col(pad2d(x, pads), kernel, stride, dilation, out_hw)
        # The 1x1 case is a view of the input; an op's result must own its memory.
        return cols.copy() if backend.array_module(x).shares_memory(cols, x) else cols

    def backward(ctx, grad):
        kernel, stride, pads, dilation, out_hw, padded = ctx.geometry
        return unpad2d(col2im(grad, padded, kernel, stride, dilation, out_hw), pads)

    def grad_graph(ctx, grad):
        kernel, stride, pads, dilation, out_hw, padded = ctx.geometry
        return ctx.graph_linear((grad,), lambda v: Unfold.apply(v, kernel, stride, pads, dilation))


class Fold(Function):
    """col2im as an op: (N, C * kh * kw, L) -> (N, C, H, W), summing overlapping values."""

    def forward(ctx, cols, output_size, kernel, stride, pads, dilation):
        (pt, pb), (pl, pr) = pads
        h, w = output_size
        out_hw = (out_size(h, pt, pb, kernel[0], stride[0], dilation[0]),
                  out_size(w, pl, pr, kernel[1], stride[1], dilation[1]))
        ctx.geometry = (kernel, stride, pads, dilation, out_hw)
        out = col2im(cols, (h + pt + pb, w + pl + pr), kernel, stride, dilation, out_hw)
        out = unpad2d(out, pads)
        return backend.array_module(out).ascontiguousarray(out)

    def backward(ctx, grad):
        kernel, stride, pads, dilation, out_hw = ctx.geometry
        return im2col(pad2d(grad, pads), kernel, stride, dilation, out_hw)

    def grad_graph(ctx, grad):
        kernel, stride, pads, dilation, out_hw = ctx.geometry
        size = tuple(grad.shape[-2:])
        return ctx.graph_linear((grad,), lambda v: Fold.apply(v, size, kernel, stride, pads, dilation))


def _fold_args(op, kernel_size, dilation, padding, stride):
    kernel = _positive(_tuple(kernel_size, 2, "kernel_size", op), "kernel_size", op)
    dilation = _positive(_tuple(dilation, 2, "dilation", op), "dilation", op)
    stride = _positive(_tuple(stride, 2, "stride", op), "stride", op)
    padding = _tuple(padding, 2, "padding", op)
    if any(v < 0 for v in padding):
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    return kernel, dilation, tuple((p, p) for p in padding), stride


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Extract sliding local blocks: ``(N, C, H, W) -> (N, C * kh * kw, L)`` with ``L`` the number of blocks
    (PyTorch's ``F.unfold``, also known as im2col)."""
    kernel, dilation, pads, stride = _fold_args("unfold", kernel_size, dilation, padding, stride)
    if not isinstance(input, Tensor) or input.array.ndim not in (3, 4):
        raise ValueError(f"unfold: expected a 3-D (unbatched) or 4-D input of shape (N, C, H, W), got "
                         f"{tuple(np.shape(input))}")
    batched = input.array.ndim == 4
    for size, (lo, hi), k, d in zip(input.shape[-2:], pads, kernel, dilation):
        if size + lo + hi < d * (k - 1) + 1:
            raise ValueError(f"unfold: the (dilated) kernel {kernel} does not fit the padded input (input shape "
                             f"{tuple(input.shape)}, padding {padding})")
    return _with_batch(lambda x: Unfold.apply(x, kernel, stride, pads, dilation), input, batched)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Combine sliding local blocks into an image, summing overlaps: ``(N, C * kh * kw, L) ->
    (N, C, *output_size)`` (PyTorch's ``F.fold``, col2im; the adjoint of ``unfold``)."""
    kernel, dilation, pads, stride = _fold_args("fold", kernel_size, dilation, padding, stride)
    output_size = _tuple(output_size, 2, "output_size", "fold")
    if not isinstance(input, Tensor) or input.array.ndim not in (2, 3):
        raise ValueError(f"fold: expected a 2-D (unbatched) or 3-D input of shape (N, C * kh * kw, L), got "
                         f"{tuple(np.shape(input))}")
    batched = input.array.ndim == 3
    kk = kernel[0] * kernel[1]
    ckk, ell = input.shape[-2:]
    blocks = 1
    for size, (lo, hi), k, d, s in zip(output_size, pads, kernel, dilation, stride):
        blocks *= out_size(size, lo, hi, k, s, d)
    if ckk % kk or ell != blocks:
        raise ValueError(f"fold: input of shape {tuple(input.shape)} does not match kernel {kernel} and output size "
                         f"{output_size}: expected dim -2 divisible by {kk} and {blocks} blocks in dim -1")
    return _with_batch(lambda x: Fold.apply(x, output_size, kernel, stride, pads, dilation), input, batched)
