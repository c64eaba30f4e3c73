"""Convolutional networks against PyTorch on the CPU: single convolutions, a LeNet-5 and a ResNet-20
training step, peak memory of the ResNet-20 step, NCHW against NHWC for the convolution kernels, and the
Winograd path against the GEMMs over copied windows on VGG's and ResNet's 3x3 layers.

    python benchmarks/bench_conv.py            # everything; writes docs/benchmarks.md
    python benchmarks/bench_conv.py --quick    # fewer blocks, prints only
    python benchmarks/bench_conv.py --only layouts
    python benchmarks/bench_conv.py --only winograd
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_conv.py --clock cpu   # one thread each, CPU time

Both frameworks get the same float32 data and weights (copied by state_dict), PyTorch uses as many
threads as NumPy's BLAS, timed blocks alternate somanet / PyTorch after a warm-up, and the medians are
reported with their ratio (torch / somanet, above 1 means somanet is faster). ``--clock cpu`` times the
process's CPU time instead of wall time: on a shared machine it is the steadier measure, and for one
thread it means the same thing.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness  # noqa: E402
import numpy as np  # noqa: E402  (after somanet: see benchmarks/__init__.py)
from benchmarks.memory import fmt_bytes, peak_rss  # noqa: E402

# Both libraries get the same thread count: the machine's cores, or OPENBLAS_NUM_THREADS when it is set
# (it must be set before NumPy loads, so it comes from the environment).
THREADS = int(os.environ.get("OPENBLAS_NUM_THREADS") or os.cpu_count() or 1)


def _setup_torch():
    torch = harness.setup_torch()
    torch.set_num_threads(THREADS)
    import somanet

    somanet.set_num_threads(THREADS)
    return torch


def conv_flops(n, c, h, w, o, k, s, p):
    """Multiply-adds x 2 of one convolution's forward, weight gradient and input gradient."""
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    return 3 * 2 * n * o * c * k * k * ho * wo


CONV_SHAPES = [
    # (name, N, C, H, W, O, kernel, stride, padding)
    ("Conv2d 64x32x28x28 -> 64, k3 p1", 64, 32, 28, 28, 64, 3, 1, 1),
    ("Conv2d 32x64x16x16 -> 128, k3 s2 p1", 32, 64, 16, 16, 128, 3, 2, 1),
]


# --------------------------------------------------------------------------- workloads
def conv_step(framework, n, c, h, w, o, k, s, p):
    """Forward + backward of one Conv2d (input, weight and bias gradients) on fixed data."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    if framework == "torch":
        torch = _setup_torch()
        conv = torch.nn.Conv2d(c, o, k, stride=s, padding=p)
        xt = torch.tensor(x, requires_grad=True)
        out = conv(xt)
        g = torch.tensor(rng.standard_normal(tuple(out.shape)).astype(np.float32))

        def step():
            xt.grad = None
            conv.zero_grad()
            conv(xt).backward(g)
        return step, conv
    import somanet
    from somanet import nn

    conv = nn.Conv2d(c, o, k, stride=s, padding=p)
    xs = somanet.tensor(x, requires_grad=True)
    out = conv(xs)
    g = somanet.tensor(rng.standard_normal(out.shape).astype(np.float32))

    def step():
        xs.grad = None
        conv.zero_grad()
        conv(xs).backward(g)
    return step, conv


def _torch_lenet(torch):
    nn = torch.nn
    model = nn.Module()
    model.features = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
    model.classifier = nn.Sequential(nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                                     nn.Linear(84, 10))
    model.forward = lambda x: model.classifier(model.features(x))
    return model


def _torch_resnet20(torch):
    """The CIFAR ResNet-20 of somanet.models.resnet20 built from PyTorch layers (the suite's twin)."""
    from benchmarks.workloads import torch_resnet20

    return torch_resnet20(torch)


def train_step(framework, model_name, batch=64):
    """One SGD (momentum 0.9) training step of LeNet-5 (1x28x28) or ResNet-20 (3x32x32) on fixed data."""
    rng = np.random.default_rng(0)
    shape = (batch, 1, 28, 28) if model_name == "lenet5" else (batch, 3, 32, 32)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 10, batch)
    if framework == "torch":
        torch = _setup_torch()
        model = _torch_lenet(torch) if model_name == "lenet5" else _torch_resnet20(torch)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()
        xt, yt = torch.tensor(x), torch.tensor(y)

        def step():
            opt.zero_grad()
            loss_fn(model(xt), yt).backward()
            opt.step()
        return step, model
    import somanet
    from somanet import nn, optim
    from somanet.models import LeNet5, resnet20

    model = LeNet5(num_classes=10) if model_name == "lenet5" else resnet20(num_classes=10)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    xs, ys = somanet.tensor(x), somanet.tensor(y)

    def step():
        opt.zero_grad()
        loss_fn(model(xs), ys).backward()
        opt.step()
    return step, model


