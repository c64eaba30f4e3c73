"""Batch-norm folding (``somanet.nn.utils.fusion``) against ``torch.nn.utils.fusion``, and the folded
inference models of ``fuse_for_inference`` and the ResNet blocks against the unfolded modules."""
import numpy as np
import pytest

import somanet
import somanet.nn as nn
from somanet.models import resnet20
from somanet.nn.utils import fusion
from reference import assert_close, copy_state, torch_or_skip

torch = torch_or_skip()


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _trained_bn(t_bn, seed=1):
    """Non-trivial running statistics and affine parameters (the same numbers go into somanet)."""
    c = t_bn.num_features
    with torch.no_grad():
        t_bn.running_mean.copy_(torch.tensor(_x(c, seed=seed)))
        t_bn.running_var.copy_(torch.tensor(np.abs(_x(c, seed=seed + 1)) + 0.5))
        if t_bn.weight is not None:
            t_bn.weight.copy_(torch.tensor(_x(c, seed=seed + 2)))
            t_bn.bias.copy_(torch.tensor(_x(c, seed=seed + 3)))
    return t_bn


def _pair(name, *args, **kwargs):
    t_mod = getattr(torch.nn, name)(*args, **kwargs)
    s_mod = getattr(nn, name)(*args, **kwargs)
    if "BatchNorm" in name:
        _trained_bn(t_mod)
    copy_state(t_mod, s_mod)
    return s_mod.eval(), t_mod.eval()


CONVS = [
    ("Conv2d", (3, 8, 3), {"padding": 1}, (2, 3, 9, 7), False),
    ("Conv2d", (4, 6, 3), {"stride": 2, "bias": False, "groups": 2}, (2, 4, 8, 8), False),
    ("Conv1d", (3, 5, 5), {"padding": 2, "padding_mode": "reflect"}, (2, 3, 11), False),
    ("ConvTranspose2d", (4, 6, 3), {"stride": 2, "output_padding": 1}, (2, 4, 5, 5), True),
    ("ConvTranspose2d", (4, 6, 3), {"groups": 2, "bias": False}, (2, 4, 5, 5), True),
]


@pytest.mark.parametrize("name,args,kwargs,shape,transpose", CONVS)
@pytest.mark.parametrize("affine", [True, False])
def test_fuse_conv_bn_eval_matches_torch(name, args, kwargs, shape, transpose, affine):
    s_conv, t_conv = _pair(name, *args, **kwargs)
    bn_name = "BatchNorm1d" if name.endswith("1d") else "BatchNorm2d"
    s_bn, t_bn = _pair(bn_name, args[1], affine=affine, eps=1e-3)
    s_fused = fusion.fuse_conv_bn_eval(s_conv, s_bn, transpose=transpose)
    x = _x(*shape)
    expected = t_bn(t_conv(torch.tensor(x)))
    out = s_fused(somanet.tensor(x))
    assert_close(out, expected, rtol=1e-4, atol=1e-5)
    if kwargs.get("groups", 1) == 1:  # torch folds a grouped transposed weight along the wrong axis
        t_fused = torch.nn.utils.fusion.fuse_conv_bn_eval(t_conv, t_bn, transpose=transpose)
        assert_close(s_fused.weight, t_fused.weight, rtol=1e-6, atol=1e-6)
        assert_close(s_fused.bias, t_fused.bias, rtol=1e-6, atol=1e-6)
    # A copy: the originals keep their weights, and the fused module is an ordinary one that trains.
    assert s_fused is not s_conv and s_fused.weight is not s_conv.weight
    np.testing.assert_array_equal(s_conv.weight.array, t_conv.weight.detach().numpy())
    assert s_fused.weight.dtype == np.float32 and s_fused.bias.dtype == np.float32
    assert s_fused.weight.requires_grad and s_fused.bias.requires_grad


