"""``GradScaler``: loss scaling for float16 training, with PyTorch's ``torch.amp.GradScaler`` behaviour.

float16 keeps 11 significant bits and no values below about 6e-8: small gradients vanish. The scaler
multiplies the loss by a large factor before ``backward()`` (so the gradients flowing through float16
ops are large), divides the gradients of the float32 parameters by it before the optimizer step, and
skips the step when any gradient came out infinite or NaN (the factor was too large). Then ``update()``
halves the factor after a skipped step and doubles it after ``growth_interval`` steps in a row without
one: the sequence of factors and of skipped steps is the same as PyTorch's for the same gradients.

>>> scaler = GradScaler()
>>> for x, y in loader:
...     optimizer.zero_grad()
...     with somanet.autocast("cpu", dtype=somanet.float16):
...         loss = loss_fn(model(x), y)
...     scaler.scale(loss).backward()
...     scaler.step(optimizer)   # unscales first, skips the step on inf/NaN
...     scaler.update()
"""
import enum
import warnings
from collections import abc

import numpy as np

from ..autograd.tensor import Tensor


class OptState(enum.Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _fresh_state():
    return {"stage": OptState.READY, "found_inf_per_device": {}}


class GradScaler:
    """Scale the loss, unscale the gradients, skip steps with non-finite gradients, adapt the scale.

    ``device`` is ``"cpu"`` (``"cuda"`` warns and disables the scaler, as PyTorch does without a GPU).
    ``init_scale`` is the first factor, ``growth_factor`` multiplies it after ``growth_interval``
    consecutive steps without inf/NaN, ``backoff_factor`` after a step with one. ``enabled=False`` makes
    every method a pass-through, so one training loop serves both precisions.
    """

    def __init__(self, device="cpu", init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        self._device = str(device)
        self._enabled = bool(enabled)
        if self._enabled and self._device.partition(":")[0] != "cpu":
            warnings.warn(f"GradScaler is enabled for device '{self._device}', which is not available (somanet "
                          f"computes on the CPU); disabling it", UserWarning, stacklevel=2)
            self._enabled = False
        if self._enabled:
            if not growth_factor > 1.0:
                raise ValueError("GradScaler: the growth factor must be > 1.0")
            if not backoff_factor < 1.0:
                raise ValueError("GradScaler: the backoff factor must be < 1.0")
        self._init_scale = float(init_scale)
        self._scale = None  # float32, made on the first scale()
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._init_growth_tracker = 0
        self._growth_tracker = None
        self._per_optimizer_states = {}

    # ----------------------------------------------------------------- the training-step calls
    def scale(self, outputs):
        """``outputs`` (a tensor, or an iterable of tensors) multiplied by the scale factor."""
        if not self._enabled:
            return outputs
        if self._scale is None:
            self._lazy_init()
        factor = Tensor(np.asarray(self._scale, np.float32))

        def apply(value):
            if isinstance(value, Tensor):
                return value * factor
            if isinstance(value, abc.Iterable):
                scaled = [apply(v) for v in value]
                return type(value)(scaled) if isinstance(value, (list, tuple)) else scaled
            raise ValueError("GradScaler.scale(): outputs must be a Tensor or an iterable of Tensors")

        return apply(outputs)

    def unscale_(self, optimizer):
        """Divide the gradients of ``optimizer``'s parameters by the scale, in place, and note whether any
        was inf or NaN. Call it before clipping gradients; ``step()`` calls it otherwise."""
        if not self._enabled:
            return
        self._check("unscale_")
        state = self._state(optimizer)
        if state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        # The reciprocal in float64, rounded to float32, as PyTorch computes it.
        inv_scale = np.float32(1.0 / np.float64(self._scale))
        found_inf = 0.0
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.array
                if g.dtype == np.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                if not np.isfinite(g).all():
                    found_inf = 1.0
                if g.flags.writeable:
                    g *= inv_scale
                else:
                    p.grad.array = g * inv_scale
        state["found_inf_per_device"] = {"cpu": found_inf}
        state["stage"] = OptState.UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """``optimizer.step()`` unless a gradient was inf or NaN (unscaling first if ``unscale_`` was not
        called). Returns what ``optimizer.step`` returned, or None when the step was skipped."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check("step")
        state = self._state(optimizer)
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        if not state["found_inf_per_device"]:
            raise RuntimeError("No inf checks were recorded for this optimizer.")
        retval = None
        if not sum(state["found_inf_per_device"].values()):
            retval = optimizer.step(*args, **kwargs)
        state["stage"] = OptState.STEPPED
        return retval

    def update(self, new_scale=None):
        """Adapt the scale for the next iteration (or set it to ``new_scale``, a float or a one-element
        tensor): times ``backoff_factor`` if this iteration found inf/NaN, times ``growth_factor`` after
        ``growth_interval`` clean iterations in a row."""
        if not self._enabled:
            return
        self._check("update")
        if new_scale is not None:
            value = new_scale.item() if isinstance(new_scale, Tensor) else new_scale
            self._scale = np.float32(value)
        else:
            found = [v for s in self._per_optimizer_states.values() for v in s["found_inf_per_device"].values()]
            if not found:
                raise RuntimeError("No inf checks were recorded prior to update().")
            scale = np.float32(self._scale)
            if sum(found):
                self._scale = np.float32(scale * np.float32(self._backoff_factor))
                self._growth_tracker = 0
            else:
                successful = self._growth_tracker + 1
                if successful == self._growth_interval:
                    with np.errstate(over="ignore"):  # a scale that would overflow is kept
                        grown = np.float32(scale * np.float32(self._growth_factor))
                    if np.isfinite(grown):
                        self._scale = grown
                    self._growth_tracker = 0
                else:
                    self._growth_tracker = successful
        self._per_optimizer_states = {}

    # ----------------------------------------------------------------- queries and settings
    def get_scale(self):
        """The current scale factor as a Python float (1.0 when disabled)."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale)

    def get_growth_factor(self):
        return self._growth_factor

    def set_growth_factor(self, new_factor):
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self):
        return self._backoff_factor

    def set_backoff_factor(self, new_factor):
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self):
        return self._growth_interval

    def set_growth_interval(self, new_interval):
        self._growth_interval = int(new_interval)

    def _get_growth_tracker(self):
        if not self._enabled:
            return 0
        return self._init_growth_tracker if self._growth_tracker is None else int(self._growth_tracker)

    def is_enabled(self):
        return self._enabled

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self):
        """The scale, its settings and the count of clean steps since it last changed (empty when
        disabled): the keys of PyTorch's, so either framework loads the other's."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._init_scale = float(_number(state_dict["scale"]))
        if self._scale is not None:
            self._scale = np.float32(self._init_scale)
        self._growth_factor = float(_number(state_dict["growth_factor"]))
        self._backoff_factor = float(_number(state_dict["backoff_factor"]))
        self._growth_interval = int(_number(state_dict["growth_interval"]))
        self._init_growth_tracker = int(_number(state_dict["_growth_tracker"]))
        if self._growth_tracker is not None:
            self._growth_tracker = self._init_growth_tracker

    # ----------------------------------------------------------------- internals
    def _lazy_init(self):
        self._scale = np.float32(self._init_scale)
        self._growth_tracker = self._init_growth_tracker

    def _check(self, funcname):
        if self._scale is None:
            raise RuntimeError(f"Attempted {funcname} but _scale is None. This may indicate your script did not "
                               f"use scaler.scale(loss or outputs) earlier in the iteration.")

    def _state(self, optimizer):
        state = self._per_optimizer_states.get(id(optimizer))
        if state is None:
            state = self._per_optimizer_states[id(optimizer)] = _fresh_state()
        return state

    def __repr__(self):
        return (f"GradScaler(device={self._device!r}, scale={self.get_scale()}, growth_factor={self._growth_factor}, "
                f"backoff_factor={self._backoff_factor}, growth_interval={self._growth_interval}, "
                f"enabled={self._enabled})")


def _number(value):
    return value.item() if hasattr(value, "item") else value
