"""PyTorch-style custom autograd Functions (static forward/backward on tensors) run unchanged."""
import numpy as np
import pytest

import somanet
from reference import assert_close, torch_or_skip


def _define(torch):
    class Clip(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, lo, hi):
            ctx.save_for_backward(x)
            ctx.lo, ctx.hi = lo, hi
            return x.clamp(lo, hi)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            mask = (x >= ctx.lo) & (x <= ctx.hi)
            return grad * mask.to(grad.dtype), None, None

    class MulAdd(torch.autograd.Function):
        """Two tensor inputs, two outputs, one of them non-differentiable."""

        @staticmethod
        def forward(ctx, a, b, scale=2.0):
            ctx.save_for_backward(a, b)
            ctx.scale = scale
            out = a * b * scale
            arg = out.argmax()
            ctx.mark_non_differentiable(arg)
            return out, arg

        @staticmethod
        def backward(ctx, grad_out, grad_arg):
            a, b = ctx.saved_tensors
            ga = grad_out * b * ctx.scale if ctx.needs_input_grad[0] else None
            gb = grad_out * a * ctx.scale if ctx.needs_input_grad[1] else None
            return ga, gb, None

    class Square(torch.autograd.Function):
        """The newer style: forward without ctx, then setup_context."""

        @staticmethod
        def forward(x):
            return x * x

        @staticmethod
        def setup_context(ctx, inputs, output):
            (x,) = inputs
            ctx.save_for_backward(x)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * x * grad

    return Clip, MulAdd, Square


def _run(torch, a_np, b_np, b_requires_grad):
    Clip, MulAdd, Square = _define(torch)
    a = torch.tensor(a_np, requires_grad=True)
    b = torch.tensor(b_np, requires_grad=b_requires_grad)
    out, arg = MulAdd.apply(Clip.apply(a, -0.5, 0.5), b, 3.0)
    loss = Square.apply(out).sum() + out.sum()
    loss.backward()
    return loss, arg, a.grad, b.grad, arg.requires_grad, out.requires_grad


@pytest.mark.parametrize("b_requires_grad", [True, False])
def test_custom_functions_match_torch(b_requires_grad):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((3, 4)).astype(np.float32)
    b_np = rng.standard_normal((3, 4)).astype(np.float32)
    mine = _run(somanet, a_np, b_np, b_requires_grad)
    ref = _run(torch, a_np, b_np, b_requires_grad)
    assert_close(mine[0], ref[0], what="loss")
    assert_close(mine[1], ref[1], what="argmax")
    assert_close(mine[2], ref[2], what="grad a")
    if b_requires_grad:
        assert_close(mine[3], ref[3], what="grad b")
    else:
        assert mine[3] is None and ref[3] is None
    assert mine[4:] == ref[4:] == (False, True)


def test_wrong_number_of_gradients_is_a_clear_error():
    class Bad(somanet.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x + y

        @staticmethod
        def backward(ctx, grad):
            return grad

    x = somanet.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        Bad.apply(x, x).sum().backward()


def test_no_graph_without_grad_and_saved_tensors_freed_after_backward():
    _, _, Square = _define(somanet)
    x = somanet.ones(2)
    assert Square.apply(x).grad_fn is None
    x.requires_grad_()
    with somanet.no_grad():
        assert Square.apply(x).grad_fn is None
    y = Square.apply(x)
    assert "SquareBackward" in repr(y)
    y.sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()
