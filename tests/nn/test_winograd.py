"""Winograd F(2x2, 3x3) and F(4x4, 3x3) convolutions: the layers each takes are checked against PyTorch
(outputs and every gradient), by float64 finite differences with the thresholds lowered, across threads,
and the dispatch rules (which convolutions take which tile size)."""
import numpy as np
import pytest

import somanet
import somanet.nn as nn
import somanet.nn.functional as F
from somanet.autograd import gradcheck
from somanet.kernels import winograd
from reference import compare, copy_state, torch_or_skip

torch = torch_or_skip()
TF = torch.nn.functional

# Each output sums 9 * C float32 products (C up to 128) in another order than PyTorch's kernels.
TOL = dict(rtol=1e-4, atol=2e-4)


def _x(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _tile(xs, ws, padding, backward=False):
    x, w = np.empty(xs, np.float32), np.empty(ws, np.float32)
    pads = padding if isinstance(padding, tuple) else ((padding, padding), (padding, padding))
    return winograd.output_tile(x, w, 1, pads, (1, 1), (1, 1), backward)


def _takes(xs, ws, padding, backward=False):
    return _tile(xs, ws, padding, backward) > 0


WINOGRAD_CASES = [
    # (input shape, weight shape, padding, output tile side taken, asserted).
    ((2, 64, 6, 7), (128, 64, 3, 3), 1, 4),     # 6x7 outputs: the last tile row and column overhang
    ((2, 128, 5, 5), (64, 128, 3, 3), 1, 2),    # odd both ways, fewer outputs than inputs
    ((3, 64, 8, 6), (128, 64, 3, 3), 0, 2),     # valid: no padding, 6x4 outputs (too few 4x4 tiles)
    ((1, 64, 4, 9), (128, 64, 3, 3), 2, 4),     # padding 2, batch 1, non-square
    ((2, 64, 9, 11), (64, 64, 3, 3), 0, 4),     # valid, 7x9 outputs; 64 -> 64 channels take only F(4x4)
    ((3, 64, 12, 8), (96, 64, 3, 3), 1, 4),     # whole tiles: 3x2 of them, nothing overhangs
]


@pytest.mark.parametrize("xs, ws, padding, tile", WINOGRAD_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_winograd_conv2d_matches_torch(xs, ws, padding, tile, bias):
    assert _tile(xs, ws, padding) == tile and _tile(xs, ws, padding, backward=True) == tile
    scale = 1 / np.sqrt(9 * ws[1])
    arrays = [_x(*xs), _x(*ws, seed=1, scale=scale)] + ([_x(ws[0], seed=2)] if bias else [])
    out = compare(lambda x, w, *b: F.conv2d(x, w, b[0] if b else None, padding=padding),
                  lambda x, w, *b: TF.conv2d(x, w, b[0] if b else None, padding=padding), *arrays, **TOL)
    assert out.dtype == np.float32


@pytest.mark.parametrize("xs, ws, forward", [
    ((2, 32, 8, 8), (32, 32, 3, 3), 0),         # 32 -> 32: the forward pass keeps the windows
    ((2, 32, 9, 7), (48, 32, 3, 3), 4),         # overhanging tiles
    ((3, 48, 8, 8), (32, 48, 3, 3), 4),
])
def test_f4_on_32_channel_layers_matches_torch(xs, ws, forward):
    assert _tile(xs, ws, 1) == forward and _tile(xs, ws, 1, backward=True) == 4
    compare(lambda x, w, b: F.conv2d(x, w, b, padding=1), lambda x, w, b: TF.conv2d(x, w, b, padding=1),
            _x(*xs), _x(*ws, seed=1, scale=1 / np.sqrt(9 * ws[1])), _x(ws[0], seed=2), **TOL)


def test_backward_only_on_one_tile_planes():
    # 2x2 planes: the forward pass keeps the GEMMs over copied windows, the gradients take Winograd.
    xs, ws = (4, 128, 2, 2), (128, 128, 3, 3)
    assert not _takes(xs, ws, 1) and _takes(xs, ws, 1, backward=True)
    compare(lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: TF.conv2d(x, w, padding=1),
            _x(*xs), _x(*ws, seed=1, scale=1 / 34), **TOL)


def test_winograd_module_and_same_padding():
    s_conv, t_conv = nn.Conv2d(64, 128, 3, padding="same"), torch.nn.Conv2d(64, 128, 3, padding="same")
    copy_state(t_conv, s_conv)
    x = _x(2, 64, 7, 7)
    s_out, t_out = s_conv(somanet.tensor(x)), t_conv(torch.from_numpy(x))
    np.testing.assert_allclose(s_out.array, t_out.detach().numpy(), **TOL)
    s_out.sum().backward()
    t_out.sum().backward()
    np.testing.assert_allclose(s_conv.weight.grad.array, t_conv.weight.grad.numpy(), rtol=1e-4, atol=1e-3)
    assert s_conv.weight.grad.dtype == np.float32 and s_conv.weight.grad.array.flags.c_contiguous


def test_conv_transpose_through_winograd_matches_torch():
    # A transposed convolution's forward is a convolution's input gradient: at stride 1 the forward kernel
    # with the flipped weight, which takes the Winograd path at these channel counts.
    compare(lambda x, w: F.conv_transpose2d(x, w, padding=1), lambda x, w: TF.conv_transpose2d(x, w, padding=1),
            _x(2, 128, 5, 6), _x(128, 64, 3, 3, seed=1, scale=1 / 34), **TOL)


@pytest.fixture
def forced(request):
    """The ``conv2d`` kernel named by the test's parameter, forced for its duration."""
    with somanet.backends.cpu.kernel("conv2d", request.param):
        yield request.param


@pytest.mark.parametrize("forced", ["winograd_f2", "winograd_f4"], indirect=True)
def test_gradcheck_float64(forced):
    # Forced onto layers far below the thresholds, so that float64 finite differences stay cheap.
    from somanet.kernels import _select

    rng = np.random.default_rng(0)

    def x64(*shape):
        return somanet.tensor(rng.standard_normal(shape), requires_grad=True)

    x, w, b = x64(2, 2, 5, 4), x64(3, 2, 3, 3), x64(3)
    assert _select.choose("conv2d", x.array, w.array, 1, ((1, 1), (1, 1)), (1, 1), (1, 1), False) == forced
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=1), (x, w, b))
    assert gradcheck(lambda x, w: F.conv2d(x, w, padding=(2, 0)), (x64(1, 2, 4, 5), x64(2, 2, 3, 3)))
    assert gradcheck(lambda x, w: F.conv2d(x, w), (x64(2, 3, 6, 5), x64(2, 3, 3, 3)))
    assert gradcheck(lambda x, w: F.conv2d(x, w, padding=3), (x64(1, 2, 2, 3), x64(2, 2, 3, 3)))  # pad > kernel
    assert gradcheck(lambda x, w: F.conv2d(x, w, padding=1), (x64(1, 2, 9, 10), x64(2, 2, 3, 3)))  # 3x3 tiles


