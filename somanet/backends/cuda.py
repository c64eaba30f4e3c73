"""``somanet.backends.cuda``: CUDA's matmul switches, kept as plain flags (CuPy's defaults are used), and
whether the CUDA backend (CuPy) is installed."""


class _MatmulFlags:
    allow_tf32 = False
    allow_fp16_reduced_precision_reduction = True
    allow_bf16_reduced_precision_reduction = True


matmul = _MatmulFlags()


def is_built():
    """Whether the CUDA backend is installed (CuPy can be imported); a GPU may still be missing."""
    import importlib.util

    return importlib.util.find_spec("cupy") is not None
