"""The MLP training step timed with each framework alone in its own process, as a user runs it.

``bench_mlp.py`` and the suite time both frameworks in one process. That process carries somanet's
import-time allocator setting (``somanet/_malloc.py``), which speeds PyTorch up too, so a shared process
measures PyTorch as it would run with somanet's setting, not as a PyTorch user runs it. Here every timed
block is a fresh child process that imports only one framework; children alternate (somanet, PyTorch,
somanet, ...) within one run, start from identical weights and batch (saved once by the parent), and
check that their first losses agree.

    python benchmarks/isolated.py [--rounds 4] [--threads 1] [--write]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SIZES = (784, 512, 256, 10)
BATCH = 128

_CHILD = r"""
import json, statistics, sys, time
if sys.argv[1] != "torch":
    import somanet  # before NumPy: it sets OpenBLAS's thread timeout
import numpy as np
framework, path, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = np.load(path)
x, y = data["x"], data["y"]
weights = [(data[f"w{i}"], data[f"b{i}"]) for i in range(3)]
if framework == "torch":
    import torch
    torch.set_num_threads(int(sys.argv[4]))
    layers = []
    for i, (w, b) in enumerate(weights):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w)); lin.bias.copy_(torch.from_numpy(b))
        layers += [lin] + ([torch.nn.ReLU()] if i < 2 else [])
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
else:
    import somanet
    from somanet import nn, optim
    layers = []
    for i, (w, b) in enumerate(weights):
        lin = nn.Linear(w.shape[1], w.shape[0])
        lin.load_state_dict({"weight": w, "bias": b})
        layers += [lin] + ([nn.ReLU()] if i < 2 else [])
    model = nn.Sequential(*layers)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = somanet.tensor(x), somanet.tensor(y)

def step():
    opt.zero_grad()
    loss = loss_fn(model(xt), yt)
    loss.backward()
    opt.step()
    return loss

first = float(step().item())
for _ in range(20):
    step()
times = []
for _ in range(steps):
    t = time.process_time()
    step()
    times.append(time.process_time() - t)
print(json.dumps({"first_loss": first, "median_s": statistics.median(times)}))
"""


def _child(framework, path, steps, threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), SOMANET_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", _CHILD, framework, path, str(steps), str(threads)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{framework} child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(rounds=4, steps=200, threads=1, seed=0):
    """Alternate fresh somanet and PyTorch processes; returns medians over rounds and the ratio."""
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.standard_normal((BATCH, SIZES[0]), dtype=np.float32),
              "y": rng.integers(0, SIZES[-1], BATCH).astype(np.int64)}
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        bound = 1 / np.sqrt(n_in)
        arrays[f"w{i}"] = rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32)
        arrays[f"b{i}"] = rng.uniform(-bound, bound, n_out).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mlp.npz")
        np.savez(path, **arrays)
        results = {"somanet": [], "torch": []}
        losses = {}
        for _ in range(rounds):
            for fw in ("somanet", "torch"):
                out = _child(fw, path, steps, threads)
                results[fw].append(out["median_s"])
                losses[fw] = out["first_loss"]
    if abs(losses["somanet"] - losses["torch"]) > 1e-4 * max(1.0, abs(losses["torch"])):
        raise AssertionError(f"first losses differ: somanet {losses['somanet']}, PyTorch {losses['torch']}")
    med_s = statistics.median(results["somanet"])
    med_t = statistics.median(results["torch"])
    return {"name": "MLP 784-512-256-10 train step, each framework in its own process", "somanet_s": med_s,
            "torch_s": med_t, "ratio": med_t / med_s, "rounds": rounds, "threads": threads}


def main(argv=None):
    from benchmarks import harness

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4, help="fresh processes per framework (alternating)")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per process")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="write the result into docs/benchmarks.md")
    args = parser.parse_args(argv)
    res = run(args.rounds, args.steps, args.threads)
    load = os.getloadavg()[0]
    print(f"{res['name']}: somanet {harness.fmt_time(res['somanet_s'])}, PyTorch {harness.fmt_time(res['torch_s'])}, "
          f"torch/somanet {res['ratio']:.2f} ({args.threads} thread(s), {args.rounds} rounds, load {load:.1f})")
    if args.write:
        body = (f"Measured on {harness.machine_line()}, {args.threads} thread(s), CPU time, load average "
                f"{load:.1f}. `python benchmarks/isolated.py --write`. Each framework runs alone in fresh child "
                f"processes that alternate within one run ({args.rounds} rounds of {args.steps} timed steps "
                f"each, identical weights and batch, first losses checked equal); the figure is the median "
                f"over rounds of each process's median step. This is how a user runs either framework: "
                f"somanet's import-time allocator setting applies to somanet's processes only. In the suite's "
                f"shared process the same setting also speeds PyTorch up, so its MLP ratio is lower.\n\n"
                + harness.table([res]))
        harness.write_section("MLP training step, one framework per process", body)
    return res


if __name__ == "__main__":
    main()
