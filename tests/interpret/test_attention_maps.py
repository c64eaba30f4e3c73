"""record_attention against PyTorch: nn.MultiheadAttention's own weights (copied weights), the explicit
softmax(Q K^T / sqrt(d)) of GPT and ViT layers, Hugging Face GPT-2's attentions; the forward pass is
unchanged while recording and untouched after; attention rollout against a direct loop implementation."""
import os
import sys

import numpy as np
import pytest

import somanet
from somanet import nn
from somanet.interpret import AttentionMaps, attention_rollout, record_attention, vit_attention_rollout
from somanet.models import GPT, VisionTransformer
from reference import assert_close, copy_state, torch_or_skip

torch = torch_or_skip()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from benchmarks.workloads import torch_vit  # noqa: E402

VIT = dict(image_size=8, patch_size=4, in_channels=1, num_classes=5, d_model=16, num_layers=3, num_heads=2,
           mlp_dim=32)


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def explicit_weights(x, mha, causal=False):
    """softmax(Q K^T / sqrt(head_dim)) per head, computed in PyTorch from the module's projection weights."""
    w = torch.tensor(mha.in_proj_weight.array)
    b = torch.tensor(mha.in_proj_bias.array)
    xt = torch.tensor(x)
    n, t, e = xt.shape
    h = mha.num_heads
    q, k, _ = (xt @ w.T + b).split(e, dim=-1)
    q, k = (z.reshape(n, t, h, e // h).transpose(1, 2) for z in (q, k))
    scores = q @ k.transpose(-1, -2) / (e // h) ** 0.5
    if causal:
        scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf"))
    return scores.softmax(-1)


def layer_inputs(model):
    """Keep the query each MultiheadAttention receives (a test-side hook, for the explicit formula)."""
    seen = []
    handles = [m.register_forward_pre_hook(lambda mod, args, kw: seen.append(args[0].array.copy()), with_kwargs=True)
               for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    return seen, handles


# --------------------------------------------------------------------------- nn.MultiheadAttention
@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_weights_equal_torch(batch_first):
    torch.manual_seed(0)
    t = torch.nn.MultiheadAttention(12, 3, batch_first=batch_first)
    s = nn.MultiheadAttention(12, 3, batch_first=batch_first)
    copy_state(t, s)
    q, kv = _x(2, 4, 12, seed=1), _x(2, 6, 12, seed=2)
    if not batch_first:
        q, kv = q.transpose(1, 0, 2).copy(), kv.transpose(1, 0, 2).copy()
    mask = np.zeros((2, 6), bool)
    mask[1, 4:] = True
    ref_out, ref_w = t(torch.tensor(q), torch.tensor(kv), torch.tensor(kv), key_padding_mask=torch.tensor(mask),
                       average_attn_weights=False)
    plain_out, plain_w = s(somanet.tensor(q), somanet.tensor(kv), somanet.tensor(kv), key_padding_mask=mask)
    with record_attention(s) as maps:
        out, w = s(somanet.tensor(q), somanet.tensor(kv), somanet.tensor(kv), key_padding_mask=mask)
    assert len(maps) == 1 and maps[0].shape == (2, 3, 4, 6)
    assert_close(maps[0], ref_w, rtol=1e-5, atol=1e-6)
    assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
    # The caller still gets what it asked for: the head-averaged weights, the same output.
    np.testing.assert_array_equal(out.array, plain_out.array)
    assert_close(w, plain_w, rtol=1e-6, atol=1e-7)
    with record_attention(s) as maps:
        _, none = s(somanet.tensor(q), somanet.tensor(kv), somanet.tensor(kv), need_weights=False)
    assert none is None and maps[0].shape == (2, 3, 4, 6)
    assert not s._forward_hooks and not s._forward_pre_hooks


def test_unbatched_and_positional_need_weights():
    s = nn.MultiheadAttention(8, 2)
    x = somanet.tensor(_x(5, 8))
    with record_attention(s) as maps:
        _, w = s(x, x, x, None, False)  # need_weights given positionally
    assert w is None and maps[0].shape == (1, 2, 5, 5)
    np.testing.assert_allclose(maps[0].array.sum(-1), 1.0, rtol=1e-6)


# --------------------------------------------------------------------------- encoder layers, GPT, ViT
def test_transformer_encoder_records_each_layer_like_torch():
    torch.manual_seed(1)
    layer = torch.nn.TransformerEncoderLayer(16, 4, 32, 0.0, batch_first=True)
    t = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    s = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 4, 32, 0.0, batch_first=True), 2)
    copy_state(t, s)
    t.eval()
    s.eval()
    x = _x(2, 5, 16, seed=3)
    # PyTorch's reference: call each torch self_attn on its own input, asking for the per-head weights.
    expected = []
    hooks = [m.self_attn.register_forward_pre_hook(
        lambda mod, args, kw: expected.append(mod.forward(args[0], args[0], args[0], average_attn_weights=False)[1]),
        with_kwargs=True) for m in t.layers]
    t(torch.tensor(x, requires_grad=True))  # gradients on: PyTorch's fused eval path would skip the hooks
    for h in hooks:
        h.remove()
    with record_attention(s) as maps:
        s(somanet.tensor(x))
    assert maps.names == ["layers.0.self_attn", "layers.1.self_attn"]
    for got, ref in zip(maps, expected):
        assert_close(got, ref, rtol=1e-4, atol=1e-6)


def test_gpt_attention_is_the_causal_softmax():
    model = GPT(30, block_size=8, n_layer=2, n_head=2, d_model=16).eval()
    ids = somanet.tensor(np.random.default_rng(4).integers(0, 30, (2, 7)))
    plain = model(ids).array
    seen, handles = layer_inputs(model)
    with record_attention(model) as maps:
        out = model(ids).array
    for h in handles:
        h.remove()
    np.testing.assert_array_equal(out, plain)
    assert maps.names == ["blocks.0.self_attn", "blocks.1.self_attn"]
    assert maps.numpy().shape == (2, 2, 2, 7, 7)
    for got, x, block in zip(maps, seen, model.blocks):
        assert_close(got, explicit_weights(x, block.self_attn, causal=True), rtol=1e-4, atol=1e-6)
        assert np.all(np.triu(got.array, 1) == 0)


def test_vit_attention_equals_torch_twin_and_explicit_softmax():
    torch.manual_seed(2)
    t = torch_vit(torch, **VIT)
    s = VisionTransformer(**VIT)
    copy_state(t, s)
    t.eval()
    s.eval()
    img = _x(2, 1, 8, 8, seed=5)
    expected = []
    hooks = [m.self_attn.register_forward_pre_hook(
        lambda mod, args, kw: expected.append(mod.forward(args[0], args[0], args[0], average_attn_weights=False)[1]),
        with_kwargs=True) for m in t.encoder.layers]
    t(torch.tensor(img, requires_grad=True))
    for h in hooks:
        h.remove()
    seen, handles = layer_inputs(s)
    with record_attention(s) as maps:
        s(somanet.tensor(img))
    for h in handles:
        h.remove()
    assert len(maps) == 3 and maps[0].shape == (2, 2, 5, 5)
    for got, ref, x, layer in zip(maps, expected, seen, s.encoder.layers):
        assert_close(got, ref, rtol=1e-4, atol=1e-6)
        assert_close(got, explicit_weights(x, layer.self_attn), rtol=1e-4, atol=1e-6)


def test_gpt2_attentions_equal_hugging_face():
    transformers = pytest.importorskip("transformers")
    from somanet.models import GPT2Config, GPT2LMHeadModel
    cfg = dict(vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
               attn_pdrop=0.0)
    torch.manual_seed(3)
    ref = transformers.GPT2LMHeadModel(transformers.GPT2Config(**cfg, attn_implementation="eager")).eval()
    model = GPT2LMHeadModel(GPT2Config(**cfg)).eval()
    model.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    ids = np.random.default_rng(6).integers(0, 50, (2, 6))
    mask = np.ones((2, 6), np.int64)
    mask[1, 4:] = 0
    for attention_mask in (None, mask):
        kw = {} if attention_mask is None else {"attention_mask": somanet.tensor(attention_mask)}
        plain = model(somanet.tensor(ids), **kw).logits.array
        with record_attention(model) as maps:
            logits = model(somanet.tensor(ids), **kw).logits.array
        np.testing.assert_array_equal(logits, plain)
        with torch.no_grad():
            tkw = {} if attention_mask is None else {"attention_mask": torch.tensor(attention_mask)}
            hf = ref(torch.tensor(ids), output_attentions=True, **tkw).attentions
        assert maps.names == ["transformer.h.0.attn", "transformer.h.1.attn"]
        rows = slice(None) if attention_mask is None else slice(0, 4)  # padded query rows differ by convention
        for got, exp in zip(maps, hf):
            assert got.shape == tuple(exp.shape)
            np.testing.assert_allclose(got.array[1, :, rows], exp.numpy()[1, :, rows], rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(got.array[0], exp.numpy()[0], rtol=1e-4, atol=1e-6)
    assert all("_attention_recorder" not in m.__dict__ for m in model.modules())


def test_weights_keep_the_graph_for_attention_times_gradient():
    s = nn.MultiheadAttention(8, 2, batch_first=True)
    x = somanet.tensor(_x(1, 3, 8), requires_grad=True)
    with record_attention(s) as maps:
        out, _ = s(x, x, x, need_weights=False)
    (out.sum() + maps[0].sum()).backward()
    assert x.grad is not None and np.isfinite(x.grad.array).all()


# --------------------------------------------------------------------------- rollout
def rollout_reference(layers, fusion="mean"):
    """Abnar & Zuidema's rollout, one sample and one layer at a time."""
    n, L = layers[0].shape[0], layers[0].shape[-1]
    out = np.zeros((n, L, L))
    for i in range(n):
        joint = np.eye(L)
        for a in layers:
            fused = getattr(np, fusion)(a[i].astype(np.float64), axis=0)
            aug = 0.5 * fused + 0.5 * np.eye(L)  # rows of a softmax sum to 1: this is (A + I) renormalised
            aug = aug / aug.sum(axis=1, keepdims=True)
            joint = aug @ joint
        out[i] = joint
    return out


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_rollout_matches_a_direct_implementation(fusion):
    rng = np.random.default_rng(7)
    layers = [rng.dirichlet(np.ones(6), size=(2, 3, 6)).astype(np.float32) for _ in range(4)]
    got = attention_rollout(layers, head_fusion=fusion)
    np.testing.assert_allclose(got, rollout_reference(layers, fusion), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-10)


def test_vit_rollout_is_the_class_token_row_on_the_patch_grid():
    s = VisionTransformer(**VIT).eval()
    with somanet.no_grad():  # a non-zero head so that the maps are not uniform
        s.head.weight.array[...] = _x(5, 16, seed=8)
    img = somanet.tensor(_x(2, 1, 8, 8, seed=9))
    with record_attention(s) as maps:
        s(img)
    joint = rollout_reference([w.array for w in maps])
    grid = vit_attention_rollout(s, img)
    assert grid.shape == (2, 2, 2)
    np.testing.assert_allclose(grid, joint[:, 0, 1:].reshape(2, 2, 2), rtol=1e-10)
    assert isinstance(maps, AttentionMaps) and "encoder.layers.0.self_attn" in repr(maps)


def test_errors():
    with pytest.raises(ValueError, match="record_attention\\(\\): Linear has no attention layer"):
        with record_attention(nn.Linear(2, 2)):
            pass
    with pytest.raises(TypeError, match="model must be a Module"):
        with record_attention(lambda x: x):
            pass
    with pytest.raises(ValueError, match="expected self-attention maps \\(N, heads, L, L\\)"):
        attention_rollout([np.ones((1, 2, 3, 4))])
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout([np.ones((1, 2, 3, 3))], head_fusion="sum")
    with pytest.raises(ValueError, match="nothing was recorded"):
        AttentionMaps().numpy()
    with pytest.raises(TypeError, match="expected a VisionTransformer"):
        vit_attention_rollout(nn.Linear(2, 2), np.zeros((1, 2), np.float32))
    # The hooks go away also when the forward inside the context fails.
    s = nn.MultiheadAttention(8, 2)
    with pytest.raises(RuntimeError):
        with record_attention(s):
            s(somanet.tensor(_x(3, 1, 7)), somanet.tensor(_x(3, 1, 7)), somanet.tensor(_x(3, 1, 7)))
    assert not s._forward_hooks and not s._forward_pre_hooks
