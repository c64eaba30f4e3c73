"""Process groups and collectives: ``torch.distributed``'s names, carried by MPI (mpi4py).

Every rank of a job is one process started by MPI's launcher (``somanet run -n N script.py`` or
``mpiexec -n N python script.py``); ``init_process_group()`` reads the rank and the world size from MPI.
Collectives work in place on a tensor's array, as PyTorch's do, and wait politely (see
``somanet.distributed._mpi.wait``) with the group's timeout.
"""
import datetime
import os
import sys
import time
import traceback

import numpy as np

from ..autograd.tensor import Tensor
from . import _mpi
from ._mpi import DistTimeoutError

__all__ = [
    "ReduceOp", "ProcessGroup", "Work", "GroupMember", "group", "Backend", "DistTimeoutError",
    "is_available", "is_mpi_available", "is_initialized", "init_process_group", "destroy_process_group",
    "get_rank", "get_world_size", "get_backend", "new_group", "get_process_group_ranks", "get_global_rank",
    "get_group_rank", "get_node_local_rank", "barrier", "all_reduce", "broadcast", "all_gather",
    "all_gather_into_tensor", "reduce", "reduce_scatter", "reduce_scatter_tensor", "gather", "scatter",
    "all_to_all", "all_to_all_single", "send", "recv", "isend", "irecv", "all_gather_object",
    "broadcast_object_list", "gather_object", "scatter_object_list", "default_pg_timeout",
]

#: The timeout of a process group when ``init_process_group`` is given none (PyTorch's default).
default_pg_timeout = datetime.timedelta(minutes=30)


class ReduceOp:
    """The reductions of ``all_reduce``, ``reduce`` and ``reduce_scatter`` (``ReduceOp.SUM`` and so on).

    ``AVG`` is the sum divided by the group size, for floating tensors.
    """

    class RedOpType(str):
        __slots__ = ()

        def __repr__(self):
            return f"<RedOpType.{self}>"

    SUM = RedOpType("SUM")
    PRODUCT = RedOpType("PRODUCT")
    MIN = RedOpType("MIN")
    MAX = RedOpType("MAX")
    BAND = RedOpType("BAND")
    BOR = RedOpType("BOR")
    BXOR = RedOpType("BXOR")
    AVG = RedOpType("AVG")


_MPI_OPS = {"SUM": "SUM", "PRODUCT": "PROD", "MIN": "MIN", "MAX": "MAX", "BAND": "BAND", "BOR": "BOR",
            "BXOR": "BXOR", "AVG": "SUM"}


class Backend(str):
    """Backend names. Every accepted name runs on MPI: ``"mpi"``, and ``"gloo"`` (PyTorch's CPU backend),
    so that scripts written for PyTorch's CPU backend run unchanged."""

    MPI = "mpi"
    GLOO = "gloo"

    def __new__(cls, name):
        value = str(name).lower()
        if value not in (cls.MPI, cls.GLOO):
            raise ValueError(f"init_process_group(): backend {name!r} is not available; somanet runs its "
                             f"collectives on MPI: use backend='mpi' (or 'gloo', which means the same here)")
        return str.__new__(cls, value)


class ProcessGroup:
    """A set of ranks that run collectives together (an MPI communicator of their own).

    ``rank()`` and ``size()`` are this process's rank in the group and the group's size; ``ranks`` are
    the members' global ranks, in group order.
    """

    def __init__(self, comm, ranks, timeout, backend="mpi"):
        self.comm = comm
        self.ranks = list(ranks)
        self._rank = comm.Get_rank()
        self._size = comm.Get_size()
        self.timeout = timeout
        self.backend = backend

    def rank(self):
        return self._rank

    def size(self):
        return self._size

    def __repr__(self):
        return f"ProcessGroup(rank={self._rank}, size={self._size}, ranks={self.ranks})"


class GroupMember:
    """``GroupMember.WORLD`` is the default group once initialised; ``NON_GROUP_MEMBER`` is what
    ``new_group`` gives the ranks it leaves out."""

    WORLD = None
    NON_GROUP_MEMBER = object()


