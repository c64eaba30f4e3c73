"""Winograd minimal filtering for 3x3 stride-1 convolutions: F(2x2, 3x3) and F(4x4, 3x3).

A 3x3 correlation of an ``(m+2) x (m+2)`` input tile ``d`` gives an ``m x m`` output tile, and Lavin &
Gray's minimal filtering algorithm computes it as ``Y = A^T [(G w G^T) * (B^T d B)] A``: ``(m+2)^2``
products per tile and channel pair instead of ``9 m^2`` (16 against 36 for m = 2, 36 against 144 for
m = 4). Summed over input channels, the ``(m+2)^2`` elementwise products of a batch become as many matrix
products, one batched GEMM (``P = (m+2)^2`` tile positions, ``T`` tiles)::

    U = G w G^T          (P, O, C)          weight transform, once per call
    V = B^T d B          (P, N*T, C)        input transform of the N*T tiles (tiles overlap by 2 pixels)
    M = V @ U^T          (P, N*T, O)        the one GEMM
    Y = A^T M A          (N, O, Ho, Wo)     output transform

Backward runs the same algorithm transposed, with the output gradient's tiles ``dM = A dY A^T`` shared by
both gradients: ``dU = dM^T @ V`` then ``dW = G^T dU G``, and ``dV = dM @ U`` whose tiles are added back
into the image (the adjoint of the input transform). Each direction is again one batched GEMM.

Both tile sizes work on channel-last arrays. F(2x2)'s transforms are adds and subtracts of strided slices,
looping over the 4 tile offsets. F(4x4)'s coefficients (B^T's 4 and 5, A^T's 8) would take about 20 such
passes per axis, so its transforms gather the 6 tile offsets into one array (one strided copy) and apply
B^T, A^T or their adjoints as one small GEMM along that axis. The transforms cost a few passes over a
few times the input, so the algorithm pays only where the GEMMs are big against them: many channels on
both sides (``output_tile``), and F(4x4) only on planes with enough 4x4 tiles. Rounding: F(2x2)'s
coefficients are 0, +-1 and +-0.5, so it stays at float32's level; F(4x4)'s (up to 8 in A^T, fractions
down to 1/24 in G) cost about one decimal digit (relative error about 1e-5 of the output's magnitude
against 1e-6). The tests compare both with PyTorch at the usual tolerances and check the gradients by
float64 finite differences. ``docs/cnn.md`` and ``docs/dev/kernels.md`` have the measurements.

Temporaries are fresh arrays, not the convolutions' per-thread scratch buffers: with somanet's malloc
settings freed blocks are reused without page faults, and per-thread buffers raised peak memory for no
gain.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import backend

# F(2x2, 3x3). G (4x3) is the filter transform; B^T (4x4) and A^T (2x4) are written out as adds in
# ``_bt_rows`` and ``_output_transform2``, their adjoints in ``_bt_adjoint`` and ``_at_adjoint``.
_G2 = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
# F(4x4, 3x3), with the interpolation points 0, +-1, +-2 and infinity.
_G4 = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
_BT4 = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                 [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=np.float64)
_AT4 = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                dtype=np.float64)
# U[a, b] = sum_kl G[a, k] G[b, l] w[k, l], i.e. U (P) = KG (P x 9) @ w (9).
_MATRICES = {"kg2": np.kron(_G2, _G2), "kg4": np.kron(_G4, _G4), "bt4": _BT4, "b4": _BT4.T, "at4": _AT4,
             "a4": _AT4.T}
_CACHE = {}

# Thresholds of ``output_tile``: the shapes where each tile size beat the window GEMMs (docs/dev/kernels.md
# has the measurements). The transforms cost a few passes over the activations, so the GEMMs must be big.
#: Fewest input and output channels for F(2x2): thinner GEMMs lose to the windows.
MIN_CHANNELS = 64
#: Fewest input and output channels for F(4x4).
MIN_CHANNELS_F4 = 32
#: Fewest channel pairs for F(4x4)'s forward pass (backward shares one gradient transform, so gains earlier).
MIN_CHANNEL_PAIRS_F4_FORWARD = 32 * 48
#: Fewest channel pairs for F(2x2).
MIN_CHANNEL_PAIRS = 64 * 128
#: Fewest F(2x2) output tiles per image for the forward pass (one tile: the weight transform dominates).
MIN_TILES_FORWARD = 2
#: F(4x4) needs at least this many 4x4 tiles per image (its weight transform is 2.25x F(2x2)'s) ...
MIN_TILES_F4 = 4
#: ... and at most this share of F(2x2)'s products, counting the tiles' padding.
MAX_PRODUCT_SHARE_F4 = 0.75


def _matrix(name, dtype):
    key = (name, np.dtype(dtype))
    m = _CACHE.get(key)
    if m is None:
        m = _CACHE[key] = np.ascontiguousarray(_MATRICES[name].astype(dtype))
    return m


def supported(x4, w4, groups, pads, stride, dilation):
    """Whether Winograd can compute this convolution at all: NumPy float32/float64, a 3x3 kernel at stride
    1 without dilation or groups, non-negative padding and at least one output."""
    if backend.array_module(x4) is not np or x4.dtype not in (np.float32, np.float64):
        return False
    if tuple(w4.shape[2:]) != (3, 3) or tuple(stride) != (1, 1) or tuple(dilation) != (1, 1) or groups != 1:
        return False
    if min(pads[0] + pads[1]) < 0:
        return False
    th, tw = tiles(x4.shape[2:], pads)
    return th > 0 and tw > 0


def output_tile(x4, w4, groups, pads, stride, dilation, backward=False):
    """The output tile side, 4 or 2, that pays for this convolution (its forward pass, or with
    ``backward`` its gradients), or 0 when the window GEMMs are faster or Winograd does not apply
    (``supported``): enough channels and tiles."""
    if not supported(x4, w4, groups, pads, stride, dilation):
        return 0
    o, c = w4.shape[:2]
    if min(c, o) < min(MIN_CHANNELS, MIN_CHANNELS_F4):
        return 0
    th, tw = tiles(x4.shape[2:], pads)
    th4, tw4 = tiles(x4.shape[2:], pads, 4)
    if th4 * tw4 >= MIN_TILES_F4 and 36 * th4 * tw4 <= MAX_PRODUCT_SHARE_F4 * 16 * th * tw:
        if min(c, o) >= MIN_CHANNELS_F4 and (backward or c * o >= MIN_CHANNEL_PAIRS_F4_FORWARD):
            return 4
    if min(c, o) < MIN_CHANNELS or c * o < MIN_CHANNEL_PAIRS or not (backward or th * tw >= MIN_TILES_FORWARD):
        return 0
    return 2


def tiles(in_hw, pads, m=2):
    """Output tiles (rows, columns) of ``m x m`` in a padded 3x3 correlation: ceil(Ho / m), ceil(Wo / m)."""
    (pt, pb), (pl, pr) = pads
    ho, wo = in_hw[0] + pt + pb - 2, in_hw[1] + pl + pr - 2
    return -(-ho // m), -(-wo // m)


def _tile_of(transformed):
    """The output tile side of a transformed array (P, ...): P = 16 -> 2, P = 36 -> 4."""
    return {16: 2, 36: 4}[transformed.shape[0]]


def weight_transform(w4, m=2, out=None):
    """``G w G^T`` of every (output, input) channel pair for ``m x m`` output tiles: (O, C, 3, 3) ->
    ((m+2)^2, O, C), C-contiguous; or written into ``out``, a view of that shape whose (O, C) blocks are
    C-contiguous (a range of output channels of a bigger result)."""
    o, c = w4.shape[:2]
    p = (m + 2) ** 2
    if out is None:
        out = np.empty((p, o, c), w4.dtype)
    np.matmul(_matrix(f"kg{m}", w4.dtype), w4.reshape(o * c, 9).T, out=_flat_view(out, (p, o * c)))
    return out


def weight_from_transform(du, out=None):
    """The adjoint of ``weight_transform``: ``G^T dU G`` from dU ((m+2)^2, O, C) -> (O, C, 3, 3), fresh or
    written into the C-contiguous ``out``."""
    p, o, c = du.shape
    if out is None:
        out = np.empty((o, c, 3, 3), du.dtype)
    np.matmul(du.reshape(p, o * c).T, _matrix(f"kg{_tile_of(du)}", du.dtype), out=_flat_view(out, (o * c, 9)))
    return out


def _flat_view(a, shape):
    """``a`` reshaped as a view (writes through it land in ``a``); an error where that would need a copy."""
    view = a.view()
    view.shape = shape  # raises instead of copying
    return view


def _padded_channel_last(x4, pads, hp, wp):
    """``x4`` (N, C, H, W) as a channel-last (N, hp, wp, C) copy with ``pads``' top and left margins; only
    the border is cleared (the bottom/right margin may exceed the padding when the tiles overhang the
    output, and those positions read as zeros too)."""
    n, c, h, w = x4.shape
    (pt, _), (pl, _) = pads
    xp = np.empty((n, hp, wp, c), x4.dtype)
    xp[:, :pt] = 0
    xp[:, pt + h:] = 0
    xp[:, pt:pt + h, :pl] = 0
    xp[:, pt:pt + h, pl + w:] = 0
    xp[:, pt:pt + h, pl:pl + w] = x4.transpose(0, 2, 3, 1)
    return xp


def _write_nchw(y, out, bias):
    """The tiles' channel-last outputs ``y`` (N, m*th, m*tw, O), plus ``bias`` (in place), cropped into
    ``out`` (N, O, Ho, Wo)."""
    if bias is not None:
        y += bias
    out[...] = y[:, :out.shape[2], :out.shape[3]].transpose(0, 3, 1, 2)
    return out


def _tiled_channel_last(g4, m):
    """The output gradient (N, O, Ho, Wo) as a channel-last (N, m*th, m*tw, O) copy, zero where the tiles
    overhang the output."""
    n, o, ho, wo = g4.shape
    th, tw = -(-ho // m), -(-wo // m)
    gy = np.empty((n, m * th, m * tw, o), g4.dtype)
    gy[:, ho:] = 0
    gy[:, :ho, wo:] = 0
    gy[:, :ho, :wo] = g4.transpose(0, 2, 3, 1)
    return gy


# --------------------------------------------------------------------------- F(2x2, 3x3) transforms
def _bt_rows(d0, d1, d2, d3, out):
    """B^T along one axis: the four tile offsets' slices -> ``out[0..3]``."""
    np.subtract(d0, d2, out=out[0])
    np.add(d1, d2, out=out[1])
    np.subtract(d2, d1, out=out[2])
    np.subtract(d1, d3, out=out[3])


