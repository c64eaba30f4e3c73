"""A Transformer encoder classifier with a key padding mask, AdamW and cosine annealing."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Classifier(nn.Module):
    def __init__(self, vocab=8, d_model=32, nhead=4, layers=2, classes=3, max_len=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.zeros(1, max_len, d_model))
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, classes)

    def forward(self, tokens, padding_mask):
        x = self.embed(tokens) * math.sqrt(self.embed.embedding_dim) + self.pos[:, :tokens.size(1)]
        x = self.encoder(x, src_key_padding_mask=padding_mask)
        keep = (~padding_mask).unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(1) / keep.sum(1)
        return self.head(self.norm(pooled))


def init_from_numpy(model, seed):
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("weight") and p.dim() == 1:  # layer norm scales
                p.fill_(1.0)
            else:
                p.copy_(torch.from_numpy(rng.normal(0.0, 0.1, size=tuple(p.shape)).astype(np.float32)))


def main():
    rng = np.random.default_rng(0)
    count, length = 48, 12
    tokens = rng.integers(1, 8, size=(count, length))
    lengths = rng.integers(4, length + 1, size=count)
    padding = np.arange(length)[None, :] >= lengths[:, None]
    tokens[padding] = 0
    labels = np.array([int(t[:n].max()) % 3 for t, n in zip(tokens, lengths)])
    tokens_t, mask_t, labels_t = torch.from_numpy(tokens), torch.from_numpy(padding), torch.from_numpy(labels)

    model = Classifier()
    init_from_numpy(model, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=30)
    losses = []
    for step in range(30):
        model.train()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(tokens_t, mask_t), labels_t, label_smoothing=0.05)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        accuracy = (model(tokens_t, mask_t).argmax(-1) == labels_t).float().mean().item()
    assert losses[-1] < losses[0], losses
    return {"losses": losses[::6] + losses[-1:], "train_accuracy": accuracy, "lr": scheduler.get_last_lr()[0]}


if __name__ == "__main__":
    print(main())
