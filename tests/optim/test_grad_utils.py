"""somanet.nn.utils gradient helpers against PyTorch: clip_grad_norm_, clip_grad_value_,
get_total_norm / clip_grads_with_norm_, parameters_to_vector and vector_to_parameters."""
import math

import numpy as np
import pytest

import somanet
from somanet.nn.utils import (clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm,
                              parameters_to_vector, vector_to_parameters)
from reference import assert_close, compare, torch_or_skip

SHAPES = [(4, 3), (3,), (2, 2, 2), (1,)]


def _params(scale=1.0, seed=0, with_none=False):
    """Matching somanet and PyTorch parameters whose grads hold the same random values."""
    torch = torch_or_skip()
    rng = np.random.default_rng(seed)
    sp, tp = [], []
    for i, shape in enumerate(SHAPES):
        w = rng.standard_normal(shape).astype(np.float32)
        g = (rng.standard_normal(shape) * scale).astype(np.float32)
        s = somanet.tensor(w, requires_grad=True)
        t = torch.tensor(w, requires_grad=True)
        if not (with_none and i == 1):
            s.grad = somanet.tensor(g)
            t.grad = torch.tensor(g)
        sp.append(s)
        tp.append(t)
    return sp, tp


def _assert_grads(sp, tp, rtol=1e-5, atol=1e-6):
    for i, (s, t) in enumerate(zip(sp, tp)):
        if t.grad is None:
            assert s.grad is None
        else:
            assert_close(s.grad, t.grad, rtol, atol, what=f"gradient {i}")


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, float("inf"), "inf", 0.5])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_pytorch(norm_type, max_norm):
    torch = torch_or_skip()
    sp, tp = _params(with_none=True)
    s_total = clip_grad_norm_(sp, max_norm, norm_type=norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type=norm_type)
    assert isinstance(s_total, somanet.Tensor) and s_total.shape == () and not s_total.requires_grad
    assert_close(s_total, t_total, 1e-5, 1e-6, what="total norm")
    _assert_grads(sp, tp)
    if max_norm < 1.0:
        after = float(get_total_norm([p.grad for p in sp if p.grad is not None], norm_type))
        assert after == pytest.approx(max_norm, rel=1e-4)


def test_clip_grad_norm_accepts_a_single_tensor_and_a_generator():
    torch = torch_or_skip()
    sp, tp = _params(scale=10.0)
    s_total = clip_grad_norm_(sp[0], 1.0)
    t_total = torch.nn.utils.clip_grad_norm_(tp[0], 1.0)
    assert_close(s_total, t_total, 1e-5, 1e-6)
    s_total = clip_grad_norm_((p for p in sp[1:]), 2.0, norm_type=1)
    t_total = torch.nn.utils.clip_grad_norm_((p for p in tp[1:]), 2.0, norm_type=1)
    assert_close(s_total, t_total, 1e-5, 1e-6)
    _assert_grads(sp, tp)


def test_clip_grad_norm_without_gradients_returns_zero():
    torch = torch_or_skip()
    p = somanet.tensor([1.0, 2.0], requires_grad=True)
    total = clip_grad_norm_([p], 1.0)
    t_total = torch.nn.utils.clip_grad_norm_([torch.tensor([1.0, 2.0], requires_grad=True)], 1.0)
    assert_close(total, t_total)
    assert p.grad is None


def test_clip_grad_norm_nonfinite():
    torch = torch_or_skip()
    sp, tp = _params()
    sp[2].grad.array[0, 0, 0] = np.inf
    tp[2].grad[0, 0, 0] = float("inf")
    with pytest.raises(RuntimeError, match=r"clip_grad_norm_\(\): the total norm of order 2.0 .* non-finite \(inf\)"):
        clip_grad_norm_(sp, 1.0, error_if_nonfinite=True)
    # without the check, PyTorch scales by the non-finite coefficient (0 for inf, NaN for NaN)
    s_total = clip_grad_norm_(sp, 1.0)
    t_total = torch.nn.utils.clip_grad_norm_(tp, 1.0)
    assert math.isinf(float(s_total)) and math.isinf(float(t_total))
    _assert_grads(sp, tp)
    sp, tp = _params(seed=1)
    sp[0].grad.array[1, 1] = np.nan
    tp[0].grad[1, 1] = float("nan")
    s_total = clip_grad_norm_(sp, 1.0)
    t_total = torch.nn.utils.clip_grad_norm_(tp, 1.0)
    assert math.isnan(float(s_total)) and math.isnan(float(t_total))
    _assert_grads(sp, tp)


