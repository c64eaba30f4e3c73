"""Classify variable-length token sequences with an LSTM over packed sequences (lengths unsorted)."""
import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence


class SequenceClassifier(nn.Module):
    def __init__(self, vocab, embed, hidden, classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(4 * hidden, classes)

    def forward(self, tokens, lengths):
        packed = pack_padded_sequence(self.embedding(tokens), lengths, batch_first=True, enforce_sorted=False)
        out, (h_n, c_n) = self.lstm(packed)
        padded, out_lengths = pad_packed_sequence(out, batch_first=True)
        mask = (torch.arange(padded.size(1))[None, :] < out_lengths[:, None]).unsqueeze(-1).float()
        mean = (padded * mask).sum(dim=1) / out_lengths[:, None].float()
        last = torch.cat([h_n[0], h_n[1]], dim=1)
        return self.head(torch.cat([mean, last], dim=1))


def init_from_numpy(model, seed):
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            p.copy_(torch.from_numpy(rng.normal(0.0, 0.2, size=tuple(p.shape)).astype(np.float32)))


def make_data(rng, count):
    """Label: whether token 3 occurs more often than token 4."""
    sequences, labels = [], []
    for _ in range(count):
        length = int(rng.integers(3, 12))
        seq = rng.integers(1, 6, size=length)
        sequences.append(torch.from_numpy(seq.astype(np.int64)))
        labels.append(int((seq == 3).sum() > (seq == 4).sum()))
    lengths = torch.tensor([len(s) for s in sequences])
    return pad_sequence(sequences, batch_first=True), lengths, torch.tensor(labels)


def main():
    rng = np.random.default_rng(0)
    tokens, lengths, labels = make_data(rng, 96)
    model = SequenceClassifier(vocab=6, embed=8, hidden=16, classes=2)
    init_from_numpy(model, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    criterion = nn.CrossEntropyLoss()
    losses = []
    for step in range(60):
        optimizer.zero_grad()
        loss = criterion(model(tokens, lengths), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        accuracy = (model(tokens, lengths).argmax(1) == labels).float().mean().item()
    assert losses[-1] < 0.5 * losses[0], losses
    return {"losses": losses[::10] + losses[-1:], "train_accuracy": accuracy,
            "padded_shape": list(tokens.shape), "length_sum": int(lengths.sum())}


if __name__ == "__main__":
    print(main())
