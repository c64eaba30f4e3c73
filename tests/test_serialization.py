"""somanet.save / somanet.load against torch.save / torch.load (PyTorch's zip and legacy formats).

Files written by torch.save load in somanet with the same values, dtypes, shapes and memory sharing;
files written by somanet.save load in torch.load(weights_only=True); state dicts move between the two
frameworks' modules and optimizers. Crafted files (code in the pickle, names outside the archive,
truncated or foreign files) are refused with clear errors and nothing from them is ever run.
"""
import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import somanet
from somanet import nn, optim
from somanet.serialization import CheckpointFormatError, UnsafeLoadError, load, save
from reference import torch_or_skip

DTYPES = ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "bool", "complex64",
          "complex128", "uint16", "uint32", "uint64"]


# --------------------------------------------------------------------------- helpers
def _values(dtype, shape=(2, 3)):
    n = int(np.prod(shape))
    if dtype == "bool":
        return (np.arange(n) % 3 == 0).reshape(shape)
    if dtype.startswith("complex"):
        return (np.arange(n) - 2.5 + 1j * np.arange(n)[::-1]).astype(dtype).reshape(shape)
    if dtype.startswith("uint"):
        return (np.arange(n) * 7 + 200).astype(dtype).reshape(shape)
    return ((np.arange(n) - 2) * 3.25).astype(dtype).reshape(shape)


def _torch_bytes(obj, **kw):
    torch = torch_or_skip()
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


def _somanet_bytes(obj):
    buf = io.BytesIO()
    save(obj, buf)
    return buf.getvalue()


def _torch_load(data, **kw):
    torch = torch_or_skip()
    return torch.load(io.BytesIO(data), weights_only=True, **kw)


def _archive(records, prefix="archive/"):
    """A zip laid out like a checkpoint, with the given records (name -> bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in records.items():
            zf.writestr(prefix + name if prefix and not name.startswith(("/", "..")) else name, data)
    return buf.getvalue()


def _records(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename.split("/", 1)[1]: zf.read(info) for info in zf.infolist()}


def _np(t):
    if isinstance(t, somanet.Tensor):
        return t.array
    return t.detach().numpy()


def _assert_same(a, b):
    a, b = _np(a), _np(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


def _bases_share(arrays):
    return all(np.shares_memory(arrays[0], a) for a in arrays[1:])


class _Marker:
    """A pickle payload that would create a file if anything ever ran it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch '{self.path}'",)


# --------------------------------------------------------------------------- torch.save -> somanet.load
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_written_by_torch_loads(dtype):
    torch = torch_or_skip()
    arr = _values(dtype)
    data = _torch_bytes({"t": torch.from_numpy(arr.copy()), "col": torch.from_numpy(arr.copy())[:, 1]})
    loaded = load(io.BytesIO(data))
    assert isinstance(loaded["t"], somanet.Tensor) and not loaded["t"].requires_grad
    assert loaded["t"].dtype == np.dtype(dtype) and loaded["t"].shape == (2, 3)
    np.testing.assert_array_equal(loaded["t"].array, arr)
    np.testing.assert_array_equal(loaded["col"].array, arr[:, 1])


def test_bfloat16_loads_as_float32_exactly():
    torch = torch_or_skip()
    values = torch.tensor([1.0, -2.5, 3.140625, 1e-3, 65280.0, float("inf")], dtype=torch.bfloat16)
    loaded = load(io.BytesIO(_torch_bytes({"w": values, "p": torch.nn.Parameter(values.clone())})))
    assert loaded["w"].dtype == np.float32
    np.testing.assert_array_equal(loaded["w"].array, values.float().numpy())
    assert isinstance(loaded["p"], nn.Parameter) and loaded["p"].requires_grad


def test_views_keep_values_strides_and_shared_memory():
    torch = torch_or_skip()
    x = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    views = {"x": x, "row": x[1], "col": x[:, 2], "t": x.t(), "step": x[1::2, ::3], "flat": x.view(-1)[5:17],
             "other": x.clone()}
    loaded = load(io.BytesIO(_torch_bytes(views)))
    for name, t in views.items():
        _assert_same(loaded[name], t)
    assert loaded["t"].array.strides == (4, 24)
    assert loaded["step"].array.strides == (48, 12)
    shared = [loaded[k].array for k in ("x", "row", "col", "t", "step", "flat")]
    assert _bases_share(shared)
    assert not np.shares_memory(loaded["x"].array, loaded["other"].array)
    loaded["x"].array[1, 2] = -1.0  # one storage: every view sees the write
    assert loaded["row"].array[2] == -1.0 and loaded["col"].array[1] == -1.0 and loaded["t"].array[2, 1] == -1.0


