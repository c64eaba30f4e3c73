"""The backward engine: ordering, accumulation, retain_graph, freeing, hooks, in-place checks, errors."""
import gc
import threading
import weakref

import numpy as np
import pytest

import somanet
from somanet.autograd import Function
from reference import torch_or_skip, assert_close


def test_long_chain_has_no_recursion_limit():
    x = somanet.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.item() == 1.0


def test_diamond_graph_matches_torch():
    torch = torch_or_skip()
    a = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    x = somanet.tensor(a, requires_grad=True)
    b = x.exp()
    c = b * 2 + b.sin()
    d = (c * b).sum() + b.sum()
    d.backward()
    tx = torch.tensor(a, requires_grad=True)
    tb = tx.exp()
    tc = tb * 2 + tb.sin()
    ((tc * tb).sum() + tb.sum()).backward()
    assert_close(x.grad, tx.grad)


def test_same_tensor_used_twice_in_one_op():
    x = somanet.tensor([3.0], requires_grad=True)
    (x * x).backward(somanet.ones(1))
    assert x.grad.item() == 6.0
    y = somanet.tensor([2.0], requires_grad=True)
    (y + y + y).backward(somanet.ones(1))
    assert y.grad.item() == 3.0


def test_gradients_accumulate_until_zeroed():
    x = somanet.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.array, [6.0, 6.0])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.array, [3.0, 3.0])


def test_leaf_grads_never_share_memory():
    w = somanet.tensor([1.0, 2.0], requires_grad=True)
    b = somanet.tensor([1.0, 2.0], requires_grad=True)
    (w + b).sum().backward()
    assert not np.shares_memory(w.grad.array, b.grad.array)
    w.grad.array *= 10
    np.testing.assert_array_equal(b.grad.array, [1.0, 1.0])


def test_retain_graph_allows_second_backward():
    x = somanet.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.array.copy()
    y.backward()
    np.testing.assert_allclose(x.grad.array, 2 * first)


def test_second_backward_through_freed_graph_raises():
    x = somanet.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_graph_and_saved_arrays_are_freed_after_backward():
    x = somanet.tensor(np.ones(1000, dtype=np.float32), requires_grad=True)
    y = x.exp()
    saved = weakref.ref(y.grad_fn.saved[0])
    z = (y * 2).sum()
    node_ref = weakref.ref(z.grad_fn)
    z.backward()
    del y, z
    gc.collect()
    assert saved() is None
    assert node_ref() is None


def test_non_scalar_backward_needs_gradient():
    x = somanet.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(2, 3\).*gradient="):
        (x * 2).backward()
    (x * 2).backward(gradient=somanet.ones(2, 3))
    assert x.grad.shape == (2, 3)
    with pytest.raises(RuntimeError, match="gradient has shape"):
        (x * 2).backward(gradient=somanet.ones(3))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        somanet.ones(2).sum().backward()


def test_create_graph_records_the_gradient():
    # Higher-order gradients are covered in tests/autograd/test_higher_order.py.
    x = somanet.ones(2, requires_grad=True)
    (x * x).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    x.grad.sum().backward()
    np.testing.assert_allclose(x.grad.array, [4.0, 4.0])


def test_requires_grad_on_integer_tensor_raises():
    with pytest.raises(RuntimeError, match="floating point.*int64"):
        somanet.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        somanet.tensor([1, 2]).requires_grad_()


def test_in_place_on_saved_tensor_raises():
    x = somanet.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()  # saves its output
    z = y.sum()
    y.array += 1  # raw array change is invisible; the version counter is how in-place ops report it
    y._version[0] += 1
    with pytest.raises(RuntimeError, match="Exp backward.*modified by an in-place operation"):
        (y * z).sum().backward()


def test_hooks_on_leaf_and_intermediate():
    x = somanet.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.array.copy()))
    y = x * 3
    h = y.register_hook(lambda g: g * 10)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.array, [30.0, 30.0])
    np.testing.assert_array_equal(seen[0], [30.0, 30.0])
    h.remove()
    x.grad = None
    y2 = x * 3
    y2.sum().backward()
    np.testing.assert_array_equal(x.grad.array, [3.0, 3.0])


def test_retain_grad_on_non_leaf():
    x = somanet.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_array_equal(y.grad.array, [4.0, 8.0])
    assert not y.is_leaf and x.is_leaf


def test_autograd_grad_function():
    x = somanet.tensor([1.0, 2.0], requires_grad=True)
    y = (x ** 2).sum()
    (g,) = somanet.autograd.grad(y, x)
    np.testing.assert_array_equal(g.array, [2.0, 4.0])
    assert x.grad is None


def test_no_grad_and_modes_context_and_decorator():
    x = somanet.ones(2, requires_grad=True)
    with somanet.no_grad():
        assert not (x * 2).requires_grad
        with somanet.enable_grad():
            assert (x * 2).requires_grad
    assert (x * 2).requires_grad

    @somanet.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    with somanet.inference_mode():
        assert not (x * 2).requires_grad
    with somanet.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert somanet.is_grad_enabled()

    @somanet.set_grad_enabled(False)
    def g(t):
        return t * 2

    assert somanet.is_grad_enabled()
    assert not g(x).requires_grad


def test_grad_mode_is_thread_local():
    x = somanet.ones(2, requires_grad=True)
    results = []

    def worker():
        results.append((x * 2).requires_grad)

    with somanet.no_grad():
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert results == [True]


def test_custom_function_multi_output():
    class SplitTwo(Function):
        def forward(ctx, a):
            return a * 2, a * 3

        def backward(ctx, g1, g2):
            total = 0
            if g1 is not None:
                total = total + g1 * 2
            if g2 is not None:
                total = total + g2 * 3
            return total

    x = somanet.tensor([1.0], requires_grad=True)
    a, b = SplitTwo.apply(x)
    (a + b).sum().backward()
    assert x.grad.item() == 5.0
    x.grad = None
    a, b = SplitTwo.apply(x)
    b.sum().backward()
    assert x.grad.item() == 3.0


def test_gradcheck_catches_a_wrong_gradient():
    class Wrong(Function):
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        def backward(ctx, grad):
            (a,) = ctx.saved
            return grad * a  # should be 2 * a

    x = somanet.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(AssertionError, match="differs from finite differences"):
        somanet.autograd.gradcheck(Wrong.apply, (x,))


def test_detach_cuts_graph():
    x = somanet.ones(2, requires_grad=True)
    y = (x * 2).detach()
    assert not y.requires_grad and y.grad_fn is None
    z = (x * 2).detach() * x
    z.sum().backward()
    np.testing.assert_array_equal(x.grad.array, [2.0, 2.0])


def test_leaf_gradient_takes_the_c_order_of_its_leaf():
    # Transposing backward hands over a transposed gradient; a C-ordered leaf gets it in C order (as
    # PyTorch's gradients follow their parameter's strides), so optimizers run on matching layouts.
    v = somanet.tensor(np.ones((3, 2), dtype=np.float32), requires_grad=True)
    v.T.backward(somanet.tensor(np.arange(6, dtype=np.float32).reshape(2, 3)))
    assert v.grad.array.flags.c_contiguous
    np.testing.assert_array_equal(v.grad.array, np.arange(6, dtype=np.float32).reshape(2, 3).T)