class group:  # noqa: N801 - PyTorch's spelling: ``dist.group.WORLD``
    WORLD = None


class _State:
    default = None
    groups = []


_state = _State()


# =========================================================================== set-up
def is_available():
    """Whether ``somanet.distributed`` can run: mpi4py (and an MPI library) is installed."""
    return _mpi.available()


def is_mpi_available():
    return _mpi.available()


def is_initialized():
    """Whether ``init_process_group`` has set up the default group (and it was not destroyed)."""
    return _state.default is not None


def _timeout_seconds(timeout):
    if timeout is None:
        timeout = default_pg_timeout
    if isinstance(timeout, datetime.timedelta):
        return timeout.total_seconds()
    if isinstance(timeout, (int, float)) and timeout > 0:
        return float(timeout)
    raise TypeError(f"init_process_group(): timeout must be a datetime.timedelta or seconds, got {timeout!r}")


def _check_launch(size, rank, world_size, rank_arg):
    env_world = _mpi.env_int("WORLD_SIZE")
    env_rank = _mpi.env_int("RANK")
    for name, asked in (("world_size=", world_size if world_size not in (None, -1) else None),
                        ("WORLD_SIZE", env_world)):
        if asked is not None and asked != size:
            if size == 1:
                raise RuntimeError(
                    f"init_process_group(): {name}{'' if name.endswith('=') else '='}{asked} asks for {asked} "
                    f"processes but this one was not started as one of an MPI job's ranks. somanet.distributed "
                    f"connects ranks through MPI, not through MASTER_ADDR/MASTER_PORT: start the job with "
                    f"'somanet run -n {asked} script.py' (or 'mpiexec -n {asked} python script.py')")
            raise RuntimeError(f"init_process_group(): {name}{'' if name.endswith('=') else '='}{asked} does not "
                               f"match the MPI job, which has {size} processes")
    for name, asked in (("rank=", rank_arg if rank_arg not in (None, -1) else None), ("RANK", env_rank)):
        if asked is not None and asked != rank and (name == "rank=" or env_world == size):
            raise RuntimeError(f"init_process_group(): {name}{'' if name.endswith('=') else '='}{asked} does not "
                               f"match this process's MPI rank {rank}")


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1, store=None,
                       group_name="", pg_options=None, device_id=None):
    """Join the job's default process group: every rank started by MPI's launcher calls this once.

    The rank and the world size come from MPI. Environment variables as PyTorch's launcher sets them
    are accepted: ``WORLD_SIZE`` and ``RANK``, when set, must agree with MPI's numbers (a clear error
    says how to start the job otherwise), and ``MASTER_ADDR``/``MASTER_PORT`` are not needed (MPI
    wires the processes up). Afterwards ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``
    are set in ``os.environ`` for code that reads them.

    Args:
        backend: ``"mpi"`` (default) or ``"gloo"``, which runs on MPI too.
        init_method: ``None`` or ``"env://"``.
        timeout: how long a collective may wait for the other ranks (a ``timedelta`` or seconds;
            30 minutes by default) before it raises ``DistTimeoutError``.
        world_size, rank: optional; when given they must match MPI's.

    From this call on, an uncaught exception on any rank prints that rank's traceback and ends the
    whole job (``MPI_Abort``) instead of leaving the other ranks waiting.
    """
    if _state.default is not None:
        raise RuntimeError("init_process_group(): trying to initialize the default process group twice")
    backend = Backend(backend or "mpi")
    if init_method is not None and not str(init_method).startswith("env://"):
        raise ValueError(f"init_process_group(): init_method {init_method!r} is not supported; the ranks find "
                         f"each other through MPI (leave init_method=None, or 'env://')")
    if store is not None:
        raise ValueError("init_process_group(): store= is not used; the ranks find each other through MPI")
    seconds = _timeout_seconds(timeout)
    MPI = _mpi.mpi()
    world = MPI.COMM_WORLD
    size, me = world.Get_size(), world.Get_rank()
    _check_launch(size, me, world_size, rank)
    local = world.Split_type(MPI.COMM_TYPE_SHARED, key=me)
    local_rank, local_size = local.Get_rank(), local.Get_size()
    local.Free()
    os.environ.update(RANK=str(me), WORLD_SIZE=str(size), LOCAL_RANK=str(local_rank),
                      LOCAL_WORLD_SIZE=str(local_size))
    # A communicator of somanet's own: the program's direct use of COMM_WORLD cannot mix with it.
    pg = ProcessGroup(world.Dup(), range(size), seconds, str(backend))
    _state.default = pg
    _state.groups = [pg]
    GroupMember.WORLD = group.WORLD = pg
    install_failure_handler()


