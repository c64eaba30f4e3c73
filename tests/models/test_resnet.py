"""ResNet-20 (CIFAR layout, both shortcut options) and ResNet-18 (ImageNet layout) against PyTorch
replicas built from the same layers: state_dict names, outputs, input and parameter gradients, in train
and eval mode, running statistics included."""
import numpy as np
import pytest

import somanet
import somanet.nn as nn
from somanet.models import LeNet5, resnet18, resnet20, resnet50
from reference import assert_close, compare_modules, copy_state, torch_or_skip

torch = torch_or_skip()
tnn = torch.nn
TF = torch.nn.functional


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# --------------------------------------------------------------------------- PyTorch replicas
class TorchBasicBlock(tnn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU()
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class TorchShortcutA(tnn.Module):
    def __init__(self, stride, pad):
        super().__init__()
        self.stride, self.pad = stride, pad

    def forward(self, x):
        return TF.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad))


def torch_resnet20(shortcut, num_classes=10):
    model = tnn.Module()
    model.conv1 = tnn.Conv2d(3, 16, 3, 1, 1, bias=False)
    model.bn1 = tnn.BatchNorm2d(16)
    inplanes = 16
    for i, (planes, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
        blocks = []
        for b in range(3):
            s = stride if b == 0 else 1
            down = None
            if s != 1 or inplanes != planes:
                if shortcut == "A":
                    down = TorchShortcutA(s, (planes - inplanes) // 2)
                else:
                    down = tnn.Sequential(tnn.Conv2d(inplanes, planes, 1, s, bias=False), tnn.BatchNorm2d(planes))
            blocks.append(TorchBasicBlock(inplanes, planes, s, down))
            inplanes = planes
        setattr(model, f"layer{i + 1}", tnn.Sequential(*blocks))
    model.fc = tnn.Linear(64, num_classes)

    def forward(x):
        x = TF.relu(model.bn1(model.conv1(x)))
        x = model.layer3(model.layer2(model.layer1(x)))
        return model.fc(TF.adaptive_avg_pool2d(x, 1).flatten(1))

    model.forward = forward
    return model


def torch_resnet18(num_classes):
    model = tnn.Module()
    model.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
    model.bn1 = tnn.BatchNorm2d(64)
    inplanes = 64
    for i, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
        blocks = []
        for b in range(2):
            s = stride if b == 0 else 1
            down = None
            if s != 1 or inplanes != planes:
                down = tnn.Sequential(tnn.Conv2d(inplanes, planes, 1, s, bias=False), tnn.BatchNorm2d(planes))
            blocks.append(TorchBasicBlock(inplanes, planes, s, down))
            inplanes = planes
        setattr(model, f"layer{i + 1}", tnn.Sequential(*blocks))
    model.fc = tnn.Linear(512, num_classes)

    def forward(x):
        x = TF.max_pool2d(TF.relu(model.bn1(model.conv1(x))), 3, 2, 1)
        x = model.layer4(model.layer3(model.layer2(model.layer1(x))))
        return model.fc(TF.adaptive_avg_pool2d(x, 1).flatten(1))

    model.forward = forward
    return model


def _randomise_norms(t_model, seed=0):
    """Non-trivial batch-norm affine parameters and running statistics, so eval mode is a real test."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in t_model.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def _state_arrays(module):
    return {k: (v.array if hasattr(v, "data") else v) for k, v in module.state_dict().items()}


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_resnet20_matches_torch_in_train_and_eval(shortcut):
    torch.manual_seed(0)
    s_model = resnet20(num_classes=10, shortcut=shortcut)
    t_model = torch_resnet20(shortcut)
    assert list(s_model.state_dict()) == list(t_model.state_dict())
    n_params = sum(p.numel() for p in s_model.parameters())
    assert n_params == sum(p.numel() for p in t_model.parameters())
    if shortcut == "A":
        assert n_params == 269722  # the paper's "0.27M"
    _randomise_norms(t_model)
    copy_state(t_model, s_model)
    # float32 forward in training mode (batch statistics) and in eval mode (running statistics).
    x = _x(4, 3, 32, 32)
    for mode in ("train", "eval"):
        getattr(s_model, mode)()
        getattr(t_model, mode)()
        with somanet.no_grad(), torch.no_grad():
            assert_close(s_model(somanet.tensor(x)), t_model(torch.tensor(x)), rtol=1e-3, atol=1e-4, what=mode)
    # Gradients through twenty layers in float64, where a ReLU cannot flip on a rounding difference: two
    # training steps (running statistics updated twice), then eval mode.
    t_model.double().train()
    s_model.double().train()
    copy_state(t_model, s_model)
    for step in range(2):
        compare_modules(s_model, t_model, _x(2, 3, 32, 32, seed=step).astype(np.float64), seed=step, rtol=1e-7,
                        atol=1e-9)
    t_state = t_model.state_dict()
    for name, value in _state_arrays(s_model).items():
        np.testing.assert_allclose(value, t_state[name].numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
    s_model.eval()
    t_model.eval()
    out = compare_modules(s_model, t_model, _x(2, 3, 32, 32, seed=7).astype(np.float64), rtol=1e-7, atol=1e-9)
    assert out.dtype == np.float64 and out.shape == (2, 10)


def test_resnet18_matches_torch_and_has_torchvision_names():
    torch.manual_seed(0)
    s_model = resnet18(num_classes=7)
    t_model = torch_resnet18(7)
    names = list(s_model.state_dict())
    assert names == list(t_model.state_dict())
    assert len(names) == 122
    for name in ["conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                 "layer4.1.bn2.num_batches_tracked", "fc.bias"]:
        assert name in names
    _randomise_norms(t_model, seed=1)
    t_model.double()
    s_model.double()
    copy_state(t_model, s_model)
    compare_modules(s_model, t_model, _x(2, 3, 48, 40).astype(np.float64), rtol=1e-7, atol=1e-9)
    s_model.eval()
    t_model.eval()
    compare_modules(s_model, t_model, _x(2, 3, 48, 40, seed=1).astype(np.float64), rtol=1e-7, atol=1e-9)


def test_other_zoo_models_build_and_run():
    model = resnet50(num_classes=5)
    assert model.layer1[0].conv3.weight.shape == (256, 64, 1, 1)
    assert model.fc.weight.shape == (5, 2048)
    model.eval()
    with somanet.no_grad():
        assert model(somanet.randn(1, 3, 32, 32)).shape == (1, 5)
    lenet = LeNet5(num_classes=10)
    assert lenet(somanet.randn(3, 1, 28, 28)).shape == (3, 10)
    assert sum(p.numel() for p in lenet.parameters()) == 61706
    with pytest.raises(ValueError, match=r"LeNet5.*\(N, C, 28, 28\).*\(3, 1, 32, 32\)"):
        lenet(somanet.randn(3, 1, 32, 32))
    with pytest.raises(ValueError, match="shortcut"):
        resnet20(shortcut="C")


def test_resnet_init_follows_torchvision():
    model = resnet20()
    conv = model.layer2[0].conv1.weight.array  # (32, 16, 3, 3): fan_out = 32 * 9
    assert abs(conv.std() - np.sqrt(2.0 / (32 * 9))) < 0.1 * np.sqrt(2.0 / (32 * 9))
    assert np.all(model.bn1.weight.array == 1) and np.all(model.bn1.bias.array == 0)
    zero = resnet20(zero_init_residual=True)
    assert np.all(zero.layer1[0].bn2.weight.array == 0)
    assert all(p.dtype == np.float32 for p in model.parameters())


def test_resnet20_learns_a_tiny_problem():
    """A few SGD steps on a fixed batch drive the loss down: the whole graph trains end to end."""
    from somanet import optim

    rng = np.random.default_rng(0)
    x = somanet.tensor(rng.standard_normal((16, 3, 32, 32)).astype(np.float32))
    y = somanet.tensor(rng.integers(0, 4, 16))
    model = resnet20(num_classes=4)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
