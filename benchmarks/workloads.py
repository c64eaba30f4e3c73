"""The workloads of the benchmark suite: each builds the same model in somanet and in PyTorch.

A ``Workload`` knows how to build its somanet model, its PyTorch twin (same parameter names, so the
PyTorch ``state_dict`` loads into somanet), one batch of data, the loss and the optimizer. From those,
``build_pair`` makes the four timed callables (training step and inference, each framework) from
identical weights, and ``check_pair`` verifies that both frameworks compute the same losses and logits
before anything is timed.

PyTorch is imported only by the callers that need it (it is passed in as ``torch``); the somanet half
of a workload runs without it, which is how the memory children measure somanet alone.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import somanet  # noqa: E402
from somanet import nn, optim  # noqa: E402
from somanet.models import (GPT, MLP, CharRNN, LeNet5, VisionTransformer, resnet20,  # noqa: E402
                            vgg11_bn)

VOCAB = 65


# =========================================================================== PyTorch twins
def torch_mlp(torch, sizes=(784, 512, 256, 10)):
    """``MLP(784, [512, 256], 10)``: Linear/ReLU pairs in one Sequential (indices 0, 2, 4 for the layers)."""
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_lenet5(torch):
    """PyTorch twin of ``LeNet5`` (the convolution benchmark's, one definition for both)."""
    from benchmarks.bench_conv import _torch_lenet
    return _torch_lenet(torch)


def _with_forward(model, forward):
    model.forward = forward
    return model


def torch_resnet20(torch, num_classes=10):
    """PyTorch twin of ``resnet20()`` (CIFAR layout, option-A shortcuts, torchvision-style names)."""
    tnn, F = torch.nn, torch.nn.functional

    class Block(tnn.Module):
        def __init__(self, inplanes, planes, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.stride, self.pad = stride, (planes - inplanes) // 2

        def forward(self, x):
            identity = x
            if self.stride != 1 or self.pad:
                identity = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad))
            out = F.relu(self.bn1(self.conv1(x)), inplace=True)
            return F.relu(self.bn2(self.conv2(out)) + identity, inplace=True)

    model = tnn.Module()
    model.conv1 = tnn.Conv2d(3, 16, 3, 1, 1, bias=False)
    model.bn1 = tnn.BatchNorm2d(16)
    inplanes = 16
    for i, (planes, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
        blocks = []
        for b in range(3):
            blocks.append(Block(inplanes, planes, stride if b == 0 else 1))
            inplanes = planes
        setattr(model, f"layer{i + 1}", tnn.Sequential(*blocks))
    model.fc = tnn.Linear(64, num_classes)

    def forward(x):
        x = F.relu(model.bn1(model.conv1(x)), inplace=True)
        x = model.layer3(model.layer2(model.layer1(x)))
        return model.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    return _with_forward(model, forward)


def torch_vgg(torch, cfg, batch_norm=True, num_classes=10, in_channels=3, pool_size=1, hidden_features=512,
              dropout=0.5):
    """PyTorch twin of ``somanet.models.VGG`` (torchvision's layout: ``features``, ``avgpool``, ``classifier``)."""
    tnn = torch.nn
    layers, channels = [], in_channels
    for v in cfg:
        if v == "M":
            layers.append(tnn.MaxPool2d(2, 2))
            continue
        layers.append(tnn.Conv2d(channels, v, 3, padding=1))
        if batch_norm:
            layers.append(tnn.BatchNorm2d(v))
        layers.append(tnn.ReLU(inplace=True))
        channels = v
    model = tnn.Module()
    model.features = tnn.Sequential(*layers)
    model.avgpool = tnn.AdaptiveAvgPool2d((pool_size, pool_size))
    model.classifier = tnn.Sequential(
        tnn.Linear(channels * pool_size * pool_size, hidden_features), tnn.ReLU(True), tnn.Dropout(dropout),
        tnn.Linear(hidden_features, hidden_features), tnn.ReLU(True), tnn.Dropout(dropout),
        tnn.Linear(hidden_features, num_classes))
    return _with_forward(model, lambda x: model.classifier(model.avgpool(model.features(x)).flatten(1)))


def torch_vit(torch, image_size=28, patch_size=7, in_channels=1, num_classes=10, d_model=64, num_layers=4,
              num_heads=4, mlp_dim=256, dropout=0.0, layer_norm_eps=1e-6):
    """PyTorch twin of ``somanet.models.VisionTransformer`` built from ``torch.nn`` (same names)."""
    tnn = torch.nn
    n_patches = (image_size // patch_size) ** 2
    model = tnn.Module()
    model.conv_proj = tnn.Conv2d(in_channels, d_model, patch_size, stride=patch_size)
    model.class_token = tnn.Parameter(torch.zeros(1, 1, d_model))
    model.pos_embedding = tnn.Parameter(torch.randn(1, n_patches + 1, d_model) * 0.02)
    model.dropout = tnn.Dropout(dropout)
    layer = tnn.TransformerEncoderLayer(d_model, num_heads, mlp_dim, dropout, activation="gelu",
                                        layer_norm_eps=layer_norm_eps, batch_first=True, norm_first=True)
    model.encoder = tnn.TransformerEncoder(layer, num_layers, norm=tnn.LayerNorm(d_model, eps=layer_norm_eps),
                                           enable_nested_tensor=False)
    model.head = tnn.Linear(d_model, num_classes)

    def forward(x):
        patches = model.conv_proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([model.class_token.expand(x.shape[0], -1, -1), patches], dim=1)
        tokens = model.dropout(tokens + model.pos_embedding)
        return model.head(model.encoder(tokens)[:, 0])

    return _with_forward(model, forward)


def _seq_twins():
    # The sequence twins live with the sequence benchmark; one definition serves both.
    from benchmarks.bench_seq import torch_char_rnn, torch_gpt
    return torch_char_rnn, torch_gpt


# =========================================================================== workloads
class Workload:
    """One benchmark workload: a model in both frameworks, a batch, a loss and an optimizer.

    ``kind`` is ``"image"`` (float input ``input_shape``, class targets) or ``"lm"`` (integer symbols
    ``(batch, T)``, a target per position). ``optimizer`` is ``("adam", kwargs)`` or ``("sgd", kwargs)``.
    """

    def __init__(self, key, title, batch, kind, input_shape, num_classes, somanet_model, torch_model,
                 optimizer=("adam", {"lr": 1e-3})):
        self.key, self.title, self.batch, self.kind = key, title, batch, kind
        self.input_shape, self.num_classes = input_shape, num_classes
        self._somanet_model, self._torch_model = somanet_model, torch_model
        self.optimizer = optimizer

    def __repr__(self):
        return f"Workload({self.key!r})"

    def data(self, seed=0):
        """One batch ``(x, y)`` as NumPy arrays (float32 images or int64 symbols; int64 targets)."""
        rng = np.random.default_rng(seed)
        if self.kind == "lm":
            x = rng.integers(0, self.num_classes, (self.batch,) + self.input_shape).astype(np.int64)
            y = rng.integers(0, self.num_classes, self.batch * self.input_shape[0]).astype(np.int64)
        else:
            x = rng.standard_normal((self.batch,) + self.input_shape).astype(np.float32)
            y = rng.integers(0, self.num_classes, self.batch).astype(np.int64)
        return x, y

    def somanet_model(self):
        return self._somanet_model()

    def torch_model(self, torch):
        return self._torch_model(torch)

    def logits(self, out):
        """The logits as ``(rows, classes)`` for the cross-entropy (language models: every position)."""
        if isinstance(out, tuple):
            out = out[0]
        return out.reshape(-1, self.num_classes) if self.kind == "lm" else out

    def somanet_optimizer(self, params):
        name, kwargs = self.optimizer
        return {"adam": optim.Adam, "sgd": optim.SGD}[name](params, **kwargs)

    def torch_optimizer(self, torch, params):
        name, kwargs = self.optimizer
        return {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[name](params, **kwargs)


_SGD = ("sgd", {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4})
_VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def _workloads():
    def gpt_twin(torch):
        return _seq_twins()[1](torch, 64, 4, 4, 128)

    def rnn_twin(cell):
        return lambda torch: _seq_twins()[0](torch, cell, 128, 256, 2)

    vit_cfg = dict(image_size=28, patch_size=7, in_channels=1, num_classes=10, d_model=64, num_layers=4,
                   num_heads=4, mlp_dim=256)
    return [
        Workload("mlp", "MLP 784-512-256-10", 128, "image", (784,), 10,
                 lambda: MLP(784, [512, 256], 10), torch_mlp),
        Workload("lenet", "LeNet-5 (28x28)", 64, "image", (1, 28, 28), 10, LeNet5, torch_lenet5, _SGD),
        Workload("resnet20", "ResNet-20 (CIFAR, 32x32)", 64, "image", (3, 32, 32), 10, resnet20, torch_resnet20,
                 _SGD),
        Workload("vgg11", "VGG-11-BN (32x32)", 32, "image", (3, 32, 32), 10,
                 lambda: vgg11_bn(num_classes=10, pool_size=1, hidden_features=512, dropout=0.0),
                 lambda torch: torch_vgg(torch, _VGG11, dropout=0.0), _SGD),
        Workload("lstm", "LSTM LM (2x256, T=64)", 32, "lm", (64,), VOCAB,
                 lambda: CharRNN(VOCAB, embedding_dim=128, hidden_size=256, num_layers=2, cell="lstm"),
                 rnn_twin("lstm")),
        Workload("gru", "GRU LM (2x256, T=64)", 32, "lm", (64,), VOCAB,
                 lambda: CharRNN(VOCAB, embedding_dim=128, hidden_size=256, num_layers=2, cell="gru"),
                 rnn_twin("gru")),
        Workload("gpt", "GPT (4 layers, d 128, T=64)", 16, "lm", (64,), VOCAB,
                 lambda: GPT(VOCAB, block_size=64, n_layer=4, n_head=4, d_model=128), gpt_twin),
        Workload("vit", "ViT-tiny (28x28, patch 7, d 64, 4 layers)", 64, "image", (1, 28, 28), 10,
                 lambda: VisionTransformer(**vit_cfg), lambda torch: torch_vit(torch, **vit_cfg)),
    ]


WORKLOADS = {w.key: w for w in _workloads()}


def get(keys=None):
    """The workloads named in ``keys`` (a list or a comma-separated string; all when empty), in suite order."""
    if not keys:
        return list(WORKLOADS.values())
    if isinstance(keys, str):
        keys = [k.strip() for k in keys.split(",") if k.strip()]
    unknown = [k for k in keys if k not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workload(s) {', '.join(unknown)}; expected some of {', '.join(WORKLOADS)}")
    return [WORKLOADS[k] for k in keys]


# =========================================================================== step functions
def somanet_train_step(wl, model, x, y):
    """A somanet training step: zero_grad, forward, cross-entropy, backward, optimizer step."""
    opt = wl.somanet_optimizer(model.parameters())
    criterion = nn.CrossEntropyLoss()
    model.train()

    def step():
        opt.zero_grad()
        loss = criterion(wl.logits(model(x)), y)
        loss.backward()
        opt.step()
        return loss

    return step


def somanet_infer(wl, model, x):
    """A somanet inference call: eval mode, no graph."""
    model.eval()

    def infer():
        with somanet.no_grad():
            return wl.logits(model(x))

    return infer


def torch_train_step(torch, wl, model, x, y):
    """The PyTorch twin of ``somanet_train_step``."""
    opt = wl.torch_optimizer(torch, model.parameters())
    criterion = torch.nn.CrossEntropyLoss()
    model.train()

    def step():
        opt.zero_grad()
        loss = criterion(wl.logits(model(x)), y)
        loss.backward()
        opt.step()
        return loss

    return step


def torch_infer(torch, wl, model, x):
    """The PyTorch twin of ``somanet_infer`` (eval mode under ``torch.no_grad``)."""
    model.eval()

    def infer():
        with torch.no_grad():
            return wl.logits(model(x))

    return infer


def _synchronized(fn, sync):
    """``fn`` followed by ``sync()`` (a GPU's kernels run asynchronously: a timed call must wait for them)."""
    def call():
        out = fn()
        sync()
        return out

    return call


def torch_device(torch, device):
    """The PyTorch device that mirrors somanet's ``device`` (None: the CPU): CUDA when both have it."""
    if device is not None and somanet.device(device).type == "cuda" and torch.cuda.is_available():
        return torch.device(str(somanet.device(device)))
    return torch.device("cpu")


def build_pair(torch, wl, train=True, seed=0, device=None):
    """Somanet and PyTorch callables for one workload, from identical weights and one batch.

    Returns ``(somanet_fn, torch_fn)``: training steps when ``train``, else inference calls. With a
    ``device`` (``"cuda"``), somanet's model and batch live there, PyTorch's on its CUDA device when it has
    one (else on the CPU), and every call waits for the device to finish.
    """
    torch.manual_seed(seed)
    somanet.manual_seed(seed)
    t_model = wl.torch_model(torch)
    s_model = wl.somanet_model()
    s_model.load_state_dict({k: v.detach().numpy().copy() for k, v in t_model.state_dict().items()})
    x, y = wl.data(seed)
    sx, sy = somanet.tensor(x, device=device), somanet.tensor(y, device=device)
    tx, ty = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
    if device is not None:
        s_model.to(device)
        t_dev = torch_device(torch, device)
        t_model.to(t_dev)
        tx, ty = tx.to(t_dev), ty.to(t_dev)
    if train:
        pair = somanet_train_step(wl, s_model, sx, sy), torch_train_step(torch, wl, t_model, tx, ty)
    else:
        pair = somanet_infer(wl, s_model, sx), torch_infer(torch, wl, t_model, tx)
    if device is None:
        return pair
    s_sync = somanet.cuda.synchronize if somanet.device(device).type == "cuda" else (lambda: None)
    t_sync = torch.cuda.synchronize if tx.is_cuda else (lambda: None)
    return _synchronized(pair[0], s_sync), _synchronized(pair[1], t_sync)


def check_pair(torch, wl, steps=2, rtol=2e-4, atol=2e-5, device=None):
    """Both frameworks must agree before timing means anything: the inference logits, then the losses of
    the first ``steps`` training steps from the same start. Raises ``AssertionError`` naming the workload."""
    s_inf, t_inf = build_pair(torch, wl, train=False, device=device)
    s_out, t_out = s_inf().detach().cpu().numpy(), t_inf().cpu().numpy()
    scale = max(1.0, float(np.abs(t_out).max()))
    if not np.allclose(s_out, t_out, rtol=1e-3, atol=1e-4 * scale):
        err = float(np.abs(s_out - t_out).max())
        raise AssertionError(f"{wl.key}: inference logits differ from PyTorch's (max abs difference {err:.3g})")
    s_step, t_step = build_pair(torch, wl, train=True, device=device)
    for i in range(steps):
        s, t = float(s_step().item()), float(t_step().item())
        # Later steps compound float32 rounding through the optimizer; allow a little more there.
        tol = rtol * (1 + 4 * i)
        if not np.isclose(s, t, rtol=tol, atol=atol):
            raise AssertionError(f"{wl.key}: training step {i} loss {s!r} differs from PyTorch's {t!r}")


def memory_step(framework, key):
    """Factory for ``benchmarks.memory.peak_rss``: build workload ``key`` in ``framework`` ('somanet' or
    'torch') with its optimizer and batch, and return its zero-argument training step."""
    wl = WORKLOADS[key]
    x, y = wl.data()
    if framework == "torch":
        import torch

        torch.manual_seed(0)
        model = wl.torch_model(torch)
        return torch_train_step(torch, wl, model, torch.from_numpy(x), torch.from_numpy(y))
    somanet.manual_seed(0)
    return somanet_train_step(wl, wl.somanet_model(), somanet.tensor(x), somanet.tensor(y))


# =========================================================================== FLOP counting
def count_flops(wl, train=True):
    """Floating-point operations of one forward (inference) or training step of the somanet model, counting
    the matrix products only: linear and convolution layers, attention (projections, scores, weighted sum)
    and recurrent layers (input and recurrent products). A multiply-add is 2 FLOPs. Backward counts the
    weight gradient and, when the layer's input needs one, the input gradient (each as large as the
    forward product); elementwise work, norms and the optimizer are not counted. These are the FLOPs of
    the textbook formulation, the same for both frameworks: an implementation that skips work (such as
    projecting the embedding table once instead of every token) shows as a higher rate.
    """
    model = wl.somanet_model()
    x, _ = wl.data()
    total = [0.0]

    def add(fwd, input_needs_grad):
        total[0] += fwd
        if train:
            total[0] += fwd * (2 if input_needs_grad else 1)

    def linear_hook(m, args, out):
        rows = out.array.size // m.out_features
        add(2.0 * rows * m.in_features * m.out_features, args[0].requires_grad)

    def conv_hook(m, args, out):
        kh, kw = m.kernel_size
        add(2.0 * out.array.size * (m.in_channels // m.groups) * kh * kw, args[0].requires_grad)

    def mha_hook(m, args, out):
        q, k = args[0], args[1]
        e = m.embed_dim
        lq, lk = q.array.size // e, k.array.size // e
        seq_q = q.shape[1] if m.batch_first else q.shape[0]
        seq_k = k.shape[1] if m.batch_first else k.shape[0]
        batch = lq // seq_q
        projections = 2.0 * (lq * e * e + 2 * lk * e * e) + 2.0 * lq * e * e
        attention = 2.0 * 2.0 * batch * seq_q * seq_k * e
        add(projections, q.requires_grad)
        # Scores and weighted sum: both operands carry gradient, so backward is twice forward.
        total[0] += attention * (3 if train else 1)

    fired = set()

    def rnn_flops(m, steps_batch, input_needs_grad):
        gates = {"LSTM": 4, "GRU": 3}.get(m.mode, 1)
        dirs = 2 if m.bidirectional else 1
        for layer in range(m.num_layers):
            width = m.input_size if layer == 0 else m.hidden_size * dirs
            fwd = 2.0 * steps_batch * (width + m.hidden_size) * gates * m.hidden_size * dirs
            add(fwd, layer > 0 or input_needs_grad)

    def rnn_hook(m, args, out):
        fired.add(id(m))
        rnn_flops(m, args[0].array.size // m.input_size, args[0].requires_grad)

    handles = []
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(linear_hook))
        elif isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.MultiheadAttention):
            handles.append(mod.register_forward_hook(mha_hook))
        elif isinstance(mod, (nn.LSTM, nn.GRU, nn.RNN)):
            handles.append(mod.register_forward_hook(rnn_hook))
    model.train(train)
    if train:
        model(somanet.tensor(x))
    else:
        with somanet.no_grad():
            model(somanet.tensor(x))
    for h in handles:
        h.remove()
    for mod in model.modules():
        # A model may feed its recurrent layer without calling it as a module (CharRNN passes token ids
        # through an embedding-table fast path), so no hook runs: count one step per input token, with
        # the input gradient that an embedding in front of the layer needs.
        if isinstance(mod, (nn.LSTM, nn.GRU, nn.RNN)) and id(mod) not in fired and wl.kind == "lm":
            rnn_flops(mod, x.size, True)
    return total[0]
