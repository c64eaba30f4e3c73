"""somanet.vision.datasets: torchvision's types for data/targets, PIL samples, folder layouts, no implicit downloads."""
import gzip
import os
import pickle
import shutil

import numpy as np
import pytest

import somanet
from somanet.data import DataLoader, Subset
from somanet.data.datasets import _download
from somanet.data.datasets import MNIST as DataMNIST
from somanet.vision import datasets, transforms
from somanet.vision.datasets import vision as vision_base

Image = pytest.importorskip("PIL.Image")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(url, dest):
        raise AssertionError(f"unexpected download of {url}")

    monkeypatch.setattr(_download, "_fetch", refuse)


def _write_idx(path, array):
    codes = {np.uint8: 0x08}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


# ----------------------------------------------------------------------------- MNIST family
def test_mnist_types_match_torchvision(data_dir, no_network):
    ds = datasets.MNIST(os.path.join(data_dir, "mnist"), train=False)
    assert isinstance(ds.data, somanet.Tensor) and ds.data.dtype == np.uint8 and ds.data.shape == (10000, 28, 28)
    assert isinstance(ds.targets, somanet.Tensor) and ds.targets.dtype == np.int64 and ds.targets.shape == (10000,)
    assert len(ds) == 10000 and ds.classes[0] == "0 - zero" and ds.class_to_idx["9 - nine"] == 9
    img, target = ds[0]
    assert isinstance(img, Image.Image) and img.mode == "L" and img.size == (28, 28)
    assert isinstance(target, int) and target == int(ds.targets[0])
    np.testing.assert_array_equal(np.asarray(img), ds.data.array[0])
    assert isinstance(ds, DataMNIST)  # the same reader under both import paths
    assert "Number of datapoints: 10000" in repr(ds) and "Split: Test" in repr(ds)


def test_mnist_transform_and_dataloader(data_dir):
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    ds = datasets.MNIST(os.path.join(data_dir, "mnist"), train=False, transform=tf,
                        target_transform=lambda y: y + 100)
    x, y = ds[3]
    expect = (ds.data.array[3].astype(np.float32) / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(x.array[0], expect, rtol=1e-5, atol=1e-6)
    assert y == int(ds.targets[3]) + 100
    batches = list(DataLoader(Subset(ds, range(40)), batch_size=16))
    assert [b[0].shape for b in batches] == [(16, 1, 28, 28), (16, 1, 28, 28), (8, 1, 28, 28)]
    assert batches[0][1].dtype == np.int64


def test_transform_assigned_later_is_used(data_dir):
    ds = datasets.MNIST(os.path.join(data_dir, "mnist"), train=False)
    ds.transform = transforms.ToTensor()
    assert ds[0][0].shape == (1, 28, 28)


def test_mnist_reads_torchvision_layout(tmp_path, data_dir, no_network):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(os.path.join(data_dir, "mnist", name), raw / name)
    ds = datasets.MNIST(tmp_path, train=False)
    assert len(ds) == 10000


def test_missing_files_never_download_implicitly(tmp_path, no_network):
    with pytest.raises(FileNotFoundError, match="download=True"):
        datasets.MNIST(tmp_path, train=True)
    assert os.listdir(tmp_path) == []


def test_download_goes_to_torchvisions_raw_folder(monkeypatch, tmp_path, data_dir):
    def serve_shared_copy(url, dest):
        shutil.copy(os.path.join(data_dir, "mnist", url.rsplit("/", 1)[1]), dest)

    monkeypatch.setattr(_download, "_fetch", serve_shared_copy)
    ds = datasets.MNIST(tmp_path, train=False, download=True)
    assert len(ds) == 10000
    assert sorted(os.listdir(tmp_path / "MNIST" / "raw")) == ["t10k-images-idx3-ubyte.gz",
                                                              "t10k-labels-idx1-ubyte.gz"]


def test_fashion_mnist_on_small_idx_files(tmp_path, no_network):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1], np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    ds = datasets.FashionMNIST(tmp_path)
    assert ds.targets.dtype == np.int64 and ds.targets.tolist() == [0, 9, 3, 3, 1]
    img, y = ds[1]
    np.testing.assert_array_equal(np.asarray(img), images[1])
    assert y == 9 and ds.classes[9] == "Ankle boot"


def test_without_pillow_samples_are_arrays(monkeypatch, data_dir):
    monkeypatch.setattr(vision_base, "_HAVE_PILLOW", False)
    ds = datasets.MNIST(os.path.join(data_dir, "mnist"), train=False, transform=transforms.ToTensor())
    raw = datasets.MNIST(os.path.join(data_dir, "mnist"), train=False)[0][0]
    assert isinstance(raw, np.ndarray) and raw.dtype == np.uint8 and raw.shape == (28, 28)
    assert ds[0][0].shape == (1, 28, 28)


