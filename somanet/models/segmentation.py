"""The classic U-Net for semantic segmentation (Ronneberger, Fischer and Brox, 2015).

An encoder of ``depth`` stages halves the resolution (2x2 max-pool) and doubles the channels; a
decoder mirrors it with 2x2 transposed convolutions, concatenating the encoder's features of the same
resolution (the skip connections) before each pair of 3x3 convolutions; a 1x1 convolution gives
``num_classes`` logits per pixel. Unlike the original paper the 3x3 convolutions are padded (the output
has the input's size) and followed by batch norm, as in most modern re-implementations.

Train it with ``nn.CrossEntropyLoss`` on ``(N, C, H, W)`` logits and ``(N, H, W)`` int64 class maps;
``somanet.train.metrics.JaccardIndex`` and ``PixelAccuracy`` score the predictions.

>>> import somanet
>>> model = UNet(in_channels=3, num_classes=4, base_channels=8, depth=2)
>>> model(somanet.randn(2, 3, 32, 32)).shape
(2, 4, 32, 32)
"""
from .. import nn
from ..autograd import grad_mode
from ..autograd.tensor import Tensor
from ..ops.creation import tensor
from ..ops.shape import cat

__all__ = ["UNet", "DoubleConv"]


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions (padding 1), each followed by batch norm (if ``batch_norm``) and ReLU."""

    def __init__(self, in_channels, out_channels, batch_norm=True):
        layers = []
        for cin in (in_channels, out_channels):
            layers.append(nn.Conv2d(cin, out_channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class _Down(nn.Sequential):
    def __init__(self, cin, cout, batch_norm):
        super().__init__(nn.MaxPool2d(2), DoubleConv(cin, cout, batch_norm))


class _Up(nn.Module):
    def __init__(self, cin, cout, batch_norm):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv = DoubleConv(2 * cout, cout, batch_norm)

    def forward(self, x, skip):
        return self.conv(cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """U-Net for semantic segmentation: ``(N, in_channels, H, W)`` images to ``(N, num_classes, H, W)``
    per-pixel class logits.

    Args:
        in_channels: channels of the input images.
        num_classes: output classes (the background included).
        base_channels: channels of the first stage; stage ``i`` has ``base_channels * 2**i``.
        depth: number of down-sampling steps; ``H`` and ``W`` must be multiples of ``2**depth``.
        batch_norm: batch norm after every 3x3 convolution (their bias is then dropped).

    Attributes ``inc`` (first double conv), ``downs``, ``ups`` (``ModuleList``) and ``outc`` (the 1x1
    head) hold the layers.
    """

    def __init__(self, in_channels=3, num_classes=2, base_channels=64, depth=4, batch_norm=True):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes),
                            ("base_channels", base_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"UNet: {name} must be a positive int, got {value!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"UNet: depth must be a non-negative int, got {depth!r}")
        self.in_channels, self.num_classes, self.depth = in_channels, num_classes, depth
        widths = [base_channels * 2 ** i for i in range(depth + 1)]
        self.inc = DoubleConv(in_channels, widths[0], batch_norm)
        self.downs = nn.ModuleList([_Down(widths[i], widths[i + 1], batch_norm) for i in range(depth)])
        self.ups = nn.ModuleList([_Up(widths[i + 1], widths[i], batch_norm) for i in reversed(range(depth))])
        self.outc = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x):
        """Per-pixel class logits ``(N, num_classes, H, W)`` of images ``x`` ``(N, in_channels, H, W)``."""
        shape = tuple(x.shape)
        step = 2 ** self.depth
        if len(shape) != 4 or shape[1] != self.in_channels or shape[2] % step or shape[3] % step:
            raise ValueError(f"UNet: expected images (N, {self.in_channels}, H, W) with H and W multiples of "
                             f"{step} (2**depth), got shape {shape}")
        h = self.inc(x)
        skips = [h]
        for down in self.downs:
            h = down(h)
            skips.append(h)
        skips.pop()
        for up in self.ups:
            h = up(h, skips.pop())
        return self.outc(h)

    def predict(self, images):
        """Predicted class maps ``(N, H, W)`` (int64 Tensor) of ``images``, in eval mode without gradients."""
        was_training = self.training
        self.eval()
        try:
            with grad_mode.no_grad():
                logits = self(images if isinstance(images, Tensor) else tensor(images))
        finally:
            self.train(was_training)
        return logits.argmax(dim=1)

    def extra_repr(self):
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}, depth={self.depth}"