def model_flops(model_name, batch=64):
    """FLOPs of one training step's convolutions and linear layers (forward, weight gradient, and input
    gradient where the layer's input needs one), from forward hooks on the somanet model."""
    import somanet
    from somanet import nn
    from somanet.models import LeNet5, resnet20

    model = LeNet5(num_classes=10) if model_name == "lenet5" else resnet20(num_classes=10)
    shape = (batch, 1, 28, 28) if model_name == "lenet5" else (batch, 3, 32, 32)
    total = [0.0]

    def hook(m, args, out):
        per_output = m.in_features if isinstance(m, nn.Linear) else (
            m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1])
        fwd = 2.0 * out.array.size * per_output
        total[0] += fwd * (3 if args[0].requires_grad else 2)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model(somanet.tensor(np.zeros(shape, np.float32)))
    for h in handles:
        h.remove()
    return total[0]


def resnet20_step(framework):
    """Factory for ``memory.peak_rss``: the ResNet-20 training step of ``framework``."""
    return train_step(framework, "resnet20")[0]


def _copy_weights(t_model, s_model):
    s_model.load_state_dict({k: v.detach().numpy().copy() for k, v in t_model.state_dict().items()})


# --------------------------------------------------------------------------- NCHW against NHWC
def _nhwc_conv_step(x_nhwc, w_khwc_o, g_nhwc, k, p):
    """Stride-1 convolution forward + both gradients with activations kept NHWC throughout: im2col rows
    are ``(kh, kw, C)`` windows (contiguous runs of ``kw * C``), one GEMM per pass."""
    n, h, w, c = x_nhwc.shape
    o = w_khwc_o.shape[1]
    xp = np.zeros((n, h + 2 * p, w + 2 * p, c), np.float32)
    xp[:, p:p + h, p:p + w] = x_nhwc
    s = xp.strides
    cols = np.ascontiguousarray(np.lib.stride_tricks.as_strided(
        xp, (n, h, w, k, k, c), (s[0], s[1], s[2], s[1], s[2], s[3]))).reshape(n * h * w, k * k * c)
    out = cols @ w_khwc_o                                   # (N*H*W, O): NHWC output
    g2 = g_nhwc.reshape(n * h * w, o)
    grad_w = cols.T @ g2                                    # (k*k*C, O)
    dcols = (g2 @ w_khwc_o.T).reshape(n, h, w, k, k, c)
    dx = np.zeros_like(xp)
    for i in range(k):
        for j in range(k):
            dx[:, i:i + h, j:j + w] += dcols[:, :, :, i, j]
    return out, grad_w, dx[:, p:p + h, p:p + w]


