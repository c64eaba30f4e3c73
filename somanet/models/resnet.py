"""Residual networks (He et al., 2015): the CIFAR layout (ResNet-20/32/44/56/110) and the ImageNet layout
(ResNet-18/34/50/101/152) with torchvision's module names, so a torchvision ``state_dict`` loads as is.
"""
from .. import nn
from ..nn import functional as F
from ..nn import init
from ..nn.utils.fusion import conv_bn

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "CifarResNet", "resnet20", "resnet32", "resnet44", "resnet56",
           "resnet110", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1):
    """3x3 convolution with padding and no bias (the following batch norm has one)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation, groups=groups,
                     bias=False, dilation=dilation)


def conv1x1(in_planes, out_planes, stride=1):
    """1x1 convolution without bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection:
    ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, ``(N, inplanes, H, W) -> (N, planes, H/stride, W/stride)``.

    ``downsample`` (a module or None for identity) adapts the shortcut when the shape changes.
    """

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=None):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock: only groups=1 and base_width=64 are supported")
        if dilation > 1:
            raise NotImplementedError("BasicBlock: dilation > 1 is not supported")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(conv_bn(self.conv1, self.bn1, x))
        out = conv_bn(self.conv2, self.bn2, out)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, as in torchvision's "ResNet v1.5"), 1x1 expand by 4, each with
    batch norm, plus the shortcut: ``(N, inplanes, H, W) -> (N, planes * 4, H/stride, W/stride)``."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=None):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(conv_bn(self.conv1, self.bn1, x))
        out = self.relu(conv_bn(self.conv2, self.bn2, out))
        out = conv_bn(self.conv3, self.bn3, out)
        return self.relu(out + identity)


def _init_weights(model, zero_init_residual):
    """torchvision's initialisation: He-normal (fan_out) convolutions, unit/zero batch-norm affine."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            init.constant_(m.weight, 1)
            init.constant_(m.bias, 0)
    if zero_init_residual:
        # Each residual branch then starts as zero, so every block begins as the identity.
        for m in model.modules():
            if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                init.constant_(m.bn3.weight, 0)
            elif isinstance(m, BasicBlock) and m.bn2.weight is not None:
                init.constant_(m.bn2.weight, 0)


class ResNet(nn.Module):
    """ImageNet-layout ResNet: ``conv1`` 7x7/2 -> ``bn1`` -> ReLU -> ``maxpool`` 3x3/2 -> ``layer1..4``
    (64, 128, 256, 512 planes times the block's expansion) -> ``avgpool`` (global) -> ``fc``.
    ``(N, 3, H, W) -> (N, num_classes)``; module names match torchvision's.
    """

    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False, groups=1, width_per_group=64,
                 norm_layer=None, in_channels=3):
        super().__init__()
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.inplanes = 64
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        _init_weights(self, zero_init_residual)

    def _make_layer(self, block, planes, blocks, stride=1):
        norm_layer = self._norm_layer
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       norm_layer(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width, self.dilation,
                        norm_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups, base_width=self.base_width,
                                dilation=self.dilation, norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(conv_bn(self.conv1, self.bn1, x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        return self.fc(x.flatten(1))


class ShortcutA(nn.Module):
    """The parameter-free "option A" shortcut of the CIFAR ResNets: subsample by ``stride`` and zero-pad
    the new channels, ``(N, C, H, W) -> (N, C + 2 * pad, H / stride, W / stride)``."""

    def __init__(self, stride, pad):
        super().__init__()
        self.stride = stride
        self.pad = pad

    def forward(self, x):
        # A 1x1 max pool with this stride is exactly the strided subsampling, as one op.
        x = F.max_pool2d(x, 1, self.stride) if self.stride != 1 else x
        return F.pad(x, (0, 0, 0, 0, self.pad, self.pad))

    def extra_repr(self):
        return f"stride={self.stride}, pad={self.pad}"


class CifarResNet(nn.Module):
    """CIFAR-layout ResNet (He et al., 2015, section 4.2) for ``(N, 3, 32, 32)`` images: ``conv1`` 3x3 16 ->
    ``bn1`` -> ReLU -> ``layer1`` (16 planes, 32x32) -> ``layer2`` (32, 16x16) -> ``layer3`` (64, 8x8) ->
    global average pool -> ``fc``. Depth is ``6 * n + 2`` for ``n`` blocks per stage.

    ``shortcut='A'`` (the paper's choice for CIFAR) subsamples and zero-pads channels when a stage starts;
    ``'B'`` uses a 1x1 convolution and batch norm (``downsample``, as in torchvision).
    """

    def __init__(self, block, layers, num_classes=10, shortcut="A", in_channels=3, zero_init_residual=False):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"CifarResNet: shortcut must be 'A' or 'B', got {shortcut!r}")
        self.shortcut = shortcut
        self.inplanes = 16
        self.conv1 = conv3x3(in_channels, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, 16, layers[0])
        self.layer2 = self._make_layer(block, 32, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 64, layers[2], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64 * block.expansion, num_classes)
        _init_weights(self, zero_init_residual)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        out = planes * block.expansion
        if stride != 1 or self.inplanes != out:
            if self.shortcut == "A":
                extra = out - self.inplanes
                if extra % 2:
                    raise ValueError("CifarResNet: option A needs an even number of new channels")
                downsample = ShortcutA(stride, extra // 2)
            else:
                downsample = nn.Sequential(conv1x1(self.inplanes, out, stride), nn.BatchNorm2d(out))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = out
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(conv_bn(self.conv1, self.bn1, x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def _cifar(depth, num_classes, **kwargs):
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
    n = (depth - 2) // 6
    return CifarResNet(BasicBlock, [n, n, n], num_classes=num_classes, **kwargs)


def resnet20(num_classes=10, **kwargs):
    """ResNet-20 for CIFAR-sized ``(N, 3, 32, 32)`` input (3 basic blocks per stage, 0.27 M parameters with
    the default option-A shortcut)."""
    return _cifar(20, num_classes, **kwargs)


def resnet32(num_classes=10, **kwargs):
    """ResNet-32, CIFAR layout (5 blocks per stage)."""
    return _cifar(32, num_classes, **kwargs)


def resnet44(num_classes=10, **kwargs):
    """ResNet-44, CIFAR layout (7 blocks per stage)."""
    return _cifar(44, num_classes, **kwargs)


def resnet56(num_classes=10, **kwargs):
    """ResNet-56, CIFAR layout (9 blocks per stage)."""
    return _cifar(56, num_classes, **kwargs)


def resnet110(num_classes=10, **kwargs):
    """ResNet-110, CIFAR layout (18 blocks per stage)."""
    return _cifar(110, num_classes, **kwargs)


def resnet18(num_classes=1000, **kwargs):
    """ResNet-18, ImageNet layout (basic blocks [2, 2, 2, 2]); torchvision's parameter names."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, **kwargs)


def resnet34(num_classes=1000, **kwargs):
    """ResNet-34, ImageNet layout (basic blocks [3, 4, 6, 3])."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes=num_classes, **kwargs)


def resnet50(num_classes=1000, **kwargs):
    """ResNet-50, ImageNet layout (bottlenecks [3, 4, 6, 3])."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, **kwargs)


def resnet101(num_classes=1000, **kwargs):
    """ResNet-101, ImageNet layout (bottlenecks [3, 4, 23, 3])."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes=num_classes, **kwargs)


def resnet152(num_classes=1000, **kwargs):
    """ResNet-152, ImageNet layout (bottlenecks [3, 8, 36, 3])."""
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes=num_classes, **kwargs)
