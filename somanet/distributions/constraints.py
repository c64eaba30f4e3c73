"""Constraints: the sets that parameters and samples of a distribution must lie in.

``constraint.check(value)`` gives a bool tensor of the value's shape less the constraint's
``event_dim`` rightmost dimensions, True where the value is valid. Distributions check their parameters
against ``arg_constraints`` and the values given to ``log_prob``/``cdf`` against ``support`` when
validation is on. ``description`` is the phrase used in error messages.
"""
import numpy as np

from ..autograd.tensor import Tensor

__all__ = [
    "Constraint", "boolean", "dependent", "dependent_property", "greater_than", "greater_than_eq",
    "half_open_interval", "independent", "integer_interval", "interval", "is_dependent", "less_than",
    "lower_cholesky", "lower_triangular", "nonnegative", "nonnegative_integer", "one_hot", "positive",
    "positive_definite", "positive_integer", "real", "real_vector", "simplex", "symmetric", "unit_interval",
]


def _array(value):
    if isinstance(value, Tensor):
        return value.array
    return np.asarray(value)


class Constraint:
    """A region of valid values. ``is_discrete`` and ``event_dim`` (how many rightmost dimensions one
    event has) describe it."""

    is_discrete = False
    event_dim = 0
    description = "valid"

    def check(self, value):
        """A bool tensor: True where ``value`` (one event per position) satisfies the constraint."""
        return Tensor(np.asarray(self._check(_array(value)), dtype=bool))

    def _check(self, arr):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return type(self).__name__.lstrip("_") + "()"


class _Dependent(Constraint):
    """A constraint that depends on other parameters and cannot be checked on its own."""

    def __init__(self, *, is_discrete=False, event_dim=0):
        self.is_discrete = is_discrete
        self.event_dim = event_dim

    def __call__(self, *, is_discrete=None, event_dim=None):
        return _Dependent(is_discrete=self.is_discrete if is_discrete is None else is_discrete,
                          event_dim=self.event_dim if event_dim is None else event_dim)

    def _check(self, arr):
        raise ValueError("a dependent constraint cannot be checked on its own")


def is_dependent(constraint):
    return isinstance(constraint, _Dependent)


class dependent_property(property, _Dependent):
    """A ``property`` whose value is a constraint built from the distribution's parameters (such as
    Uniform's support between ``low`` and ``high``); on the class it acts as a dependent constraint."""

    def __init__(self, fn=None, *, is_discrete=False, event_dim=0):
        property.__init__(self, fn)
        _Dependent.__init__(self, is_discrete=is_discrete, event_dim=event_dim)

    def __call__(self, fn):
        return dependent_property(fn, is_discrete=self.is_discrete, event_dim=self.event_dim)


class _IndependentConstraint(Constraint):
    """``base`` required of every element of the ``reinterpreted_batch_ndims`` rightmost dimensions."""

    def __init__(self, base_constraint, reinterpreted_batch_ndims):
        self.base_constraint = base_constraint
        self.reinterpreted_batch_ndims = reinterpreted_batch_ndims

    @property
    def is_discrete(self):
        return self.base_constraint.is_discrete

    @property
    def event_dim(self):
        return self.base_constraint.event_dim + self.reinterpreted_batch_ndims

    @property
    def description(self):
        return self.base_constraint.description

    def _check(self, arr):
        ok = np.asarray(self.base_constraint._check(arr))
        n = self.reinterpreted_batch_ndims
        if ok.ndim < n:
            raise ValueError(f"expected a value with at least {self.event_dim} dimensions, got {arr.ndim}")
        if n == 0:
            return ok
        return ok.reshape(ok.shape[:ok.ndim - n] + (-1,)).all(-1)

    def __repr__(self):
        return f"Independent({self.base_constraint!r}, {self.reinterpreted_batch_ndims})"


class _Boolean(Constraint):
    is_discrete = True
    description = "0 or 1"

    def _check(self, arr):
        return (arr == 0) | (arr == 1)


class _OneHot(Constraint):
    is_discrete = True
    event_dim = 1
    description = "one-hot (0/1 entries with exactly one 1 in the last dimension)"

    def _check(self, arr):
        return ((arr == 0) | (arr == 1)).all(-1) & (arr.sum(-1) == 1)


class _IntegerInterval(Constraint):
    is_discrete = True

    def __init__(self, lower_bound, upper_bound):
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound

    @property
    def description(self):
        return f"an integer in [{self.lower_bound}, {self.upper_bound}]"

    def _check(self, arr):
        return (arr % 1 == 0) & (self.lower_bound <= arr) & (arr <= self.upper_bound)

    def __repr__(self):
        return f"IntegerInterval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


class _IntegerGreaterThan(Constraint):
    is_discrete = True

    def __init__(self, lower_bound):
        self.lower_bound = lower_bound

    @property
    def description(self):
        return f"an integer >= {self.lower_bound}"

    def _check(self, arr):
        return (arr % 1 == 0) & (arr >= self.lower_bound)

    def __repr__(self):
        return f"IntegerGreaterThan(lower_bound={self.lower_bound})"


