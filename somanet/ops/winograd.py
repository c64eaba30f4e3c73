"""Winograd F(2x2, 3x3): 3x3 stride-1 convolutions with 2.25x fewer multiplications.

A 3x3 correlation of a 4x4 input tile ``d`` gives a 2x2 output tile, and Lavin & Gray's minimal
filtering algorithm computes it as ``Y = A^T [(G w G^T) * (B^T d B)] A``: 16 products per tile and
channel pair instead of 36. Summed over input channels, the 16 elementwise products of a batch become 16
matrix products, one batched GEMM::

    U = G w G^T          (16, O, C)        weight transform, once per call
    V = B^T d B          (16, N*T, C)      input transform of the N*T tiles (tiles overlap by 2 pixels)
    M = V @ U^T          (16, N*T, O)      the one GEMM
    Y = A^T M A          (N, O, Ho, Wo)    output transform

Backward runs the same algorithm transposed, with the output gradient's tiles ``dM = A dY A^T`` shared by
both gradients: ``dU = dM^T @ V`` then ``dW = G^T dU G``, and ``dV = dM @ U`` whose tiles are added back
into the image (the adjoint of the input transform). Each direction is again one batched GEMM.

The transforms are adds and subtracts of strided slices of channel-last arrays, looping over the 4 tile
offsets only. They cost a few passes over four times the input, so the algorithm pays only where the
GEMMs are big against them: many channels on both sides (``applies``). Rounding stays at float32's
level (the transforms' coefficients are 0, +-1 and +-0.5); the tests compare with PyTorch at the usual
tolerances and check the gradients by float64 finite differences. ``docs/cnn.md`` has the measurements.

Temporaries are fresh arrays, not the convolutions' per-thread scratch buffers: with somanet's malloc
settings freed blocks are reused without page faults, and buffers kept per slot and per thread raised
VGG-11-BN's peak memory by 46 MiB at one thread and 88 MiB at two while running 3 % slower.
"""
import numpy as np

from .. import backend

# G (4x3) is the filter transform; B^T (4x4) and A^T (2x4) are written out as adds in ``_bt_rows`` and
# ``output_transform``, their adjoints in ``_bt_adjoint`` and ``_at_adjoint``.
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
# U[a, b] = sum_kl G[a, k] G[b, l] w[k, l], i.e. U (16) = KG (16 x 9) @ w (9).
_KG = np.kron(_G, _G)
_KG_CACHE = {}

#: Fewest input and output channels, and channel pairs, for which the Winograd path beats the GEMMs over
#: copied windows (measured per layer, see docs/cnn.md: 64 -> 64 channels is a tie, 64 -> 128 gains).
MIN_CHANNELS = 64
MIN_CHANNEL_PAIRS = 64 * 128
#: Fewest output tiles per image for the forward pass: at one tile (2x2 outputs) the weight transform costs
#: more than the GEMM saves, while the backward pass, which shares one output-gradient transform between
#: both gradients, still gains.
MIN_TILES_FORWARD = 2


def _kg(dtype):
    kg = _KG_CACHE.get(dtype)
    if kg is None:
        kg = _KG_CACHE[dtype] = _KG.astype(dtype)
    return kg


def applies(x4, w4, groups, pads, stride, dilation, backward=False):
    """Whether the convolution of ``x4`` with ``w4`` takes the Winograd path (its forward pass, or with
    ``backward`` its gradients): NumPy float32/float64, a 3x3 kernel at stride 1 without dilation or
    groups, non-negative padding, and enough channels and tiles."""
    if backend.array_module(x4) is not np or x4.dtype not in (np.float32, np.float64):
        return False
    if w4.shape[2:] != (3, 3) or stride != (1, 1) or dilation != (1, 1) or groups != 1:
        return False
    if min(pads[0] + pads[1]) < 0:
        return False
    o, c = w4.shape[:2]
    if c < MIN_CHANNELS or o < MIN_CHANNELS or c * o < MIN_CHANNEL_PAIRS:
        return False
    th, tw = tiles(x4.shape[2:], pads)
    return th > 0 and tw > 0 and (backward or th * tw >= MIN_TILES_FORWARD)


