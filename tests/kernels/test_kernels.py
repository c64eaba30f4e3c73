"""The kernel layer: each op's chooser, the override API (``somanet.backends.cpu.kernel``), every kernel
against PyTorch and against its reference in ``ops/``, and the Numba kernels with and without Numba."""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import somanet
import somanet.nn.functional as F
from somanet.backends import cpu
from somanet.kernels import _select
from reference import compare, torch_or_skip

torch = torch_or_skip()
TF = torch.nn.functional
TOL = dict(rtol=1e-4, atol=1e-4)


def _x(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# ------------------------------------------------------------------ the override API
def test_kernel_override_reads_sets_restores_and_refuses_unknown_names():
    assert cpu.kernel("conv2d") is None
    assert cpu.kernel_names("conv2d") == ("reference", "gemm", "winograd_f2", "winograd_f4", "im2col")
    with cpu.kernel("conv2d", "reference") as name:
        assert name == "reference" and cpu.kernel("conv2d") == "reference"
        with cpu.kernel("conv2d", "gemm"):
            assert cpu.kernel("conv2d") == "gemm"
        assert cpu.kernel("conv2d") == "reference"
    assert cpu.kernel("conv2d") is None
    cpu.kernel("max_pool2d", "reference")    # without ``with``: in force until handed back
    try:
        assert cpu.kernel("max_pool2d") == "reference"
    finally:
        cpu.kernel("max_pool2d", None)
    assert cpu.kernel("max_pool2d") is None
    with pytest.raises(ValueError, match=r"unknown kernel 'fft' for 'conv2d'; expected one of 'reference', 'gemm'"):
        cpu.kernel("conv2d", "fft")
    with pytest.raises(ValueError, match=r"unknown op 'conv9d'.*conv2d.*layer_norm.*max_pool2d"):
        cpu.kernel("conv9d")
    with pytest.raises(TypeError, match="op must be a string"):
        cpu.kernel(3)
    assert set(cpu.ops()) >= {"conv2d", "conv2d_weight_grad", "max_pool2d", "layer_norm", "rms_norm",
                              "norm_reductions", "adam", "sgd", "rmsprop", "adagrad"}
    assert _select.choose("norm_reductions", np.empty((4, 3), np.float32)) == "blas"


# ------------------------------------------------------------------ choosers
@pytest.mark.parametrize("xs, ws, geometry, forward, backward", [
    ((2, 64, 16, 16), (128, 64, 3, 3), (1, ((1, 1), (1, 1)), (1, 1), (1, 1)), "winograd_f4", "winograd_f4"),
    ((2, 128, 4, 4), (128, 128, 3, 3), (1, ((1, 1), (1, 1)), (1, 1), (1, 1)), "winograd_f2", "winograd_f2"),
    ((2, 128, 2, 2), (128, 128, 3, 3), (1, ((1, 1), (1, 1)), (1, 1), (1, 1)), "gemm", "winograd_f2"),
    ((2, 16, 16, 16), (16, 16, 3, 3), (1, ((1, 1), (1, 1)), (1, 1), (1, 1)), "gemm", "gemm"),
    ((2, 128, 16, 16), (128, 128, 3, 3), (1, ((1, 1), (1, 1)), (2, 2), (1, 1)), "gemm", "gemm"),
])
def test_conv2d_chooser(xs, ws, geometry, forward, backward):
    x, w = np.empty(xs, np.float32), np.empty(ws, np.float32)
    assert _select.choose("conv2d", x, w, *geometry, False) == forward
    assert _select.choose("conv2d", x, w, *geometry, True) == backward
    with cpu.kernel("conv2d", "reference"):
        assert _select.choose("conv2d", x, w, *geometry, False) == "reference"
    with cpu.kernel("conv2d", "winograd_f2"):  # a forced kernel that can't run the shape leaves it to the chooser
        expect = "gemm" if geometry[2] == (2, 2) else "winograd_f2"
        assert _select.choose("conv2d", x, w, *geometry, False) == expect


@pytest.mark.parametrize("xs, ws, stride, layout", [
    ((2, 8, 12, 12), (8, 8, 3, 3), 1, "wide"),
    ((2, 8, 6, 6), (12, 8, 3, 3), 1, "rows_nn"),
    ((2, 2, 9, 9), (6, 2, 3, 3), 1, "rows"),
    ((2, 4, 9, 9), (120, 4, 3, 3), 2, "batch"),
])
def test_conv2d_weight_grad_chooser(xs, ws, stride, layout):
    x = np.empty(xs, np.float32)
    ho = (xs[2] + 2 - 3) // stride + 1
    g = np.empty((xs[0], ws[0], ho, ho), np.float32)
    args = (1, ((1, 1), (1, 1)), (stride, stride), (1, 1), ws[2:])
    assert _select.choose("conv2d_weight_grad", g, x, *args) == layout


def test_pool_chooser():
    x = np.empty((1, 6, 8, 8), np.float32)
    none = ((0, 0), (0, 0))
    assert _select.choose("max_pool2d", x, (2, 2), (2, 2), none, (1, 1)) == "tiled"
    other = "numba" if _select.numba_available() else "reference"   # windows that don't tile the input
    assert _select.choose("max_pool2d", x, (3, 3), (2, 2), none, (1, 1)) == other
    assert _select.choose("max_pool2d", x, (2, 2), (2, 2), ((1, 1), (1, 1)), (1, 1)) == other
    with cpu.kernel("max_pool2d", "reference"):
        assert _select.choose("max_pool2d", x, (3, 3), (2, 2), none, (1, 1)) == "reference"


# ------------------------------------------------------------------ every kernel against PyTorch
CONV_CASES = [
    ((2, 3, 9, 9), (4, 3, 3, 3), dict(padding=1)),
    ((2, 4, 10, 10), (6, 2, 3, 3), dict(padding=1, stride=2, groups=2)),
    ((2, 3, 8, 9), (4, 3, 2, 3), dict(padding=(1, 2), dilation=(2, 1))),
    ((3, 6, 4, 4), (5, 6, 1, 1), dict()),
    ((2, 8, 7, 6), (16, 8, 3, 3), dict(padding=1)),
]


@pytest.mark.parametrize("name", ["reference", "gemm", "winograd_f2", "winograd_f4"])
@pytest.mark.parametrize("xs, ws, kw", CONV_CASES)
def test_conv2d_kernels_match_torch(name, xs, ws, kw):
    arrays = [_x(*xs), _x(*ws, seed=1), _x(ws[0], seed=2)]
    with cpu.kernel("conv2d", name):
        compare(lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: TF.conv2d(x, w, b, **kw), *arrays, **TOL)


@pytest.mark.parametrize("name", ["reference", "gemm"])
@pytest.mark.parametrize("stride, output_padding", [(1, 0), (2, 1)])
def test_conv_transpose_kernels_match_torch(name, stride, output_padding):
    kw = dict(stride=stride, padding=1, output_padding=output_padding)
    with cpu.kernel("conv2d", name):
        compare(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw),
                lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw),
                _x(2, 4, 5, 6), _x(4, 3, 3, 3, seed=1), _x(3, seed=2), **TOL)


