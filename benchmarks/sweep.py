"""Convolution shape sweep: one Conv2d layer at a time, somanet against PyTorch, over a grid of shapes.

    python -m benchmarks.sweep                      # the sampled grid (a few minutes), table printed
    python -m benchmarks.sweep --full               # every shape of the grid within the work limit
    python -m benchmarks.sweep --passes             # forward, input gradient and weight gradient apart,
                                                    # on the layers named in docs/dev/convolutions.md
    python -m benchmarks.sweep --json sweep.json --markdown sweep.md --write
    somanet bench --sweep [same options]

The grid crosses kernel sizes 1/3/5/7, strides 1/2, channels 1 to 256, batches 1 to 128 and planes of
7 to 64 pixels a side, each shape timed as a training step (forward and backward of ``nn.Conv2d`` with
bias, input gradient included) and as inference (forward under ``no_grad``). Shapes whose training step
would take more than ``MAX_WORK`` multiply-adds are left out of the grid. The sampled grid is a fixed
sample of it (``sample_grid``) plus the layers of a LeNet-style MNIST CNN and of ResNet-18.

Both frameworks get the same float32 input, weight, bias and output gradient and are checked to agree
(output and all three gradients) before anything is timed. Timing is ``harness.compare``: warm-up, then
alternating timed blocks of the two, medians; ``--clock cpu`` times process CPU time instead of wall
time (steadier on a shared machine). PyTorch gets somanet's thread count (``SOMANET_NUM_THREADS``,
default 2 here, or ``--threads``). Reported per shape: both medians and the ratio torch / somanet (above
1: somanet is faster); over the sweep: the median ratio, the minimum and the worst rows.
"""
import argparse
import json
import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import somanet  # noqa: E402
import numpy as np  # noqa: E402  (after somanet: see benchmarks/__init__.py)
from benchmarks import harness  # noqa: E402

__all__ = ["Shape", "full_grid", "sample_grid", "named_shapes", "check_shape", "time_shape", "time_passes",
           "run", "run_passes", "render", "main"]

#: Most multiply-adds of one shape's training step (3x its forward) that the grid keeps.
MAX_WORK = 1.5e9
#: The ratio no shape should fall under, and the median the sweep should reach.
TARGET_MIN, TARGET_MEDIAN = 0.8, 1.0

KERNELS = (1, 3, 5, 7)
STRIDES = (1, 2)
CHANNELS = ((1, 16), (3, 64), (16, 32), (32, 32), (64, 64), (64, 128), (128, 128), (256, 256))
BATCHES = (1, 8, 32, 64, 128)
PLANES = (7, 14, 28, 56, 64)

QUICK = {"warmup": 1, "blocks": 3, "block_s": 0.05}
FULL = {"warmup": 2, "blocks": 5, "block_s": 0.1}


class Shape:
    """One convolution to time: batch ``n``, ``c`` -> ``o`` channels, ``hw`` x ``hw`` planes, a ``k`` x ``k``
    kernel with ``stride`` and padding ``k // 2``, as a training step or as inference."""

    def __init__(self, n, c, o, hw, k, stride, mode="train", name=None, padding=None):
        self.n, self.c, self.o, self.hw, self.k, self.stride, self.mode = n, c, o, hw, k, stride, mode
        self.padding = k // 2 if padding is None else padding
        self.name = name

    @property
    def out_hw(self):
        return (self.hw + 2 * self.padding - self.k) // self.stride + 1

    def work(self):
        """Multiply-adds of the forward pass."""
        return self.n * self.c * self.o * self.k * self.k * self.out_hw ** 2

    def label(self):
        text = (f"{self.n}x{self.c}x{self.hw}x{self.hw} -> {self.o}, k{self.k} s{self.stride} "
                f"p{self.padding}, {self.mode}")
        return f"{self.name}: {text}" if self.name else text

    def as_dict(self):
        return {"n": self.n, "c": self.c, "o": self.o, "hw": self.hw, "k": self.k, "stride": self.stride,
                "padding": self.padding, "mode": self.mode, "name": self.name}


