"""The kernels of ops ``"matmul"`` (few-row products in column blocks) and ``"row_sums"`` (row sums as
matrix-vector products): against the reference and PyTorch, and their choosers' picks."""
import numpy as np
import pytest

import somanet
from somanet.backends import cpu
from somanet.kernels import _select
from reference import compare, torch_or_skip

torch = torch_or_skip()


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_kernel_names():
    assert cpu.kernel_names("matmul") == ("reference", "column_blocks")
    assert cpu.kernel_names("row_sums") == ("reference", "blas")


@pytest.mark.parametrize("kernel", ["reference", "column_blocks"])
@pytest.mark.parametrize("rows", [8, 64])
def test_linear_forward_and_gradients_of_every_matmul_kernel_match_torch(one_thread, kernel, rows):
    x, w, b = _x(rows, 784), _x(520, 784, seed=1), _x(520, seed=2)
    with cpu.kernel("matmul", kernel):
        out = compare(lambda *xs: somanet.linear(*xs), lambda *xs: torch.nn.functional.linear(*xs), x, w, b,
                      atol=1e-4, rtol=1e-5).array
    with cpu.kernel("matmul", "reference"):
        ref = somanet.linear(*(somanet.tensor(a) for a in (x, w, b))).array
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)


def test_matmul_chooser(one_thread):
    w = _x(512, 784)
    assert _select.choose("matmul", np.ones((8, 784), np.float32), w.T) == "column_blocks"   # x @ W.T
    assert _select.choose("matmul", np.ones((8, 512), np.float32), w) == "column_blocks"     # g @ W
    assert _select.choose("matmul", np.ones((1024, 784), np.float32), w.T) == "reference"  # many rows
    assert _select.choose("matmul", np.ones((8, 784)), w.T.astype(np.float64)) == "reference"  # float64
    assert _select.choose("matmul", np.ones((4, 8), np.float32), np.ones((8, 3), np.float32)) == "reference"


@pytest.mark.parametrize("kernel", ["reference", "blas"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_and_cross_entropy_through_every_row_sum_kernel_match_torch(kernel, dtype):
    x = _x(6, 5, 11).astype(dtype)
    t = np.random.default_rng(1).integers(0, 11, (6,))
    with cpu.kernel("row_sums", kernel):
        compare(lambda a: somanet.softmax(a, -1), lambda a: torch.softmax(a, -1), x)
        compare(lambda a: somanet.nn.functional.cross_entropy(a[:, 0], somanet.tensor(t)),
                lambda a: torch.nn.functional.cross_entropy(a[:, 0], torch.tensor(t)), x)


def test_row_sums_chooser_and_kernel():
    from somanet.kernels.reductions import row_sums

    a = _x(3, 4, 7)
    assert _select.choose("row_sums", a, -1) == "blas" and _select.choose("row_sums", a, 2) == "blas"
    assert _select.choose("row_sums", a, 1) == "reference"                 # not the last axis
    assert _select.choose("row_sums", a[:, :, ::2], -1) == "reference"     # strided rows
    assert _select.choose("row_sums", a.astype(np.float16), -1) == "reference"
    assert _select.choose("row_sums", np.empty((0, 3), np.float32), -1) == "reference"
    np.testing.assert_allclose(row_sums(a), a.sum(-1, keepdims=True), rtol=1e-6, atol=1e-6)
    from somanet.ops.reduce import sums_along

    with cpu.kernel("row_sums", "blas"):  # a forced kernel leaves what it cannot run to the chooser
        np.testing.assert_allclose(sums_along(a, 1), a.sum(1, keepdims=True), rtol=1e-6, atol=1e-6)
