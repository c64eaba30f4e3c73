"""Run a PyTorch program as written, and again with its imports rewritten to somanet.

The rewrite is the mechanical one a user does by hand, on the source text, and nothing else:

==========================================  ==============================================
``import torch``                            ``import somanet as torch``
``import torch.nn as nn``                   ``import somanet.nn as nn``
``import torch.nn.functional as F``         ``import somanet.nn.functional as F``
``import torch.utils.data``                 ``import somanet.utils.data, somanet as torch``
``from torch import nn, optim``             ``from somanet import nn, optim``
``from torch.utils.data import DataLoader`` ``from somanet.utils.data import DataLoader``
``import torchvision``                      ``import somanet.vision as torchvision``
``from torchvision import transforms``      ``from somanet.vision import transforms``
==========================================  ==============================================

Only lines that start (after indentation) with ``import`` or ``from`` are touched, so code such as
``torch.optim.SGD(...)`` keeps working through the alias. A program is a Python file defining
``main(**kwargs)`` that returns a dict of results (numbers or lists of numbers).
"""
import contextlib
import re
import sys

__all__ = ["rewrite_imports", "map_module", "run_program", "modules_installed"]

_IMPORT_LINE = re.compile(r"^(?P<indent>[ \t]*)import[ \t]+(?P<body>[^#\n]*?)(?P<tail>[ \t]*(#.*)?)$", re.M)
_FROM_LINE = re.compile(r"^(?P<indent>[ \t]*)from[ \t]+(?P<module>[\w.]+)(?P<space>[ \t]+)import\b", re.M)


def map_module(name):
    """The somanet module for a torch / torchvision module name, or None for any other module."""
    if name == "torchvision" or name.startswith("torchvision."):
        return "somanet.vision" + name[len("torchvision"):]
    if name == "torch" or name.startswith("torch."):
        return "somanet" + name[len("torch"):]
    return None


def _rewrite_alias(item):
    """One ``module [as name]`` of an import statement."""
    parts = item.split()
    module, alias = parts[0], (parts[2] if len(parts) == 3 and parts[1] == "as" else None)
    target = map_module(module)
    if target is None:
        return item
    if alias is not None:
        return f"{target} as {alias}"
    top = module.split(".")[0]
    if module == top:  # import torch -> the name ``torch`` bound to somanet
        return f"{target} as {top}"
    # import torch.nn binds the name ``torch``: import the submodule, then bind the top name.
    return f"{target}, {map_module(top)} as {top}"


def _rewrite_import(match):
    body = match.group("body")
    if body.rstrip().endswith(("\\", "(")):
        raise ValueError(f"rewrite_imports: a continued import line is not supported: {match.group(0)!r}")
    items = [_rewrite_alias(item.strip()) for item in body.split(",")]
    return f"{match.group('indent')}import {', '.join(items)}{match.group('tail')}"


def _rewrite_from(match):
    target = map_module(match.group("module"))
    if target is None:
        return match.group(0)
    return f"{match.group('indent')}from {target}{match.group('space')}import"


def rewrite_imports(source):
    """``source`` with its torch and torchvision imports pointed at somanet (see the module docstring)."""
    source = _IMPORT_LINE.sub(_rewrite_import, source)
    return _FROM_LINE.sub(_rewrite_from, source)


@contextlib.contextmanager
def modules_installed(modules):
    """Make ``sys.modules`` hold ``modules`` (name -> module) for the duration, then restore it."""
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def run_program(path, framework, **kwargs):
    """Execute the program at ``path`` with ``framework`` ``"torch"`` (as written) or ``"somanet"``
    (imports rewritten) and return what its ``main(**kwargs)`` returns."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    if framework == "somanet":
        source = rewrite_imports(source)
    elif framework != "torch":
        raise ValueError(f"run_program: framework should be 'torch' or 'somanet', got {framework!r}")
    namespace = {"__name__": "compat_program", "__file__": str(path)}
    exec(compile(source, f"{path} ({framework})", "exec"), namespace)
    return namespace["main"](**kwargs)