def full_grid(max_work=MAX_WORK):
    """Every shape of the grid whose training step stays within ``max_work`` multiply-adds."""
    shapes = []
    for k in KERNELS:
        for s in STRIDES:
            for c, o in CHANNELS:
                for n in BATCHES:
                    for hw in PLANES:
                        for mode in ("train", "inference"):
                            shape = Shape(n, c, o, hw, k, s, mode)
                            if shape.out_hw >= 1 and 3 * shape.work() <= max_work:
                                shapes.append(shape)
    return shapes


def named_shapes(mode="train"):
    """The layers the kernels were tuned on: a LeNet-style MNIST CNN (batch 64), ResNet-18's stem and
    downsampling layers, 1x1 convolutions, and single-image inference of a 3x3 64 -> 64 layer."""
    return [
        Shape(64, 1, 16, 28, 5, 1, mode, "MNIST conv1"),
        Shape(64, 16, 32, 14, 5, 1, mode, "MNIST conv2", padding=0),
        Shape(8, 3, 64, 224, 7, 2, mode, "ResNet stem"),
        Shape(1, 3, 64, 224, 7, 2, mode, "ResNet stem b1"),
        Shape(16, 64, 128, 56, 3, 2, mode, "3x3 s2 downsample"),
        Shape(16, 128, 256, 28, 3, 2, mode, "3x3 s2 downsample"),
        Shape(16, 64, 128, 56, 1, 2, mode, "1x1 s2 shortcut", padding=0),
        Shape(32, 64, 256, 28, 1, 1, mode, "1x1", padding=0),
        Shape(1, 64, 64, 56, 3, 1, mode, "batch 1 3x3"),
    ]


def sample_grid(count=32, seed=0, max_work=MAX_WORK, named=True):
    """A fixed sample of ``count`` shapes of the grid (half training, half inference), each kernel size and
    stride equally often, after the layers of ``named_shapes`` (with ``named``)."""
    rng = random.Random(seed)
    grid = full_grid(max_work)
    picked = []
    cells = [(k, s, mode) for k in KERNELS for s in STRIDES for mode in ("train", "inference")]
    per_cell = max(1, count // len(cells))
    for k, s, mode in cells:
        pool = [g for g in grid if (g.k, g.stride, g.mode) == (k, s, mode)]
        picked += rng.sample(pool, min(per_cell, len(pool)))
    if len(picked) > count:
        keep = sorted(rng.sample(range(len(picked)), count))
        picked = [picked[i] for i in keep]
    if not named:
        return picked
    return named_shapes("train") + named_shapes("inference") + picked


# --------------------------------------------------------------------------- the two frameworks
def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((shape.n, shape.c, shape.hw, shape.hw)).astype(np.float32)
    g = rng.standard_normal((shape.n, shape.o, shape.out_hw, shape.out_hw)).astype(np.float32)
    return x, g


def _pair(torch, shape):
    """Both layers with the same weights, and the same input and output gradient."""
    from somanet import nn

    t_conv = torch.nn.Conv2d(shape.c, shape.o, shape.k, stride=shape.stride, padding=shape.padding)
    s_conv = nn.Conv2d(shape.c, shape.o, shape.k, stride=shape.stride, padding=shape.padding)
    s_conv.load_state_dict({k: v.detach().numpy().copy() for k, v in t_conv.state_dict().items()})
    x, g = _data(shape)
    return s_conv, t_conv, x, g


def _step_fns(torch, shape):
    """Zero-argument callables running the shape once in somanet and in PyTorch."""
    s_conv, t_conv, x, g = _pair(torch, shape)
    if shape.mode == "inference":
        xs, xt = somanet.tensor(x), torch.tensor(x)

        def s_fn():
            with somanet.no_grad():
                s_conv(xs)

        def t_fn():
            with torch.no_grad():
                t_conv(xt)
        return s_fn, t_fn
    xs, gs = somanet.tensor(x, requires_grad=True), somanet.tensor(g)
    xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(g)

    def s_fn():
        xs.grad = None
        s_conv.zero_grad()
        s_conv(xs).backward(gs)

    def t_fn():
        xt.grad = None
        t_conv.zero_grad()
        t_conv(xt).backward(gt)
    return s_fn, t_fn


def check_shape(torch, shape):
    """The largest difference between the frameworks, relative to each result's largest element, over the
    output and the input, weight and bias gradients (the output alone for inference)."""
    s_conv, t_conv, x, g = _pair(torch, shape)
    xs, xt = somanet.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ys, yt = s_conv(xs), t_conv(xt)
    pairs = [(ys.detach().numpy(), yt.detach().numpy())]
    if shape.mode == "train":
        ys.backward(somanet.tensor(g))
        yt.backward(torch.tensor(g))
        pairs += [(xs.grad.numpy(), xt.grad.numpy()), (s_conv.weight.grad.numpy(), t_conv.weight.grad.numpy()),
                  (s_conv.bias.grad.numpy(), t_conv.bias.grad.numpy())]
    return max(float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)) for a, b in pairs)


