"""Lazy Numba: imported, and each group of loops compiled, on the first call that needs them.

``import numba`` takes about a third of a second and a first compile about a second, so neither may
happen at ``import somanet``. Loops are compiled with ``cache=True``: later processes load them from
Numba's on-disk cache. Where the package folder is read-only Numba keeps that cache in a user-wide
folder instead (``NUMBA_CACHE_DIR`` overrides both), so a read-only install still works.

``SOMANET_NUMBA=0`` in the environment turns the compiled kernels off (the choosers then pick NumPy
kernels), and so does a Numba that failed to import here once.
"""
import os
import threading

from .. import backend

__all__ = ["compiled", "enabled", "load_numba"]

_built = {}
_failed = []
_lock = threading.Lock()


def enabled():
    """Whether compiled kernels may be chosen: not switched off by ``SOMANET_NUMBA=0``, and Numba has not
    failed here before."""
    return os.environ.get("SOMANET_NUMBA", "1") != "0" and not _failed


def load_numba():
    """The ``numba`` module, or ``ImportError`` with the install hint."""
    try:
        import numba
    except ImportError as exc:
        raise ImportError("somanet's compiled kernels need Numba: `pip install somanet[fast]`") from exc
    # Numba's first compile loads SciPy's BLAS; load it now so that somanet's thread settings cover it.
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        pass
    backend.refresh_blas_libraries()
    return numba


def compiled(group, build):
    """``build(numba)``'s result (the compiled loops of ``group``), built once per process."""
    result = _built.get(group)
    if result is None:
        with _lock:
            result = _built.get(group)
            if result is None:
                try:
                    result = _built[group] = build(load_numba())
                except ImportError:
                    _failed.append(group)
                    raise
    return result
