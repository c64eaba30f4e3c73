"""default_collate / default_convert: structures, dtypes (against PyTorch where they agree) and errors."""
import collections

import numpy as np
import pytest

import somanet
from somanet.data import default_collate, default_convert
from reference import torch_or_skip

Point = collections.namedtuple("Point", "x y")


def test_numbers_and_arrays_dtypes():
    assert default_collate([1, 2, 3]).dtype == np.int64
    floats = default_collate([0.5, 1.5])
    assert floats.dtype == np.float32  # somanet's default float; PyTorch would give float64
    np.testing.assert_array_equal(floats.array, [0.5, 1.5])
    assert default_collate([True, False]).dtype == np.bool_
    u8 = default_collate([np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8)])
    assert u8.shape == (2, 2, 2) and u8.dtype == np.uint8
    f64 = default_collate([np.zeros(3), np.ones(3)])
    assert f64.dtype == np.float64  # NumPy arrays keep their dtype, as in PyTorch
    assert default_collate([np.float32(1), np.float32(2)]).dtype == np.float32
    t = default_collate([somanet.tensor([1.0, 2.0]), somanet.tensor([3.0, 4.0])])
    np.testing.assert_array_equal(t.array, [[1, 2], [3, 4]])
    assert default_collate(["a", "b"]) == ["a", "b"]


def test_nested_structures_match_pytorch():
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    batch = [{"image": rng.random((3, 4, 4)).astype(np.float32), "meta": (i, [i * 2, i * 3]),
              "point": Point(np.float32(i), i), "name": f"s{i}"} for i in range(5)]
    ours = default_collate(batch)
    ref = torch.utils.data.default_collate(batch)
    assert set(ours) == set(ref)
    np.testing.assert_array_equal(ours["image"].array, ref["image"].numpy())
    assert isinstance(ours["meta"], list) and isinstance(ref["meta"], list)
    np.testing.assert_array_equal(ours["meta"][0].array, ref["meta"][0].numpy())
    assert isinstance(ours["meta"][1], list) and len(ours["meta"][1]) == 2
    np.testing.assert_array_equal(ours["meta"][1][1].array, ref["meta"][1][1].numpy())
    assert isinstance(ours["point"], Point)
    np.testing.assert_array_equal(ours["point"].y.array, ref["point"].y.numpy())
    assert ours["point"].x.dtype == np.float32
    assert ours["name"] == ref["name"]


def test_tuple_samples_become_list_of_batches():
    out = default_collate([(np.zeros(2, np.float32), 1), (np.ones(2, np.float32), 0)])
    assert isinstance(out, list) and len(out) == 2
    assert out[0].shape == (2, 2) and out[1].array.tolist() == [1, 0]


def test_collate_errors_are_clear():
    with pytest.raises(RuntimeError, match="different shapes"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object(), object()])
    with pytest.raises(ValueError, match="empty"):
        default_collate([])


def test_default_convert():
    out = default_convert({"a": np.arange(3), "b": (np.zeros(2, np.float32), 5)})
    assert isinstance(out["a"], somanet.Tensor) and out["a"].dtype == np.int64
    assert isinstance(out["b"], list) and isinstance(out["b"][0], somanet.Tensor) and out["b"][1] == 5
