"""A small CNN on real MNIST digits: torchvision dataset and transforms, a DataLoader, Adam, accuracy.

Images 0-1023 train, 1024-1535 validate (the project's held-out images 8000-9999 are not touched).
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 7 * 7, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


def init_from_numpy(model, seed):
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            fan_in = int(np.prod(p.shape[1:])) if p.dim() > 1 else p.shape[0]
            bound = 1.0 / np.sqrt(fan_in)
            p.copy_(torch.from_numpy(rng.uniform(-bound, bound, size=tuple(p.shape)).astype(np.float32)))


def main(root):
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    mnist = datasets.MNIST(root, train=False, download=False, transform=transform)
    train_loader = DataLoader(Subset(mnist, range(0, 1024)), batch_size=64, shuffle=False)
    val_loader = DataLoader(Subset(mnist, range(1024, 1536)), batch_size=256)

    model = Net()
    init_from_numpy(model, 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for epoch in range(3):
        model.train()
        total = 0.0
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            total += loss.item() * images.size(0)
        losses.append(total / 1024)

    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in val_loader:
            correct += (model(images).argmax(dim=1) == labels).sum().item()
    accuracy = correct / 512
    assert accuracy > 0.8, accuracy
    return {"epoch_losses": losses, "val_accuracy": accuracy, "first_label": int(mnist.targets[0]),
            "pixel_sum": float(mnist[0][0].sum())}


if __name__ == "__main__":
    import sys
    print(main(sys.argv[1]))