@pytest.mark.parametrize("layout", ["reference", "wide", "rows_nn", "rows", "batch"])
@pytest.mark.parametrize("xs, ws, kw", CONV_CASES)
def test_conv2d_weight_grad_kernels_match_torch(layout, xs, ws, kw):
    arrays = [_x(*xs), _x(*ws, seed=1)]
    with cpu.kernel("conv2d", "gemm"), cpu.kernel("conv2d_weight_grad", layout):
        compare(lambda x, w: F.conv2d(x, w, **kw), lambda x, w: TF.conv2d(x, w, **kw), *arrays, **TOL)


@pytest.mark.parametrize("name", ["reference", "tiled"])
@pytest.mark.parametrize("kernel_size", [2, 3])
def test_max_pool_kernels_match_torch(name, kernel_size):
    x = _x(2, 3, 9, 8)
    x[0, 0, 0, 1] = x[0, 0, 0, 0]  # a tie: the first maximum in scan order wins
    with cpu.kernel("max_pool2d", name):
        compare(lambda t: F.max_pool2d(t, kernel_size), lambda t: TF.max_pool2d(t, kernel_size), x, **TOL)
        with somanet.no_grad():
            out = F.max_pool2d(somanet.tensor(x), kernel_size)
        np.testing.assert_array_equal(out.array, TF.max_pool2d(torch.from_numpy(x), kernel_size).numpy())
        _, idx = F.max_pool2d(somanet.tensor(x), kernel_size, return_indices=True)
        np.testing.assert_array_equal(idx.array, TF.max_pool2d(torch.from_numpy(x), kernel_size,
                                                               return_indices=True)[1].numpy())


