"""Transformer layers, stacks and the full encoder-decoder against PyTorch (weights copied by state_dict)."""
import math

import numpy as np
import pytest

import somanet
import somanet.nn as nn
import somanet.nn.functional as F
from reference import assert_close, compare_modules, copy_state, torch_or_skip

D, HEADS, FF = 8, 2, 16


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _is_torch(m):
    torch = torch_or_skip()
    return isinstance(m, torch.nn.Module)


def _t(m, arr):
    """An array as a tensor of the framework of module ``m`` (None stays None)."""
    torch = torch_or_skip()
    if arr is None:
        return None
    return torch.tensor(arr) if _is_torch(m) else somanet.tensor(arr)


def _seq(rng, n, batch, batch_first):
    return _randn(rng, batch, n, D) if batch_first else _randn(rng, n, batch, D)


def _masks(rng, L, S, N, kind):
    """(attn mask (L, S), key padding mask (N, S)) of the given kind: 'none', 'bool' or 'float'."""
    if kind == "none":
        return None, None
    kpm = np.zeros((N, S), bool)
    kpm[0, S - 2:] = True
    attn = rng.random((L, S)) > 0.7
    attn[:, 0] = False
    if kind == "float":
        return np.where(attn, -1e9, 0.0).astype(np.float32) + _randn(rng, L, S) * 0.1, kpm
    return attn, kpm


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first,mask_kind", [(False, "none"), (True, "bool"), (False, "float")])
def test_encoder_layer_matches_torch(norm_first, activation, batch_first, mask_kind):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    kw = dict(d_model=D, nhead=HEADS, dim_feedforward=FF, dropout=0.0, activation=activation,
              batch_first=batch_first, norm_first=norm_first)
    t = torch.nn.TransformerEncoderLayer(**kw)
    s = nn.TransformerEncoderLayer(**kw)
    assert list(s.state_dict()) == list(t.state_dict())
    copy_state(t, s)
    S, N = 5, 3
    attn, kpm = _masks(rng, S, S, N, mask_kind)
    compare_modules(s, t, _seq(rng, S, N, batch_first),
                    forward=lambda m, x: m(x, src_mask=_t(m, attn), src_key_padding_mask=_t(m, kpm)))


def test_encoder_layer_callable_activation_bias_false_and_unbatched():
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    kw = dict(d_model=D, nhead=HEADS, dim_feedforward=FF, dropout=0.0, bias=False)
    t = torch.nn.TransformerEncoderLayer(activation=torch.nn.functional.silu, **kw)
    s = nn.TransformerEncoderLayer(activation=F.silu, **kw)
    assert list(s.state_dict()) == list(t.state_dict())
    copy_state(t, s)
    compare_modules(s, t, _randn(rng, 5, 3, D))
    compare_modules(s, t, _randn(rng, 5, D))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first,mask_kind", [(False, "bool"), (True, "float"), (True, "none")])
def test_decoder_layer_matches_torch(norm_first, batch_first, mask_kind):
    torch = torch_or_skip()
    rng = np.random.default_rng(2)
    kw = dict(d_model=D, nhead=HEADS, dim_feedforward=FF, dropout=0.0, batch_first=batch_first,
              norm_first=norm_first, activation="gelu")
    t = torch.nn.TransformerDecoderLayer(**kw)
    s = nn.TransformerDecoderLayer(**kw)
    assert list(s.state_dict()) == list(t.state_dict())
    copy_state(t, s)
    T, S, N = 4, 6, 3
    tgt_mask, tgt_kpm = _masks(rng, T, T, N, mask_kind)
    mem_mask, mem_kpm = _masks(rng, T, S, N, mask_kind)

    def forward(m, tgt, mem):
        return m(tgt, mem, tgt_mask=_t(m, tgt_mask), memory_mask=_t(m, mem_mask), tgt_key_padding_mask=_t(m, tgt_kpm),
                 memory_key_padding_mask=_t(m, mem_kpm))

    compare_modules(s, t, _seq(rng, T, N, batch_first), _seq(rng, S, N, batch_first), forward=forward)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_stack_with_final_norm_and_causal_mask(norm_first):
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    kw = dict(d_model=D, nhead=HEADS, dim_feedforward=FF, dropout=0.0, batch_first=True, norm_first=norm_first)
    t = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(**kw), 3, norm=torch.nn.LayerNorm(D),
                                    enable_nested_tensor=False)
    s = nn.TransformerEncoder(nn.TransformerEncoderLayer(**kw), 3, norm=nn.LayerNorm(D))
    assert list(s.state_dict()) == list(t.state_dict())
    assert "layers.2.self_attn.in_proj_weight" in s.state_dict() and "norm.weight" in s.state_dict()
    copy_state(t, s)
    L = 6
    kpm = np.zeros((2, L), bool)
    kpm[1, 4:] = True

    def forward(m, x):
        mask = (torch.nn.Transformer if _is_torch(m) else nn.Transformer).generate_square_subsequent_mask(L)
        return m(x, mask=mask, src_key_padding_mask=_t(m, kpm), is_causal=True)

    compare_modules(s, t, _randn(rng, 2, L, D), forward=forward)
    # Without the hint, the causal mask is recognised: same result.
    x = somanet.tensor(_randn(rng, 2, L, D))
    mask = nn.Transformer.generate_square_subsequent_mask(L)
    assert_close(s(x, mask=mask), s(x, mask=mask, is_causal=True))


