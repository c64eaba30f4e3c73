"""somanet.onnx.export: every model of the zoo (and a spread of single layers) exported, checked with
onnx.checker and run in onnxruntime, against somanet's own outputs; dynamic axes; the file and naming
options; and the errors for what cannot be exported.

Tolerance: float32 outputs agree with somanet's to rtol 1e-4 / atol 1e-5 (ONNX runtimes sum in other
orders; the differences seen are around 1e-6)."""
import subprocess
import sys

import numpy as np
import pytest

import somanet
import somanet.onnx
from somanet import nn
from somanet import models

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

RTOL, ATOL = 1e-4, 1e-5


def _randomize(model, seed=0):
    """Random values in every float parameter and buffer (zero-initialised heads and unit batch-norm
    statistics would hide mistakes)."""
    rng = np.random.default_rng(seed)
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t is None or t.array.dtype.kind != "f":
            continue
        values = rng.standard_normal(t.array.shape).astype(t.array.dtype) * 0.3
        if name.endswith("running_var"):
            values = np.abs(values) + 0.5
        t.array[...] = values
    return model


def _flat(out):
    from somanet.onnx._export import _output_list
    return [t.array for _, t in _output_list(out)]


def _run(proto, feeds):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, {n: np.asarray(f.array if hasattr(f, "array") else f) for n, f in zip(names, feeds)})


def roundtrip(model, args, others=(), **kw):
    """Export ``model`` on ``args``, check the model, and compare onnxruntime with somanet on ``args`` and on
    each tuple of ``others`` (inputs of other sizes, for dynamic axes). Returns the ModelProto."""
    model.eval()
    proto = somanet.onnx.export(model, args, **kw)
    onnx.checker.check_model(proto, full_check=True)
    for inputs in (args,) + tuple(others):
        inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        with somanet.no_grad():
            expected = _flat(model(*inputs))
        got = _run(proto, [a for a in inputs if a is not None])
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.shape == e.shape
            np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL)
    return proto


def _ids(shape, vocab, seed=0):
    return somanet.tensor(np.random.default_rng(seed).integers(0, vocab, shape).astype(np.int64))


