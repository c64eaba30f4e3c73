"""The one place that imports mpi4py, on first use only: ``import somanet`` never loads MPI."""
import importlib.util
import os
import sys
import time

INSTALL_HINT = ("somanet.distributed runs on MPI through mpi4py, which is not installed: "
                "pip install 'somanet[distributed]' (mpi4py with the MPICH wheel), or pip install mpi4py "
                "mpich")

_MPI = None


def available():
    """Whether mpi4py can be imported (without importing it)."""
    return _MPI is not None or importlib.util.find_spec("mpi4py") is not None


def mpi():
    """The ``mpi4py.MPI`` module (initialising MPI on the first call), or an ImportError naming the fix."""
    global _MPI
    if _MPI is None:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise ImportError(f"{INSTALL_HINT} ({exc})") from None
        _MPI = MPI
    return _MPI


def loaded():
    """``mpi4py.MPI`` if it was already imported (by somanet or by the program), else None."""
    return _MPI if _MPI is not None else sys.modules.get("mpi4py.MPI")


# --------------------------------------------------------------------------- waiting on requests
# Blocking MPI calls spin on a core until the message comes. On a machine with as many ranks as cores
# (or fewer cores than ranks) a spinning rank takes the core from the rank it waits for, so requests
# are waited on here: a short spin first (short waits keep their latency), then short sleeps that
# hand the core back, with a deadline so that a rank whose partner left never waits forever.
_SPIN_S = 2e-4
_MAX_SLEEP_S = 2e-4


class DistTimeoutError(RuntimeError):
    """A collective or point-to-point call waited longer than the process group's timeout."""


def wait(requests, timeout, what, statuses=None):
    """Wait until every request in ``requests`` (a list of MPI requests) completes; ``statuses``, a list
    of ``MPI.Status`` (one per request), receives their statuses.

    Raises ``DistTimeoutError`` naming ``what`` after ``timeout`` seconds (``None``: no limit).
    """
    MPI = _MPI
    if MPI.Request.Testall(requests, statuses):
        return
    start = time.perf_counter()
    deadline = None if timeout is None else start + timeout
    sleep = 1e-5
    while True:
        if MPI.Request.Testall(requests, statuses):
            return
        now = time.perf_counter()
        if now - start > _SPIN_S:
            time.sleep(sleep)
            sleep = min(sleep * 2, _MAX_SLEEP_S)
            if deadline is not None and now > deadline:
                raise DistTimeoutError(
                    f"somanet.distributed: {what} timed out after {timeout:g} s on rank "
                    f"{MPI.COMM_WORLD.Get_rank()}: another rank left the job or is stuck before the same call "
                    f"(every rank must make the same collective calls in the same order)")


def env_int(*names):
    """The first of the environment variables ``names`` that holds an integer, else None."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.lstrip("-").isdigit():
            return int(value)
    return None
