"""Transfer learning for vision: a CNN pretrained on MNIST, fine-tuned to scikit-learn's 8x8 digits with a
few labels per class, against the same network trained from scratch.

    python examples/transfer_digits.py pretrain --data-dir ../shared/data --out somanet/models/weights/mnist_cnn.safetensors
    python examples/transfer_digits.py compare --per-class 10 --seeds 5

``pretrain`` trains ``SmallCNN`` on MNIST images 0-6,999 of the official test file, picks the epoch by the
accuracy on images 7,000-7,999, and scores images 8,000-9,999 once at the end (never used to choose
anything). ``compare`` takes ``per_class`` labelled digits of each class for training and scores every
other digit; the hyper-parameters are fixed in this file and the same for every method:

* scratch:   SmallCNN, random initialisation, every layer trained;
* features:  the pretrained blocks frozen (batch norm in eval mode), only a new ``fc`` trained;
* finetune:  the pretrained network with a new ``fc``, every layer trained, the blocks at a tenth of the
             head's learning rate (discriminative learning rates).

Results and wall times measured on this project's 2-core machine are in docs/transfer.md.
"""
import argparse
import os
import sys
import time

import numpy as np

import somanet
from somanet import nn, optim
from somanet.models.small_cnn import SmallCNN, digits_to_mnist, mnist_cnn, MNIST_MEAN, MNIST_STD
from somanet.nn.utils.transfer import freeze, param_groups

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))

# Fixed before any result was seen, identical for every method.
EPOCHS, BATCH, LR = 60, 20, 2e-3


