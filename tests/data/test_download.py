"""download=True without touching the network: the fetch function is replaced to fail (offline) or
to serve bytes (right or wrong); errors must say where to put the files and leave nothing behind."""
import gzip
import os
import urllib.error

import numpy as np
import pytest

from somanet.data.datasets import (MNIST, ChecksumError, DownloadError, TinyShakespeare, data_home, load_wikitext2,
                                   sha256_file)
from somanet.data.datasets import _download


def _offline(url, dest):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_data_home_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SOMANET_DATA", str(tmp_path / "cache"))
    assert data_home() == str(tmp_path / "cache")
    monkeypatch.delenv("SOMANET_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_home() == str(tmp_path / "xdg" / "somanet")


def test_offline_download_fails_clearly_and_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(_download, "_fetch", _offline)
    with pytest.raises(DownloadError) as info:
        MNIST(tmp_path, train=False, download=True)
    msg = str(info.value)
    assert "MNIST" in msg and "offline" in msg and str(tmp_path) in msg and "sha256" in msg
    assert not isinstance(info.value, ChecksumError)
    assert os.listdir(tmp_path) == []


def test_default_root_is_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SOMANET_DATA", str(tmp_path))
    monkeypatch.setattr(_download, "_fetch", _offline)
    with pytest.raises(DownloadError, match=str(tmp_path / "tinyshakespeare")):
        TinyShakespeare(download=True)
    with pytest.raises(FileNotFoundError, match="SOMANET_DATA"):
        TinyShakespeare()


def test_bad_checksum_fails_and_leaves_nothing(monkeypatch, tmp_path):
    def serve_wrong_bytes(url, dest):
        with open(dest, "wb") as f:
            f.write(b"<html>not the file</html>")

    monkeypatch.setattr(_download, "_fetch", serve_wrong_bytes)
    with pytest.raises(ChecksumError) as info:
        load_wikitext2(tmp_path, "valid", download=True)
    msg = str(info.value)
    assert "sha256" in msg and "does not match" in msg and str(tmp_path / "wikitext2-valid.txt") in msg
    assert os.listdir(tmp_path) == []


def test_interrupted_download_leaves_nothing(monkeypatch, tmp_path):
    def half_then_fail(url, dest):
        with open(dest, "wb") as f:
            f.write(b"partial")
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(_download, "_fetch", half_then_fail)
    with pytest.raises(DownloadError, match="connection reset"):
        MNIST(tmp_path, train=False, download=True)
    assert os.listdir(tmp_path) == []


def test_good_download_is_verified_and_used(monkeypatch, tmp_path, data_dir):
    served = []

    def serve_shared_copy(url, dest):
        served.append(url)
        name = url.rsplit("/", 1)[1]
        with open(os.path.join(data_dir, "mnist", name), "rb") as src, open(dest, "wb") as out:
            out.write(src.read())

    monkeypatch.setattr(_download, "_fetch", serve_shared_copy)
    ds = MNIST(tmp_path, train=False, download=True)
    assert len(ds) == 10000 and len(served) == 2
    assert sorted(os.listdir(tmp_path)) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert sha256_file(tmp_path / "t10k-labels-idx1-ubyte.gz") == MNIST.resources["t10k-labels-idx1-ubyte.gz"]
    MNIST(tmp_path, train=False, download=True)
    assert len(served) == 2  # present files are not fetched again


def test_first_mirror_failing_falls_back(monkeypatch, tmp_path):
    labels = np.arange(3, dtype=np.uint8)
    payload = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x03" + labels.tobytes())
    digest = __import__("hashlib").sha256(payload).hexdigest()
    calls = []

    def flaky(url, dest):
        calls.append(url)
        if "first" in url:
            raise TimeoutError("timed out")
        with open(dest, "wb") as f:
            f.write(payload)

    monkeypatch.setattr(_download, "_fetch", flaky)
    out = _download.download_file(["https://first/x.gz", "https://second/x.gz"], tmp_path / "x.gz", digest, "Test")
    assert calls == ["https://first/x.gz", "https://second/x.gz"] and os.path.isfile(out)
    assert os.listdir(tmp_path) == ["x.gz"]


def test_no_pickle_in_the_data_package():
    import somanet.data
    root = os.path.dirname(somanet.data.__file__)
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    text = f.read()
                assert "import pickle" not in text and "pickle.load" not in text, name
