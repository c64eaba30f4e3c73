"""``Distribution``: the interface every probability distribution implements.

Shapes follow PyTorch: a distribution has a ``batch_shape`` (independent, differently parameterised
copies) and an ``event_shape`` (the shape of one draw: ``()`` for scalars, ``(k,)`` for vectors);
``sample(sample_shape)`` returns ``sample_shape + batch_shape + event_shape`` and ``log_prob(value)``
returns one number per event.
"""
import numpy as np

from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from . import constraints
from .utils import broadcast_all, is_number, lazy_property, size_tuple

__all__ = ["Distribution"]


def _describe_value(value):
    return f"{type(value).__name__} of shape {tuple(value.shape)}"


class Distribution:
    """The base class of probability distributions.

    Subclasses set ``arg_constraints`` (parameter name -> constraint), ``support`` and ``has_rsample``
    and implement what they can of ``sample``/``rsample``, ``log_prob``, ``cdf``, ``icdf``, ``entropy``
    and the moments. With ``validate_args`` on (the default, switched globally by
    ``Distribution.set_default_validate_args``), parameters are checked when the distribution is made
    and values when they are scored, with a ``ValueError`` naming the distribution and the parameter.
    """

    has_rsample = False
    has_enumerate_support = False
    _validate_args = True
    arg_constraints = {}

    @staticmethod
    def set_default_validate_args(value):
        """Turn argument validation on or off for every distribution made afterwards."""
        if value not in (True, False):
            raise ValueError(f"set_default_validate_args(): expected True or False, got {value!r}")
        Distribution._validate_args = bool(value)

    def __init__(self, batch_shape=(), event_shape=(), validate_args=None):
        self._batch_shape = size_tuple(batch_shape)
        self._event_shape = size_tuple(event_shape)
        if validate_args is not None:
            self._validate_args = bool(validate_args)
        if self._validate_args:
            self._check_parameters()

    def _check_parameters(self):
        name = type(self).__name__
        for param, constraint in self.arg_constraints.items():
            if constraints.is_dependent(constraint):
                continue
            if param not in self.__dict__ and isinstance(getattr(type(self), param, None), lazy_property):
                continue  # computed from the other parameterisation, which is checked
            value = getattr(self, param)
            if not isinstance(value, Tensor):
                continue
            valid = constraint.check(value).array
            if not valid.all():
                raise ValueError(
                    f"{name}: parameter {param} must be {constraint.description} (constraint {constraint!r}), "
                    f"but it has invalid values ({_describe_value(value)}):\n{value}")

    # ----------------------------------------------------------------- shapes
    @property
    def batch_shape(self):
        """The shape over which parameters are batched."""
        return self._batch_shape

    @property
    def event_shape(self):
        """The shape of a single draw."""
        return self._event_shape

    def _extended_shape(self, sample_shape=()):
        return size_tuple(sample_shape) + self._batch_shape + self._event_shape

    def expand(self, batch_shape, _instance=None):
        """A new distribution whose parameters are broadcast (as views) to ``batch_shape``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement expand()")

    def _expanded(self, batch_shape, params, _instance=None, event_shape=None):
        """Helper for ``expand``: a new instance of this class with each named parameter expanded to
        ``batch_shape + (its event dims)``; validation is not repeated."""
        new = _instance if _instance is not None else type(self).__new__(type(self))
        batch_shape = size_tuple(batch_shape)
        for name, event_ndim in params.items():
            value = self.__dict__.get(name)
            if value is None:
                continue
            tail = tuple(value.shape[value.ndim - event_ndim:]) if event_ndim else ()
            new.__dict__[name] = value.expand(batch_shape + tail)
        Distribution.__init__(new, batch_shape, self._event_shape if event_shape is None else event_shape,
                              validate_args=False)
        new._validate_args = self._validate_args
        return new

    # ----------------------------------------------------------------- interface
    @property
    def support(self):
        """The constraint that draws satisfy."""
        raise NotImplementedError(f"{type(self).__name__} does not define its support")

    @property
    def mean(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement mean")

    @property
    def mode(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement mode")

    @property
    def variance(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement variance")

    @property
    def stddev(self):
        return self.variance.sqrt()

    def sample(self, sample_shape=()):
        """Draws of shape ``sample_shape + batch_shape + event_shape``, with no gradient."""
        with no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape=()):
        """Reparameterised draws: differentiable with respect to the parameters."""
        raise NotImplementedError(f"{type(self).__name__} has no reparameterised sampler (has_rsample is "
                                  f"False); use sample()")

    def sample_n(self, n):
        return self.sample((n,))

    def log_prob(self, value):
        raise NotImplementedError(f"{type(self).__name__} does not implement log_prob")

    def cdf(self, value):
        raise NotImplementedError(f"{type(self).__name__} does not implement cdf")

    def icdf(self, value):
        raise NotImplementedError(f"{type(self).__name__} does not implement icdf")

    def entropy(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement entropy")

    def enumerate_support(self, expand=True):
        raise NotImplementedError(f"{type(self).__name__} has no enumerable support")

    def perplexity(self):
        return self.entropy().exp()

    # ----------------------------------------------------------------- validation of values
    def _validate_sample(self, value, method="log_prob"):
        """Check that ``value`` can be scored: a tensor whose rightmost dimensions match
        ``event_shape``, that broadcasts against ``batch_shape``, inside the support."""
        name = f"{type(self).__name__}.{method}"
        if not isinstance(value, Tensor):
            raise ValueError(f"{name}: the value must be a Tensor, got {type(value).__name__}")
        shape = tuple(value.shape)
        n_event = len(self._event_shape)
        if len(shape) < n_event or shape[len(shape) - n_event:] != self._event_shape:
            raise ValueError(f"{name}: the rightmost dimensions of the value must match event_shape "
                             f"{self._event_shape}, got a value of shape {shape}")
        expected = self._batch_shape + self._event_shape
        for i, j in zip(reversed(shape), reversed(expected)):
            if i != 1 and j != 1 and i != j:
                raise ValueError(f"{name}: a value of shape {shape} does not broadcast against "
                                 f"batch_shape + event_shape = {expected}")
        support = self.support
        valid = support.check(value).array
        if not np.all(valid):
            raise ValueError(f"{name}: the value must be {support.description} (the support {support!r}), "
                             f"but it has values outside it ({_describe_value(value)}):\n{value}")

    def __repr__(self):
        parts = []
        for p in self.arg_constraints:
            v = self.__dict__.get(p)
            if isinstance(v, Tensor):
                parts.append(f"{p}: {v.array.item() if v.array.size == 1 else tuple(v.shape)}")
        return f"{type(self).__name__}({', '.join(parts)})"


class LocScale(Distribution):
    """Base of the real-valued location-scale families (``Normal``, ``Laplace``): ``loc`` and ``scale``
    (numbers or tensors, broadcast together), reparameterised sampling, and the mean and mode at ``loc``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        batch_shape = () if is_number(loc) and is_number(scale) else tuple(self.loc.shape)
        super().__init__(batch_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return self._expanded(batch_shape, {"loc": 0, "scale": 0}, _instance)

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc
