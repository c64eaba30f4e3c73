"""Mixed precision: ``autocast`` and ``GradScaler``, as ``torch.amp``.

>>> scaler = somanet.amp.GradScaler()
>>> with somanet.autocast("cpu", dtype=somanet.float16):
...     loss = loss_fn(model(x), y)
>>> scaler.scale(loss).backward()
>>> scaler.step(optimizer)
>>> scaler.update()

See docs/amp.md for what runs in which precision and what it costs on a CPU.
"""
from .autocast_mode import (autocast, is_autocast_available, is_autocast_enabled, get_autocast_dtype,
                            clear_autocast_cache, custom_fwd, custom_bwd)
from .grad_scaler import GradScaler, OptState

__all__ = ["autocast", "GradScaler", "OptState", "is_autocast_available", "is_autocast_enabled",
           "get_autocast_dtype", "clear_autocast_cache", "custom_fwd", "custom_bwd"]
