"""``somanet.utils.tensorboard.SummaryWriter`` writes TensorBoard event files that read back with the values
given (somanet tensors included)."""
import glob
import os
import struct

import numpy as np
import pytest

import somanet

tensorboardX = pytest.importorskip("tensorboardX")
from tensorboardX.proto import event_pb2  # noqa: E402

from somanet.utils.tensorboard import SummaryWriter  # noqa: E402


def _events(log_dir):
    """Every Event in the TFRecord event files under ``log_dir`` (length, crc, data, crc per record)."""
    out = []
    for path in sorted(glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True)):
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            record = data[pos + 12:pos + 12 + length]
            out.append((path, event_pb2.Event.FromString(record)))
            pos += 12 + length + 4
    return out


def _values(log_dir):
    found = {}
    for path, event in _events(log_dir):
        for v in event.summary.value:
            found.setdefault(v.tag, []).append((event.step, v, path))
    return found


def test_scalars_histograms_images_text(tmp_path):
    log_dir = str(tmp_path / "run")
    with SummaryWriter(log_dir) as writer:
        assert writer.get_logdir() == log_dir == writer.log_dir
        for step in range(3):
            writer.add_scalar("loss", somanet.tensor(1.0 / (step + 1)), step)
        writer.add_scalar("lr", 0.5, global_step=somanet.tensor(7))
        writer.add_histogram("weights", somanet.randn(100), 1)
        writer.add_image("img", somanet.rand(3, 8, 6), 2)
        writer.add_image("hwc", np.zeros((4, 5, 3), np.uint8), 2, dataformats="HWC")
        writer.add_images("batch", somanet.rand(2, 3, 4, 4), 0)
        writer.add_text("note", "hello **there**", 0)
        writer.flush()
    values = _values(log_dir)
    loss = values["loss"]
    assert [s for s, _, _ in loss] == [0, 1, 2]
    np.testing.assert_allclose([v.simple_value for _, v, _ in loss], [1.0, 0.5, 1 / 3], rtol=1e-6)
    assert values["lr"][0][0] == 7 and values["lr"][0][1].simple_value == 0.5
    histo = values["weights"][0][1].histo
    assert histo.num == 100 and len(histo.bucket) > 0
    img = values["img"][0][1].image
    assert (img.height, img.width, img.colorspace) == (8, 6, 3) and img.encoded_image_string[:4] == b"\x89PNG"
    assert values["hwc"][0][1].image.height == 4
    assert "batch" in values
    text = values["note/text_summary"][0][1]
    assert b"hello **there**" in text.tensor.string_val[0]


def test_add_scalars_writes_one_run_per_key(tmp_path):
    log_dir = str(tmp_path / "multi")
    writer = SummaryWriter(log_dir)
    writer.add_scalars("acc", {"train": somanet.tensor(0.9), "val": 0.8}, 4)
    writer.close()
    values = _values(log_dir)
    # One event file per key, in a directory named after it (tensorboardX's layout: acc/train, acc/val).
    runs = {os.path.basename(os.path.dirname(p)): v.simple_value for _, v, p in values["acc"]}
    assert {k.split("_")[-1]: v for k, v in runs.items()} == pytest.approx({"train": 0.9, "val": 0.8})


def test_hparams_and_graph(tmp_path):
    log_dir = str(tmp_path / "hp")
    with SummaryWriter(log_dir) as writer:
        writer.add_hparams({"lr": 0.1, "batch": 32}, {"hparam/acc": somanet.tensor(0.75)})
        with pytest.raises(NotImplementedError, match="add_graph"):
            writer.add_graph(somanet.nn.Linear(2, 2), somanet.ones(1, 2))
    assert _events(log_dir)


def test_scalar_must_have_one_element(tmp_path):
    with SummaryWriter(str(tmp_path / "bad")) as writer:
        with pytest.raises(ValueError):
            writer.add_scalar("x", somanet.ones(3))


def test_missing_backend_gives_an_install_hint(monkeypatch):
    import builtins

    import somanet.utils.tensorboard as tb

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "tensorboardX":
            raise ImportError("No module named 'tensorboardX'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"somanet\[tensorboard\]"):
        tb.SummaryWriter("unused")


def test_import_path_matches_pytorch():
    import somanet.utils

    assert somanet.utils.tensorboard.SummaryWriter is SummaryWriter
