"""``somanet.utils.data``: the same objects as ``somanet.data``, under PyTorch's import path.

>>> from somanet.utils.data import DataLoader, TensorDataset
"""
from ..data import *  # noqa: F401,F403
from ..data import __all__  # noqa: F401
from ..data import distributed, sampler, dataset, dataloader  # noqa: F401
from ..data import collate  # noqa: F401


def _register_submodules():
    # This is a module, not a package: registering its submodules under PyTorch's dotted names makes
    # ``from somanet.utils.data.dataloader import DataLoader`` (and .dataset, .sampler, ...) work.
    import sys
    import types

    utils = types.ModuleType(f"{__name__}._utils", "PyTorch's private data-loading helpers: collate.")
    utils.collate = collate
    globals()["_utils"] = utils
    for name, module in (("dataloader", dataloader), ("dataset", dataset), ("sampler", sampler),
                         ("distributed", distributed), ("_utils", utils), ("_utils.collate", collate)):
        sys.modules.setdefault(f"{__name__}.{name}", module)


_register_submodules()
