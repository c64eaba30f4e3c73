"""What somanet's kernels know about the BLAS library under NumPy (OpenBLAS in NumPy's wheels).

- ``SMALL_GEMM``: OpenBLAS multiplies a product of at most this many multiply-adds with kernels that
  read the operands in place instead of packing them first, so kernels cut bigger products into blocks
  under it (convolution GEMMs, recurrent steps). ``SMALL_GEMM_OUT`` is the further limit on outputs when
  the right operand is transposed.
- ``blas_environment``: the environment for a child process that will load OpenBLAS with a chosen kernel
  family (``somanet bench --blas-coretype``).
"""
__all__ = ["SMALL_GEMM", "SMALL_GEMM_OUT", "AVX512_FLAGS", "AVX512_CORETYPES", "cpu_flags",
           "avx512_supported", "blas_environment"]

#: Most multiply-adds of a GEMM that OpenBLAS runs on its unpacked small-matrix kernels.
SMALL_GEMM = 10 ** 6
#: Most outputs of such a GEMM when its right operand is transposed (a weight gradient's layout).
SMALL_GEMM_OUT = 1200

#: The AVX-512 subsets OpenBLAS's SkylakeX kernels use.
AVX512_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512dq")
#: OpenBLAS core types whose kernels need those subsets.
AVX512_CORETYPES = ("skylakex", "cooperlake", "sapphirerapids")


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU feature flags the operating system reports (a set of names; empty where the file is
    missing). Read from the file, so that it can run before anything loads OpenBLAS."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def avx512_supported(flags=None):
    """Whether the CPU (and the operating system, which hides the flags when it does not save AVX-512
    state) has the AVX-512 subsets of OpenBLAS's SkylakeX kernels."""
    flags = cpu_flags() if flags is None else flags
    return all(f in flags for f in AVX512_FLAGS)


def blas_environment(env, coretype=None, threads=None, flags=None):
    """The environment for a child process that will load OpenBLAS: ``(new_env, note)``.

    ``coretype``: None or ``"default"`` leaves the kernel choice to OpenBLAS; an OpenBLAS core name sets
    ``OPENBLAS_CORETYPE`` (an AVX-512 one only where the CPU has AVX-512, else ``ValueError``). A value
    already in ``env`` is never overridden. ``threads`` sets the BLAS and OpenMP thread counts (again,
    unless the user set them)."""
    env = dict(env)
    if "OPENBLAS_CORETYPE" in env:
        note = f"OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']} (from the environment)"
    elif coretype in (None, "", "default"):
        note = "OpenBLAS chooses its kernels"
    else:
        if coretype.lower() in AVX512_CORETYPES and not avx512_supported(flags):
            raise ValueError(f"--blas-coretype {coretype} needs AVX-512 ({', '.join(AVX512_FLAGS)}), which this "
                             f"CPU does not report; its kernels would stop with an illegal instruction")
        env["OPENBLAS_CORETYPE"] = coretype
        note = f"OPENBLAS_CORETYPE={coretype}"
    if threads:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, str(threads))
    return env, note
