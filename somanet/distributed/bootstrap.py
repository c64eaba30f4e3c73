"""One rank of a job: ``python -m somanet.distributed.bootstrap script.py [args]`` (or ``-m module``).

``somanet run`` starts every rank through this module. It joins MPI before the program runs, then
runs the program as ``__main__``. If the program raises on this rank, or exits with a non-zero status,
the rank's traceback (or status) is printed with its rank number and the whole job is ended at once
(``MPI_Abort``), so the other ranks never wait for it in a collective.
"""
import os
import runpy
import sys

from . import _mpi
from .process_group import _abort, install_failure_handler, report_failure

_USAGE = "usage: python -m somanet.distributed.bootstrap (script.py | -m module) [args ...]"


def _runpy_files():
    return {os.path.abspath(__file__), __file__, runpy.__file__, os.path.abspath(runpy.__file__), "<frozen runpy>"}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE, file=sys.stderr)
        return 2
    module = None
    if argv[0] == "-m":
        if len(argv) < 2:
            print(_USAGE, file=sys.stderr)
            return 2
        module, args = argv[1], argv[2:]
        sys.argv = [module] + args
    else:
        script, args = argv[0], argv[1:]
        if not os.path.isfile(script):
            print(f"somanet run: {script}: no such file", file=sys.stderr)
            return 2
        sys.argv = [script] + args
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    _mpi.mpi()  # join the job now: a failure before the program's first collective still ends it
    install_failure_handler()
    try:
        if module is not None:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code is None or code == 0:
            return 0
        MPI = _mpi.loaded()
        rank = MPI.COMM_WORLD.Get_rank() if MPI is not None and not MPI.Is_finalized() else "?"
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        sys.stdout.flush()
        print(f"somanet.distributed: rank {rank} exited with status {code}, ending the job", file=sys.stderr)
        sys.stderr.flush()
        _abort(code)
        return code
    except BaseException:
        report_failure(*sys.exc_info(), skip_files=_runpy_files())
        _abort(1)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
