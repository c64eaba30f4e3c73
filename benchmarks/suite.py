"""The whole benchmark suite: every workload as a training step and as inference, somanet against PyTorch.

For each workload of ``benchmarks/workloads.py`` both frameworks build the same model from identical
weights (PyTorch's ``state_dict`` loaded into somanet), get the same batch, run in float32 with the same
thread count, and are checked to compute the same logits and losses before anything is timed. Timing
is ``harness.compare``: warm-up, then alternating timed blocks (A B A B ...), medians. Reported per
workload and mode: median step time of each, the ratio torch / somanet (above 1: somanet is faster),
throughput (samples/s) and achieved GFLOP/s of the counted matrix products.

Also measured: NumPy's and PyTorch's sgemm (2048 x 2048) on this machine, the peak memory of a training
step (one child process per framework and workload: peak RSS above the post-import baseline) and the
import time of both libraries.

    python benchmarks/suite.py [--quick] [--only mlp,gpt] [--threads N] [--json FILE] [--write]
    somanet bench [same options]

``--write`` puts the ``## Summary`` section at the top of docs/benchmarks.md and the ratio plot in
docs/benchmarks_ratios.png; with ``--section NAME`` it writes that section instead (right after Summary),
e.g. ``--threads 1 --clock cpu --write --section "One thread"``.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import somanet  # noqa: E402
import numpy as np  # noqa: E402  (after somanet: see benchmarks/__init__.py)
from benchmarks import harness, memory  # noqa: E402
from benchmarks import workloads as W  # noqa: E402

PLOT = os.path.join(ROOT, "docs", "benchmarks_ratios.png")
SGEMM_N = 2048
IMPORT_TARGET_S = 0.3
# Ratio torch / somanet each workload must reach; the two small models are held to more.
TRAIN_TARGETS = {"mlp": 1.3, "lenet": 1.3}
SGEMM_SHARE_TARGET = 0.5
SGEMM_SHARE_WORKLOADS = ("mlp", "gpt")

QUICK = {"warmup": 1, "blocks": 3, "block_s": 0.1, "memory_steps": 2, "import_repeats": 3, "check_steps": 1}
FULL = {"warmup": 3, "blocks": 7, "block_s": 0.4, "memory_steps": 3, "import_repeats": 7, "check_steps": 2}


# =========================================================================== threads and BLAS
def blas_core():
    """The kernel family NumPy's OpenBLAS runs (e.g. 'SkylakeX', 'Haswell'), or None when unknown."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    for info in threadpool_info():
        if info.get("internal_api") == "openblas":
            return info.get("architecture")
    return None


def set_threads(torch, threads):
    """The same thread count for PyTorch, somanet's own threads and NumPy's BLAS. Returns a note on how
    BLAS was limited and a function that restores the previous settings."""
    previous, previous_somanet = torch.get_num_threads(), somanet.get_num_threads()
    torch.set_num_threads(threads)
    somanet.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        env = os.environ.get("OPENBLAS_NUM_THREADS")
        note = f"BLAS threads from OPENBLAS_NUM_THREADS={env}" if env else "BLAS threads: library default"

        def restore_torch():
            torch.set_num_threads(previous)
            somanet.set_num_threads(previous_somanet)

        return note, restore_torch
    limiter = threadpool_limits(threads, user_api="blas")

    def restore():
        somanet.set_num_threads(previous_somanet)
        limiter.restore_original_limits()
        torch.set_num_threads(previous)

    return f"BLAS limited to {threads} thread(s) with threadpoolctl", restore


# =========================================================================== measurements
def _compare(s_fn, t_fn, cfg):
    kwargs = {"clock": time.process_time} if cfg.get("clock") == "cpu" else {}
    return harness.compare(s_fn, t_fn, warmup=cfg["warmup"], blocks=cfg["blocks"], block_s=cfg["block_s"], **kwargs)