def test_zero_dim_and_empty_tensors():
    torch = torch_or_skip()
    obj = {"scalar": torch.tensor(3.5), "int": torch.tensor(7), "empty": torch.empty(0),
           "empty2": torch.empty(2, 0, 3, dtype=torch.int32), "bool": torch.tensor(True)}
    loaded = load(io.BytesIO(_torch_bytes(obj)))
    for name, t in obj.items():
        _assert_same(loaded[name], t)
    assert loaded["scalar"].ndim == 0 and loaded["scalar"].item() == 3.5


def test_torch_model_state_dict_gives_the_same_outputs_in_somanet():
    torch = torch_or_skip()
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                                    torch.nn.Linear(8, 3))
    x = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    reference(torch.from_numpy(x) * 2 + 1)  # move the running statistics away from their defaults
    reference.eval()
    state = load(io.BytesIO(_torch_bytes(reference.state_dict())))
    assert isinstance(state, OrderedDict) and list(state) == list(reference.state_dict())
    assert state._metadata[""] == reference.state_dict()._metadata[""]
    assert state["1.num_batches_tracked"].dtype == np.int64
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(somanet.tensor(x)).array, expected, rtol=1e-5, atol=1e-6)


def test_torch_adam_state_dict_continues_training_in_somanet():
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    w0, g1, g2 = (rng.standard_normal((3, 2)).astype(np.float32) for _ in range(3))
    tw = torch.tensor(w0, requires_grad=True)
    topt = torch.optim.Adam([tw], lr=0.1, betas=(0.8, 0.95))
    tw.grad = torch.tensor(g1)
    topt.step()
    state = load(io.BytesIO(_torch_bytes(topt.state_dict())))
    step = state["state"][0]["step"]
    assert step.dtype == np.float32 and step.ndim == 0 and step.item() == 1.0
    _assert_same(state["state"][0]["exp_avg"], topt.state_dict()["state"][0]["exp_avg"])
    group = state["param_groups"][0]
    assert group["params"] == [0] and group["betas"] == (0.8, 0.95) and group["lr"] == 0.1
    sw = somanet.tensor(tw.detach().numpy().copy(), requires_grad=True)
    sopt = optim.Adam([sw], lr=0.1, betas=(0.8, 0.95))
    sopt.load_state_dict(state)
    tw.grad, sw.grad = torch.tensor(g2), somanet.tensor(g2)
    topt.step()
    sopt.step()
    np.testing.assert_allclose(sw.array, tw.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_nested_containers_and_python_values():
    torch = torch_or_skip()
    obj = {"list": [1, -2, 2 ** 40, -2 ** 70, 1.5, float("inf"), None, True, False, "héllo ☃", b"\x00\xff", b"",
                    bytearray(b"ab"), 1 + 2j],
           "tuple": (1, (2, 3), [], ()), "set": {1, "a"}, "od": OrderedDict(b=1, a=2), 3: "int key",
           ("a", 1): "tuple key", "size": torch.Size([2, 3]), "dtype": torch.float16, "device": torch.device("cpu"),
           "nested": {"t": [torch.ones(2), {"u": torch.zeros(1, dtype=torch.int64)}]}}
    loaded = load(io.BytesIO(_torch_bytes(obj)))
    assert loaded["list"] == obj["list"] and loaded["tuple"] == obj["tuple"] and loaded["set"] == obj["set"]
    assert type(loaded["od"]) is OrderedDict and list(loaded["od"].items()) == [("b", 1), ("a", 2)]
    assert loaded[3] == "int key" and loaded[("a", 1)] == "tuple key"
    assert loaded["size"] == (2, 3) and loaded["dtype"] == somanet.float16 and loaded["device"] == "cpu"
    _assert_same(loaded["nested"]["t"][1]["u"], obj["nested"]["t"][1]["u"])
    nan = load(io.BytesIO(_torch_bytes([float("nan")])))
    assert np.isnan(nan[0])


def test_parameters_stay_parameters_where_torch_keeps_them():
    torch = torch_or_skip()
    p = torch.nn.Parameter(torch.ones(2, 2))
    frozen = torch.nn.Parameter(torch.zeros(3), requires_grad=False)
    grad_tensor = torch.ones(2, requires_grad=True)
    loaded = load(io.BytesIO(_torch_bytes({"p": p, "frozen": frozen, "g": grad_tensor, "again": p})))
    assert isinstance(loaded["p"], nn.Parameter) and loaded["p"].requires_grad
    assert isinstance(loaded["frozen"], nn.Parameter) and not loaded["frozen"].requires_grad
    assert type(loaded["g"]) is somanet.Tensor and loaded["g"].requires_grad and loaded["g"].is_leaf
    assert loaded["again"] is loaded["p"]
    state = load(io.BytesIO(_torch_bytes(torch.nn.Linear(2, 2).state_dict())))
    assert all(type(v) is somanet.Tensor and not v.requires_grad for v in state.values())


def test_legacy_format_loads():
    torch = torch_or_skip()
    x = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    obj = {"x": x, "t": x.t(), "row": x[2], "bf": torch.ones(3, dtype=torch.bfloat16) / 4,
           "p": torch.nn.Parameter(torch.ones(2)), "i": torch.tensor([1, 2], dtype=torch.int16), "meta": [1, "a"],
           "sd": torch.nn.Linear(2, 3).state_dict()}
    data = _torch_bytes(obj, _use_new_zipfile_serialization=False)
    assert data[:4] != b"PK\x03\x04"
    loaded = load(io.BytesIO(data))
    for name in ("x", "t", "row", "i"):
        _assert_same(loaded[name], obj[name])
    assert _bases_share([loaded["x"].array, loaded["t"].array, loaded["row"].array])
    np.testing.assert_array_equal(loaded["bf"].array, np.full(3, 0.25, np.float32))
    assert isinstance(loaded["p"], nn.Parameter) and loaded["meta"] == [1, "a"]
    _assert_same(loaded["sd"]["weight"], obj["sd"]["weight"])


# --------------------------------------------------------------------------- somanet.save -> torch.load
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_written_by_somanet_loads_in_torch(dtype):
    arr = _values(dtype)
    loaded = _torch_load(_somanet_bytes({"t": somanet.Tensor(arr), "col": somanet.Tensor(arr[:, 1])}))
    np.testing.assert_array_equal(loaded["t"].numpy(), arr)
    np.testing.assert_array_equal(loaded["col"].numpy(), arr[:, 1])
    assert loaded["t"].numpy().dtype == np.dtype(dtype)


def test_somanet_views_load_in_torch_sharing_one_storage(tmp_path):
    torch = torch_or_skip()
    base = np.arange(30, dtype=np.float32).reshape(5, 6)
    x = somanet.Tensor(base)
    obj = {"x": x, "t": somanet.Tensor(base.T), "col": somanet.Tensor(base[:, 3]),
           "step": somanet.Tensor(base[1::2, ::4]), "flip": somanet.Tensor(base[::-1]),
           "bcast": somanet.Tensor(np.broadcast_to(base[0], (3, 6))), "fortran": somanet.Tensor(np.asfortranarray(base)),
           "tail": somanet.Tensor(base.reshape(-1)[7:9])}
    path = tmp_path / "views.pt"
    save(obj, path)
    for kw in ({}, {"mmap": True}):  # mmap reads storages in place: they must be aligned
        loaded = torch.load(path, weights_only=True, **kw)
        for name, t in obj.items():
            np.testing.assert_array_equal(loaded[name].numpy(), t.array)
        assert loaded["t"].stride() == (1, 6) and loaded["step"].stride() == (12, 4)
        assert loaded["bcast"].stride() == (0, 1) and loaded["fortran"].stride() == (1, 5)
        ptrs = {loaded[k].untyped_storage().data_ptr() for k in ("x", "t", "col", "step", "bcast", "tail")}
        assert len(ptrs) == 1
        assert loaded["flip"].untyped_storage().data_ptr() not in ptrs  # negative strides: saved as a copy


def test_a_small_view_of_a_big_array_saves_only_its_bytes():
    big = np.zeros((1000, 1000), dtype=np.float32)
    big[3, 4:8] = [1, 2, 3, 4]
    data = _somanet_bytes({"w": somanet.Tensor(big[3, 4:8])})
    assert len(data) < 4000
    loaded = load(io.BytesIO(data))
    np.testing.assert_array_equal(loaded["w"].array, [1, 2, 3, 4])


def test_somanet_objects_load_in_torch():
    torch = torch_or_skip()
    p = nn.Parameter(somanet.ones(2, 3))
    frozen = nn.Parameter(somanet.zeros(2), requires_grad=False)
    obj = OrderedDict(p=p, frozen=frozen, grad=somanet.ones(2, requires_grad=True), array=np.arange(3),
                      scalar=np.float32(1.5), npint=np.int64(4), nested=[(1, 2.5, None), {"k": b"\x01", "e": b""}, {1, 2}],
                      dtype=somanet.float16, c=3 - 1j, big=2 ** 80, neg=-(2 ** 40), text="naïve", again=p)
    obj._metadata = {"": {"version": 1}}
    loaded = _torch_load(_somanet_bytes(obj))
    assert type(loaded) is OrderedDict and list(loaded) == list(obj) and loaded._metadata == obj._metadata
    assert isinstance(loaded["p"], torch.nn.Parameter) and loaded["p"].requires_grad
    assert isinstance(loaded["frozen"], torch.nn.Parameter) and not loaded["frozen"].requires_grad
    assert loaded["again"] is loaded["p"]
    assert loaded["grad"].requires_grad and torch.equal(loaded["array"], torch.arange(3))
    assert loaded["scalar"] == 1.5 and type(loaded["scalar"]) is float and loaded["npint"] == 4
    assert loaded["nested"] == [(1, 2.5, None), {"k": b"\x01", "e": b""}, {1, 2}]
    assert loaded["dtype"] is torch.float16 and loaded["c"] == 3 - 1j
    assert loaded["big"] == 2 ** 80 and loaded["neg"] == -(2 ** 40) and loaded["text"] == "naïve"


def test_somanet_model_and_optimizer_state_round_trip(tmp_path):
    somanet.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2))
    opt = optim.Adam(model.parameters(), lr=0.01)
    x = somanet.randn(8, 4)
    for _ in range(2):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    save({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "ckpt.pt")
    somanet.manual_seed(1)
    fresh = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2))
    fresh_opt = optim.Adam(fresh.parameters(), lr=0.01)
    ckpt = load(tmp_path / "ckpt.pt")
    fresh.load_state_dict(ckpt["model"])
    fresh_opt.load_state_dict(ckpt["optimizer"])
    model.eval()
    fresh.eval()
    np.testing.assert_array_equal(fresh(x).array, model(x).array)
    for m, o in ((model, opt), (fresh, fresh_opt)):
        m.train()
        o.zero_grad()
        m(x).pow(2).mean().backward()
        o.step()
    for a, b in zip(model.parameters(), fresh.parameters()):
        np.testing.assert_array_equal(a.array, b.array)