# --------------------------------------------------------------------------- the zoo
def test_mlp_with_batch_norm_and_dynamic_batch():
    model = _randomize(models.MLP(12, [16, 8], 3, activation="gelu", dropout=0.2, batch_norm=True))
    proto = roundtrip(model, (somanet.randn(4, 12),), [(somanet.randn(7, 12),)], input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 3
    assert {i.name for i in proto.graph.initializer} >= {"0.weight", "1.running_mean", "1.running_var"}


def test_lenet():
    roundtrip(_randomize(models.LeNet5()), (somanet.randn(2, 1, 28, 28),))


def test_cifar_resnet_with_option_a_shortcuts():
    model = _randomize(models.resnet20())
    roundtrip(model, (somanet.randn(2, 3, 16, 16),), [(somanet.randn(1, 3, 16, 16),)],
              dynamic_axes={"x": [0]})


def test_imagenet_resnet_bottleneck():
    model = _randomize(models.ResNet(models.Bottleneck, [1, 1, 1, 1], num_classes=5))
    proto = roundtrip(model, (somanet.randn(1, 3, 32, 32),), [(somanet.randn(3, 3, 32, 32),)],
                      dynamic_axes={"x": {0: "n"}})
    kinds = {node.op_type for node in proto.graph.node}
    assert {"Conv", "BatchNormalization", "MaxPool", "GlobalAveragePool", "Gemm"} <= kinds


def test_vgg_with_batch_norm():
    features = models.make_vgg_layers([8, "M", 16, "M", 16, "M"], batch_norm=True)
    model = _randomize(models.VGG(features, num_classes=4, pool_size=3, hidden_features=16))
    roundtrip(model, (somanet.randn(2, 3, 16, 16),))  # 2x2 maps to 3x3 pooling: unequal windows


def test_alexnet():
    roundtrip(_randomize(models.AlexNet(num_classes=5, hidden_features=16)), (somanet.randn(1, 3, 67, 67),))


@pytest.mark.parametrize("cell, vocab", [("lstm", 10), ("gru", 40), ("rnn", 10)])
def test_char_rnn(cell, vocab):
    # vocab 10 reads the embedding table inside the LSTM op; 40 embeds first: both paths export.
    model = _randomize(models.CharRNN(vocab, 8, 12, num_layers=2, cell=cell))
    roundtrip(model, (_ids((2, 5), vocab),), [(_ids((3, 9), vocab, 1),)], dynamic_axes={"idx": {0: "b", 1: "t"}})


def test_bidirectional_lstm_with_initial_state():
    lstm = _randomize(nn.LSTM(6, 5, num_layers=2, bidirectional=True, batch_first=True))
    x, h, c = somanet.randn(3, 4, 6), somanet.randn(4, 3, 5), somanet.randn(4, 3, 5)
    proto = roundtrip(lstm, (x, (h, c)))
    assert sum(node.op_type == "LSTM" for node in proto.graph.node) == 4


def test_gru_cell_and_lstm_cell():
    class Cells(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru, self.lstm = nn.GRUCell(4, 6), nn.LSTMCell(6, 3)

        def forward(self, x, h):
            h = self.gru(x, h)
            return self.lstm(h), self.gru(x), self.rnn(h, h[:, :5])

    cells = Cells()
    cells.rnn = nn.RNNCell(6, 5, nonlinearity="relu")
    roundtrip(_randomize(cells), (somanet.randn(2, 4), somanet.randn(2, 6)))


@pytest.mark.parametrize("norm_first, activation", [(False, "relu"), (True, "gelu")])
def test_transformer_encoder_with_dynamic_batch_and_length(norm_first, activation):
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, activation=activation, batch_first=True,
                                       norm_first=norm_first)
    model = _randomize(nn.TransformerEncoder(layer, 2))
    roundtrip(model, (somanet.randn(2, 5, 16),), [(somanet.randn(3, 8, 16),), (somanet.randn(1, 2, 16),)],
              dynamic_axes={"src": {0: "batch", 1: "seq"}})


def test_gpt_with_dynamic_batch_and_length():
    model = _randomize(models.GPT(30, block_size=16, n_layer=2, n_head=2, d_model=16))
    proto = roundtrip(model, (_ids((2, 6), 30),), [(_ids((1, 16), 30, 1),), (_ids((4, 3), 30, 2),)],
                      dynamic_axes={"idx": {0: "batch", 1: "seq"}, "output": {0: "batch", 1: "seq"}})
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "seq", 30]


def test_gpt2_with_dynamic_axes():
    config = models.GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=2, n_head=2)
    model = _randomize(models.GPT2LMHeadModel(config))
    proto = roundtrip(model, (_ids((2, 5), 40),), [(_ids((3, 11), 40, 1),)],
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}})
    assert [o.name for o in proto.graph.output] == ["logits"]
    names = {i.name for i in proto.graph.initializer}
    assert "transformer.wte.weight" in names and "transformer.h.1.attn.c_attn.weight" in names


def test_t5():
    config = models.T5Config(vocab_size=30, d_model=16, d_kv=4, d_ff=24, num_layers=2, num_heads=4,
                             relative_attention_num_buckets=8, relative_attention_max_distance=16,
                             feed_forward_proj="gated-gelu")
    model = _randomize(models.T5ForConditionalGeneration(config))
    src, tgt = _ids((2, 6), 30), _ids((2, 4), 30, 1)
    roundtrip(model, (src, None, tgt), [(_ids((3, 6), 30, 2), None, _ids((3, 4), 30, 3))],
              dynamic_axes={"input_ids": {0: "batch"}, "decoder_input_ids": {0: "batch"}})


