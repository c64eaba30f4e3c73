"""Scaled dot-product attention, MultiheadAttention (against PyTorch) and Bahdanau/Luong attention
(against hand-written NumPy and float64 finite differences)."""
import math

import numpy as np
import pytest

import somanet
import somanet.nn as nn
import somanet.nn.functional as F
from somanet.autograd import gradcheck
from somanet.ops import attention as A
from reference import assert_close, compare, compare_modules, copy_state, torch_or_skip


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _tensor_like(m, arr):
    """The mask in the framework of module/function ``m``."""
    torch = torch_or_skip()
    if arr is None:
        return None
    return torch.tensor(arr) if m == "torch" or isinstance(m, torch.nn.Module) else somanet.tensor(arr)


# --------------------------------------------------------------------------- scaled_dot_product_attention
def _sdpa_pair(**kw):
    torch = torch_or_skip()
    mask = kw.pop("attn_mask", None)
    mask_grad = kw.pop("mask_grad", False)

    def s_fn(q, k, v, *m):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m[0] if m else _tensor_like("s", mask), **kw)

    def t_fn(q, k, v, *m):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m[0] if m else
                                                                _tensor_like("torch", mask), **kw)
    return s_fn, t_fn


@pytest.mark.parametrize("case", ["plain", "bool_2d", "bool_broadcast", "float", "causal", "causal_rect", "scale",
                                  "three_dims"])
def test_sdpa_matches_torch(case):
    rng = np.random.default_rng(0)
    N, h, L, S, E, Ev = 2, 3, 4, 6, 5, 7
    q, k, v = _randn(rng, N, h, L, E), _randn(rng, N, h, S, E), _randn(rng, N, h, S, Ev)
    kw = {}
    if case == "bool_2d":
        kw["attn_mask"] = rng.random((L, S)) > 0.4
        kw["attn_mask"][:, 0] = True
    elif case == "bool_broadcast":
        kw["attn_mask"] = rng.random((N, 1, L, S)) > 0.3
        kw["attn_mask"][..., 1] = True
    elif case == "float":
        kw["attn_mask"] = _randn(rng, h, L, S)
    elif case == "causal":
        k, v = _randn(rng, N, h, L, E), _randn(rng, N, h, L, Ev)
        kw["is_causal"] = True
    elif case == "causal_rect":
        kw["is_causal"] = True
    elif case == "scale":
        kw["scale"] = 0.3
    elif case == "three_dims":
        q, k, v = q[0], k[0], v[0]
    s_fn, t_fn = _sdpa_pair(**kw)
    compare(s_fn, t_fn, q, k, v)


def test_sdpa_float_mask_gradient_matches_torch():
    rng = np.random.default_rng(1)
    q, k, v = _randn(rng, 2, 3, 4, 5), _randn(rng, 2, 3, 6, 5), _randn(rng, 2, 3, 6, 5)
    mask = _randn(rng, 1, 3, 4, 6)
    s_fn, t_fn = _sdpa_pair()
    compare(s_fn, t_fn, q, k, v, mask)


def test_sdpa_fully_masked_rows_give_zeros_like_torch():
    rng = np.random.default_rng(2)
    q, k, v = _randn(rng, 2, 4, 3), _randn(rng, 2, 5, 3), _randn(rng, 2, 5, 3)
    mask = np.ones((4, 5), bool)
    mask[2] = False
    out = compare(*_sdpa_pair(attn_mask=mask), q, k, v)
    assert np.all(out.array[:, 2] == 0)
    fmask = np.zeros((4, 5), np.float32)
    fmask[1] = -np.inf
    out = F.scaled_dot_product_attention(somanet.tensor(q), somanet.tensor(k), somanet.tensor(v),
                                         attn_mask=somanet.tensor(fmask))
    assert np.all(out.array[:, 1] == 0) and np.isfinite(out.array).all()


def test_sdpa_grouped_query_attention_matches_torch():
    rng = np.random.default_rng(3)
    q, k, v = _randn(rng, 2, 4, 3, 5), _randn(rng, 2, 2, 6, 5), _randn(rng, 2, 2, 6, 5)
    compare(*_sdpa_pair(enable_gqa=True, is_causal=True), q, k, v)


