"""Autocast op by op against ``torch.autocast("cpu")``: each case runs the same op on the same values in
both frameworks inside an autocast region (bfloat16 and float16) and checks the output dtype, the values
within the low type's rounding, and the gradients that reach float32 inputs and parameters.

Inputs named ``*_low`` are converted to the autocast dtype before the region (so the case checks what an op
does with low-precision inputs); the others are float32, and the ones named ``w*`` are parameters.
"""
import zlib

import numpy as np
import pytest

import somanet
import somanet.nn.functional as SF

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")
import torch.nn.functional as TF  # noqa: E402

BF16 = somanet.bfloat16
DTYPES = {"bf16": (BF16, torch.bfloat16), "fp16": (somanet.float16, torch.float16)}
# Relative tolerance: two units in the last place of the low type (bfloat16 keeps 8 significant bits,
# float16 11); products and reductions may round their last bit differently from PyTorch's kernels.
ULP = {"bf16": 2.0 ** -7, "fp16": 2.0 ** -10}


class Lib:
    def __init__(self, mod, functional, nn):
        self.m, self.F, self.nn = mod, functional, nn


SOMA = Lib(somanet, SF, somanet.nn)
TORCH = Lib(torch, TF, torch.nn)

def _arr(rng, shape, positive=False):
    a = rng.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


