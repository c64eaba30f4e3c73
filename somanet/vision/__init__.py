"""torchvision's layout on somanet: ``datasets``, ``transforms``, ``models``, ``utils`` and ``ops`` (plus
``metrics``: COCO-style detection mAP).

Each name is the one implementation that ``somanet.data`` and ``somanet.models`` already hold, under
the import path a torchvision program uses, with torchvision's signatures: ``import somanet.vision as
torchvision`` (or ``from somanet.vision import datasets, transforms``) is all a program needs to change.
Datasets return PIL images, as torchvision's do, when Pillow is installed (``pip install
'somanet[vision]'``); without it they return uint8 NumPy arrays, which ``transforms.ToTensor`` accepts too.

>>> from somanet.vision import datasets, transforms
>>> tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
>>> mnist = datasets.MNIST("data", train=False, transform=tf)  # doctest: +SKIP
"""
_SUBMODULES = frozenset({"datasets", "transforms", "models", "utils", "ops", "metrics"})

__all__ = sorted(_SUBMODULES | {"get_image_backend", "set_image_backend"})


def get_image_backend():
    """The library images are loaded with: always ``"PIL"``."""
    return "PIL"


def set_image_backend(backend):
    """Accepts ``"PIL"`` only (torchvision's ``accimage`` backend does not exist here)."""
    if backend != "PIL":
        raise ValueError(f"set_image_backend: only the 'PIL' backend is available, got {backend!r}")


def __getattr__(name):
    # Submodules load on first use so that ``import somanet.vision`` stays cheap.
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'somanet.vision' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)
