"""``somanet bench``: the benchmark suite against PyTorch, from the command line.

    somanet bench [--quick] [--only mlp,gpt] [--threads N] [--clock wall|cpu] [--json FILE] [--write]
                  [--blas-coretype NAME]
    somanet bench --sweep [--full] [--quick] [--threads N] [--json FILE] [--write]   # convolution shapes

The suite (``benchmarks/suite.py`` of the source tree) runs in a child interpreter. That is what lets
this command choose OpenBLAS's settings: OpenBLAS reads ``OPENBLAS_CORETYPE`` and
``OPENBLAS_NUM_THREADS`` once, when NumPy loads it, and this process has NumPy loaded already.

BLAS kernel family: by default OpenBLAS picks its kernels from the CPU it finds. ``--blas-coretype
NAME`` (``Haswell``, ``SkylakeX``, ``Zen``, ...) runs the suite with ``OPENBLAS_CORETYPE=NAME``
instead, to measure another kernel family; a value already set in the environment always wins. The
AVX-512 families (SkylakeX, Cooperlake, SapphireRapids) are refused unless /proc/cpuinfo shows the
AVX-512 subsets they use (avx512f, avx512bw, avx512vl, avx512dq), because on a CPU without them the
kernels stop the process with an illegal instruction. Why nothing is forced by default: on the AMD
EPYC (Zen 4) these benchmarks run on, NumPy's OpenBLAS already picks SkylakeX, and its Haswell
(AVX2) kernels measured faster still, since Zen 4 runs AVX-512 on 256-bit units; see
docs/benchmarks.md, "BLAS kernels".

PyTorch is needed only here and only in the child; the command says how to install it when missing.
"""
import importlib.util
import os
import subprocess
import sys

from ..kernels import blas as _blas
from ..kernels.blas import AVX512_CORETYPES, AVX512_FLAGS, avx512_supported, cpu_flags  # noqa: F401

__all__ = ["add_parser", "cmd_bench", "blas_environment", "cpu_flags", "avx512_supported", "find_suite"]

class BenchError(Exception):
    """The benchmark cannot run here (no suite, no PyTorch); printed as one line with exit status 2."""


def blas_environment(env, coretype=None, threads=None, flags=None):
    """``somanet.kernels.blas.blas_environment``, its refusal raised as ``BenchError``."""
    try:
        return _blas.blas_environment(env, coretype, threads, flags)
    except ValueError as exc:
        raise BenchError(str(exc)) from None


def find_suite():
    """Path of ``benchmarks/suite.py`` in the source tree this package was imported from."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for base in (root, os.getcwd()):
        path = os.path.join(base, "benchmarks", "suite.py")
        if os.path.isfile(path):
            return path
    raise BenchError("the benchmark suite (benchmarks/suite.py) was not found: somanet bench runs from a source "
                     "checkout of somanet (pip install -e .) or from its top folder")


def add_parser(sub):
    """Register ``bench`` on the ``somanet`` command's subparsers."""
    p = sub.add_parser("bench", help="benchmark somanet against PyTorch on the model zoo's workloads",
                       description="Time every workload (training step and inference) in somanet and PyTorch "
                                   "from identical weights, plus sgemm, peak memory and import time. Needs "
                                   "PyTorch (CPU build).")
    p.add_argument("--quick", action="store_true", help="short run (about a minute on an idle machine)")
    p.add_argument("--only", metavar="NAMES", help="comma-separated workloads: mlp, lenet, resnet20, vgg11, lstm, "
                                                   "gru, gpt, vit")
    p.add_argument("--mode", choices=("both", "train", "inference"), default="both")
    p.add_argument("--threads", type=int, metavar="N", help="threads for both frameworks (default: cores)")
    p.add_argument("--json", metavar="FILE", help="also save the results as JSON")
    p.add_argument("--device", metavar="DEVICE", default=None,
                   help="run somanet's side on this device, e.g. cuda (PyTorch's on CUDA too when it has it; "
                        "see docs/gpu.md)")
    p.add_argument("--write", action="store_true",
                   help="write the Summary of docs/benchmarks.md and docs/benchmarks_ratios.png")
    p.add_argument("--section", metavar="NAME", default=None,
                   help="with --write: write this section of docs/benchmarks.md instead of the Summary")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time (default) or the process's CPU time (steadier under load; needs --threads 1)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--no-import", action="store_true", help="skip the import-time measurement")
    p.add_argument("--blas-coretype", default=None, metavar="NAME",
                   help="run with OPENBLAS_CORETYPE=NAME, e.g. Haswell or SkylakeX (default: OpenBLAS's own "
                        "choice; OPENBLAS_CORETYPE in the environment always wins)")
    p.add_argument("--sweep", action="store_true",
                   help="instead of the suite: the convolution shape sweep (one Conv2d per shape, kernel 1/3/5/7, "
                        "stride 1/2, training and inference; benchmarks/sweep.py)")
    p.add_argument("--full", action="store_true", help="with --sweep: every shape of the grid, not a sample")
    p.set_defaults(func=cmd_bench)
    return p


def _suite_argv(args):
    argv = []
    for flag in ("quick", "write", "no_memory", "no_import"):
        if getattr(args, flag, False):
            argv.append("--" + flag.replace("_", "-"))
    for flag in ("only", "threads", "json", "section", "device"):
        value = getattr(args, flag, None)
        if value is not None:
            argv += ["--" + flag, str(value)]
    if getattr(args, "mode", "both") != "both":
        argv += ["--mode", args.mode]
    if getattr(args, "clock", "wall") != "wall":
        argv += ["--clock", args.clock]
    return argv


def cmd_bench(args):
    """Run the suite in a child interpreter with the chosen BLAS settings; returns its exit status."""
    try:
        suite = find_suite()
        if importlib.util.find_spec("torch") is None:
            raise BenchError("somanet bench compares against PyTorch, which is not installed: "
                             "pip install torch --index-url https://download.pytorch.org/whl/cpu")
        if args.threads is not None and args.threads < 1:
            raise BenchError(f"--threads must be a positive integer, got {args.threads}")
        env, note = blas_environment(os.environ, args.blas_coretype, args.threads)
        if getattr(args, "device", None) is not None:
            if getattr(args, "sweep", False):
                raise BenchError("--device is not supported with --sweep (the convolution sweep times the CPU "
                                 "kernels)")
            _check_device(args.device)
    except BenchError as exc:
        print(f"somanet: error: {exc}", file=sys.stderr)
        return 2
    print(f"somanet bench: {note}", flush=True)
    if getattr(args, "sweep", False):
        return subprocess.call([sys.executable, os.path.join(os.path.dirname(suite), "sweep.py")]
                               + _sweep_argv(args), env=env)
    return subprocess.call([sys.executable, suite] + _suite_argv(args), env=env)


def _check_device(spec):
    """Refuse ``--device`` here, before the suite starts, when the device cannot be used."""
    from .. import devices

    try:
        devices.require(spec, "somanet bench --device")
    except (RuntimeError, ValueError) as exc:
        raise BenchError(str(exc)) from None


def _sweep_argv(args):
    """The options of ``somanet bench --sweep`` that ``benchmarks/sweep.py`` takes."""
    argv = [flag for flag, on in (("--quick", args.quick), ("--full", getattr(args, "full", False)),
                                  ("--write", args.write)) if on]
    for flag in ("threads", "json"):
        value = getattr(args, flag, None)
        if value is not None:
            argv += ["--" + flag, str(value)]
    if getattr(args, "clock", "wall") != "wall":
        argv += ["--clock", args.clock]
    return argv
