"""Sampler comparison for a trained ddpm-mnist run: ancestral sampling (1,000 steps) against DDIM with
fewer steps, with and without classifier-free guidance, all scored by the shared MNIST-FID classifier.

Every sampler draws the same number of images for the same labels (0, 1, ..., 9, 0, ...) from the run's
EMA network; FID depends on the number of images, so the real-image floor at that number is printed
too (random training images 0-6,999 against the shipped statistics of images 8,000-9,999).

    python benchmarks/ddpm_samplers.py RUN_DIR [--samples 200] [--data ../shared/data/mnist]
        [--configs ddpm:1,ddim50:1,ddim50:3,ddim20:1]
"""
import argparse
import json
import os
import time

import somanet  # before NumPy: it sets OpenBLAS's thread timeout
import numpy as np

from somanet.cli import recipes
from somanet.train import load_checkpoint
from somanet.train.generative import mnist_quality

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(spec):
    name, scale = spec.split(":")
    if name == "ddpm":
        return dict(sampler="ddpm"), float(scale)
    if name.startswith("ddim"):
        return dict(sampler="ddim", steps=int(name[4:])), float(scale)
    raise ValueError(f"unknown sampler {name!r} (ddpm, ddimN)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--configs", default="ddpm:1,ddim50:1,ddim50:3,ddim20:1")
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "mnist"))
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    with open(os.path.join(args.run_dir, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    info = recipes.DataInfo((1, 28, 28), 10, image_size=(28, 28), mean=0.1307, std=0.3081)
    model = recipes.build_model(cfg, info)
    load_checkpoint(os.path.join(args.run_dir, "checkpoints", "last")).load_model(model)
    model.eval()
    n = args.samples
    labels = np.arange(n) % 10
    rows = []
    from somanet.data.datasets import MNIST
    real = MNIST(root=args.data, train=False)
    rng = np.random.default_rng(0)
    for draw in range(3):
        idx = rng.choice(7000, n, replace=False)
        q = mnist_quality(real.data[idx], real.targets[idx])
        rows.append((f"real training images (draw {draw + 1})", q, 0.0))
    for spec in args.configs.split(","):
        kwargs, scale = _parse(spec)
        gen = somanet.Generator().manual_seed(args.seed)
        start = time.perf_counter()
        images = model.sample(n, labels, generator=gen, guidance_scale=scale, **kwargs).array
        secs = time.perf_counter() - start
        name = ("ancestral, 1,000 steps" if kwargs["sampler"] == "ddpm" else f"DDIM, {kwargs['steps']} steps, eta 0")
        rows.append((f"{name}, guidance {scale:g}", mnist_quality(images, labels), secs))
        print(f"{rows[-1][0]}: done in {secs:.0f} s", flush=True)
    print(f"\n{n} images each; MNIST-FID against the shipped statistics of images 8,000-9,999")
    print(f"{'images':48s} {'FID':>8s} {'confidence':>11s} {'as their class':>15s} {'seconds':>8s}")
    for name, q, secs in rows:
        print(f"{name:48s} {q['fid']:8.1f} {q['confidence']:11.3f} {q['label_accuracy']:15.1%} {secs:8.0f}")


if __name__ == "__main__":
    main()
