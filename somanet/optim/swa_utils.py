"""Weight averaging: stochastic weight averaging (SWA) and exponential moving averages (EMA) of a
model's weights, with ``torch.optim.swa_utils``'s names and numerics.

* ``AveragedModel(model, avg_fn=None, multi_avg_fn=None, use_buffers=False)`` holds a copy of
  ``model``; each ``update_parameters(model)`` folds the current weights into the copy. The first
  call copies them; later calls apply the averaging function (the running mean of SWA by default,
  an EMA with ``multi_avg_fn=get_ema_multi_avg_fn(decay)`` or ``avg_fn=get_ema_avg_fn(decay)``).
  ``use_buffers=True`` averages the buffers too (batch-norm statistics); otherwise they are copied
  from ``model`` on every update. ``n_averaged`` (a buffer, so it is in the state dict) counts the updates.
* ``update_bn(loader, model)`` recomputes the batch-norm running statistics of an averaged model
  with one pass over the data (a cumulative average over the batches).
* ``SWALR(optimizer, swa_lr, anneal_epochs=10, anneal_strategy="cos")`` anneals each group's
  learning rate to ``swa_lr`` and then holds it there.

Arithmetic follows PyTorch's CPU kernels: the EMA and SWA updates of floating-point tensors are
linear interpolations ``lerp(avg, current, w)`` evaluated as one fused multiply-add
(``avg + w * (current - avg)`` for ``w < 0.5``, ``current + (w - 1) * (current - avg)`` otherwise),
so the averaged weights agree with ``torch.optim.swa_utils`` to float32 rounding step after step.

>>> import somanet
>>> from somanet import nn
>>> from somanet.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
>>> net = nn.Linear(3, 1)
>>> ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.99))
>>> ema.update_parameters(net)     # after each optimizer step
>>> int(ema.n_averaged)
1
"""
import itertools
import math

import numpy as np

from ..autograd import grad_mode
from ..autograd.tensor import Tensor
from ..nn.modules.module import Module
from .lr_scheduler import LRScheduler, _per_group

__all__ = ["AveragedModel", "update_bn", "SWALR", "get_ema_multi_avg_fn", "get_swa_multi_avg_fn", "get_ema_avg_fn",
           "get_swa_avg_fn"]


def _arr(t):
    return t.array if isinstance(t, Tensor) else np.asarray(t)


def _lerp_(avg, current, weight):
    """``avg`` (an ndarray, updated in place) moved towards ``current`` by ``weight``, as PyTorch's
    vectorised ``lerp`` computes it: one fused multiply-add in the array's precision."""
    dtype = avg.dtype
    w = dtype.type(weight)
    diff = current.astype(dtype, copy=False) - avg
    small = abs(float(w)) < 0.5
    coeff = w if small else w - dtype.type(1)
    base = avg if small else current.astype(dtype, copy=False)
    if dtype == np.float32:
        # float32 products are exact in float64, so rounding the float64 sum once gives the fused result
        out = diff.astype(np.float64)
        out *= float(coeff)
        out += base
        avg[...] = out
    else:
        avg[...] = base + coeff * diff


def _is_float(t):
    return np.issubdtype(_arr(t).dtype, np.floating) or np.issubdtype(_arr(t).dtype, np.complexfloating)


def get_ema_multi_avg_fn(decay=0.999):
    """The EMA update over lists of tensors, for ``AveragedModel(multi_avg_fn=...)``:
    ``ema = decay * ema + (1 - decay) * current`` (a ``lerp`` by ``1 - decay`` for floating-point
    tensors, ``decay * ema + (1 - decay) * current`` cast back for integer ones)."""
    if decay < 0.0 or decay > 1.0:
        raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")

    def ema_update(ema_param_list, current_param_list, _num_averaged):
        if _is_float(ema_param_list[0]):
            for p_ema, p_model in zip(ema_param_list, current_param_list):
                _lerp_(_arr(p_ema), _arr(p_model), 1 - decay)
        else:
            for p_ema, p_model in zip(ema_param_list, current_param_list):
                a = _arr(p_ema)
                mixed = (a.astype(np.float32) * np.float32(decay)
                         + _arr(p_model).astype(np.float32) * np.float32(1 - decay))
                a[...] = mixed.astype(a.dtype)

    return ema_update