def tiles(in_hw, pads):
    """Output tiles (rows, columns) of a padded 3x3 correlation: ceil(Ho / 2), ceil(Wo / 2)."""
    (pt, pb), (pl, pr) = pads
    ho, wo = in_hw[0] + pt + pb - 2, in_hw[1] + pl + pr - 2
    return (ho + 1) // 2, (wo + 1) // 2


def weight_transform(w4):
    """``G w G^T`` of every (output, input) channel pair: (O, C, 3, 3) -> (16, O, C), C-contiguous."""
    o, c = w4.shape[:2]
    return np.matmul(_kg(w4.dtype), w4.reshape(o * c, 9).T).reshape(16, o, c)


def weight_from_transform(du):
    """The adjoint of ``weight_transform``: ``G^T dU G`` from dU (16, O, C) -> (O, C, 3, 3)."""
    _, o, c = du.shape
    return np.matmul(du.reshape(16, o * c).T, _kg(du.dtype)).reshape(o, c, 3, 3)


def _bt_rows(d0, d1, d2, d3, out):
    """B^T along one axis: the four tile offsets' slices -> ``out[0..3]``."""
    np.subtract(d0, d2, out=out[0])
    np.add(d1, d2, out=out[1])
    np.subtract(d2, d1, out=out[2])
    np.subtract(d1, d3, out=out[3])


def input_transform(x4, pads):
    """``B^T d B`` of every tile of ``x4`` (N, C, H, W): (16, N*th*tw, C)."""
    n, c, h, w = x4.shape
    (pt, _), (pl, _) = pads
    th, tw = tiles((h, w), pads)
    hp, wp = 2 * th + 2, 2 * tw + 2
    xp = np.empty((n, hp, wp, c), x4.dtype)
    # Channel-last and zero-padded (only the border is cleared; the bottom/right margin may exceed the
    # padding by a row or column when the output size is odd, and those read as zeros too).
    xp[:, :pt] = 0
    xp[:, pt + h:] = 0
    xp[:, pt:pt + h, :pl] = 0
    xp[:, pt:pt + h, pl + w:] = 0
    xp[:, pt:pt + h, pl:pl + w] = x4.transpose(0, 2, 3, 1)
    rows = np.empty((4, n, th, wp, c), x4.dtype)
    _bt_rows(*(xp[:, k:k + 2 * th:2] for k in range(4)), rows)
    v = np.empty((4, 4, n, th, tw, c), x4.dtype)
    for i in range(4):
        r = rows[i]
        _bt_rows(*(r[:, :, k:k + 2 * tw:2] for k in range(4)), v[i])
    return v.reshape(16, n * th * tw, c)


def output_transform(m, out, bias):
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
    if bias is not None:
        y += bias
    out[...] = y[:, :ho, :wo].transpose(0, 3, 1, 2)
    return out


def output_grad_transform(g4):
    """``A dY A^T``: the output gradient (N, O, Ho, Wo) as the tiles' product gradients (16, N*T, O)."""
    n, o, ho, wo = g4.shape
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    gy = np.empty((n, 2 * th, 2 * tw, o), g4.dtype)
    gy[:, ho:] = 0
    gy[:, :ho, wo:] = 0
    gy[:, :ho, :wo] = g4.transpose(0, 2, 3, 1)
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


def input_grad_transform(dv, x_shape, pads, out):
    """The adjoint of ``input_transform``: tile gradients dV (16, N*th*tw, C) added back into the image,
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


# --------------------------------------------------------------------------- the three passes
def forward(x4, u, bias, pads, out):
    """The correlation of ``x4`` with the transformed weight ``u`` (16, O, C) into ``out`` (N, O, Ho, Wo)."""
    v = input_transform(x4, pads)
    m = np.matmul(v, u.transpose(0, 2, 1))
    return output_transform(m, out, bias)


def backward(g4, x4, u, pads, gx, need_w):
    """Gradients of ``forward`` given the output gradient ``g4``: writes dX into ``gx`` when it is not
    None, and returns dU (16, O, C) when ``need_w`` (else None)."""
    dm = output_grad_transform(g4)
    du = None
    if need_w:
        v = input_transform(x4, pads)
        du = np.matmul(dm.transpose(0, 2, 1), v)
    if gx is not None:
        dv = np.matmul(dm, u)
        input_grad_transform(dv, x4.shape, pads, gx)
    return du