def test_sdpa_dtypes_and_errors():
    q = somanet.randn(2, 3, 4)
    assert F.scaled_dot_product_attention(q, q, q).dtype == np.float32
    with pytest.raises(RuntimeError, match=r"same feature size, got query \(2, 3, 4\) and key \(2, 3, 5\)"):
        F.scaled_dot_product_attention(q, somanet.randn(2, 3, 5), q)
    with pytest.raises(RuntimeError, match="key and value must have the same sequence length"):
        F.scaled_dot_product_attention(q, q, somanet.randn(2, 2, 4))
    with pytest.raises(RuntimeError, match=r"attn_mask of shape \(2, 2\) does not broadcast"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=somanet.ones(2, 2, dtype=somanet.bool))
    with pytest.raises(RuntimeError, match="same dtype"):
        F.scaled_dot_product_attention(q, q, somanet.tensor(np.zeros((2, 3, 4))))
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when is_causal=True"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=somanet.ones(3, 3, dtype=somanet.bool), is_causal=True)


def test_sdpa_dropout_keeps_expectation_and_is_seeded():
    somanet.manual_seed(0)
    q = somanet.randn(4, 8, 16, 8)
    ref = F.scaled_dot_product_attention(q, q, q).array
    outs = np.stack([F.scaled_dot_product_attention(q, q, q, dropout_p=0.3).array for _ in range(200)])
    assert not np.allclose(outs[0], outs[1])
    # Inverted dropout: the average over many draws approaches the output without dropout.
    assert np.abs(outs.mean(0) - ref).mean() < 0.03
    somanet.manual_seed(5)
    a = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5).array
    somanet.manual_seed(5)
    b = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5).array
    assert np.array_equal(a, b)


@pytest.mark.parametrize("mask_kind", [None, "bool", "float", "causal"])
def test_gradcheck_sdpa(mask_kind):
    rng = np.random.default_rng(4)
    q = somanet.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    k = somanet.tensor(rng.standard_normal((2, 5, 4)), requires_grad=True)
    v = somanet.tensor(rng.standard_normal((2, 5, 3)), requires_grad=True)
    inputs = [q, k, v]
    kw = {}
    if mask_kind == "bool":
        m = rng.random((3, 5)) > 0.3
        m[:, 0] = True
        kw["attn_mask"] = somanet.tensor(m)
    elif mask_kind == "causal":
        kw["is_causal"] = True
    if mask_kind == "float":
        inputs.append(somanet.tensor(rng.standard_normal((1, 3, 5)), requires_grad=True))
        assert gradcheck(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), inputs)
    else:
        assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw), inputs)


def test_gradcheck_attention_with_weights_output():
    """The MultiheadAttention path returns (output, head-averaged weights); both carry gradient."""
    rng = np.random.default_rng(5)
    q = somanet.tensor(rng.standard_normal((2, 2, 3, 4)), requires_grad=True)
    k = somanet.tensor(rng.standard_normal((2, 2, 5, 4)), requires_grad=True)
    v = somanet.tensor(rng.standard_normal((2, 2, 5, 3)), requires_grad=True)
    keep = rng.random((2, 1, 1, 5)) > 0.2
    keep[..., 0] = True
    for avg in (True, False):
        assert gradcheck(lambda q, k, v: A.ScaledDotProductAttention.apply(q, k, v, keep, need_weights=True,
                                                                           average_weights=avg), [q, k, v])


# --------------------------------------------------------------------------- MultiheadAttention
def _mha_pair(E=8, heads=2, **kw):
    torch = torch_or_skip()
    t = torch.nn.MultiheadAttention(E, heads, **kw)
    s = nn.MultiheadAttention(E, heads, **kw)
    copy_state(t, s)
    return s, t


def _mha_forward(kind, kpm=None, attn_mask=None, **call):
    def forward(m, q, *rest):
        if kind == "self":
            k = v = q
        elif kind == "kv":
            k = v = rest[0]
        else:
            k, v = rest
        return m(q, k, v, key_padding_mask=_tensor_like(m, kpm), attn_mask=_tensor_like(m, attn_mask), **call)
    return forward


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kind", ["self", "kv", "separate"])
def test_mha_matches_torch_with_weights(kind, batch_first):
    rng = np.random.default_rng(6)
    s, t = _mha_pair(batch_first=batch_first)
    N, L, S = 3, 4, 5

    def seq(n):
        return _randn(rng, N, n, 8) if batch_first else _randn(rng, n, N, 8)

    arrays = [seq(L)] + ([] if kind == "self" else [seq(S)] if kind == "kv" else [seq(S), seq(S)])
    out = compare_modules(s, t, *arrays, forward=_mha_forward(kind))
    assert out[1].shape == (N, L, L if kind == "self" else S)