def _input_transform2(x4, pads):
    """``B^T d B`` of every 4x4 tile of ``x4`` (N, C, H, W): (16, N*th*tw, C)."""
    n, c, h, w = x4.shape
    th, tw = tiles((h, w), pads)
    xp = _padded_channel_last(x4, pads, 2 * th + 2, 2 * tw + 2)
    rows = np.empty((4, n, th, 2 * tw + 2, c), x4.dtype)
    _bt_rows(*(xp[:, k:k + 2 * th:2] for k in range(4)), rows)
    v = np.empty((4, 4, n, th, tw, c), x4.dtype)
    for i in range(4):
        r = rows[i]
        _bt_rows(*(r[:, :, k:k + 2 * tw:2] for k in range(4)), v[i])
    return v.reshape(16, n * th * tw, c)


def _output_transform2(m, out, bias):
    """``A^T M A`` of the tiles' products ``m`` (16, N*th*tw, O) into ``out`` (N, O, Ho, Wo)."""
    n, o, ho, wo = out.shape
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    m = m.reshape(4, 4, n, th, tw, o)
    s = np.empty((2, 4, n, th, tw, o), m.dtype)
    np.add(m[0], m[1], out=s[0])
    s[0] += m[2]
    np.subtract(m[1], m[2], out=s[1])
    s[1] -= m[3]
    y = np.empty((n, 2 * th, 2 * tw, o), m.dtype)
    for a in range(2):
        t = s[a]
        y0 = y[:, a::2, 0::2]
        np.add(t[0], t[1], out=y0)
        y0 += t[2]
        y1 = y[:, a::2, 1::2]
        np.subtract(t[1], t[2], out=y1)
        y1 -= t[3]
    return _write_nchw(y, out, bias)


