"""Data-parallel and pipeline training on this machine: equivalence, throughput, communication time.

    python benchmarks/bench_distributed.py [--workloads mlp,resnet20,gpt] [--block-s 2] [--json FILE]

For each workload of ``benchmarks/workloads.py`` (the same global batch in every configuration):

* ``1 rank x 1 thread`` and ``1 rank x 2 threads``: one process, the whole batch per step;
* ``2 ranks x 1 thread``: ``DistributedDataParallel``, half the batch per rank per step;
* ``2 ranks, no_sync``: the same, with the all-reduce switched off (what the ranks compute alone);
* communication: the time one blocking all-reduce of all the gradients takes, and the time the last
  backward hook waits for the reductions that overlap backward (``comm_wait_s``).

Then the equivalence checks: 50 DDP steps on two ranks against one process on the combined batches
(the MLP), and a two-stage pipeline's gradients (GPipe and 1F1B) against the whole model's. Every
number comes from jobs started with ``somanet run`` (MPI), one rank per core.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


# =========================================================================== inside a rank
def _setup(key):
    import numpy as np

    import somanet
    from benchmarks import workloads
    wl = workloads.WORKLOADS[key]
    somanet.manual_seed(0)
    model = wl.somanet_model()
    x, y = wl.data(0)
    return np, somanet, wl, model, x, y


def _agree(n):
    """The largest ``n`` over the ranks (every rank must run the same number of steps)."""
    import somanet
    import somanet.distributed as dist
    if not dist.is_initialized():
        return n
    t = somanet.tensor([float(n)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.array[0])


def _timed(step, block_s, sync=lambda: None, agree=True):
    """Median seconds per call of ``step`` over 5 blocks of about ``block_s`` seconds (after warm-up)."""
    for _ in range(3):
        step()
    sync()
    start = time.perf_counter()
    step()
    once = max(time.perf_counter() - start, 1e-4)
    n = max(2, int(block_s / once))
    n = _agree(n) if agree else n
    times = []
    for _ in range(5):
        sync()
        start = time.perf_counter()
        for _ in range(n):
            step()
        sync()
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times)


def worker_throughput(key, block_s):
    np, somanet, wl, model, x, y = _setup(key)
    from somanet import nn
    somanet.set_num_threads(int(os.environ.get("SOMANET_NUM_THREADS", "1")))
    criterion = nn.CrossEntropyLoss()
    distributed = "PMI_SIZE" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ
    result = {"workload": key, "batch": wl.batch, "threads": somanet.get_num_threads()}
    if not distributed:
        opt = wl.somanet_optimizer(model.parameters())
        sx, sy = somanet.tensor(x), somanet.tensor(y)

        def step():
            opt.zero_grad()
            criterion(wl.logits(model(sx)), sy).backward()
            opt.step()

        result.update(ranks=1, step_s=_timed(step, block_s))
        print("RESULT " + json.dumps(result), flush=True)
        return
    import somanet.distributed as dist
    from somanet.nn.parallel import DistributedDataParallel
    dist.init_process_group()
    r, n = dist.get_rank(), dist.get_world_size()
    ddp = DistributedDataParallel(model)
    opt = wl.somanet_optimizer(ddp.parameters())
    rows = slice(r * wl.batch // n, (r + 1) * wl.batch // n)
    sx = somanet.tensor(x[rows])
    sy = somanet.tensor(y.reshape(wl.batch, -1)[rows].reshape(-1) if wl.kind == "lm" else y[rows])
    waits = []

    def step():
        opt.zero_grad()
        criterion(wl.logits(ddp(sx)), sy).backward()
        waits.append(ddp.comm_wait_s)
        opt.step()

    barrier = dist.barrier
    step_s = _timed(step, block_s, barrier)
    with ddp.no_sync():
        alone_s = _timed(step, block_s, barrier)
    grads = np.zeros(sum(p.array.size for p in ddp.parameters()), np.float32)
    flat = somanet.tensor(grads)
    allreduce_s = _timed(lambda: dist.all_reduce(flat), min(block_s, 0.5), barrier)
    result.update(ranks=n, step_s=step_s, alone_step_s=alone_s, allreduce_s=allreduce_s,
                  grad_mb=grads.nbytes / 2**20, buckets=len(ddp._buckets),
                  comm_wait_s=statistics.median(waits[len(waits) // 2:]))
    if r == 0:
        print("RESULT " + json.dumps(result), flush=True)


def worker_equivalence():
    import numpy as np

    import somanet
    import somanet.distributed as dist
    from somanet import nn, optim
    from somanet.distributed.pipeline import Pipe
    from somanet.models import MLP
    from somanet.nn.parallel import DistributedDataParallel
    somanet.set_num_threads(1)
    dist.init_process_group()
    r, n = dist.get_rank(), dist.get_world_size()
    steps, batch = 50, 64
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((steps, batch, 784)).astype(np.float32)
    ys = rng.integers(0, 10, (steps, batch))

    def build():
        somanet.manual_seed(0)
        return MLP(784, [512, 256], 10)

    def train(model, parameters, rows):
        opt = optim.Adam(parameters, lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        for s in range(steps):
            opt.zero_grad()
            loss_fn(model(somanet.tensor(xs[s, rows])), somanet.tensor(ys[s, rows])).backward()
            opt.step()

    model = build()
    ddp = DistributedDataParallel(model)
    train(ddp, ddp.parameters(), slice(r * batch // n, (r + 1) * batch // n))
    out = {}
    if r == 0:
        ref = build()
        train(ref, ref.parameters(), slice(None))
        diffs = [np.abs(a.array - b.array).max() for a, b in zip(model.parameters(), ref.parameters())]
        rel = [np.abs(a.array - b.array).max() / np.abs(b.array).max() for a, b in
               zip(model.parameters(), ref.parameters())]
        out["ddp_max_abs"] = float(max(diffs))
        out["ddp_max_rel"] = float(max(rel))

    # Pipeline: gradients of one batch against the whole model; then timing of a step.
    x, y = xs[0], ys[0]
    ref = build()
    nn.CrossEntropyLoss()(ref(somanet.tensor(x)), somanet.tensor(y)).backward()
    want = {k: p.grad.array for k, p in ref.named_parameters()}
    for schedule in ("gpipe", "1f1b"):
        pipe = Pipe(build(), chunks=4, schedule=schedule)
        pipe.step(x, y, nn.CrossEntropyLoss())
        worst = max(float(np.abs(p.grad.array - want[k]).max()) for k, p in pipe.named_parameters())
        every = [None] * n
        dist.all_gather_object(every, worst)
        out[f"pipe_{schedule}_max_abs"] = max(every)

        def pipe_step():
            pipe.zero_grad()
            pipe.step(x, y, nn.CrossEntropyLoss())

        out[f"pipe_{schedule}_step_s"] = _timed(pipe_step, 1.0, dist.barrier)
    one = build()
    opt_x, opt_y = somanet.tensor(x), somanet.tensor(y)

    def whole_step():
        one.zero_grad()
        nn.CrossEntropyLoss()(one(opt_x), opt_y).backward()

    if r == 0:
        out["whole_model_step_s"] = _timed(whole_step, 1.0, agree=False)
        print("RESULT " + json.dumps(out), flush=True)


# =========================================================================== the driver
def _run(cmd, env_extra):
    env = dict(os.environ)
    env.update(env_extra)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


def _single(key, threads, block_s):
    return _run([sys.executable, __file__, "--worker", "throughput", "--workloads", key, "--block-s", str(block_s)],
                {"SOMANET_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)})


def _job(ranks, threads, args):
    return _run([sys.executable, "-m", "somanet.cli", "run", "-n", str(ranks), "--threads", str(threads), __file__,
                 *args], {})


def cluster_estimate(row, nodes, gbps, latency_us):
    """Samples per second that ``nodes`` machines like this one would reach (an estimate).

    Each node takes what two ranks took here (``step_s``, with their local all-reduce) for this
    machine's batch; on top of that, a ring all-reduce of ``grad_mb`` moves ``2 (N - 1) / N`` of it over the network
    at ``gbps`` with ``2 (N - 1)`` latencies; the part of it that backward hides is taken as what the
    measured run hid on this machine (``1 - comm_wait_s / allreduce_s``).
    """
    n = nodes
    grad_bytes = row["grad_mb"] * 2**20
    ring_s = 2 * (n - 1) / n * grad_bytes / (gbps * 1e9 / 8) + 2 * (n - 1) * latency_us * 1e-6
    hidden = 1.0 - min(1.0, row["comm_wait_s"] / max(row["allreduce_s"], 1e-9))
    step_s = row["step_s"] + max(0.0, ring_s * (1 - hidden))
    # Each node holds what two ranks did here: the global batch grows with the nodes.
    return n * row["batch"] / step_s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default="mlp,resnet20,gpt")
    parser.add_argument("--block-s", type=float, default=2.0, help="seconds per timed block")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--gbps", type=float, default=10.0, help="network bandwidth for the cluster estimate")
    parser.add_argument("--latency-us", type=float, default=20.0, help="network latency for the estimate")
    parser.add_argument("--worker", choices=["throughput", "equivalence"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "throughput":
        return worker_throughput(args.workloads, args.block_s)
    if args.worker == "equivalence":
        return worker_equivalence()

    import platform
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; python "
          f"{platform.python_version()}; load average at the start {os.getloadavg()[0]:.1f}", flush=True)
    results = {"workloads": [], "equivalence": None}
    header = ("| workload | global batch | 1 rank x 1 thread | 1 rank x 2 threads | 2 ranks x 1 thread | "
              "2 ranks, no all-reduce | all-reduce of all gradients | wait after backward | gradients |")
    rows = []
    for key in args.workloads.split(","):
        one = _single(key, 1, args.block_s)
        two_threads = _single(key, 2, args.block_s)
        ranks = _job(2, 1, ["--worker", "throughput", "--workloads", key, "--block-s", str(args.block_s)])
        row = {"workload": key, "batch": ranks["batch"], "one_thread_s": one["step_s"],
               "two_threads_s": two_threads["step_s"], **{k: ranks[k] for k in (
                   "step_s", "alone_step_s", "allreduce_s", "comm_wait_s", "grad_mb", "buckets")}}
        row["estimate"] = {n: cluster_estimate(row, n, args.gbps, args.latency_us) for n in (1, 2, 4, 8, 16)}
        results["workloads"].append(row)
        b = row["batch"]
        rows.append(f"| {key} | {b} | {b / row['one_thread_s']:.0f}/s | {b / row['two_threads_s']:.0f}/s | "
                    f"{b / row['step_s']:.0f}/s | {b / row['alone_step_s']:.0f}/s | "
                    f"{row['allreduce_s'] * 1e3:.2f} ms | {row['comm_wait_s'] * 1e3:.2f} ms | "
                    f"{row['grad_mb']:.2f} MB ({row['buckets']} buckets) |")
        print(rows[-1], flush=True)
    print()
    print(header)
    print("|" + "---|" * 9)
    for line in rows:
        print(line)
    print(f"\nEstimate for N such nodes ({args.gbps:g} Gb/s, {args.latency_us:g} us latency), samples/s:")
    print("| workload | " + " | ".join(f"N={n}" for n in (1, 2, 4, 8, 16)) + " |")
    print("|---|" + "---|" * 5)
    for row in results["workloads"]:
        print(f"| {row['workload']} | " + " | ".join(f"{v:.0f}" for v in row["estimate"].values()) + " |")
    eq = _job(2, 1, ["--worker", "equivalence"])
    results["equivalence"] = eq
    print("\nEquivalence (2 ranks against one process):")
    for k, v in eq.items():
        print(f"  {k}: {v:.3g}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
