"""A map-style Dataset of dicts, a custom collate_fn, TensorDataset, Subset, random_split and batching rules."""
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset, random_split


class Records(Dataset):
    def __init__(self, n):
        rng = np.random.default_rng(0)
        self.features = rng.normal(size=(n, 3)).astype(np.float32)
        self.words = [f"w{i % 5}" for i in range(n)]

    def __len__(self):
        return len(self.features)

    def __getitem__(self, index):
        return {"x": torch.from_numpy(self.features[index]), "word": self.words[index], "index": index}


def pad_collate(batch):
    lengths = [len(item) for item in batch]
    out = torch.zeros(len(batch), max(lengths), dtype=torch.long)
    for row, item in enumerate(batch):
        out[row, :len(item)] = torch.tensor(item)
    return out, torch.tensor(lengths)


def main():
    records = Records(23)
    batches = list(DataLoader(records, batch_size=5))
    assert [b["x"].shape[0] for b in batches] == [5, 5, 5, 5, 3]
    assert batches[0]["word"] == ["w0", "w1", "w2", "w3", "w4"] and batches[0]["index"].dtype == torch.int64
    dropped = DataLoader(records, batch_size=5, drop_last=True)

    sequences = [[1, 2, 3], [4], [5, 6], [7, 8, 9, 10]]
    padded, lengths = next(iter(DataLoader(sequences, batch_size=4, collate_fn=pad_collate)))

    x = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    y = torch.arange(10)
    pairs = TensorDataset(x, y)
    subset = Subset(pairs, [9, 0, 3])
    train, val = random_split(pairs, [7, 3], generator=torch.Generator().manual_seed(0))
    assert sorted(train.indices + val.indices) == list(range(10))
    fractions = random_split(pairs, [0.5, 0.5])
    return {"feature_sum": float(sum(b["x"].sum().item() for b in batches)), "batches": len(batches),
            "dropped_batches": len(dropped), "padded": padded.tolist(), "lengths": lengths.tolist(),
            "subset": [int(subset[i][1]) for i in range(3)], "subset_x": subset[0][0].tolist(),
            "split_sizes": [len(train), len(val)], "fraction_sizes": [len(f) for f in fractions],
            "unbatched": [float(v.sum()) for v, _ in DataLoader(pairs, batch_size=None)][:3]}


if __name__ == "__main__":
    print(main())
