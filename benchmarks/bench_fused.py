"""The fused Numba kernels (softmax, log-softmax, cross-entropy, GELU, SiLU, batch and group norm, pooling,
dropout) against their NumPy references, at the benchmark suite's shapes.

Every row times forward + backward through the public op, the reference and the ``"numba"`` kernel
alternating call by call in one process (so both see the same machine load), and reports the medians
of the process's CPU time and of wall time, and the ratio reference / numba of the CPU medians.
``--steps`` times the suite's training steps (``benchmarks/workloads.py``) the same way with these ops
forced to their reference and left to their choosers, next to PyTorch's step; ``--compile`` the first
call of each kernel in a fresh process, with an empty Numba cache and with a filled one; ``--memory``
the peak RSS of the training steps (``benchmarks/memory.py``) with and without the kernels.

    SOMANET_NUM_THREADS=1 python benchmarks/bench_fused.py [--repeats 21] [--only softmax,norm]
        [--steps mlp,lenet,gpt] [--compile] [--memory mlp,lenet,gpt]
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

#: The ops whose kernels this file measures.
OPS = ("softmax", "log_softmax", "cross_entropy", "gelu", "silu", "batch_norm", "group_norm", "max_pool2d",
       "avg_pool2d", "dropout")


def _step(fn, x, extra=()):
    """Forward + backward of ``fn`` on a fresh leaf made from ``x``."""
    def run():
        t = somanet.tensor(x, requires_grad=True)
        out = fn(t, *extra)
        out.backward(somanet.ones_like(out))
    return run


def _cases():
    rng = np.random.default_rng(0)

    def x(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ce(n, c):
        t = somanet.tensor(rng.integers(0, c, n))
        return lambda a: F.cross_entropy(a, t)

    def bn(c):
        w = somanet.tensor(np.ones(c, np.float32), requires_grad=True)
        b = somanet.tensor(np.zeros(c, np.float32), requires_grad=True)
        rm, rv = somanet.zeros(c), somanet.ones(c)
        return lambda a: F.batch_norm(a, rm, rv, w, b, training=True)

    def gn(c, g):
        w = somanet.tensor(np.ones(c, np.float32), requires_grad=True)
        b = somanet.tensor(np.zeros(c, np.float32), requires_grad=True)
        return lambda a: F.group_norm(a, g, w, b)

    return [
        ("softmax", "softmax (4096, 4096), bench_ops", lambda a: F.softmax(a, -1), x(4096, 4096)),
        ("softmax", "softmax (256, 4096), activation rows", lambda a: F.softmax(a, -1), x(256, 4096)),
        ("softmax", "softmax (1024, 65), GPT logits", lambda a: F.softmax(a, -1), x(1024, 65)),
        ("log_softmax", "log_softmax (256, 4096)", lambda a: F.log_softmax(a, -1), x(256, 4096)),
        ("log_softmax", "log_softmax (1024, 65)", lambda a: F.log_softmax(a, -1), x(1024, 65)),
        ("cross_entropy", "cross_entropy (128, 10), MLP", ce(128, 10), x(128, 10)),
        ("cross_entropy", "cross_entropy (64, 10), LeNet", ce(64, 10), x(64, 10)),
        ("cross_entropy", "cross_entropy (1024, 65), GPT", ce(1024, 65), x(1024, 65)),
        ("gelu", "gelu tanh (1024, 512), GPT MLP", lambda a: F.gelu(a, approximate="tanh"), x(1024, 512)),
        ("gelu", "gelu erf (1088, 256), ViT MLP", lambda a: F.gelu(a), x(1088, 256)),
        ("gelu", "gelu erf (256, 4096), activation rows", lambda a: F.gelu(a), x(256, 4096)),
        ("silu", "silu (256, 4096), activation rows", F.silu, x(256, 4096)),
        ("batch_norm", "batch_norm (64, 16, 32, 32), ResNet-20", bn(16), x(64, 16, 32, 32)),
        ("batch_norm", "batch_norm (64, 64, 8, 8), ResNet-20", bn(64), x(64, 64, 8, 8)),
        ("batch_norm", "batch_norm (32, 64, 32, 32), VGG-11-BN", bn(64), x(32, 64, 32, 32)),
        ("batch_norm", "batch_norm (32, 512, 2, 2), VGG-11-BN", bn(512), x(32, 512, 2, 2)),
        ("group_norm", "group_norm(8) (32, 64, 16, 16)", gn(64, 8), x(32, 64, 16, 16)),
        ("max_pool2d", "max_pool2d 3x3/2 pad 1 (32, 64, 32, 32)", lambda a: F.max_pool2d(a, 3, 2, 1),
         x(32, 64, 32, 32)),
        ("max_pool2d", "max_pool2d 3x3/2 pad 1 (8, 64, 112, 112), ResNet-18 stem",
         lambda a: F.max_pool2d(a, 3, 2, 1), x(8, 64, 112, 112)),
        ("max_pool2d", "max_pool2d 3x3/1 pad 1 (32, 64, 32, 32)", lambda a: F.max_pool2d(a, 3, 1, 1),
         x(32, 64, 32, 32)),
        ("avg_pool2d", "avg_pool2d 3x3/2 pad 1 (32, 64, 32, 32)", lambda a: F.avg_pool2d(a, 3, 2, 1),
         x(32, 64, 32, 32)),
        ("dropout", "dropout 0.1 (1024, 512)", lambda a: F.dropout(a, 0.1), x(1024, 512)),
        ("dropout", "dropout 0.1 (256, 4096)", lambda a: F.dropout(a, 0.1), x(256, 4096)),
    ]


def alternate(fns, repeats):
    """Call each of ``fns`` (name -> callable) in turn, ``repeats`` rounds after a warm-up round, the order
    rotating from round to round (so none always runs right after the same other); returns name ->
    ``(median wall, median CPU)`` in seconds."""
    for fn in fns.values():
        fn()
    walls = {k: [] for k in fns}
    cpus = {k: [] for k in fns}
    order = list(fns.items())
    for i in range(repeats):
        for k, fn in order[i % len(order):] + order[:i % len(order)]:
            w, c = time.perf_counter(), time.process_time()
            fn()
            walls[k].append(time.perf_counter() - w)
            cpus[k].append(time.process_time() - c)
    return {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in fns}


def _forced(op, name, fn):
    def run():
        with cpu.kernel(op, name):
            fn()
    return run


def op_rows(repeats, only=None):
    rows = []
    for op, label, fn, x in _cases():
        if only and not any(op.startswith(o) for o in only):
            continue
        run = _step(fn, x)
        big = x.size >= 1 << 22
        times = alternate({name: _forced(op, name, run) for name in ("reference", "numba")},
                          max(5, repeats // 3) if big else repeats)
        rows.append((label, times))
    return rows


class _AllReference:
    """Every op of ``OPS`` forced to its reference kernel inside the ``with`` block; ``max_pool2d`` to
    ``"tiled"``, which the chooser picked before the ``"numba"`` kernel existed for windows that tile the
    input (the suite's only max pools), and which leaves other windows to the chooser."""

    def __enter__(self):
        self.overrides = [cpu.kernel(op, "tiled" if op == "max_pool2d" else "reference") for op in OPS]

    def __exit__(self, *exc):
        for o in reversed(self.overrides):
            o.__exit__(*exc)


def step_rows(keys, repeats):
    """Training steps of the suite's workloads: these ops on their references, on their choosers, and
    PyTorch, alternating step by step."""
    from benchmarks import harness, workloads

    torch = harness.setup_torch()
    torch.set_num_threads(somanet.get_num_threads())
    rows = []
    for wl in workloads.get(keys):
        pair = workloads.build_pair(torch, wl, train=True)
        s_step, t_step = pair[0], pair[1]

        def reference():
            with _AllReference():
                s_step()
        times = alternate({"reference": reference, "numba": s_step, "torch": t_step}, repeats)
        rows.append((wl.title, times))
    return rows


_FIRST = r"""
import sys, time, numpy as np, somanet, somanet.nn.functional as F
from somanet.backends import cpu
sys.path.insert(0, {root!r})
from benchmarks.bench_fused import _cases
out = []
for op, label, fn, x in _cases():
    if x.size > 1 << 21:
        continue
    t, c = time.perf_counter(), time.process_time()
    with cpu.kernel(op, "numba"):
        xt = somanet.tensor(x, requires_grad=True)
        y = fn(xt)
        y.backward(somanet.ones_like(y))
    out.append(f"{{label}}|{{time.perf_counter() - t:.4f}}|{{time.process_time() - c:.4f}}")
print("\n".join(out))
"""


def compile_rows():
    """The first forward + backward calls of the ``"numba"`` kernels in a fresh process, case by case (the
    first case pays ``import numba``, the first of each loop its compile or cache load; inputs of up to
    two million elements): with an empty on-disk cache, then with the cache the first run filled."""
    code = _FIRST.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for phase in ("empty cache", "on-disk cache"):
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            for line in out.stdout.strip().split("\n"):
                label, wall, c = line.split("|")
                results.setdefault(label, {})[phase] = (float(wall), float(c))
    return results


def memory_step(key, kernels):
    """Factory for ``benchmarks.memory.peak_rss``: the workload's training step with ``OPS`` forced to
    ``"reference"`` or left to their choosers (``kernels="chooser"``)."""
    from benchmarks import workloads

    if kernels == "reference":
        _AllReference().__enter__()
    return workloads.memory_step("somanet", key)


def memory_rows(keys):
    from benchmarks.memory import peak_rss

    return [(key, {k: peak_rss("benchmarks.bench_fused:memory_step", (key, k), imports=("somanet",),
                               threads=somanet.get_num_threads())["peak_bytes"]
                   for k in ("reference", "chooser")}) for key in keys]


def _ms(pair):
    return f"{pair[0] * 1e3:8.3f} / {pair[1] * 1e3:8.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--only", default="", help="comma-separated op name prefixes (default: all)")
    parser.add_argument("--no-ops", action="store_true", help="skip the per-op rows")
    parser.add_argument("--steps", default="", help="workloads whose training step to time, e.g. mlp,lenet,gpt")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--memory", default="", help="workloads whose peak memory to measure")
    args = parser.parse_args()
    print(f"threads {somanet.get_num_threads()}, load average {os.getloadavg()[0]:.1f}; "
          f"wall / CPU milliseconds, medians; ratio = reference CPU / numba CPU")
    if not args.no_ops:
        for label, t in op_rows(args.repeats, [o for o in args.only.split(",") if o]):
            print(f"{label:58s} reference {_ms(t['reference'])}  numba {_ms(t['numba'])}  "
                  f"ratio {t['reference'][1] / t['numba'][1]:.2f}")
    if args.steps:
        for title, t in step_rows(args.steps, args.repeats):
            print(f"{title:44s} reference {_ms(t['reference'])}  numba {_ms(t['numba'])}  torch {_ms(t['torch'])}"
                  f"  ratio {t['reference'][1] / t['numba'][1]:.2f}")
    if args.compile:
        for op, phases in compile_rows().items():
            print(f"first call {op:58s} " + "  ".join(f"{k}: {_ms(v)}" for k, v in phases.items()))
    if args.memory:
        for key, peaks in memory_rows([k for k in args.memory.split(",") if k]):
            print(f"peak memory {key:10s} " + "  ".join(f"{k}: {v / 2 ** 20:.1f} MiB" for k, v in peaks.items()))


if __name__ == "__main__":
    main()
