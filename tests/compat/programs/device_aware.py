"""The usual device-agnostic loop: pick cuda when available, move the model and every batch with .to(device)."""
import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


def main():
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rng = np.random.default_rng(0)
    features = rng.normal(size=(128, 10)).astype(np.float32)
    labels = (features[:, 0] + features[:, 1] > 0).astype(np.int64)
    loader = DataLoader(TensorDataset(torch.from_numpy(features), torch.from_numpy(labels)), batch_size=32)

    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            p.copy_(torch.from_numpy(rng.normal(0, 0.3, size=tuple(p.shape)).astype(np.float32)))
    model = model.to(device)
    assert next(model.parameters()).device.type == device.type
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    criterion = nn.CrossEntropyLoss().to(device)

    epoch_losses = []
    for epoch in range(5):
        total = torch.zeros((), device=device)
        for batch, target in loader:
            batch, target = batch.to(device), target.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(batch), target)
            loss.backward()
            optimizer.step()
            total += loss.detach() * batch.size(0)
        epoch_losses.append((total / len(loader.dataset)).item())

    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor(features, device=device))
        predictions = logits.argmax(dim=1).cpu().numpy()
    accuracy = float((predictions == labels).mean())
    assert accuracy > 0.9, accuracy
    return {"epoch_losses": epoch_losses, "accuracy": accuracy, "logit_sum": float(logits.sum().cpu()),
            "on_cpu_or_cuda": float(str(device) in ("cpu", "cuda"))}


if __name__ == "__main__":
    print(main())