def test_vision_transformer():
    model = _randomize(models.VisionTransformer(16, 8, num_classes=3, d_model=16, num_layers=2, num_heads=2,
                                                mlp_dim=32))
    roundtrip(model, (somanet.randn(2, 3, 16, 16),), [(somanet.randn(1, 3, 16, 16),)], dynamic_axes={"x": [0]})


def test_bert_with_dynamic_axes():
    if not hasattr(models, "BertModel"):
        pytest.skip("no BERT in this build")
    config = models.BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=16)
    model = _randomize(models.BertModel(config))
    proto = roundtrip(model, (_ids((2, 5), 30),), [(_ids((3, 9), 30, 1),)], input_names=["input_ids"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}})
    assert [o.name for o in proto.graph.output] == ["last_hidden_state", "pooler_output"]


# --------------------------------------------------------------------------- single layers
class Zoo(nn.Module):
    """A spread of layers and functional ops in one graph."""

    def __init__(self):
        super().__init__()
        self.conv1d = nn.Conv1d(3, 4, 3, padding=1, dilation=1)
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1, groups=3)
        self.deconv = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1)
        self.gn = nn.GroupNorm(2, 4)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.ln = nn.LayerNorm([5, 5], elementwise_affine=False)
        self.emb = nn.Embedding(10, 5)
        self.prelu = nn.PReLU(4)

    def forward(self, img, seq, ids):
        F = nn.functional
        a = self.deconv(self.conv(img))                              # (N, 4, 8, 8)
        a = self.prelu(self.gn(a))
        a = self.pool(F.leaky_relu(a, 0.1))                          # (N, 4, 5, 5): ceil mode
        a = self.ln(F.hardtanh(F.elu(a), -0.5, 2.0))
        b = F.max_pool1d(F.silu(self.conv1d(seq)), 2)                # (N, 4, 3)
        c = F.adaptive_avg_pool2d(a, (3, 3)).flatten(1)              # (N, 36)
        d = somanet.cat([c, b.reshape(b.shape[0], -1)], dim=1)       # (N, 48)
        d = F.softplus(d, beta=2.0) - F.sigmoid(d).square() + d.clamp(-1.0, 1.0) * F.mish(d)
        e = self.emb(ids).mean(1)                                    # (N, 5)
        s = somanet.stack([e, e.flip(1)], dim=1).sum(1)              # (N, 5)
        w = somanet.where(s > 0, s, s.exp() - 1).log_softmax(-1)
        return d.softmax(-1), w, d.max(dim=1)[0], d.argmax(dim=1), (d * d).sum(-1).sqrt()


def test_assorted_layers_and_ops():
    model = _randomize(Zoo())
    args = (somanet.randn(2, 3, 8, 8), somanet.randn(2, 3, 6), _ids((2, 4), 10))
    roundtrip(model, args, [(somanet.randn(3, 3, 8, 8), somanet.randn(3, 3, 6), _ids((3, 4), 10, 1))],
              dynamic_axes={"img": {0: "batch"}, "seq": {0: "batch"}, "ids": {0: "batch"}})


ACTIVATIONS = {
    "selu": lambda F, x: F.selu(x), "celu": lambda F, x: F.celu(x, 0.7), "softsign": lambda F, x: F.softsign(x),
    "logsigmoid": lambda F, x: F.logsigmoid(x), "softshrink": lambda F, x: F.softshrink(x, 0.3),
    "hardshrink": lambda F, x: F.hardshrink(x, 0.3), "tanhshrink": lambda F, x: F.tanhshrink(x),
    "threshold": lambda F, x: F.threshold(x, 0.1, -2.0), "glu": lambda F, x: F.glu(x, -1),
    "hardsigmoid": lambda F, x: F.hardsigmoid(x), "hardswish": lambda F, x: F.hardswish(x),
    "relu6": lambda F, x: F.relu6(x * 4), "gelu_tanh": lambda F, x: F.gelu(x, approximate="tanh"),
    "elementwise": lambda F, x: (x.abs().sqrt() + x.sign() * x.floor() - x.ceil() + (x * 3).round()
                                 + x.remainder(0.7) - x.fmod(0.4) + x.sin() * x.cos() + x.tanh().reciprocal()
                                 + x.exp().log1p() + x.expm1() + x.rsqrt().nan_to_num(0.0, 1.0, -1.0)
                                 + (x > 0.1).float() + ((x < 0.3) & (x != 0)).float() + x.pow(2)),
}


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(nn.functional, x)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_and_elementwise(name):
    x = somanet.tensor(np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32))
    roundtrip(Lambda(ACTIVATIONS[name]), (x,))