def test_somanet_optimizer_state_loads_in_torch():
    torch = torch_or_skip()
    w = somanet.tensor(np.ones((2, 2), np.float32), requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    w.grad = somanet.ones(2, 2)
    opt.step()
    loaded = _torch_load(_somanet_bytes(opt.state_dict()))
    state = loaded["state"][0]
    assert state["step"].dtype == torch.float32 and state["step"].item() == 1.0
    np.testing.assert_array_equal(state["exp_avg"].numpy(), opt.state[w]["exp_avg"])
    assert loaded["param_groups"][0]["params"] == [0]


def test_round_trips_both_ways():
    torch = torch_or_skip()
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    original = {"x": x, "t": x.t(), "p": torch.nn.Parameter(torch.ones(2)), "i": torch.tensor([1, 2, 3]),
                "u16": torch.tensor([1, 65535], dtype=torch.uint16), "meta": ("a", [1.5, None])}
    through_somanet = _torch_load(_somanet_bytes(load(io.BytesIO(_torch_bytes(original)))))
    for name in ("x", "t", "p", "i", "u16"):
        assert torch.equal(through_somanet[name], original[name])
        assert through_somanet[name].stride() == original[name].stride()
    assert isinstance(through_somanet["p"], torch.nn.Parameter) and through_somanet["meta"] == original["meta"]
    assert through_somanet["x"].untyped_storage().data_ptr() == through_somanet["t"].untyped_storage().data_ptr()
    ours = {"a": somanet.Tensor(np.arange(4, dtype=np.int8)), "p": nn.Parameter(somanet.ones(3)), "n": [None, 2]}
    back = load(io.BytesIO(_torch_bytes(_torch_load(_somanet_bytes(ours)))))
    _assert_same(back["a"], ours["a"])
    assert isinstance(back["p"], nn.Parameter) and back["n"] == [None, 2]


def test_somanet_round_trip_keeps_types_and_sharing():
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    obj = {"x": somanet.Tensor(base), "t": somanet.Tensor(base.T), "p": nn.Parameter(somanet.ones(2)),
           "c": somanet.Tensor(np.array([1 + 1j], np.complex64)), "s": {1, 2}, "od": OrderedDict(a=1), "e": (),
           "arr": np.ones(2, np.int32)}
    loaded = load(io.BytesIO(_somanet_bytes(obj)))
    _assert_same(loaded["t"], obj["t"])
    assert np.shares_memory(loaded["x"].array, loaded["t"].array)
    assert isinstance(loaded["p"], nn.Parameter) and loaded["p"].requires_grad
    assert loaded["c"].dtype == np.complex64 and loaded["s"] == {1, 2} and loaded["e"] == ()
    assert type(loaded["od"]) is OrderedDict and type(loaded["arr"]) is somanet.Tensor
    assert loaded["x"].array.flags.writeable


def test_files_are_deterministic_and_aligned():
    obj = {"a": somanet.ones(3), "b": somanet.zeros(5, dtype=somanet.int64)}
    data = _somanet_bytes(obj)
    assert data == _somanet_bytes(obj)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert names[0] == "archive/data.pkl" and "archive/version" in names
        assert "archive/.data/serialization_id" in names and zf.read("archive/byteorder") == b"little"
        for info in zf.infolist():
            if "/data/" in info.filename:
                header = data[info.header_offset:info.header_offset + 30]
                name_len, extra_len = struct.unpack("<HH", header[26:30])
                assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0


# --------------------------------------------------------------------------- files, paths and map_location
def test_paths_and_file_objects(tmp_path):
    obj = {"w": somanet.ones(2)}
    save(obj, str(tmp_path / "a.pt"))
    save(obj, tmp_path / "b.pt")
    with open(tmp_path / "c.pt", "wb") as fh:
        save(obj, fh)

    class Stream:  # a write-only, non-seekable stream
        def __init__(self):
            self.parts = []

        def write(self, data):
            self.parts.append(bytes(data))

    stream = Stream()
    save(obj, stream)
    for source in (str(tmp_path / "a.pt"), tmp_path / "b.pt", open(tmp_path / "c.pt", "rb"),
                   io.BytesIO(b"".join(stream.parts))):
        _assert_same(load(source)["w"], obj["w"])
        if hasattr(source, "close"):
            source.close()


def test_atomic_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save({"v": 1}, path)
    save({"v": 2}, path)
    assert os.listdir(tmp_path) == ["model.pt"] and load(path) == {"v": 2}
    from somanet import serialization

    def broken(fh, data_pkl, storages):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(serialization, "_write_archive", broken)
    with pytest.raises(OSError, match="disk full"):
        save({"v": 3}, path)
    assert os.listdir(tmp_path) == ["model.pt"] and load(path) == {"v": 2}


def test_map_location():
    torch = torch_or_skip()
    data = _somanet_bytes({"w": somanet.ones(2)})
    for ml in (None, "cpu", "cpu:0", torch.device("cpu"), {"cpu": "cpu"}, lambda storage, location: storage,
               lambda storage, location: None, lambda storage, location: storage.cpu()):
        _assert_same(load(io.BytesIO(data), map_location=ml)["w"], somanet.ones(2))
    for ml in ("cuda", "cuda:1", torch.device("mps"), {"cpu": "cuda:0"}, lambda storage, location: "cuda",
               lambda storage, location: storage.cuda()):
        with pytest.raises(RuntimeError, match=r"somanet\.load: cannot load tensors onto device '(cuda|mps)"):
            load(io.BytesIO(data), map_location=ml)
    with pytest.raises(ValueError, match="unknown device"):
        load(io.BytesIO(data), map_location="gpu?")
    with pytest.raises(TypeError, match="map_location"):
        load(io.BytesIO(data), map_location=3)
    # A checkpoint saved from a GPU: the storages are tagged 'cuda:0'; somanet puts them on the CPU.
    records = _records(data)
    records["data.pkl"] = records["data.pkl"].replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
    gpu_file = _archive(records)
    for ml in (None, "cpu", {"cuda:0": "cpu"}):
        _assert_same(load(io.BytesIO(gpu_file), map_location=ml)["w"], somanet.ones(2))
    with pytest.raises(RuntimeError, match="'cuda:0'"):
        load(io.BytesIO(gpu_file), map_location=lambda storage, location: location)


def test_weights_only_false_is_refused():
    data = _somanet_bytes([1])
    with pytest.raises(ValueError, match="weights_only=False is not supported"):
        load(io.BytesIO(data), weights_only=False)
    assert load(io.BytesIO(data), weights_only=None) == [1]


def test_big_endian_checkpoints_are_converted():
    values = np.array([[1.5, -2.0], [3.25, 1e-3]], dtype=np.float32)
    records = _records(_somanet_bytes({"w": somanet.Tensor(values), "i": somanet.Tensor(np.array([1, -300]))}))
    for key in ("data/0", "data/1"):
        itemsize = 4 if key == "data/0" else 8
        records[key] = np.frombuffer(records[key], f"<i{itemsize}").astype(f">i{itemsize}").tobytes()
    records["byteorder"] = b"big"
    loaded = load(io.BytesIO(_archive(records)))
    np.testing.assert_array_equal(loaded["w"].array, values)
    np.testing.assert_array_equal(loaded["i"].array, [1, -300])
    assert loaded["w"].dtype.isnative


# --------------------------------------------------------------------------- refused objects on save
def test_saving_a_module_or_other_objects_is_refused(tmp_path):
    model = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"whole Linear module.*state_dict\(\)"):
        save(model, tmp_path / "m.pt")
    with pytest.raises(TypeError, match=r"obj\['layers'\]\[1\], a whole Linear module"):
        save({"layers": [1, model]}, tmp_path / "m.pt")
    with pytest.raises(TypeError, match=r"Adam object: save Adam\.state_dict\(\)"):
        save(optim.Adam(model.parameters()), tmp_path / "m.pt")
    with pytest.raises(TypeError, match="only tensors"):
        save({"f": lambda: 0}, tmp_path / "m.pt")
    with pytest.raises(TypeError, match="frozenset"):
        save(frozenset([1]), tmp_path / "m.pt")
    with pytest.raises(TypeError, match="no PyTorch counterpart"):
        save(np.array(["a"]), tmp_path / "m.pt")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- crafted and foreign files
