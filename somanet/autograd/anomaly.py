"""Anomaly detection: find the op that first produced NaN or Inf, and where the user's code created it.

``with somanet.autograd.detect_anomaly():`` (or ``set_detect_anomaly(True)``) checks every op as it runs:

* forward: an output with NaN, or with Inf although every input was finite (an overflow, ``log(0)``, a
  division by zero), raises at once. Ops that write values the caller gave them (``masked_fill(-inf)``,
  ``fill_``) may produce Inf on purpose and are only checked for NaN.
* backward: a gradient with NaN or Inf coming out of an op whose incoming gradient was finite raises, naming
  the op, the shapes, and the lines of the user's code that created it in the forward pass.

When anomaly mode is off nothing is checked and nothing costs anything: turning it on swaps in a checking
``Function.apply``, turning it off puts the plain one back.
"""
import threading
import traceback

import numpy as np

from .function import Function
from .tensor import Tensor

_plain_apply = Function.__dict__["apply"]
#: A mode that wraps every op for longer than a block (somanet.amp's low-precision dispatch) puts its two
#: ``apply`` versions here, (plain inside, checking inside): switching anomaly mode picks between them.
_outer_apply = None
_lock = threading.Lock()
_state = {"enabled": False, "check_nan": True, "depth": 0}

# Ops that write a value the caller chose: Inf from them is intended (attention masks), NaN is not.
_WRITES_GIVEN_VALUES = frozenset({"Fill", "MaskedFill", "IndexFill", "CopyFrom", "SetItem", "Where"})


def _non_finite(arr):
    return arr.dtype.kind in "fc" and arr.size and not np.isfinite(arr).all()


def _user_frames(stack):
    """The forward traceback without somanet's own frames, as PyTorch shows it in anomaly mode."""
    kept = [f for f in stack if "/somanet/" not in f.filename.replace("\\", "/")]
    return "".join(traceback.format_list(kept or stack[-5:]))


def _shapes(arrays):
    return ", ".join(str(tuple(a.shape)) if a is not None else "None" for a in arrays)


def _describe(what):
    return "NaN" if np.isnan(what).any() else "Inf"


def _checked_backward(node, backward, stack):
    def run(*grads):
        result = backward(*grads)
        incoming_finite = all(g is None or not _non_finite(g) for g in grads)
        results = result if isinstance(result, tuple) else (result,)
        if incoming_finite:
            for i, g in enumerate(results):
                if g is not None and _non_finite(g):
                    raise RuntimeError(
                        f"anomaly detected: {node.name} backward returned {_describe(g)} values in its gradient "
                        f"for input {i} (gradient shapes: {_shapes(results)}; incoming gradient shapes: "
                        f"{_shapes(grads)}).\nThe op was created in the forward pass at:\n{_user_frames(stack)}")
        return result

    return run


def _anomaly_apply(cls, *inputs, **params):
    out = _plain_apply.__func__(cls, *inputs, **params)
    outs = out if isinstance(out, tuple) else (out,)
    arrays = [o.array for o in outs if isinstance(o, Tensor)]
    bad = next((a for a in arrays if _non_finite(a)), None)
    if bad is not None:
        has_nan = bool(np.isnan(bad).any())
        inputs_finite = all(not _non_finite(x.array) for x in inputs if isinstance(x, Tensor))
        inputs_finite = inputs_finite and all(np.isfinite(x) for x in inputs if isinstance(x, float))
        if (has_nan and _state["check_nan"]) or (not has_nan and inputs_finite
                                                 and cls.__name__ not in _WRITES_GIVEN_VALUES):
            stack = traceback.extract_stack()[:-2]
            input_shapes = _shapes([x.array for x in inputs if isinstance(x, Tensor)])
            raise RuntimeError(
                f"anomaly detected: {cls.__name__} forward produced {_describe(bad)} values (input shapes: "
                f"{input_shapes}; output shapes: {_shapes(arrays)}).\nThe op was called at:\n{_user_frames(stack)}")
    node = next((o.grad_fn for o in outs if isinstance(o, Tensor) and o.grad_fn is not None), None)
    if node is not None and isinstance(node, cls):
        # An instance attribute shadows the class's backward for this node only.
        node.backward = _checked_backward(node, node.backward, traceback.extract_stack()[:-2])
    return out


def _switch(enabled, check_nan=True):
    with _lock:
        _state["enabled"] = bool(enabled)
        _state["check_nan"] = bool(check_nan)
        if _outer_apply is not None:
            Function.apply = _outer_apply[1 if enabled else 0]
        else:
            Function.apply = classmethod(_anomaly_apply) if enabled else _plain_apply


def is_anomaly_enabled():
    """Whether anomaly mode is on."""
    return _state["enabled"]


def is_anomaly_check_nan_enabled():
    return _state["enabled"] and _state["check_nan"]


class detect_anomaly:  # noqa: N801 - PyTorch's spelling
    """Context manager (or decorator) that turns anomaly mode on for its block; ops run slower inside."""

    def __init__(self, check_nan=True):
        self.check_nan = check_nan

    def __enter__(self):
        self.prev = (_state["enabled"], _state["check_nan"])
        _switch(True, self.check_nan)
        return self

    def __exit__(self, *exc):
        _switch(*self.prev)
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly(self.check_nan):
                return fn(*args, **kwargs)

        return wrapper


class set_detect_anomaly:  # noqa: N801 - PyTorch's spelling
    """``set_detect_anomaly(True)`` turns anomaly mode on (as a call, or for a ``with`` block)."""

    def __init__(self, mode, check_nan=True):
        self.prev = (_state["enabled"], _state["check_nan"])
        _switch(mode, check_nan)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _switch(*self.prev)
        return False