class Shapes(nn.Module):
    """Indexing, reductions and layout ops."""

    def forward(self, x, idx):
        a = x.triu(1) + x.tril(-1).flip(0)                          # (4, 6)
        b = a.index_select(1, idx) + a.gather(1, idx.expand(4, 3))  # (4, 3)
        c = a.masked_fill(a > 0.5, -1.0)
        parts = c.chunk(3, dim=1)
        u = somanet.stack(c.unbind(0), dim=1)                       # (6, 4)
        d = somanet.cat([parts[0], parts[2].repeat(1, 2)], dim=1)   # (4, 6)
        vals, where = d.max(dim=1, keepdim=True)
        e = d.var(1) + d.std(0).sum() + d.logsumexp(1) + d.cumsum(1)[:, -1] + d.norm(dim=1) + d.prod(1)
        f = d.amax(0) - d.amin(0) + d[1:, ::2].mean(0).repeat(2)
        g = nn.functional.pad(a[None, None], (1, 2, 0, 1), value=0.5)
        return b, u, vals, where, e, f, g, d.argmin(0), x[idx], a.permute(1, 0).unsqueeze(0).squeeze(0)


def test_indexing_reductions_and_layout():
    x = somanet.randn(4, 6)
    roundtrip(Shapes(), (x, somanet.tensor(np.array([2, 0, 3]))))


class Attention(nn.Module):
    """Self- and cross-attention, returned weights, masks, grouped-query heads."""

    def __init__(self):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.cross = nn.MultiheadAttention(8, 4)
        self.kv = nn.Linear(8, 8)

    def forward(self, x, memory):
        F = nn.functional
        a, w = self.self_attn(x, x, x, need_weights=True)
        m = memory.transpose(0, 1)
        b, w2 = self.cross(a.transpose(0, 1), m, m, need_weights=True, average_attn_weights=False)
        q = a.reshape(2, 5, 4, 2).transpose(1, 2)                    # (N, 4 heads, L, 2)
        kv = self.kv(memory).reshape(2, 3, 4, 2)[:, :, :2].transpose(1, 2)   # (N, 2 heads, S, 2)
        keep = somanet.tensor(np.array([[True, True, False]] * 5))
        c = F.scaled_dot_product_attention(q, kv, kv, attn_mask=keep, enable_gqa=True)
        bias = somanet.tensor(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3))
        d = F.scaled_dot_product_attention(q, kv[:, :1], kv[:, :1], attn_mask=bias, scale=0.3)
        e = F.scaled_dot_product_attention(q, q, q, is_causal=True)
        return w, b, w2, c, d, e


def test_attention_variants():
    model = _randomize(Attention())
    roundtrip(model, (somanet.randn(2, 5, 8), somanet.randn(2, 3, 8)))


class Pools(nn.Module):
    def forward(self, x):
        F = nn.functional
        return (F.adaptive_max_pool2d(x, 2), F.adaptive_max_pool2d(x, 1), F.pixel_shuffle(x, 2),
                F.avg_pool2d(x, 3, 2, 1, divisor_override=4), F.max_pool2d(x, 3, 2, 1, dilation=1, ceil_mode=True),
                F.adaptive_avg_pool1d(x.flatten(2), 5), F.instance_norm(x), F.rms_norm(x, (4,)))


