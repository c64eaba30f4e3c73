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


# ----------------------------------------------------------------------------- what killed saves leave
def _hidden_dir(folder, base, kind, pid, host=None, token="0badc0de"):
    from somanet.train import _io
    path = os.path.join(folder, f".{base}.{kind}-{pid}-{host or _io._host_tag()}-{token}")
    os.makedirs(path)
    with open(os.path.join(path, "model.safetensors"), "wb") as f:
        f.write(b"\0" * 1000)
    return os.path.basename(path)


def _dead_pid():
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _age(path, days):
    import time
    then = time.time() - days * 24 * 3600
    for name in os.listdir(path):
        os.utime(os.path.join(path, name), (then, then))
    os.utime(path, (then, then))


@pytest.mark.skipif(os.name != "posix", reason="checks process ids the POSIX way")
def test_leftovers_of_dead_writers_are_deleted_and_those_of_live_writers_kept(tmp_path):
    import subprocess
    import sys
    model = _model()
    folder = str(tmp_path / "checkpoints")
    save_checkpoint(os.path.join(folder, "last"), model, {"epoch": 1})
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        live_dir = _hidden_dir(folder, "last", "tmp", live.pid)  # a writer that still runs
        keep = {live_dir,
                _hidden_dir(folder, "last", "tmp", 12345, host="ffffffff"),  # another host's, recent
                _hidden_dir(folder, "best", "tmp", 12345, host="ffffffff", token="0badbeef")}
        os.makedirs(os.path.join(folder, ".best.tmp-abcd1234"))  # an older somanet's name, recent
        keep.add(".best.tmp-abcd1234")
        gone = [_hidden_dir(folder, "last", "old", _dead_pid()),  # its writer was killed
                _hidden_dir(folder, "last", "tmp", os.getpid()),  # this process's, but no save of it uses it
                _hidden_dir(folder, "best", "old", _dead_pid(), token="0badbeef"),
                _hidden_dir(folder, "last", "old", 777, host="eeeeeeee")]  # another host's, untouched for days
        _age(os.path.join(folder, gone[-1]), days=3)
        os.makedirs(os.path.join(folder, ".last.old-wxyz9876"))  # an older somanet's name, untouched for days
        _age(os.path.join(folder, ".last.old-wxyz9876"), days=3)
        assert len(os.listdir(folder)) == 1 + len(keep) + len(gone) + 1
        save_checkpoint(os.path.join(folder, "last"), model, {"epoch": 2})
        assert set(os.listdir(folder)) == keep | {"last"}
        live.kill()
        live.wait()
        # A load tidies too: the writer is gone now.
        assert load_checkpoint(os.path.join(folder, "last")).trainer_state["epoch"] == 2
        assert set(os.listdir(folder)) == keep - {live_dir} | {"last"}
    finally:
        live.kill()
        live.wait()


def test_a_missing_checkpoint_is_recovered_from_the_newest_complete_hidden_copy(tmp_path):
    from somanet.train import _io
    folder = tmp_path / "checkpoints"
    save_checkpoint(folder / "last", _model(), {"epoch": 1})
    save_checkpoint(folder / "next", _model(), {"epoch": 2})
    dead = _dead_pid()
    # What a kill between the two renames leaves: the old 'last' and the complete new one, hidden.
    os.rename(folder / "last", folder / f".last.old-{dead}-{_io._host_tag()}-00000001")
    os.rename(folder / "next", folder / f".last.tmp-{dead}-{_io._host_tag()}-00000002")
    _hidden_dir(str(folder), "last", "tmp", dead, token="00000003")  # and one killed while writing
    assert load_checkpoint(tmp_path).trainer_state["epoch"] == 2
    assert sorted(os.listdir(folder)) == ["last"]


# ----------------------------------------------------------------------------- hand-edited manifests
@pytest.fixture
def trained(tmp_path):
    """A Trainer's checkpoint (optimizer moments, random states, callback states)."""
    from somanet.train import Trainer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    Trainer(run_dir=tmp_path / "run", enable_progress_bar=False, plots=False).fit(
        _model(), (x, y), epochs=1, optimizer="adam", loss="cross_entropy", batch_size=8)
    return str(tmp_path / "run" / "checkpoints" / "last")