def layout_rows(blocks, timing=None):
    """Time the NCHW kernels somanet uses against an NHWC implementation of the same GEMMs."""
    from somanet.kernels.conv import conv_forward, conv_input_grad, conv_weight_grad

    rows = []
    for n, c, h, w, o in [(64, 16, 32, 32, 16), (64, 32, 28, 28, 64), (64, 64, 8, 8, 64)]:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
        g = rng.standard_normal((n, o, h, w)).astype(np.float32)
        pads = ((1, 1), (1, 1))
        x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        g_nhwc = np.ascontiguousarray(g.transpose(0, 2, 3, 1))
        w_nhwc = np.ascontiguousarray(wt.transpose(2, 3, 1, 0)).reshape(9 * c, o)

        def nchw():
            conv_forward(x, wt, 1, pads, (1, 1), (1, 1))
            conv_weight_grad(g, x, 1, pads, (1, 1), (1, 1), (3, 3))
            conv_input_grad(g, wt, 1, pads, (1, 1), (1, 1), (h, w))

        def nhwc():
            _nhwc_conv_step(x_nhwc, w_nhwc, g_nhwc, 3, 1)

        def nhwc_with_conversion():
            xn = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            gn = np.ascontiguousarray(g.transpose(0, 2, 3, 1))
            out, _, dx = _nhwc_conv_step(xn, w_nhwc, gn, 3, 1)
            np.ascontiguousarray(out.reshape(n, h, w, o).transpose(0, 3, 1, 2))
            np.ascontiguousarray(dx.transpose(0, 3, 1, 2))

        r = harness.compare(nchw, nhwc, blocks=blocks, **(timing or {}))
        r2 = harness.compare(nchw, nhwc_with_conversion, blocks=blocks, **(timing or {}))
        rows.append({"name": f"{n}x{c}x{h}x{w} -> {o}, k3 p1", "nchw_s": r["somanet_s"], "nhwc_s": r["torch_s"],
                     "nhwc_conv_s": r2["torch_s"]})
    return rows


# --------------------------------------------------------------------------- Winograd or windows
# The stride-1 3x3 layers of ResNet-20 (batch 64) and of VGG-11 at 32x32 (batch 32): (N, C, H, O).
WINOGRAD_SHAPES = [(64, 16, 32, 16), (64, 32, 16, 32), (64, 32, 28, 64), (64, 64, 8, 64), (32, 64, 16, 128),
                   (32, 128, 8, 256), (32, 256, 8, 256), (32, 256, 4, 512), (32, 512, 4, 512), (32, 512, 2, 512)]


_NAMES = {0: "windows", 2: "F(2x2)", 4: "F(4x4)"}


def forced_winograd(tile):
    """Every eligible 3x3 stride-1 convolution inside takes Winograd with ``tile x tile`` output tiles (4 or
    2) or, with 0, the window GEMMs (the ``conv2d`` kernel forced through ``somanet.backends.cpu.kernel``)."""
    from somanet.backends import cpu

    return cpu.kernel("conv2d", {0: "gemm", 2: "winograd_f2", 4: "winograd_f4"}[tile])


def winograd_rows(blocks, timing=None):
    """Forward + backward of each layer in ``WINOGRAD_SHAPES``: F(4x4), F(2x2), windows and PyTorch (each
    alternating with F(4x4)); and what somanet's thresholds choose for it."""
    from somanet.kernels import winograd

    rows = []
    for n, c, h, o in WINOGRAD_SHAPES:
        shape = (n, c, h, h, o, 3, 1, 1)
        s_step, s_mod = conv_step("somanet", *shape)
        t_step, t_mod = conv_step("torch", *shape)
        _copy_weights(t_mod, s_mod)

        def forced(tile):
            def step():
                with forced_winograd(tile):
                    s_step()
            return step

        row = {"name": f"{n}x{c}x{h}x{h} -> {o}"}
        for key, other in (("f2_s", forced(2)), ("windows_s", forced(0)), ("torch_s", t_step)):
            r = harness.compare(forced(4), other, blocks=blocks, **(timing or {}))
            row[key] = r["torch_s"]
            row.setdefault("f4_s", []).append(r["somanet_s"])
        row["f4_s"] = float(np.median(row["f4_s"]))
        x, w = np.empty((n, c, h, h), np.float32), np.empty((o, c, 3, 3), np.float32)
        geometry = (1, ((1, 1), (1, 1)), (1, 1), (1, 1))
        row["chosen"] = " / ".join(_NAMES[winograd.output_tile(x, w, *geometry, backward=backward)]
                                   for backward in (False, True))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- run
def _gflops(flops, seconds):
    return f"{flops / seconds / 1e9:.0f}"


