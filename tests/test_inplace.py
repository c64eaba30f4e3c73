"""In-place operators and ``x_`` methods against PyTorch: values, gradients, the autograd rules and casting."""
import numpy as np
import pytest

import somanet
from reference import assert_close, torch_or_skip


def _pair(arr, requires_grad=False):
    torch = torch_or_skip()
    return (somanet.tensor(arr, requires_grad=requires_grad),
            torch.tensor(arr, requires_grad=requires_grad))


def test_hand_written_gradient_descent_keeps_learning():
    # The loop every tutorial starts with: w -= lr * w.grad under no_grad must update w itself.
    somanet.manual_seed(0)
    x = somanet.randn(64, 3)
    y = x @ somanet.tensor([[1.0], [-2.0], [0.5]])
    w = somanet.zeros(3, 1, requires_grad=True)
    first = None
    for _ in range(100):
        loss = ((x @ w - y) ** 2).mean()
        first = loss.item() if first is None else first
        loss.backward()
        with somanet.no_grad():
            w -= 0.1 * w.grad
            w.grad.zero_()
    assert w.requires_grad and w.is_leaf
    assert loss.item() < 1e-3 * first
    np.testing.assert_allclose(w.array.ravel(), [1.0, -2.0, 0.5], atol=1e-2)


def test_augmented_assignment_changes_the_object_itself():
    a = somanet.zeros(2)
    b = a
    a += 1
    assert a is b
    np.testing.assert_array_equal(b.array, [1.0, 1.0])
    version = a._version[0]
    a *= 3
    a -= 1
    a /= 2
    assert a is b and a._version[0] == version + 3
    np.testing.assert_array_equal(b.array, [1.0, 1.0])


@pytest.mark.parametrize("op", ["iadd", "isub", "imul", "itruediv", "ifloordiv", "imod", "ipow"])
@pytest.mark.parametrize("other", [3, 2.5, "tensor"])
def test_augmented_assignment_matches_torch(op, other):
    torch = torch_or_skip()
    arr = np.array([[1.5, -2.0, 3.0], [4.0, 0.5, -1.0]], dtype=np.float32)
    s, t = _pair(arr)
    o_arr = np.array([2.0, -3.0, 1.5], dtype=np.float32)
    so, to = (somanet.tensor(o_arr), torch.tensor(o_arr)) if other == "tensor" else (other, other)
    s_before, t_before = s, t
    s = getattr(s, f"__{op}__")(so)
    t = getattr(t, f"__{op}__")(to)
    assert s is s_before and t is t_before
    assert_close(s, t, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype,op,other", [
    ("int64", "__iadd__", 1.5), ("int64", "__itruediv__", 2), ("bool", "__iadd__", 1), ("int32", "__imul__", 2.0),
    ("int64", "__isub__", "float_tensor"),
])
def test_in_place_never_casts_down_a_kind(dtype, op, other):
    torch = torch_or_skip()
    arr = np.array([1, 0, 1]).astype(dtype)
    s, t = _pair(arr)
    if other == "float_tensor":
        so, to = somanet.ones(3), torch.ones(3)
    else:
        so, to = other, other
    with pytest.raises(RuntimeError):
        getattr(t, op)(to)
    with pytest.raises(RuntimeError, match="can't be cast"):
        getattr(s, op)(so)


def test_narrowing_within_a_kind_follows_torch():
    torch = torch_or_skip()
    s, t = _pair(np.array([250, 3], dtype=np.uint8))
    s += 10
    t += 10
    s += 300
    t += 300
    assert_close(s, t)
    f, g = _pair(np.ones(3, dtype=np.float32))
    f += somanet.ones(3, dtype=somanet.float64)
    g += torch.ones(3, dtype=torch.float64)
    assert_close(f, g)


def test_in_place_on_a_leaf_that_requires_grad_raises():
    w = somanet.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        w -= 1
    with pytest.raises(RuntimeError, match="leaf"):
        w.exp_()
    with pytest.raises(RuntimeError, match="leaf"):
        w.unsqueeze_(0)
    with somanet.no_grad():
        w.mul_(2)
    np.testing.assert_array_equal(w.array, [2.0, 2.0, 2.0])


