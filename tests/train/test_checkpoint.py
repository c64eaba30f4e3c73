"""Checkpoint directories: exact round trips, atomic replacement, and clear errors for bad files."""
import json
import os

import numpy as np
import pytest

import somanet
from somanet import nn
from somanet.models import MLP
from somanet.train import CheckpointError, load_checkpoint, load_weights, save_checkpoint, save_weights
from somanet.train.checkpoint import decode_state, encode_state


def _model():
    return MLP(6, [5], 3, batch_norm=True)


def _weights(model):
    return {k: v.array.copy() for k, v in model.state_dict().items()}


def test_nested_state_round_trip_keeps_types():
    state = {"step": np.float32(0.1), "count": np.int64(7), "t": (1, 2.5, "x"), 3: [None, True],
             "arr": np.arange(6, dtype=np.float32).reshape(2, 3), "zero_d": np.array(5, dtype=np.int64),
             "tensor": somanet.tensor([1.0, 2.0]), "nested": {0: {"exp_avg": np.ones(2, np.float32)}},
             "inf": float("inf"), "__tuple__": "a key that looks like a tag"}
    arrays = {}
    encoded = json.loads(json.dumps(encode_state(state, arrays)))
    back = decode_state(encoded, arrays)
    assert type(back["step"]) is np.float32 and back["step"] == np.float32(0.1)
    assert type(back["count"]) is np.int64
    assert back["t"] == (1, 2.5, "x") and back[3] == [None, True]
    np.testing.assert_array_equal(back["arr"], state["arr"])
    assert back["zero_d"].shape == () and back["zero_d"] == 5
    assert isinstance(back["tensor"], somanet.Tensor)
    np.testing.assert_array_equal(back["nested"][0]["exp_avg"], np.ones(2))
    assert back["inf"] == float("inf") and back["__tuple__"] == state["__tuple__"]


def test_encode_rejects_what_would_need_pickle():
    with pytest.raises(TypeError, match=r"cannot save state\.fn: values of type function"):
        encode_state({"fn": lambda: 0}, {})
    with pytest.raises(TypeError, match="object arrays"):
        encode_state(np.array([{}], dtype=object), {})


def test_save_and_load_round_trip_exactly(tmp_path):
    model = _model()
    model(somanet.randn(4, 6))  # updates BatchNorm's running statistics and its 0-d counter
    path = save_checkpoint(tmp_path / "ckpt", model, {"epoch": 3, "opt": {"m": np.ones(3, np.float32)}},
                           {"recipe": "x"})
    ckpt = load_checkpoint(path)
    other = _model()
    ckpt.load_model(other)
    for k, v in _weights(model).items():
        assert np.array_equal(v, other.state_dict()[k].array) and v.shape == other.state_dict()[k].array.shape, k
    assert ckpt.trainer_state["epoch"] == 3 and ckpt.config == {"recipe": "x"}
    assert sorted(os.listdir(path)) == ["checkpoint.json", "config.json", "model.safetensors", "state.safetensors"]


def test_replacing_a_checkpoint_leaves_no_temporary_files(tmp_path):
    model = _model()
    save_checkpoint(tmp_path / "last", model, {"epoch": 1})
    with somanet.no_grad():
        model[0].weight.array[...] = 2.0
    save_checkpoint(tmp_path / "last", model, {"epoch": 2})
    assert os.listdir(tmp_path) == ["last"]
    ckpt = load_checkpoint(tmp_path / "last")
    assert ckpt.trainer_state["epoch"] == 2 and np.all(ckpt.model_state["0.weight"] == 2.0)


def test_a_run_directory_resolves_to_its_last_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "run" / "checkpoints" / "last", _model(), {"epoch": 4})
    assert load_checkpoint(tmp_path / "run").trainer_state["epoch"] == 4


@pytest.fixture
def saved(tmp_path):
    return save_checkpoint(tmp_path / "ckpt", _model(), {"epoch": 1}, {"recipe": "x"})


def test_missing_checkpoint_says_what_is_missing(tmp_path, saved):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="not a checkpoint: checkpoint.json is missing"):
        load_checkpoint(tmp_path.joinpath("empty").mkdir() or tmp_path / "empty")
    os.remove(os.path.join(saved, "state.safetensors"))
    with pytest.raises(CheckpointError, match=r"ckpt/state\.safetensors is missing; the checkpoint is incomplete"):
        load_checkpoint(saved)


def test_truncated_file_is_reported_as_corrupt(saved):
    path = os.path.join(saved, "model.safetensors")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:-10])
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupt: it has \d+ bytes but"):
        load_checkpoint(saved)


def test_modified_file_is_reported_as_corrupt(saved):
    path = os.path.join(saved, "model.safetensors")
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupt: its SHA-256 does not match"):
        load_checkpoint(saved)


def test_bad_manifest_is_reported(saved):
    manifest = os.path.join(saved, "checkpoint.json")
    open(manifest, "w").write("{not json")
    with pytest.raises(CheckpointError, match=r"checkpoint\.json is corrupt: not valid JSON"):
        load_checkpoint(saved)
    open(manifest, "w").write(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not a somanet checkpoint manifest"):
        load_checkpoint(saved)


def test_weights_that_do_not_fit_name_the_file(tmp_path, saved):
    with pytest.raises(CheckpointError, match=r"(?s)model\.safetensors does not fit the model MLP: .*size mismatch"):
        load_checkpoint(saved).load_model(MLP(6, [4], 3, batch_norm=True))


def test_weights_only_file(tmp_path):
    model = _model()
    save_weights(model, tmp_path / "w.safetensors")
    other = _model()
    load_weights(other, tmp_path / "w.safetensors")
    for k, v in _weights(model).items():
        assert np.array_equal(v, other.state_dict()[k].array)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="bad.safetensors is corrupt or not a safetensors file"):
        load_weights(other, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="does not fit the model Linear"):
        load_weights(nn.Linear(2, 2), tmp_path / "w.safetensors")
