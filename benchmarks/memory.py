"""Peak memory of a workload, measured in a fresh process as peak RSS above the post-import baseline.

``peak_rss("module:factory", args, imports=("somanet",))`` starts a new Python process (``spawn``, so
nothing is inherited from the caller), imports ``imports``, records the resident set size, resets the
kernel's high-water mark, then calls ``module.factory(*args)``, which builds the model and data and
returns a zero-argument step function, and runs that step ``steps`` times. The result is the highest
resident set size seen (``VmHWM``) minus the baseline, in bytes: everything the workload itself made
resident (parameters, data, activations, gradients, optimizer state, temporaries), not the libraries.

The factory module should import its framework inside the factory, not at module level, so the two
frameworks never share a process. Linux only (it reads ``/proc/self/status``).

    python benchmarks/memory.py benchmarks.bench_conv:resnet20_step somanet
"""
import importlib
import multiprocessing as mp
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"memory: {field} not found in /proc/self/status")


def _reset_peak():
    """Make VmHWM equal to the current RSS (Linux >= 4.0); returns False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _resolve(target):
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"memory: target must look like 'module:function', got {target!r}")
    return getattr(importlib.import_module(module_name), attr)


def _child(target, args, imports, steps, threads, queue):
    try:
        if ROOT not in sys.path:
            sys.path.insert(0, ROOT)
        for name in imports:
            importlib.import_module(name)
        if threads and "torch" in imports:
            import torch

            torch.set_num_threads(threads)
        if threads:
            import somanet

            somanet.set_num_threads(threads)
        baseline = _status_kib("VmRSS")
        exact = _reset_peak()
        step = _resolve(target)(*args)
        for _ in range(steps):
            step()
        peak = _status_kib("VmHWM")
        queue.put({"peak_bytes": (peak - baseline) * 1024, "baseline_bytes": baseline * 1024, "exact": exact})
    except BaseException as exc:  # report the failure to the parent instead of hanging it
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def peak_rss(target, args=(), imports=(), steps=3, threads=None, timeout=600):
    """Peak RSS (bytes) above the post-import baseline of ``steps`` calls of the step that
    ``target`` ('module:factory') builds from ``args``, in a fresh process.

    Returns a dict with ``peak_bytes``, ``baseline_bytes`` and ``exact`` (False when the kernel refused
    to reset the high-water mark, so import-time peaks could inflate the figure).
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, tuple(args), tuple(imports), steps, threads, queue))
    proc.start()
    try:
        result = queue.get(timeout=timeout)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.terminate()
    if "error" in result:
        raise RuntimeError(f"memory: {target}{tuple(args)} failed in the child process: {result['error']}")
    return result


def fmt_bytes(n):
    """``n`` bytes as MiB with one decimal."""
    return f"{n / 2 ** 20:.1f} MiB"


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python benchmarks/memory.py module:factory [import ...]")
    out = peak_rss(sys.argv[1], imports=tuple(sys.argv[2:]))
    print(f"{sys.argv[1]}: peak {fmt_bytes(out['peak_bytes'])} above a baseline of {fmt_bytes(out['baseline_bytes'])}")
