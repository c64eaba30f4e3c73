"""``somanet.distributed``: data-parallel and pipeline training over several processes, with PyTorch's
``torch.distributed`` names, carried by MPI.

>>> import somanet.distributed as dist                              # doctest: +SKIP
>>> dist.init_process_group()          # rank and world size come from MPI's launcher
>>> t = somanet.ones(3) * dist.get_rank()
>>> dist.all_reduce(t)                 # in place: the sum over ranks, on every rank

Start a job with ``somanet run -n 4 train.py`` (or ``mpiexec -n 4 python train.py``). Models are
wrapped in ``somanet.nn.parallel.DistributedDataParallel``; ``somanet.distributed.pipeline`` splits a
``Sequential`` over ranks. mpi4py is imported on the first call that needs it, never by ``import
somanet``: install it with ``pip install 'somanet[distributed]'``. See docs/distributed.md.
"""
from .process_group import *  # noqa: F401,F403
from .process_group import __all__ as _names

__all__ = list(_names)
