"""Containers: ``Sequential``, ``ModuleList``, ``ModuleDict``, ``ParameterList``, ``ParameterDict``."""
from collections import OrderedDict

from .module import Module, Parameter


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: modules named 0..n-1 in order, indexing, slicing, editing."""

    def _from_items(self, items):  # pragma: no cover - each subclass builds its own kind
        raise NotImplementedError

    def _position(self, idx):
        n = len(self._modules)
        if not -n <= idx < n:
            raise IndexError(f"{type(self).__name__}: index {idx} is out of range for {n} modules")
        return idx % n

    def _renumber(self, modules):
        # PyTorch keeps the names 0..n-1 after a deletion or insertion.
        self._modules.clear()
        for i, m in enumerate(modules):
            self._modules[str(i)] = m

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self._from_items(list(self._modules.items())[idx])
        return list(self._modules.values())[self._position(idx)]

    def __setitem__(self, idx, module):
        self.add_module(list(self._modules)[self._position(idx)], module)

    def __delitem__(self, idx):
        modules = list(self._modules.values())
        del modules[idx]
        self._renumber(modules)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index, module):
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._renumber(modules)
        return self


class Sequential(_ModuleSequence):
    """Run modules one after another: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Also accepts one ``OrderedDict`` of named modules. Supports indexing, slicing, ``len`` and ``append``.
    ``nn.utils.fusion.fuse_for_inference(model)`` folds its convolution + batch norm pairs for inference.
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, mod in args[0].items():
                self.add_module(name, mod)
        else:
            for i, mod in enumerate(args):
                self.add_module(str(i), mod)

    def _from_items(self, items):
        return Sequential(OrderedDict(items))

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input


class ModuleList(_ModuleSequence):
    """A list of modules, registered so their parameters are found. Has no forward."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _from_items(self, items):
        return ModuleList([m for _, m in items])

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward; iterate over it and call its modules")


class ModuleDict(Module):
    """A dict of modules, registered so their parameters are found."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key):
        return self._modules.pop(key)

    def update(self, modules):
        items = modules.items() if hasattr(modules, "items") else modules
        for k, m in items:
            self.add_module(k, m)


class ParameterList(Module):
    """A list of Parameters, registered by index."""

    def __init__(self, values=None):
        super().__init__()
        for v in values or []:
            self.append(v)

    def __getitem__(self, idx):
        return self._parameters[str(idx % len(self))]

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def append(self, value):
        self.register_parameter(str(len(self)), value if isinstance(value, Parameter) else Parameter(value))
        return self


class ParameterDict(Module):
    """A dict of Parameters, registered by key."""

    def __init__(self, parameters=None):
        super().__init__()
        for k, v in (parameters or {}).items():
            self[k] = v

    def __getitem__(self, key):
        return self._parameters[key]

    def __setitem__(self, key, value):
        self.register_parameter(key, value if isinstance(value, Parameter) else Parameter(value))

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def keys(self):
        return self._parameters.keys()

    def items(self):
        return self._parameters.items()

    def values(self):
        return self._parameters.values()