def destroy_process_group(group=None):
    """Free ``group`` (by default every group, after which ``init_process_group`` may be called again)."""
    if group is None or group is _state.default:
        for pg in _state.groups:
            _free(pg)
        _state.default = None
        _state.groups = []
        GroupMember.WORLD = globals()["group"].WORLD = None
        return
    if group is GroupMember.NON_GROUP_MEMBER:
        return
    _free(group)
    if group in _state.groups:
        _state.groups.remove(group)


def _free(pg):
    MPI = _mpi.loaded()
    if pg.comm is not None and MPI is not None and not MPI.Is_finalized():
        pg.comm.Free()
    pg.comm = None


def _group(g, what="this call"):
    pg = _state.default if g is None else g
    if pg is None:
        raise RuntimeError(f"{what}: the default process group has not been initialized; call "
                           f"somanet.distributed.init_process_group() first")
    if pg is GroupMember.NON_GROUP_MEMBER:
        raise RuntimeError(f"{what}: this rank is not a member of the group")
    if pg.comm is None:
        raise RuntimeError(f"{what}: the process group was destroyed")
    return pg


def get_rank(group=None):
    """This process's rank in ``group`` (the default group by default); -1 outside it."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return -1
    return _group(group, "get_rank()").rank()


def get_world_size(group=None):
    """The number of ranks in ``group`` (the default group by default); -1 outside it."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return -1
    return _group(group, "get_world_size()").size()


def get_backend(group=None):
    return _group(group, "get_backend()").backend


def get_node_local_rank(fallback_rank=None):
    """This process's rank among the job's processes on the same machine (``LOCAL_RANK``)."""
    value = _mpi.env_int("LOCAL_RANK")
    if value is not None:
        return value
    if fallback_rank is not None:
        return int(fallback_rank)
    raise RuntimeError("get_node_local_rank(): LOCAL_RANK is not set; call init_process_group() first")


def get_process_group_ranks(group):
    return list(_group(group, "get_process_group_ranks()").ranks)


def get_global_rank(group, group_rank):
    return _group(group, "get_global_rank()").ranks[group_rank]


def get_group_rank(group, global_rank):
    return _group_rank(_group(group, "get_group_rank()"), global_rank, "get_group_rank()")


def _group_rank(pg, global_rank, what):
    try:
        return pg.ranks.index(int(global_rank))
    except ValueError:
        raise ValueError(f"{what}: global rank {global_rank} is not in the group (its ranks: {pg.ranks})") from None


def new_group(ranks=None, timeout=None, backend=None, pg_options=None, use_local_synchronization=False):
    """A group of the given global ``ranks`` (all ranks when None). Every rank of the default group must
    call it, in the same order as the other ``new_group`` calls; the ranks left out get
    ``GroupMember.NON_GROUP_MEMBER``."""
    world = _group(None, "new_group()")
    MPI = _mpi.mpi()
    ranks = list(range(world.size())) if ranks is None else sorted(int(r) for r in ranks)
    if len(set(ranks)) != len(ranks) or any(not 0 <= r < world.size() for r in ranks):
        raise ValueError(f"new_group(): ranks must be distinct global ranks in [0, {world.size()}), got {ranks}")
    me = world.rank()
    color = 0 if me in ranks else MPI.UNDEFINED
    comm = world.comm.Split(color, ranks.index(me) if me in ranks else 0)
    if comm == MPI.COMM_NULL:
        return GroupMember.NON_GROUP_MEMBER
    pg = ProcessGroup(comm, ranks, world.timeout if timeout is None else _timeout_seconds(timeout), world.backend)
    _state.groups.append(pg)
    return pg


