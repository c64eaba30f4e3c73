"""Object-detection recipes: the ``centernet`` model builder, the synthetic ``shapes-detection`` data and
the ``shapes-detection`` recipe.

The detector (``somanet.models.detection.CenterNet``) trains with its own ``training_step``; the run
config's ``loss`` and ``metrics`` are not used. At the end of a run the ``DetectionReport`` (added by
``build_callbacks`` for ``model.name = "centernet"``) writes ``detection.json`` (COCO mAP@0.5 and
mAP@[.5:.95] on the held-out split, and the centre-box baseline's), ``predictions.png`` and a
"Detection quality" section of ``summary.txt``.
"""
import numpy as np

from ..data.dataset import Dataset
from ..train.recipe import ConfigError, Recipe
from .recipes import DataInfo, DatasetSpec, _unknown, register_dataset, register_model, register_recipe

__all__ = ["DetectionSplit", "detection_report"]


class DetectionSplit(Dataset):
    """``(image, target dict)`` samples of a ``Shapes(task="detection")`` dataset (or any such dataset)
    restricted to ``indices``; a DataLoader with the default collate batches them with
    ``detection_collate`` (images stacked, targets kept as a list of dicts)."""

    def __init__(self, dataset, indices=None):
        self.dataset = dataset
        self.indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
        self.classes = getattr(dataset, "classes", None)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]

    def _fetch_batch(self, indices):
        from ..data.datasets import detection_collate
        images, targets = detection_collate([self[i] for i in indices])
        return [images, targets]


# --------------------------------------------------------------------------- model
@register_model("centernet")
def _centernet(kwargs, info):
    from ..models.detection import CenterNet
    kwargs.setdefault("num_classes", info.num_classes)
    kwargs.setdefault("in_channels", info.input_shape[0])
    if "widths" in kwargs:
        kwargs["widths"] = tuple(kwargs["widths"])
    return CenterNet(**kwargs)


# --------------------------------------------------------------------------- data
_SHAPES_OPTIONS = ("n_train", "n_val", "n_test", "image_size", "max_shapes", "noise", "seed")


def _shapes_info(options):
    from ..data.datasets.synthetic import SHAPE_CLASSES
    _unknown(options, _SHAPES_OPTIONS, "shapes-detection")
    size = options.get("image_size", 32)
    if isinstance(size, bool) or not isinstance(size, int) or size < 16 or size % 8:
        raise ConfigError(f"config 'data.image_size' (shapes-detection) must be a multiple of 8, at least 16; "
                          f"got {size!r}")
    return DataInfo((3, size, size), len(SHAPE_CLASSES) - 1, list(SHAPE_CLASSES), task="detection")


def _count(options, key, default):
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"config 'data.{key}' (shapes-detection) must be a positive int, got {value!r}")
    return value


def _shapes_load(options):
    from ..data.datasets import Shapes
    info = _shapes_info(options)
    sizes = [_count(options, k, d) for k, d in (("n_train", 8000), ("n_val", 200), ("n_test", 500))]
    seed = options.get("seed", 0)
    full = Shapes(n=sum(sizes), image_size=info.input_shape[1], max_shapes=options.get("max_shapes", 3),
                  noise=options.get("noise", 0.05), task="detection", seed=seed)
    # The images are independent draws, so consecutive blocks are random splits.
    bounds = np.cumsum([0] + sizes)
    return tuple(DetectionSplit(full, range(bounds[i], bounds[i + 1])) for i in range(3))


register_dataset("shapes-detection", DatasetSpec(
    _shapes_info, _shapes_load, "synthetic images of circles, squares and triangles with their boxes (generated)"))


def detection_report(cfg):
    """The ``DetectionReport`` of a detection run config: scores the config's test split (the
    validation split if it has none) and uses the training split for the baseline's box sizes."""
    from ..models.detection import DetectionReport
    from .recipes import data_info, load_data
    cache = {}

    def splits():
        if "data" not in cache:
            cache["data"] = load_data(cfg)
        return cache["data"]

    def test_data():
        _, val, test = splits()
        return (test, "test") if test is not None else (val, "validation")

    return DetectionReport(test_data=test_data, train_data=lambda: splits()[0], classes=data_info(cfg).classes)


# --------------------------------------------------------------------------- recipes
register_recipe(Recipe(
    "shapes-detection", "CenterNet-style detector (residual CNN, FPN-lite neck) on 32x32 synthetic shapes; COCO "
                        "mAP@0.5 / mAP@[.5:.95] on 500 held-out images and a picture of its predictions, offline",
    model={"name": "centernet", "widths": [16, 32, 48, 64], "head_channels": 32},
    # Fresh images are free: many of them for few epochs, because 2,000 images for 30 epochs overfit.
    data={"name": "shapes-detection", "n_train": 8000, "n_val": 200, "n_test": 500, "image_size": 32},
    optimizer={"name": "adamw", "lr": 3e-3, "weight_decay": 1e-4},
    scheduler={"name": "cosine"},
    loss="mse", metrics=(), task="regression",
    epochs=8, batch_size=32, seed=0,
    checkpoint={"monitor": "val_loss"}))
