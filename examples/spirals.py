"""Fit a 2-layer network to the two-spirals problem with raw tensors, autograd and a hand-written SGD loop.

No layers, no optimizer classes: weights are tensors that require grad, the forward pass is a few
tensor ops, ``loss.backward()`` runs the chain rule, and the update is written out under ``no_grad``.

    python examples/spirals.py
"""
import math
import time

import numpy as np

import somanet


def make_spirals(n_per_class=500, noise=0.2, turns=1.75, seed=0):
    """Two interleaved spirals in 2-D: X ``(2n, 2)`` float32, y ``(2n,)`` int64 in {0, 1}."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.random(n_per_class)) * turns * 2 * math.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (turns * 2 * math.pi)
    X = np.concatenate([arm, -arm]) * 4 + rng.normal(0, noise / 4, (2 * n_per_class, 2))
    y = np.concatenate([np.zeros(n_per_class), np.ones(n_per_class)]).astype(np.int64)
    return X.astype(np.float32), y


def main(hidden=128, steps=3000, lr=0.1, momentum=0.9, seed=0):
    somanet.manual_seed(seed)
    X_np, y_np = make_spirals(seed=seed)
    X = somanet.tensor(X_np)
    target = somanet.tensor(y_np.astype(np.float32)).reshape(-1, 1)

    # Two layers: 2 -> hidden (tanh) -> 1 logit. Scaled Gaussian init keeps tanh out of saturation.
    W1 = (somanet.randn(2, hidden) * math.sqrt(2.0 / 2)).requires_grad_()
    b1 = somanet.zeros(hidden, requires_grad=True)
    W2 = (somanet.randn(hidden, 1) * math.sqrt(1.0 / hidden)).requires_grad_()
    b2 = somanet.zeros(1, requires_grad=True)
    params = [W1, b1, W2, b2]
    velocity = [somanet.zeros_like(p) for p in params]

    start = time.perf_counter()
    for step in range(steps + 1):
        hidden_act = (X @ W1 + b1).tanh()
        logits = hidden_act @ W2 + b2
        # Binary cross-entropy from logits, written out: softplus(z) - y * z is stable for any z.
        loss = ((logits.abs().neg().exp() + 1).log() + logits.clamp(min=0) - target * logits).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with somanet.no_grad():
            for p, v in zip(params, velocity):
                v.mul_(momentum).add_(p.grad)
                p -= lr * v  # in place, as in PyTorch: p stays the same leaf tensor
        if step % 500 == 0:
            accuracy = ((logits.detach() > 0).float() == target).float().mean().item()
            print(f"step {step:5d}  loss {loss.item():.4f}  train accuracy {accuracy:.2%}")
    elapsed = time.perf_counter() - start
    accuracy = (((X @ W1 + b1).tanh() @ W2 + b2 > 0).float() == target).float().mean().item()
    print(f"final train accuracy {accuracy:.2%} on {len(y_np)} points in {elapsed:.1f} s")
    return accuracy


if __name__ == "__main__":
    main()