def _output_grad_transform2(g4):
    """``A dY A^T``: the output gradient (N, O, Ho, Wo) as the tiles' product gradients (16, N*T, O)."""
    gy = _tiled_channel_last(g4, 2)
    n, hh, ww, o = gy.shape
    th, tw = hh // 2, ww // 2
    # A^T = [[1, 1, 1, 0], [0, 1, -1, -1]], so the adjoint of y_a = sum_i A^T[a, i] m_i is
    # dm = (dy0, dy0 + dy1, dy0 - dy1, -dy1) along each axis.
    q = np.empty((4, n, th, 2 * tw, o), g4.dtype)
    _at_adjoint(gy[:, 0::2], gy[:, 1::2], q)
    dm = np.empty((4, 4, n, th, tw, o), g4.dtype)
    for i in range(4):
        _at_adjoint(q[i][:, :, 0::2], q[i][:, :, 1::2], dm[i])
    return dm.reshape(16, n * th * tw, o)


def _at_adjoint(d0, d1, out):
    out[0] = d0
    np.add(d0, d1, out=out[1])
    np.subtract(d0, d1, out=out[2])
    np.negative(d1, out=out[3])


def _bt_adjoint(dv, even, odd, axis, tmp):
    """The adjoint of ``_bt_rows``: the four offsets' gradients ``dv[0..3]`` (``T`` tiles along ``axis``)
    written into the even and odd positions ``2 t`` / ``2 t + 1`` (``T + 1`` each along ``axis``) of the
    padded input's gradient, where neighbouring tiles overlap."""
    n_tiles = dv[0].shape[axis]

    def at(sl):
        return (slice(None),) * axis + (sl,)

    head, last, tail = at(slice(0, n_tiles)), at(n_tiles), at(slice(1, None))
    # B^T's columns: offset 0 <- dv0; 1 <- dv1 - dv2 + dv3; 2 <- dv1 + dv2 - dv0; 3 <- -dv3.
    even[head] = dv[0]
    even[last] = 0
    np.add(dv[1], dv[2], out=tmp)
    tmp -= dv[0]
    even[tail] += tmp
    o = odd[head]
    np.subtract(dv[1], dv[2], out=o)
    o += dv[3]
    odd[last] = 0
    odd[tail] -= dv[3]