def load_mnist(data_dir):
    from somanet.data.datasets.vision import read_idx
    images = read_idx(os.path.join(data_dir, "mnist", "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, "mnist", "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    x = ((images.astype(np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD)[:, None]
    return x, labels


def accuracy(model, x, y, batch=500):
    was = model.training
    model.eval()
    correct = 0
    with somanet.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(somanet.tensor(x[i:i + batch])).array.argmax(1) == y[i:i + batch]).sum())
    model.train(was)
    return correct / len(x)


def train(model, x, y, optimizer, epochs, batch, seed, log=None, cosine=False):
    """Plain mini-batch training with cross-entropy; ``cosine`` anneals the learning rates to zero over the
    run (stepped every batch)."""
    rng = np.random.default_rng(seed)
    loss_fn = nn.CrossEntropyLoss()
    steps = epochs * ((len(x) + batch - 1) // batch)
    schedule = optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if cosine else None
    model.train()
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            optimizer.zero_grad()
            loss = loss_fn(model(somanet.tensor(x[idx])), somanet.tensor(y[idx]))
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
        if log is not None:
            log(epoch)
    return model


def pretrain(data_dir=DEFAULT_DATA, epochs=10, seed=0, out=None, limit=None):
    """Train SmallCNN on MNIST 0-6,999 (or the first ``limit`` of them) with Adam (lr 2e-3, cosine-annealed,
    batch 64); keep the epoch with the best accuracy on 7,000-7,999; return ``(model, info)`` and write the
    weights to ``out`` if given."""
    x, y = load_mnist(data_dir)
    n_train = 7000 if limit is None else min(limit, 7000)
    x_tr, y_tr, x_val, y_val = x[:n_train], y[:n_train], x[7000:8000], y[7000:8000]
    somanet.manual_seed(seed)
    model = SmallCNN()
    opt = optim.Adam(model.parameters(), lr=2e-3)
    best = {"val": -1.0}
    start, cpu = time.perf_counter(), time.process_time()

    def log(epoch):
        val = accuracy(model, x_val, y_val)
        print(f"epoch {epoch + 1}/{epochs}: validation accuracy (7000-7999) {val:.4f}", flush=True)
        if val > best["val"]:
            best.update(val=val, epoch=epoch + 1,
                        state={k: v.array.copy() for k, v in model.state_dict().items()})

    train(model, x_tr, y_tr, opt, epochs, 64, seed, log, cosine=True)
    model.load_state_dict(best["state"])
    info = {"val_accuracy": best["val"], "epoch": best["epoch"], "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu, "test_accuracy": accuracy(model, x[8000:], y[8000:])}
    print(f"best epoch {info['epoch']}: validation {info['val_accuracy']:.4f}; test (8000-9999, scored once) "
          f"{info['test_accuracy']:.4f}; {info['seconds']:.0f} s wall, {info['cpu_seconds']:.0f} s CPU")
    if out:
        from safetensors.numpy import save_file
        meta = {"description": "SmallCNN pretrained by somanet on MNIST test-file images 0-6999",
                "input": f"(N, 1, 28, 28), pixels/255 normalised with mean {MNIST_MEAN} std {MNIST_STD}",
                "val_accuracy_7000_7999": f"{info['val_accuracy']:.4f}",
                "test_accuracy_8000_9999": f"{info['test_accuracy']:.4f}", "epochs": str(info["epoch"]),
                "seed": str(seed)}
        save_file({k: np.ascontiguousarray(v.array) if v.array.ndim else v.array.copy()
                   for k, v in model.state_dict().items()}, out, metadata=meta)
        print(f"weights written to {out}")
    return model, info


def few_shot_digits(per_class, seed):
    """``per_class`` training digits of each class (drawn with ``seed``) and every other digit for testing, as
    MNIST-style (N, 1, 28, 28) inputs."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    rng = np.random.default_rng(seed)
    train_idx = np.concatenate([rng.choice(np.flatnonzero(digits.target == c), per_class, replace=False)
                                for c in range(10)])
    test_mask = np.ones(len(digits.target), bool)
    test_mask[train_idx] = False
    x = digits_to_mnist(digits.images)
    y = digits.target.astype(np.int64)
    return x[train_idx], y[train_idx], x[test_mask], y[test_mask]


def build(method, seed):
    somanet.manual_seed(seed)
    if method == "scratch":
        model = SmallCNN()
        return model, optim.Adam(model.parameters(), lr=LR)
    model = mnist_cnn(pretrained=True)
    model.fc = nn.Linear(model.fc.in_features, 10)  # a new head for the new task
    if method == "features":
        freeze(model, up_to="pool")
        return model, optim.Adam([p for p in model.parameters() if p.requires_grad], lr=LR)
    if method == "finetune":
        return model, optim.Adam(param_groups(model, {"fc": LR}, default_lr=LR / 10))
    raise ValueError(f"unknown method {method!r}")


def run(method, per_class=10, seed=0, epochs=EPOCHS):
    x_tr, y_tr, x_te, y_te = few_shot_digits(per_class, seed)
    model, opt = build(method, seed)
    start, cpu = time.perf_counter(), time.process_time()
    train(model, x_tr, y_tr, opt, epochs, BATCH, seed)
    return accuracy(model, x_te, y_te), time.perf_counter() - start, time.process_time() - cpu


def compare(per_class=10, seeds=5, epochs=EPOCHS, methods=("scratch", "features", "finetune")):
    results = {}
    for method in methods:
        accs, times, cpus = [], [], []
        for seed in range(seeds):
            acc, sec, cpu = run(method, per_class, seed, epochs)
            accs.append(acc)
            times.append(sec)
            cpus.append(cpu)
        results[method] = (float(np.mean(accs)), float(np.std(accs)), float(np.mean(times)), accs)
        print(f"{method:9s} {per_class:3d}/class: test accuracy {np.mean(accs):.4f} +- {np.std(accs):.4f} over "
              f"{seeds} seeds ({', '.join(f'{a:.3f}' for a in accs)}); {np.mean(times):.1f} s wall, "
              f"{np.mean(cpus):.1f} s CPU per run", flush=True)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pretrain")
    p.add_argument("--data-dir", default=DEFAULT_DATA)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")
    p = sub.add_parser("compare")
    p.add_argument("--per-class", type=int, nargs="+", default=[10])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                        help="threads for somanet and BLAS (default: 2, as measured in docs/transfer.md)")
    args = parser.parse_args(argv)
    somanet.set_num_threads(args.threads)
    if args.cmd == "pretrain":
        pretrain(args.data_dir, args.epochs, args.seed, args.out)
    else:
        for k in args.per_class:
            compare(k, args.seeds, args.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
