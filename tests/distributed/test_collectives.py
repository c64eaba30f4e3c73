"""``somanet.distributed``'s collectives on a real two-rank MPI job, and how a process joins a job."""
import subprocess
import sys


def test_every_collective_on_two_ranks(jobs):
    job = jobs.launch("collectives.py").check()
    assert "collectives ok on rank 0" in job.stdout and "collectives ok on rank 1" in job.stdout


JOIN_CHECKS = r"""
import os, sys
import somanet, somanet.nn, somanet.distributed as dist
from somanet.nn.parallel import DistributedDataParallel
assert "mpi4py" not in sys.modules, "import somanet must not load MPI"
os.environ["WORLD_SIZE"] = "2"
try:
    dist.init_process_group()
except RuntimeError as exc:
    print("REFUSED:", exc)
del os.environ["WORLD_SIZE"]
try:
    dist.init_process_group(backend="nccl")
except ValueError as exc:
    print("BACKEND:", exc)
dist.init_process_group(backend="gloo")
print("WORLD", dist.get_rank(), dist.get_world_size(), os.environ["RANK"], os.environ["LOCAL_RANK"])
"""


def test_a_lone_process_is_a_world_of_one_and_env_mismatch_is_explained(jobs):
    proc = subprocess.run([sys.executable, "-c", JOIN_CHECKS], capture_output=True, text=True, env=jobs.env(),
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "REFUSED:" in out and "somanet run -n 2" in out and "MASTER_ADDR" in out
    assert "BACKEND:" in out and "backend='mpi'" in out
    assert "WORLD 0 1 0 0" in out


def test_missing_mpi4py_gives_the_install_hint(jobs):
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "import somanet.distributed as dist\n"
            "assert not dist.is_available() or True\n"
            "try:\n    dist.init_process_group()\nexcept ImportError as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=jobs.env(), timeout=60)
    assert "pip install 'somanet[distributed]'" in proc.stdout, proc.stdout + proc.stderr