def test_reduce_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"w": _Marker(marker)}, protocol=2)
    files = {"zip": _archive({"data.pkl": payload, "byteorder": b"little"}),
             "plain pickle": payload,
             "legacy": b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {})) + payload}
    for kind, data in files.items():
        path = tmp_path / f"{kind}.pt"
        path.write_bytes(data)
        with pytest.raises(UnsafeLoadError, match=rf"refusing to load '{os.system.__module__}\.system' from "
                                                  rf"'.*{kind}\.pt': only tensors, storages, OrderedDicts"):
            load(path)
        assert not marker.exists()
    assert issubclass(UnsafeLoadError, pickle.UnpicklingError)


def test_reduce_payload_saved_by_torch_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    for kw in ({}, {"_use_new_zipfile_serialization": False}):
        data = _torch_bytes({"w": _Marker(marker)}, **kw)
        with pytest.raises(UnsafeLoadError, match="system"):
            load(io.BytesIO(data))
    assert not marker.exists()


def test_global_eval_and_other_tricks_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w')".encode()
    evil_eval = b"\x80\x02c__builtin__\neval\nX" + struct.pack("<I", len(code)) + code + b"\x85R."
    with pytest.raises(UnsafeLoadError, match="'builtins.eval'"):
        load(io.BytesIO(_archive({"data.pkl": evil_eval})))
    # Allowed names cannot be abused either: state set on a rebuild function, a tensor or an OrderedDict,
    # a persistent id that is not a storage, a Python class instantiated through NEWOBJ.
    tensor_pkl = _records(_somanet_bytes(somanet.ones(2)))["data.pkl"]
    tricks = {
        "function state": b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}X\x01\x00\x00\x00aK\x01sb.",
        "tensor state": tensor_pkl[:-1] + b"N}X\x04\x00\x00\x00gradK\x01s\x86b.",
        "dict attribute": b"\x80\x02ccollections\nOrderedDict\n)R}X\x04\x00\x00\x00keysK\x01sb.",
        "module pid": b"\x80\x02(X\x06\x00\x00\x00moduleNNNtQ.",
        "string pid": b"\x80\x02X\x01\x00\x00\x000Q.",
        "newobj": b"\x80\x02ccollections\nOrderedDict\n)\x81.",
        "bare storage": b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00"
                        b"\x00cpuK\x02tQ.",
        "bad bytes codec": b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00utf_7\x86R.",
    }
    records = _records(_somanet_bytes(somanet.ones(2)))
    reasons = {"function state": "set state on 'torch._utils._rebuild_tensor_v2'",
               "tensor state": "writes into a tensor's internals", "dict attribute": "hide one of its methods",
               "module pid": "whole model", "string pid": "persistent id", "newobj": "NEWOBJ",
               "bare storage": "a bare storage", "bad bytes codec": "_codecs.encode"}
    for name, pkl in tricks.items():
        data = _archive({**records, "data.pkl": pkl})
        with pytest.raises((UnsafeLoadError, CheckpointFormatError), match=reasons[name]):
            load(io.BytesIO(data))
    assert not marker.exists()