def run(quick=False, only=None, clock="wall"):
    """Run the selected measurements; returns their rows by kind."""
    blocks = 3 if quick else 7
    results = {"speed": [], "memory": [], "layouts": [], "winograd": [], "load": [os.getloadavg()[0]]}
    timing = {} if clock == "wall" else {"clock": time.process_time}
    if only in (None, "conv"):
        for name, *shape in CONV_SHAPES:
            s_step, s_mod = conv_step("somanet", *shape)
            t_step, t_mod = conv_step("torch", *shape)
            _copy_weights(t_mod, s_mod)
            r = harness.compare(s_step, t_step, blocks=blocks, **timing)
            r["name"] = name + " (forward + backward)"
            flops = conv_flops(*shape)
            r["somanet GFLOP/s"], r["PyTorch GFLOP/s"] = _gflops(flops, r["somanet_s"]), _gflops(flops, r["torch_s"])
            results["speed"].append(r)
            print(harness.table([r]).splitlines()[-1], flush=True)
    if only in (None, "models"):
        for model_name, label in [("lenet5", "LeNet-5 training step, batch 64, 1x28x28"),
                                  ("resnet20", "ResNet-20 training step, batch 64, 3x32x32")]:
            s_step, s_mod = train_step("somanet", model_name)
            t_step, t_mod = train_step("torch", model_name)
            _copy_weights(t_mod, s_mod)
            r = harness.compare(s_step, t_step, blocks=blocks, block_s=0.5, **timing)
            r["name"] = label
            flops = model_flops(model_name)
            r["somanet GFLOP/s"], r["PyTorch GFLOP/s"] = _gflops(flops, r["somanet_s"]), _gflops(flops, r["torch_s"])
            results["speed"].append(r)
            print(harness.table([r]).splitlines()[-1], flush=True)
    if only in (None, "memory"):
        s_mem = peak_rss("benchmarks.bench_conv:resnet20_step", ("somanet",), imports=("numpy", "somanet"), steps=3,
                         threads=THREADS)
        t_mem = peak_rss("benchmarks.bench_conv:resnet20_step", ("torch",), imports=("numpy", "torch"), steps=3,
                         threads=THREADS)
        results["memory"].append({"name": "ResNet-20 training step, batch 64 (3 steps)",
                                  "somanet": s_mem["peak_bytes"], "torch": t_mem["peak_bytes"]})
        print(f"ResNet-20 peak RSS above baseline: somanet {fmt_bytes(s_mem['peak_bytes'])}, "
              f"PyTorch {fmt_bytes(t_mem['peak_bytes'])}", flush=True)
    if only in (None, "layouts"):
        results["layouts"] = layout_rows(blocks, timing)
        for r in results["layouts"]:
            print(f"{r['name']}: NCHW {harness.fmt_time(r['nchw_s'])}, NHWC {harness.fmt_time(r['nhwc_s'])}, "
                  f"NHWC with conversions {harness.fmt_time(r['nhwc_conv_s'])}", flush=True)
    if only in (None, "winograd"):
        results["winograd"] = winograd_rows(blocks, timing)
        for r in results["winograd"]:
            print(f"{r['name']}: F(4x4) {harness.fmt_time(r['f4_s'])}, F(2x2) {harness.fmt_time(r['f2_s'])}, "
                  f"windows {harness.fmt_time(r['windows_s'])}, PyTorch {harness.fmt_time(r['torch_s'])}; "
                  f"somanet takes {r['chosen']} (forward / backward)", flush=True)
    results["load"].append(os.getloadavg()[0])
    return results


