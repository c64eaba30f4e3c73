"""Common losses on fixed inputs and the learning-rate sequences of common schedulers."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim import lr_scheduler


def lr_sequence(make_scheduler, steps, metric=None):
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for step in range(steps):
        optimizer.step()
        if metric is None:
            scheduler.step()
        else:
            scheduler.step(metric[step])
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def main():
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(size=(8, 5)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 5, size=8))
    weights = torch.tensor([1.0, 2.0, 0.5, 1.0, 1.5])
    scores = torch.from_numpy(rng.normal(size=(8, 3)).astype(np.float32))
    binary = torch.from_numpy((rng.random((8, 3)) > 0.5).astype(np.float32))
    a = torch.from_numpy(rng.normal(size=(8, 3)).astype(np.float32))
    b = torch.from_numpy(rng.normal(size=(8, 3)).astype(np.float32))
    losses = {
        "cross_entropy": F.cross_entropy(logits, labels).item(),
        "cross_entropy_weighted_smoothed": nn.CrossEntropyLoss(weight=weights, label_smoothing=0.1)(logits,
                                                                                                   labels).item(),
        "nll": F.nll_loss(F.log_softmax(logits, dim=1), labels, reduction="sum").item(),
        "bce_logits": nn.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, 2.0, 3.0]))(scores, binary).item(),
        "bce": F.binary_cross_entropy(torch.sigmoid(scores), binary).item(),
        "smooth_l1": F.smooth_l1_loss(a, b, beta=0.5).item(),
        "huber": nn.HuberLoss(delta=0.7)(a, b).item(),
        "l1": nn.L1Loss(reduction="sum")(a, b).item(),
        "kl_div": F.kl_div(F.log_softmax(a, 1), F.softmax(b, 1), reduction="batchmean").item(),
        "mse_none_sum": F.mse_loss(a, b, reduction="none").sum().item(),
    }
    schedules = {
        "step": lr_sequence(lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 10),
        "multistep": lr_sequence(lambda o: lr_scheduler.MultiStepLR(o, milestones=[2, 5], gamma=0.1), 8),
        "exponential": lr_sequence(lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9), 5),
        "cosine": lr_sequence(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=6, eta_min=0.01), 8),
        "warm_restarts": lr_sequence(lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2), 10),
        "one_cycle": lr_sequence(lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=10), 9),
        "lambda": lr_sequence(lambda o: lr_scheduler.LambdaLR(o, lambda epoch: 1.0 / (1 + epoch)), 5),
        "linear": lr_sequence(lambda o: lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=4), 6),
        "plateau": lr_sequence(lambda o: lr_scheduler.ReduceLROnPlateau(o, mode="min", factor=0.5, patience=1),
                               8, metric=[1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6, 0.7]),
    }
    return {**losses, **{f"lr_{k}": v for k, v in schedules.items()}}


if __name__ == "__main__":
    print(main())
