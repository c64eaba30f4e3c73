"""What a digit classifier looks at: Grad-CAM, Grad-CAM++, Integrated Gradients, SmoothGrad and saliency on
the MNIST-pretrained SmallCNN, and attention rollout on a small Vision Transformer trained here.

    python examples/interpret_mnist.py --data-dir ../shared/data --out docs

Reads the official MNIST test file from ``DATA_DIR/mnist``. The shipped SmallCNN weights were trained on
images 0-6,999 and validated on 7,000-7,999; the pictures use validation images (7,000 on), the ViT is
trained on 0-6,999 and its accuracy is read on 7,000-7,999. Images 8,000-9,999 are not touched.
Writes ``interpret_cnn.png`` (one row per digit, one column per method) and ``interpret_vit_rollout.png``
into OUT, and prints what it measured (CPU times, Integrated Gradients' completeness error against the
number of steps and the rule, the ViT's accuracy). docs/interpret.md shows the results.
"""
import argparse
import io
import os
import time

import numpy as np

import somanet
from somanet import nn, optim
from somanet.interpret import (GradCAM, GradCAMPlusPlus, IntegratedGradients, Saliency, SmoothGrad, heatmap_array,
                               vit_attention_rollout)
from somanet.models import VisionTransformer
from somanet.models.small_cnn import MNIST_MEAN, MNIST_STD, mnist_cnn

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))
SHOW = np.arange(7000, 7006)  # validation images of the shipped weights


