"""Tensor creation, dtypes, attributes, conversion and printing."""
import numpy as np
import pytest

import somanet
from reference import torch_or_skip, assert_close


def test_default_dtypes():
    assert somanet.tensor(1.0).dtype == np.float32
    assert somanet.tensor([1.0, 2.0]).dtype == np.float32
    assert somanet.tensor([1, 2]).dtype == np.int64
    assert somanet.tensor([True]).dtype == np.bool_
    assert somanet.tensor(np.ones(2, dtype=np.float64)).dtype == np.float64  # ndarray keeps its dtype
    assert somanet.tensor([1, 2], dtype=somanet.float16).dtype == np.float16
    for fn in (somanet.zeros, somanet.ones, somanet.empty, somanet.rand, somanet.randn):
        assert fn(2, 3).dtype == np.float32
        assert fn((2, 3)).shape == (2, 3)
    assert somanet.full((2,), 1.5).dtype == np.float32
    assert somanet.full((2,), 7).dtype == np.int64
    assert somanet.arange(5).dtype == np.int64
    assert somanet.arange(0.0, 1.0, 0.1).dtype == np.float32
    assert somanet.linspace(0, 1, 5).dtype == np.float32
    assert somanet.eye(3).dtype == np.float32
    assert somanet.randint(0, 10, (3,)).dtype == np.int64
    assert somanet.randperm(5).dtype == np.int64


def test_creation_matches_torch():
    torch = torch_or_skip()
    assert_close(somanet.arange(0.0, 1.0, 0.1), torch.arange(0.0, 1.0, 0.1))
    assert_close(somanet.arange(2, 11, 3), torch.arange(2, 11, 3))
    assert_close(somanet.linspace(-1, 1, 7), torch.linspace(-1, 1, 7))
    assert_close(somanet.eye(3, 4), torch.eye(3, 4))
    assert_close(somanet.zeros_like(somanet.ones(2, dtype=somanet.float64)), torch.zeros(2, dtype=torch.float64))
    assert_close(somanet.full_like(somanet.ones(2, 2), 3.0), torch.full((2, 2), 3.0))
    assert_close(somanet.ones_like(somanet.tensor([1, 2])), torch.ones(2, dtype=torch.int64))


def test_tensor_copies_but_from_numpy_shares():
    a = np.zeros(3, dtype=np.float32)
    t = somanet.tensor(a)
    a[0] = 1
    assert t.array[0] == 0
    s = somanet.from_numpy(a)
    a[1] = 2
    assert s.array[1] == 2
    assert somanet.as_tensor(a).array is a


def test_seeded_randomness_is_reproducible():
    somanet.manual_seed(123)
    a = (somanet.randn(4), somanet.rand(3), somanet.randint(0, 9, (5,)), somanet.randperm(6))
    somanet.manual_seed(123)
    b = (somanet.randn(4), somanet.rand(3), somanet.randint(0, 9, (5,)), somanet.randperm(6))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.array, y.array)
    somanet.manual_seed(124)
    assert not np.array_equal(somanet.randn(4).array, a[0].array)
    g = somanet.Generator(5)
    r1 = somanet.randn(3, generator=g)
    g.manual_seed(5)
    np.testing.assert_array_equal(somanet.randn(3, generator=g).array, r1.array)
    state = somanet.get_rng_state()
    x1 = somanet.rand(3)
    somanet.set_rng_state(state)
    np.testing.assert_array_equal(somanet.rand(3).array, x1.array)


def test_attributes_and_conversion():
    t = somanet.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert t.shape == (2, 3) and t.ndim == 2 and t.size() == (2, 3) and t.size(1) == 3 and t.numel() == 6
    assert t.T.shape == (3, 2)
    assert somanet.ones(2, 3, 4).mT.shape == (2, 4, 3)
    assert t.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert somanet.tensor(2.5).item() == 2.5
    assert isinstance(t.numpy(), np.ndarray)
    assert t.to(somanet.float64).dtype == np.float64
    assert t.long().dtype == np.int64 and t.long().float().dtype == np.float32
    c = t.clone()
    c.array[0, 0] = 9
    assert t.array[0, 0] == 1
    with pytest.raises(ValueError, match="one-element"):
        t.item()
    r = somanet.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        r.numpy()
    assert r.detach().numpy().dtype == np.float32


def test_cast_between_floats_is_differentiable():
    x = somanet.ones(2, requires_grad=True)
    y = x.double() * 2
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_repr_looks_like_torch():
    assert repr(somanet.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(somanet.tensor([1, 2])) == "tensor([1, 2])"
    assert "requires_grad=True" in repr(somanet.ones(2, requires_grad=True))
    assert "grad_fn=<MulBackward>" in repr(somanet.ones(2, requires_grad=True) * 2)
    assert "dtype=somanet.float64" in repr(somanet.ones(2, dtype=somanet.float64))


def test_multinomial_and_bernoulli():
    somanet.manual_seed(0)
    w = somanet.tensor([0.0, 1.0, 3.0])
    draws = somanet.multinomial(w, 2000, replacement=True)
    counts = np.bincount(draws.array, minlength=3)
    assert counts[0] == 0 and 0.65 < counts[2] / 2000 < 0.85
    no_rep = somanet.multinomial(somanet.ones(5), 5)
    assert sorted(no_rep.tolist()) == [0, 1, 2, 3, 4]
    b = somanet.bernoulli(somanet.full((1000,), 0.3))
    assert b.dtype == np.float32 and 0.2 < b.array.mean() < 0.4
