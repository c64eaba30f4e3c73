"""Rank script: a Sequential pipelined over two ranks (GPipe and 1F1B), gradients and one SGD step.

Writes ``pipe_rank{r}.npz`` into the folder given as the first argument; the test compares it with the
whole model in one process (``reference``).
"""
import os
import sys

import numpy as np

import somanet
from somanet import nn, optim

BATCH, CHUNKS = 22, 4  # uneven micro-batches: 6, 6, 5, 5


def build():
    somanet.manual_seed(3)
    return nn.Sequential(nn.Linear(10, 24), nn.Tanh(), nn.Linear(24, 24), nn.GELU(), nn.Linear(24, 16), nn.Tanh(),
                         nn.Linear(16, 5))


def data():
    rng = np.random.default_rng(1)
    return rng.standard_normal((BATCH, 10)).astype(np.float32), rng.integers(0, 5, BATCH)


def reference():
    """Loss, gradients and the weights after one SGD step of the whole model in one process."""
    x, y = data()
    model = build()
    loss = nn.CrossEntropyLoss()(model(somanet.tensor(x)), somanet.tensor(y))
    loss.backward()
    grads = {k: p.grad.array.copy() for k, p in model.named_parameters()}
    optim.SGD(model.parameters(), lr=0.5).step()
    return float(loss.array), grads, {k: v.array for k, v in model.state_dict().items()}, model


def main(out):
    import somanet.distributed as dist
    from somanet.distributed.pipeline import Pipe
    dist.init_process_group()
    r = dist.get_rank()
    x, y = data()
    results = {}
    for schedule, balance in (("gpipe", None), ("1f1b", [4, 3])):
        pipe = Pipe(build(), chunks=CHUNKS, schedule=schedule, balance=balance)
        # Only the first stage needs the input and only the last the target.
        loss = pipe.step(x if pipe.is_first else None, y if pipe.is_last else None, nn.CrossEntropyLoss())
        results[f"{schedule}/loss"] = np.array(loss)
        results[f"{schedule}/bounds"] = np.array(pipe.bounds)
        for k, p in pipe.named_parameters():
            results[f"{schedule}/grad/{k}"] = p.grad.array
        optim.SGD(pipe.parameters(), lr=0.5).step()
        for k, v in pipe.state_dict().items():
            results[f"{schedule}/after/{k}"] = v.array
        outputs = pipe(x if pipe.is_first else None)
        if pipe.is_last:
            results[f"{schedule}/forward"] = outputs.array
    np.savez(os.path.join(out, f"pipe_rank{r}.npz"), **results)


if __name__ == "__main__":
    main(sys.argv[1])
