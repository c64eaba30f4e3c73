"""Pipeline model parallelism: a ``Sequential`` split into consecutive stages, one per rank.

>>> pipe = Pipe(model, chunks=4)                # on every rank: keeps this rank's stage   # doctest: +SKIP
>>> opt = optim.SGD(pipe.parameters(), lr=0.1)  # this rank's parameters only
>>> loss = pipe.step(x, y, nn.CrossEntropyLoss())   # x used on the first stage, y on the last
>>> opt.step(); opt.zero_grad()

A batch is cut into ``chunks`` micro-batches along dim 0. Stage ``s`` runs each micro-batch through its
layers and sends the activation to stage ``s + 1`` (non-blocking, so it goes on with the next
micro-batch at once); backward sends the gradient of each stage's input back to stage ``s - 1``.

Schedules: ``"gpipe"`` runs every micro-batch's forward, then every backward (fill, drain);
``"1f1b"`` starts backward as soon as the last stage has a micro-batch's loss and then alternates one
forward and one backward, so a stage holds at most ``stages - s`` micro-batches' activations instead
of ``chunks``. Both give the same gradients: each micro-batch's loss is weighted by its share of the
batch, so for a loss that averages over the batch (``reduction="mean"``) the accumulated gradients
are those of the loss over the whole batch in one process (to float rounding). Layers whose result
depends on the whole batch (``BatchNorm``) see micro-batches instead, as in any pipeline.
"""
import numpy as np

from ..autograd import grad_mode
from ..autograd.tensor import Tensor
from ..nn.modules.module import Module
from . import _mpi
from .process_group import _group

__all__ = ["Pipe", "partition", "SCHEDULES"]

