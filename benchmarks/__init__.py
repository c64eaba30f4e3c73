"""somanet's benchmarks against PyTorch (see harness.py for the method).

somanet is imported here, before any script imports NumPy: it sets OpenBLAS's thread timeout, which
OpenBLAS reads once when NumPy loads it (see ``somanet.backend.BLAS_THREAD_TIMEOUT``). Users who import
somanet first get the same setting.
"""
import somanet  # noqa: F401