NORMS = [
    ("batch_norm 2-d", (6, 5), lambda F_, x, w, b: F_.batch_norm(x, None, None, w, b, training=True)),
    ("batch_norm 4-d", (4, 5, 6, 7), lambda F_, x, w, b: F_.batch_norm(x, None, None, w, b, training=True)),
    ("batch_norm short planes", (4, 5, 2, 3), lambda F_, x, w, b: F_.batch_norm(x, None, None, w, b, training=True)),
    ("group_norm", (4, 5, 6, 7), None),
    ("layer_norm", (6, 33, 5), None),
    ("layer_norm wide", (6, 40), None),
]


@pytest.mark.parametrize("name", ["reference", "blas"])
@pytest.mark.parametrize("case, shape, fn", NORMS, ids=[c[0] for c in NORMS])
def test_norm_reduction_kernels_match_torch(name, case, shape, fn):
    x = _x(*shape)
    if case == "group_norm":
        w, b = _x(5, seed=1), _x(5, seed=2)
        s_fn = lambda t, tw, tb: F.group_norm(t, 1 if shape[1] == 5 else 2, tw, tb)   # noqa: E731
        t_fn = lambda t, tw, tb: TF.group_norm(t, 1 if shape[1] == 5 else 2, tw, tb)  # noqa: E731
    elif case.startswith("layer_norm"):
        w, b = _x(shape[-1], seed=1), _x(shape[-1], seed=2)
        s_fn = lambda t, tw, tb: F.layer_norm(t, (shape[-1],), tw, tb)   # noqa: E731
        t_fn = lambda t, tw, tb: TF.layer_norm(t, (shape[-1],), tw, tb)  # noqa: E731
    else:
        w, b = _x(shape[1], seed=1), _x(shape[1], seed=2)
        s_fn = lambda t, tw, tb: fn(F, t, tw, tb)   # noqa: E731
        t_fn = lambda t, tw, tb: fn(TF, t, tw, tb)  # noqa: E731
    with cpu.kernel("norm_reductions", name), cpu.kernel("layer_norm", "reference"):
        compare(s_fn, t_fn, x, w, b, **TOL)


# ------------------------------------------------------------------ Numba kernels
needs_numba = pytest.mark.skipif(not _select.numba_available(), reason="Numba is not installed")


def _norm(op, x, w, b, g):
    xt, wt = somanet.tensor(x, requires_grad=True), somanet.tensor(w, requires_grad=True)
    if op == "layer_norm":
        bt = somanet.tensor(b, requires_grad=True)
        out = F.layer_norm(xt, (x.shape[-1],), wt, bt)
    else:
        bt = None
        out = F.rms_norm(xt, (x.shape[-1],), wt)
    out.backward(somanet.tensor(g))
    return [out.array, xt.grad.array, wt.grad.array] + ([bt.grad.array] if bt is not None else [])


@needs_numba
@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_norms_match_reference_and_torch(op, dtype):
    x, w, b, g = (_x(6, 33, 128).astype(dtype), _x(128, seed=1).astype(dtype), _x(128, seed=2).astype(dtype),
                  _x(6, 33, 128, seed=3).astype(dtype))
    x[0, 0] *= 1e18   # float32 squares overflow: the float64 row sums keep the row finite
    with cpu.kernel(op, "numba"):
        fast = _norm(op, x, w, b, g)
    with cpu.kernel(op, "reference"):
        ref = _norm(op, x, w, b, g)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for mine, theirs in zip(fast, ref):
        assert mine.dtype == dtype
        np.testing.assert_allclose(mine, theirs, rtol=tol * 10, atol=tol * 10 * max(1.0, np.abs(theirs).max()))
    tfn = (lambda t, tw, tb: TF.layer_norm(t, (128,), tw, tb)) if op == "layer_norm" else \
        (lambda t, tw: TF.rms_norm(t, (128,), tw))
    sfn = (lambda t, sw, sb: F.layer_norm(t, (128,), sw, sb)) if op == "layer_norm" else \
        (lambda t, sw: F.rms_norm(t, (128,), sw))
    arrays = [x[1:], w, b] if op == "layer_norm" else [x[1:], w]
    with cpu.kernel(op, "numba"):
        compare(sfn, tfn, *arrays, **TOL)


@needs_numba
def test_norm_chooser_picks_numba_for_big_float_inputs_only():
    assert _select.choose("layer_norm", np.empty((4096, 128), np.float32)) == "numba"
    assert _select.choose("rms_norm", np.empty((4096, 128), np.float32)) == "numba"
    assert _select.choose("layer_norm", np.empty((4, 8), np.float32)) == "reference"       # too small
    assert _select.choose("layer_norm", np.empty((4096, 128), np.float16)) == "reference"  # no float16 loops
    assert _select.choose("layer_norm", np.empty((128, 4096), np.float32)[:, ::2]) == "reference"


