"""Starting jobs of several processes: ``somanet run -n N script.py [args]`` and ``somanet train --nproc N``.

``somanet run`` wraps MPI's launcher: it runs ``mpiexec -n N python -m somanet.distributed.bootstrap
script.py args``, gives every rank its share of the CPU threads (``SOMANET_NUM_THREADS`` and
``OMP_NUM_THREADS``, unless set), and returns the job's exit status. A rank that raises ends the job
within a second or so, with that rank's traceback (see ``somanet.distributed.bootstrap``).

``somanet train --nproc N`` starts the same command under ``somanet run``: every rank builds the recipe,
wraps the model in ``DistributedDataParallel`` and trains on its share of every epoch; rank 0 alone
prints and writes the run directory.
"""
import argparse
import importlib.util
import os
import shutil
import subprocess
import sys

__all__ = ["add_parser", "cmd_run", "find_mpiexec", "run_job", "in_launched_job", "start_worker", "wrap_model",
           "is_writer", "steps_per_epoch", "relaunch_train"]

#: Set in the environment of every rank that ``somanet run`` starts.
LAUNCHED_ENV = "SOMANET_LAUNCHED"
_HINT = "pip install 'somanet[distributed]' (mpi4py and the MPICH wheel, which brings mpiexec)"


def _error(message):
    from .main import CLIError
    return CLIError(message)


def find_mpiexec():
    """MPI's launcher: the one next to this Python (a virtual environment with the MPICH or Open MPI
    wheel), else ``mpiexec``/``mpirun`` on the PATH; None when there is none."""
    here = os.path.dirname(sys.executable)
    for name in ("mpiexec", "mpirun"):
        path = os.path.join(here, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    for name in ("mpiexec", "mpirun"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _launcher_options(mpiexec):
    """Options a launcher needs to run more ranks than cores: Open MPI refuses without being told."""
    folder = os.path.dirname(mpiexec)
    if os.path.exists(os.path.join(folder, "mpichversion")):
        return []
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return ["--oversubscribe"] if "Open MPI" in (out.stdout + out.stderr) else []


def _cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def job_environment(nproc, threads=None, base=None):
    """The environment of the ranks: the caller's, without the rank variables of an enclosing job, with
    ``threads`` (by default the CPUs shared out evenly, at least one) per rank unless already set."""
    env = dict(os.environ if base is None else base)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        env.pop(name, None)
    if threads is not None:
        env["SOMANET_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
    elif "SOMANET_NUM_THREADS" not in env and "OMP_NUM_THREADS" not in env:
        env["SOMANET_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(max(1, _cpus() // nproc))
    env[LAUNCHED_ENV] = "1"
    return env


def job_command(nproc, program, mpiexec=None):
    """The command that runs ``program`` (``[script, args...]`` or ``["-m", module, args...]``) on
    ``nproc`` ranks."""
    if importlib.util.find_spec("mpi4py") is None:
        raise _error(f"running on several processes needs mpi4py: {_HINT}")
    mpiexec = mpiexec or find_mpiexec()
    if mpiexec is None:
        raise _error(f"no MPI launcher (mpiexec) was found next to {sys.executable} or on the PATH: {_HINT}")
    return [mpiexec, *_launcher_options(mpiexec), "-n", str(nproc), sys.executable, "-m",
            "somanet.distributed.bootstrap", *program]


def run_job(nproc, program, threads=None, mpiexec=None):
    """Run ``program`` on ``nproc`` ranks and return the job's exit status."""
    cmd = job_command(nproc, program, mpiexec)
    proc = subprocess.Popen(cmd, env=job_environment(nproc, threads))
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        # The terminal's Ctrl-C reached every rank too; give them a moment to stop, then end them.
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            code = proc.wait()
        return 130
    if code < 0:
        code = 128 - code
    if code:
        print(f"somanet run: the job failed (exit status {code}); the failing rank's report is above",
              file=sys.stderr)
    return code


def in_launched_job():
    """Whether this process is a rank that ``somanet run`` started."""
    return os.environ.get(LAUNCHED_ENV) == "1"


# =========================================================================== somanet run
def cmd_run(args):
    program = list(args.program or [])
    if args.module:
        program = ["-m"] + list(args.module) + program
    elif not program:
        raise _error("run: name the script to run (somanet run -n N script.py [args]) or a module (-m module)")
    elif not os.path.isfile(program[0]):
        raise _error(f"run: {program[0]}: no such file")
    return run_job(args.nproc, program, threads=args.threads)


def add_parser(sub):
    from .main import _positive_int
    p = sub.add_parser("run", help="run a script on N processes (data-parallel jobs, through MPI)",
                       description="Run a Python script (or -m module) as a job of N processes with MPI: "
                                   "mpiexec -n N python script.py, with the CPU threads shared out and a "
                                   "failure on any rank ending the whole job.")
    p.add_argument("-n", "--nproc", type=_positive_int, default=1, metavar="N", help="number of processes")
    p.add_argument("--threads", type=_positive_int, metavar="T",
                   help="threads per process (default: the CPUs divided by N, unless SOMANET_NUM_THREADS "
                        "or OMP_NUM_THREADS is set)")
    p.add_argument("-m", dest="module", nargs=argparse.REMAINDER, metavar="MODULE [args]",
                   help="run a module as a script, as python -m does (the rest of the line is its arguments)")
    p.add_argument("program", nargs=argparse.REMAINDER, metavar="script.py [args ...]")
    p.set_defaults(func=cmd_run)


# =========================================================================== somanet train --nproc
def relaunch_train(args):
    """Start ``somanet train`` (the same arguments) on ``args.nproc`` ranks; checks what can be checked
    first, so that bad input is reported once."""
    from .main import _check_new_dir, _next_free_dir, _read_run_config, _resolve
    from ..rl import recipes as rl_recipes
    if rl_recipes.handles(args):
        raise _error("--nproc is for the supervised recipes; the reinforcement-learning recipes run in one process")
    argv = list(getattr(args, "argv", None) or sys.argv[1:])
    if args.resume:
        _read_run_config(args.resume)
    else:
        cfg = _resolve(args, args.recipe)
        if args.out is None:
            run_dir = _next_free_dir(os.path.join("runs", cfg["recipe"]))
            argv += ["--out", run_dir]
        else:
            _check_new_dir(args.out)
    return run_job(args.nproc, ["-m", "somanet.cli"] + argv)


def start_worker(nproc):
    """In a rank of ``somanet train --nproc``: join the job; ranks other than 0 print nothing."""
    import somanet.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group()
    if dist.get_world_size() != nproc:
        raise _error(f"--nproc {nproc} was given but the job has {dist.get_world_size()} processes")
    if dist.get_rank() != 0:
        sys.stdout = open(os.devnull, "w")


def _world():
    dist = sys.modules.get("somanet.distributed")
    if dist is None or not dist.is_initialized():
        return 1
    return dist.get_world_size()


def wrap_model(model):
    """``model`` in ``DistributedDataParallel`` inside a job of several ranks, else ``model`` itself."""
    if _world() == 1:
        return model
    from ..nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model)


def is_writer():
    """Whether this process writes files: always outside a job, rank 0 inside one."""
    dist = sys.modules.get("somanet.distributed")
    return dist is None or not dist.is_initialized() or dist.get_rank() == 0


def steps_per_epoch(num_samples, batch_size):
    """Optimizer steps per epoch when every rank trains on its share of ``num_samples``."""
    world = _world()
    share = -(-num_samples // world)
    return -(-share // batch_size)