@pytest.mark.parametrize("mask_type", ["bool", "float"])
@pytest.mark.parametrize("mask_dims", [2, 3])
def test_mha_masks_match_torch(mask_type, mask_dims):
    rng = np.random.default_rng(7)
    s, t = _mha_pair(E=8, heads=2)
    N, L, S = 3, 4, 5
    kpm = np.zeros((N, S), bool)
    kpm[0, 3:] = True
    kpm[2, 1] = True
    shape = (L, S) if mask_dims == 2 else (N * 2, L, S)
    if mask_type == "bool":
        attn = rng.random(shape) > 0.7
        attn[..., 0] = False
        kpm_arr = kpm
    else:
        attn = _randn(rng, *shape)
        kpm_arr = np.where(kpm, -np.inf, 0.0).astype(np.float32)
    compare_modules(s, t, _randn(rng, L, N, 8), _randn(rng, S, N, 8),
                    forward=_mha_forward("kv", kpm=kpm_arr, attn_mask=attn, average_attn_weights=False))


def test_mha_causal_hint_and_need_weights_false_match_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(8)
    s, t = _mha_pair(E=8, heads=4, batch_first=True)
    L = 5
    causal = np.triu(np.ones((L, L), bool), k=1)
    fwd = _mha_forward("self", attn_mask=causal, is_causal=True, need_weights=False)
    compare_modules(s, t, _randn(rng, 2, L, 8), forward=lambda m, x: fwd(m, x)[0])
    assert fwd(s, somanet.randn(2, L, 8))[1] is None
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        s(somanet.randn(2, L, 8), somanet.randn(2, L, 8), somanet.randn(2, L, 8), is_causal=True)


@pytest.mark.parametrize("kw", [{"add_bias_kv": True}, {"add_zero_attn": True},
                                {"add_bias_kv": True, "add_zero_attn": True, "bias": False},
                                {"kdim": 3, "vdim": 5}])
def test_mha_options_match_torch(kw):
    rng = np.random.default_rng(9)
    s, t = _mha_pair(**kw)
    N, L, S = 2, 4, 3
    kpm = np.zeros((N, S), bool)
    kpm[1, 2] = True
    attn = rng.random((L, S)) > 0.7
    attn[:, 0] = False
    arrays = [_randn(rng, L, N, 8), _randn(rng, S, N, kw.get("kdim", 8)), _randn(rng, S, N, kw.get("vdim", 8))]
    compare_modules(s, t, *arrays, forward=_mha_forward("separate", kpm=kpm, attn_mask=attn))


def test_mha_unbatched_matches_torch():
    rng = np.random.default_rng(10)
    s, t = _mha_pair(E=6, heads=3, batch_first=True)
    out = compare_modules(s, t, _randn(rng, 4, 6), _randn(rng, 5, 6), _randn(rng, 5, 6),
                          forward=_mha_forward("separate"))
    assert out[0].shape == (4, 6) and out[1].shape == (4, 5)


def test_mha_attention_dropout_drops_returned_weights():
    """In training, returned weights are the dropped and rescaled weights (PyTorch's semantics)."""
    rng = np.random.default_rng(11)
    mha = nn.MultiheadAttention(8, 2, dropout=0.5)
    x = somanet.tensor(_randn(rng, 6, 4, 8))
    mha.eval()
    _, w_eval = mha(x, x, x, average_attn_weights=False)
    mha.train()
    _, w_train = mha(x, x, x, average_attn_weights=False)
    dropped = w_train.array == 0
    assert 0.35 < dropped.mean() < 0.65
    np.testing.assert_allclose(w_train.array[~dropped], 2 * w_eval.array[~dropped], rtol=1e-5)