NO_NUMBA = r"""
import sys
sys.modules["numba"] = None          # importing numba now fails
import numpy as np, somanet, somanet.nn.functional as F, somanet.optim
from somanet.backends import cpu
from somanet.kernels import _select
x = np.random.default_rng(0).standard_normal((4096, 128)).astype(np.float32)
w = np.ones(128, np.float32)
assert not _select.numba_available()
assert _select.choose("layer_norm", x) == "reference" and _select.choose("rms_norm", x) == "reference"
out = F.layer_norm(somanet.tensor(x), (128,), somanet.tensor(w)).array
with cpu.kernel("layer_norm", "reference"):
    ref = F.layer_norm(somanet.tensor(x), (128,), somanet.tensor(w)).array
assert (out == ref).all()
big = np.zeros(1 << 14, np.float32)
assert _select.choose("adam", dict(amsgrad=False), big, big, {"exp_avg": big, "exp_avg_sq": big}) == "reference"
p = somanet.nn.Parameter(somanet.tensor(x))
p.grad = somanet.tensor(x)
somanet.optim.Adam([p]).step()          # runs on the reference update
try:
    cpu.kernel("layer_norm", "numba")
except RuntimeError as exc:
    assert "pip install somanet[fast]" in str(exc), exc
else:
    raise AssertionError("forcing numba without numba did not raise")
print("ok")
"""


