"""The kernel registry: one chooser per heavy op, and the user's override of its choice.

Every heavy op names the implementations it can run, ``"reference"`` (the plain array code in ``ops/``)
first. Its chooser looks at the shapes, dtype and environment and returns one of those names; the op
then asks ``implementation`` for that kernel and runs it, or runs its own reference code when the name
is ``"reference"``. ``kernel(op, name)`` forces a name for an op (``somanet.backends.cpu.kernel`` is the
same function).

The kernels of an op live in a module of their own that registers them when it is imported; this
registry imports it on the op's first use, so ``import somanet`` loads none of them.
"""
import importlib
import importlib.util
import sys
import threading

__all__ = ["kernel", "kernel_names", "ops", "choose", "implementation", "register", "numba_available"]

# Which module registers each op's kernels; imported on first use.
_MODULES = {
    "conv2d": "somanet.kernels.conv",
    "conv2d_weight_grad": "somanet.kernels.conv",
    "max_pool2d": "somanet.kernels.pool",
    "avg_pool2d": "somanet.kernels.pool",
    "layer_norm": "somanet.kernels.norm",
    "rms_norm": "somanet.kernels.norm",
    "softmax": "somanet.kernels.softmax",
    "log_softmax": "somanet.kernels.softmax",
    "cross_entropy": "somanet.kernels.loss",
    "batch_norm": "somanet.kernels.norm",
    "group_norm": "somanet.kernels.norm",
    "gelu": "somanet.kernels.activation",
    "silu": "somanet.kernels.activation",
    "dropout": "somanet.kernels.dropout",
    "norm_reductions": "somanet.kernels.reductions",
    "adam": "somanet.kernels.optim",
    "sgd": "somanet.kernels.optim",
    "rmsprop": "somanet.kernels.optim",
    "adagrad": "somanet.kernels.optim",
    "recurrent": "somanet.kernels.recurrent",
    "attention": "somanet.kernels.attention",
    "row_sums": "somanet.kernels.reductions",
    "matmul": "somanet.kernels.matmul",
}

_registry = {}   # op -> _Op
_forced = {}     # op -> kernel name forced by ``kernel``
_lock = threading.Lock()


class _Op:
    """One op's kernels: ``names`` in order (``"reference"`` first), ``chooser(*args) -> name``,
    ``supports[name](*args) -> bool`` for kernels that handle only some shapes, ``impls[name]``, and
    ``requires[name]``: the optional module a kernel needs (``"numba"``)."""

    def __init__(self, op, chooser):
        self.op = op
        self.chooser = chooser
        self.names = ["reference"]
        self.impls = {"reference": None}
        self.supports = {}
        self.requires = {}


def register(op, name, impl, *, chooser=None, supports=None, requires=None):
    """Register kernel ``name`` of ``op`` (``impl``: whatever the op calls, e.g. a module-level object with
    ``forward``/``backward``). The first registration of an op must give its ``chooser``."""
    entry = _registry.get(op)
    if entry is None:
        if chooser is None:
            raise ValueError(f"register(): the first kernel of {op!r} must come with its chooser")
        entry = _registry[op] = _Op(op, chooser)
    elif chooser is not None:
        entry.chooser = chooser
    if name != "reference":
        if name not in entry.names:
            entry.names.append(name)
        entry.impls[name] = impl
    if supports is not None:
        entry.supports[name] = supports
    if requires is not None:
        entry.requires[name] = requires


def _entry(op):
    entry = _registry.get(op)
    if entry is None:
        module = _MODULES.get(op)
        if module is None:
            raise ValueError(f"kernel(): unknown op {op!r}; ops with kernels: {', '.join(sorted(_MODULES))}")
        with _lock:
            importlib.import_module(module)
        entry = _registry[op]
    return entry


def ops():
    """The names of the ops that have a chooser, sorted."""
    return sorted(_MODULES)


def kernel_names(op):
    """The kernels ``op`` can run, ``"reference"`` first (for example ``kernel_names("conv2d")``)."""
    return tuple(_entry(op).names)


_numba_spec = []


def numba_available():
    """Whether Numba can be imported (without importing it: importing costs about a third of a second)."""
    if "numba" in sys.modules:
        return sys.modules["numba"] is not None
    if not _numba_spec:
        try:
            _numba_spec.append(importlib.util.find_spec("numba") is not None)
        except (ImportError, ValueError):
            _numba_spec.append(False)
    return _numba_spec[0]


def _installed(module):
    if module == "numba":
        return numba_available()
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class _Override:
    """What ``kernel(op, name)`` returns: the override is already in force; used in a ``with`` block, it
    puts back the previous choice on exit."""

    def __init__(self, op, previous, name):
        self.op, self.previous, self.name = op, previous, name

    def __enter__(self):
        return self.name

    def __exit__(self, *exc):
        if self.previous is None:
            _forced.pop(self.op, None)
        else:
            _forced[self.op] = self.previous
        return False

    def __repr__(self):
        return f"kernel({self.op!r}, {self.name!r})"


_UNSET = object()


def kernel(op, name=_UNSET):
    """Read or force the kernel of a heavy op on the CPU.

    ``kernel("conv2d")`` returns the forced kernel name, or None when the op's chooser decides.
    ``kernel("conv2d", "reference")`` forces the plain implementation from then on; used as a context
    manager it restores the previous choice on exit::

        with somanet.backends.cpu.kernel("conv2d", "reference"):
            y = model(x)

    ``kernel(op, None)`` hands the choice back to the chooser. A forced kernel that cannot handle some
    shapes (Winograd needs a 3x3 stride-1 kernel) leaves those calls to the chooser. ``kernel_names(op)``
    lists the names; an unknown op or name raises ``ValueError`` listing the valid ones, and a kernel whose
    optional dependency is missing raises ``RuntimeError`` with the install hint.
    """
    if not isinstance(op, str):
        raise TypeError(f"kernel(): op must be a string such as 'conv2d', got {type(op).__name__}")
    entry = _entry(op)
    if name is _UNSET:
        return _forced.get(op)
    previous = _forced.get(op)
    if name is None:
        _forced.pop(op, None)
        return _Override(op, previous, None)
    if name not in entry.names:
        raise ValueError(f"kernel(): unknown kernel {name!r} for {op!r}; expected one of "
                         f"{', '.join(repr(n) for n in entry.names)} (or None for the chooser's pick)")
    needed = entry.requires.get(name)
    if needed is not None and not _installed(needed):
        raise RuntimeError(f"kernel(): the {name!r} kernel of {op!r} needs {needed}, which is not installed; "
                           f"install it with `pip install somanet[fast]`")
    _forced[op] = name
    return _Override(op, previous, name)


def choose(op, *args):
    """The name of the kernel ``op`` runs for ``args`` (the op's shapes and arrays): the forced one when it
    supports them, else the chooser's."""
    entry = _entry(op)
    name = _forced.get(op)
    if name is not None:
        supports = entry.supports.get(name)
        if supports is None or supports(*args):
            return name
    return entry.chooser(*args)


def implementation(op, name):
    """The registered implementation of kernel ``name`` of ``op`` (None for ``"reference"``)."""
    return _entry(op).impls[name]
