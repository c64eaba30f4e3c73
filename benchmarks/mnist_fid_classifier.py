"""Build the MNIST-FID classifier shipped in somanet/models/weights/ and measure the real-image floor.

Trains ``LeNet5`` on MNIST images 0-7,999 of the official test file (``train_mnist_classifier``: Adam
2e-3 with cosine decay, batch 64, 15 epochs, random shifts of up to 2 pixels), stores its weights with
the mean and covariance of its penultimate features on images 8,000-9,999, then reports the classifier's
accuracy on 8,000-9,999 and the FID floor: images 8,000-8,999 against 9,000-9,999, real images against
the shipped statistics, and 2,000 random training images (0-6,999, the recipes' training split) against
them: what a perfect generator of the training data would score with the recipes' 2,000 samples.

    python benchmarks/mnist_fid_classifier.py [--data ../shared/data] [--out somanet/models/weights/...]
    python benchmarks/mnist_fid_classifier.py --floor-only      # measure with the shipped file
"""
import argparse
import os
import time

import somanet  # noqa: F401  (before NumPy: it sets OpenBLAS's thread timeout)
import numpy as np

from somanet.data.datasets import MNIST
from somanet.train import generative as gen

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(data_dir):
    ds = MNIST(root=os.path.join(data_dir, "mnist"), train=False)
    return np.asarray(ds.data), np.asarray(ds.targets, dtype=np.int64)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--out", default=os.path.join(ROOT, "somanet", "models", "weights", gen.CLASSIFIER_FILE))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--floor-only", action="store_true", help="only measure, with the file at --out")
    args = parser.parse_args(argv)
    images, labels = load(args.data)
    if not args.floor_only:
        start = time.perf_counter()
        model = gen.train_mnist_classifier(images[:8000], labels[:8000], epochs=args.epochs, verbose=True)
        gen.save_classifier(model, images[8000:], args.out)
        print(f"trained in {time.perf_counter() - start:.0f} s; wrote {args.out} "
              f"({os.path.getsize(args.out) / 1024:.0f} KiB)")
    model = gen.mnist_classifier(args.out)
    feats, probs = gen.classifier_outputs(images[8000:], model)
    acc = float((probs.argmax(1) == labels[8000:]).mean())
    print(f"classifier accuracy on images 8,000-9,999: {100 * acc:.2f} %")
    a, b = gen.gaussian_stats(feats[:1000]), gen.gaussian_stats(feats[1000:])
    print(f"FID floor, images 8,000-8,999 vs 9,000-9,999: {gen.frechet_distance(*a, *b):.3f}")
    ref = gen.reference_stats(args.out)[:2]
    for lo, hi in ((0, 1000), (0, 2000), (7000, 8000)):
        fid = gen.frechet_distance(*gen.gaussian_stats(gen.classifier_outputs(images[lo:hi], model)[0]), *ref)
        print(f"FID of images {lo:,}-{hi - 1:,} vs the shipped statistics (8,000-9,999): {fid:.3f}")
    # What a perfect model of the recipes' training images (0-6,999) scores with the recipes' 2,000 samples.
    rng = np.random.default_rng(0)
    for draw in range(3):
        idx = rng.choice(7000, 2000, replace=False)
        q = gen.mnist_quality(images[idx], labels[idx], reference=ref, model=model)
        print(f"2,000 random real images from 0-6,999 (draw {draw}):",
              {k: round(v, 4) if isinstance(v, float) else v for k, v in q.items()})


if __name__ == "__main__":
    main()
