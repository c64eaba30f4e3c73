"""Linear regression by hand: leaf tensors with requires_grad, backward, updates under no_grad."""
import numpy as np
import torch


def main():
    rng = np.random.default_rng(0)
    true_w = np.array([[2.0], [-3.0], [0.5]], dtype=np.float32)
    x = torch.from_numpy(rng.normal(size=(200, 3)).astype(np.float32))
    y = x @ torch.from_numpy(true_w) + 1.25 + 0.01 * torch.from_numpy(rng.normal(size=(200, 1)).astype(np.float32))

    w = torch.zeros(3, 1, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    lr = 0.1
    losses = []
    for step in range(100):
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
        w.grad.zero_()
        b.grad.zero_()
        if step % 20 == 0:
            losses.append(loss.item())
    assert w.is_leaf and w.requires_grad and w.grad is not None
    assert abs(b.item() - 1.25) < 0.01
    return {"losses": losses, "w": w.detach().flatten().tolist(), "b": b.item(),
            "grad_after_zero": w.grad.abs().sum().item()}


if __name__ == "__main__":
    print(main())
