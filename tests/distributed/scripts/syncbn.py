"""Rank script: SyncBatchNorm forward and backward on this rank's half of a batch.

Writes ``syncbn_rank{r}.npz`` (outputs, input and parameter gradients, running statistics) into the
folder given as the first argument; the test compares them with PyTorch's BatchNorm on the whole batch.
"""
import os
import sys

import numpy as np

import somanet
from somanet import nn

CASES = {"4d": (8, 3, 5, 4), "2d": (6, 5)}


def case_data(shape):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    w = rng.uniform(0.5, 1.5, shape[1]).astype(np.float32)
    b = rng.standard_normal(shape[1]).astype(np.float32)
    return x, g, w, b


def main(out):
    import somanet.distributed as dist
    dist.init_process_group()
    r = dist.get_rank()
    results = {}
    for name, shape in CASES.items():
        x, g, w, b = case_data(shape)
        half = shape[0] // 2
        rows = slice(r * half, (r + 1) * half)
        bn = nn.SyncBatchNorm(shape[1], momentum=0.3)
        bn.weight.data = somanet.tensor(w)
        bn.bias.data = somanet.tensor(b)
        xt = somanet.tensor(x[rows], requires_grad=True)
        y = bn(xt)
        y.backward(somanet.tensor(g[rows]))
        results.update({f"{name}/out": y.array, f"{name}/dx": xt.grad.array, f"{name}/dw": bn.weight.grad.array,
                        f"{name}/db": bn.bias.grad.array, f"{name}/running_mean": bn.running_mean.array,
                        f"{name}/running_var": bn.running_var.array})
        bn.eval()  # evaluation: the running statistics, no communication
        results[f"{name}/eval"] = bn(somanet.tensor(x[rows])).array

    # convert_sync_batchnorm keeps the parameters and buffers (shared) and the training mode.
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Sequential(nn.BatchNorm2d(4)))
    model[1].eval()
    weight = model[1].weight
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    results["converted"] = np.array([type(converted[1]).__name__, type(converted[3][0]).__name__])
    results["converted_shares"] = np.array(converted[1].weight is weight and not converted[1].training)
    np.savez(os.path.join(out, f"syncbn_rank{r}.npz"), **results)


if __name__ == "__main__":
    main(sys.argv[1])