def load_mnist(data_dir, stop=8000):
    from somanet.data.datasets.vision import read_idx
    images = read_idx(os.path.join(data_dir, "mnist", "t10k-images-idx3-ubyte.gz"))[:stop]
    labels = read_idx(os.path.join(data_dir, "mnist", "t10k-labels-idx1-ubyte.gz"))[:stop].astype(np.int64)
    return ((images.astype(np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD)[:, None], labels


def figure(rows, cols, cell=1.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(cols * cell, rows * cell + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False)


def save(fig, path):
    from somanet.train._io import atomic_write_bytes
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    print(f"wrote {path}")


def overlay(ax, image, heat, title=None):
    ax.imshow(image, cmap="gray", interpolation="nearest")
    ax.imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1, interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def explain_cnn(x, y, out):
    model = mnist_cnn(pretrained=True).eval()
    images = x[SHOW]
    with somanet.no_grad():
        pred = model(somanet.tensor(images)).array.argmax(1)
    methods = {
        "Grad-CAM": lambda: GradCAM(model, model.block3).attribute(images, target=pred),
        "Grad-CAM++": lambda: GradCAMPlusPlus(model, model.block3).attribute(images, target=pred),
        "Integrated Gradients": lambda: IntegratedGradients(model).attribute(images, target=pred, n_steps=64,
                                                                             baselines=-MNIST_MEAN / MNIST_STD),
        "SmoothGrad": lambda: SmoothGrad(model).attribute(images, target=pred, nt_samples=50, stdevs=0.15,
                                                          generator=somanet.Generator().manual_seed(0)),
        "Saliency": lambda: Saliency(model).attribute(images, target=pred),
    }
    maps, seconds = {}, {}
    for name, run in methods.items():
        t0 = time.process_time()
        maps[name] = run().array
        seconds[name] = time.process_time() - t0
        print(f"{name}: {seconds[name]:.2f} s CPU for {len(images)} images")
    fig, axes = figure(len(images), len(methods) + 1)
    for r, i in enumerate(SHOW):
        img = images[r, 0]
        axes[r, 0].imshow(img, cmap="gray")
        axes[r, 0].set_xticks([])
        axes[r, 0].set_yticks([])
        axes[r, 0].set_title(f"#{i}: label {y[i]}, pred {pred[r]}", fontsize=9)
        for c, name in enumerate(methods, start=1):
            sign = "positive" if name.startswith("Grad-CAM") else "absolute"
            overlay(axes[r, c], img, heatmap_array(maps[name][r], sign=sign), name if r == 0 else None)
    save(fig, os.path.join(out, "interpret_cnn.png"))
    return model, images, pred, seconds


def ig_convergence(model, images, pred):
    """The mean |completeness error| over the shown digits, per rule and number of steps."""
    ig = IntegratedGradients(model)
    base = -MNIST_MEAN / MNIST_STD  # a black image
    with somanet.no_grad():
        out_x = model(somanet.tensor(images)).array[np.arange(len(images)), pred]
        out_b = model(somanet.tensor(np.full_like(images, base))).array[np.arange(len(images)), pred]
    change = float(np.abs(out_x - out_b).mean())
    for method in ("riemann_trapezoid", "gausslegendre"):
        for n in (4, 16, 64, 256):
            _, delta = ig.attribute(images, baselines=base, target=pred, n_steps=n, method=method,
                                    internal_batch_size=512, return_convergence_delta=True)
            d = np.abs(delta.array)
            print(f"IG {method:18s} n_steps={n:3d}: mean |delta| {d.mean():.3g}, max {d.max():.3g} "
                  f"(output change {change:.3g})")


def train_vit(x, y, epochs, seed=0):
    somanet.manual_seed(seed)
    model = VisionTransformer(28, 4, in_channels=1, num_classes=10, d_model=48, num_layers=3, num_heads=4,
                              mlp_dim=96)
    opt = optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    train_x, train_y = x[:7000], y[:7000]
    steps = epochs * (len(train_x) // 64)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    t0 = time.process_time()
    for epoch in range(epochs):
        order = rng.permutation(len(train_x))
        model.train()
        for b in range(len(train_x) // 64):
            idx = order[b * 64:(b + 1) * 64]
            loss = loss_fn(model(somanet.tensor(train_x[idx])), somanet.tensor(train_y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"ViT epoch {epoch + 1}/{epochs}: last loss {loss.item():.3f}, {time.process_time() - t0:.0f} s CPU")
    model.eval()
    correct = 0
    with somanet.no_grad():
        for i in range(7000, 8000, 500):
            correct += int((model(somanet.tensor(x[i:i + 500])).array.argmax(1) == y[i:i + 500]).sum())
    accuracy = correct / 1000
    print(f"ViT accuracy on images 7,000-7,999: {accuracy:.3f}")
    return model, accuracy, time.process_time() - t0


def vit_rollout(model, x, y, out):
    images = x[SHOW]
    t0 = time.process_time()
    grids = vit_attention_rollout(model, images)
    print(f"rollout: {time.process_time() - t0:.3f} s CPU for {len(images)} images")
    with somanet.no_grad():
        pred = model(somanet.tensor(images)).array.argmax(1)
    fig, axes = figure(2, len(images))
    for c, i in enumerate(SHOW):
        img = images[c, 0]
        axes[0, c].imshow(img, cmap="gray")
        axes[0, c].set_xticks([])
        axes[0, c].set_yticks([])
        axes[0, c].set_title(f"label {y[i]}, pred {pred[c]}", fontsize=9)
        # one rollout value per 4x4 patch, stretched over the image
        heat = np.kron(grids[c] / grids[c].max(), np.ones((4, 4)))
        overlay(axes[1, c], img, heat, "rollout")
    save(fig, os.path.join(out, "interpret_vit_rollout.png"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA)
    parser.add_argument("--out", default="docs")
    parser.add_argument("--vit-epochs", type=int, default=4)
    args = parser.parse_args(argv)
    x, y = load_mnist(args.data_dir)
    os.makedirs(args.out, exist_ok=True)
    model, images, pred, _ = explain_cnn(x, y, args.out)
    ig_convergence(model, images, pred)
    vit, _, _ = train_vit(x, y, args.vit_epochs)
    vit_rollout(vit, x, y, args.out)


if __name__ == "__main__":
    main()
