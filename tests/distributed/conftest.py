"""Launching the rank scripts of ``tests/distributed/scripts`` as real two-process MPI jobs.

Every test starts its job through the ``somanet run`` launcher (``mpiexec`` underneath) in a
subprocess with a timeout, and reads back what the ranks wrote. Without mpi4py or an MPI launcher
the whole folder is skipped.
"""
import importlib.util
import os
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")


def _mpi_ready():
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'somanet[distributed]')"
    from somanet.cli.launch import find_mpiexec
    if find_mpiexec() is None:
        return "no MPI launcher (mpiexec) was found"
    return None


_MISSING = _mpi_ready()


def pytest_collection_modifyitems(config, items):
    if _MISSING is None:
        return
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.skip(reason=_MISSING))


class Job:
    def __init__(self, proc, seconds):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.seconds = seconds

    def check(self):
        assert self.returncode == 0, f"the job failed ({self.returncode}):\n{self.stdout}\n{self.stderr}"
        return self


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SOMANET_LAUNCHED"):
        e.pop(name, None)
    return e


def run_cli(args, cwd=None, timeout=120):
    """``somanet ARGS`` in a subprocess; returns a ``Job``."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "somanet.cli", *args], capture_output=True, text=True, env=env(),
                          cwd=cwd, timeout=timeout)
    return Job(proc, time.perf_counter() - start)


def launch(script, *args, n=2, cwd=None, timeout=120):
    """``somanet run -n N --threads 1 scripts/SCRIPT ARGS``: a job of ``n`` ranks, one thread each."""
    return run_cli(["run", "-n", str(n), "--threads", "1", os.path.join(SCRIPTS, script), *map(str, args)],
                   cwd=cwd, timeout=timeout)


def run_python(script, *args, cwd=None, timeout=120):
    """``python scripts/SCRIPT ARGS`` in one plain process (no MPI job)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.join(SCRIPTS, script), *map(str, args)], capture_output=True,
                          text=True, env=env(), cwd=cwd, timeout=timeout)
    return Job(proc, time.perf_counter() - start)


def rank_script(name):
    """The rank script ``scripts/NAME.py`` imported as a module (for the single-process reference it defines)."""
    spec = importlib.util.spec_from_file_location(f"rank_script_{name}", os.path.join(SCRIPTS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launch_results(script, out, prefix, n=2):
    """Run ``script`` as a job of ``n`` ranks writing into ``out``; each rank's ``PREFIX_rank{r}.npz`` as a dict."""
    launch(script, out, n=n).check()
    return [dict(np.load(os.path.join(out, f"{prefix}_rank{r}.npz"))) for r in range(n)]


class _Jobs:
    env = staticmethod(env)
    launch = staticmethod(launch)
    run_cli = staticmethod(run_cli)
    run_python = staticmethod(run_python)
    rank_script = staticmethod(rank_script)
    launch_results = staticmethod(launch_results)
    scripts = SCRIPTS


@pytest.fixture(scope="session")
def jobs():
    """``jobs.launch(script, *args)`` (a two-rank job), ``jobs.run_cli(args)``, ``jobs.run_python(script)``."""
    return _Jobs
