"""``DistributedDataParallel``: one model replica per rank, gradients averaged during backward.

How the reduction overlaps the backward pass: the parameters are grouped into buckets (in reverse
registration order, roughly the order backward produces their gradients; the first bucket is kept
small so that communication starts early). Every parameter has a gradient hook. At each forward the
wrapper walks the new graph back from its outputs and counts how many gradient contributions each
parameter will receive (a parameter used twice, as tied embeddings are, receives two). The hook adds
every contribution into the parameter's slot of its bucket's flat buffer; when a bucket's parameters
have all received their last contribution, a non-blocking all-reduce (``MPI_Iallreduce``) of that
buffer starts, while backward goes on with the earlier layers. Buckets start in index order on every
rank, so the ranks' collectives always match. The hook of the very last contribution waits for all
the reductions and writes the averaged gradients into ``.grad``.
"""
import contextlib
import time
import weakref
import zlib

import numpy as np

from ...autograd import grad_mode
from ...autograd.tensor import Tensor, _wrap
from ..modules.module import Module

__all__ = ["DistributedDataParallel"]

_MiB = 1024 * 1024
#: The first bucket's size limit: small, so that the first all-reduce starts as soon as possible.
FIRST_BUCKET_BYTES = 1 * _MiB


class _Bucket:
    __slots__ = ("index", "params", "buffer", "pending", "request")

    def __init__(self, index, params, buffer):
        self.index = index
        self.params = params
        self.buffer = buffer
        self.pending = 0
        self.request = None


def _tensors_in(out, found):
    if isinstance(out, Tensor):
        found.append(out)
    elif isinstance(out, (list, tuple)):
        for o in out:
            _tensors_in(o, found)
    elif isinstance(out, dict):
        for o in out.values():
            _tensors_in(o, found)
    return found