@pytest.mark.parametrize("affine", [True, False])
def test_fuse_linear_bn_eval_and_weights_match_torch(affine):
    s_lin, t_lin = _pair("Linear", 7, 5)
    s_bn, t_bn = _pair("BatchNorm1d", 5, affine=affine)
    s_fused = fusion.fuse_linear_bn_eval(s_lin, s_bn)
    x = _x(6, 7)
    assert_close(s_fused(somanet.tensor(x)), t_bn(t_lin(torch.tensor(x))), rtol=1e-5, atol=1e-5)
    s_w, s_b = fusion.fuse_linear_bn_weights(s_lin.weight, s_lin.bias, s_bn.running_mean, s_bn.running_var,
                                             s_bn.eps, s_bn.weight, s_bn.bias)
    assert isinstance(s_w, nn.Parameter) and isinstance(s_b, nn.Parameter)
    np.testing.assert_array_equal(s_w.array, s_fused.weight.array)
    np.testing.assert_array_equal(s_b.array, s_fused.bias.array)
    if affine:  # torch's linear fusion needs the affine parameters
        t_fused = torch.nn.utils.fusion.fuse_linear_bn_eval(t_lin, t_bn)
        assert_close(s_fused.weight, t_fused.weight, rtol=1e-6, atol=1e-6)
        assert_close(s_fused.bias, t_fused.bias, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("transpose", [False, True])
def test_fuse_conv_bn_weights_matches_torch_without_conv_bias(transpose):
    name = "ConvTranspose2d" if transpose else "Conv2d"
    s_conv, t_conv = _pair(name, 3, 4, 3, bias=False)
    s_bn, t_bn = _pair("BatchNorm2d", 4)
    t_w, t_b = torch.nn.utils.fusion.fuse_conv_bn_weights(t_conv.weight, None, t_bn.running_mean, t_bn.running_var,
                                                          t_bn.eps, t_bn.weight, t_bn.bias, transpose=transpose)
    s_w, s_b = fusion.fuse_conv_bn_weights(s_conv.weight, None, s_bn.running_mean, s_bn.running_var, s_bn.eps,
                                           s_bn.weight, s_bn.bias, transpose=transpose)
    assert_close(s_w, t_w, rtol=1e-6, atol=1e-6)
    assert_close(s_b, t_b, rtol=1e-6, atol=1e-6)


def test_fusion_errors_name_the_problem():
    conv, bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
    with pytest.raises(RuntimeError, match=r"fuse_conv_bn_eval\(\).*evaluation mode"):
        fusion.fuse_conv_bn_eval(conv, bn)
    conv.eval()
    with pytest.raises(ValueError, match=r"fuse_conv_bn_eval\(\).*5 features.*4 output channels"):
        fusion.fuse_conv_bn_eval(conv, nn.BatchNorm2d(5).eval())
    with pytest.raises(ValueError, match="running statistics"):
        fusion.fuse_conv_bn_eval(conv, nn.BatchNorm2d(4, track_running_stats=False).eval())
    with pytest.raises(TypeError, match="transposed convolution"):
        fusion.fuse_conv_bn_eval(conv, bn.eval(), transpose=True)
    with pytest.raises(TypeError, match="expected a BatchNorm module"):
        fusion.fuse_conv_bn_eval(conv, nn.GroupNorm(2, 4).eval())
    with pytest.raises(TypeError, match="expected a Linear module"):
        fusion.fuse_linear_bn_eval(conv, nn.BatchNorm1d(4).eval())
    with pytest.raises(ValueError, match=r"fuse_conv_bn_weights\(\).*weight \(4, 3, 3, 3\)"):
        fusion.fuse_conv_bn_weights(conv.weight, None, somanet.zeros(5), somanet.ones(5), 1e-5, None, None)


def _conv_bn_relu(seed=0):
    t_seq = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), _trained_bn(torch.nn.BatchNorm2d(8), seed),
                                torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3, stride=2, bias=False),
                                _trained_bn(torch.nn.BatchNorm2d(4), seed + 5), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 4 * 4, 6), _trained_bn(torch.nn.BatchNorm1d(6), seed + 9))
    s_seq = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 4, 3, stride=2, bias=False), nn.BatchNorm2d(4), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 6), nn.BatchNorm1d(6))
    copy_state(t_seq, s_seq)
    return s_seq.eval(), t_seq.eval()


def test_fuse_for_inference_matches_torch_and_the_unfused_model():
    s_seq, t_seq = _conv_bn_relu()
    model = nn.Sequential(s_seq, nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5)))
    rng = np.random.default_rng(7)
    bn = model[1][1]
    bn.running_mean.array[...] = rng.standard_normal(5)
    bn.running_var.array[...] = rng.uniform(0.5, 1.5, 5)
    model.train()
    fused = fusion.fuse_for_inference(model)
    assert model.training and not fused.training       # a copy, in evaluation mode
    kinds = [type(m).__name__ for m in fused.modules()]
    assert kinds.count("Identity") == 4 and "BatchNorm2d" not in kinds and "BatchNorm1d" not in kinds
    assert isinstance(model[0][1], nn.BatchNorm2d)      # the original keeps its layers
    x = _x(5, 3, 9, 9)
    model.eval()
    with somanet.no_grad():
        out, unfused = fused(somanet.tensor(x)), model(somanet.tensor(x))
    np.testing.assert_allclose(out.array, unfused.array, rtol=1e-5, atol=1e-5)
    assert out.dtype == np.float32
    with somanet.no_grad(), torch.no_grad():
        assert_close(fused[0](somanet.tensor(x)), t_seq(torch.tensor(x)), rtol=1e-4, atol=1e-5)
    # In place, and pairs that must not fold (a hook on the batch norm) are left alone.
    s_seq, _ = _conv_bn_relu(seed=2)
    _spy_bn_calls(s_seq[4])
    assert fusion.fuse_for_inference(s_seq, inplace=True) is s_seq
    assert isinstance(s_seq[1], nn.Identity) and isinstance(s_seq[4], nn.BatchNorm2d)
    with pytest.raises(TypeError, match="fuse_for_inference.*expected a Module"):
        fusion.fuse_for_inference(lambda x: x)


