"""Utilities under the names PyTorch users expect: ``somanet.utils.data``, ``somanet.utils.tensorboard``.

Submodules load on first use, so ``somanet.utils.data.DataLoader`` works without importing them eagerly.
"""
_SUBMODULES = frozenset({"data", "tensorboard", "checkpoint", "hooks"})


def __getattr__(name):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'somanet.utils' has no attribute '{name}'")
