"""Engine and op benchmarks: per-op overhead and large ops, forward + backward, against PyTorch.

    python benchmarks/bench_ops.py [--write]
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
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
    rows = []
    for name, s_fn, t_fn in workloads(torch):
        res = harness.compare(s_fn, t_fn, clock=clock)
        res["name"] = name
        rows.append(res)
        print(f"{name:45s} somanet {harness.fmt_time(res['somanet_s']):>10s}  torch {harness.fmt_time(res['torch_s']):>10s}"
              f"  ratio {res['ratio']:.2f}")
    if args.write:
        threads = args.threads or "all"
        body = (f"Measured on {harness.machine_line()}, {threads} thread(s) for both frameworks. "
                f"{args.clock} clock. `python benchmarks/bench_ops.py --write --threads {args.threads or ''} --clock {args.clock}`. Median per call "
                f"over alternating timed blocks; a ratio above 1 means somanet is faster. Targets: the small "
                f"op at most 3 µs, the large ops at least PyTorch's speed.\n\n" + harness.table(rows))
        harness.write_section("Engine and ops", body)
    harness.save_json(rows, args.json)
    if limiter is not None:
        limiter.restore_original_limits()
    return rows


if __name__ == "__main__":
    main()
