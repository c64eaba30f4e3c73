"""The op library: ``Function`` subclasses grouped by family, each with its functional wrapper.

Importing a family installs its Tensor methods.
"""
from . import elementwise, reduce, shape, index, linalg, creation, inplace  # noqa: F401
from . import pointwise, matrix, statistics, layout, tensor_api, sparse  # noqa: F401
