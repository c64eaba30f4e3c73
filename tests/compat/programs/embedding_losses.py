"""Metric learning on fixed pairs and triplets: CosineEmbeddingLoss, MarginRankingLoss, TripletMarginLoss."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def main():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 6)).astype(np.float32)
    labels = rng.integers(0, 4, size=64)
    points = torch.from_numpy(centres[labels] + 0.5 * rng.normal(size=(64, 6)).astype(np.float32))

    encoder = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
    scorer = nn.Linear(4, 1)
    with torch.no_grad():
        for name, p in sorted(list(encoder.named_parameters()) + list(scorer.named_parameters())):
            p.copy_(torch.from_numpy(rng.normal(0, 0.4, size=tuple(p.shape)).astype(np.float32)))

    first, second = torch.from_numpy(rng.integers(0, 64, size=48)), torch.from_numpy(rng.integers(0, 64, size=48))
    same = torch.from_numpy(np.where(labels[first.numpy()] == labels[second.numpy()], 1, -1))
    anchor = torch.arange(32)
    positive = torch.tensor([int(rng.choice(np.flatnonzero(labels == labels[i]))) for i in range(32)])
    negative = torch.tensor([int(rng.choice(np.flatnonzero(labels != labels[i]))) for i in range(32)])

    cosine = nn.CosineEmbeddingLoss(margin=0.2)
    ranking = nn.MarginRankingLoss(margin=0.5)
    triplet = nn.TripletMarginLoss(margin=2.0, p=2)
    params = list(encoder.parameters()) + list(scorer.parameters())
    optimizer = torch.optim.SGD(params, lr=0.05)
    history = []
    for step in range(30):
        optimizer.zero_grad()
        z = encoder(points)
        scores = scorer(z).squeeze(1)
        loss_cos = cosine(z[first], z[second], same)
        loss_rank = ranking(scores[first], scores[second], same.float())
        loss_triplet = triplet(z[anchor], z[positive], z[negative])
        loss = loss_cos + 0.1 * loss_rank + loss_triplet
        loss.backward()
        optimizer.step()
        history.append([loss_cos.item(), loss_rank.item(), loss_triplet.item()])
    assert history[-1][0] < history[0][0] and history[-1][2] < history[0][2], history
    with torch.no_grad():
        functional = [F.cosine_embedding_loss(z[first], z[second], same, reduction="sum").item(),
                      F.margin_ranking_loss(scores[first], scores[second], same.float()).item(),
                      F.triplet_margin_loss(z[anchor], z[positive], z[negative], swap=True).item()]
    return {"history": history[::6] + history[-1:], "functional": functional}


if __name__ == "__main__":
    print(main())
