"""Engine and op benchmarks against PyTorch, forward + backward: per-op overhead and large ops
(section "Engine and ops"), every activation and elementwise loss on a million float32 elements
(section "Activations and losses"), and a linear layer from one row to 512 (section "Linear layers by
batch size").

    python benchmarks/bench_ops.py [--only engine|elementwise|linear] [--write]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import harness  # noqa: E402
import numpy as np  # noqa: E402  (after somanet: see benchmarks/__init__.py)

import somanet  # noqa: E402


def workloads(torch):
    rng = np.random.default_rng(0)
    out = []

    # Per-op overhead: a tiny elementwise op with graph recording.
    a, b = rng.standard_normal((4, 4), dtype=np.float32), rng.standard_normal((4, 4), dtype=np.float32)
    sa, sb = somanet.tensor(a, requires_grad=True), somanet.tensor(b)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b)
    out.append(("small mul with graph recording (4x4)", lambda: sa * sb, lambda: ta * tb))

    # matmul 1024x1024, forward + backward.
    m1, m2 = rng.standard_normal((1024, 1024), dtype=np.float32), rng.standard_normal((1024, 1024), dtype=np.float32)
    s1, s2 = somanet.tensor(m1, requires_grad=True), somanet.tensor(m2, requires_grad=True)
    t1, t2 = torch.tensor(m1, requires_grad=True), torch.tensor(m2, requires_grad=True)

    def s_mm():
        s1.grad = s2.grad = None
        (s1 @ s2).backward(somanet.ones(1024, 1024))

    g_t = torch.ones(1024, 1024)

    def t_mm():
        t1.grad = t2.grad = None
        (t1 @ t2).backward(g_t)

    out.append(("matmul 1024x1024 fwd+bwd", s_mm, t_mm))

    # softmax over 4096x4096, forward + backward.
    x = rng.standard_normal((4096, 4096), dtype=np.float32)
    sx, tx = somanet.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    gx = rng.standard_normal((4096, 4096), dtype=np.float32)
    sg, tg = somanet.tensor(gx), torch.tensor(gx)

    def s_sm():
        sx.grad = None
        sx.softmax(-1).backward(sg)

    def t_sm():
        tx.grad = None
        tx.softmax(-1).backward(tg)

    out.append(("softmax 4096x4096 fwd+bwd", s_sm, t_sm))

    # Sum over a large broadcast: (4096, 1) + (1, 4096) -> sum, forward + backward.
    col, row = rng.standard_normal((4096, 1), dtype=np.float32), rng.standard_normal((1, 4096), dtype=np.float32)
    sc, sr = somanet.tensor(col, requires_grad=True), somanet.tensor(row, requires_grad=True)
    tc, tr = torch.tensor(col, requires_grad=True), torch.tensor(row, requires_grad=True)

    def s_bc():
        sc.grad = sr.grad = None
        (sc * sr).sum().backward()

    def t_bc():
        tc.grad = tr.grad = None
        (tc * tr).sum().backward()

    out.append(("broadcast (4096,1)*(1,4096) sum fwd+bwd", s_bc, t_bc))
    return out


# (name, somanet function, torch function, input kind): "real" draws N(0, 1) values, whose sign flips at
# random (the case that a per-element branch handles worst), "prob" values in (0.01, 0.99).
# Activations called by the same name in ``somanet.nn.functional`` and ``torch.nn.functional``, with their
# table labels; ``_activation_cases`` adds the ones that take arguments in their table places.
_SAME_NAME = (("ReLU", "relu"), ("LeakyReLU", "leaky_relu"), ("ELU", "elu"), ("SELU", "selu"), ("CELU", "celu"),
              ("GELU", "gelu"), ("SiLU", "silu"), ("Mish", "mish"), ("Sigmoid", "sigmoid"), ("Tanh", "tanh"),
              ("Softplus", "softplus"), ("Hardswish", "hardswish"), ("Hardsigmoid", "hardsigmoid"),
              ("Hardtanh", "hardtanh"), ("Softsign", "softsign"), ("LogSigmoid", "logsigmoid"),
              ("Softshrink", "softshrink"))


def _activation_cases(somanet_f, torch_f, torch):
    s, t = somanet_f, torch_f
    # PyTorch's sigmoid and tanh are torch's own functions (their functional aliases are deprecated).
    cases = [(label, getattr(s, name), getattr(torch if name in ("sigmoid", "tanh") else t, name), "real")
             for label, name in _SAME_NAME]
    cases.insert(6, ("GELU (tanh)", lambda x: s.gelu(x, approximate="tanh"),
                     lambda x: t.gelu(x, approximate="tanh"), "real"))
    return cases + [
        ("Threshold", lambda x: s.threshold(x, 0.1, 0.0), lambda x: t.threshold(x, 0.1, 0.0), "real"),
        ("softmax (rows of 4096)", lambda x: s.softmax(x, -1), lambda x: t.softmax(x, -1), "real"),
        ("log_softmax (rows of 4096)", lambda x: s.log_softmax(x, -1), lambda x: t.log_softmax(x, -1), "real"),
    ]


def _loss_cases(somanet_f, torch_f, target_s, target_t):
    s, t = somanet_f, torch_f
    return [
        ("MSELoss", lambda x: s.mse_loss(x, target_s), lambda x: t.mse_loss(x, target_t), "real"),
        ("L1Loss", lambda x: s.l1_loss(x, target_s), lambda x: t.l1_loss(x, target_t), "real"),
        ("HuberLoss", lambda x: s.huber_loss(x, target_s), lambda x: t.huber_loss(x, target_t), "real"),
        ("SmoothL1Loss", lambda x: s.smooth_l1_loss(x, target_s), lambda x: t.smooth_l1_loss(x, target_t), "real"),
        ("BCELoss", lambda x: s.binary_cross_entropy(x, target_s), lambda x: t.binary_cross_entropy(x, target_t),
         "prob"),
        ("BCEWithLogitsLoss", lambda x: s.binary_cross_entropy_with_logits(x, target_s),
         lambda x: t.binary_cross_entropy_with_logits(x, target_t), "real"),
    ]


def elementwise_workloads(torch, shape=(256, 4096)):
    """Forward + backward of every activation and elementwise loss on ``shape`` float32 inputs (a million
    elements by default), with an upstream gradient for the activations and the mean for the losses."""
    import somanet.nn.functional as somanet_f

    rng = np.random.default_rng(0)
    inputs = {"real": rng.standard_normal(shape, dtype=np.float32),
              "prob": rng.random(shape, dtype=np.float32) * 0.98 + 0.01}
    grad = rng.standard_normal(shape, dtype=np.float32)
    target = (rng.random(shape) > 0.5).astype(np.float32)
    cases = (_activation_cases(somanet_f, torch.nn.functional, torch)
             + _loss_cases(somanet_f, torch.nn.functional, somanet.tensor(target), torch.tensor(target)))
    def step(lib, op, kind):
        """One forward + backward of ``op`` in ``lib`` (somanet or torch), on its own copy of the input."""
        x, g = lib.tensor(inputs[kind], requires_grad=True), lib.tensor(grad)

        def run():
            x.grad = None
            y = op(x)
            y.backward() if y.ndim == 0 else y.backward(g)

        return run

    return [(f"{name} fwd+bwd", step(somanet, s_op, kind), step(torch, t_op, kind))
            for name, s_op, t_op, kind in cases]


def linear_workloads(torch, features=(784, 512), batches=(1, 8, 32, 128, 512), train_batches=(8, 32, 128)):
    """A ``Linear(*features)`` layer (weights copied from PyTorch's) on ``batches`` rows: the forward under
    ``no_grad``, and forward + backward (input and parameter gradients) on ``train_batches`` rows."""
    import somanet.nn as somanet_nn

    torch.manual_seed(0)
    t_lin = torch.nn.Linear(*features)
    s_lin = somanet_nn.Linear(*features)
    s_lin.load_state_dict({k: v.detach().numpy().copy() for k, v in t_lin.state_dict().items()})
    rng = np.random.default_rng(0)
    out = []

    def infer(lib, layer, x):
        def run():
            with lib.no_grad():
                layer(x)
        return run

    def train(lib, layer, x, g):
        def run():
            layer.zero_grad()
            x.grad = None
            layer(x).backward(g)
        return run

    for n in batches:
        x = rng.standard_normal((n, features[0]), dtype=np.float32)
        out.append((f"Linear {features[0]} -> {features[1]}, {n} rows, forward (no_grad)",
                    infer(somanet, s_lin, somanet.tensor(x)), infer(torch, t_lin, torch.tensor(x))))
    for n in train_batches:
        x = rng.standard_normal((n, features[0]), dtype=np.float32)
        g = rng.standard_normal((n, features[1]), dtype=np.float32)
        out.append((f"Linear {features[0]} -> {features[1]}, {n} rows, fwd+bwd",
                    train(somanet, s_lin, somanet.tensor(x, requires_grad=True), somanet.tensor(g)),
                    train(torch, t_lin, torch.tensor(x, requires_grad=True), torch.tensor(g))))
    return out


GROUPS = {"engine": ("Engine and ops", workloads), "elementwise": ("Activations and losses", elementwise_workloads),
          "linear": ("Linear layers by batch size", linear_workloads)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="write the tables into docs/benchmarks.md")
    parser.add_argument("--only", choices=sorted(GROUPS), help="run one group of workloads")
    parser.add_argument("--json", help="also save the results as JSON")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both frameworks (default: all cores); 1 is steadier on a busy machine")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the process's CPU time, steadier on a busy machine (single-threaded runs only)")
    args = parser.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch = harness.setup_torch()
    limiter = None
    if args.threads:
        torch.set_num_threads(args.threads)
        somanet.set_num_threads(args.threads)
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=args.threads, user_api="blas")
    all_rows = []
    for group in [args.only] if args.only else sorted(GROUPS):
        heading, make = GROUPS[group]
        rows = []
        for name, s_fn, t_fn in make(torch):
            res = harness.compare(s_fn, t_fn, clock=clock)
            res["name"] = name
            res["group"] = group
            rows.append(res)
            print(f"{name:45s} somanet {harness.fmt_time(res['somanet_s']):>10s}  "
                  f"torch {harness.fmt_time(res['torch_s']):>10s}  ratio {res['ratio']:.2f}")
        if args.write:
            threads = args.threads or "all"
            target = {
                "engine": "The small op measures the fixed cost of one op with graph recording; the others are "
                          "large enough for the arithmetic to dominate.",
                "elementwise": "Inputs: 256 x 4096 float32 (N(0, 1), so signs flip at random; probabilities for "
                               "BCELoss), an upstream gradient for the activations, the mean for the losses.",
                "linear": "One Linear(784, 512) with PyTorch's initial weights; float32 N(0, 1) inputs; fwd+bwd "
                          "computes the input, weight and bias gradients.",
            }[group]
            command = (f"python benchmarks/bench_ops.py --only {group} --write"
                       + (f" --threads {args.threads}" if args.threads else "") + f" --clock {args.clock}")
            body = (f"Measured on {harness.machine_line()}, {threads} thread(s) for both frameworks, "
                    f"{args.clock} clock. `{command}`. Median per call over alternating timed blocks; a ratio "
                    f"above 1 means somanet is faster. {target}\n\n" + harness.table(rows))
            harness.write_section(heading, body)
        all_rows.extend(rows)
    harness.save_json(all_rows, args.json)
    if limiter is not None:
        limiter.restore_original_limits()
    return all_rows


if __name__ == "__main__":
    main()
