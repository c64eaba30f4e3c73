"""What ``somanet.train.Trainer`` does differently inside a job of several ranks.

* Data given as arrays or a Dataset is sharded with a ``DistributedSampler`` (each rank trains on its
  share of every epoch, ``set_epoch`` is called every epoch); a DataLoader given as is is used as is,
  and its sampler's ``set_epoch`` is called too.
* Only rank 0 writes: the run directory, checkpoints, CSV logs, plots and the progress bar. Every rank
  keeps the callbacks that decide (early stopping, schedulers), and the epoch's logs are averaged over
  the ranks first, so every rank takes the same decisions.
* Checkpoints hold the wrapped model (``model.module``), so they load into a plain model, and record
  the world size and the sampler's seed: a run resumes on the same or another number of ranks.
* With ``accumulate_grad_batches`` the gradients are reduced once per optimizer step (``no_sync``).
"""
import sys

import numpy as np

__all__ = ["DistributedContext", "context", "unwrap"]


def unwrap(model):
    """The module a ``DistributedDataParallel`` wraps, else ``model`` itself."""
    from ..nn.parallel.distributed import DistributedDataParallel
    return model.module if isinstance(model, DistributedDataParallel) else model


def context():
    """A ``DistributedContext`` inside an initialised job of several ranks, else None (cheap: it looks
    at ``somanet.distributed`` only if the program imported it)."""
    dist = sys.modules.get("somanet.distributed")
    if dist is None or not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    return DistributedContext(dist.get_rank(), dist.get_world_size())


def world_size():
    ctx = context()
    return 1 if ctx is None else ctx.world


def resumed_batch_idx(state, batch_idx, world):
    """The batch to continue an interrupted epoch from on ``world`` ranks, when the checkpoint was saved
    with another world size: the same share of the epoch, rounded down (a few samples are seen again
    rather than skipped)."""
    saved = (state.get("distributed") or {}).get("world_size", 1)
    if not batch_idx or saved == world:
        return batch_idx
    return batch_idx * saved // world


class DistributedContext:
    """The rank, the world size and the helpers the Trainer uses in a job of several ranks."""

    is_writer = property(lambda self: self.rank == 0)

    def __init__(self, rank, world):
        self.rank = rank
        self.world = world
        self.sampler_seed = None

    def loader(self, data, *, batch_size, shuffle, dtype, what, checkpoint=None):
        """A DataLoader over this rank's share of ``data`` (arrays or a Dataset)."""
        from .. import distributed as dist
        from ..data import DataLoader, DistributedSampler
        from ..random import Generator, numpy_rng
        from ..train.data import as_loader
        plain = as_loader(data, batch_size=batch_size, shuffle=False, dtype=dtype, what=what)
        saved = None if checkpoint is None else (checkpoint.trainer_state.get("distributed") or {})
        generator = None
        if shuffle:
            # The same draw as a one-process run makes for its data-order generator, so the default
            # random stream stays the same; rank 0's value seeds every rank's sampler.
            seed = [int(numpy_rng(None).integers(0, 2**63 - 1))]
            dist.broadcast_object_list(seed, src=0)
            generator = Generator(seed[0])
            self.sampler_seed = int(saved["sampler_seed"]) if saved and "sampler_seed" in saved else seed[0] % 2**31
        sampler = DistributedSampler(plain.dataset, num_replicas=self.world, rank=self.rank, shuffle=shuffle,
                                     seed=self.sampler_seed or 0)
        return DataLoader(plain.dataset, batch_size=batch_size, sampler=sampler, generator=generator)

    def state(self):
        """What a checkpoint records about the job."""
        out = {"world_size": self.world}
        if self.sampler_seed is not None:
            out["sampler_seed"] = self.sampler_seed
        return out

    def average_logs(self, logs, weight):
        """``logs`` with every scalar averaged over the ranks, weighted by ``weight`` (this rank's
        sample count); array values (per-class metrics) stay this rank's."""
        from .. import distributed as dist
        from ..autograd.tensor import Tensor
        keys = [k for k, v in logs.items() if np.ndim(v) == 0 and isinstance(v, (int, float, np.number))]
        values = np.array([float(weight)] + [float(logs[k]) * float(weight) for k in keys], dtype=np.float64)
        t = Tensor(values)
        dist.all_reduce(t)
        total = t.array[0]
        out = dict(logs)
        if total > 0:
            for i, k in enumerate(keys):
                out[k] = float(t.array[i + 1] / total)
        return out

    @staticmethod
    def sync_gradients(model, sync):
        """Reduce gradients in the coming backward (``sync``) or let them accumulate (``no_sync``)."""
        if hasattr(model, "require_backward_grad_sync"):
            model.require_backward_grad_sync = bool(sync)