def get_swa_multi_avg_fn():
    """The running-mean (SWA) update over lists of floating-point tensors: ``avg += (current - avg) / (n + 1)``
    (a ``lerp`` by ``1 / (n + 1)``); integer tensors raise ``RuntimeError``, as in PyTorch."""

    def swa_update(averaged_param_list, current_param_list, num_averaged):
        n = int(_arr(num_averaged))
        if _is_float(averaged_param_list[0]):
            weight = float(np.float32(1.0) / np.float32(n + 1))
            for p_avg, p_model in zip(averaged_param_list, current_param_list):
                _lerp_(_arr(p_avg), _arr(p_model), weight)
        else:
            # PyTorch refuses this too (an integer addcdiv / a float alpha on integer tensors): average
            # integer buffers with the default or an EMA function, or keep use_buffers=False.
            raise RuntimeError("get_swa_multi_avg_fn(): integer tensors cannot be averaged by the multi-tensor SWA "
                               "update (integer division); use the default AveragedModel(avg_fn=None, "
                               "multi_avg_fn=None) or use_buffers=False")

    return swa_update


def get_ema_avg_fn(decay=0.999):
    """The EMA update of one tensor, for ``AveragedModel(avg_fn=...)``:
    ``decay * ema + (1 - decay) * current`` (returns a new tensor)."""
    if decay < 0.0 or decay > 1.0:
        raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")

    def ema_update(ema_param, current_param, num_averaged):
        return decay * ema_param + (1 - decay) * current_param

    return ema_update


def get_swa_avg_fn():
    """The running-mean update of one tensor: ``avg + (current - avg) / (n + 1)`` (returns a new tensor)."""

    def swa_update(averaged_param, current_param, num_averaged):
        return averaged_param + (current_param - averaged_param) / (num_averaged + 1)

    return swa_update


def _swa_default_(averaged, current, num_averaged):
    """PyTorch's CPU default: ``avg + (current - avg) / (n + 1)`` elementwise (the division by the
    count as a tensor of the parameter's dtype), cast back for integer tensors."""
    n1 = int(_arr(num_averaged)) + 1
    for p_avg, p_model in zip(averaged, current):
        a = _arr(p_avg)
        cur = _arr(p_model)
        if np.issubdtype(a.dtype, np.floating):
            a[...] = a + (cur.astype(a.dtype) - a) / a.dtype.type(n1)
        else:
            diff = (cur.astype(a.dtype) - a).astype(np.float32)
            a[...] = (a.astype(np.float32) + diff / np.float32(n1)).astype(a.dtype)


class AveragedModel(Module):
    """A running average of ``model``'s weights (SWA by default, EMA with ``get_ema_multi_avg_fn``).

    Args:
        model: the model whose weights are averaged; it is deep-copied into ``self.module``.
        device: move the copy there (``module.to(device)``).
        avg_fn: ``fn(averaged, current, num_averaged) -> Tensor`` for one tensor at a time.
        multi_avg_fn: ``fn(averaged_list, current_list, num_averaged)`` updating a list of tensors in
            place (``get_ema_multi_avg_fn``, ``get_swa_multi_avg_fn``). At most one of the two.
        use_buffers: average the buffers too; otherwise they are copied from ``model`` at each update.

    ``forward`` runs the averaged copy. ``update_parameters(model)`` folds ``model``'s current weights
    in; its first call (``n_averaged == 0``) copies them.
    """

    def __init__(self, model, device=None, avg_fn=None, multi_avg_fn=None, use_buffers=False):
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise AssertionError("Only one of avg_fn and multi_avg_fn should be provided")
        import copy
        self.module = copy.deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", Tensor(np.array(0, dtype=np.int64)))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _pairs(self, model):
        if self.use_buffers:
            mine = itertools.chain(self.module.parameters(), self.module.buffers())
            theirs = itertools.chain(model.parameters(), model.buffers())
        else:
            mine, theirs = self.parameters(), model.parameters()
        return [(a, b) for a, b in zip(mine, theirs) if a is not None and b is not None]

    def update_parameters(self, model):
        """Fold ``model``'s current parameters (and, with ``use_buffers``, buffers) into the average."""
        pairs = self._pairs(model)
        count = int(self.n_averaged.array)
        with grad_mode.no_grad():
            if count == 0:
                for p_avg, p_model in pairs:
                    _arr(p_avg)[...] = _arr(p_model)
            else:
                if self.multi_avg_fn is not None or self.avg_fn is None:
                    groups = {}
                    for p_avg, p_model in pairs:
                        groups.setdefault(_arr(p_avg).dtype, []).append((p_avg, p_model))
                    for members in groups.values():
                        avg = [p.detach() for p, _ in members]
                        cur = [q.detach() for _, q in members]
                        if self.multi_avg_fn is not None:
                            self.multi_avg_fn(avg, cur, self.n_averaged.detach())
                        else:
                            _swa_default_(avg, cur, self.n_averaged)
                else:
                    for p_avg, p_model in pairs:
                        out = self.avg_fn(p_avg.detach(), p_model.detach(), self.n_averaged.detach())
                        a = _arr(p_avg)
                        a[...] = _arr(out).astype(a.dtype)
            if not self.use_buffers:
                for b_avg, b_model in zip(self.module.buffers(), model.buffers()):
                    if b_avg is not None and b_model is not None:
                        _arr(b_avg)[...] = _arr(b_model)
        self.n_averaged.array[...] = count + 1