def _spy_bn_calls(bn):
    seen = []
    bn.register_forward_hook(lambda mod, args, out: seen.append(tuple(out.shape)))
    return seen


def test_folding_leaves_hooks_grad_and_training_to_the_modules():
    s_seq, t_seq = _conv_bn_relu()
    x = _x(2, 3, 9, 9)
    # A hook on the batch norm must see its call: that pair runs unfolded.
    seen = _spy_bn_calls(s_seq[1])
    with somanet.no_grad():
        out = s_seq(somanet.tensor(x))
    assert seen == [(2, 8, 9, 9)]
    with torch.no_grad():
        assert_close(out, t_seq(torch.tensor(x)), rtol=1e-4, atol=1e-5)
    # With gradient recording the graph goes through the batch norm, and gradients match PyTorch's.
    s_seq, t_seq = _conv_bn_relu(seed=3)
    xs, xt = somanet.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    s_out, t_out = s_seq(xs), t_seq(xt)
    assert_close(s_out, t_out, rtol=1e-4, atol=1e-5)
    s_out.sum().backward()
    t_out.sum().backward()
    assert_close(xs.grad, xt.grad, rtol=1e-4, atol=1e-5)
    assert_close(s_seq[1].weight.grad, t_seq[1].weight.grad, rtol=1e-4, atol=1e-4)
    assert_close(s_seq[0].weight.grad, t_seq[0].weight.grad, rtol=1e-4, atol=1e-4)
    # A batch norm left in training mode normalises with batch statistics and updates its buffers.
    s_seq, t_seq = _conv_bn_relu(seed=5)
    s_seq[4].train()
    t_seq[4].train()
    with somanet.no_grad(), torch.no_grad():
        assert_close(s_seq(somanet.tensor(x)), t_seq(torch.tensor(x)), rtol=1e-4, atol=1e-5)
    assert_close(s_seq[4].running_mean, t_seq[4].running_mean, rtol=1e-5, atol=1e-6)


def test_folding_keeps_the_modules_errors():
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(5)).eval()
    with somanet.no_grad(), pytest.raises(ValueError, match=r"BatchNorm2d.*5 channels"):
        seq(somanet.randn(1, 3, 6, 6))
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    with somanet.no_grad(), pytest.raises(ValueError, match=r"Conv2d.*channels"):
        seq(somanet.randn(1, 2, 6, 6))
    seq = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).eval()
    with somanet.no_grad(), pytest.raises(RuntimeError, match="Linear"):
        seq(somanet.randn(2, 5))


def test_linear_bn_folds_only_two_dimensional_input():
    # On (N, L, F) BatchNorm1d normalises dim 1 (L); with L == F a fold over F would be wrong.
    t_lin, t_bn = torch.nn.Linear(3, 3), _trained_bn(torch.nn.BatchNorm1d(3))
    s_lin, s_bn = nn.Linear(3, 3), nn.BatchNorm1d(3)
    copy_state(t_lin, s_lin)
    copy_state(t_bn, s_bn)
    s_seq, t_seq = nn.Sequential(s_lin, s_bn).eval(), torch.nn.Sequential(t_lin, t_bn).eval()
    for shape in ((4, 3), (4, 3, 3)):
        x = _x(*shape)
        with somanet.no_grad(), torch.no_grad():
            assert_close(s_seq(somanet.tensor(x)), t_seq(torch.tensor(x)), rtol=1e-5, atol=1e-5, what=str(shape))


def test_folding_skips_layers_whose_weights_outweigh_the_output():
    # 64 -> 64 channels on a 2x2 plane: 36,864 weights against 1,024 outputs, so the batch norm runs alone.
    conv, bn = nn.Conv2d(64, 64, 3, padding=1).eval(), nn.BatchNorm2d(64).eval()
    calls = []
    original = bn.forward
    bn.forward = lambda x: (calls.append(tuple(x.shape)), original(x))[1]
    with somanet.no_grad():
        fusion.conv_bn(conv, bn, somanet.randn(4, 64, 2, 2))
        fusion.conv_bn(conv, bn, somanet.randn(4, 64, 16, 16))
    assert calls == [(4, 64, 2, 2)]


def test_resnet_blocks_fold_in_inference_and_match_unfolded():
    somanet.manual_seed(0)
    model = resnet20().eval()
    # Non-trivial running statistics, so that folding has something to fold.
    rng = np.random.default_rng(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.array[...] = rng.standard_normal(m.num_features) * 0.1
            m.running_var.array[...] = rng.uniform(0.5, 1.5, m.num_features)
    x = somanet.tensor(_x(3, 3, 32, 32))
    with somanet.no_grad():
        folded = model(x)
    out = model(x)  # gradient recording on: the modules run one by one
    assert folded.dtype == np.float32
    np.testing.assert_allclose(folded.array, out.array, rtol=1e-4, atol=1e-4)