# =========================================================================== failure handling
def _abort(code):
    MPI = _mpi.loaded()
    if MPI is None or not MPI.Is_initialized() or MPI.Is_finalized() or MPI.COMM_WORLD.Get_size() == 1:
        return
    # Abort kills every rank at once: give the launcher a moment to forward this rank's last lines first.
    time.sleep(0.25)
    MPI.COMM_WORLD.Abort(int(code) if isinstance(code, int) and 0 < code < 256 else 1)


def report_failure(exc_type, exc, tb, skip_files=()):
    """Print a failing rank's traceback to stderr, headed by the rank (so the job's log names it)."""
    MPI = _mpi.loaded()
    rank = size = "?"
    if MPI is not None and MPI.Is_initialized() and not MPI.Is_finalized():
        rank, size = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
    te = traceback.TracebackException(exc_type, exc, tb)
    if skip_files:
        te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename not in skip_files])
    text = "".join(te.format())
    sys.stdout.flush()
    sys.stderr.write(f"somanet.distributed: rank {rank} of {size} failed, ending the job:\n{text}")
    sys.stderr.flush()


def install_failure_handler():
    """Make an uncaught exception on this rank end the whole job, after printing its traceback.

    Without it, a rank that fails leaves the others waiting in their next collective forever.
    """
    if getattr(sys.excepthook, "somanet_aborts", False):
        return
    previous = sys.excepthook

    def excepthook(exc_type, exc, tb):
        MPI = _mpi.loaded()
        if MPI is None or not MPI.Is_initialized() or MPI.Is_finalized() or MPI.COMM_WORLD.Get_size() == 1:
            return previous(exc_type, exc, tb)
        try:
            report_failure(exc_type, exc, tb)
        finally:
            _abort(1)

    excepthook.somanet_aborts = True
    sys.excepthook = excepthook


# =========================================================================== buffers
def _array(tensor, what):
    if isinstance(tensor, Tensor):
        return tensor.array
    raise TypeError(f"{what}: expected a somanet Tensor, got {type(tensor).__name__}")


def _bytes(arr):
    """A flat uint8 view of a C-contiguous array: moving data needs no MPI datatype for the dtype."""
    return arr.reshape(-1).view(np.uint8)


def _owned(arr):
    """``arr`` itself when MPI can write into it, else a C-contiguous copy (copied back afterwards)."""
    if arr.flags.c_contiguous and arr.flags.writeable:
        return arr
    return np.ascontiguousarray(arr)


def _into(pg, tensor, arr, start, name, async_op):
    """Start the nonblocking MPI call ``start(buf)`` that writes into ``arr`` (``tensor``'s array, or a
    contiguous copy MPI can write, copied back when it completes), then count ``tensor`` as modified."""
    buf = _owned(arr)
    req = start(buf)

    def finish():
        if buf is not arr:
            arr[...] = buf
        _bump(tensor)

    return _run([req], finish, pg, name, async_op)


def _reducible(arr, op):
    """An array MPI can reduce in ``op`` (``arr`` itself when possible), in a dtype it has a type for."""
    if op == ReduceOp.AVG and arr.dtype.kind not in "fc":
        raise TypeError(f"ReduceOp.AVG needs a floating tensor, got {arr.dtype}")
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f" and arr.dtype.itemsize < 4 or arr.dtype.kind == "V":
        return arr.astype(np.float32)
    return _owned(arr)


def _mpi_op(op):
    if not isinstance(op, str) or op not in _MPI_OPS:
        raise ValueError(f"unknown reduction {op!r}; use a somanet.distributed.ReduceOp member")
    return getattr(_mpi.mpi(), _MPI_OPS[op])


