"""Window geometry shared by convolution and pooling, as plain array code: padding, the strided view of
every kernel window, im2col/col2im, and the stride phases of a padded image.

Functions that make a big temporary take ``empty``, a ``(shape, dtype) -> array`` allocator for its
uninitialised memory (a kernel passes one that reuses buffers); by default the array is fresh.
"""
import numpy as np

from .. import backend


def out_size(size, pad_lo, pad_hi, k, s, d):
    """Output length of a window of ``k`` (dilation ``d``) sliding by ``s`` over a padded axis."""
    return (size + pad_lo + pad_hi - d * (k - 1) - 1) // s + 1


def pad2d(x, pads, value=0, empty=None):
    """``x`` (N, C, H, W) padded by ``((top, bottom), (left, right))``; negative amounts crop.

    With ``empty`` the result is made by that allocator (its memory may hold old values: every element is
    written here)."""
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return x
    if min(pt, pb, pl, pr) < 0:
        n_h, n_w = x.shape[2], x.shape[3]
        x = x[:, :, max(-pt, 0):n_h - max(-pb, 0), max(-pl, 0):n_w - max(-pr, 0)]
        pt, pb, pl, pr = max(pt, 0), max(pb, 0), max(pl, 0), max(pr, 0)
        if pt == pb == pl == pr == 0:
            return x
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    shape = (n, c, h + pt + pb, w + pl + pr)
    if empty is None:
        out = xp.zeros(shape, x.dtype) if value == 0 else xp.full(shape, value, x.dtype)
    else:
        out = empty(shape, x.dtype)
        out[:, :, :pt] = value
        out[:, :, pt + h:] = value
        out[:, :, pt:pt + h, :pl] = value
        out[:, :, pt:pt + h, pl + w:] = value
    out[:, :, pt:pt + h, pl:pl + w] = x
    return out


def unpad2d(x, pads):
    """The inverse of ``pad2d`` for gradients: the interior of ``x``, zero-extended where ``pad2d`` cropped."""
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return x
    h, w = x.shape[2], x.shape[3]
    inner = x[:, :, max(pt, 0):h - max(pb, 0), max(pl, 0):w - max(pr, 0)]
    if min(pt, pb, pl, pr) < 0:
        inner = pad2d(inner, ((max(-pt, 0), max(-pb, 0)), (max(-pl, 0), max(-pr, 0))))
    return inner


def as_strided(x, shape, strides):
    """A read-only strided view of ``x`` made by its own array module (CuPy's takes no ``writeable``)."""
    module = backend.array_module(x)
    if module is np:
        return np.lib.stride_tricks.as_strided(x, shape, strides, writeable=False)
    return module.lib.stride_tricks.as_strided(x, shape, strides)


def windows(xp, kernel, stride, dilation, out_hw, order="nckl"):
    """Read-only strided view of every kernel window of the padded input ``xp`` (N, C, Hp, Wp).

    ``order='nckl'`` gives ``(N, C, kh, kw, Ho, Wo)``, ``order='ckn'`` gives ``(C, kh, kw, N, Ho, Wo)``.
    """
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    n, c = xp.shape[:2]
    s_n, s_c, s_h, s_w = xp.strides
    if order == "nckl":
        return as_strided(xp, (n, c, kh, kw, ho, wo), (s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw))
    return as_strided(xp, (c, kh, kw, n, ho, wo), (s_c, s_h * dh, s_w * dw, s_n, s_h * sh, s_w * sw))


def contiguous_copy(view, empty=None):
    """A C-contiguous copy of ``view`` (made by ``empty`` when given)."""
    xp = backend.array_module(view)
    if empty is None:
        return xp.ascontiguousarray(view)
    out = empty(view.shape, view.dtype)
    out[...] = view
    return out


def im2col(xp, kernel, stride, dilation, out_hw, empty=None):
    """The im2col buffer ``(N, C * kh * kw, Ho * Wo)`` of the padded input (a view when nothing moves)."""
    n, c, hp, wp = xp.shape
    (kh, kw), (ho, wo) = kernel, out_hw
    if kh == kw == 1 and stride == (1, 1) and (hp, wp) == (ho, wo):
        return xp.reshape(n, c, ho * wo)
    view = windows(xp, kernel, stride, dilation, out_hw)
    return contiguous_copy(view, empty).reshape(n, c * kh * kw, ho * wo)


def phase_shape(padded_hw, stride):
    """``(Hq, Wq)``: the size of each stride phase of a ``padded_hw`` plane."""
    return tuple(-(-n // st) for n, st in zip(padded_hw, stride))


def to_phases(padded, stride, empty=None):
    """Deinterleave ``padded`` (N, C, Hp, Wp) into its stride phases ``(sh, sw, N, C, Hq, Wq)`` with
    ``phases[a, b] = padded[:, :, a::sh, b::sw]`` (one copy), so that every kernel offset's slab has unit
    stride along rows."""
    sh, sw = stride
    if (sh, sw) == (1, 1):
        return padded[None, None]
    xp = backend.array_module(padded)
    shape = (sh, sw) + padded.shape[:2] + phase_shape(padded.shape[2:], stride)
    out = empty(shape, padded.dtype) if empty is not None else xp.empty(shape, padded.dtype)
    for a in range(sh):
        for b in range(sw):
            part = padded[:, :, a::sh, b::sw]
            out[a, b, :, :, :part.shape[2], :part.shape[3]] = part
    return out


def from_phases(phases, padded_shape, stride):
    """Interleave phase planes back into a (fresh) padded image; the inverse of ``to_phases``."""
    sh, sw = stride
    if (sh, sw) == (1, 1):
        return phases[0, 0]
    xp = backend.array_module(phases)
    out = xp.empty(padded_shape, phases.dtype)
    for a in range(sh):
        for b in range(sw):
            target = out[:, :, a::sh, b::sw]
            target[...] = phases[a, b, :, :, :target.shape[2], :target.shape[3]]
    return out


def phase_slab(phases, i, j, stride, dilation, out_hw):
    """The slab of kernel offset ``(i, j)`` in phase planes: every window's element at that offset."""
    (sh, sw), (dh, dw), (ho, wo) = stride, dilation, out_hw
    a, b = i * dh, j * dw
    return phases[a % sh, b % sw, :, :, a // sh:a // sh + ho, b // sw:b // sw + wo]


def col2im(cols, padded_hw, kernel, stride, dilation, out_hw):
    """Sum the column buffer ``(N, C * kh * kw, Ho * Wo)`` back onto the padded image ``(N, C, Hp, Wp)``.

    The loop runs over kernel offsets only; each offset adds one slab of every image at once, into the
    stride phases of the image when the stride is above 1, interleaved at the end.
    """
    xp = backend.array_module(cols)
    (kh, kw), (ho, wo) = kernel, out_hw
    n = cols.shape[0]
    c = cols.shape[1] // (kh * kw)
    hp, wp = padded_hw
    cols = cols.reshape(n, c, kh, kw, ho, wo)
    if kh == kw == 1 and stride == (1, 1) and (hp, wp) == (ho, wo):
        return cols.reshape(n, c, ho, wo)
    phases = xp.zeros(tuple(stride) + (n, c) + phase_shape((hp, wp), stride), cols.dtype)
    for i in range(kh):
        for j in range(kw):
            phase_slab(phases, i, j, stride, dilation, out_hw)[...] += cols[:, :, i, j]
    return from_phases(phases, (n, c, hp, wp), stride)
