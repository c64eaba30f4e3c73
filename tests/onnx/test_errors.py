"""What somanet.onnx.export refuses, and that each refusal says what and where."""
import builtins

import numpy as np
import pytest

import somanet
import somanet.onnx
from somanet import nn

pytest.importorskip("onnx")


class Rolling(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return somanet.roll(self.fc(x), 1, 1)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Rolling()

    def forward(self, x):
        return self.inner(x)


def test_unsupported_op_names_the_op_and_the_module():
    with pytest.raises(somanet.onnx.UnsupportedOperatorError, match=r"Roll .*in inner") as info:
        somanet.onnx.export(Block(), somanet.randn(2, 4))
    assert info.value.op_name == "Roll"
    assert isinstance(info.value, somanet.onnx.ExportError)


def test_size_dependent_control_flow_is_refused_for_dynamic_axes():
    class Branchy(nn.Module):
        def forward(self, x):
            return x.exp() if x.shape[0] > 2 else x.sin()

    with pytest.raises(somanet.onnx.ExportError, match="control flow"):
        somanet.onnx.export(Branchy(), somanet.randn(2, 3), dynamic_axes={"x": [0]})
    somanet.onnx.export(Branchy(), somanet.randn(2, 3))  # fine with fixed sizes


def test_size_dependent_constant_is_refused_for_dynamic_axes():
    class Noise(nn.Module):
        def forward(self, x):
            rng = np.random.default_rng(x.shape[0])
            return x + somanet.tensor(rng.standard_normal(x.shape).astype(np.float32))

    with pytest.raises(somanet.onnx.ExportError, match="constant .* dynamic axes"):
        somanet.onnx.export(Noise(), somanet.randn(2, 3), dynamic_axes={"x": {0: "batch"}})


def test_in_place_updates_outside_autograd_are_refused():
    class InPlace(nn.Module):
        def forward(self, x):
            y = x * 2
            y.add_(1)
            return y.exp()

    with pytest.raises(somanet.onnx.ExportError, match="in place"):
        somanet.onnx.export(InPlace(), somanet.randn(2, 3))


def test_values_taken_outside_the_ops_are_refused():
    class Leaky(nn.Module):
        def forward(self, x):
            y = x * 2
            return y + somanet.Tensor(y.array[:, :1])  # a view of a computed value

    with pytest.raises(somanet.onnx.ExportError, match="outside somanet's ops"):
        somanet.onnx.export(Leaky(), somanet.randn(2, 3))


def test_active_dropout_is_refused():
    class Drop(nn.Module):
        def forward(self, x):
            return nn.functional.dropout(x, 0.5, training=True)

    with pytest.raises(somanet.onnx.ExportError, match="dropout"):
        somanet.onnx.export(Drop(), somanet.randn(4, 8))


def test_argument_errors():
    model = nn.Linear(3, 2)
    x = somanet.randn(2, 3)
    with pytest.raises(ValueError, match="opset_version"):
        somanet.onnx.export(model, x, opset_version=9)
    with pytest.raises(ValueError, match="neither inputs"):
        somanet.onnx.export(model, x, dynamic_axes={"nope": [0]})
    with pytest.raises(TypeError, match="args"):
        somanet.onnx.export(model, "x")
    with pytest.warns(UserWarning, match="not used"):
        somanet.onnx.export(lambda a, b: a * 2, (x, somanet.randn(1)))


def test_missing_onnx_package_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(ImportError, match=r"somanet\[onnx\]"):
        somanet.onnx.export(nn.Linear(2, 2), somanet.randn(1, 2))


def test_masks_read_as_arrays_are_refused():
    # MultiheadAttention reads its masks as arrays: the graph would freeze the traced mask.
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    model = nn.TransformerEncoder(layer, 1)
    pad = np.zeros((2, 5), bool)
    pad[1, 3:] = True
    with pytest.raises(somanet.onnx.ExportError, match="'mask' .* change with the input values"):
        somanet.onnx.export(model, (somanet.randn(2, 5, 8), None, somanet.tensor(pad)))


def test_random_constants_are_refused():
    class Noisy(nn.Module):
        def forward(self, x):
            return x + somanet.randn(*x.shape)

    with pytest.raises(somanet.onnx.ExportError, match="at random"):
        somanet.onnx.export(Noisy(), somanet.randn(2, 3))
