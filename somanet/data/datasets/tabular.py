"""Small datasets bundled with scikit-learn (no download): digits, iris, wine, breast cancer, diabetes.

Each is split deterministically into train and test parts (``test_fraction``, stratified by class
for classification, chosen by ``seed``), so ``Digits(train=True)`` and ``Digits(train=False)``
never overlap; ``train=None`` gives every sample. scikit-learn is imported only when a dataset is
created: ``pip install "somanet[data]"``.
"""
import numpy as np

from ._arrays import ArraysDataset

__all__ = ["Digits", "Iris", "Wine", "BreastCancer", "Diabetes", "train_test_indices"]


def _sklearn_datasets(cls):
    try:
        import sklearn.datasets
    except ImportError as exc:
        raise ImportError(f"{cls} needs scikit-learn for its bundled data; install it with "
                          f"pip install \"somanet[data]\"") from exc
    return sklearn.datasets


def train_test_indices(n, test_fraction=0.2, seed=0, stratify=None):
    """Deterministic train/test index split of ``n`` samples.

    Args:
        n: number of samples.
        test_fraction: share of samples in the test part, in ``(0, 1)``.
        seed: seed of the shuffle.
        stratify: optional labels ``(n,)``; each class is then split in the same proportion.

    Returns:
        ``(train_idx, test_idx)``: sorted int64 arrays.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"train_test_indices: test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.Generator(np.random.PCG64(seed))
    if stratify is None:
        perm = rng.permutation(n)
        n_test = int(round(n * test_fraction))
        test = perm[:n_test]
    else:
        labels = np.asarray(stratify)
        test = []
        for cls in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == cls))
            test.append(members[:int(round(len(members) * test_fraction))])
        test = np.concatenate(test)
    mask = np.zeros(n, dtype=bool)
    mask[test] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


class _SklearnTable(ArraysDataset):
    loader = None

    def __init__(self, train=True, transform=None, target_transform=None, test_fraction=0.2, seed=0,
                 standardize=False):
        name = type(self).__name__
        if train not in (True, False, None):
            raise ValueError(f"{name}: train must be True, False or None (all samples), got {train!r}")
        bunch = getattr(_sklearn_datasets(name), self.loader)()
        features = np.asarray(bunch.data, dtype=np.float32)
        targets = np.asarray(bunch.target, dtype=np.int64 if self.classification else np.float32)
        train_idx, test_idx = train_test_indices(len(targets), test_fraction, seed,
                                                 stratify=targets if self.classification else None)
        if standardize:
            # Statistics of the training part only, so the test part stays unseen.
            mean = features[train_idx].mean(axis=0)
            std = features[train_idx].std(axis=0)
            features = (features - mean) / np.where(std > 0, std, 1.0).astype(np.float32)
        keep = slice(None) if train is None else (train_idx if train else test_idx)
        self.data = self._shape(features[keep])
        self.targets = targets[keep]
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        names = getattr(bunch, "feature_names", None)
        self.feature_names = [str(f) for f in names] if names is not None else []
        names = getattr(bunch, "target_names", None)
        self.classes = [str(c) for c in names] if names is not None and self.classification else []

    def _shape(self, features):
        return features

    def __repr__(self):
        split = {True: "train", False: "test", None: "all"}[self.train]
        return f"{type(self).__name__}(split={split}, samples={len(self)}, features={self.data.shape[1:]})"


class Digits(_SklearnTable):
    """scikit-learn's 1,797 handwritten digits, 8 x 8 pixels, labels 0-9 (works offline).

    Samples are ``(image, label)``: a float32 ``(1, 8, 8)`` image in [0, 1] (the original 0-16
    levels divided by 16), or ``(64,)`` with ``flatten=True``; the label is an int.

    Args:
        train: the training part (``True``), the test part (``False``) or everything (``None``).
        transform, target_transform: applied to each image / label.
        test_fraction: share of each class held out for the test part (default 0.2: 1,438 / 359).
        seed: seed of the split.
        flatten: give ``(64,)`` vectors instead of ``(1, 8, 8)`` images.
    """

    loader = "load_digits"

    def __init__(self, train=True, transform=None, target_transform=None, test_fraction=0.2, seed=0, flatten=False):
        self.flatten = flatten
        super().__init__(train, transform, target_transform, test_fraction, seed, standardize=False)

    def _shape(self, features):
        features = features / np.float32(16.0)
        return features if self.flatten else features.reshape(-1, 1, 8, 8)


class Iris(_SklearnTable):
    """Fisher's iris: 150 flowers, 4 float32 features, 3 classes. ``standardize`` scales features by
    the training part's mean and std. Other arguments as ``Digits``."""

    loader = "load_iris"


class Wine(_SklearnTable):
    """Wine recognition: 178 wines, 13 float32 features, 3 classes. Arguments as ``Iris``."""

    loader = "load_wine"


class BreastCancer(_SklearnTable):
    """Wisconsin breast cancer: 569 samples, 30 float32 features, 2 classes (0 malignant, 1 benign).
    Arguments as ``Iris``."""

    loader = "load_breast_cancer"


class Diabetes(_SklearnTable):
    """Diabetes progression: 442 patients, 10 float32 features, a float32 regression target.
    The split is a plain seeded shuffle. Arguments as ``Iris``."""

    loader = "load_diabetes"
    classification = False
