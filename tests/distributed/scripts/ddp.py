"""Rank script: DistributedDataParallel training, no_sync, unused parameters and the state dict.

Writes ``ddp_rank{r}.npz`` into the folder given as the first argument; the test compares it with
one process training on the combined batches (``reference`` below, imported by the test too).
"""
import os
import sys

import numpy as np

import somanet
from somanet import nn, optim

STEPS, PER_RANK, WORLD = 50, 8, 2


class Net(nn.Module):
    """A small MLP whose middle layer is used twice (its weights get two gradient contributions)."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(12, 32)
        self.shared = nn.Linear(32, 32)
        self.out = nn.Linear(32, 4)

    def forward(self, x):
        h = self.inp(x).tanh()
        h = self.shared(h).tanh()
        h = self.shared(h).tanh()
        return self.out(h)


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((STEPS, WORLD * PER_RANK, 12)).astype(np.float32)
    y = rng.integers(0, 4, (STEPS, WORLD * PER_RANK))
    return x, y


def new_net(seed=0):
    somanet.manual_seed(seed)
    return Net()


def train(model, params, x, y, rows):
    opt = optim.SGD(params, lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    for s in range(STEPS):
        opt.zero_grad()
        loss_fn(model(somanet.tensor(x[s, rows])), somanet.tensor(y[s, rows])).backward()
        opt.step()


def reference():
    """One process, the combined batch of both ranks at every step: the weights DDP must reach."""
    x, y = data()
    model = new_net()
    train(model, model.parameters(), x, y, slice(None))
    return {k: v.array.copy() for k, v in model.state_dict().items()}


def main(out):
    import somanet.distributed as dist
    from somanet.nn.parallel import DistributedDataParallel as DDP
    dist.init_process_group()
    r = dist.get_rank()
    results = {}

    # 1. 50 steps: the same weights as one process with the combined batch. Rank 1 starts from other
    #    weights (DDP broadcasts rank 0's); one parameter per bucket, so reductions overlap backward.
    model = new_net(seed=r)
    ddp = DDP(model, bucket_cap_mb=1e-6)
    launches = []
    launch_ready = ddp._launch_ready

    def recording():
        launches.append(ddp._contributions)
        launch_ready()

    ddp._launch_ready = recording
    x, y = data()
    train(ddp, ddp.parameters(), x, y, slice(r * PER_RANK, (r + 1) * PER_RANK))
    for k, v in ddp.state_dict().items():
        results["trained/" + k] = v.array
    contributions_per_step = ddp._contributions
    results["launch_at"] = np.array(launches[:len(ddp._buckets)])
    results["contributions"] = np.array(contributions_per_step)
    results["buckets"] = np.array(len(ddp._buckets))

    # 2. no_sync: two accumulated micro-batches, then a synced one = the gradient of the three together.
    model = new_net()
    ddp = DDP(model)
    loss_fn = nn.CrossEntropyLoss()
    xs = x[0, r * PER_RANK:(r + 1) * PER_RANK]
    ys = y[0, r * PER_RANK:(r + 1) * PER_RANK]
    with ddp.no_sync():
        for k in range(2):
            (loss_fn(ddp(somanet.tensor(xs[4 * k:4 * k + 4])), somanet.tensor(ys[4 * k:4 * k + 4])) / 3).backward()
    local = {n: p.grad.array.copy() for n, p in ddp.named_parameters()}
    (loss_fn(ddp(somanet.tensor(xs[:4])), somanet.tensor(ys[:4])) / 3).backward()
    for n, p in ddp.named_parameters():
        results["no_sync_local/" + n] = local[n]
        results["no_sync/" + n] = p.grad.array

    # 3. find_unused_parameters: `extra` is used on rank 0 only, `never` on no rank.
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(3, 2)
            self.extra = nn.Linear(3, 2)
            self.never = nn.Linear(3, 2)

        def forward(self, x, use_extra):
            out = self.body(x)
            return out + self.extra(x) if use_extra else out

    somanet.manual_seed(1)
    net = DDP(Branchy(), find_unused_parameters=True)
    xb = somanet.tensor(np.full((2, 3), r + 1.0, np.float32))
    for _ in range(2):  # twice: the reduction finishes and the next forward starts clean
        net.zero_grad()
        net(xb, use_extra=r == 0).sum().backward()
    results["unused/extra.weight"] = net.module.extra.weight.grad.array
    results["unused/body.weight"] = net.module.body.weight.grad.array
    results["unused/never_grad_is_none"] = np.array(net.module.never.weight.grad is None)

    # Without find_unused_parameters, a parameter that gets no gradient is reported at the next forward.
    somanet.manual_seed(1)
    strict = DDP(Branchy())
    strict(xb, use_extra=True).sum().backward()
    try:
        strict(xb, use_extra=True)
        message = ""
    except RuntimeError as exc:
        message = str(exc)
    results["unused_error"] = np.array(message)

    # 4. state dict: module. keys, and they load into the plain model.
    keys = list(DDP(new_net()).state_dict())
    results["keys"] = np.array(keys)
    plain = new_net(seed=5)
    plain.load_state_dict({k[len("module."):]: v for k, v in ddp.state_dict().items()})
    results["plain_loads"] = np.array(all(np.array_equal(a.array, b.array) for a, b in
                                          zip(plain.state_dict().values(), ddp.module.state_dict().values())))
    np.savez(os.path.join(out, f"ddp_rank{r}.npz"), **results)


if __name__ == "__main__":
    main(sys.argv[1])