def report(results, clock="wall"):
    """The markdown section for docs/benchmarks.md."""
    what = "CPU time of the process" if clock == "cpu" else "wall time"
    lines = [f"Machine: {harness.machine_line()}. Threads: {THREADS} for both (PyTorch "
             f"`torch.set_num_threads({THREADS})`, OpenBLAS {THREADS}); timed by {what}; load average (1 min) "
             f"{results['load'][0]:.1f} before and {results['load'][-1]:.1f} after the run.", ""]
    if results["speed"]:
        lines += ["Median time per call (torch / somanet above 1 means somanet is faster; GFLOP/s counts the "
                  "convolutions' multiply-adds, forward and both gradients):", "",
                  harness.table(results["speed"], extra_cols=("somanet GFLOP/s", "PyTorch GFLOP/s")), ""]
    if results["memory"]:
        lines += ["Peak resident memory above the post-import baseline, each framework in its own fresh process "
                  "(`benchmarks/memory.py`):", "", "| workload | somanet | PyTorch | somanet / torch |",
                  "| --- | ---: | ---: | ---: |"]
        for r in results["memory"]:
            lines.append(f"| {r['name']} | {fmt_bytes(r['somanet'])} | {fmt_bytes(r['torch'])} | "
                         f"{r['somanet'] / r['torch']:.2f} |")
        lines.append("")
    if results["layouts"]:
        lines += ["Layouts: one stride-1 3x3 convolution, forward + weight gradient + input gradient, with "
                  "somanet's NCHW kernels against the same GEMMs on NHWC activations (im2col rows of "
                  "`(kh, kw, C)`), without and with the NCHW<->NHWC conversions the PyTorch-style API would need:",
                  "", "| shape | NCHW (somanet) | NHWC | NHWC + conversions |", "| --- | ---: | ---: | ---: |"]
        for r in results["layouts"]:
            lines.append(f"| {r['name']} | {harness.fmt_time(r['nchw_s'])} | {harness.fmt_time(r['nhwc_s'])} | "
                         f"{harness.fmt_time(r['nhwc_conv_s'])} |")
        lines.append("")
    if results["winograd"]:
        lines += ["Winograd F(4x4, 3x3) and F(2x2, 3x3) against the GEMMs over copied windows: forward + backward "
                  "of one stride-1 3x3 convolution with bias (ResNet-20's layers at batch 64, VGG-11's at 32x32 and "
                  "batch 32), each path forced, and PyTorch; the last column is what somanet's thresholds pick for "
                  "the forward / backward pass:", "",
                  "| shape | F(4x4) | F(2x2) | windows | PyTorch | torch / F(4x4) | somanet takes |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for r in results["winograd"]:
            lines.append(f"| {r['name']} | {harness.fmt_time(r['f4_s'])} | {harness.fmt_time(r['f2_s'])} | "
                         f"{harness.fmt_time(r['windows_s'])} | {harness.fmt_time(r['torch_s'])} | "
                         f"{r['torch_s'] / r['f4_s']:.2f} | {r['chosen']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    """Command-line entry: run, print, and write the docs section unless told not to."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed blocks; print only")
    parser.add_argument("--only", choices=["conv", "models", "memory", "layouts", "winograd"])
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time wall clock (default) or the process's CPU time (steadier on a shared machine)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = run(args.quick, args.only, args.clock)
    body = report(results, args.clock)
    print(body)
    if not (args.quick or args.no_write or args.only):
        harness.write_section("Convolutional networks", body + "\n" + NOTES)
    print(f"({time.perf_counter() - start:.0f} s)")


NOTES = """Reading the table: PyTorch's CPU convolutions are oneDNN's JIT-compiled direct kernels, running near
the machine's peak. somanet's convolutions are BLAS GEMMs over copied windows (one GEMM per image and
kernel row over a buffer of ``kw`` column shifts) or, for 3x3 stride-1 layers with at least 32 channels
on each side, over Winograd F(4x4) tiles, 36 products for 16 outputs where the windows need 144
(``docs/dev/convolutions.md``). The first row takes F(4x4) both ways; its GFLOP/s counts the direct
method's multiply-adds, hence above the machine's peak. The strided row keeps the windows, and the
strided window copies, the kernel rows' partial sums and col2im's additions come on top of its GEMMs.
ResNet-20's 16-channel and strided layers keep the windows too, and with batch norm, ReLU, additions and
autograd on one core the step stays below PyTorch. LeNet-5 is small enough that PyTorch's fixed costs
and its NCHW max pooling dominate. Peak memory is below PyTorch's because backward rebuilds the windows
instead of keeping them, and the column buffers are ``kw`` times the input instead of ``kh * kw``.

The table is one thread per framework, timed by process CPU time (``OPENBLAS_NUM_THREADS=1 python
benchmarks/bench_conv.py --clock cpu``); ``python benchmarks/bench_conv.py`` runs both with the machine's
cores. With two threads every convolution pass of at least 2^24 multiply-adds splits its batch into one
block per thread; the suite's Summary in this file has ResNet-20 at two threads. Compare ratios from one
run only: two-thread timings on a shared machine swing between runs for both libraries."""


if __name__ == "__main__":
    main()