def test_decoder_stack_matches_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(4)
    kw = dict(d_model=D, nhead=HEADS, dim_feedforward=FF, dropout=0.0)
    t = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(**kw), 2, norm=torch.nn.LayerNorm(D))
    s = nn.TransformerDecoder(nn.TransformerDecoderLayer(**kw), 2, norm=nn.LayerNorm(D))
    assert list(s.state_dict()) == list(t.state_dict())
    copy_state(t, s)

    def forward(m, tgt, mem):
        mask = (torch.nn.Transformer if _is_torch(m) else nn.Transformer).generate_square_subsequent_mask(4)
        return m(tgt, mem, tgt_mask=mask)

    compare_modules(s, t, _randn(rng, 4, 2, D), _randn(rng, 5, 2, D), forward=forward)


@pytest.mark.parametrize("batch_first,norm_first", [(False, False), (True, True)])
def test_transformer_matches_torch_with_every_mask(batch_first, norm_first):
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    kw = dict(d_model=D, nhead=HEADS, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=FF, dropout=0.0,
              batch_first=batch_first, norm_first=norm_first)
    t = torch.nn.Transformer(**kw)
    s = nn.Transformer(**kw)
    assert list(s.state_dict()) == list(t.state_dict())
    for (n, p), (_, tp) in zip(s.named_parameters(), t.named_parameters()):
        assert tuple(p.shape) == tuple(tp.shape), n
    copy_state(t, s)
    S, T, N = 6, 4, 3
    src_mask, src_kpm = _masks(rng, S, S, N, "bool")
    mem_mask, mem_kpm = _masks(rng, T, S, N, "bool")
    tgt_kpm = np.zeros((N, T), bool)
    tgt_kpm[2, 3] = True

    def forward(m, src, tgt):
        tgt_mask = m.generate_square_subsequent_mask(T)
        return m(src, tgt, src_mask=_t(m, src_mask), tgt_mask=tgt_mask, memory_mask=_t(m, mem_mask),
                 src_key_padding_mask=_t(m, src_kpm), tgt_key_padding_mask=_t(m, tgt_kpm),
                 memory_key_padding_mask=_t(m, mem_kpm))

    compare_modules(s, t, _seq(rng, S, N, batch_first), _seq(rng, T, N, batch_first), forward=forward)


def test_generate_square_subsequent_mask_and_init():
    torch = torch_or_skip()
    assert_close(nn.Transformer.generate_square_subsequent_mask(5),
                 torch.nn.Transformer.generate_square_subsequent_mask(5))
    model = nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32)
    w = model.encoder.layers[0].linear1.weight.array
    bound = math.sqrt(6 / (16 + 32))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.all(model.encoder.norm.weight.array == 1)
    # Cloned layers start equal (deep copies), as in PyTorch, but do not share parameters.
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 2)
    a, b = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    assert a is not b and np.array_equal(a.array, b.array)


def test_dropout_in_training_and_eval():
    torch = torch_or_skip()
    rng = np.random.default_rng(6)
    kw = dict(d_model=D, nhead=HEADS, dim_feedforward=FF, dropout=0.3)
    t = torch.nn.TransformerEncoderLayer(**kw)
    s = nn.TransformerEncoderLayer(**kw)
    copy_state(t, s)
    s.eval()
    t.eval()
    x = _randn(rng, 5, 3, D)
    with torch.no_grad():
        ref = t(torch.tensor(x))
    assert_close(s(somanet.tensor(x)), ref)
    s.train()
    a, b = s(somanet.tensor(x)).array, s(somanet.tensor(x)).array
    assert not np.allclose(a, b)
    assert np.isfinite(a).all()


def test_transformer_errors():
    model = nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=16)
    with pytest.raises(RuntimeError, match="the batch number of src and tgt must be equal"):
        model(somanet.randn(5, 2, 8), somanet.randn(4, 3, 8))
    with pytest.raises(RuntimeError, match=r"Transformer: expected src of shape \(S, N, 8\).* got \(5, 2, 6\)"):
        model(somanet.randn(5, 2, 6), somanet.randn(4, 2, 8))
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        layer(somanet.randn(4, 2, 8), is_causal=True)