def _bump(tensor):
    tensor._version[0] += 1


class Work:
    """A started collective or point-to-point call: ``wait()`` finishes it (``async_op=True`` returns one)."""

    def __init__(self, requests, finish, timeout, what, statuses=None):
        self._requests = requests
        self._finish = finish
        self._timeout = timeout
        self._what = what
        self._statuses = statuses
        self._done = False
        self.result_value = None

    def wait(self, timeout=None):
        if not self._done:
            limit = self._timeout if timeout is None else _timeout_seconds(timeout)
            _mpi.wait(self._requests, limit, self._what, self._statuses)
            self._complete()
        return True

    def _complete(self):
        self._done = True
        if self._finish is not None:
            self.result_value = self._finish()

    def is_completed(self):
        if not self._done and _mpi.mpi().Request.Testall(self._requests, self._statuses):
            self._complete()
        return self._done

    def is_success(self):
        return self.is_completed()


def _run(requests, finish, pg, what, async_op):
    work = Work(requests, finish, pg.timeout, what)
    if async_op:
        return work
    work.wait()
    return work.result_value


# =========================================================================== collectives
def barrier(group=None, async_op=False, device_ids=None):
    """Wait until every rank of ``group`` has reached this call."""
    pg = _group(group, "barrier()")
    return _run([pg.comm.Ibarrier()], None, pg, "barrier()", async_op)


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``tensor`` over all ranks, in place: afterwards every rank holds the result."""
    pg = _group(group, "all_reduce()")
    arr = _array(tensor, "all_reduce()")
    mop = _mpi_op(op)
    buf = _reducible(arr, op)
    MPI = _mpi.mpi()
    req = pg.comm.Iallreduce(MPI.IN_PLACE, buf, mop)

    def finish():
        if op == ReduceOp.AVG:
            np.divide(buf, buf.dtype.type(pg.size()), out=buf)
        if buf is not arr:
            arr[...] = buf
        _bump(tensor)

    return _run([req], finish, pg, "all_reduce()", async_op)


def broadcast(tensor, src, group=None, async_op=False):
    """Copy ``tensor`` of rank ``src`` (a global rank) into ``tensor`` on every rank of ``group``."""
    pg = _group(group, "broadcast()")
    arr = _array(tensor, "broadcast()")
    root = _group_rank(pg, src, "broadcast()")
    return _into(pg, tensor, arr, lambda buf: pg.comm.Ibcast(_bytes(buf), root=root), "broadcast()", async_op)


def _same_shapes(tensors, like, what):
    for t in tensors:
        a = _array(t, what)
        if a.shape != like.shape or a.dtype != like.dtype:
            raise ValueError(f"{what}: every tensor must have the shape {tuple(like.shape)} and dtype {like.dtype} "
                             f"of the input, got {tuple(a.shape)} {a.dtype}")


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Fill ``tensor_list[i]`` with rank ``i``'s ``tensor`` (every rank gives the same shape)."""
    pg = _group(group, "all_gather()")
    arr = _array(tensor, "all_gather()")
    if len(tensor_list) != pg.size():
        raise ValueError(f"all_gather(): tensor_list must hold one tensor per rank ({pg.size()}), "
                         f"got {len(tensor_list)}")
    _same_shapes(tensor_list, arr, "all_gather()")
    send = np.ascontiguousarray(arr)
    recv = np.empty((pg.size(),) + arr.shape, arr.dtype)
    req = pg.comm.Iallgather(_bytes(send), _bytes(recv))

    def finish():
        for i, t in enumerate(tensor_list):
            t.array[...] = recv[i]
            _bump(t)

    return _run([req], finish, pg, "all_gather()", async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """Rank ``i``'s ``input_tensor`` goes to block ``i`` of ``output_tensor``, shaped ``(size * n, ...)``
    or ``(size, n, ...)``."""
    pg = _group(group, "all_gather_into_tensor()")
    src = np.ascontiguousarray(_array(input_tensor, "all_gather_into_tensor()"))
    out = _array(output_tensor, "all_gather_into_tensor()")
    if out.size != src.size * pg.size() or out.dtype != src.dtype:
        raise ValueError(f"all_gather_into_tensor(): the output must hold {pg.size()} inputs of shape "
                         f"{tuple(src.shape)} ({src.dtype}); got {tuple(out.shape)} {out.dtype}")
    return _into(pg, output_tensor, out, lambda buf: pg.comm.Iallgather(_bytes(src), _bytes(buf)),
                 "all_gather_into_tensor()", async_op)


def reduce(tensor, dst, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``tensor`` over all ranks into ``tensor`` of rank ``dst`` (others keep theirs)."""
    pg = _group(group, "reduce()")
    arr = _array(tensor, "reduce()")
    root = _group_rank(pg, dst, "reduce()")
    mop = _mpi_op(op)
    buf = _reducible(arr, op)
    MPI = _mpi.mpi()
    mine = pg.rank() == root
    req = pg.comm.Ireduce(MPI.IN_PLACE if mine else buf, buf if mine else None, mop, root=root)

    def finish():
        if mine:
            if op == ReduceOp.AVG:
                np.divide(buf, buf.dtype.type(pg.size()), out=buf)
            if buf is not arr:
                arr[...] = buf
            _bump(tensor)

    return _run([req], finish, pg, "reduce()", async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    """``output`` on rank ``i`` becomes the reduction over all ranks of their ``input_list[i]``."""
    pg = _group(group, "reduce_scatter()")
    out = _array(output, "reduce_scatter()")
    if len(input_list) != pg.size():
        raise ValueError(f"reduce_scatter(): input_list must hold one tensor per rank ({pg.size()}), "
                         f"got {len(input_list)}")
    _same_shapes(input_list, out, "reduce_scatter()")
    send = _reducible(np.stack([t.array for t in input_list]), op)
    return _reduce_scatter(pg, out, output, send, op, "reduce_scatter()", async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    """Block ``i`` of ``input`` (``size`` blocks along dim 0), reduced over all ranks, goes to ``output``
    on rank ``i``."""
    pg = _group(group, "reduce_scatter_tensor()")
    out = _array(output, "reduce_scatter_tensor()")
    src = _array(input, "reduce_scatter_tensor()")
    if src.size != out.size * pg.size() or src.dtype != out.dtype:
        raise ValueError(f"reduce_scatter_tensor(): the input must hold {pg.size()} blocks of the output's shape "
                         f"{tuple(out.shape)} ({out.dtype}); got {tuple(src.shape)} {src.dtype}")
    return _reduce_scatter(pg, out, output, _reducible(src, op).copy(), op, "reduce_scatter_tensor()", async_op)


def _reduce_scatter(pg, out, output, send, op, what, async_op):
    recv = np.empty(out.shape, send.dtype)
    req = pg.comm.Ireduce_scatter_block(send.reshape(-1), recv.reshape(-1), _mpi_op(op))

    def finish():
        if op == ReduceOp.AVG:
            np.divide(recv, recv.dtype.type(pg.size()), out=recv)
        out[...] = recv
        _bump(output)

    return _run([req], finish, pg, what, async_op)


def gather(tensor, gather_list=None, dst=0, group=None, async_op=False):
    """Rank ``dst`` receives every rank's ``tensor`` into ``gather_list`` (``None`` on the others)."""
    pg = _group(group, "gather()")
    arr = np.ascontiguousarray(_array(tensor, "gather()"))
    root = _group_rank(pg, dst, "gather()")
    mine = pg.rank() == root
    recv = None
    if mine:
        if gather_list is None or len(gather_list) != pg.size():
            raise ValueError(f"gather(): rank {dst} needs a gather_list of {pg.size()} tensors")
        _same_shapes(gather_list, arr, "gather()")
        recv = np.empty((pg.size(),) + arr.shape, arr.dtype)
    req = pg.comm.Igather(_bytes(arr), _bytes(recv) if mine else None, root=root)

    def finish():
        if mine:
            for i, t in enumerate(gather_list):
                t.array[...] = recv[i]
                _bump(t)

    return _run([req], finish, pg, "gather()", async_op)


def scatter(tensor, scatter_list=None, src=0, group=None, async_op=False):
    """Rank ``src`` sends ``scatter_list[i]`` to rank ``i``, which receives it into ``tensor``."""
    pg = _group(group, "scatter()")
    arr = _array(tensor, "scatter()")
    root = _group_rank(pg, src, "scatter()")
    mine = pg.rank() == root
    send = None
    if mine:
        if scatter_list is None or len(scatter_list) != pg.size():
            raise ValueError(f"scatter(): rank {src} needs a scatter_list of {pg.size()} tensors")
        _same_shapes(scatter_list, arr, "scatter()")
        send = np.ascontiguousarray(np.stack([t.array for t in scatter_list]))
    return _into(pg, tensor, arr, lambda buf: pg.comm.Iscatter(_bytes(send) if mine else None, _bytes(buf), root=root),
                 "scatter()", async_op)


def all_to_all(output_tensor_list, input_tensor_list, group=None, async_op=False):
    """Rank ``i`` sends ``input_tensor_list[j]`` to rank ``j``, which receives it in its
    ``output_tensor_list[i]`` (all the tensors of one shape)."""
    pg = _group(group, "all_to_all()")
    n = pg.size()
    if len(output_tensor_list) != n or len(input_tensor_list) != n:
        raise ValueError(f"all_to_all(): both lists must hold one tensor per rank ({n})")
    like = _array(input_tensor_list[0], "all_to_all()")
    _same_shapes(list(input_tensor_list) + list(output_tensor_list), like, "all_to_all()")
    send = np.ascontiguousarray(np.stack([t.array for t in input_tensor_list]))
    recv = np.empty_like(send)
    req = pg.comm.Ialltoall(_bytes(send), _bytes(recv))

    def finish():
        for i, t in enumerate(output_tensor_list):
            t.array[...] = recv[i]
            _bump(t)

    return _run([req], finish, pg, "all_to_all()", async_op)


def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None, group=None,
                      async_op=False):
    """Block ``j`` of ``input`` (dim 0 split evenly) goes to rank ``j``; block ``i`` of ``output`` comes
    from rank ``i``. Uneven splits are not supported."""
    if output_split_sizes is not None or input_split_sizes is not None:
        raise NotImplementedError("all_to_all_single(): uneven splits are not supported; split evenly")
    pg = _group(group, "all_to_all_single()")
    src = np.ascontiguousarray(_array(input, "all_to_all_single()"))
    out = _array(output, "all_to_all_single()")
    if src.shape != out.shape or src.dtype != out.dtype or (src.shape and src.shape[0] % pg.size()):
        raise ValueError(f"all_to_all_single(): input and output must share a shape whose first dimension "
                         f"divides by {pg.size()}; got {tuple(src.shape)} and {tuple(out.shape)}")
    return _into(pg, output, out, lambda buf: pg.comm.Ialltoall(_bytes(src), _bytes(buf)), "all_to_all_single()",
                 async_op)


# =========================================================================== point to point
def isend(tensor, dst, group=None, tag=0):
    """Start sending ``tensor`` to global rank ``dst``; returns a ``Work`` (keep the tensor unchanged
    until ``wait()``)."""
    pg = _group(group, "isend()")
    buf = np.ascontiguousarray(_array(tensor, "isend()"))
    req = pg.comm.Isend(_bytes(buf), dest=_group_rank(pg, dst, "isend()"), tag=tag)
    return Work([req], None, pg.timeout, f"send to rank {dst}")


def irecv(tensor, src=None, group=None, tag=0):
    """Start receiving into ``tensor`` from global rank ``src`` (any rank when None); returns a ``Work``
    whose ``wait()`` completes it (its ``result_value`` is then the sender's global rank)."""
    pg = _group(group, "irecv()")
    MPI = _mpi.mpi()
    arr = _array(tensor, "irecv()")
    buf = _owned(arr)
    source = MPI.ANY_SOURCE if src is None else _group_rank(pg, src, "irecv()")
    req = pg.comm.Irecv(_bytes(buf), source=source, tag=tag)
    statuses = [MPI.Status()]

    def finish():
        if buf is not arr:
            arr[...] = buf
        _bump(tensor)
        return pg.ranks[statuses[0].Get_source()]

    return Work([req], finish, pg.timeout, f"receive from rank {'any' if src is None else src}", statuses)


def send(tensor, dst, group=None, tag=0):
    """Send ``tensor`` to global rank ``dst`` and wait until it is on its way."""
    isend(tensor, dst, group, tag).wait()


def recv(tensor, src=None, group=None, tag=0):
    """Receive into ``tensor`` from global rank ``src`` (any rank when None); returns the sender's rank."""
    work = irecv(tensor, src, group, tag)
    work.wait()
    return work.result_value


# =========================================================================== Python objects
# These move arbitrary Python objects with pickle, between the ranks of one job: every rank runs the
# same trusted program. Never feed them data from outside the job.
def all_gather_object(object_list, obj, group=None):
    """Fill ``object_list[i]`` with rank ``i``'s ``obj`` (pickled: for the job's own, trusted data)."""
    pg = _group(group, "all_gather_object()")
    if len(object_list) != pg.size():
        raise ValueError(f"all_gather_object(): object_list must have one slot per rank ({pg.size()}), "
                         f"got {len(object_list)}")
    _polite_barrier(pg, "all_gather_object()")
    object_list[:] = pg.comm.allgather(obj)


def broadcast_object_list(object_list, src=0, group=None, device=None):
    """Replace ``object_list``'s items on every rank with those of rank ``src`` (pickled)."""
    pg = _group(group, "broadcast_object_list()")
    root = _group_rank(pg, src, "broadcast_object_list()")
    _polite_barrier(pg, "broadcast_object_list()")
    items = pg.comm.bcast(list(object_list) if pg.rank() == root else None, root=root)
    if len(items) != len(object_list):
        raise ValueError(f"broadcast_object_list(): rank {src} sent {len(items)} objects but this rank's list has "
                         f"{len(object_list)} slots")
    object_list[:] = items


def gather_object(obj, object_gather_list=None, dst=0, group=None):
    """Rank ``dst`` receives every rank's ``obj`` into ``object_gather_list`` (pickled)."""
    pg = _group(group, "gather_object()")
    root = _group_rank(pg, dst, "gather_object()")
    if pg.rank() == root and (object_gather_list is None or len(object_gather_list) != pg.size()):
        raise ValueError(f"gather_object(): rank {dst} needs an object_gather_list of {pg.size()} slots")
    _polite_barrier(pg, "gather_object()")
    items = pg.comm.gather(obj, root=root)
    if pg.rank() == root:
        object_gather_list[:] = items


def scatter_object_list(scatter_object_output_list, scatter_object_input_list=None, src=0, group=None):
    """Rank ``src`` sends ``scatter_object_input_list[i]`` to rank ``i``, which finds it in
    ``scatter_object_output_list[0]`` (pickled)."""
    pg = _group(group, "scatter_object_list()")
    root = _group_rank(pg, src, "scatter_object_list()")
    if pg.rank() == root and (scatter_object_input_list is None or len(scatter_object_input_list) != pg.size()):
        raise ValueError(f"scatter_object_list(): rank {src} needs {pg.size()} objects to scatter")
    _polite_barrier(pg, "scatter_object_list()")
    scatter_object_output_list[0] = pg.comm.scatter(
        list(scatter_object_input_list) if pg.rank() == root else None, root=root)


def _polite_barrier(pg, what):
    # The pickling calls block inside MPI; meeting first keeps that wait short and under the timeout.
    _mpi.wait([pg.comm.Ibarrier()], pg.timeout, what)