class _Real(Constraint):
    description = "real (not NaN)"

    def _check(self, arr):
        return arr == arr


class _GreaterThan(Constraint):
    def __init__(self, lower_bound):
        self.lower_bound = lower_bound

    @property
    def description(self):
        return "positive" if self.lower_bound == 0 else f"greater than {self.lower_bound}"

    def _check(self, arr):
        return self.lower_bound < arr

    def __repr__(self):
        return f"GreaterThan(lower_bound={self.lower_bound})"


class _GreaterThanEq(Constraint):
    def __init__(self, lower_bound):
        self.lower_bound = lower_bound

    @property
    def description(self):
        return "non-negative" if self.lower_bound == 0 else f"at least {self.lower_bound}"

    def _check(self, arr):
        return self.lower_bound <= arr

    def __repr__(self):
        return f"GreaterThanEq(lower_bound={self.lower_bound})"


class _LessThan(Constraint):
    def __init__(self, upper_bound):
        self.upper_bound = upper_bound

    @property
    def description(self):
        return f"less than {self.upper_bound}"

    def _check(self, arr):
        return arr < self.upper_bound

    def __repr__(self):
        return f"LessThan(upper_bound={self.upper_bound})"


def _bound(b):
    return b.array if isinstance(b, Tensor) else b


def _bound_str(b):
    if isinstance(b, Tensor):
        return str(b.array.item()) if b.array.size == 1 else f"<tensor of shape {tuple(b.shape)}>"
    return str(b)


class _Interval(Constraint):
    """The closed interval ``[lower_bound, upper_bound]`` (bounds may be tensors)."""

    def __init__(self, lower_bound, upper_bound):
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound

    @property
    def description(self):
        if isinstance(self.lower_bound, Tensor) or isinstance(self.upper_bound, Tensor):
            return "within [low, high]"
        return f"within [{self.lower_bound}, {self.upper_bound}]"

    def _check(self, arr):
        return (_bound(self.lower_bound) <= arr) & (arr <= _bound(self.upper_bound))

    def __repr__(self):
        return f"Interval(lower_bound={_bound_str(self.lower_bound)}, upper_bound={_bound_str(self.upper_bound)})"


class _HalfOpenInterval(_Interval):
    """``[lower_bound, upper_bound)``."""

    @property
    def description(self):
        if isinstance(self.lower_bound, Tensor) or isinstance(self.upper_bound, Tensor):
            return "within [low, high)"
        return f"within [{self.lower_bound}, {self.upper_bound})"

    def _check(self, arr):
        return (_bound(self.lower_bound) <= arr) & (arr < _bound(self.upper_bound))

    def __repr__(self):
        return (f"HalfOpenInterval(lower_bound={_bound_str(self.lower_bound)}, "
                f"upper_bound={_bound_str(self.upper_bound)})")


class _Simplex(Constraint):
    event_dim = 1
    description = "on the probability simplex (non-negative, summing to 1 over the last dimension)"

    def _check(self, arr):
        return (arr >= 0).all(-1) & (np.abs(arr.sum(-1) - 1) < 1e-6)


class _LowerTriangular(Constraint):
    event_dim = 2
    description = "lower triangular"

    def _check(self, arr):
        return (np.tril(arr) == arr).reshape(arr.shape[:-2] + (-1,)).all(-1)


class _LowerCholesky(Constraint):
    event_dim = 2
    description = "lower triangular with a positive diagonal"

    def _check(self, arr):
        lower = (np.tril(arr) == arr).reshape(arr.shape[:-2] + (-1,)).all(-1)
        return lower & (np.diagonal(arr, axis1=-2, axis2=-1) > 0).all(-1)


class _Symmetric(Constraint):
    event_dim = 2
    description = "a symmetric square matrix"

    def _check(self, arr):
        if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
            return np.zeros(arr.shape[:-2], dtype=bool)
        return np.isclose(arr, np.swapaxes(arr, -1, -2), atol=1e-6).reshape(arr.shape[:-2] + (-1,)).all(-1)


class _PositiveDefinite(_Symmetric):
    description = "a symmetric positive-definite matrix"

    def _check(self, arr):
        ok = super()._check(arr)
        if not ok.all():
            return ok
        return np.linalg.eigvalsh(arr.astype(np.float64)).min(-1) > 0


dependent = _Dependent()
boolean = _Boolean()
one_hot = _OneHot()
nonnegative_integer = _IntegerGreaterThan(0)
positive_integer = _IntegerGreaterThan(1)
integer_interval = _IntegerInterval
real = _Real()
real_vector = _IndependentConstraint(real, 1)
positive = _GreaterThan(0.0)
nonnegative = _GreaterThanEq(0.0)
greater_than = _GreaterThan
greater_than_eq = _GreaterThanEq
less_than = _LessThan
unit_interval = _Interval(0.0, 1.0)
interval = _Interval
half_open_interval = _HalfOpenInterval
simplex = _Simplex()
lower_triangular = _LowerTriangular()
lower_cholesky = _LowerCholesky()
symmetric = _Symmetric()
positive_definite = _PositiveDefinite()
independent = _IndependentConstraint