def test_pooling_variants():
    roundtrip(Pools(), (somanet.randn(2, 4, 4, 4),))


@pytest.mark.parametrize("opset", [13, 18, 20])
def test_other_opsets(opset):
    layer = nn.TransformerEncoderLayer(8, 2, 16, activation="gelu", batch_first=True, norm_first=True)
    model = _randomize(nn.TransformerEncoder(layer, 1))
    proto = roundtrip(model, (somanet.randn(2, 3, 8),), opset_version=opset)
    kinds = {node.op_type for node in proto.graph.node}
    assert ("LayerNormalization" in kinds) == (opset >= 17)
    assert ("Gelu" in kinds) == (opset >= 20)
    assert proto.opset_import[0].version == opset


# --------------------------------------------------------------------------- files and names
def test_writes_files_and_keeps_training_mode(tmp_path):
    model = _randomize(models.MLP(4, [8], 2, dropout=0.5)).train()
    x = somanet.randn(3, 4)
    path = tmp_path / "mlp.onnx"
    proto = somanet.onnx.export(model, x, str(path), output_names=["y"])
    assert model.training  # the mode is restored
    assert onnx.load(str(path)) == proto
    with open(tmp_path / "again.onnx", "wb") as fh:
        somanet.onnx.export(model, (x,), fh)
    model.eval()
    with somanet.no_grad():
        expected = model(x).array
    np.testing.assert_allclose(_run(onnx.load(str(tmp_path / "again.onnx")), [x])[0], expected, rtol=RTOL, atol=ATOL)
    assert [i.name for i in proto.graph.input] == ["input"]


def test_keyword_arguments_become_named_inputs():
    config = models.GPT2Config(vocab_size=20, n_positions=8, n_embd=8, n_layer=1, n_head=2)
    model = _randomize(models.GPT2LMHeadModel(config))
    ids, pos = _ids((2, 4), 20), somanet.tensor(np.array([[0, 1, 2, 3], [0, 0, 1, 2]]))
    proto = somanet.onnx.export(model.eval(), (ids, {"position_ids": pos}))
    assert [i.name for i in proto.graph.input] == ["input_ids", "position_ids"]
    for p in (pos, somanet.tensor(np.array([[3, 2, 1, 0], [1, 1, 1, 1]]))):
        with somanet.no_grad():
            expected = model(ids, position_ids=p).logits.array
        np.testing.assert_allclose(_run(proto, [ids, p])[0], expected, rtol=RTOL, atol=ATOL)


def test_import_somanet_does_not_load_onnx():
    code = "import sys, somanet, somanet.onnx; assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_supported_ops_and_custom_translation():
    assert {"Linear", "ConvNd", "LSTMSequence", "ScaledDotProductAttention", "LayerNorm"} <= set(
        somanet.onnx.supported_ops())

    class Cube(somanet.Function):
        def forward(ctx, a):
            return a ** 3

    class M(nn.Module):
        def forward(self, x):
            return Cube.apply(x) + 1

    x = somanet.randn(2, 3)
    with pytest.raises(somanet.onnx.UnsupportedOperatorError, match="Cube"):
        somanet.onnx.export(M(), x)

    @somanet.onnx.register_op(Cube)
    def _cube(op):
        v = op.x(0)
        return op.emit("Mul", [op.emit("Mul", [v, v]), v])

    roundtrip(M(), (x,))


def test_in_place_ops_inside_autograd():
    # On values that require grad, in-place ops run out of place and the tensor takes the result over.
    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 4)

        def forward(self, x):
            y = self.fc(x)
            y.add_(1.0)
            y.mul_(y)
            return y.relu_()

    roundtrip(_randomize(InPlace()), (somanet.randn(2, 3),))