def test_mha_parameters_and_init_match_torch_layout():
    torch = torch_or_skip()
    for kw in ({}, {"kdim": 3, "vdim": 5}, {"add_bias_kv": True, "bias": False}):
        s = nn.MultiheadAttention(16, 4, **kw)
        t = torch.nn.MultiheadAttention(16, 4, **kw)
        assert [n for n, _ in s.named_parameters()] == [n for n, _ in t.named_parameters()]
        assert list(s.state_dict()) == list(t.state_dict())
        for (n, p), (_, tp) in zip(s.named_parameters(), t.named_parameters()):
            assert tuple(p.shape) == tuple(tp.shape), n
    s = nn.MultiheadAttention(16, 4)
    assert not np.any(s.in_proj_bias.array) and not np.any(s.out_proj.bias.array)
    bound = math.sqrt(6 / (16 + 48))
    assert np.abs(s.in_proj_weight.array).max() <= bound
    assert np.abs(s.in_proj_weight.array).max() > 0.9 * bound


def test_mha_errors():
    mha = nn.MultiheadAttention(8, 2)
    x = somanet.randn(4, 3, 8)
    with pytest.raises(ValueError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(8, 3)
    with pytest.raises(RuntimeError, match=r"expected query with last dim 8 .* got shape \(4, 3, 7\)"):
        mha(somanet.randn(4, 3, 7), x, x)
    with pytest.raises(RuntimeError, match=r"The shape of the 2D attn_mask is \(4, 5\), but should be \(4, 4\)"):
        mha(x, x, x, attn_mask=somanet.zeros(4, 5))
    with pytest.raises(RuntimeError, match=r"expecting key_padding_mask shape of \(3, 4\), but got \(4, 3\)"):
        mha(x, x, x, key_padding_mask=somanet.zeros(4, 3, dtype=somanet.bool))
    with pytest.raises(RuntimeError, match="different batch sizes"):
        mha(x, somanet.randn(4, 2, 8), somanet.randn(4, 2, 8))


# --------------------------------------------------------------------------- Bahdanau / Luong
def _softmax_np(s, keep=None):
    s = s.copy()
    if keep is not None:
        s = np.where(keep, s, -np.inf)
    s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(-1, keepdims=True)


def _bahdanau_np(m, q, k, v, keep):
    Wq, Wk, bk, va = (m.query_proj.weight.array, m.key_proj.weight.array, m.key_proj.bias.array,
                      m.score_proj.weight.array[0])
    e = np.tanh((q @ Wq.T)[:, :, None, :] + (k @ Wk.T + bk)[:, None, :, :])
    w = _softmax_np(e @ va, keep)
    return w @ v, w


def _luong_np(m, q, k, v, keep):
    if m.method == "dot":
        s = q @ k.transpose(0, 2, 1)
    elif m.method == "general":
        s = q @ (k @ m.key_proj.weight.array.T).transpose(0, 2, 1)
    else:
        W = m.concat_proj.weight.array
        L, S = q.shape[1], k.shape[1]
        both = np.concatenate([np.repeat(q[:, :, None, :], S, 2), np.repeat(k[:, None, :, :], L, 1)], -1)
        s = np.tanh(both @ W.T) @ m.score_proj.weight.array[0]
    w = _softmax_np(s, keep)
    return w @ v, w


@pytest.mark.parametrize("module", ["bahdanau", "dot", "general", "concat"])
def test_rnn_attention_matches_numpy_formula(module):
    rng = np.random.default_rng(12)
    N, L, S = 2, 3, 5
    if module == "bahdanau":
        m, ref = nn.BahdanauAttention(4, 6, 7), _bahdanau_np
        q, k = _randn(rng, N, L, 4), _randn(rng, N, S, 6)
    else:
        m, ref = nn.LuongAttention(4, 4 if module == "dot" else 6, method=module, hidden_size=5), _luong_np
        q, k = _randn(rng, N, L, 4), _randn(rng, N, S, 4 if module == "dot" else 6)
    v = _randn(rng, N, S, 3)
    pad = np.zeros((N, S), bool)
    pad[1, 3:] = True
    ctx, w = m(somanet.tensor(q), somanet.tensor(k), somanet.tensor(v), key_padding_mask=somanet.tensor(pad))
    ctx_ref, w_ref = ref(m, q, k, v, ~pad[:, None, :])
    assert_close(w, w_ref.astype(np.float32), what="weights")
    assert_close(ctx, ctx_ref.astype(np.float32), what="context")
    assert np.all(w.array[1, :, 3:] == 0)
    # A single decoder step (N, D_q) gives the first row of the sequence result.
    ctx1, w1 = m(somanet.tensor(q[:, 0]), somanet.tensor(k), somanet.tensor(v), key_padding_mask=somanet.tensor(pad))
    assert_close(ctx1, ctx.array[:, 0])
    assert_close(w1, w.array[:, 0])


@pytest.mark.parametrize("module", ["bahdanau", "dot", "general", "concat"])
def test_gradcheck_rnn_attention(module):
    rng = np.random.default_rng(13)
    if module == "bahdanau":
        m = nn.BahdanauAttention(3, 2, 4).double()
    else:
        m = nn.LuongAttention(3, 3 if module == "dot" else 2, method=module, hidden_size=4).double()
    q = somanet.tensor(rng.standard_normal((2, 2, 3)), requires_grad=True)
    k = somanet.tensor(rng.standard_normal((2, 4, 3 if module == "dot" else 2)), requires_grad=True)
    v = somanet.tensor(rng.standard_normal((2, 4, 2)), requires_grad=True)
    pad = np.zeros((2, 4), bool)
    pad[0, 3] = True
    assert gradcheck(lambda q, k, v: m(q, k, v, key_padding_mask=pad), [q, k, v])
    # Every parameter, by swapping in the tensor that gradcheck perturbs.
    for p in list(m.parameters()):
        assert gradcheck(lambda w: _with_param(m, p, w, lambda: m(q.detach(), k.detach(), v.detach(),
                                                                 key_padding_mask=pad)),
                         [p.detach().requires_grad_()])


def _with_param(module, param, value, run):
    """Run ``run()`` with ``param`` replaced by the tensor ``value`` (so gradcheck can perturb it)."""
    for mod in module.modules():
        for name, p in list(mod._parameters.items()):
            if p is param:
                mod._parameters[name] = value
                try:
                    return run()
                finally:
                    mod._parameters[name] = param
    raise AssertionError("parameter not found")


def test_rnn_attention_errors():
    m = nn.BahdanauAttention(4, 6, 5)
    with pytest.raises(ValueError, match=r"BahdanauAttention: keys must be \(N, S, D_k\), got shape \(2, 6\)"):
        m(somanet.randn(2, 4), somanet.randn(2, 6))
    with pytest.raises(ValueError, match="LuongAttention: the 'dot' score needs query_size == key_size"):
        nn.LuongAttention(4, 6, method="dot")
    with pytest.raises(ValueError, match="key_padding_mask must be bool"):
        m(somanet.randn(2, 4), somanet.randn(2, 3, 6), key_padding_mask=somanet.zeros(2, 3))


def test_masked_softmax_with_rows_far_apart_matches_torch():
    # The weights are shifted by each (L, S) block's maximum and rows far below it are redone with their
    # own: a row 200 below the block's maximum, a fully masked row, a row with a NaN, and +-inf scores.
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    scores = _randn(rng, 2, 3, 5, 6) * 4
    scores[0, 0, 1] -= 200.0
    scores[0, 1, 2] -= 60.0
    scores[1, 2, 0] += 300.0
    keep = np.ones(scores.shape, dtype=bool)
    keep[1, 0, 3] = False  # a fully masked row
    keep[0, 2, :, 4] = False
    got = A._masked_softmax_(scores.copy(), keep, np)
    ref = torch.softmax(torch.tensor(scores, dtype=torch.float64).masked_fill(~torch.tensor(keep), -np.inf), -1)
    ref = torch.nan_to_num(ref, nan=0.0).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
    # A NaN (and an infinity) in a block: that block falls back to per-row shifts; NaN stays in its row.
    odd = _randn(rng, 2, 4, 5)
    odd[0, 1, 2] = np.nan
    odd[1, 3, 0] = np.inf
    with np.errstate(invalid="ignore"):  # inf - inf in the infinite row, as in a plain softmax
        got = A._masked_softmax_(odd.copy(), None, np)
    ref = torch.softmax(torch.tensor(odd, dtype=torch.float64), -1).numpy()
    assert np.isnan(got[0, 1]).all() and not np.isnan(got[0, [0, 2, 3]]).any()
    np.testing.assert_allclose(got[0, [0, 2, 3]], ref[0, [0, 2, 3]], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got[1, :3], ref[1, :3], rtol=1e-5, atol=1e-7)
