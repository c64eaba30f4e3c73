"""A character model: Embedding + two-layer GRU + Linear, trained on windows of a short text, then greedy decoding."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TEXT = ("the quick brown fox jumps over the lazy dog while the small cat sleeps in the warm sun and the "
        "old dog dreams of the quick brown fox that jumps over the fence into the green field ") * 3


class CharModel(nn.Module):
    def __init__(self, vocab, embed=16, hidden=48):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed, hidden, num_layers=2, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, tokens, hidden=None):
        out, hidden = self.gru(self.embedding(tokens), hidden)
        return self.decoder(out), hidden


def main():
    chars = sorted(set(TEXT))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in TEXT], dtype=torch.long)

    model = CharModel(len(chars))
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            p.copy_(torch.from_numpy(rng.uniform(-0.15, 0.15, size=tuple(p.shape)).astype(np.float32)))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    seq_len, batch = 24, 16
    losses = []
    for step in range(50):
        starts = rng.integers(0, len(data) - seq_len - 1, size=batch)
        x = torch.stack([data[s:s + seq_len] for s in starts])
        y = torch.stack([data[s + 1:s + seq_len + 1] for s in starts])
        optimizer.zero_grad()
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, len(chars)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())

    model.eval()
    with torch.no_grad():
        token = torch.tensor([[stoi["t"]]])
        hidden = None
        generated = ["t"]
        for _ in range(30):
            logits, hidden = model(token, hidden)
            token = logits[:, -1].argmax(-1, keepdim=True)
            generated.append(chars[token.item()])
    assert losses[-1] < 0.6 * losses[0], losses
    return {"losses": losses[::10] + losses[-1:], "generated": "".join(generated)}


if __name__ == "__main__":
    print(main())
