"""Readers on the real files in ../shared/data (facts from its README), the bundled scikit-learn sets,
and the CIFAR-10 binary reader on a file written in its format."""
import os
import tarfile

import numpy as np
import pytest

import somanet
from somanet.data import DataLoader
from somanet.data import transforms as T
from somanet.data.datasets import (CIFAR10, MNIST, BreastCancer, Diabetes, Digits, FashionMNIST, Iris, TinyShakespeare,
                                   Wine, WikiText2, read_idx, sha256_file)
from somanet.data.datasets.vision import read_cifar_binary

README_SHA256 = {
    "mnist/t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "mnist/t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "text/tinyshakespeare.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
}


def test_sha256_of_shared_files_matches_readme(data_dir):
    for rel, digest in README_SHA256.items():
        assert sha256_file(os.path.join(data_dir, rel)) == digest


def test_mnist_test_split_facts(data_dir):
    ds = MNIST(os.path.join(data_dir, "mnist"), train=False)
    assert len(ds) == 10000 and ds.data.shape == (10000, 28, 28) and ds.data.dtype == np.uint8
    assert ds.targets.dtype == np.int64 and ds.targets.min() == 0 and ds.targets.max() == 9
    # The official test set's class counts.
    assert np.bincount(ds.targets).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    img, label = ds[0]
    assert img.shape == (28, 28) and img.dtype == np.uint8 and label == 7 and img.max() == 255
    tf = T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))])
    x, y = next(iter(DataLoader(MNIST(os.path.join(data_dir, "mnist"), train=False, transform=tf), batch_size=8)))
    assert x.shape == (8, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    # Without transforms the loader takes one fancy index per batch: same batch as per-sample collation.
    fast = next(iter(DataLoader(ds, batch_size=8)))
    np.testing.assert_array_equal(fast[0].array, np.stack([ds[i][0] for i in range(8)]))


def test_mnist_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz.*" + str(tmp_path).replace("/", ".")):
        FashionMNIST(tmp_path, train=False)


def test_read_idx_checks_its_header(tmp_path):
    bad = tmp_path / "bad-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(ValueError, match="truncated"):
        read_idx(bad)
    good = tmp_path / "ok-idx2-ubyte"
    good.write_bytes(b"\x00\x00\x0c\x02\x00\x00\x00\x02\x00\x00\x00\x01" + np.array([7, -3], ">i4").tobytes())
    arr = read_idx(good)
    assert arr.dtype == np.int32 and arr.tolist() == [[7], [-3]]


def _cifar_records(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    planes = rng.integers(0, 256, (n, 3, 32, 32)).astype(np.uint8)
    raw = np.concatenate([labels[:, None], planes.reshape(n, -1)], axis=1)
    return raw.tobytes(), labels, planes


def test_cifar10_binary_reader_and_archive(tmp_path):
    raw, labels, planes = _cifar_records(5, 0)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(raw)
    images, got = read_cifar_binary(path)
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(got, labels)
    np.testing.assert_array_equal(images[2, 4, 7], planes[2, :, 4, 7])  # (R, G, B) of pixel (4, 7)
    # The same file inside the official archive layout is unpacked and read.
    src = tmp_path / "src" / "cifar-10-batches-bin"
    src.mkdir(parents=True)
    (src / "test_batch.bin").write_bytes(raw)
    with tarfile.open(tmp_path / "cifar-10-binary.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-bin")
    ds = CIFAR10(tmp_path, train=False, transform=T.ToTensor())
    x, y = ds[2]
    assert len(ds) == 5 and x.shape == (3, 32, 32) and y == int(labels[2])
    assert (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").is_file()
    path.write_bytes(raw[:-7])
    with pytest.raises(ValueError, match="truncated"):
        read_cifar_binary(path)


def test_tinyshakespeare_facts(data_dir):
    root = os.path.join(data_dir, "text")
    full = TinyShakespeare(root, split="all")
    train = TinyShakespeare(root, split="train")
    val = TinyShakespeare(root, split="val")
    assert len(full) == 1115394 and len(full.vocab) == 65
    assert len(train) + len(val) == len(full) and len(train) == int(len(full) * 0.9)
    assert train.vocab == val.vocab and train.text + val.text == full.text
    assert full.decode(full.ids[:40]) == full.text[:40] and full.ids.dtype == np.int64


def test_wikitext2_facts(data_dir):
    root = os.path.join(data_dir, "text")
    valid = WikiText2(root, split="valid")
    test = WikiText2(root, split="test", vocab=valid.vocab)
    # Word counts with <eos> after every line, as PyTorch's word_language_model example counts them.
    assert len(valid) == 217646 and len(test) == 245569
    assert valid.vocab.itos[:2] == ["<unk>", "<eos>"] and valid.ids.dtype == np.int64
    unk = valid.vocab["<unk>"]
    assert (test.ids == unk).mean() > (valid.ids == unk).mean()  # words unseen in valid become <unk>


def test_digits_and_tabular_sets():
    train, test, every = Digits(train=True), Digits(train=False), Digits(train=None)
    assert (len(train), len(test), len(every)) == (1438, 359, 1797)
    x, y = train[0]
    assert x.shape == (1, 8, 8) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert isinstance(y, int) and sorted(set(train.targets.tolist())) == list(range(10))
    assert Digits(flatten=True)[0][0].shape == (64,)
    # The split is stratified: every class keeps about a fifth of its samples for testing.
    counts_all = np.bincount(every.targets)
    np.testing.assert_allclose(np.bincount(test.targets) / counts_all, 0.2, atol=0.02)
    sizes = {cls: len(cls(train=None)) for cls in (Iris, Wine, BreastCancer, Diabetes)}
    assert sizes == {Iris: 150, Wine: 178, BreastCancer: 569, Diabetes: 442}
    iris = Iris(standardize=True)
    np.testing.assert_allclose(iris.data.mean(axis=0), 0.0, atol=1e-5)
    assert iris.data.dtype == np.float32 and iris.classes == ["setosa", "versicolor", "virginica"]
    xd, yd = next(iter(DataLoader(Diabetes(), batch_size=4)))
    assert xd.shape == (4, 10) and yd.dtype == np.float32


def test_sklearn_missing_gives_install_hint(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match=r"somanet\[data\]"):
        Digits()