# name -> (input spec, function(lib, v) -> output tensor or tuple, expected output dtype per autocast dtype:
# "low" (the autocast dtype) or "f32").
CASES = {
    # ---- lower precision
    "linear": ({"x": (4, 8), "w": (6, 8), "wb": (6,)}, lambda L, v: L.F.linear(v["x"], v["w"], v["wb"]), "low"),
    "linear_3d": ({"x": (2, 3, 8), "w": (6, 8)}, lambda L, v: L.F.linear(v["x"], v["w"]), "low"),
    "matmul": ({"x": (5, 8), "w": (8, 3)}, lambda L, v: L.m.matmul(v["x"], v["w"]), "low"),
    "bmm": ({"x": (2, 5, 8), "w": (2, 8, 3)}, lambda L, v: L.m.bmm(v["x"], v["w"]), "low"),
    "matmul_vec": ({"x": (5, 8), "w": (8,)}, lambda L, v: v["x"] @ v["w"], "low"),
    "addmm": ({"x": (5, 8), "w": (8, 3), "wb": (3,)}, lambda L, v: L.m.addmm(v["wb"], v["x"], v["w"]), "low"),
    "addmm_scaled": ({"x": (5, 8), "w": (8, 3), "y": (5, 3)},
                     lambda L, v: L.m.addmm(v["y"], v["x"], v["w"], beta=0.5, alpha=2.0), "low"),
    "baddbmm": ({"x": (2, 5, 8), "w": (2, 8, 3), "wb": (3,)},
                lambda L, v: L.m.baddbmm(v["wb"], v["x"], v["w"]), "low"),
    "addbmm": ({"x": (2, 5, 8), "w": (2, 8, 3), "wb": (5, 3)},
               lambda L, v: L.m.addbmm(v["wb"], v["x"], v["w"]), "low"),
    "einsum": ({"x": (2, 5, 8), "w": (8, 3)}, lambda L, v: L.m.einsum("bij,jk->bik", v["x"], v["w"]), "low"),
    "conv1d": ({"x": (2, 3, 10), "w": (4, 3, 3), "wb": (4,)}, lambda L, v: L.F.conv1d(v["x"], v["w"], v["wb"]), "low"),
    "conv2d": ({"x": (2, 3, 7, 7), "w": (4, 3, 3, 3), "wb": (4,)},
               lambda L, v: L.F.conv2d(v["x"], v["w"], v["wb"], padding=1), "low"),
    "conv_transpose2d": ({"x": (2, 3, 5, 5), "w": (3, 4, 3, 3)},
                         lambda L, v: L.F.conv_transpose2d(v["x"], v["w"], stride=2), "low"),
    "sdpa": ({"x": (2, 2, 5, 8), "w": (2, 2, 5, 8), "wv": (2, 2, 5, 8)},
             lambda L, v: L.F.scaled_dot_product_attention(v["x"], v["w"], v["wv"], is_causal=True), "low"),
    "prelu": ({"x": (4, 3, 5), "w": (3,)}, lambda L, v: L.F.prelu(v["x"], v["w"]), "low"),
    # ---- float32
    "cross_entropy": ({"x_low": (6, 5), "t": ("int", 6, 5)}, lambda L, v: L.F.cross_entropy(v["x_low"], v["t"]), "f32"),
    "cross_entropy_smooth": ({"x_low": (6, 5), "t": ("int", 6, 5)},
                             lambda L, v: L.F.cross_entropy(v["x_low"], v["t"], label_smoothing=0.1), "f32"),
    "nll": ({"x_low": (6, 5), "t": ("int", 6, 5)},
            lambda L, v: L.F.nll_loss(L.F.log_softmax(v["x_low"], -1), v["t"]), "f32"),
    "mse": ({"x_low": (4, 5), "y": (4, 5)}, lambda L, v: L.F.mse_loss(v["x_low"], v["y"]), "f32"),
    "l1": ({"x_low": (4, 5), "y": (4, 5)}, lambda L, v: L.F.l1_loss(v["x_low"], v["y"]), "f32"),
    "smooth_l1": ({"x_low": (4, 5), "y": (4, 5)}, lambda L, v: L.F.smooth_l1_loss(v["x_low"], v["y"]), "f32"),
    "huber": ({"x_low": (4, 5), "y": (4, 5)}, lambda L, v: L.F.huber_loss(v["x_low"], v["y"], delta=0.5), "f32"),
    "bce": ({"x_low": (4, 5), "y": ("prob", 4, 5)},
            lambda L, v: L.F.binary_cross_entropy(L.m.sigmoid(v["x_low"]), v["y"]), "f32"),
    "bce_logits": ({"x_low": (4, 5), "y": ("prob", 4, 5)},
                   lambda L, v: L.F.binary_cross_entropy_with_logits(v["x_low"], v["y"]), "f32"),
    "kl_div": ({"x_low": (4, 5), "y": ("prob", 4, 5)},
               lambda L, v: L.F.kl_div(v["x_low"], v["y"], reduction="batchmean"), "f32"),
    "prod": ({"x_low": (3, 4)}, lambda L, v: L.m.prod(v["x_low"], 1), "f32"),
    "cdist": ({"x_low": (4, 3), "y": (5, 3)}, lambda L, v: L.m.cdist(v["x_low"], v["y"]), "f32"),
    "reflection_pad": ({"x_low": (1, 2, 4, 4)}, lambda L, v: L.F.pad(v["x_low"], (1, 1, 1, 1), mode="reflect"), "f32"),
    "replication_pad": ({"x_low": (1, 2, 4)}, lambda L, v: L.F.pad(v["x_low"], (2, 1), mode="replicate"), "f32"),
    "max_unpool2d": ({"x_low": (1, 2, 4, 4)},
                     lambda L, v: L.F.max_unpool2d(*L.F.max_pool2d(v["x_low"], 2, return_indices=True), 2), "f32"),
    "local_response_norm": ({"x_low": (2, 4, 3, 3)}, lambda L, v: L.F.local_response_norm(v["x_low"], 3), "f32"),
    # ---- input type: low stays low
    "relu_low": ({"x_low": (4, 5)}, lambda L, v: L.F.relu(v["x_low"]), "low"),
    "gelu_low": ({"x_low": (4, 5)}, lambda L, v: L.F.gelu(v["x_low"]), "low"),
    "tanh_low": ({"x_low": (4, 5)}, lambda L, v: L.m.tanh(v["x_low"]), "low"),
    "sigmoid_low": ({"x_low": (4, 5)}, lambda L, v: L.m.sigmoid(v["x_low"]), "low"),
    "softmax_low": ({"x_low": (4, 5)}, lambda L, v: L.F.softmax(v["x_low"], -1), "low"),
    "log_softmax_low": ({"x_low": (4, 5)}, lambda L, v: L.F.log_softmax(v["x_low"], -1), "low"),
    "exp_low": ({"x_low": (4, 5)}, lambda L, v: L.m.exp(v["x_low"]), "low"),
    "log_low": ({"x_low": ("pos", 4, 5)}, lambda L, v: L.m.log(v["x_low"]), "low"),
    "pow_low": ({"x_low": (4, 5)}, lambda L, v: v["x_low"] ** 2, "low"),
    "sum_low": ({"x_low": (4, 50)}, lambda L, v: v["x_low"].sum(1), "low"),
    "mean_low": ({"x_low": (4, 50)}, lambda L, v: v["x_low"].mean(), "low"),
    "sum_dtype_f32": ({"x_low": (4, 50)}, lambda L, v: v["x_low"].sum(1, dtype=L.m.float32), "f32"),
    "cumsum_low": ({"x_low": (4, 6)}, lambda L, v: L.m.cumsum(v["x_low"], 1), "low"),
    "logsumexp_low": ({"x_low": (4, 6)}, lambda L, v: L.m.logsumexp(v["x_low"], 1), "low"),
    "var_low": ({"x_low": (4, 6)}, lambda L, v: v["x_low"].var(1), "low"),
    "add_scalar_low": ({"x_low": (4, 5)}, lambda L, v: v["x_low"] * 3.0 + 1.0, "low"),
    "add_low_low": ({"x_low": (4, 5), "y_low": (4, 5)}, lambda L, v: v["x_low"] + v["y_low"], "low"),
    "layer_norm_low": ({"x_low": (4, 6), "w": (6,), "wb": (6,)},
                       lambda L, v: L.F.layer_norm(v["x_low"], (6,), v["w"], v["wb"]), "low"),
    "group_norm_low": ({"x_low": (2, 4, 3, 3), "w": (4,), "wb": (4,)},
                       lambda L, v: L.F.group_norm(v["x_low"], 2, v["w"], v["wb"]), "low"),
    "batch_norm_low": ({"x_low": (4, 3, 2, 2), "w": (3,), "wb": (3,)},
                       lambda L, v: L.F.batch_norm(v["x_low"], L.m.zeros(3), L.m.ones(3), v["w"], v["wb"], True),
                       "low"),
    "rms_norm_low": ({"x_low": (4, 6), "w": (6,)}, lambda L, v: L.F.rms_norm(v["x_low"], (6,), v["w"]), "low"),
    "max_pool2d_low": ({"x_low": (1, 2, 4, 4)}, lambda L, v: L.F.max_pool2d(v["x_low"], 2), "low"),
    "avg_pool2d_low": ({"x_low": (1, 2, 4, 4)}, lambda L, v: L.F.avg_pool2d(v["x_low"], 2), "low"),
    "adaptive_avg_pool2d_low": ({"x_low": (1, 2, 4, 4)}, lambda L, v: L.F.adaptive_avg_pool2d(v["x_low"], 1), "low"),
    "constant_pad_low": ({"x_low": (1, 2, 4)}, lambda L, v: L.F.pad(v["x_low"], (1, 2)), "low"),
    "reshape_transpose_low": ({"x_low": (4, 6)}, lambda L, v: v["x_low"].reshape(2, 12).t()[1:], "low"),
    "index_low": ({"x_low": (5, 4)}, lambda L, v: v["x_low"][L.m.tensor([0, 2, 2])], "low"),
    "where_low": ({"x_low": (4, 5), "y_low": (4, 5)},
                  lambda L, v: L.m.where(v["x_low"] > 0, v["x_low"], v["y_low"]), "low"),
    # ---- input type: float32 stays float32
    "relu_f32": ({"x": (4, 5)}, lambda L, v: L.F.relu(v["x"]), "f32"),
    "softmax_f32": ({"x": (4, 5)}, lambda L, v: L.F.softmax(v["x"], -1), "f32"),
    "layer_norm_f32": ({"x": (4, 6), "w": (6,)}, lambda L, v: L.F.layer_norm(v["x"], (6,), v["w"]), "f32"),
    "sum_f32": ({"x": (4, 6)}, lambda L, v: v["x"].sum(), "f32"),
    "embedding": ({"t": ("int", 5, 7), "w": (7, 3)}, lambda L, v: L.F.embedding(v["t"], v["w"]), "f32"),
    "bilinear_f32": ({"x": (4, 3), "y": (4, 2), "w": (5, 3, 2)},
                     lambda L, v: L.F.bilinear(v["x"], v["y"], v["w"]), "f32"),
    # ---- promotion: mixed inputs give the widest type
    "add_mixed": ({"x_low": (4, 5), "y": (4, 5)}, lambda L, v: v["x_low"] + v["y"], "f32"),
    "cat_mixed": ({"x_low": (4, 5), "y": (2, 5)}, lambda L, v: L.m.cat([v["x_low"], v["y"]]), "f32"),
    "stack_mixed": ({"x_low": (4, 5), "y": (4, 5)}, lambda L, v: L.m.stack([v["y"], v["x_low"]], 1), "f32"),
    "cat_low": ({"x_low": (4, 5), "y_low": (2, 5)}, lambda L, v: L.m.cat([v["x_low"], v["y_low"]]), "low"),
    # ---- compositions
    "linear_relu_linear": ({"x": (4, 8), "w": (16, 8), "w2": (3, 16)},
                           lambda L, v: L.F.linear(L.F.relu(L.F.linear(v["x"], v["w"])), v["w2"]), "low"),
    "linear_then_loss": ({"x": (6, 8), "w": (5, 8), "t": ("int", 6, 5)},
                         lambda L, v: L.F.cross_entropy(L.F.linear(v["x"], v["w"]), v["t"]), "f32"),
    "linear_softmax_f32_mix": ({"x": (4, 8), "w": (5, 8), "y": (4, 5)},
                               lambda L, v: L.F.softmax(L.F.linear(v["x"], v["w"]), -1) * v["y"], "f32"),
}


