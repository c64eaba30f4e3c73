"""``somanet.nn.parallel``: PyTorch's ``DataParallel`` on somanet's single device.

somanet runs on one device, so ``DataParallel`` is a pass-through wrapper: ``forward`` calls the wrapped
module, which stays reachable as ``.module``, and the state dict keys get the ``module.`` prefix, exactly as
PyTorch's, so checkpoints move between the two unchanged.

``DistributedDataParallel`` (in ``distributed.py``) trains one replica per process of a
``somanet.distributed`` job and averages the gradients over the processes.
"""
from ..modules.module import Module
from .distributed import DistributedDataParallel

__all__ = ["DataParallel", "data_parallel", "DistributedDataParallel"]


class DataParallel(Module):
    """Wrap ``module`` as PyTorch's ``DataParallel`` does; on somanet's one device, calling the wrapper calls
    the module. ``device_ids``, ``output_device`` and ``dim`` are kept for code that reads them."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel(): expected a Module, got {type(module).__name__}")
        self.module = module
        self.device_ids = [] if device_ids is None else [getattr(d, "index", d) for d in device_ids]
        self.output_device = output_device if output_device is not None else (
            self.device_ids[0] if self.device_ids else None)
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


def data_parallel(module, inputs, device_ids=None, output_device=None, dim=0, module_kwargs=None):
    """``module(*inputs, **module_kwargs)``: the functional form of ``DataParallel`` on one device."""
    if not isinstance(inputs, tuple):
        inputs = (inputs,) if inputs is not None else ()
    return module(*inputs, **(module_kwargs or {}))