class DistributedDataParallel(Module):
    """Data-parallel training: wrap the model on every rank, train each rank on its own share of every
    batch; after ``backward()`` every rank holds the gradients averaged over all ranks.

    Args:
        module: the model (the same architecture on every rank); its initial parameters and buffers are
            broadcast from rank 0, so all replicas start equal.
        device_ids, output_device, dim: accepted for PyTorch compatibility; somanet runs on the CPU.
        broadcast_buffers: copy rank 0's buffers (e.g. BatchNorm running statistics) to every rank at
            the start of each training-mode forward.
        process_group: the group to average over (the default group by default).
        bucket_cap_mb: the size limit of a bucket (MiB) of gradients reduced together (25).
        find_unused_parameters: allow parameters that take no part in a step's forward: they are counted
            ready at the end of forward (contributing zeros), and a parameter unused on every rank keeps
            its ``.grad``. Without it such a parameter makes the next forward raise, as in PyTorch.
        gradient_as_bucket_view, static_graph, check_reduction: accepted and ignored (the gradients are
            always copied out of the buckets; the graph is examined at every forward).

    ``no_sync()`` skips the reduction for gradient accumulation; ``.module`` is the wrapped model; the
    state dict keys carry the ``module.`` prefix, as PyTorch's. Every output of ``forward`` that
    depends on parameters should take part in the loss (or use ``find_unused_parameters=True``).
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=None, find_unused_parameters=False, check_reduction=False,
                 gradient_as_bucket_view=False, static_graph=False, **kwargs):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel(): expected a Module, got {type(module).__name__}")
        from ...distributed import _mpi
        from ...distributed.process_group import _group
        pg = _group(process_group, "DistributedDataParallel()")
        self.module = module
        self.device_ids = None if device_ids is None else [getattr(d, "index", d) for d in device_ids]
        self.output_device = output_device
        self.dim = dim
        self.broadcast_buffers = broadcast_buffers
        self.process_group = pg
        self.find_unused_parameters = bool(find_unused_parameters)
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.static_graph = static_graph
        self.require_backward_grad_sync = True
        self.bucket_bytes_cap = int((25 if bucket_cap_mb is None else bucket_cap_mb) * _MiB)
        self._MPI = _mpi.mpi()
        # A communicator of its own: the buckets' reductions never interleave with other collectives
        # (SyncBatchNorm's, or the program's) on the same communicator.
        self._comm = pg.comm.Dup()
        self._world = pg.size()
        self._timeout = pg.timeout
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._param_names = [n for n, _ in named]
        self._params = [p for _, p in named]
        self._index = {id(p): i for i, p in enumerate(self._params)}
        self._verify_model_across_ranks(module)
        self._sync_module_states(module)
        self._build_buckets()
        self._state = "idle"
        self._contributions = 0
        self.comm_wait_s = 0.0  # time the last backward spent waiting for its reductions after compute
        self._handles = []
        me = weakref.ref(self)
        for i, p in enumerate(self._params):
            self._handles.append(p.register_hook(_make_hook(me, i)))

    # ------------------------------------------------------------------ set-up
    def _verify_model_across_ranks(self, module):
        shapes = ";".join(f"{n}:{tuple(p.shape)}:{p.dtype}" for n, p in module.state_dict().items())
        mine = np.array([len(self._params), sum(p.array.size for p in self._params),
                         zlib.crc32(shapes.encode())], dtype=np.int64)
        every = np.empty((self._world, 3), dtype=np.int64)
        self._wait(self._comm.Iallgather(mine, every), "DistributedDataParallel() model check")
        if (every != mine).any():
            raise ValueError(f"DistributedDataParallel(): the model differs between ranks (parameter count, sizes "
                             f"or state dict shapes per rank: {every.tolist()}); build the same model on every rank")

    def _sync_module_states(self, module):
        tensors = [t for _, t in module.state_dict(keep_vars=True).items() if isinstance(t, Tensor)]
        self._broadcast_coalesced(tensors, "DistributedDataParallel() initial broadcast")

    def _broadcast_coalesced(self, tensors, what):
        if self._world == 1 or not tensors:
            return
        by_dtype = {}
        for t in tensors:
            by_dtype.setdefault(t.array.dtype.str, []).append(t)
        for group in by_dtype.values():
            flat = np.concatenate([t.array.reshape(-1) for t in group])
            self._wait(self._comm.Ibcast(flat.view(np.uint8), root=0), what)
            offset = 0
            for t in group:
                n = t.array.size
                t.array[...] = flat[offset:offset + n].reshape(t.array.shape)
                t._version[0] += 1
                offset += n

    def _build_buckets(self):
        buckets, current, size, dtype = [], [], 0, None
        cap = min(FIRST_BUCKET_BYTES, self.bucket_bytes_cap)
        for i in reversed(range(len(self._params))):
            arr = self._params[i].array
            if current and (arr.dtype != dtype or size + arr.nbytes > cap):
                buckets.append((current, dtype))
                current, size = [], 0
                cap = self.bucket_bytes_cap
            current.append(i)
            size += arr.nbytes
            dtype = arr.dtype
        if current:
            buckets.append((current, dtype))
        self._buckets = []
        self._bucket_of = [0] * len(self._params)
        self._views = [None] * len(self._params)
        for b, (members, dt) in enumerate(buckets):
            total = sum(self._params[i].array.size for i in members)
            buffer = np.zeros(total, dtype=dt)
            offset = 0
            for i in members:
                shape = self._params[i].array.shape
                n = self._params[i].array.size
                self._views[i] = buffer[offset:offset + n].reshape(shape)
                self._bucket_of[i] = b
                offset += n
            self._buckets.append(_Bucket(b, members, buffer))

    def _wait(self, request, what):
        from ...distributed import _mpi
        _mpi.wait([request], self._timeout, what)

    # ------------------------------------------------------------------ forward
    def forward(self, *inputs, **kwargs):
        if self._state == "armed" and self._contributions:
            self._state = "idle"
            self._unfinished_error()
        self._state = "idle"
        if self.broadcast_buffers and self.training and self._world > 1:
            buffers = [b for b in self.module.buffers() if b is not None]
            if buffers:
                self._broadcast_coalesced(buffers, "DistributedDataParallel buffer broadcast")
        out = self.module(*inputs, **kwargs)
        if self._world > 1 and self.require_backward_grad_sync and grad_mode.is_grad_enabled() and self._params:
            self._prepare(out)
        return out

    def _prepare(self, out):
        counts = self._count_uses(_tensors_in(out, []))
        self._pending = counts
        self._first = [True] * len(counts)
        self._contributions = 0
        unused = self.find_unused_parameters
        for bucket in self._buckets:
            bucket.pending = sum(1 for i in bucket.params if counts[i] or not unused)
            bucket.request = None
        self._used = np.array([1 if c else 0 for c in counts], dtype=np.int32) if unused else None
        self._used_request = None
        self._next = 0
        self._inflight = []
        self._state = "armed"

    def _count_uses(self, tensors):
        """How many gradient contributions each parameter gets when backward runs from ``tensors``."""
        index = self._index
        counts = [0] * len(self._params)
        seen = set()
        stack = []
        for t in tensors:
            if not t.requires_grad:
                continue
            fn = t.grad_fn
            if fn is None:
                i = index.get(id(t))
                if i is not None:
                    counts[i] += 1
            elif id(fn) not in seen:
                seen.add(id(fn))
                stack.append(fn)
        while stack:
            node = stack.pop()
            for edge in node.edges:
                if edge is None:
                    continue
                target = edge[0]
                if isinstance(target, Tensor):
                    i = index.get(id(target))
                    if i is not None:
                        counts[i] += 1
                elif id(target) not in seen:
                    seen.add(id(target))
                    stack.append(target)
        return counts

    def _unfinished_error(self):
        missing = [self._param_names[i] for i, left in enumerate(self._pending) if left > 0 or self._first[i]]
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise RuntimeError(
            f"DistributedDataParallel: the previous iteration's gradient reduction did not finish: these parameters "
            f"received no gradient in its backward: {shown}. Pass find_unused_parameters=True when parts of the "
            f"model take no part in some steps, and make sure every output of forward that depends on parameters "
            f"is part of the loss.")

    # ------------------------------------------------------------------ backward (from the gradient hooks)
    def _on_grad(self, i, g):
        state = self._state
        if state != "armed":
            if state == "done":
                self._state = "idle"
                raise RuntimeError(
                    f"DistributedDataParallel: parameter '{self._param_names[i]}' received a gradient after this "
                    f"iteration's reduction had finished. Use each parameter only inside the wrapped module's "
                    f"forward, run one backward per forward, and call forward again before the next backward.")
            return None
        self._contributions += 1
        view = self._views[i]
        if self._first[i]:
            self._first[i] = False
            held = self._params[i].grad
            if held is not None:
                np.add(held.array, g, out=view)  # gradients accumulated under no_sync() take part
            else:
                np.copyto(view, g)
        else:
            view += g
        left = self._pending[i] - 1
        self._pending[i] = left
        if left > 0:
            return None
        if left < 0:
            self._state = "idle"
            raise RuntimeError(
                f"DistributedDataParallel: parameter '{self._param_names[i]}' received more gradient contributions "
                f"than its uses in the last forward. Run one backward per forward, and use the parameters only "
                f"inside the wrapped module's forward.")
        bucket = self._buckets[self._bucket_of[i]]
        bucket.pending -= 1
        if bucket.pending == 0:
            self._launch_ready()
        elif self._inflight:
            self._MPI.Request.Testall(self._inflight)  # lets MPI move the reductions already started along
        if self._next == len(self._buckets):
            self._finish()
            # The engine adds this last contribution to .grad after the hook: it must add nothing now.
            return np.broadcast_to(np.zeros((), dtype=g.dtype), g.shape)
        return None

    def _launch_ready(self):
        MPI = self._MPI
        buckets = self._buckets
        while self._next < len(buckets) and buckets[self._next].pending == 0:
            bucket = buckets[self._next]
            if self._used is not None:
                if self._next == 0:
                    self._used_request = self._comm.Iallreduce(MPI.IN_PLACE, self._used, MPI.SUM)
                    self._inflight.append(self._used_request)
                for i in bucket.params:
                    if self._first[i]:  # unused in this rank's forward: its held gradient, or zeros
                        held = self._params[i].grad
                        if held is not None:
                            np.copyto(self._views[i], held.array)
                        else:
                            self._views[i].fill(0)
            bucket.request = self._comm.Iallreduce(MPI.IN_PLACE, bucket.buffer, MPI.SUM)
            self._inflight.append(bucket.request)
            self._next += 1

    def _finish(self):
        from ...distributed import _mpi
        start = time.perf_counter()
        _mpi.wait(self._inflight, self._timeout, "DistributedDataParallel gradient all-reduce")
        self.comm_wait_s = time.perf_counter() - start
        used = self._used
        for bucket in self._buckets:
            scale = bucket.buffer.dtype.type(1.0 / self._world)
            for i in bucket.params:
                if used is not None and used[i] == 0:
                    continue  # no rank used it: its .grad stays as it was
                p = self._params[i]
                averaged = np.multiply(self._views[i], scale)
                if p.grad is None:
                    p.grad = _wrap(averaged, False, None, 0)
                else:
                    p.grad.array = averaged
        self._inflight = []
        self._state = "done"

    # ------------------------------------------------------------------ public helpers
    @contextlib.contextmanager
    def no_sync(self):
        """Within this context, forward/backward pairs accumulate gradients locally without reducing them;
        the first backward after it reduces everything accumulated (gradient accumulation)."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def extra_repr(self):
        return f"world_size={self._world}, buckets={len(self._buckets)}"


def _make_hook(ddp_ref, i):
    def hook(grad):
        ddp = ddp_ref()
        if ddp is None or ddp._state == "idle":
            return None
        out = ddp._on_grad(i, grad.array)
        return None if out is None else _wrap(out, False, None, 0)

    return hook
