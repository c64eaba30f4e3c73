"""``somanet.backends.cuda``: CUDA's matmul switches, kept as plain flags; there is no GPU backend here."""


class _MatmulFlags:
    allow_tf32 = False
    allow_fp16_reduced_precision_reduction = True
    allow_bf16_reduced_precision_reduction = True


matmul = _MatmulFlags()


def is_built():
    return False