def _edit(path, manifest_text=None, edit_state=None, edit_arrays=None):
    """Rewrite a checkpoint's manifest and arrays, with checksums recomputed so that they are valid."""
    import hashlib
    import safetensors.numpy as st
    manifest_path = os.path.join(path, "checkpoint.json")
    manifest = json.load(open(manifest_path))
    if edit_arrays is not None:
        arrays = {k: np.array(v) for k, v in st.load_file(os.path.join(path, "state.safetensors")).items()}
        edit_arrays(arrays)
        data = st.save(arrays, metadata={"format": "somanet-checkpoint"})
        open(os.path.join(path, "state.safetensors"), "wb").write(data)
        manifest["files"]["state.safetensors"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    if edit_state is not None:
        edit_state(manifest)
    open(manifest_path, "w").write(manifest_text(manifest) if manifest_text else json.dumps(manifest))


@pytest.mark.parametrize("depth, problem", [(100_000, "nested too deeply"), (500, "nested more than 100 levels")])
def test_deeply_nested_manifest_is_refused(trained, depth, problem):
    nested = "[" * depth + "]" * depth
    _edit(trained, manifest_text=lambda m: json.dumps(m)[:-1] + f', "extra": {nested}}}')
    with pytest.raises(CheckpointError, match=rf"checkpoint\.json is corrupt: its JSON is {problem}"):
        load_checkpoint(trained)


_EDITS = [
    (lambda m: m["trainer_state"].update(epoch="3"), "trainer_state.epoch", "must be a non-negative integer"),
    (lambda m: m["trainer_state"].update(global_step=-1), "trainer_state.global_step", "non-negative integer"),
    (lambda m: m["trainer_state"].update(epoch={"__scalar__": "bogus", "value": 1}),
     "trainer_state.epoch.__scalar__", "must be a NumPy number type"),
    (lambda m: m["trainer_state"].update(epoch={"__scalar__": "<i1", "value": 1000}),
     "trainer_state.epoch.value", "does not fit the type"),
    (lambda m: m["trainer_state"].update(epoch_done="yes"), "trainer_state.epoch_done", "must be true or false"),
    (lambda m: m["trainer_state"].pop("rng"), "trainer_state.rng", "is missing"),
    (lambda m: m["trainer_state"].update(optimizers={}), "trainer_state.optimizers", "must be a list"),
    (lambda m: m["trainer_state"]["optimizers"][0].update(state={"__array__": 5}),
     "trainer_state.optimizers.0.state.__array__", "must name an array"),
    (lambda m: m["trainer_state"].update(epoch={"__array__": "state.nowhere"}), "trainer_state.epoch",
     "has no array 'state.nowhere'"),
    (lambda m: m["files"]["model.safetensors"].update(bytes="12"), "files.model.safetensors.bytes",
     "must be a non-negative integer"),
    (lambda m: m["files"]["config.json"].update(sha256=None), "files.config.json.sha256", "64 lowercase hex"),
    (lambda m: m.update(trainer_state=[]), "trainer_state", "must be an object"),
]


@pytest.mark.parametrize("edit, field, problem", _EDITS, ids=[f"{f} {p}" for _, f, p in _EDITS])
def test_hand_edited_manifest_fields_are_named(trained, edit, field, problem):
    _edit(trained, edit_state=edit)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(trained)
    msg = str(info.value)
    assert field in msg and problem in msg, msg
    assert "checkpoint.json" in msg or "state.safetensors" in msg


def test_a_moment_of_the_wrong_shape_is_named(trained):
    def shrink(arrays):
        arrays["state.optimizers.0.state.0.exp_avg"] = np.zeros(3, np.float32)
    _edit(trained, edit_arrays=shrink)
    with pytest.raises(CheckpointError, match=r"field 'trainer_state\.optimizers\.0\.state\.0\.exp_avg' has shape "
                                              r"\(3,\) but exp_avg_sq has shape \(5, 6\)"):
        load_checkpoint(trained)


def test_version_must_be_the_integer_one(saved):
    manifest = os.path.join(saved, "checkpoint.json")
    data = json.load(open(manifest))
    data["version"] = True
    open(manifest, "w").write(json.dumps(data))
    with pytest.raises(CheckpointError, match="format version True"):
        load_checkpoint(saved)


def test_hidden_folders_that_are_not_checkpoint_debris_are_left_alone(tmp_path):
    folder = tmp_path / "home"
    foreign = folder / ".config.old-20230101"  # the shape of an older somanet's name, but someone else's
    foreign.mkdir(parents=True)
    (foreign / "settings.ini").write_text("keep me")
    _age(str(foreign), days=30)
    save_checkpoint(folder / "model", _model(), {"epoch": 1})
    load_checkpoint(folder / "model")
    assert (foreign / "settings.ini").read_text() == "keep me"


def test_atomically_written_files_get_the_umask_permissions(tmp_path):
    # A temporary file from mkstemp is 0600; the finished file must be readable as any other file the user writes.
    from somanet.train._io import atomic_write_text
    old = os.umask(0o022)
    try:
        atomic_write_text(str(tmp_path / "notes.txt"), "hello")
        save_weights(MLP(4, [3], 2), str(tmp_path / "w.safetensors"))
    finally:
        os.umask(old)
    assert (tmp_path / "notes.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "w.safetensors"]
