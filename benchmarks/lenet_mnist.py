"""Full LeNet-5 run on real MNIST digits: train on images 0-7,999 of the MNIST test file, score once on
images 8,000-9,999.

The recipe (Adam at 2e-3 with a cosine schedule, batch 64, 15 epochs, random shifts of up to 2 pixels) was
chosen by training on images 0-6,999 and validating on 7,000-7,999 (``--validate``); images 8,000-9,999
are only scored.

    python benchmarks/lenet_mnist.py [--data ../shared/data] [--epochs 15] [--validate]
"""
import argparse
import gzip
import os
import time

import somanet  # before NumPy: it sets OpenBLAS's thread timeout
import numpy as np
from somanet import nn, optim
from somanet.models import LeNet5

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_idx(path):
    """Read a gzip-compressed IDX file into a uint8 array of its stated shape."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def random_shift(batch, rng, background, max_shift=2):
    """Translate each image by up to ``max_shift`` pixels in each direction, filling with the background."""
    n = batch.shape[0]
    k = 2 * max_shift + 1
    padded = np.pad(batch, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)),
                    constant_values=background)
    dy, dx = rng.integers(0, k, n), rng.integers(0, k, n)
    out = np.empty_like(batch)
    for i in range(k):  # one slice per shift, not per image
        for j in range(k):
            chosen = (dy == i) & (dx == j)
            out[chosen] = padded[chosen, :, i:i + 28, j:j + 28]
    return out


def accuracy(model, x, y, batch=1000):
    """Fraction of ``x`` that ``model`` classifies as ``y`` (eval mode, no graph)."""
    model.eval()
    correct = 0
    with somanet.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(somanet.tensor(x[i:i + batch])).array.argmax(1) == y[i:i + batch]).sum())
    model.train()
    return correct / len(x)


def main(argv=None):
    """Train with the recipe and score once; returns the accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validate", action="store_true", help="train on 0-6,999 and score 7,000-7,999 instead")
    args = parser.parse_args(argv)

    images = read_idx(os.path.join(args.data, "mnist", "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(args.data, "mnist", "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    x = ((images.astype(np.float32) / 255.0 - 0.1307) / 0.3081)[:, None]
    if args.validate:
        x_train, y_train, x_eval, y_eval, split = x[:7000], labels[:7000], x[7000:8000], labels[7000:8000], "7,000-7,999"
    else:
        x_train, y_train, x_eval, y_eval, split = x[:8000], labels[:8000], x[8000:], labels[8000:], "8,000-9,999"
    background = float(x.min())

    somanet.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = LeNet5(num_classes=10)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for epoch in range(args.epochs):
        for group in opt.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * epoch / args.epochs))
        order = rng.permutation(len(x_train))
        total, batches = 0.0, 0
        for i in range(0, len(order), 64):
            batch = order[i:i + 64]
            opt.zero_grad()
            loss = loss_fn(model(somanet.tensor(random_shift(x_train[batch], rng, background))),
                           somanet.tensor(y_train[batch]))
            loss.backward()
            opt.step()
            total += loss.item()
            batches += 1
        print(f"epoch {epoch + 1:2d}  train loss {total / batches:.4f}  {time.perf_counter() - start:6.1f} s", flush=True)
    acc = accuracy(model, x_eval, y_eval)
    print(f"accuracy on images {split}: {100 * acc:.2f} % ({args.epochs} epochs, "
          f"{time.perf_counter() - start:.0f} s)")
    return acc


if __name__ == "__main__":
    main()