SCHEDULES = ("gpipe", "1f1b")
_HEADER = 10  # dtype code, ndim, up to 8 dimensions
_DTYPES = [np.dtype(t) for t in ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")]


def _weight(layer):
    return sum(p.array.size for p in layer.parameters()) + 1


def partition(weights, num_stages):
    """Split a list of layer weights into ``num_stages`` consecutive non-empty runs with the smallest
    largest sum; returns the ``num_stages + 1`` boundaries."""
    n = len(weights)
    if not 1 <= num_stages <= n:
        raise ValueError(f"partition(): cannot split {n} layers into {num_stages} non-empty stages")
    prefix = np.concatenate([[0], np.cumsum(weights)])
    inf = float("inf")
    # best[k][i]: the smallest largest stage of the first i layers in k stages; cut[k][i] its last cut.
    best = [[inf] * (n + 1) for _ in range(num_stages + 1)]
    cut = [[0] * (n + 1) for _ in range(num_stages + 1)]
    best[0][0] = 0
    for k in range(1, num_stages + 1):
        for i in range(k, n + 1):
            for j in range(k - 1, i):
                cost = max(best[k - 1][j], prefix[i] - prefix[j])
                if cost < best[k][i]:
                    best[k][i], cut[k][i] = cost, j
    bounds = [n]
    for k in range(num_stages, 0, -1):
        bounds.append(cut[k][bounds[-1]])
    return bounds[::-1]


def _chunks(data, chunks, what):
    if data is None:
        return None
    arr = data.array if isinstance(data, Tensor) else np.asarray(data)
    if arr.ndim == 0 or arr.shape[0] < chunks:
        raise ValueError(f"Pipe: {what} of shape {tuple(arr.shape)} cannot be cut into {chunks} micro-batches "
                         f"along dim 0")
    return np.array_split(arr, chunks)


class Pipe(Module):
    """This rank's stage of a ``Sequential`` pipelined over the ranks of ``group`` (rank ``i`` holds stage
    ``i``).

    Args:
        module: a ``Sequential`` built the same way on every rank (each rank keeps only its layers).
        chunks: micro-batches per batch.
        balance: layers per stage (a list summing to ``len(module)``); by default the layers are split
            to even out the parameter counts.
        schedule: ``"gpipe"`` or ``"1f1b"``.
        group: the process group (the default group by default).

    The kept layers keep their names in ``module`` (``"3"`` stays ``"3"``), so the union of the ranks'
    ``state_dict()`` is the state dict of the whole ``Sequential``. Activations between stages must be
    single tensors.
    """

    def __init__(self, module, chunks=1, balance=None, schedule="gpipe", group=None):
        super().__init__()
        from ..nn.modules.container import Sequential
        if not isinstance(module, Sequential):
            raise TypeError(f"Pipe(): expected a Sequential, got {type(module).__name__}")
        if schedule not in SCHEDULES:
            raise ValueError(f"Pipe(): schedule must be one of {SCHEDULES}, got {schedule!r}")
        if not isinstance(chunks, int) or chunks < 1:
            raise ValueError(f"Pipe(): chunks must be a positive int, got {chunks!r}")
        pg = _group(group, "Pipe()")
        layers = list(module.named_children())
        stages = pg.size()
        if balance is None:
            bounds = partition([_weight(m) for _, m in layers], stages)
        else:
            balance = [int(b) for b in balance]
            if len(balance) != stages or sum(balance) != len(layers) or min(balance) < 1:
                raise ValueError(f"Pipe(): balance must give {stages} positive layer counts summing to "
                                 f"{len(layers)}, got {balance}")
            bounds = list(np.concatenate([[0], np.cumsum(balance)]).astype(int))
        self.group = pg
        self.num_stages = stages
        self.stage_index = pg.rank()
        self.chunks = chunks
        self.schedule = schedule
        self.bounds = [int(b) for b in bounds]
        for name, layer in layers[self.bounds[self.stage_index]:self.bounds[self.stage_index + 1]]:
            self.add_module(name, layer)
        self._sends = []

    @property
    def is_first(self):
        return self.stage_index == 0

    @property
    def is_last(self):
        return self.stage_index == self.num_stages - 1

    def _local(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x

    # ------------------------------------------------------------------ messages between stages
    def _global(self, stage):
        return self.group.ranks[stage]

    def _send(self, arr, stage, tag):
        arr = np.ascontiguousarray(arr)
        if arr.dtype not in _DTYPES or arr.ndim > _HEADER - 2:
            raise TypeError(f"Pipe: cannot send an activation of dtype {arr.dtype} with {arr.ndim} dimensions "
                            f"between stages")
        header = np.zeros(_HEADER, dtype=np.int64)
        header[0] = _DTYPES.index(arr.dtype)
        header[1] = arr.ndim
        header[2:2 + arr.ndim] = arr.shape
        comm = self.group.comm
        self._sends.append((comm.Isend(header, dest=stage, tag=2 * tag),
                            comm.Isend(arr.reshape(-1).view(np.uint8), dest=stage, tag=2 * tag + 1), header, arr))
        # Let MPI move the sends already started along while this stage computes.
        _mpi.mpi().Request.Testall([r for s in self._sends for r in s[:2]])

    def _recv(self, stage, tag):
        comm = self.group.comm
        header = np.empty(_HEADER, dtype=np.int64)
        what = f"Pipe stage {self.stage_index} receiving from stage {stage}"
        _mpi.wait([comm.Irecv(header, source=stage, tag=2 * tag)], self.group.timeout, what)
        shape = tuple(int(d) for d in header[2:2 + header[1]])
        arr = np.empty(shape, dtype=_DTYPES[header[0]])
        _mpi.wait([comm.Irecv(arr.reshape(-1).view(np.uint8), source=stage, tag=2 * tag + 1)], self.group.timeout,
                  what)
        return arr

    def _drain(self):
        if self._sends:
            _mpi.wait([r for s in self._sends for r in s[:2]], self.group.timeout,
                      f"Pipe stage {self.stage_index} sends")
            self._sends = []

    # ------------------------------------------------------------------ schedules
    def _actions(self, chunks):
        if self.schedule == "gpipe":
            return [("F", m) for m in range(chunks)] + [("B", m) for m in range(chunks)]
        warmup = min(self.num_stages - self.stage_index - 1, chunks)
        actions = [("F", m) for m in range(warmup)]
        for i in range(chunks - warmup):
            actions += [("F", warmup + i), ("B", i)]
        actions += [("B", m) for m in range(chunks - warmup, chunks)]
        return actions

    def step(self, input=None, target=None, loss_fn=None):
        """One forward and backward pass of a batch through the pipeline; accumulates this rank's
        parameter gradients (call the optimizer afterwards, as after ``backward()``).

        ``input`` is needed on the first stage and ``target`` and ``loss_fn(output, target)`` on the
        last; other ranks may pass them or not. Returns the batch's loss (the micro-batch losses
        weighted by their share of the batch) on every rank.
        """
        chunks = self.chunks
        prev, nxt = (None if self.is_first else self._global(self.stage_index - 1),
                     None if self.is_last else self._global(self.stage_index + 1))
        xs = _chunks(input, chunks, "input") if self.is_first else None
        ts = None
        if self.is_last:
            if loss_fn is None or target is None:
                raise ValueError("Pipe.step(): the last stage needs target= and loss_fn=")
            ts = _chunks(target, chunks, "target")
            total = sum(len(t) for t in ts)
        saved = {}
        loss_value = 0.0
        for kind, m in self._actions(chunks):
            if kind == "F":
                if self.is_first:
                    x = Tensor(xs[m])
                else:
                    arr = self._recv(prev, m)
                    x = Tensor(arr, requires_grad=arr.dtype.kind == "f")
                out = self._local(x)
                if self.is_last:
                    loss = loss_fn(out, Tensor(ts[m])) * (len(ts[m]) / total)
                    loss_value += float(loss.array)
                    saved[m] = (x, loss)
                else:
                    self._send(out.array, nxt, m)
                    saved[m] = (x, out)
            else:
                x, out = saved.pop(m)
                if self.is_last:
                    out.backward()
                else:
                    grad = self._recv(nxt, m)
                    if out.requires_grad:
                        out.backward(Tensor(grad))
                if not self.is_first:
                    g = x.grad.array if x.grad is not None else np.zeros_like(x.array)
                    self._send(g, prev, m)
        self._drain()
        value = np.array([loss_value], dtype=np.float64)
        last = self.num_stages - 1
        _mpi.wait([self.group.comm.Ibcast(value, root=last)], self.group.timeout, "Pipe loss broadcast")
        return float(value[0])

    def forward(self, input=None):
        """Inference through the pipeline (no graph): returns the output on the last stage (the
        micro-batch outputs concatenated) and None on the other ranks."""
        chunks = self.chunks
        xs = _chunks(input, chunks, "input") if self.is_first else None
        outs = []
        with grad_mode.no_grad():
            for m in range(chunks):
                x = Tensor(xs[m]) if self.is_first else Tensor(self._recv(self._global(self.stage_index - 1), m))
                out = self._local(x)
                if self.is_last:
                    outs.append(out.array)
                else:
                    self._send(out.array, self._global(self.stage_index + 1), m)
        self._drain()
        return Tensor(np.concatenate(outs)) if self.is_last else None

    def extra_repr(self):
        return (f"stage={self.stage_index}/{self.num_stages}, layers={self.bounds[self.stage_index]}.."
                f"{self.bounds[self.stage_index + 1] - 1}, chunks={self.chunks}, schedule={self.schedule!r}")
