"""Semantic segmentation: the U-Net against a PyTorch twin with the same weights (outputs and every
gradient, with and without batch norm), mean IoU and pixel accuracy against hand-computed cases, and a
short shapes-segmentation run that must beat the all-background baseline."""
import json
import os

import numpy as np
import pytest

import somanet
from somanet.models.segmentation import UNet
from somanet.train.metrics import JaccardIndex, PixelAccuracy, jaccard_index, pixel_accuracy

from reference import compare_modules, copy_state, torch_or_skip


def _torch_unet(torch, cin, classes, base, depth, batch_norm):
    nn = torch.nn

    def double(a, b):
        layers = []
        for c in (a, b):
            layers += [nn.Conv2d(c, b, 3, padding=1, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(b))
            layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    class Up(nn.Module):
        def __init__(self, a, b):
            super().__init__()
            self.up = nn.ConvTranspose2d(a, b, 2, stride=2)
            self.conv = double(2 * b, b)

        def forward(self, x, skip):
            return self.conv(torch.cat([skip, self.up(x)], dim=1))

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            w = [base * 2 ** i for i in range(depth + 1)]
            self.inc = double(cin, w[0])
            self.downs = nn.ModuleList([nn.Sequential(nn.MaxPool2d(2), double(w[i], w[i + 1])) for i in range(depth)])
            self.ups = nn.ModuleList([Up(w[i + 1], w[i]) for i in reversed(range(depth))])
            self.outc = nn.Conv2d(w[0], classes, 1)

        def forward(self, x):
            h = self.inc(x)
            skips = [h]
            for d in self.downs:
                h = d(h)
                skips.append(h)
            skips.pop()
            for u in self.ups:
                h = u(h, skips.pop())
            return self.outc(h)

    return Twin()


@pytest.mark.parametrize("batch_norm,train", [(True, True), (False, False)])
def test_unet_matches_torch(batch_norm, train):
    torch = torch_or_skip()
    torch.manual_seed(0)
    twin = _torch_unet(torch, 3, 4, 4, 2, batch_norm)
    model = UNet(3, 4, base_channels=4, depth=2, batch_norm=batch_norm)
    copy_state(twin, model)
    twin.train(train)
    model.train(train)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 12)).astype(np.float32)
    out = compare_modules(model, twin, x, rtol=1e-4, atol=1e-4, grad_atol=1e-4)
    assert out.shape == (2, 4, 8, 12)


def test_unet_checks_its_input():
    model = UNet(3, 2, base_channels=4, depth=2)
    with pytest.raises(ValueError, match=r"UNet: expected images \(N, 3, H, W\) with H and W multiples of 4"):
        model(somanet.randn(1, 3, 10, 8))
    with pytest.raises(ValueError, match="UNet: expected images"):
        model(somanet.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="UNet: depth must be a non-negative int"):
        UNet(3, 2, depth=-1)
    pred = model.predict(somanet.randn(2, 3, 8, 8))
    assert pred.shape == (2, 8, 8) and str(pred.dtype) == "int64"


def test_mean_iou_and_pixel_accuracy_by_hand():
    target = np.array([[0, 0, 1, 1],
                       [0, 2, 2, 1]])
    preds = np.array([[0, 1, 1, 1],
                      [0, 2, 3, 3]])
    # class 0: tp 2, union 3 -> 2/3; class 1: tp 2, union 4 -> 1/2; class 2: tp 1, union 2 -> 1/2;
    # class 3: predicted only, union 2 -> 0 (counted); class 4: absent from both -> left out of the mean.
    per = jaccard_index(preds, target, num_classes=5, average="none")
    np.testing.assert_allclose(per, [2 / 3, 1 / 2, 1 / 2, 0.0, 0.0])
    assert jaccard_index(preds, target, num_classes=5) == pytest.approx((2 / 3 + 1 / 2 + 1 / 2 + 0) / 4)
    assert jaccard_index(preds, target, 5, average="micro") == pytest.approx(5 / 11)
    # weighted by target pixels: 3, 3, 2, 0, 0
    assert jaccard_index(preds, target, 5, average="weighted") == pytest.approx((3 * 2 / 3 + 3 / 2 + 2 / 2) / 8)
    assert pixel_accuracy(preds, target) == pytest.approx(5 / 8)
    # ignore_index drops those target pixels and that class from the mean
    assert pixel_accuracy(preds, target, ignore_index=2) == pytest.approx(4 / 6)
    assert jaccard_index(preds, target, 5, ignore_index=2) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)


def test_segmentation_metrics_take_scores_with_classes_in_dim_1_and_stream():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    target = rng.integers(0, 4, (3, 5, 6))
    labels = scores.argmax(axis=1)
    whole = jaccard_index(scores, target, 4)
    assert whole == pytest.approx(jaccard_index(labels, target, 4))
    metric, acc = JaccardIndex(4), PixelAccuracy()
    for i in range(3):
        metric.update(somanet.tensor(scores[i:i + 1]), somanet.tensor(target[i:i + 1]))
        acc.update(scores[i:i + 1], target[i:i + 1])
    assert metric.compute() == pytest.approx(whole)
    assert acc.compute() == pytest.approx((labels == target).mean())
    assert metric.name == "mean_iou" and acc.name == "pixel_accuracy"


def test_segmentation_metrics_reject_bad_input():
    with pytest.raises(ValueError, match=r"JaccardIndex\(num_classes=3\): preds has 4 class scores in dim 1"):
        jaccard_index(np.zeros((1, 4, 2, 2), np.float32), np.zeros((1, 2, 2), np.int64), 3)
    with pytest.raises(ValueError, match=r"JaccardIndex\(num_classes=2\): got a label 2 outside \[0, 1\]"):
        jaccard_index(np.array([[0, 2]]), np.array([[0, 1]]), 2)
    with pytest.raises(ValueError, match="PixelAccuracy: preds has shape"):
        pixel_accuracy(np.zeros((2, 3)), np.zeros((3, 2), np.int64))
    with pytest.raises(TypeError, match="target must hold integer class labels"):
        pixel_accuracy(np.zeros((2, 3), np.int64), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        JaccardIndex(0)


def test_shapes_segmentation_beats_the_all_background_baseline(tmp_path, monkeypatch, one_thread):
    """A short run of the recipe (300 training images, 3 epochs of batches of 16, a narrower U-Net): on 100
    held-out images the mean IoU must be at least 0.15 above the all-background baseline's and the pixel
    accuracy above its; the run folder gets the report and the picture."""
    from somanet.cli.main import main
    monkeypatch.chdir(tmp_path)
    code = main(["train", "shapes-segmentation", "--epochs", "3", "--batch-size", "16", "--set", "data.n_train=300",
                 "--set", "data.n_val=50", "--set", "data.n_test=100", "--set", "model.base_channels=8", "--out", "run",
                 "--no-plots"])
    assert code == 0
    with open(os.path.join("run", "segmentation.json")) as f:
        r = json.load(f)
    assert r["images"] == 100 and r["split"] == "test"
    assert r["mean_iou"] > r["baseline_mean_iou"] + 0.15, r
    assert r["pixel_accuracy"] > r["baseline_pixel_accuracy"], r
    assert set(r["iou_per_class"]) == {"background", "circle", "square", "triangle"}
    assert os.path.getsize(os.path.join("run", "predictions.png")) > 2000
    with open(os.path.join("run", "summary.txt")) as f:
        assert "Segmentation quality (100 test images)" in f.read()