def _build(spec, lib, low, seed_arrays):
    out = {}
    for name, shape in spec.items():
        arr = seed_arrays[name]
        if arr.dtype.kind == "i":
            out[name] = lib.m.tensor(arr)
            continue
        t = lib.m.tensor(arr)
        if name.startswith("w"):
            t.requires_grad_(True)
        elif name.endswith("_low"):
            t = t.to(low)
        out[name] = t
    return out


def _arrays(spec, rng):
    arrays = {}
    for name, shape in spec.items():
        if shape[0] == "int":
            arrays[name] = rng.integers(0, shape[-1], shape[1:2]).astype(np.int64)
        elif shape[0] == "prob":
            arrays[name] = rng.uniform(0.05, 0.95, shape[1:]).astype(np.float32)
        elif shape[0] == "pos":
            arrays[name] = _arr(rng, shape[1:], positive=True)
        else:
            arrays[name] = _arr(rng, shape)
    return arrays


def _dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def _values(t):
    if isinstance(t, torch.Tensor):
        return t.detach().float().numpy()
    return np.asarray(t.detach().array, dtype=np.float32)


def _check_close(ours, ref, rtol, what):
    scale = max(float(np.abs(ref).max()), 1e-6) if ref.size else 1.0
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * scale, err_msg=what)