def test_get_total_norm_and_clip_grads_with_norm_match_pytorch():
    torch = torch_or_skip()
    sp, tp = _params(scale=3.0, seed=2)
    s_total = get_total_norm([p.grad for p in sp], norm_type=3.0)
    t_total = torch.nn.utils.get_total_norm([p.grad for p in tp], norm_type=3.0)
    assert_close(s_total, t_total, 1e-5, 1e-6)
    clip_grads_with_norm_(sp, 1.5, s_total)
    torch.nn.utils.clip_grads_with_norm_(tp, 1.5, t_total)
    _assert_grads(sp, tp)


@pytest.mark.parametrize("clip_value", [0.3, 1, 100.0])
def test_clip_grad_value_matches_pytorch(clip_value):
    torch = torch_or_skip()
    sp, tp = _params(with_none=True)
    assert clip_grad_value_(sp, clip_value) is None
    torch.nn.utils.clip_grad_value_(tp, clip_value)
    _assert_grads(sp, tp, rtol=0, atol=0)
    assert all(p.grad is None or p.grad.array.dtype == np.float32 for p in sp)


def test_clip_errors_name_the_function():
    p = somanet.tensor([1.0], requires_grad=True)
    p.grad = somanet.tensor([2.0])
    with pytest.raises(TypeError, match="clip_grad_norm_\\(\\): expected Tensors, got an element of type int"):
        clip_grad_norm_([p, 3], 1.0)
    with pytest.raises(TypeError, match="clip_grad_norm_\\(\\): norm_type must be a number"):
        clip_grad_norm_([p], 1.0, norm_type="fro")
    with pytest.raises(TypeError, match="clip_grad_value_\\(\\): clip_value must be a number"):
        clip_grad_value_([p], None)


def test_parameters_to_vector_forward_and_gradients_match_pytorch():
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    out = compare(lambda *ps: parameters_to_vector(ps), lambda *ps: torch.nn.utils.parameters_to_vector(ps), *arrays)
    assert out.shape == (sum(a.size for a in arrays),) and out.dtype == np.float32


def test_vector_to_parameters_matches_pytorch_and_shares_memory():
    torch = torch_or_skip()
    rng = np.random.default_rng(4)
    sp, tp = _params()
    vec = rng.standard_normal(sum(int(np.prod(s)) for s in SHAPES)).astype(np.float32)
    s_vec = somanet.tensor(vec)
    vector_to_parameters(s_vec, sp)
    torch.nn.utils.vector_to_parameters(torch.tensor(vec), tp)
    for s, t in zip(sp, tp):
        assert_close(s.array, t.detach(), 0, 0)
        assert s.requires_grad
    s_vec.array[0] = 123.0  # PyTorch's parameters become views of the vector, and so do ours
    assert sp[0].array[0, 0] == 123.0
    np.testing.assert_array_equal(parameters_to_vector(sp).array, s_vec.array)


def test_vector_to_parameters_errors():
    p = somanet.tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="expected somanet.Tensor, but got: ndarray"):
        vector_to_parameters(np.zeros(6, np.float32), [p])
    with pytest.raises(ValueError, match="vec has 5 elements, but the parameters need 6"):
        vector_to_parameters(somanet.zeros(5), [p])
    with pytest.raises(ValueError, match="must be 1-D"):
        vector_to_parameters(somanet.zeros(2, 3), [p])