@pytest.mark.parametrize("hw, c, o, split", [(8, 64, 128, False), (4, 64, 128, False), (8, 128, 256, True),
                                            (4, 256, 256, True)])
def test_two_threads_match_one(hw, c, o, split):
    # Big enough to split the batch across two threads (forward, input and weight gradients); 8x8 planes take
    # F(4x4), 4x4 planes F(2x2). The bigger weights' transforms are split by output channels as well.
    from somanet.kernels import conv

    x, w = _x(4, c, hw, hw), _x(o, c, 3, 3, seed=1, scale=1 / np.sqrt(9 * c))
    tile = _tile(x.shape, w.shape, 1)
    assert tile == (4 if hw == 8 else 2)
    assert ((tile + 2) ** 2 * o * c >= conv.SPLIT_TRANSFORM) == split
    results = []
    previous = somanet.get_num_threads()
    try:
        for threads in (1, 2):
            somanet.set_num_threads(threads)
            xt, wt = somanet.tensor(x, requires_grad=True), somanet.tensor(w, requires_grad=True)
            out = F.conv2d(xt, wt, padding=1)
            (out * out).sum().backward()
            results.append((out.array, xt.grad.array, wt.grad.array))
    finally:
        somanet.set_num_threads(previous)
    for one, two in zip(*results):
        # The blocks' weight gradients are summed in another order; F(4x4)'s transforms amplify that
        # rounding (about 1e-5 of the largest element, like its difference from float64).
        np.testing.assert_allclose(two, one, rtol=0, atol=3e-5 * np.abs(one).max())


