"""Kernels against their references (``somanet.kernels``): each op timed with every kernel it has, in the
same process, as the median of repeats of wall time and of process CPU time; plus ``import somanet`` and
the first call of a Numba kernel (compiling, then loading from the on-disk cache) in fresh processes.

    python benchmarks/bench_kernels.py [--repeats 21] [--only conv,norm,reductions,optim,sequence,import,compile]

On a shared machine the CPU-time medians are the steadier numbers; with two threads a parallel kernel's
CPU time counts both.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import somanet  # noqa: E402
import somanet.nn.functional as F  # noqa: E402
from somanet.backends import cpu  # noqa: E402


def _median_times(fn, repeats):
    fn()  # warm up (and compile)
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def norm_rows(repeats):
    rng = np.random.default_rng(0)
    rows = []
    for op, (n, d) in [("layer_norm", (4096, 128)), ("layer_norm", (512, 768)), ("rms_norm", (4096, 128))]:
        x = rng.standard_normal((n, d)).astype(np.float32)
        w = rng.standard_normal(d).astype(np.float32)
        b = rng.standard_normal(d).astype(np.float32)
        g = somanet.tensor(rng.standard_normal((n, d)).astype(np.float32))

        def call(backward):
            xt = somanet.tensor(x, requires_grad=backward)
            wt = somanet.tensor(w, requires_grad=backward)
            if op == "layer_norm":
                out = F.layer_norm(xt, (d,), wt, somanet.tensor(b, requires_grad=backward))
            else:
                out = F.rms_norm(xt, (d,), wt)
            if backward:
                out.backward(g)

        for backward in (False, True):
            row = {"name": f"{op} {n}x{d} {'forward+backward' if backward else 'forward (no grad)'}"}
            for name in cpu.kernel_names(op):
                with cpu.kernel(op, name):
                    if backward:
                        row[name] = _median_times(lambda: call(True), repeats)
                    else:
                        with somanet.no_grad():
                            row[name] = _median_times(lambda: call(False), repeats)
            rows.append(row)
    return rows


def _train_step(fn, *arrays):
    tensors = [somanet.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(somanet.ones_like(out))


def reduction_rows(repeats):
    rng = np.random.default_rng(0)
    rows = []
    cases = [("BatchNorm1d (256, 512)", (256, 512), lambda t, w, b: F.batch_norm(t, None, None, w, b, training=True)),
             ("BatchNorm2d (32, 64, 16, 16)", (32, 64, 16, 16),
              lambda t, w, b: F.batch_norm(t, None, None, w, b, training=True)),
             ("GroupNorm(8) (32, 64, 16, 16)", (32, 64, 16, 16), lambda t, w, b: F.group_norm(t, 8, w, b)),
             ("LayerNorm (512, 768), NumPy path", (512, 768), lambda t, w, b: F.layer_norm(t, (768,), w, b))]
    for label, shape, fn in cases:
        x = rng.standard_normal(shape).astype(np.float32)
        c = shape[-1] if label.startswith("LayerNorm") else shape[1]
        w, b = np.ones(c, np.float32), np.zeros(c, np.float32)
        row = {"name": f"{label}, forward+backward"}
        for name in cpu.kernel_names("norm_reductions"):
            with cpu.kernel("norm_reductions", name), cpu.kernel("layer_norm", "reference"):
                row[name] = _median_times(lambda: _train_step(fn, x, w, b), repeats)
        rows.append(row)
    return rows


def conv_pool_rows(repeats):
    rng = np.random.default_rng(0)
    rows = []
    for (n, c, h, o) in [(32, 16, 32, 16), (32, 64, 16, 128)]:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        row = {"name": f"conv2d {n}x{c}x{h}x{h} -> {o}, 3x3 pad 1, forward+backward"}
        for name in cpu.kernel_names("conv2d"):
            with cpu.kernel("conv2d", name):
                row[name] = _median_times(lambda: _train_step(lambda a, b: F.conv2d(a, b, padding=1), x, w), repeats)
        rows.append(row)
    x = rng.standard_normal((32, 64, 32, 32)).astype(np.float32)
    for k, st in ((2, 2), (3, 2)):
        row = {"name": f"max_pool2d {k}x{k} stride {st} on 32x64x32x32, forward+backward"}
        for name in cpu.kernel_names("max_pool2d"):
            with cpu.kernel("max_pool2d", name):
                row[name] = _median_times(lambda: _train_step(lambda a: F.max_pool2d(a, k, st), x), repeats)
        rows.append(row)
    return rows


def optim_rows(repeats):
    rows = []
    optim = somanet.optim
    cases = [("adam", optim.Adam, {}), ("adam", optim.AdamW, {"weight_decay": 1e-2}),
             ("sgd", optim.SGD, {"momentum": 0.9}), ("rmsprop", optim.RMSprop, {"momentum": 0.9}),
             ("adagrad", optim.Adagrad, {})]
    for op, cls, kwargs in cases:
        rng = np.random.default_rng(0)
        p = somanet.nn.Parameter(somanet.tensor(rng.standard_normal(1 << 20).astype(np.float32)))
        p.grad = somanet.tensor(rng.standard_normal(1 << 20).astype(np.float32))
        opt = cls([p], lr=1e-3, **kwargs)
        row = {"name": f"{cls.__name__} step, 1M float32 parameters"}
        for name in cpu.kernel_names(op):
            with cpu.kernel(op, name):
                row[name] = _median_times(opt.step, repeats)
        rows.append(row)
    return rows


def sequence_rows(repeats):
    """The kernels of ``recurrent``, ``attention``, ``matmul`` and ``row_sums`` at the sequence benchmarks'
    sizes (``benchmarks/bench_seq.py``), forward and backward."""
    rng = np.random.default_rng(0)
    nn = somanet.nn
    rows = []
    for cell in ("LSTM", "GRU"):
        layer = getattr(nn, cell)(128, 256)
        x = rng.standard_normal((64, 32, 128)).astype(np.float32)

        def step(layer=layer, x=x):
            layer.zero_grad()
            out, _ = layer(somanet.tensor(x, requires_grad=True))
            out.backward(somanet.ones_like(out))

        row = {"name": f"{cell}(128, 256), T=64, B=32, forward+backward"}
        for name in cpu.kernel_names("recurrent"):
            with cpu.kernel("recurrent", name):
                row[name] = _median_times(step, repeats)
        rows.append(row)
    q, k, v = (rng.standard_normal((16, 4, 64, 32)).astype(np.float32) for _ in range(3))
    for causal in (True, False):
        row = {"name": f"scaled_dot_product_attention 16x4x64x32{' causal' if causal else ''}, forward+backward"}
        for name in cpu.kernel_names("attention"):
            with cpu.kernel("attention", name):
                row[name] = _median_times(lambda: _train_step(
                    lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=causal), q, k, v), repeats)
        rows.append(row)
    x, w = rng.standard_normal((8, 784)).astype(np.float32), rng.standard_normal((512, 784)).astype(np.float32)
    row = {"name": "linear 8x784 -> 512, forward+backward"}
    for name in cpu.kernel_names("matmul"):
        with cpu.kernel("matmul", name):
            row[name] = _median_times(lambda: _train_step(F.linear, x, w), repeats)
    rows.append(row)
    logits = rng.standard_normal((2048, 65)).astype(np.float32)
    row = {"name": "softmax 2048x65 float64 (NumPy path: the compiled one is float32), forward+backward"}
    for name in cpu.kernel_names("row_sums"):
        with cpu.kernel("row_sums", name):
            row[name] = _median_times(lambda: _train_step(lambda a: F.softmax(a, -1), logits.astype(np.float64)),
                                      repeats)
    rows.append(row)
    return rows


_IMPORT = ("import resource, time\nr = resource.getrusage(resource.RUSAGE_SELF)\nt = time.perf_counter()\n"
           "import somanet\nq = resource.getrusage(resource.RUSAGE_SELF)\n"
           "print(time.perf_counter() - t, q.ru_utime + q.ru_stime - r.ru_utime - r.ru_stime)")

_FIRST_CALL = ("import time, numpy as np, somanet, somanet.nn.functional as F\nfrom somanet.backends import cpu\n"
               "x = somanet.tensor(np.ones((4096, 128), np.float32))\nt, c = time.perf_counter(), time.process_time()\n"
               "with cpu.kernel('layer_norm', 'numba'):\n    F.layer_norm(x, (128,))\n"
               "print(time.perf_counter() - t, time.process_time() - c)")


def _subprocess_times(code, runs, env=None):
    walls, cpus = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        w, c = map(float, out.stdout.split())
        walls.append(w)
        cpus.append(c)
    return statistics.median(walls), statistics.median(cpus)


def import_rows(runs):
    return [{"name": "import somanet (numba installed)", "time": _subprocess_times(_IMPORT, runs)},
            {"name": "import numba", "time": _subprocess_times(_IMPORT.replace("somanet", "numba"), runs)}]


def compile_rows(runs):
    rows = []
    uncached = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            uncached.append(_subprocess_times(_FIRST_CALL, 1, dict(os.environ, NUMBA_CACHE_DIR=cache)))
    rows.append({"name": "first numba LayerNorm call, empty cache (import numba + compile)",
                 "time": (statistics.median(u[0] for u in uncached), statistics.median(u[1] for u in uncached))})
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        _subprocess_times(_FIRST_CALL, 1, env)
        rows.append({"name": "first numba LayerNorm call, on-disk cache (import numba + load)",
                     "time": _subprocess_times(_FIRST_CALL, runs, env)})
    return rows


def _ms(pair):
    return f"{pair[0] * 1e3:8.2f} / {pair[1] * 1e3:8.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--only", default="conv,norm,reductions,optim,sequence,import,compile")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    print(f"load average {os.getloadavg()[0]:.1f}; times are wall / CPU milliseconds, medians")
    if "norm" in parts:
        for row in norm_rows(args.repeats):
            print(row["name"], " ".join(f"{k}: {_ms(v)}" for k, v in row.items() if k != "name"))
    if "reductions" in parts:
        for row in reduction_rows(args.repeats):
            print(row["name"], " ".join(f"{k}: {_ms(v)}" for k, v in row.items() if k != "name"))
    if "conv" in parts:
        for row in conv_pool_rows(args.repeats):
            print(row["name"], " ".join(f"{k}: {_ms(v)}" for k, v in row.items() if k != "name"))
    if "optim" in parts:
        for row in optim_rows(args.repeats):
            print(row["name"], " ".join(f"{k}: {_ms(v)}" for k, v in row.items() if k != "name"))
    if "sequence" in parts:
        for row in sequence_rows(args.repeats):
            print(row["name"], " ".join(f"{k}: {_ms(v)}" for k, v in row.items() if k != "name"))
    if "import" in parts:
        for row in import_rows(max(3, args.repeats // 3)):
            print(row["name"], _ms(row["time"]))
    if "compile" in parts:
        for row in compile_rows(3):
            print(row["name"], _ms(row["time"]))


if __name__ == "__main__":
    main()