def _compare(s_fn, t_fn, cfg):
    clock = time.process_time if cfg.get("clock") == "cpu" else time.perf_counter
    return harness.compare(s_fn, t_fn, warmup=cfg["warmup"], blocks=cfg["blocks"], block_s=cfg["block_s"],
                           clock=clock, settle_s=cfg.get("settle_s", harness.SETTLE_S))


def time_shape(torch, shape, cfg):
    """One result row: the shape, both medians, the ratio and the frameworks' largest relative difference."""
    diff = check_shape(torch, shape)
    res = _compare(*_step_fns(torch, shape), cfg)
    res.update(shape.as_dict(), label=shape.label(), max_rel_diff=diff)
    return res


# --------------------------------------------------------------------------- the three passes apart
def _pass_fns(torch, shape, which):
    """Callables for one pass (``forward``, ``input_grad``, ``weight_grad``) of the shape's convolution,
    in somanet's op layer and in ATen's ``convolution_backward``."""
    from somanet.ops import conv as ops_conv

    x, g = _data(shape)
    w = np.random.default_rng(1).standard_normal((shape.o, shape.c, shape.k, shape.k)).astype(np.float32)
    b = np.zeros(shape.o, np.float32)
    p, s = shape.padding, shape.stride
    pads, stride, dil = ((p, p), (p, p)), (s, s), (1, 1)
    xt, wt, bt, gt = (torch.tensor(a) for a in (x, w, b, g))
    if which == "forward":
        def s_fn():
            ops_conv._forward(x, w, 1, pads, stride, dil, b)

        def t_fn():
            with torch.no_grad():
                torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p)
        return s_fn, t_fn
    need_x = which == "input_grad"
    mask = [need_x, not need_x, False]

    def s_fn():
        ops_conv._backward(g, x, w, 1, pads, stride, dil, need_x, not need_x)

    def t_fn():
        torch.ops.aten.convolution_backward(gt, xt, wt, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, mask)
    return s_fn, t_fn


def time_passes(torch, shape, cfg):
    """Rows for the forward, input gradient and weight gradient of ``shape`` timed apart."""
    rows = []
    for which in ("forward", "input_grad", "weight_grad"):
        res = _compare(*_pass_fns(torch, shape, which), cfg)
        res.update(shape.as_dict(), label=f"{shape.label().rsplit(',', 1)[0]}, {which}", which=which)
        rows.append(res)
    return rows


# --------------------------------------------------------------------------- driver
def _set_threads(torch, threads):
    from benchmarks.suite import set_threads

    return set_threads(torch, threads)


def _summary(rows):
    ratios = [r["ratio"] for r in rows]
    worst = sorted(rows, key=lambda r: r["ratio"])
    return {"median": statistics.median(ratios), "min": min(ratios), "count": len(rows),
            "below_min": sum(r < TARGET_MIN for r in ratios),
            "worst": [r["label"] for r in worst[:5]]}


def run(shapes, threads=None, cfg=None, log=print):
    """Check and time every shape; returns ``{"settings", "machine_line", "rows", "summary"}``."""
    import torch

    cfg = dict(cfg or FULL)
    threads = threads or somanet.get_num_threads()
    note, restore = _set_threads(torch, threads)
    try:
        rows = []
        for shape in shapes:
            r = time_shape(torch, shape, cfg)
            rows.append(r)
            log(f"{r['label']:58s} somanet {harness.fmt_time(r['somanet_s']):>10s}  PyTorch "
                f"{harness.fmt_time(r['torch_s']):>10s}  ratio {r['ratio']:.2f}")
    finally:
        restore()
    return {"settings": dict(cfg, threads=threads, blas=note), "machine_line": harness.machine_line(),
            "rows": rows, "summary": _summary(rows)}