@pytest.mark.parametrize("c, o, calls", [(64, 128, 1), (128, 256, 2)])
def test_weight_transforms_hold_blas_to_one_thread_beside_the_blocks(monkeypatch, c, o, calls):
    # On two BLAS threads OpenBLAS's idle thread would spin beside the batch blocks that follow. Small
    # transforms run whole on one BLAS thread, big ones as one block of output channels per thread.
    pytest.importorskip("threadpoolctl")
    from somanet.kernels import threads as pool

    seen = []
    for name in ("weight_transform", "weight_from_transform"):
        original = getattr(winograd, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            seen.append((_name, pool.blas_threads()))
            return _original(*args, **kwargs)

        monkeypatch.setattr(winograd, name, spy)
    x, w = _x(4, c, 8, 8), _x(o, c, 3, 3, seed=1, scale=1 / 24)
    previous = somanet.get_num_threads()
    try:
        somanet.set_num_threads(2)
        if pool.blas_threads() != 2:
            pytest.skip("NumPy's BLAS thread count can't be set here")
        xt, wt = somanet.tensor(x, requires_grad=True), somanet.tensor(w, requires_grad=True)
        F.conv2d(xt, wt, padding=1).sum().backward()
        after = pool.blas_threads()
    finally:
        somanet.set_num_threads(previous)
    assert sorted(seen) == [("weight_from_transform", 1)] * calls + [("weight_transform", 1)] * (2 * calls)
    assert after == 2  # restored


@pytest.mark.parametrize("change", [
    dict(stride=(2, 2)), dict(dilation=(2, 2)), dict(groups=2), dict(kernel=5), dict(channels=16),
    dict(dtype=np.float16), dict(pads=((-1, -1), (1, 1))),
])
def test_dispatch_rules(change):
    kernel, channels = change.get("kernel", 3), change.get("channels", 128)
    dtype = change.get("dtype", np.float32)
    x = np.empty((2, channels, 8, 8), dtype)
    w = np.empty((128, channels // change.get("groups", 1), kernel, kernel), dtype)
    args = dict(groups=1, pads=((1, 1), (1, 1)), stride=(1, 1), dilation=(1, 1))
    args.update({k: v for k, v in change.items() if k in args})
    assert winograd.output_tile(x, np.empty((128, channels, 3, 3), dtype), 1, ((1, 1), (1, 1)), (1, 1), (1, 1)) \
        == (4 if dtype != np.float16 and channels >= 32 else 0)
    assert not winograd.output_tile(x, w, **args)
    assert not winograd.output_tile(x, w, backward=True, **args)


@pytest.mark.parametrize("hw, channels, forward, backward", [
    (16, (64, 128), 4, 4),    # 16 tiles of 4x4
    (8, (64, 64), 4, 4),      # F(4x4) takes 64 -> 64, which F(2x2) (8192 channel pairs) does not
    (7, (64, 128), 4, 4),     # 7x7: 4 tiles of 4x4 (overhanging), 144 products against 256
    (6, (64, 128), 2, 2),     # 6x6: both need 144 products per image and channel pair
    (6, (64, 64), 0, 0),
    (4, (128, 128), 2, 2),    # one 4x4 tile: F(2x2)'s smaller weight transform wins
    (2, (128, 128), 0, 2),    # one 2x2 tile: the forward pass keeps the windows
    (16, (16, 128), 0, 0),    # too few input channels
    (16, (32, 32), 0, 4),     # 32 -> 32: F(4x4) for the gradients only
    (16, (32, 48), 4, 4),     # enough channel pairs for the forward pass too
    (28, (32, 64), 4, 4),
    (16, (48, 32), 4, 4),
    (16, (128, 16), 0, 0),    # too few output channels
])
def test_tile_size_rules(hw, channels, forward, backward):
    c, o = channels
    x, w = np.empty((2, c, hw, hw), np.float32), np.empty((o, c, 3, 3), np.float32)
    geometry = (1, ((1, 1), (1, 1)), (1, 1), (1, 1))
    assert winograd.output_tile(x, w, *geometry) == forward
    assert winograd.output_tile(x, w, *geometry, backward=True) == backward


def test_f4_rounding_against_float64():
    # F(4x4)'s coefficients (up to 8 in A^T, 1/24 in G) cost about a decimal digit against F(2x2); bound it
    # against a float64 reference on a VGG-sized layer: output and both gradients within 2e-5 of their
    # largest element.
    x, w, g = _x(2, 128, 16, 16), _x(128, 128, 3, 3, seed=1, scale=1 / 34), _x(2, 128, 16, 16, seed=2)
    assert _tile(x.shape, w.shape, 1) == 4
    xt, wt = somanet.tensor(x, requires_grad=True), somanet.tensor(w, requires_grad=True)
    out = F.conv2d(xt, wt, padding=1)
    out.backward(somanet.tensor(g))
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    tw = torch.from_numpy(w.astype(np.float64)).requires_grad_()
    t_out = TF.conv2d(tx, tw, padding=1)
    t_out.backward(torch.from_numpy(g.astype(np.float64)))
    for mine, ref in ((out.array, t_out.detach().numpy()), (xt.grad.array, tx.grad.numpy()),
                      (wt.grad.array, tw.grad.numpy())):
        assert mine.dtype == np.float32
        assert np.abs(mine - ref).max() <= 2e-5 * np.abs(ref).max()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("xs, ws, tile", [((5, 64, 8, 8), (64, 64, 3, 3), 4), ((5, 64, 4, 4), (128, 64, 3, 3), 2)])
def test_cache_blocks_match_torch(monkeypatch, threads, xs, ws, tile):
    # Batch blocks of one image, each reading the transformed weight again; across two threads each
    # thread's images are blocked in turn.
    from somanet.kernels import threads as pool
    from somanet.kernels import conv

    seen = []
    original_ranges, original_cache_ranges = conv._winograd_ranges, conv._cache_ranges

    def spy(x4, u, pads, backward=False):
        ranges = original_ranges(x4, u, pads, backward)
        seen.append([hi - lo for lo, hi in ranges])
        return ranges

    def one_image(xp, n, per_image):
        monkeypatch.setattr(conv, "CACHE_BLOCK_BYTES", per_image)
        return original_cache_ranges(xp, n, per_image)

    monkeypatch.setattr(conv, "_winograd_ranges", spy)
    monkeypatch.setattr(conv, "_cache_ranges", one_image)
    monkeypatch.setattr(conv, "WINOGRAD_WEIGHT_READS", 1e9)
    monkeypatch.setattr(pool, "PARALLEL_MIN_WORK", 0)
    assert _tile(xs, ws, 1) == tile
    previous = somanet.get_num_threads()
    try:
        somanet.set_num_threads(threads)
        compare(lambda x, w, b: F.conv2d(x, w, b, padding=1), lambda x, w, b: TF.conv2d(x, w, b, padding=1),
                _x(*xs), _x(*ws, seed=1, scale=1 / 24), _x(ws[0], seed=2), **TOL)
    finally:
        somanet.set_num_threads(previous)
    # Forward and backward, per thread block; every block one image.
    assert len(seen) == 2 * threads and sum(map(len, seen)) == 2 * xs[0]
    assert {size for sizes in seen for size in sizes} == {1}


@pytest.mark.parametrize("xs, o, blocked", [
    ((32, 64, 16, 16), 128, True),     # VGG-11's second layer: 20 MB of activations, a 1.2 MB weight transform
    ((32, 256, 8, 8), 256, False),     # a 9.4 MB weight transform: re-reading it per block costs more
    ((4, 64, 16, 16), 128, False),     # the whole batch fits
])
def test_cache_blocks_only_where_activations_outweigh_the_weight(xs, o, blocked):
    from somanet.kernels import conv

    x = np.empty(xs, np.float32)
    tile = _tile(xs, (o, xs[1], 3, 3), 1)
    u = np.empty(((tile + 2) ** 2, o, xs[1]), np.float32)
    for backward in (False, True):
        ranges = conv._winograd_ranges(x, u, ((1, 1), (1, 1)), backward)
        assert ranges[0][0] == 0 and ranges[-1][1] == xs[0]
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert (len(ranges) > 1) == blocked