def test_entries_pointing_outside_the_archive_are_refused():
    records = _records(_somanet_bytes({"w": somanet.ones(2)}))
    for bad in ("../evil", "/etc/evil", "archive/../../evil"):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in records.items():
                zf.writestr("archive/" + name, data)
            zf.writestr(bad, b"x")
        with pytest.raises(CheckpointFormatError, match="outside the archive"):
            load(io.BytesIO(buf.getvalue()))
    escaping = records["data.pkl"].replace(b"X\x01\x00\x00\x000", b"X\x09\x00\x00\x00../../x/0")
    with pytest.raises(CheckpointFormatError, match="not a valid storage key"):
        load(io.BytesIO(_archive({**records, "data.pkl": escaping})))


def test_truncated_and_corrupt_files_are_refused():
    torch = torch_or_skip()
    state = torch.nn.Linear(20, 30).state_dict()
    for data in (_torch_bytes(state), _somanet_bytes({"w": somanet.ones(200)}),
                 _torch_bytes(state, _use_new_zipfile_serialization=False)):
        for cut in (len(data) // 3, len(data) - 10, 40):
            with pytest.raises(CheckpointFormatError, match=r"somanet\.load: .*(truncated|corrupt|not a valid zip)"):
                load(io.BytesIO(data[:cut]))
    data = bytearray(_somanet_bytes({"w": somanet.ones(200)}))
    index = bytes(data).index(np.ones(1, np.float32).tobytes() * 4)
    data[index] ^= 0xFF  # a flipped byte in a storage: the record's CRC-32 no longer matches
    with pytest.raises(CheckpointFormatError, match="CRC"):
        load(io.BytesIO(bytes(data)))
    records = _records(_somanet_bytes({"w": somanet.ones(4)}))
    records["data.pkl"] = records["data.pkl"].replace(b"K\x04\x85", b"K\x09\x85")  # shape (9,) over 4 floats
    with pytest.raises(CheckpointFormatError, match="reaches past the end of its storage"):
        load(io.BytesIO(_archive(records)))


def test_files_that_are_not_checkpoints_are_refused(tmp_path):
    npz = io.BytesIO()
    np.savez(npz, a=np.ones(2))
    cases = {"text": b"hello, world\n", "empty": b"", "random": os.urandom(64) + b"\x00",
             "pickle": pickle.dumps({"a": 1}, protocol=2), "npz": npz.getvalue(),
             "torchscript": _archive({"constants.pkl": b"", "data.pkl": b""}, prefix="")}
    messages = {"text": "not a checkpoint", "empty": "is empty", "random": "not a checkpoint",
                "pickle": "wrong magic number", "npz": "not a checkpoint", "torchscript": "not a checkpoint"}
    for name, data in cases.items():
        if name == "random":
            data = b"\x81" + data
        with pytest.raises(CheckpointFormatError, match=messages[name]):
            load(io.BytesIO(data))
    ts = _archive({"constants.pkl": b"", "code/x.py": b""})
    with pytest.raises(CheckpointFormatError, match="TorchScript"):
        load(io.BytesIO(ts))
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.pt")