def _input_grad_transform2(dv, x_shape, pads, out):
    """The adjoint of ``_input_transform2``: tile gradients dV (16, N*th*tw, C) added back into the image,
    cropped to ``x_shape`` (N, C, H, W) and written into ``out``."""
    n, c, h, w = x_shape
    (pt, _), (pl, _) = pads
    th, tw = tiles((h, w), pads)
    hp, wp = 2 * th + 2, 2 * tw + 2
    dv = dv.reshape(4, 4, n, th, tw, c)
    rows = np.empty((4, n, th, wp, c), dv.dtype)
    tmp = np.empty((n, th, tw, c), dv.dtype)
    for i in range(4):
        _bt_adjoint(dv[i], rows[i][:, :, 0::2], rows[i][:, :, 1::2], 2, tmp)
    xp = np.empty((n, hp, wp, c), dv.dtype)
    _bt_adjoint(rows, xp[:, 0::2], xp[:, 1::2], 1, np.empty((n, th, wp, c), dv.dtype))
    out[...] = xp[:, pt:pt + h, pl:pl + w].transpose(0, 3, 1, 2)
    return out


# --------------------------------------------------------------------------- F(4x4, 3x3) transforms
def _offsets(a, axis, n_tiles):
    """The 6 overlapping offsets ``4 t + k`` (k = 0..5) of ``n_tiles`` tiles along ``axis`` of ``a``, as a
    read-only view with a new leading axis k and that axis cut to ``n_tiles``."""
    strides = a.strides
    shape = (6,) + a.shape[:axis] + (n_tiles,) + a.shape[axis + 1:]
    steps = (strides[axis],) + strides[:axis] + (4 * strides[axis],) + strides[axis + 1:]
    return as_strided(a, shape, steps, writeable=False)


def _along_first(matrix, a):
    """``matrix`` (r x k) applied along the first axis (k) of ``a``, with any middle axes broadcast: one
    GEMM per leading block."""
    return np.matmul(matrix, a.reshape(a.shape[0], -1)).reshape((matrix.shape[0],) + a.shape[1:])


def _input_transform4(x4, pads):
    """``B^T d B`` of every 6x6 tile of ``x4`` (N, C, H, W): (36, N*th*tw, C). Each axis gathers the 6
    offsets of its tiles (one copy) and applies B^T as one GEMM along them."""
    n, c, h, w = x4.shape
    th, tw = tiles((h, w), pads, 4)
    xp = _padded_channel_last(x4, pads, 4 * th + 2, 4 * tw + 2)
    bt = _matrix("bt4", x4.dtype)
    rows = _along_first(bt, np.ascontiguousarray(_offsets(xp, 1, th)))        # (6i, n, th, wp, c)
    cols = np.ascontiguousarray(_offsets(rows, 3, tw).swapaxes(0, 1))         # (6i, 6k, n, th, tw, c)
    v = np.matmul(bt, cols.reshape(6, 6, -1))                                  # (6i, 6j, n*th*tw*c)
    return v.reshape(36, n * th * tw, c)


