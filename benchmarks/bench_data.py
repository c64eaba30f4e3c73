"""Data loader overhead per batch on MNIST-sized data, against PyTorch's DataLoader and a LeNet step.

    python benchmarks/bench_data.py [--mnist DIR] [--batches 40] [--write]

Workload: 10,000 uint8 28x28 images (MNIST's test set when ``--mnist`` or ``../shared/data/mnist``
has it, else random pixels of the same size), batch 128, shuffled, augmented with
``RandomCrop(28, padding=2)`` then ``Normalize``. Measured: steady-state seconds per batch (after
warm-up, with persistent workers so start-up is not counted), median of a few runs. For scale,
one LeNet-5 training step (forward, backward, SGD) on a batch of 128 in somanet.
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import harness  # noqa: E402
import numpy as np  # noqa: E402  (after somanet: see benchmarks/__init__.py)

import somanet  # noqa: E402
from somanet.data import DataLoader, Dataset, TensorDataset  # noqa: E402
from somanet.data import transforms as T  # noqa: E402

BATCH = 128
MEAN, STD = 0.1307, 0.3081


def load_images(folder):
    if folder and os.path.isdir(folder):
        from somanet.data.datasets import MNIST
        try:
            return MNIST(folder, train=False).data, "MNIST test images"
        except FileNotFoundError:
            pass
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8), "random uint8 images"


class Images(Dataset):
    """uint8 (28, 28) images with integer labels, optionally transformed per sample."""

    def __init__(self, images, transform=None):
        self.images = images
        self.labels = np.arange(len(images)) % 10
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i]
        return (self.transform(img) if self.transform else img), int(self.labels[i])


def per_batch_seconds(make_iter, batches, repeats=3, warmup=3, step=None):
    """Median seconds per batch over ``batches`` batches after ``warmup`` batches, ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        it = make_iter()
        for _ in range(warmup):
            next(it)
        start = time.perf_counter()
        for _ in range(batches):
            batch = next(it)
            if step is not None:
                step(batch)
        times.append((time.perf_counter() - start) / batches)
    return statistics.median(times)


def endless(loader):
    def gen():
        while True:
            yield from loader
    return lambda: gen()


def somanet_workloads(images, batches):
    per_sample = T.Compose([T.ToTensor(), T.RandomCrop(28, padding=2), T.Normalize((MEAN,), (STD,))])
    rows = {}
    for workers in (0, 2):
        loader = DataLoader(Images(images, per_sample), batch_size=BATCH, shuffle=True, num_workers=workers,
                            persistent_workers=workers > 0)
        rows[f"somanet, per-sample transforms, {workers} workers"] = per_batch_seconds(endless(loader), batches)
    # The same augmentation applied to whole batches: the loader only gathers (one fancy index per
    # batch), the transforms draw one crop per image in a few vectorised calls.
    crop, norm = T.RandomCrop(28, padding=2), T.Normalize((MEAN,), (STD,))

    def batch_aug(batch):
        x = batch[0].array[:, None].astype(np.float32) * np.float32(1 / 255)
        return norm(crop(x))

    plain = TensorDataset(somanet.from_numpy(images), somanet.from_numpy(np.arange(len(images)) % 10))
    rows["somanet, whole-batch transforms, 0 workers"] = per_batch_seconds(
        endless(DataLoader(plain, batch_size=BATCH, shuffle=True)), batches, step=batch_aug)
    return rows


def torch_workloads(torch, images, batches):
    tf = torch.nn.functional

    class TorchImages(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            x = torch.from_numpy(images[i]).float().div_(255).unsqueeze_(0)
            x = tf.pad(x, (2, 2, 2, 2))
            top, left = torch.randint(0, 5, (2,)).tolist()
            x = x[:, top:top + 28, left:left + 28]
            return (x - MEAN) / STD, i % 10

    rows = {}
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(TorchImages(), batch_size=BATCH, shuffle=True, num_workers=workers,
                                             persistent_workers=workers > 0)
        rows[f"PyTorch DataLoader, per-sample transforms, {workers} workers"] = per_batch_seconds(endless(loader),
                                                                                                 batches)
    return rows


def lenet_step_seconds(repeats=7):
    from somanet import optim
    from somanet.models.lenet import LeNet5
    import somanet.nn.functional as F

    model = LeNet5()
    opt = optim.SGD(model.parameters(), lr=0.01)
    x = somanet.randn(BATCH, 1, 28, 28)
    y = somanet.randint(0, 10, (BATCH,))

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=os.path.join(ROOT, "..", "shared", "data", "mnist"),
                        help="folder with t10k-images-idx3-ubyte.gz (random images otherwise)")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per run")
    parser.add_argument("--write", action="store_true", help="write the results into docs/benchmarks.md")
    args = parser.parse_args()

    images, source = load_images(args.mnist)
    load_before = os.getloadavg()[0]
    rows = somanet_workloads(images, args.batches)
    try:
        torch = harness.setup_torch()
        rows.update(torch_workloads(torch, images, args.batches))
    except ImportError:
        print("PyTorch is not installed; skipping its DataLoader")
    try:
        step = lenet_step_seconds()
    except Exception as exc:  # the model zoo may be unavailable in a partial checkout
        print(f"LeNet-5 step not measured: {exc}")
        step = None

    lines = ["| loader (batch 128, RandomCrop(28, padding=2) + Normalize) | per batch | share of a LeNet-5 step |",
             "| --- | ---: | ---: |"]
    for name, sec in rows.items():
        share = f"{100 * sec / step:.1f} %" if step else "n/a"
        lines.append(f"| {name} | {harness.fmt_time(sec)} | {share} |")
        print(f"{name:60s} {harness.fmt_time(sec):>10s}  {share:>6s}")
    if step:
        lines.append(f"| somanet LeNet-5 training step (forward, backward, SGD) | {harness.fmt_time(step)} | 100 % |")
        print(f"{'somanet LeNet-5 training step':60s} {harness.fmt_time(step):>10s}")
    if args.write:
        body = (f"Measured on {harness.machine_line()} (1-minute load average {load_before:.1f} before the run: "
                f"the machine was shared) with `python benchmarks/bench_data.py --write`, on {source}. Steady-state time per batch (median of 3 runs of {args.batches} batches, after "
                f"warm-up; workers persistent so start-up is not counted). With workers, the time is what the "
                f"training loop waits for per batch when it does nothing else; during training the workers "
                f"prepare the next batches while the step runs.\n\n" + "\n".join(lines))
        harness.write_section("Data loader", body)


if __name__ == "__main__":
    main()
