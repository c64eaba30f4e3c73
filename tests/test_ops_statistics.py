"""Order statistics, NaN-ignoring reductions and counting ops against PyTorch."""
import numpy as np
import pytest

import somanet
from reference import compare, requires_torch, torch

pytestmark = requires_torch

rng = np.random.default_rng(2)


def _distinct(*shape, dtype=np.float32):
    """Values with no ties, so that every selected index is unambiguous."""
    n = int(np.prod(shape))
    return (rng.permutation(n).astype(dtype) / 4 - n / 8).reshape(shape)


def _with_nan(*shape):
    a = _distinct(*shape)
    a.reshape(-1)[rng.choice(a.size, max(1, a.size // 4), replace=False)] = np.nan
    return a


def test_nansum_nanmean():
    x = _with_nan(3, 5)
    compare(somanet.nansum, torch.nansum, x)
    compare(lambda a: somanet.nansum(a, 1, keepdim=True), lambda a: torch.nansum(a, 1, keepdim=True), x)
    compare(lambda a: a.nansum(dim=(0, 1)), lambda a: a.nansum(dim=(0, 1)), x)
    compare(somanet.nanmean, torch.nanmean, x)
    compare(lambda a: somanet.nanmean(a, 0), lambda a: torch.nanmean(a, 0), x)
    compare(lambda a: a.nanmean(-1, True), lambda a: a.nanmean(-1, True), np.full((2, 3), np.nan, np.float32))
    compare(somanet.nansum, torch.nansum, np.arange(6).reshape(2, 3))


def test_median_whole_tensor_shares_gradient_among_ties():
    x = np.array([3.0, 1.0, 2.0, 1.0, 3.0, 2.0, 1.0], np.float32)
    compare(somanet.median, torch.median, x)
    compare(somanet.median, torch.median, _distinct(4, 6))
    compare(somanet.median, torch.median, np.array([1.0, np.nan, 0.0], np.float32), backward=False)
    compare(somanet.nanmedian, torch.nanmedian, np.array([1.0, np.nan, 2.0, 5.0], np.float32))
    compare(somanet.median, torch.median, np.array([4, 1, 3, 2]))


@pytest.mark.parametrize("dim,keepdim", [(0, False), (1, True), (-1, False)])
def test_median_along_dim(dim, keepdim):
    compare(lambda a: somanet.median(a, dim, keepdim), lambda a: torch.median(a, dim, keepdim), _distinct(4, 5))
    compare(lambda a: a.nanmedian(dim, keepdim), lambda a: a.nanmedian(dim, keepdim), _with_nan(4, 6))
    compare(lambda a: somanet.median(a, dim, keepdim), lambda a: torch.median(a, dim, keepdim), _with_nan(4, 6))


def test_median_ties_pick_the_stable_first():
    x = np.array([[3.0, 1.0, 2.0, 1.0, 3.0, 2.0, 1.0]], np.float32)
    compare(lambda a: somanet.median(a, 1), lambda a: torch.median(a, 1), x)
    compare(lambda a: somanet.nanmedian(a, 1), lambda a: torch.nanmedian(a, 1),
            np.array([[np.nan, np.nan], [1.0, np.nan]], np.float32), backward=False)


@pytest.mark.parametrize("k,dim", [(1, -1), (3, 1), (2, 0)])
def test_kthvalue(k, dim):
    compare(lambda a: somanet.kthvalue(a, k, dim), lambda a: torch.kthvalue(a, k, dim), _distinct(3, 5))
    compare(lambda a: a.kthvalue(k, dim, keepdim=True), lambda a: a.kthvalue(k, dim, keepdim=True), _distinct(3, 5))
    compare(lambda a: somanet.kthvalue(a, 2), lambda a: torch.kthvalue(a, 2), np.array([3.0, 1.0, 2.0, 1.0, 3.0],
                                                                                       np.float32))


def test_mode():
    x = np.array([[3.0, 1.0, 2.0, 1.0], [3.0, 3.0, 2.0, 2.0], [5.0, 4.0, 4.0, 5.0]], np.float32)
    compare(lambda a: somanet.mode(a, 1), lambda a: torch.mode(a, 1), x)
    compare(lambda a: a.mode(0, keepdim=True), lambda a: a.mode(0, keepdim=True), x)
    compare(somanet.mode, torch.mode, np.array([3, 1, 2, 1, 3, 2, 1, 3]))
    ints = rng.integers(0, 4, (5, 7))
    compare(lambda a: somanet.mode(a, -1), lambda a: torch.mode(a, -1), ints)


def test_msort():
    compare(somanet.msort, torch.msort, _distinct(4, 3))


@pytest.mark.parametrize("interpolation", ["linear", "lower", "higher", "midpoint", "nearest"])
def test_quantile(interpolation):
    x = _distinct(4, 7)
    kw = dict(interpolation=interpolation)
    compare(lambda a: somanet.quantile(a, 0.3, **kw), lambda a: torch.quantile(a, 0.3, **kw), x)
    compare(lambda a: somanet.quantile(a, 0.75, dim=1, keepdim=True, **kw),
            lambda a: torch.quantile(a, 0.75, dim=1, keepdim=True, **kw), x)
    q = np.array([0.0, 0.25, 0.5, 1.0], np.float32)
    compare(lambda a, qq: somanet.quantile(a, qq, dim=0, **kw), lambda a, qq: torch.quantile(a, qq, dim=0, **kw),
            x, q, requires_grad=[True, False])
    compare(lambda a, qq: a.quantile(qq, keepdim=True, **kw), lambda a, qq: a.quantile(qq, keepdim=True, **kw),
            x, q, requires_grad=[True, False])
    y = _with_nan(3, 8)
    compare(lambda a: somanet.nanquantile(a, 0.4, dim=1, **kw), lambda a: torch.nanquantile(a, 0.4, dim=1, **kw), y)
    compare(lambda a: somanet.quantile(a, 0.4, dim=1, **kw), lambda a: torch.quantile(a, 0.4, dim=1, **kw), y,
            backward=False)


def test_quantile_errors():
    with pytest.raises(RuntimeError):
        somanet.quantile(somanet.tensor([1.0, 2.0]), 1.5)
    with pytest.raises(RuntimeError):
        somanet.quantile(somanet.tensor([1, 2]), 0.5)


@pytest.mark.parametrize("name", ["cummax", "cummin"])
def test_running_extremes(name):
    x = np.array([[1.0, 3.0, 3.0, 2.0, 5.0, 5.0], [1.0, 0.0, 1.0, 0.0, -1.0, -1.0]], np.float32)
    compare(lambda a: getattr(somanet, name)(a, 1), lambda a: getattr(torch, name)(a, 1), x)
    compare(lambda a: getattr(a, name)(0), lambda a: getattr(a, name)(0), _distinct(4, 3))
    compare(lambda a: getattr(somanet, name)(a, 0), lambda a: getattr(torch, name)(a, 0),
            np.array([1.0, np.nan, 3.0, np.nan], np.float32), backward=False)
    compare(lambda a: getattr(somanet, name)(a, 0), lambda a: getattr(torch, name)(a, 0), np.array([2, 1, 3, 3]))


def test_logcumsumexp():
    x = rng.standard_normal((3, 6)).astype(np.float32) * 5
    compare(lambda a: somanet.logcumsumexp(a, 1), lambda a: torch.logcumsumexp(a, 1), x)
    compare(lambda a: a.logcumsumexp(0), lambda a: a.logcumsumexp(0), x)
    far = np.array([-1000.0, 0.0, -2000.0, 3.0], np.float64)
    compare(lambda a: somanet.logcumsumexp(a, 0), lambda a: torch.logcumsumexp(a, 0), far, rtol=1e-12)
    compare(lambda a: somanet.logcumsumexp(a, 0), lambda a: torch.logcumsumexp(a, 0),
            np.array([-np.inf, 1.0, -np.inf], np.float32), backward=False)


def test_histc_histogram_bincount():
    x = np.array([1.0, 2.0, 1.0, 4.0, -1.0, 3.0], np.float32)
    compare(lambda a: somanet.histc(a, bins=4, min=0, max=3), lambda a: torch.histc(a, bins=4, min=0, max=3), x,
            requires_grad=[False])
    compare(lambda a: somanet.histc(a, bins=5), lambda a: torch.histc(a, bins=5), x, requires_grad=[False])
    compare(lambda a: a.histc(3), lambda a: a.histc(3), np.full(3, 2.0, np.float32), requires_grad=[False])
    compare(lambda a: somanet.histogram(a, 4), lambda a: torch.histogram(a, 4), x, requires_grad=[False])
    edges = np.array([-1.0, 0.5, 2.0, 5.0], np.float32)
    compare(lambda a, e: somanet.histogram(a, e, density=True), lambda a, e: torch.histogram(a, e, density=True),
            x, edges, requires_grad=[False, False])
    compare(lambda a, w: somanet.histogram(a, 3, range=(0.0, 3.0), weight=w),
            lambda a, w: torch.histogram(a, 3, range=(0.0, 3.0), weight=w), x, x + 2, requires_grad=[False, False])
    i = np.array([1, 1, 3, 0, 5])
    compare(somanet.bincount, torch.bincount, i)
    compare(lambda a: somanet.bincount(a, minlength=8), lambda a: torch.bincount(a, minlength=8), i)
    for w in (np.array([0.5, 1, 2, 3, 1], np.float32), np.array([0.5, 1, 2, 3, 1]), np.array([1, 2, 3, 4, 5])):
        compare(lambda a, ww: somanet.bincount(a, ww), lambda a, ww: torch.bincount(a, ww), i, w,
                requires_grad=[False, False])
    with pytest.raises(RuntimeError):
        somanet.bincount(somanet.tensor([-1, 2]))


@pytest.mark.parametrize("right", [False, True])
def test_bucketize_searchsorted(right):
    b = np.array([1.0, 3.0, 5.0, 7.0], np.float32)
    v = np.array([[0.0, 1.0, 3.0], [6.0, 7.0, 9.0]], np.float32)
    compare(lambda x, bb: somanet.bucketize(x, bb, right=right), lambda x, bb: torch.bucketize(x, bb, right=right),
            v, b, requires_grad=[False, False])
    compare(lambda x, bb: somanet.bucketize(x, bb, out_int32=True),
            lambda x, bb: torch.bucketize(x, bb, out_int32=True),
            v, b, requires_grad=[False, False])
    compare(lambda bb: somanet.bucketize(3.0, bb, right=right), lambda bb: torch.bucketize(3.0, bb, right=right),
            b, requires_grad=[False])
    compare(lambda s, x: somanet.searchsorted(s, x, right=right), lambda s, x: torch.searchsorted(s, x, right=right),
            b, v, requires_grad=[False, False])
    seq = np.sort(rng.standard_normal((2, 3, 5)), -1)
    vals = rng.standard_normal((2, 3, 4))
    side = "right" if right else "left"
    compare(lambda s, x: somanet.searchsorted(s, x, side=side), lambda s, x: torch.searchsorted(s, x, side=side),
            seq, vals, requires_grad=[False, False])
    unsorted = np.array([5.0, 1.0, 3.0], np.float32)
    sorter = np.argsort(unsorted)
    compare(lambda s, x, o: somanet.searchsorted(s, x, sorter=o), lambda s, x, o: torch.searchsorted(s, x, sorter=o),
            unsorted, np.array([2.0, 4.0], np.float32), sorter, requires_grad=[False, False, False])


def test_diff():
    x = _distinct(3, 5)
    compare(somanet.diff, torch.diff, x)
    compare(lambda a: somanet.diff(a, 2, 0), lambda a: torch.diff(a, 2, 0), x)
    compare(lambda a, p, q: somanet.diff(a, dim=1, prepend=p, append=q),
            lambda a, p, q: torch.diff(a, dim=1, prepend=p, append=q), x, _distinct(3, 2), _distinct(3, 1))
    compare(lambda a: a.diff(n=3), lambda a: a.diff(n=3), x)
    compare(somanet.diff, torch.diff, np.array([True, False, False, True]))
    compare(somanet.diff, torch.diff, np.array([1, 4, 9, 16]))


def test_unique_consecutive():
    x = np.array([1, 1, 2, 2, 3, 1, 1, 2])
    for inv in (False, True):
        for cnt in (False, True):
            compare(lambda a: somanet.unique_consecutive(a, return_inverse=inv, return_counts=cnt),
                    lambda a: torch.unique_consecutive(a, return_inverse=inv, return_counts=cnt), x)
    m = np.array([[1, 1], [1, 1], [2, 3], [2, 3], [1, 1]])
    compare(lambda a: somanet.unique_consecutive(a, True, True, dim=0),
            lambda a: torch.unique_consecutive(a, True, True, dim=0), m)
    compare(lambda a: a.unique_consecutive(dim=1), lambda a: a.unique_consecutive(dim=1), m.T.copy())


@pytest.mark.parametrize("p", [2, 1, 3, float("inf"), 0])
def test_dist(p):
    bw = p != 0  # PyTorch's own backward of the 0-"norm" fails
    compare(lambda a, b: somanet.dist(a, b, p), lambda a, b: torch.dist(a, b, p), _distinct(3, 4), _distinct(4),
            backward=bw)
    compare(lambda a, b: a.dist(b, p), lambda a, b: a.dist(b, p), _distinct(5), _distinct(5), backward=bw)