# ----------------------------------------------------------------------------- CIFAR-10
def _cifar_records(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    planes = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    return labels, planes


def test_cifar10_binary_version_types(tmp_path, no_network):
    labels, planes = _cifar_records(4, 0)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    records = np.concatenate([labels[:, None], planes.reshape(4, -1)], axis=1)
    records.tofile(folder / "test_batch.bin")
    ds = datasets.CIFAR10(tmp_path, train=False)
    assert isinstance(ds.data, np.ndarray) and ds.data.dtype == np.uint8 and ds.data.shape == (4, 32, 32, 3)
    assert isinstance(ds.targets, list) and ds.targets == labels.tolist()
    assert all(type(t) is int for t in ds.targets)
    img, y = ds[2]
    assert img.mode == "RGB" and y == labels[2]
    np.testing.assert_array_equal(np.asarray(img), planes[2].transpose(1, 2, 0))


def test_cifar10_reads_torchvisions_python_version(tmp_path, no_network):
    labels, planes = _cifar_records(3, 1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    entry = {"batch_label": "testing batch 1 of 1", "labels": labels.tolist(), "data": planes.reshape(3, -1),
             "filenames": ["a.png", "b.png", "c.png"]}
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(entry, f, protocol=2)
    ds = datasets.CIFAR10(tmp_path, train=False)
    assert ds.targets == labels.tolist() and ds.data.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(ds.data, planes.transpose(0, 2, 3, 1))


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_cifar10_python_version_refuses_anything_but_arrays(tmp_path, no_network):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": _Boom(), "labels": []}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="only NumPy arrays"):
        datasets.CIFAR10(tmp_path, train=False)


def test_cifar10_missing_files(tmp_path, no_network):
    with pytest.raises(FileNotFoundError, match="download=True"):
        datasets.CIFAR10(tmp_path, train=True)


# ----------------------------------------------------------------------------- ImageFolder
def _save(path, color, size=(6, 4), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def test_image_folder_layout(tmp_path):
    _save(tmp_path / "dog" / "b.png", (0, 0, 255))
    _save(tmp_path / "dog" / "a.PNG", (0, 255, 0))
    _save(tmp_path / "cat" / "nested" / "c.jpg", (255, 0, 0))
    _save(tmp_path / "cat" / "z.bmp", 128, mode="L")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    ds = datasets.ImageFolder(tmp_path, transform=transforms.ToTensor())
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    rel = [(os.path.relpath(p, tmp_path), y) for p, y in ds.samples]
    assert rel == [(os.path.join("cat", "z.bmp"), 0), (os.path.join("cat", "nested", "c.jpg"), 0),
                   (os.path.join("dog", "a.PNG"), 1), (os.path.join("dog", "b.png"), 1)]
    assert ds.targets == [0, 0, 1, 1] and ds.imgs is ds.samples and len(ds) == 4
    x, y = ds[0]
    assert x.shape == (3, 4, 6) and y == 0  # grey files are converted to RGB by the default loader
    np.testing.assert_allclose(x.array, 128 / 255, rtol=1e-6)
    img, _ = datasets.ImageFolder(tmp_path)[3]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.getpixel((0, 0)) == (0, 0, 255)


def test_image_folder_empty_class_and_custom_filter(tmp_path):
    _save(tmp_path / "a" / "x.png", (1, 2, 3))
    (tmp_path / "b").mkdir()
    with pytest.raises(FileNotFoundError, match="b"):
        datasets.ImageFolder(tmp_path)
    ds = datasets.ImageFolder(tmp_path, allow_empty=True)
    assert ds.classes == ["a", "b"] and len(ds) == 1
    only_png = datasets.ImageFolder(tmp_path, is_valid_file=lambda p: p.endswith("x.png"), allow_empty=True)
    assert len(only_png) == 1
    with pytest.raises(FileNotFoundError, match="class folder"):
        datasets.ImageFolder(tmp_path / "a")


def test_dataset_folder_with_own_loader(tmp_path):
    for name, text in (("one/a.txt", "1"), ("two/b.txt", "22")):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    ds = datasets.DatasetFolder(tmp_path, loader=lambda p: open(p).read(), extensions=(".txt",))
    assert [ds[i] for i in range(len(ds))] == [("1", 0), ("22", 1)]


# ----------------------------------------------------------------------------- FakeData
def test_fake_data_is_deterministic_and_shaped():
    ds = datasets.FakeData(size=20, image_size=(3, 12, 10), num_classes=4)
    assert len(ds) == 20
    img, y = ds[7]
    assert img.mode == "RGB" and img.size == (10, 12) and 0 <= y < 4
    again, y2 = datasets.FakeData(size=20, image_size=(3, 12, 10), num_classes=4)[7]
    np.testing.assert_array_equal(np.asarray(img), np.asarray(again))
    assert y == y2 and ds[-1][1] == ds[19][1]
    other = datasets.FakeData(size=20, image_size=(3, 12, 10), num_classes=4, random_offset=100)[7][0]
    assert not np.array_equal(np.asarray(img), np.asarray(other))
    assert {ds[i][1] for i in range(20)} == {0, 1, 2, 3}
    with pytest.raises(IndexError):
        ds[20]
    grey = datasets.FakeData(size=2, image_size=(1, 5, 5), transform=transforms.ToTensor())[0][0]
    assert grey.shape == (1, 5, 5) and grey.dtype == np.float32


def test_fake_data_through_a_dataloader_with_workers_is_the_same():
    ds = datasets.FakeData(size=12, image_size=(1, 8, 8), num_classes=3, transform=transforms.ToTensor())
    one = [b[0].array for b in DataLoader(ds, batch_size=4)]
    two = [b[0].array for b in DataLoader(ds, batch_size=4, num_workers=2)]
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_vision_dataset_base_for_user_subclasses():
    class Pairs(datasets.VisionDataset):
        def __init__(self):
            super().__init__("some/root", transform=lambda x: x * 2)

        def __getitem__(self, i):
            return self.transform(i), -i

        def __len__(self):
            return 3

    ds = Pairs()
    assert ds[2] == (4, -2) and "Root location: some/root" in repr(ds)
    with pytest.raises(ValueError, match="either transforms"):
        datasets.VisionDataset("r", transforms=lambda a, b: (a, b), transform=lambda a: a)