def time_workload(torch, wl, train, cfg):
    """Time one workload in one mode; returns a result row (dict)."""
    s_fn, t_fn = W.build_pair(torch, wl, train=train, device=cfg.get("device"))
    res = _compare(s_fn, t_fn, cfg)
    flops = W.count_flops(wl, train=train)
    mode = "train" if train else "inference"
    target = TRAIN_TARGETS.get(wl.key, 1.0) if train else 1.0
    res.update({
        "key": wl.key, "mode": mode, "name": f"{wl.title}, {mode}", "title": wl.title, "batch": wl.batch,
        "somanet_samples_s": wl.batch / res["somanet_s"], "torch_samples_s": wl.batch / res["torch_s"],
        "gflop": flops / 1e9, "somanet_gflops": flops / res["somanet_s"] / 1e9,
        "torch_gflops": flops / res["torch_s"] / 1e9, "target": target, "met": res["ratio"] >= target,
    })
    return res


def sgemm(torch, cfg, n=SGEMM_N):
    """sgemm GFLOP/s of NumPy and PyTorch on an n x n float32 product (alternating blocks, medians)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty_like(a)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    t_out = torch.empty(n, n)
    res = _compare(lambda: np.matmul(a, b, out=out), lambda: torch.matmul(ta, tb, out=t_out), cfg)
    flops = 2.0 * n ** 3
    return {"n": n, "numpy_gflops": flops / res["somanet_s"] / 1e9, "torch_gflops": flops / res["torch_s"] / 1e9}


def measure_memory(wl, cfg, threads):
    """Peak training-step memory of both frameworks, each in a fresh process (``benchmarks.memory``): peak
    RSS above the baseline after the imports, so it covers parameters, data, activations, gradients,
    optimizer state and temporaries."""
    row = {"key": wl.key, "title": wl.title}
    # The workload modules are imported before the baseline in both children, so neither framework is
    # charged for the other's import; the children read the thread count from the environment.
    imports = ("benchmarks.workloads", "benchmarks.bench_seq", "benchmarks.bench_conv")
    saved = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "SOMANET_NUM_THREADS",
                                            "SOMANET_NUMBA")}
    os.environ.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                      SOMANET_NUM_THREADS=str(threads))
    # somanet runs twice: as installed (Numba's runtime loaded before the baseline, as PyTorch's libraries
    # are by its import) and NumPy-only (SOMANET_NUMBA=0), whose baseline lacks the runtime.
    children = (("somanet", "somanet", imports + ("benchmarks.numba_runtime",), "1"),
                ("somanet_numpy", "somanet", imports, "0"),
                ("torch", "torch", imports + ("torch",), None))
    try:
        for name, fw, child_imports, numba_flag in children:
            if numba_flag is None:
                os.environ.pop("SOMANET_NUMBA", None)
            else:
                os.environ["SOMANET_NUMBA"] = numba_flag
            out = memory.peak_rss("benchmarks.workloads:memory_step", (fw, wl.key), imports=child_imports,
                                  steps=cfg["memory_steps"], threads=threads)
            row[f"{name}_mib"] = out["peak_bytes"] / 2 ** 20
            row[f"{name}_baseline_mib"] = out["baseline_bytes"] / 2 ** 20
            row["method"] = "VmHWM reset after imports" if out["exact"] else "VmHWM (could not be reset)"
        row["numba_runtime_mib"] = row["somanet_baseline_mib"] - row["somanet_numpy_baseline_mib"]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    row["ratio"] = row["torch_mib"] / max(row["somanet_mib"], 1e-9)
    row["met"] = row["somanet_mib"] <= row["torch_mib"]
    return row


def import_time(module, repeats):
    """Median wall time of ``import module`` in fresh interpreters (seconds)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = []
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"import {module} failed:\n{proc.stderr[-2000:]}")
        times.append(float(proc.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


# =========================================================================== BLAS kernel families
# Matrix shapes of the suite's hot products (m, k, n, layout): the 2048 reference, the MLP's first
# layer forward (x @ W.T) and weight gradient (g.T @ x), and the GPT's QKV and feed-forward projections.
BLAS_SHAPES = [(2048, 2048, 2048, "NN"), (128, 784, 512, "NT"), (512, 128, 784, "TN"), (1024, 128, 384, "NT"),
               (1024, 128, 512, "NT")]

_BLAS_PROBE = r"""
import json, sys, time
shapes = json.loads(sys.argv[1])
if sys.argv[2] == "torch":
    import torch
    torch.set_num_threads(1)
    randn, arch = (lambda *s: torch.randn(*s)), "MKL (PyTorch)"
else:
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits
    limiter = threadpool_limits(1, user_api="blas")
    rng = np.random.default_rng(0)
    randn = lambda *s: rng.standard_normal(s, dtype=np.float32)
    arch = next(i.get("architecture") for i in threadpool_info() if i.get("internal_api") == "openblas")
out = []
for m, k, n, layout in shapes:
    a = randn(m, k) if layout[0] == "N" else randn(k, m).T
    b = randn(k, n) if layout[1] == "N" else randn(n, k).T
    reps = max(3, int(4e9 / (2 * m * n * k)))
    best = float("inf")
    for _ in range(5):
        t = time.process_time()
        for _ in range(reps):
            a @ b
        best = min(best, (time.process_time() - t) / reps)
    out.append(2 * m * n * k / best / 1e9)
print(json.dumps({"arch": arch, "gflops": out}))
"""


def blas_report(coretypes=("default", "Haswell", "SkylakeX"), rounds=3, workloads="mlp,gpt", log=print):
    """Single-threaded sgemm GFLOP/s (best CPU time) of each OpenBLAS kernel family and of PyTorch's MKL on
    the suite's hot shapes, each in a fresh process (OpenBLAS reads OPENBLAS_CORETYPE when it loads), in
    interleaved rounds; then the somanet training steps of ``workloads`` under each family."""
    import json
    import tempfile

    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    base.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    kinds = list(coretypes) + ["torch"]
    best = {k: None for k in kinds}
    arch = {}
    for _ in range(rounds):
        for kind in kinds:
            env = dict(base)
            if kind not in ("default", "torch"):
                env["OPENBLAS_CORETYPE"] = kind
            proc = subprocess.run([sys.executable, "-c", _BLAS_PROBE, json.dumps(BLAS_SHAPES),
                                   "torch" if kind == "torch" else "numpy"],
                                  capture_output=True, text=True, env=env, cwd=ROOT, check=True)
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            arch[kind] = res["arch"]
            best[kind] = res["gflops"] if best[kind] is None else [max(a, b) for a, b in zip(best[kind],
                                                                                            res["gflops"])]
    rows = [{"kind": k, "arch": arch[k], "gflops": best[k]} for k in kinds]
    for r in rows:
        log(f"{r['kind']:10s} ({r['arch']}): " + ", ".join(f"{g:.1f}" for g in r["gflops"]))
    steps = {}
    for kind in coretypes:
        env = dict(base)
        if kind != "default":
            env["OPENBLAS_CORETYPE"] = kind
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "out.json")
            subprocess.run([sys.executable, os.path.abspath(__file__), "--only", workloads, "--mode", "train",
                            "--threads", "1", "--clock", "cpu", "--no-memory", "--no-import", "--json", path],
                           capture_output=True, text=True, env=env, cwd=ROOT, check=True)
            with open(path) as f:
                timings = json.load(f)["results"]["timings"]
        steps[kind] = {t["key"]: {"somanet_s": t["somanet_s"], "torch_s": t["torch_s"]} for t in timings}
        log(f"{kind:10s} " + ", ".join(f"{k} {v['somanet_s'] * 1e3:.2f} ms (PyTorch {v['torch_s'] * 1e3:.2f} ms)"
                                       for k, v in steps[kind].items()))
    return {"rows": rows, "steps": steps, "shapes": BLAS_SHAPES, "rounds": rounds,
            "load": os.getloadavg()[0]}


def render_blas(report):
    """Markdown body of the ``BLAS kernels`` section."""
    shapes = [f"{m}x{k}x{n} {lay}" for m, k, n, lay in report["shapes"]]
    lines = [f"Measured on {harness.machine_line()}, one thread, load average {report['load']:.1f}. sgemm "
             f"GFLOP/s from the best CPU time of 5 runs per process, best of {report['rounds']} interleaved "
             f"fresh processes per kernel family (`python benchmarks/suite.py --blas-report`). Shapes are "
             f"m x k x n with N/T for plain or transposed operands: the 2048 reference, the MLP's first layer "
             f"(forward, weight gradient), the GPT's QKV and feed-forward projections.", "",
             "| kernels | OpenBLAS reports | " + " | ".join(shapes) + " |",
             "| --- | --- |" + " ---: |" * len(shapes)]
    for r in report["rows"]:
        name = {"default": "NumPy default", "torch": "PyTorch (MKL)"}.get(r["kind"], f"OPENBLAS_CORETYPE={r['kind']}")
        lines.append(f"| {name} | {r['arch'] if r['kind'] != 'torch' else '-'} | "
                     + " | ".join(f"{g:.1f}" for g in r["gflops"]) + " |")
    steps = report["steps"]
    if steps:
        keys = list(next(iter(steps.values())))
        lines += ["", "Training steps (somanet, one thread, median CPU time; PyTorch in the same run for scale):", "",
                  "| kernels | " + " | ".join(keys) + " |", "| --- |" + " ---: |" * len(keys)]
        for kind, vals in steps.items():
            name = "NumPy default" if kind == "default" else f"OPENBLAS_CORETYPE={kind}"
            lines.append(f"| {name} | " + " | ".join(
                f"{vals[k]['somanet_s'] * 1e3:.2f} ms (PyTorch {vals[k]['torch_s'] * 1e3:.2f} ms)" for k in keys) + " |")
    return "\n".join(lines)


# =========================================================================== report
def _fmt_rate(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def render(results):
    """The Markdown body of the Summary section from a results dict."""
    s = results["settings"]
    lines = [
        f"Measured on {results['machine_line']}; {s['threads']} thread(s) for both frameworks ({s['blas_threads']}); "
        f"OpenBLAS kernels: {s['blas_core'] or 'unknown'}. Load average (1 min) {s['load_before']:.1f} before and "
        f"{s['load_after']:.1f} after the run{' (quick mode)' if s['quick'] else ''}. "
        f"`python benchmarks/suite.py{' --quick' if s['quick'] else ''} --threads {s['threads']} "
        f"--clock {s['clock']} --write` (or `somanet bench` with the same options).",
        "",
        f"Each row builds the same model in both frameworks from identical weights and batch, checks that logits "
        f"and the first training losses agree, then times {s['blocks']} alternating blocks per framework after "
        f"warm-up and reports medians ({'CPU time of the process' if s['clock'] == 'cpu' else 'wall time'}). "
        f"Train = zero_grad, forward, cross-entropy, backward, optimizer step (Adam, or SGD with momentum for the CNNs); inference = eval mode under no_grad. GFLOP/s counts the "
        f"matrix products only (linear, convolution, attention, recurrent). A ratio above 1 means somanet is "
        f"faster.",
        "",
        "| workload | mode | batch | somanet | PyTorch | torch / somanet | somanet samples/s | "
        "PyTorch samples/s | somanet GFLOP/s | PyTorch GFLOP/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["timings"]:
        lines.append(
            f"| {r['title']} | {r['mode']} | {r['batch']} | {harness.fmt_time(r['somanet_s'])} | "
            f"{harness.fmt_time(r['torch_s'])} | {r['ratio']:.2f} | "
            f"{_fmt_rate(r['somanet_samples_s'])} | {_fmt_rate(r['torch_samples_s'])} | "
            f"{r['somanet_gflops']:.1f} | {r['torch_gflops']:.1f} |")
    g = results.get("sgemm")
    if g:
        lines += ["", f"sgemm ({g['n']} x {g['n']}, float32, same threads): NumPy {g['numpy_gflops']:.1f} GFLOP/s, "
                      f"PyTorch {g['torch_gflops']:.1f} GFLOP/s."]
        shares = results.get("sgemm_share", {})
        if shares:
            parts = [f"{k.upper()} {v['gflops']:.1f} GFLOP/s = {100 * v['share']:.0f} %" for k, v in shares.items()]
            lines.append("Training steps against NumPy's sgemm: " + ", ".join(parts) + ".")
    mem = results.get("memory")
    if mem:
        lines += ["", f"Peak memory of a training step ({s['memory_steps']} steps in a fresh process per framework "
                      f"and workload; peak RSS above the post-import baseline, "
                      f"{mem[0]['method']}; the libraries are in the baseline: PyTorch's from its import, "
                      f"somanet's Numba runtime loaded before the baseline, "
                      f"{max(m['numba_runtime_mib'] for m in mem):.1f} MiB; \"NumPy only\" is somanet with "
                      f"`SOMANET_NUMBA=0`):", "",
                  "| workload | somanet MiB | somanet NumPy only MiB | PyTorch MiB | torch / somanet |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for m in mem:
            lines.append(f"| {m['title']} | {m['somanet_mib']:.1f} | {m['somanet_numpy_mib']:.1f} | "
                         f"{m['torch_mib']:.1f} | {m['ratio']:.2f} |")
    imp = results.get("import")
    if imp:
        lines += ["", f"Import time (median of {s['import_repeats']} fresh interpreters): `import somanet` "
                      f"{imp['somanet_s']:.3f} s (NumPy alone "
                      f"{imp['numpy_s']:.3f} s), `import torch` {imp['torch_s']:.3f} s."]
    if results.get("plot"):
        lines += ["", f"![torch / somanet per workload](benchmarks_ratios.png)"]
    return "\n".join(lines)


def plot(results, path=PLOT):
    """Bar chart of the ratios (training and inference per workload) with the 1.0 line; returns the path
    or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)", file=sys.stderr)
        return None
    rows = results["timings"]
    keys = list(dict.fromkeys(r["key"] for r in rows))
    titles = {r["key"]: r["title"].split(" (")[0] for r in rows}
    ratio = {(r["key"], r["mode"]): r["ratio"] for r in rows}
    fig, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.38
    for j, (mode, color) in enumerate((("train", "#3b6ea5"), ("inference", "#e08a2c"))):
        xs = [i + (j - 0.5) * width for i in range(len(keys))]
        vals = [ratio.get((k, mode), 0.0) for k in keys]
        bars = ax.bar(xs, vals, width, label=mode, color=color)
        for b, v in zip(bars, vals):
            if v:
                ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([titles[k] for k in keys], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("PyTorch time / somanet time")
    ax.set_title(f"somanet vs PyTorch on the CPU ({results['settings']['threads']} thread(s); above 1: somanet "
                 f"faster)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def write_top_section(heading, body, path=harness.DOCS, after=None):
    """Write ``## heading`` of docs/benchmarks.md: replaced in place when it exists, else placed right after
    the section ``after`` (or right under the title), so the suite's sections stay at the top while the
    per-family benchmarks append theirs below."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if f"## {heading}\n" not in text:
        # Reserve the place once; harness.write_section then replaces it where it stands.
        anchor = f"## {after}\n" if after else None
        if anchor and anchor in text:
            start = text.index(anchor) + len(anchor)
            nxt = text.find("\n## ", start)
            cut = len(text) if nxt == -1 else nxt + 1
            text = text[:cut].rstrip("\n") + f"\n\n## {heading}\n\n" + text[cut:]
        else:
            head, _, rest = text.partition("\n")
            text = head + f"\n\n## {heading}\n\n" + rest.lstrip("\n")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    harness.write_section(heading, body, path=path)


def write_summary(body, path=harness.DOCS):
    """Put ``## Summary`` right under the title of docs/benchmarks.md (replacing an earlier one in place)."""
    write_top_section("Summary", body, path)


# =========================================================================== driver
def run(keys=None, quick=False, threads=None, memory=True, imports=True, modes=("train", "inference"),
        blocks=None, block_s=None, clock="wall", log=print, device=None):
    """Run the suite and return the results dict (see ``render``).

    ``clock="cpu"`` times with the process's CPU time instead of wall time: steadier on a machine shared
    with other jobs, and the same measure as wall time only for single-threaded runs, so it needs
    ``threads=1``. ``device`` (``"cuda"``) runs somanet's side there (and PyTorch's on CUDA when it has
    it); the peak-memory children, which measure host memory, are then skipped."""
    import torch

    threads = threads or os.cpu_count() or 1
    if clock not in ("wall", "cpu"):
        raise ValueError(f"suite: clock must be 'wall' or 'cpu', got {clock!r}")
    if clock == "cpu" and threads != 1:
        raise ValueError(f"suite: the CPU-time clock needs --threads 1 (got {threads}): with more threads it "
                         f"adds up every thread's time, waiting included")
    cfg = dict(QUICK if quick else FULL, clock=clock)
    if device is not None:
        cfg["device"] = str(device)
        memory = False
    if blocks:
        cfg["blocks"] = blocks
    if block_s:
        cfg["block_s"] = block_s
    blas_threads, restore_threads = set_threads(torch, threads)
    try:
        return _run(torch, keys, quick, threads, memory, imports, modes, cfg, blas_threads, log)
    finally:
        restore_threads()


def _run(torch, keys, quick, threads, memory, imports, modes, cfg, blas_threads, log):
    load_before = os.getloadavg()[0]
    wls = W.get(keys)
    results = {"settings": {"quick": quick, "threads": threads, "blas_threads": blas_threads,
                            "blas_core": blas_core(), "load_before": load_before, **cfg},
               "machine_line": harness.machine_line(), "timings": []}
    for wl in wls:
        W.check_pair(torch, wl, steps=cfg["check_steps"], device=cfg.get("device"))
        for mode in modes:
            r = time_workload(torch, wl, mode == "train", cfg)
            results["timings"].append(r)
            log(f"{r['name']:60s} somanet {harness.fmt_time(r['somanet_s']):>10s}  PyTorch "
                f"{harness.fmt_time(r['torch_s']):>10s}  ratio {r['ratio']:.2f} (target {r['target']:.1f})  "
                f"load {os.getloadavg()[0]:.1f}")
    results["sgemm"] = g = sgemm(torch, cfg)
    log(f"sgemm {g['n']}: NumPy {g['numpy_gflops']:.1f} GFLOP/s, PyTorch {g['torch_gflops']:.1f} GFLOP/s")
    shares = {}
    for r in results["timings"]:
        if r["key"] in SGEMM_SHARE_WORKLOADS and r["mode"] == "train":
            share = r["somanet_gflops"] / g["numpy_gflops"]
            shares[r["key"]] = {"gflops": r["somanet_gflops"], "share": share, "met": share >= SGEMM_SHARE_TARGET}
    results["sgemm_share"] = shares
    if memory and "train" in modes:
        results["memory"] = []
        for wl in wls:
            m = measure_memory(wl, cfg, threads)
            results["memory"].append(m)
            log(f"memory {wl.key:9s} somanet {m['somanet_mib']:8.1f} MiB  NumPy only {m['somanet_numpy_mib']:8.1f} MiB  "
                f"PyTorch {m['torch_mib']:8.1f} MiB")
    if imports:
        imp = {"somanet_s": import_time("somanet", cfg["import_repeats"]),
               "numpy_s": import_time("numpy", cfg["import_repeats"]),
               "torch_s": import_time("torch", cfg["import_repeats"])}
        imp["met"] = imp["somanet_s"] < IMPORT_TARGET_S
        results["import"] = imp
        log(f"import: somanet {imp['somanet_s']:.3f} s, numpy {imp['numpy_s']:.3f} s, torch {imp['torch_s']:.3f} s")
    results["settings"]["load_after"] = os.getloadavg()[0]
    return results


def build_parser():
    parser = argparse.ArgumentParser(prog="suite.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer and shorter timed blocks (about a minute)")
    parser.add_argument("--only", default=None, help=f"comma-separated workloads: {', '.join(W.WORKLOADS)}")
    parser.add_argument("--mode", choices=("both", "train", "inference"), default="both",
                        help="time training steps, inference, or both (default)")
    parser.add_argument("--threads", type=int, default=None, help="threads for both frameworks (default: cores)")
    parser.add_argument("--blocks", type=int, default=None, help="alternating timed blocks per framework")
    parser.add_argument("--block-seconds", type=float, default=None, help="target length of one timed block")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time (default) or the process's CPU time (steadier under load; --threads 1)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    parser.add_argument("--no-import", action="store_true", help="skip the import-time measurement")
    parser.add_argument("--json", default=None, help="also save the results as JSON to this file")
    parser.add_argument("--device", default=None, help="run somanet's side on this device (cuda, cuda:1)")
    parser.add_argument("--write", action="store_true",
                        help="write the Summary section of docs/benchmarks.md and docs/benchmarks_ratios.png")
    parser.add_argument("--section", default="Summary",
                        help="with --write: the section of docs/benchmarks.md to write (default Summary, which "
                             "also draws the plot; another name, e.g. 'One thread', goes right after Summary)")
    parser.add_argument("--blas-report", action="store_true",
                        help="instead of the suite: sgemm and two training steps under each OpenBLAS kernel family")
    parser.add_argument("--docs", default=harness.DOCS, help=argparse.SUPPRESS)
    parser.add_argument("--plot", default=PLOT, help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("the benchmark suite compares somanet with PyTorch, which is not installed: "
              "pip install torch (the CPU build is enough)", file=sys.stderr)
        return 2
    if args.blas_report:
        report = blas_report()
        if args.write:
            write_top_section("BLAS kernels", render_blas(report), args.docs, after="Summary")
        else:
            print(render_blas(report))
        return 0
    modes = ("train", "inference") if args.mode == "both" else (args.mode,)
    try:
        W.get(args.only)
    except ValueError as exc:
        print(f"suite: {exc}", file=sys.stderr)
        return 2
    if args.clock == "cpu" and (args.threads or os.cpu_count()) != 1:
        print("suite: --clock cpu needs --threads 1 (with more threads CPU time adds up every thread's time, "
              "waiting included)", file=sys.stderr)
        return 2
    results = run(args.only, quick=args.quick, threads=args.threads, memory=not args.no_memory,
                  imports=not args.no_import, modes=modes, blocks=args.blocks, block_s=args.block_seconds,
                  clock=args.clock, device=args.device)
    if args.write and args.section != "Summary":
        write_top_section(args.section, render(results), args.docs, after="Summary")
        print(f"wrote the {args.section} section of {args.docs}")
    elif args.write:
        results["plot"] = plot(results, args.plot)
        write_summary(render(results), args.docs)
        print(f"wrote the Summary section of {args.docs}" + (f" and {results['plot']}" if results["plot"] else ""))
    else:
        print()
        print(render(results))
    harness.save_json(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