def update_bn(loader, model, device=None):
    """Recompute the running statistics of every batch norm in ``model`` with one pass over ``loader``.

    The statistics are reset, then accumulated as a cumulative average over the batches
    (``momentum=None`` during the pass); each batch is a tensor or a list/tuple whose first element
    is the model's input. The model's mode and the layers' momenta are restored afterwards.
    """
    from ..nn.modules.norm import _BatchNorm
    momenta = {}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            momenta[module] = module.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for module in momenta:
        module.momentum = None
    try:
        with grad_mode.no_grad():
            for batch in loader:
                if isinstance(batch, (list, tuple)):
                    batch = batch[0]
                if not isinstance(batch, Tensor):
                    from ..ops.creation import tensor
                    batch = tensor(batch)
                if device is not None:
                    batch = batch.to(device)
                model(batch)
    finally:
        for module, momentum in momenta.items():
            module.momentum = momentum
        model.train(was_training)


class SWALR(LRScheduler):
    """Anneal each param group's learning rate to ``swa_lr`` over ``anneal_epochs`` steps, then hold it.

    Args:
        optimizer: the wrapped optimizer.
        swa_lr: the final learning rate, one for all groups or a list with one per group
            (stored as ``group["swa_lr"]``).
        anneal_epochs: steps of the annealing phase (0: jump to ``swa_lr`` at the first step).
        anneal_strategy: ``"cos"`` or ``"linear"``.
        last_epoch: the index of the last epoch (-1 to start fresh).

    At step ``s`` with ``t = min(1, s / anneal_epochs)`` and ``alpha`` the annealing function of ``t``
    (``(1 - cos(pi t)) / 2`` or ``t``), the rate is ``swa_lr * alpha + lr0 * (1 - alpha)``, ``lr0`` being
    the rate the annealing started from (recovered from the current one, so other schedulers can act
    before it). Typical use: step another scheduler until the SWA phase starts, ``SWALR`` after it.
    """

    def __init__(self, optimizer, swa_lr, anneal_epochs=10, anneal_strategy="cos", last_epoch=-1):
        swa_lrs = _per_group("swa_lr", optimizer, swa_lr, "SWALR")
        for value, group in zip(swa_lrs, optimizer.param_groups):
            group["swa_lr"] = value
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self._set_anneal_func(anneal_strategy)
        if isinstance(anneal_epochs, bool) or not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t):
        return t

    @staticmethod
    def _cosine_anneal(t):
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr, swa_lr, alpha):
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def _set_anneal_func(self, strategy):
        self._anneal_strategy = strategy
        self.anneal_func = self._cosine_anneal if strategy == "cos" else self._linear_anneal

    def get_lr(self):
        """The rates of the current step (called by ``step``)."""
        self._warn_outside_step()
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        span = max(1, self.anneal_epochs)
        prev_alpha = self.anneal_func(max(0, min(1, (step - 1) / span)))
        starts = [self._get_initial_lr(group["lr"], group["swa_lr"], prev_alpha)
                  for group in self.optimizer.param_groups]
        alpha = self.anneal_func(max(0, min(1, step / span)))
        return [group["swa_lr"] * alpha + lr0 * (1 - alpha) for group, lr0 in zip(self.optimizer.param_groups, starts)]

    def state_dict(self):
        """The scheduler's state, without the optimizer and the annealing function (kept by name)."""
        return {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "anneal_func")}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)
        self._set_anneal_func(self._anneal_strategy)