def test_in_place_on_a_saved_tensor_makes_backward_raise():
    x = somanet.ones(3, requires_grad=True)
    y = x * 2
    z = y * y  # saves y
    y += 1
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.sum().backward()


UNARY = ["abs_", "neg_", "exp_", "expm1_", "log1p_", "sqrt_", "rsqrt_", "sigmoid_", "tanh_", "relu_", "sin_",
         "cos_", "floor_", "ceil_", "trunc_", "reciprocal_", "square_", "sign_", "erf_", "round_"]


@pytest.mark.parametrize("name", UNARY)
def test_unary_in_place_methods_match_torch_with_gradients(name):
    torch = torch_or_skip()
    arr = np.array([[0.3, 1.7, 2.2], [0.9, 1.1, 0.4]], dtype=np.float32)
    sx, tx = _pair(arr, requires_grad=True)
    sy, ty = sx * 1.0, tx * 1.0
    s_out, t_out = getattr(sy, name)(), getattr(ty, name)()
    assert s_out is sy
    assert_close(s_out, t_out, rtol=1e-5, atol=1e-6)
    cot = np.linspace(-1, 1, arr.size, dtype=np.float32).reshape(arr.shape)
    s_out.backward(somanet.tensor(cot))
    t_out.backward(torch.tensor(cot))
    assert_close(sx.grad, tx.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,args", [
    ("clamp_min_", (0.5,)), ("clamp_max_", (1.0,)), ("pow_", (2.0,)),
    ("remainder_", (0.7,)), ("fmod_", (0.7,)), ("lerp_", ("t", 0.25)), ("addcmul_", ("t", "t")),
    ("addcdiv_", ("t", "t")), ("mul_", ("t",)), ("div_", ("t",)), ("add_", ("t",)), ("sub_", ("t",)),
    ("copy_", ("t",)), ("fill_", (2.0,)), ("zero_", ()), ("clamp_", (0.2, 1.0)),
])
def test_binary_in_place_methods_match_torch(name, args):
    torch = torch_or_skip()
    arr = np.array([[0.3, 1.7, 2.2], [0.9, 1.1, 0.4]], dtype=np.float32)
    other = np.array([1.5, 0.5, 2.5], dtype=np.float32)
    sx, tx = _pair(arr, requires_grad=True)
    so, to = _pair(other, requires_grad=True)
    s_args = tuple(so if a == "t" else a for a in args)
    t_args = tuple(to if a == "t" else a for a in args)
    sy, ty = sx * 1.0, tx * 1.0
    getattr(sy, name)(*s_args)
    getattr(ty, name)(*t_args)
    assert_close(sy, ty, rtol=1e-5, atol=1e-6)
    cot = np.linspace(-1, 1, arr.size, dtype=np.float32).reshape(arr.shape)
    sy.backward(somanet.tensor(cot))
    ty.backward(torch.tensor(cot))
    assert_close(sx.grad, tx.grad, rtol=1e-5, atol=1e-6, what="input gradient")
    if to.grad is not None:
        assert_close(so.grad, to.grad, rtol=1e-5, atol=1e-6, what="operand gradient")


def test_floor_divide_in_place_matches_torch_values():
    torch = torch_or_skip()
    arr = np.array([[0.3, 1.7, 2.2], [0.9, 1.1, 0.4]], dtype=np.float32)
    s, t = _pair(arr)
    s.floor_divide_(0.7)
    t.floor_divide_(0.7)
    assert_close(s, t)


