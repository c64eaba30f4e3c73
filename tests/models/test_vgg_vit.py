"""VGG and the Vision Transformer against PyTorch twins built from torch.nn (the ones the benchmark suite
times): state_dict names, outputs, input and parameter gradients, train and eval mode."""
import os
import sys

import numpy as np
import pytest

import somanet
from somanet import nn
from somanet.models import VGG, VisionTransformer, make_vgg_layers, vgg11_bn, vgg16, vit_tiny
from reference import assert_close, compare_modules, copy_state, torch_or_skip

torch = torch_or_skip()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from benchmarks.workloads import torch_vgg, torch_vit  # noqa: E402

VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _pair_vgg(cfg, batch_norm, **kw):
    torch.manual_seed(0)
    t = torch_vgg(torch, cfg, batch_norm=batch_norm, **kw)
    s = VGG(make_vgg_layers(cfg, batch_norm, kw.get("in_channels", 3)), num_classes=kw.get("num_classes", 10),
            pool_size=kw.get("pool_size", 1), hidden_features=kw.get("hidden_features", 512),
            dropout=kw.get("dropout", 0.5))
    copy_state(t, s)
    return s, t


def test_vgg11_bn_state_dict_names_match_torchvision_layout():
    torch.manual_seed(0)
    t = torch_vgg(torch, VGG11, batch_norm=True)
    s = vgg11_bn(num_classes=10, pool_size=1, hidden_features=512)
    assert list(s.state_dict()) == list(t.state_dict())
    for k, v in t.state_dict().items():
        assert tuple(s.state_dict()[k].shape) == tuple(v.shape), k


@pytest.mark.parametrize("batch_norm", [True, False])
def test_small_vgg_matches_torch_in_train_mode(batch_norm):
    cfg = [8, "M", 16, 16, "M"]
    s, t = _pair_vgg(cfg, batch_norm, pool_size=2, hidden_features=32, dropout=0.0)
    compare_modules(s, t, _x(3, 3, 16, 16), rtol=1e-4, atol=1e-5, grad_rtol=1e-3, grad_atol=1e-4)
    if batch_norm:
        for k, v in t.state_dict().items():
            if "running" in k:
                assert_close(s.state_dict()[k], v, what=k)


def test_vgg11_bn_cifar_variant_matches_torch_train_and_eval():
    s, t = _pair_vgg(VGG11, True, pool_size=1, hidden_features=512, dropout=0.0)
    x = _x(2, 3, 32, 32)
    compare_modules(s, t, x, rtol=1e-4, atol=1e-5, grad_rtol=2e-3, grad_atol=2e-4)
    s.eval()
    t.eval()
    compare_modules(s, t, x, rtol=1e-4, atol=1e-5, grad_rtol=2e-3, grad_atol=2e-4)


def test_vgg_dropout_is_identity_in_eval_and_active_in_train():
    model = VGG(make_vgg_layers([4, "M"], True), num_classes=3, pool_size=1, hidden_features=64, dropout=0.5)
    x = somanet.tensor(_x(4, 3, 8, 8))
    model.eval()
    with somanet.no_grad():
        a, b = model(x).array, model(x).array
    np.testing.assert_array_equal(a, b)
    model.train()
    somanet.manual_seed(1)
    c = model(x).array
    somanet.manual_seed(2)
    d = model(x).array
    assert not np.allclose(c, d)


def test_vgg_factories_and_errors():
    m = vgg16(num_classes=7, in_channels=1, pool_size=1, hidden_features=16)
    convs = [mod for mod in m.features if isinstance(mod, nn.Conv2d)]
    assert len(convs) == 13 and convs[0].in_channels == 1
    assert m(somanet.randn(1, 1, 32, 32)).shape == (1, 7)
    with pytest.raises(ValueError, match="VGG: expected input of shape"):
        m(somanet.randn(1, 32, 32))
    with pytest.raises(ValueError, match="dropout"):
        vgg11_bn(dropout=1.5)
    with pytest.raises(ValueError, match="channel count"):
        make_vgg_layers([64, "X"])


def _pair_vit(**cfg):
    torch.manual_seed(0)
    t = torch_vit(torch, **cfg)
    s = VisionTransformer(**cfg)
    copy_state(t, s)
    return s, t


VIT_SMALL = dict(image_size=8, patch_size=4, in_channels=2, num_classes=5, d_model=16, num_layers=2, num_heads=2,
                 mlp_dim=32)


def test_vit_state_dict_names_match_the_torch_twin():
    s, t = _pair_vit(**VIT_SMALL)
    assert sorted(s.state_dict()) == sorted(t.state_dict())


def test_vit_matches_torch_outputs_and_gradients():
    s, t = _pair_vit(**VIT_SMALL)
    # The reference zero-initialises the head; random weights there make the gradients reach every layer.
    rng = np.random.default_rng(3)
    with torch.no_grad():
        t.head.weight.copy_(torch.from_numpy(rng.standard_normal((5, 16)).astype(np.float32)))
        t.class_token.copy_(torch.from_numpy(rng.standard_normal((1, 1, 16)).astype(np.float32)))
    copy_state(t, s)
    compare_modules(s, t, _x(3, 2, 8, 8), rtol=1e-4, atol=1e-5, grad_rtol=1e-3, grad_atol=1e-4)


def test_vit_eval_matches_torch_fast_path():
    cfg = dict(VIT_SMALL, num_classes=4)
    s, t = _pair_vit(**cfg)
    with torch.no_grad():
        t.head.weight.normal_()
    copy_state(t, s)
    s.eval()
    t.eval()
    x = _x(5, 2, 8, 8, seed=1)
    with torch.no_grad():
        expected = t(torch.from_numpy(x))
    with somanet.no_grad():
        got = s(somanet.tensor(x))
    assert_close(got, expected, rtol=1e-4, atol=2e-5, what="ViT eval logits")


def test_vit_benchmark_config_shapes_and_errors():
    model = VisionTransformer(28, 7, in_channels=1, num_classes=10, d_model=64, num_layers=4, num_heads=4,
                              mlp_dim=256)
    assert model.num_patches == 16 and tuple(model.pos_embedding.shape) == (1, 17, 64)
    assert model(somanet.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"VisionTransformer: expected input of shape \(N, 1, 28, 28\)"):
        model(somanet.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        VisionTransformer(30, 7)
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        VisionTransformer(28, 7, d_model=30, num_heads=4)
    tiny = vit_tiny(image_size=32, patch_size=8, num_classes=3, num_layers=1)
    assert tiny.d_model == 192 and tiny(somanet.randn(1, 3, 32, 32)).shape == (1, 3)
