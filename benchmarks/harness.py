"""Side-by-side timing of somanet and PyTorch: warm-up, then alternating timed blocks, medians, ratios.

Every benchmark in this folder uses ``compare`` so the method is the same everywhere:

* both frameworks run the same work on the same data (weights copied by ``state_dict``), float32,
  with PyTorch limited to the machine's core count (NumPy's BLAS uses all cores by default);
* after warm-up, blocks alternate A B A B ... so drift on a noisy machine hits both equally;
* the reported figure is the median per-call time of each, and the ratio torch / somanet (above 1
  means somanet is faster).
"""
import datetime
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md")


def _calls_per_block(fn, target_s):
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, int(target_s / once))


#: Pause between timed blocks, in seconds: after a multi-threaded call OpenBLAS's and OpenMP's idle
#: threads keep spinning for a while, and a block started meanwhile would share its cores with them.
SETTLE_S = 0.15


def compare(somanet_fn, torch_fn, warmup=3, blocks=7, block_s=0.2, clock=time.perf_counter, settle_s=SETTLE_S):
    """Time two zero-argument callables; returns a dict of medians (seconds per call) and the ratio.

    ``clock`` is wall time by default; ``time.process_time`` (CPU time of the process) is steadier on a
    loaded machine but only means the same thing as wall time for single-threaded runs. ``settle_s`` is
    slept before each block so that neither framework's idle threads are still spinning in the other's
    block (see ``SETTLE_S``)."""
    for _ in range(warmup):
        somanet_fn()
        torch_fn()
    n_s = _calls_per_block(somanet_fn, block_s)
    n_t = _calls_per_block(torch_fn, block_s)
    times_s, times_t = [], []
    for _ in range(blocks):
        time.sleep(settle_s)
        start = clock()
        for _ in range(n_s):
            somanet_fn()
        times_s.append((clock() - start) / n_s)
        time.sleep(settle_s)
        start = clock()
        for _ in range(n_t):
            torch_fn()
        times_t.append((clock() - start) / n_t)
    med_s = statistics.median(times_s)
    med_t = statistics.median(times_t)
    return {"somanet_s": med_s, "torch_s": med_t, "ratio": med_t / med_s}


def setup_torch():
    """Import torch with the same thread count as NumPy's BLAS (the machine's cores)."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def machine():
    """A short description of the machine: CPU, cores, BLAS, versions and date."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = "unknown"
    try:
        cfg = np.show_config(mode="dicts")
        info = cfg["Build Dependencies"]["blas"]
        blas = f"{info.get('name')} {info.get('version', '')}".strip()
    except Exception:
        pass
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "blas": blas, "numpy": np.__version__, "torch": torch_version,
        "python": platform.python_version(), "date": datetime.date.today().isoformat(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "default"),
    }


def machine_line():
    m = machine()
    return (f"{m['cpu']}, {m['cores']} cores, BLAS {m['blas']} (core type {m['openblas_coretype']}), "
            f"NumPy {m['numpy']}, PyTorch {m['torch']}, Python {m['python']}, {m['date']}")


def fmt_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def table(rows, extra_cols=()):
    """Markdown table of results: rows are dicts with name, somanet_s, torch_s, ratio (+ extra columns)."""
    head = "| workload | somanet | PyTorch | torch / somanet |" + "".join(f" {c} |" for c in extra_cols)
    sep = "| --- | ---: | ---: | ---: |" + " ---: |" * len(extra_cols)
    lines = [head, sep]
    for r in rows:
        line = f"| {r['name']} | {fmt_time(r['somanet_s'])} | {fmt_time(r['torch_s'])} | {r['ratio']:.2f} |"
        line += "".join(f" {r.get(c, '')} |" for c in extra_cols)
        lines.append(line)
    return "\n".join(lines)


def write_section(heading, body, path=DOCS):
    """Replace (or append) the ``## heading`` section of docs/benchmarks.md, atomically."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    marker = f"## {heading}\n"
    section = marker + "\n" + body.strip() + "\n\n"
    if marker in text:
        start = text.index(marker)
        nxt = text.find("\n## ", start + len(marker))
        end = len(text) if nxt == -1 else nxt + 1
        text = text[:start] + section + text[end:]
    else:
        text = text.rstrip() + "\n\n" + section
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text.rstrip() + "\n")
    # mkstemp makes the file private (0600); a docs page keeps the usual permissions.
    os.chmod(tmp, os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644)
    os.replace(tmp, path)


def save_json(results, path):
    if path:
        with open(path, "w") as f:
            json.dump({"machine": machine(), "results": results}, f, indent=2)
