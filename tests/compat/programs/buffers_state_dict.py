"""A module with buffers, and training that resumes from torch.save / torch.load checkpoints."""
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class RunningScaler(nn.Module):
    """Scales inputs by running statistics kept in buffers (updated in training mode only)."""

    def __init__(self, features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(0))
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * x.var(0))
                self.steps += 1
        return (x - self.running_mean) / torch.sqrt(self.running_var + 1e-5)


def build(seed):
    model = nn.Sequential(RunningScaler(5), nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            p.copy_(torch.from_numpy(rng.normal(0, 0.3, size=tuple(p.shape)).astype(np.float32)))
    return model


def train(model, optimizer, x, y, steps):
    losses = []
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def main():
    rng = np.random.default_rng(0)
    x = torch.from_numpy((rng.normal(size=(64, 5)) * 3 + 1).astype(np.float32))
    y = torch.from_numpy(rng.normal(size=(64, 1)).astype(np.float32))
    model = build(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    train(model, optimizer, x, y, 10)
    assert sorted(k for k, _ in model.named_buffers()) == ["0.running_mean", "0.running_var", "0.steps",
                                                           "2.num_batches_tracked", "2.running_mean", "2.running_var"]

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "checkpoint.pt")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 10}, path)
        checkpoint = torch.load(path)

    restored = build(2)
    restored.load_state_dict(checkpoint["model"])
    restored_optimizer = torch.optim.Adam(restored.parameters(), lr=0.01)
    restored_optimizer.load_state_dict(checkpoint["optimizer"])
    model.eval()
    restored.eval()
    with torch.no_grad():
        same_outputs = torch.equal(model(x), restored(x))
    continued = train(model, optimizer, x, y, 5)
    resumed = train(restored, restored_optimizer, x, y, 5)
    assert same_outputs and continued == resumed
    return {"continued": continued, "steps_buffer": int(restored[0].steps), "epoch": checkpoint["epoch"],
            "running_mean_sum": restored[0].running_mean.sum().item()}


if __name__ == "__main__":
    print(main())
