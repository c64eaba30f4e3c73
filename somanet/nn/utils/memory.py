"""Module helpers of ``torch.nn.utils`` that concern memory: ``skip_init`` and the memory-format converters.

somanet keeps every tensor in one layout and has no meta device, so these keep PyTorch programs running:
``skip_init`` builds the module (its parameters then hold its normal initial values, which the caller is
expected to overwrite) and the converters return the module unchanged.
"""

__all__ = ["skip_init", "convert_conv2d_weight_memory_format", "convert_conv3d_weight_memory_format"]


def skip_init(module_cls, *args, **kwargs):
    """An instance of ``module_cls(*args, **kwargs)`` whose parameters the caller will set (PyTorch leaves
    them uninitialised; here they hold the usual initial values)."""
    kwargs.pop("device", None)
    return module_cls(*args, **kwargs)


def convert_conv2d_weight_memory_format(module, memory_format):
    """``module`` unchanged: somanet stores convolution weights in one layout."""
    return module


def convert_conv3d_weight_memory_format(module, memory_format):
    """``module`` unchanged: somanet stores convolution weights in one layout."""
    return module
