"""Custom autograd Functions written PyTorch's way (static forward/backward, ctx), checked with gradcheck."""
import numpy as np
import torch
import torch.nn as nn


class ClampedExp(torch.autograd.Function):
    """exp(min(x, limit)); the gradient is zero where the clamp is active."""

    @staticmethod
    def forward(ctx, x, limit):
        y = torch.exp(torch.clamp(x, max=limit))
        ctx.save_for_backward(x, y)
        ctx.limit = limit
        return y

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        return grad_output * y * (x <= ctx.limit).to(grad_output.dtype), None


class StraightThroughSign(torch.autograd.Function):
    """sign(x) forward; the gradient passes straight through where |x| <= 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * (x.abs() <= 1).to(grad_output.dtype)


class BinaryLayer(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x):
        return StraightThroughSign.apply(self.linear(x))


def main():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.uniform(-2, 2, size=(5, 4)), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ClampedExp.apply(t, 1.5), (x,), eps=1e-6, atol=1e-5)
    y = ClampedExp.apply(x, 1.5)
    y.sum().backward()
    grad_clamped_exp = x.grad.sum().item()

    model = nn.Sequential(BinaryLayer(6, 8), nn.Linear(8, 1))
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            p.copy_(torch.from_numpy(rng.normal(0, 0.5, size=tuple(p.shape)).astype(np.float32)))
    inputs = torch.from_numpy(rng.normal(size=(32, 6)).astype(np.float32))
    targets = torch.from_numpy(rng.normal(size=(32, 1)).astype(np.float32))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first_grad = model[0].linear.weight.grad.abs().sum().item()
    return {"clamped_exp_sum": y.sum().item(), "clamped_exp_grad_sum": grad_clamped_exp, "losses": losses[::4],
            "sign_layer_grad": first_grad, "y_requires_grad": float(y.requires_grad)}


if __name__ == "__main__":
    print(main())
