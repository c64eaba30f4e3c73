"""Regression with a small MLP: SGD with momentum and weight decay, a StepLR schedule, full-batch steps."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import StepLR


def init_from_numpy(model, seed):
    """Same starting weights in any framework: uniform values from a NumPy generator, by parameter name."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            bound = 1.0 / np.sqrt(p.shape[-1])
            p.copy_(torch.from_numpy(rng.uniform(-bound, bound, size=tuple(p.shape)).astype(np.float32)))


def main():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(256, 3)).astype(np.float32)
    y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:2] * x[:, 2:3]).astype(np.float32)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)

    model = nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
    init_from_numpy(model, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    scheduler = StepLR(optimizer, step_size=50, gamma=0.5)

    losses = []
    for step in range(200):
        optimizer.zero_grad()
        loss = F.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 25 == 0:
            losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        final = F.mse_loss(model(inputs), targets).item()
    assert final < 0.05, final
    return {"losses": losses, "final_loss": final, "lr": scheduler.get_last_lr()[0]}


if __name__ == "__main__":
    print(main())