def _output_transform4(m, out, bias):
    """``A^T M A`` of the tiles' products ``m`` (36, N*th*tw, O) into ``out`` (N, O, Ho, Wo)."""
    n, o, ho, wo = out.shape
    th, tw = -(-ho // 4), -(-wo // 4)
    at = _matrix("at4", m.dtype)
    rows = _along_first(at, m.reshape(6, 6, -1))                               # (4a, 6j, NT*O)
    y = np.matmul(at, rows).reshape(4, 4, n, th, tw, o)                        # (4a, 4b, n, th, tw, o)
    yy = np.empty((n, th, 4, tw, 4, o), m.dtype)
    yy[...] = y.transpose(2, 3, 0, 4, 1, 5)
    return _write_nchw(yy.reshape(n, 4 * th, 4 * tw, o), out, bias)


def _output_grad_transform4(g4):
    """``A dY A^T``: the output gradient (N, O, Ho, Wo) as the tiles' product gradients (36, N*T, O)."""
    gy = _tiled_channel_last(g4, 4)
    n, hh, ww, o = gy.shape
    th, tw = hh // 4, ww // 4
    q = np.empty((4, 4, n, th, tw, o), g4.dtype)
    q[...] = gy.reshape(n, th, 4, tw, 4, o).transpose(2, 4, 0, 1, 3, 5)
    a = _matrix("a4", g4.dtype)
    dm = np.matmul(a, _along_first(a, q.reshape(4, 4, -1)))                   # (6i, 6j, NT*O)
    return dm.reshape(36, n * th * tw, o)


def _add_offsets(grad, axis, n_tiles, parts):
    """The adjoint of ``_offsets``: ``parts`` (6, ...) for the offsets ``4 t + k`` written into ``grad``
    (``4 n_tiles + 2`` long along ``axis``), overlapping positions summed."""
    lead = (slice(None),) * axis
    grad[lead + (slice(4 * n_tiles, None),)] = 0
    shape = grad.shape[:axis] + (n_tiles, 4) + grad.shape[axis + 1:]
    # Offsets 0-3 of each tile tile the first 4 n_tiles positions; 4 and 5 overlap the next tile's 0 and 1.
    grad[lead + (slice(0, 4 * n_tiles),)].reshape(shape)[...] = np.moveaxis(parts[:4], 0, axis + 1)
    for k in (4, 5):
        grad[lead + (slice(k, k + 4 * n_tiles, 4),)] += parts[k]


def _input_grad_transform4(dv, x_shape, pads, out):
    """The adjoint of ``_input_transform4``: tile gradients dV (36, N*th*tw, C) added back into the image,
    cropped to ``x_shape`` (N, C, H, W) and written into ``out``."""
    n, c, h, w = x_shape
    (pt, _), (pl, _) = pads
    th, tw = tiles((h, w), pads, 4)
    b = _matrix("b4", dv.dtype)
    cols = np.matmul(b, dv.reshape(6, 6, -1)).reshape(6, 6, n, th, tw, c)     # (6i, 6k, ...)
    rows = np.empty((6, n, th, 4 * tw + 2, c), dv.dtype)
    _add_offsets(rows, 3, tw, cols.swapaxes(0, 1))
    xp = np.empty((n, 4 * th + 2, 4 * tw + 2, c), dv.dtype)
    _add_offsets(xp, 1, th, _along_first(b, rows))
    out[...] = xp[:, pt:pt + h, pl:pl + w].transpose(0, 3, 1, 2)
    return out


# --------------------------------------------------------------------------- the three passes
_INPUT = {2: _input_transform2, 4: _input_transform4}
_OUTPUT = {2: _output_transform2, 4: _output_transform4}
_OUTPUT_GRAD = {2: _output_grad_transform2, 4: _output_grad_transform4}
_INPUT_GRAD = {2: _input_grad_transform2, 4: _input_grad_transform4}


def forward(x4, u, bias, pads, out):
    """The correlation of ``x4`` with the transformed weight ``u`` ((m+2)^2, O, C) into ``out``
    (N, O, Ho, Wo); the tile size follows ``u``."""
    m = _tile_of(u)
    v = _INPUT[m](x4, pads)
    return _OUTPUT[m](np.matmul(v, u.transpose(0, 2, 1)), out, bias)


def backward(g4, x4, u, pads, gx, need_w):
    """Gradients of ``forward`` given the output gradient ``g4``: writes dX into ``gx`` when it is not
    None, and returns dU ((m+2)^2, O, C) when ``need_w`` (else None)."""
    m = _tile_of(u)
    dm = _OUTPUT_GRAD[m](g4)
    du = None
    if need_w:
        du = np.matmul(dm.transpose(0, 2, 1), _INPUT[m](x4, pads))
    if gx is not None:
        _INPUT_GRAD[m](np.matmul(dm, u), x4.shape, pads, gx)
    return du
