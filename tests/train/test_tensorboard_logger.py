"""``TensorBoardLogger`` (Keras: ``TensorBoard``): the event files it writes read back with the run's numbers."""
import glob
import os
import struct

import numpy as np
import pytest

import somanet
from somanet import nn, optim
from somanet.train import TensorBoard, TensorBoardLogger, Trainer

tensorboardX = pytest.importorskip("tensorboardX")
from tensorboardX.proto import event_pb2  # noqa: E402


def events(log_dir):
    """Every Event in the TFRecord files under ``log_dir`` (length, crc, data, crc per record)."""
    out = []
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        data = open(path, "rb").read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            out.append(event_pb2.Event.FromString(data[pos + 12:pos + 12 + length]))
            pos += 12 + length + 4
    return out


def by_tag(evs):
    out = {}
    for ev in evs:
        for v in ev.summary.value:
            out.setdefault(v.tag, []).append((ev.step, v))
    return out


def test_scalars_histograms_images_and_model_text(tmp_path):
    somanet.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 4, 4), dtype=np.float32)
    y = rng.integers(0, 3, 40)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    w_init = model[1].weight.array.copy()
    logger = TensorBoardLogger(histogram_every_n_steps=2)
    trainer = Trainer(enable_progress_bar=False, run_dir=tmp_path / "run", plots=False)
    history = trainer.fit(model, (x, y), (x, y), epochs=2, batch_size=10,
                          optimizer=optim.SGD(model.parameters(), lr=0.1), loss="cross_entropy", callbacks=[logger])
    tags = by_tag(events(tmp_path / "run" / "tensorboard"))
    steps = [s for s, _ in tags["train/loss"]]
    assert steps == list(range(1, 9))  # one per optimizer step (4 per epoch), after it
    assert [round(v.simple_value, 6) for _, v in tags["train/lr"]] == [0.1] * 8
    epoch_loss = [(s, v.simple_value) for s, v in tags["epoch/loss"]]
    assert [s for s, _ in epoch_loss] == [1, 2]
    np.testing.assert_allclose([v for _, v in epoch_loss], history.history["loss"], rtol=1e-6)
    np.testing.assert_allclose([v.simple_value for _, v in tags["epoch/val_loss"]], history.history["val_loss"],
                               rtol=1e-6)
    # Histograms every 2 steps (before the step), of the weights and the gradients.
    assert [s for s, _ in tags["weights/1.weight"]] == [0, 2, 4, 6]
    hist = tags["grads/1.bias"][0][1].histo
    assert hist.num == 3
    w0 = tags["weights/1.weight"][0][1].histo
    assert w0.num == 48 and w0.min == pytest.approx(w_init.min()) and w0.max == pytest.approx(w_init.max())
    assert w0.sum == pytest.approx(float(w_init.sum()), rel=1e-5, abs=1e-6)
    (step, img), = tags["inputs"]
    assert step == 1 and img.image.height > 0  # the first batch, written after its step
    assert any(t.startswith("model") for t in tags)
    assert TensorBoard is TensorBoardLogger


def test_bad_options_and_missing_package_hint(monkeypatch):
    with pytest.raises(ValueError, match="histogram_every_n_steps must be an int >= 0"):
        TensorBoardLogger(histogram_every_n_steps=-1)
    import somanet.utils.tensorboard as tb

    def missing():
        raise ImportError(tb._INSTALL_HINT)
    monkeypatch.setattr(tb, "_backend", missing)
    model = nn.Linear(4, 2)
    with pytest.raises(ImportError, match=r"pip install 'somanet\[tensorboard\]'"):
        Trainer(enable_progress_bar=False, doctor=False).fit(
            model, (np.zeros((4, 4), np.float32), np.zeros(4, np.int64)), loss="cross_entropy",
            callbacks=[TensorBoardLogger(log_dir="unused")])
