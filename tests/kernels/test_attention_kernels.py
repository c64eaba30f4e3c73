"""The kernels of op ``"attention"`` (scaled dot-product attention's softmax): every kernel against PyTorch
and against the reference, gradients included, and the chooser's pick."""
import numpy as np
import pytest

import somanet
import somanet.nn.functional as F
from somanet.backends import cpu
from somanet.kernels import _select
from somanet.kernels import attention as K
from reference import assert_close, compare, torch_or_skip

torch = torch_or_skip()
TF = torch.nn.functional
KERNELS = ("reference", "blocked")


def _x(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def test_the_kernels_and_their_order():
    assert cpu.kernel_names("attention") == KERNELS


def _masks(shape_ls, seed):
    L, S = shape_ls
    rng = np.random.default_rng(seed)
    keep = rng.random((L, S)) > 0.3
    keep[:, 0] = True
    return {"none": None, "bool": keep, "float": np.where(keep, 0.0, -1e4).astype(np.float32) + _x(L, S, seed=seed),
            "causal": "causal"}


SMALL, GPT = (2, 3, 5, 7, 8), (2, 4, 64, 64, 16)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("shape, mask", [(SMALL, "none"), (SMALL, "bool"), (SMALL, "float"), (SMALL, "causal"),
                                         (GPT, "none"), (GPT, "causal")], ids=lambda v: v if isinstance(v, str) else
                         ("gpt" if v == GPT else "small"))
def test_every_kernel_matches_torch_and_the_reference(kernel, mask, shape):
    N, h, L, S, E = shape
    q, k, v = _x(N, h, L, E, seed=1, scale=2), _x(N, h, S, E, seed=2, scale=2), _x(N, h, S, E, seed=3)
    m = _masks((L, S), 4)[mask]
    extra, t_extra = {}, {}
    if isinstance(m, str):
        extra = t_extra = {"is_causal": True}
    elif m is not None:
        extra, t_extra = {"attn_mask": somanet.tensor(m)}, {"attn_mask": torch.tensor(m)}

    def run():
        return compare(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, **extra),
                       lambda a, b, c: TF.scaled_dot_product_attention(a, b, c, **t_extra), q, k, v,
                       rtol=1e-4, atol=1e-5)

    with cpu.kernel("attention", "reference"):
        ref = run().array
    with cpu.kernel("attention", kernel):
        got = run().array
    assert_close(got, ref, rtol=1e-5, atol=1e-6, what="output against the reference")


@pytest.mark.parametrize("kernel", KERNELS)
def test_rows_with_nothing_to_attend_to_give_zeros_in_every_kernel(kernel):
    keep = np.ones((4, 6), bool)
    keep[1] = False
    q = somanet.tensor(_x(2, 4, 8), requires_grad=True)
    with cpu.kernel("attention", kernel):
        out = F.scaled_dot_product_attention(q, q[:, :1].expand(2, 6, 8), q[:, :1].expand(2, 6, 8),
                                             attn_mask=somanet.tensor(keep))
        out.sum().backward()
    assert np.all(out.array[:, 1] == 0) and np.isfinite(q.grad.array).all()


def test_softmax_of_the_blocked_kernel_equals_per_row_softmax_far_below_the_block_maximum():
    # One row 200 below the rest: its exponentials against the block maximum underflow; redone per row.
    s = _x(2, 4, 6)
    s[0, 2] -= 200
    want = torch.softmax(torch.tensor(s), -1).numpy()
    np.testing.assert_allclose(K.softmax_(s.copy(), None), want, rtol=1e-5, atol=1e-7)
    # In base 2 the scores' rounding after the log2(e) factor (ulp 3e-5 at 290) bounds the precision.
    np.testing.assert_allclose(K.softmax_(s.copy() * np.float32(np.log2(np.e)), None, base2=True), want,
                               rtol=1e-4, atol=1e-7)


def test_chooser_picks_blocked_for_numpy_arrays():
    assert _select.choose("attention", np.empty((16, 4, 64, 64), np.float32)) == "blocked"
    assert _select.choose("attention", np.empty((2, 3, 5, 7), np.float64)) == "blocked"


def test_a_forced_kernel_is_in_force_inside_the_block_only():
    with cpu.kernel("attention", "reference"):
        assert _select.choose("attention", np.empty((2, 2, 2), np.float32)) == "reference"
    assert cpu.kernel("attention") is None
    assert _select.choose("attention", np.empty((2, 2, 2), np.float32)) == "blocked"