def test_without_numba_the_reference_is_chosen_and_forcing_numba_says_how_to_install():
    out = subprocess.run([sys.executable, "-c", NO_NUMBA], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


LAZY = r"""
import sys
import somanet, somanet.nn, somanet.nn.functional as F
assert "numba" not in sys.modules and "somanet.kernels.norm" not in sys.modules
F.conv2d(somanet.randn(1, 2, 5, 5), somanet.randn(3, 2, 3, 3))
assert "numba" not in sys.modules and "somanet.kernels.conv" in sys.modules
print("ok")
"""


def test_import_somanet_loads_no_kernel_module_and_never_numba():
    out = subprocess.run([sys.executable, "-c", LAZY], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


CACHED = r"""
import numpy as np, somanet, somanet.nn.functional as F
from somanet.backends import cpu
with cpu.kernel("rms_norm", "numba"):
    out = F.rms_norm(somanet.tensor(np.ones((64, 256), np.float32)), (256,))
print(float(out.array.sum()))
"""


@needs_numba
def test_numba_cache_dir_is_written_by_one_process_and_loaded_by_the_next(tmp_path):
    # NUMBA_CACHE_DIR is where a read-only install's compiled loops go; a second process loads them.
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", CACHED], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        assert float(out.stdout) == pytest.approx(64 * 256 / np.sqrt(1 + np.finfo(np.float32).eps), rel=1e-6)
    cached = [f for _, _, files in os.walk(tmp_path / "cache") for f in files]
    assert any(f.endswith(".nbi") for f in cached) and any(f.endswith(".nbc") for f in cached)


OPTIMIZERS = [
    ("adam", "Adam", dict(lr=1e-2)),
    ("adam", "Adam", dict(lr=1e-2, weight_decay=0.1, amsgrad=True, maximize=True, betas=(0.3, 0.99))),
    ("adam", "AdamW", dict(lr=1e-2, weight_decay=0.1)),
    ("sgd", "SGD", dict(lr=1e-2, momentum=0.9, weight_decay=0.01, nesterov=True)),
    ("sgd", "SGD", dict(lr=1e-2, momentum=0.9, dampening=0.3, maximize=True)),
    ("sgd", "SGD", dict(lr=1e-2)),
    ("rmsprop", "RMSprop", dict(lr=1e-2, weight_decay=0.1)),
    ("rmsprop", "RMSprop", dict(lr=1e-2, centered=True, momentum=0.9, alpha=0.4, maximize=True)),
    ("adagrad", "Adagrad", dict(lr=1e-1, lr_decay=0.01, weight_decay=0.1)),
]


def _steps(op, name, cls, kwargs, shape, dtype=np.float32, steps=3):
    rng = np.random.default_rng(0)
    p = somanet.nn.Parameter(somanet.tensor(rng.standard_normal(shape).astype(dtype)))
    opt = getattr(somanet.optim, cls)([p], **kwargs)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]
    with cpu.kernel(op, name):
        for g in grads:
            p.grad = somanet.tensor(g)
            opt.step()
    return p.array, grads


@needs_numba
@pytest.mark.parametrize("op, cls, kwargs", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_optimizer_updates_match_the_reference_bit_for_bit_and_torch(op, cls, kwargs, dtype):
    # Same float operations in the same order: identical results.
    fast, grads = _steps(op, "numba", cls, kwargs, (64, 80), dtype)
    ref, _ = _steps(op, "reference", cls, kwargs, (64, 80), dtype)
    np.testing.assert_array_equal(fast, ref)
    rng = np.random.default_rng(0)
    tp = torch.nn.Parameter(torch.from_numpy(rng.standard_normal((64, 80)).astype(dtype)))
    topt = getattr(torch.optim, cls)([tp], **kwargs)
    for g in grads:
        tp.grad = torch.from_numpy(g)
        topt.step()
    np.testing.assert_allclose(fast, tp.detach().numpy(), rtol=1e-6, atol=1e-6)


@needs_numba
def test_optimizer_chooser():
    rng = np.random.default_rng(0)
    big, small = np.zeros(1 << 12, np.float32), np.zeros(16, np.float32)
    group = dict(amsgrad=False)
    state = {"exp_avg": np.zeros_like(big), "exp_avg_sq": np.zeros_like(big)}
    assert _select.choose("adam", group, big, big, state) == "numba"
    assert _select.choose("adam", group, small, small, {"exp_avg": small, "exp_avg_sq": small}) == "reference"
    assert _select.choose("adam", group, big, big.astype(np.float64), state) == "reference"   # mixed dtypes
    assert _select.choose("adam", dict(amsgrad=True), big, big, state) == "reference"         # no max buffer yet
    assert _select.choose("sgd", {}, big, big, None) == "numba"
    assert _select.choose("sgd", {}, big, rng.standard_normal((2, 1 << 12))[0, ::1].astype(np.float32)[::-1],
                          None) == "reference"                                                # a strided gradient


READ_ONLY = r"""
import os, sys
import numpy as np
import somanet, somanet.nn.functional as F
from somanet.backends import cpu
assert somanet.__file__.startswith(sys.argv[1]), somanet.__file__
assert not os.access(os.path.dirname(somanet.kernels.__file__), os.W_OK)
with cpu.kernel("rms_norm", "numba"):
    print(float(F.rms_norm(somanet.tensor(np.ones((8, 16), np.float32)), (16,)).array.sum()))
"""


@needs_numba
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to run a process as another user")
def test_read_only_install_caches_in_the_user_wide_folder():
    # A copy of the package that the running user cannot write: Numba falls back to ~/.cache/numba.
    top = pathlib.Path(tempfile.mkdtemp())  # pytest's own folder is private to root
    try:
        _read_only_install(top)
    finally:
        for path in [top] + list(top.rglob("*")):
            if path.is_dir():
                os.chmod(path, 0o755)
        shutil.rmtree(top)


def _read_only_install(tmp_path):
    root, home = tmp_path / "site", tmp_path / "home"
    shutil.copytree(os.path.dirname(somanet.__file__), root / "somanet",
                    ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    home.mkdir()
    os.chown(home, 65534, 65534)
    os.chmod(tmp_path, 0o755)
    for path in [root] + [p for p in root.rglob("*")]:
        os.chmod(path, 0o555 if path.is_dir() else 0o444)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "PYTHON"))}
    env.update(HOME=str(home), PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
    user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    if subprocess.run(user + ["-c", "import numba"], env=env, capture_output=True, cwd=home).returncode:
        pytest.skip("the interpreter or Numba is not readable by another user here")
    out = subprocess.run(user + ["-c", READ_ONLY, str(root)], env=env, capture_output=True, text=True, cwd=home)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == pytest.approx(8 * 16, rel=1e-6)
    assert list((home / ".cache" / "numba").rglob("*.nbi"))


@needs_numba
def test_set_num_threads_reaches_the_blas_that_numba_loads(two_threads):
    # Numba's compiler loads SciPy's OpenBLAS next to NumPy's; somanet's thread count covers both.
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with cpu.kernel("rms_norm", "numba"):
        F.rms_norm(somanet.tensor(np.ones((64, 256), np.float32)), (256,))
    somanet.set_num_threads(1)
    blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert blas and all(i["num_threads"] == 1 for i in blas)
