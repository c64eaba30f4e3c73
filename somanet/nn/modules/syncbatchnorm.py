"""``SyncBatchNorm``: batch normalisation whose statistics cover the whole batch of every rank.

In training, each rank computes its share's per-channel count, mean and sum of squared deviations;
one all-gather combines them (in float64, with the parallel-variance formula) into the mean and
variance of the batch of all ranks together, which normalise every rank's share. Backward all-reduces
the two per-channel sums the input gradient needs. With a data-parallel loss averaged over ranks
(``DistributedDataParallel``), the gradients are those of ``BatchNorm`` over the concatenated batch.
Outside a ``somanet.distributed`` job of several ranks, or in evaluation, it is a plain batch norm.
"""
import numpy as np

from ...autograd.function import Function
from ...ops.norm import _channel_layout, _per_channel_sums, _per_channel_total
from .norm import _BatchNorm

__all__ = ["SyncBatchNorm"]


def _wait(request, pg, what):
    from ...distributed import _mpi
    _mpi.wait([request], pg.timeout, what)


class _SyncBatchNorm(Function):
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum=0.1, eps=1e-5, pg=None):
        view, vec = _channel_layout(x.shape)
        xv = x.reshape(view)
        dtype = x.dtype
        c = view[1]
        m = x.size // c if c else 0
        # This rank's count, mean and sum of squared deviations per channel ...
        local = np.zeros(1 + 2 * c, dtype=np.float64)
        local[0] = m
        if m:
            mean_l = _per_channel_total(xv, np) / dtype.type(m)
            dev = xv - mean_l.reshape(vec)
            local[1:1 + c] = mean_l
            local[1 + c:] = _per_channel_sums(dev, dev, np)
        # ... and everyone's, combined.
        every = np.empty((pg.size(), 1 + 2 * c), dtype=np.float64)
        _wait(pg.comm.Iallgather(local, every), pg, "SyncBatchNorm statistics")
        counts = every[:, :1]
        total = float(counts.sum())
        if total <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel when training, got {int(total)} "
                             f"over all ranks")
        means = every[:, 1:1 + c]
        mean = (counts * means).sum(axis=0) / total
        var = (every[:, 1 + c:].sum(axis=0) + (counts * (means - mean) ** 2).sum(axis=0)) / total
        if running_mean is not None:
            # The running variance is the unbiased estimate over the whole batch, as in PyTorch.
            running_mean *= 1 - momentum
            running_mean += (momentum * mean).astype(running_mean.dtype)
            running_var *= 1 - momentum
            running_var += (momentum * var * total / (total - 1)).astype(running_var.dtype)
        invstd = (1.0 / np.sqrt(var + eps)).astype(dtype)
        centred = xv - mean.astype(dtype).reshape(vec)
        scale = invstd * weight if weight is not None else invstd
        out = centred * scale.reshape(vec)
        if bias is not None:
            out += bias.reshape(vec)
        ctx.save_for_backward(centred, invstd, weight)
        ctx.shape, ctx.view, ctx.vec = x.shape, view, vec
        ctx.total = total
        ctx.pg = pg
        ctx.has_weight = weight is not None
        ctx.has_bias = bias is not None
        return out.reshape(x.shape)

    def backward(ctx, grad):
        centred, invstd, weight = ctx.saved
        vec = ctx.vec
        gv = grad.reshape(ctx.view)
        sum_dy = _per_channel_total(gv, np)
        sum_dy_dev = _per_channel_sums(gv, centred, np)
        dx = None
        if ctx.needs(0):
            c = sum_dy.shape[0]
            both = np.concatenate([sum_dy, sum_dy_dev]).astype(np.float64)
            from ...distributed import _mpi
            MPI = _mpi.mpi()
            _wait(ctx.pg.comm.Iallreduce(MPI.IN_PLACE, both, MPI.SUM), ctx.pg, "SyncBatchNorm backward")
            mean_dy = (both[:c] / ctx.total).astype(gv.dtype)
            mean_dy_dev = (both[c:] / ctx.total).astype(gv.dtype)
            k = invstd * weight if weight is not None else invstd
            dv = centred * (-(invstd * invstd) * mean_dy_dev).reshape(vec)
            dv += gv
            dv -= mean_dy.reshape(vec)
            dv *= k.reshape(vec)
            dx = dv.reshape(ctx.shape)
        gweight = sum_dy_dev * invstd if ctx.has_weight and ctx.needs(1) else None
        gbias = sum_dy if ctx.has_bias and ctx.needs(2) else None
        return dx, gweight, gbias, None, None


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation over ``(N, C, *)`` with statistics over the batch of every rank of
    ``process_group`` (the default group by default), as PyTorch's ``SyncBatchNorm``.

    Use ``SyncBatchNorm.convert_sync_batchnorm(model)`` to turn a model's batch norms into these.
    In evaluation, and when no process group of several ranks exists, it behaves as ``BatchNorm``.
    """

    _dims = (2, 3, 4, 5)
    _layout = "(N, C, *)"

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    def _group(self):
        if self.process_group is not None:
            return self.process_group
        from ...distributed.process_group import _state
        return _state.default

    def forward(self, input):
        pg = self._group() if self.training else None
        if pg is None or pg.size() == 1:
            return super().forward(input)
        shape = tuple(getattr(input, "shape", ()))
        if len(shape) < 2:
            raise ValueError(f"{self._describe()}: expected an input {self._layout} of at least 2 dimensions, "
                             f"got shape {shape}")
        if shape[1] != self.num_features:
            raise ValueError(f"{self._describe()}: expected {self.num_features} channels in dim 1 of the input "
                             f"{self._layout}, got shape {shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        track = self.track_running_stats and self.running_mean is not None
        if track and self.num_batches_tracked is not None:
            self.num_batches_tracked.array += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.array)
        out = _SyncBatchNorm.apply(input, self.weight, self.bias, self.running_mean if track else None,
                                   self.running_var if track else None, momentum=factor, eps=self.eps, pg=pg)
        if track:
            self.running_mean._version[0] += 1
            self.running_var._version[0] += 1
        return out

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every ``BatchNorm1d/2d/3d`` inside replaced by a ``SyncBatchNorm`` that shares its
        parameters and buffers (``module`` itself is returned converted when it is a batch norm)."""
        out = module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            out = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
                      process_group)
            if module.affine:
                out.weight = module.weight
                if module.bias is not None:
                    out.bias = module.bias
                else:
                    out.register_parameter("bias", None)
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                out._buffers[name] = module._buffers.get(name)
            out.train(module.training)
        for name, child in list(module.named_children()):
            converted = cls.convert_sync_batchnorm(child, process_group)
            if converted is not child:
                out.add_module(name, converted)
        return out
