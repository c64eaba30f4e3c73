"""Positional encodings: sinusoidal and learned tables, rotary embedding (PyTorch has none, so they are
checked against the formulas written in NumPy, PyTorch ops where handy, and float64 finite differences)."""
import math

import numpy as np
import pytest

import somanet
import somanet.nn as nn
from somanet.autograd import gradcheck
from somanet.ops import attention as A
from reference import assert_close, torch_or_skip


def test_sinusoidal_table_matches_formula_and_torch_ops():
    torch = torch_or_skip()
    d, n = 10, 50
    pe = nn.SinusoidalPositionalEncoding(d, max_len=n).pe.array
    assert pe.dtype == np.float32 and pe.shape == (n, d)
    p, i = 7, 3
    assert pe[p, 2 * i] == pytest.approx(math.sin(p / 10000 ** (2 * i / d)), abs=1e-6)
    assert pe[p, 2 * i + 1] == pytest.approx(math.cos(p / 10000 ** (2 * i / d)), abs=1e-6)
    # The well-known formulation with PyTorch ops, in float64.
    position = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    ref = torch.zeros(n, d, dtype=torch.float64)
    ref[:, 0::2] = torch.sin(position * div_term)
    ref[:, 1::2] = torch.cos(position * div_term)
    assert_close(pe, ref.numpy().astype(np.float32), rtol=0, atol=1e-6)
    odd = nn.SinusoidalPositionalEncoding(7, max_len=5).pe.array
    assert odd.shape == (5, 7) and odd[3, 6] == pytest.approx(math.sin(3 / 10000 ** (6 / 7)), abs=1e-6)


@pytest.mark.parametrize("batch_first", [False, True])
def test_sinusoidal_adds_table_with_offset(batch_first):
    rng = np.random.default_rng(0)
    enc = nn.SinusoidalPositionalEncoding(6, max_len=20, batch_first=batch_first)
    x = rng.standard_normal((3, 5, 6) if batch_first else (5, 3, 6)).astype(np.float32)
    xt = somanet.tensor(x, requires_grad=True)
    out = enc(xt, offset=4)
    table = enc.pe.array[4:9]
    expected = x + (table[None] if batch_first else table[:, None])
    assert_close(out, expected)
    out.sum().backward()
    assert_close(xt.grad, np.ones_like(x))
    single = x[0] if batch_first else x[:, 0]
    assert_close(enc(somanet.tensor(single)), single + enc.pe.array[:5])
    assert list(enc.state_dict()) == []


def test_learned_encoding_gradient_reaches_used_rows_only():
    rng = np.random.default_rng(1)
    enc = nn.LearnedPositionalEncoding(10, 4, batch_first=True)
    assert [n for n, _ in enc.named_parameters()] == ["weight"]
    assert 0.01 < enc.weight.array.std() < 0.03
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    out = enc(somanet.tensor(x), offset=2)
    assert_close(out, x + enc.weight.array[2:5])
    g = rng.standard_normal((2, 3, 4)).astype(np.float32)
    out.backward(somanet.tensor(g))
    expected = np.zeros((10, 4), np.float32)
    expected[2:5] = g.sum(0)
    assert_close(enc.weight.grad, expected)


def test_gradcheck_add_positions():
    rng = np.random.default_rng(2)
    x = somanet.tensor(rng.standard_normal((3, 2, 4)), requires_grad=True)
    table = somanet.tensor(rng.standard_normal((6, 4)), requires_grad=True)
    for axis in (0, 1):
        assert gradcheck(lambda x, t: A.AddPositions.apply(x, t, offset=1, time_axis=axis), [x, table])


def test_positional_errors():
    enc = nn.SinusoidalPositionalEncoding(6, max_len=8)
    with pytest.raises(ValueError, match=r"positions 5..9 exceed max_len=8"):
        enc(somanet.randn(5, 2, 6), offset=5)
    with pytest.raises(RuntimeError, match=r"expected input \(L, N, 6\)"):
        enc(somanet.randn(5, 2, 7))
    with pytest.raises(ValueError, match="dim must be a positive even number"):
        nn.RotaryPositionalEmbedding(5)


# --------------------------------------------------------------------------- rotary
def _rope_np(x, dim, offset=0, base=10000.0, interleaved=True):
    """RoPE written out pair by pair in float64."""
    L = x.shape[-2]
    out = x.astype(np.float64).copy()
    for p in range(L):
        for i in range(dim // 2):
            theta = (offset + p) * base ** (-2 * i / dim)
            a, b = (2 * i, 2 * i + 1) if interleaved else (i, i + dim // 2)
            x1, x2 = x[..., p, a].astype(np.float64), x[..., p, b].astype(np.float64)
            out[..., p, a] = x1 * math.cos(theta) - x2 * math.sin(theta)
            out[..., p, b] = x1 * math.sin(theta) + x2 * math.cos(theta)
    return out


@pytest.mark.parametrize("interleaved", [True, False])
@pytest.mark.parametrize("dim", [8, 4])
def test_rotary_matches_pairwise_formula(interleaved, dim):
    rng = np.random.default_rng(3)
    rope = nn.RotaryPositionalEmbedding(dim, max_seq_len=32, interleaved=interleaved)
    x = rng.standard_normal((2, 3, 5, 8)).astype(np.float32)
    out = rope(somanet.tensor(x), offset=6)
    assert out.dtype == np.float32
    assert_close(out, _rope_np(x, dim, 6, interleaved=interleaved).astype(np.float32), atol=2e-6)
    if dim < 8:
        assert np.array_equal(out.array[..., dim:], x[..., dim:])


def test_rotary_scores_depend_only_on_relative_position():
    rng = np.random.default_rng(4)
    rope = nn.RotaryPositionalEmbedding(8, max_seq_len=64)
    q = rng.standard_normal(8).astype(np.float32)
    k = rng.standard_normal(8).astype(np.float32)

    def score(m, n):
        qm = rope(somanet.tensor(np.tile(q, (m + 1, 1)))).array[m]
        kn = rope(somanet.tensor(np.tile(k, (n + 1, 1)))).array[n]
        return float(qm @ kn)

    assert score(10, 7) == pytest.approx(score(33, 30), abs=1e-4)
    assert score(5, 5) == pytest.approx(float(q @ k), abs=1e-4)


def test_rotary_gradient_is_inverse_rotation_and_gradcheck():
    rng = np.random.default_rng(5)
    rope = nn.RotaryPositionalEmbedding(6, interleaved=False)
    x = somanet.tensor(rng.standard_normal((2, 4, 6)), requires_grad=True)
    assert gradcheck(lambda x: rope(x, offset=2), [x])
    # A rotation preserves norms, so the gradient of ||R x||^2 / 2 is x itself.
    x32 = somanet.tensor(rng.standard_normal((3, 6)).astype(np.float32), requires_grad=True)
    y = rope(x32)
    (y * y).sum().backward()
    assert_close(x32.grad, 2 * x32.array, atol=1e-5)
