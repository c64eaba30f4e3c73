"""The process-wide settings somanet applies, all in one place: ``configure_process``.

This module imports neither NumPy nor any other part of somanet, so that ``somanet/__init__.py`` can call
``configure_process`` before anything loads NumPy's BLAS.
"""
import os
import sys

__all__ = ["BLAS_THREAD_TIMEOUT", "configure_process", "malloc_tuned"]

#: log2 of the clock cycles OpenBLAS's idle threads spin before sleeping (OpenBLAS's default is 28, about
#: 0.1 s): somanet's own batch threads would otherwise share their cores with spinning BLAS threads.
BLAS_THREAD_TIMEOUT = "22"

_state = None


def configure_process():
    """Apply somanet's process-wide settings; called once, from ``somanet/__init__.py``, when somanet is
    first imported (later calls return the first call's result). Returns ``{"blas_thread_timeout": value
    or None, "blas_threads": value or None, "malloc_tuned": bool}``. It does exactly three things:

    - sets ``OPENBLAS_THREAD_TIMEOUT`` to ``BLAS_THREAD_TIMEOUT`` in the environment, unless the user set
      it or NumPy is already imported (OpenBLAS reads it once, when NumPy loads it): short spins keep idle
      BLAS threads off the cores that somanet's batch blocks run on;
    - with ``SOMANET_NUM_THREADS`` set, sets ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` to it (unless
      the user set them, or NumPy is already imported), so that BLAS uses the thread count somanet was
      given from its first product, as ``OMP_NUM_THREADS`` would (``somanet.set_num_threads`` changes it later);
    - asks glibc's malloc to keep freed large blocks for reuse instead of returning them to the operating
      system (``somanet._malloc.keep_freed_memory``; ``SOMANET_MALLOC_TUNING=0`` turns it off), so that
      the activations a training step frees and allocates again are not faulted in anew every step.
    """
    global _state
    if _state is None:
        timeout = threads = None
        if "numpy" not in sys.modules:
            timeout = os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)
            wanted = os.environ.get("SOMANET_NUM_THREADS", "").strip()
            if wanted.isdigit() and int(wanted) > 0:
                threads = os.environ.setdefault("OPENBLAS_NUM_THREADS", wanted)
                os.environ.setdefault("MKL_NUM_THREADS", wanted)
        from ._malloc import keep_freed_memory

        _state = {"blas_thread_timeout": timeout, "blas_threads": threads, "malloc_tuned": keep_freed_memory()}
    return dict(_state)


def malloc_tuned():
    """Whether ``configure_process`` applied the malloc settings (False before it ran)."""
    return bool(_state and _state["malloc_tuned"])