@pytest.mark.parametrize("kind", ["bf16", "fp16"])
@pytest.mark.parametrize("case", list(CASES))
def test_op_matches_torch_autocast(case, kind):
    spec, fn, expected = CASES[case]
    s_dtype, t_dtype = DTYPES[kind]
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    arrays = _arrays(spec, rng)
    sv = _build(spec, SOMA, s_dtype, arrays)
    tv = _build(spec, TORCH, t_dtype, arrays)
    with somanet.autocast("cpu", dtype=s_dtype):
        ours = fn(SOMA, sv)
    with torch.autocast("cpu", dtype=t_dtype):
        ref = fn(TORCH, tv)
    want = {"low": {"bf16": "bfloat16", "fp16": "float16"}[kind], "f32": "float32"}[expected]
    assert _dtype_name(ref) == want, f"the reference gives {ref.dtype}: the case's expectation is out of date"
    assert _dtype_name(ours) == want, f"{case}: dtype {ours.dtype}, PyTorch {ref.dtype}"
    rtol = 2 * ULP[kind] if expected == "low" else 4 * ULP[kind]
    _check_close(_values(ours), _values(ref), rtol, f"{case} values")
    # Gradients reaching float32 parameters come back float32, close to PyTorch's.
    params = [n for n in spec if n.startswith("w")]
    if not params or not ref.requires_grad:
        return
    cot = rng.standard_normal(ref.shape).astype(np.float32)
    (ours.float() * somanet.tensor(cot)).sum().backward()
    (ref.float() * torch.tensor(cot)).sum().backward()
    for n in params:
        g, gr = sv[n].grad, tv[n].grad
        assert g.dtype == somanet.float32, f"{case}: gradient of {n} is {g.dtype}"
        _check_close(_values(g), _values(gr), 8 * ULP[kind], f"{case} gradient of {n}")
