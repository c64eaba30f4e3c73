"""torchvision's FakeData with augmenting transforms, a shuffling DataLoader, a small CNN and make_grid.

Images come from each framework's generator, so only shapes, types and learning are compared.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T
from torch.utils.data import DataLoader


def main():
    torch.manual_seed(0)
    transform = T.Compose([T.RandomCrop(16, padding=2), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    dataset = torchvision.datasets.FakeData(size=64, image_size=(3, 16, 16), num_classes=4, transform=transform)
    loader = DataLoader(dataset, batch_size=16, shuffle=True, drop_last=False)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                          nn.Linear(8 * 16, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batch_shapes, losses = [], []
    for epoch in range(3):
        for images, labels in loader:
            if epoch == 0:
                batch_shapes.append(list(images.shape))
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    grid = torchvision.utils.make_grid(images, nrow=4, padding=2, normalize=True)
    first_image, first_label = dataset[0]
    assert all(loss == loss for loss in losses)  # no NaN
    return {"batch_shapes": batch_shapes, "grid_shape": list(grid.shape), "label_is_int": float(isinstance(
        first_label, int)), "image_dtype_is_float32": float(first_image.dtype == torch.float32),
        "value_range_ok": float(-1.0 <= first_image.min().item() and first_image.max().item() <= 1.0),
        "len": len(dataset), "_losses": losses}


if __name__ == "__main__":
    print(main())