def test_index_ops_match_torch_with_gradients():
    torch = torch_or_skip()
    arr = np.arange(12, dtype=np.float32).reshape(4, 3)
    src = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    idx = np.array([2, 0])
    for name, extra in (("index_add", {}), ("index_copy", {}), ("index_add", {"alpha": 2.0})):
        sx, tx = _pair(arr, requires_grad=True)
        ss, ts = _pair(src, requires_grad=True)
        s_out = getattr(somanet, name)(sx, 0, somanet.tensor(idx), ss, **extra)
        t_out = getattr(torch, name)(tx, 0, torch.tensor(idx), ts, **extra)
        assert_close(s_out, t_out)
        s_out.backward(somanet.tensor(arr))
        t_out.backward(torch.tensor(arr))
        assert_close(sx.grad, tx.grad)
        assert_close(ss.grad, ts.grad)
    sx, tx = _pair(arr, requires_grad=True)
    s_out = somanet.index_fill(sx, 1, somanet.tensor([0, 2]), -1.0)
    t_out = torch.index_fill(tx, 1, torch.tensor([0, 2]), -1.0)
    assert_close(s_out, t_out)
    s_out.backward(somanet.tensor(arr))
    t_out.backward(torch.tensor(arr))
    assert_close(sx.grad, tx.grad)
    s, t = _pair(np.zeros(3, dtype=np.float32))
    s.index_add_(0, somanet.tensor([0, 0, 2]), somanet.ones(3))
    t.index_add_(0, torch.tensor([0, 0, 2]), torch.ones(3))
    assert_close(s, t)


@pytest.mark.parametrize("name,args", [("unsqueeze_", (0,)), ("squeeze_", ()), ("t_", ()), ("transpose_", (0, 1)),
                                       ("swapdims_", (1, 0))])
def test_shape_changing_in_place_methods_match_torch(name, args):
    torch = torch_or_skip()
    arr = np.arange(6, dtype=np.float32).reshape(2, 3) if name != "squeeze_" else np.ones((2, 1, 3), np.float32)
    sx, tx = _pair(arr, requires_grad=True)
    sy, ty = sx * 2, tx * 2
    assert getattr(sy, name)(*args) is sy
    getattr(ty, name)(*args)
    assert_close(sy, ty)
    cot = np.arange(sy.numel(), dtype=np.float32).reshape(sy.shape)
    sy.backward(somanet.tensor(cot))
    ty.backward(torch.tensor(cot))
    assert_close(sx.grad, tx.grad)


def test_random_fills_draw_in_place_and_follow_the_seed():
    x = somanet.empty(2000)
    for name, args, mean in (("uniform_", (-1.0, 3.0), 1.0), ("normal_", (2.0, 0.5), 2.0),
                             ("exponential_", (4.0,), 0.25), ("bernoulli_", (0.3,), 0.3)):
        somanet.manual_seed(1)
        out = getattr(x, name)(*args)
        first = x.array.copy()
        assert out is x
        assert abs(float(x.array.mean()) - mean) < 0.1, name
        somanet.manual_seed(1)
        getattr(x, name)(*args)
        np.testing.assert_array_equal(x.array, first)
    g = somanet.Generator(7)
    y = somanet.empty(5).random_(0, 10, generator=g)
    assert y.array.min() >= 0 and y.array.max() < 10 and np.all(y.array == np.round(y.array))
    with pytest.raises(RuntimeError, match="floating"):
        somanet.zeros(3, dtype=somanet.int64).normal_()


def test_data_is_a_detached_view_like_torch():
    torch = torch_or_skip()
    s, t = _pair(np.ones(3, dtype=np.float32), requires_grad=True)
    sd, td = s.data, t.data
    assert isinstance(sd, somanet.Tensor) and not sd.requires_grad and sd.grad_fn is None
    sd.add_(1)
    td.add_(1)
    assert_close(s.detach(), t.detach())
    s.data = somanet.zeros(3)
    t.data = torch.zeros(3)
    assert_close(s.detach(), t.detach())
    assert s.requires_grad and s.is_leaf
    # Changes through .data are not seen by autograd: backward still runs with the new values.
    y = s * s
    s.data.fill_(3.0)
    y.sum().backward()
    np.testing.assert_array_equal(s.grad.array, [6.0, 6.0, 6.0])
