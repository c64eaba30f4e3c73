"""Gradient-recording switches: ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``inference_mode``.

The state is thread-local and independent of a module's train/eval mode. Each switch works as a
context manager and as a decorator.
"""
import functools
import threading


class _GradState(threading.local):
    enabled = True


_state = _GradState()


def is_grad_enabled():
    return _state.enabled


class _GradSwitch:
    _mode = True

    def __enter__(self):
        self._prev = _state.enabled
        _state.enabled = self._mode

    def __exit__(self, *exc):
        _state.enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = _state.enabled
            _state.enabled = self._mode
            try:
                return fn(*args, **kwargs)
            finally:
                _state.enabled = prev

        return wrapper


class no_grad(_GradSwitch):
    """Record no graph inside this block or decorated function."""

    _mode = False


class enable_grad(_GradSwitch):
    """Record the graph even inside a ``no_grad`` block."""

    _mode = True


class inference_mode(_GradSwitch):
    """Like ``no_grad``: for evaluation and serving. ``inference_mode(False)`` re-enables recording."""

    def __init__(self, mode=True):
        self._mode = not mode


class set_grad_enabled(_GradSwitch):
    """Turn recording on or off; works as a function call, context manager or decorator."""

    def __init__(self, mode):
        self._mode = bool(mode)
        self._prev = _state.enabled
        _state.enabled = self._mode

    def __enter__(self):
        pass

    def __exit__(self, *exc):
        _state.enabled = self._prev
        return False

    def __call__(self, fn):
        # Used as a decorator: undo the switch made on construction, apply it per call instead.
        _state.enabled = self._prev
        return super().__call__(fn)