def run_passes(shapes=None, threads=None, cfg=None, log=print):
    """Time the three passes of each shape apart (default: ``named_shapes()``)."""
    import torch

    cfg = dict(cfg or FULL)
    threads = threads or somanet.get_num_threads()
    note, restore = _set_threads(torch, threads)
    try:
        rows = []
        for shape in shapes or named_shapes():
            for r in time_passes(torch, shape, cfg):
                rows.append(r)
                log(f"{r['label']:58s} somanet {harness.fmt_time(r['somanet_s']):>10s}  PyTorch "
                    f"{harness.fmt_time(r['torch_s']):>10s}  ratio {r['ratio']:.2f}")
    finally:
        restore()
    return {"settings": dict(cfg, threads=threads, blas=note), "machine_line": harness.machine_line(),
            "rows": rows, "summary": _summary(rows)}


def render(results):
    """Markdown: the settings, the table of every shape, and the median, minimum and worst rows."""
    st, sm = results["settings"], results["summary"]
    clock = "process CPU time" if st.get("clock") == "cpu" else "wall time"
    lines = [f"Machine: {results['machine_line']}. {st['threads']} thread(s) for both frameworks; medians of "
             f"{st['blocks']} alternating blocks of {clock}. Ratio = torch / somanet (above 1: somanet is faster).",
             "", "| shape | somanet | PyTorch | torch / somanet |", "| --- | ---: | ---: | ---: |"]
    for r in results["rows"]:
        lines.append(f"| {r['label']} | {harness.fmt_time(r['somanet_s'])} | {harness.fmt_time(r['torch_s'])} | "
                     f"{r['ratio']:.2f} |")
    lines += ["", f"{sm['count']} rows: median ratio **{sm['median']:.2f}** (target {TARGET_MEDIAN}), minimum "
              f"**{sm['min']:.2f}** (target {TARGET_MIN}), {sm['below_min']} below {TARGET_MIN}.", "",
              "Worst rows: " + "; ".join(sm["worst"]) + "."]
    return "\n".join(lines)



def _write(path, text):
    from somanet.train._io import atomic_write_text

    atomic_write_text(path, text)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="every shape of the grid within the work limit")
    parser.add_argument("--passes", action="store_true",
                        help="time forward, input gradient and weight gradient apart on the named layers")
    parser.add_argument("--count", type=int, default=32, help="shapes sampled from the grid (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--max-work", type=float, default=MAX_WORK,
                        help=f"most multiply-adds of a grid shape's training step (default {MAX_WORK:.3g})")
    parser.add_argument("--no-named", action="store_true",
                        help="leave out the MNIST CNN's and ResNet-18's layers (the grid sample only)")
    parser.add_argument("--quick", action="store_true", help="fewer and shorter timed blocks")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both frameworks (default: somanet.get_num_threads())")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time (default) or the process's CPU time")
    parser.add_argument("--json", default=None, help="save the results as JSON to this file")
    parser.add_argument("--markdown", default=None, help="save the Markdown table to this file")
    parser.add_argument("--write", action="store_true",
                        help="write the 'Convolution shape sweep' section of docs/benchmarks.md")
    parser.add_argument("--docs", default=harness.DOCS, help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("the sweep compares somanet with PyTorch, which is not installed: pip install torch (the CPU build "
              "is enough)", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads < 1:
        print(f"sweep: --threads must be a positive integer, got {args.threads}", file=sys.stderr)
        return 2
    cfg = dict(QUICK if args.quick else FULL, clock=args.clock)
    if args.passes:
        results = run_passes(threads=args.threads, cfg=cfg)
    else:
        if args.full:
            shapes = full_grid(args.max_work)
        else:
            shapes = sample_grid(args.count, args.seed, args.max_work, named=not args.no_named)
        results = run(shapes, threads=args.threads, cfg=cfg)
    text = render(results)
    print()
    print(text)
    if args.markdown:
        _write(args.markdown, text + "\n")
    if args.json:
        _write(args.json, json.dumps({"machine": harness.machine(), "results": results}, indent=2))
    if args.write:
        harness.write_section("Convolution shape sweep", text, args.docs)
        print(f"wrote the Convolution shape sweep section of {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
