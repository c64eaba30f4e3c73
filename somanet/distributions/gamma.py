"""The Gamma, Dirichlet and Beta distributions (reparameterised through implicit gradients)."""
import numpy as np

from ..autograd.tensor import Tensor
from ..ops.elementwise import where
from ..ops.index import one_hot as _one_hot
from ..ops.shape import stack
from ..ops.special import digamma, lgamma
from . import constraints
from ._functions import dirichlet_sample, standard_gamma
from .distribution import Distribution
from .utils import as_float_tensor, broadcast_all, finfo, is_number

__all__ = ["Gamma", "Dirichlet", "Beta"]


def xlogy(x, y):
    """``x * log(y)``, 0 where ``x == 0`` (gradient too)."""
    prod = x * y.log()
    zero = (x == 0) if isinstance(x, Tensor) else None
    if zero is None:
        return prod if x != 0 else prod * 0
    if not zero.array.any():
        return prod
    return where(zero, 0.0, prod)


class Gamma(Distribution):
    """Gamma(concentration, rate): density ``rate^a x^(a-1) exp(-rate x) / Gamma(a)`` with
    ``a = concentration``; mean ``a / rate``. ``rsample`` is differentiable in both parameters."""

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, concentration, rate, validate_args=None):
        self.concentration, self.rate = broadcast_all(concentration, rate)
        scalar = is_number(concentration) and is_number(rate)
        super().__init__(() if scalar else tuple(self.concentration.shape), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return self._expanded(batch_shape, {"concentration": 0, "rate": 0}, _instance)

    @property
    def mean(self):
        return self.concentration / self.rate

    @property
    def mode(self):
        return ((self.concentration - 1) / self.rate).clamp(min=0)

    @property
    def variance(self):
        return self.concentration / (self.rate * self.rate)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        conc = self.concentration
        if tuple(conc.shape) != shape:
            conc = conc.expand(shape)
        rate = self.rate if tuple(self.rate.shape) == shape else self.rate.expand(shape)
        value = standard_gamma(conc) / rate
        # Keep draws positive (the division can underflow); the gradient is unaffected.
        np.maximum(value.array, finfo(value.dtype).tiny, out=value.array)
        return value

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = as_float_tensor(value, self.rate)
        c, r = self.concentration, self.rate
        return xlogy(c, r) + xlogy(c - 1, value) - r * value - lgamma(c)

    def entropy(self):
        c = self.concentration
        return c - self.rate.log() + lgamma(c) + (1.0 - c) * digamma(c)


class Dirichlet(Distribution):
    """Dirichlet(concentration) over the probability simplex of the last dimension."""

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, concentration, validate_args=None):
        if not isinstance(concentration, Tensor) or concentration.ndim < 1:
            raise ValueError("Dirichlet: concentration must be a tensor with at least one dimension")
        self.concentration = concentration
        super().__init__(tuple(concentration.shape[:-1]), tuple(concentration.shape[-1:]),
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return self._expanded(batch_shape, {"concentration": 1}, _instance)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        conc = self.concentration
        if tuple(conc.shape) != shape:
            conc = conc.expand(shape)
        return dirichlet_sample(conc)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = as_float_tensor(value, self.concentration)
        c = self.concentration
        return xlogy(c - 1.0, value).sum(-1) + lgamma(c.sum(-1)) - lgamma(c).sum(-1)

    @property
    def mean(self):
        return self.concentration / self.concentration.sum(-1, keepdim=True)

    @property
    def mode(self):
        # The interior mode (a - 1) / sum(a - 1) where it exists; where every concentration is below 1 the
        # density peaks at the vertices and, as in PyTorch, the first vertex is returned.
        c = self.concentration
        cm1 = (c - 1).clamp(min=0.0)
        total = cm1.sum(-1, keepdim=True)
        corner = (c.array < 1).all(-1)
        if not corner.any():
            return cm1 / total
        corner = Tensor(corner[..., None])
        mode = cm1 / where(corner, 1.0, total)  # no 0 / 0 in the rows replaced below
        first = _one_hot(Tensor(np.zeros(corner.shape[:-1], dtype=np.int64)), c.shape[-1]).to(c.dtype)
        return where(corner, first, mode)

    @property
    def variance(self):
        c = self.concentration
        c0 = c.sum(-1, keepdim=True)
        return c * (c0 - c) / (c0 * c0 * (c0 + 1))

    def entropy(self):
        c = self.concentration
        k = c.shape[-1]
        a0 = c.sum(-1)
        return lgamma(c).sum(-1) - lgamma(a0) - (k - a0) * digamma(a0) - ((c - 1.0) * digamma(c)).sum(-1)


class Beta(Distribution):
    """Beta(concentration1, concentration0) on [0, 1]: density ``x^(a-1) (1-x)^(b-1) / B(a, b)`` with
    ``a = concentration1`` and ``b = concentration0``. Built on a two-class Dirichlet."""

    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, concentration1, concentration0, validate_args=None):
        c1, c0 = broadcast_all(concentration1, concentration0)
        # The parameters are checked here (so that errors name Beta), not again by the Dirichlet.
        self._dirichlet = Dirichlet(stack([c1, c0], -1), validate_args=False)
        super().__init__(self._dirichlet.batch_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = type(self).__new__(type(self)) if _instance is None else _instance
        new._dirichlet = self._dirichlet.expand(batch_shape)
        Distribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def concentration1(self):
        return self._dirichlet.concentration[..., 0]

    @property
    def concentration0(self):
        return self._dirichlet.concentration[..., 1]

    @property
    def mean(self):
        return self.concentration1 / (self.concentration1 + self.concentration0)

    @property
    def mode(self):
        return self._dirichlet.mode[..., 0]

    @property
    def variance(self):
        total = self.concentration1 + self.concentration0
        return self.concentration1 * self.concentration0 / (total * total * (total + 1))

    def rsample(self, sample_shape=()):
        return self._dirichlet.rsample(sample_shape)[..., 0]

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = as_float_tensor(value, self._dirichlet.concentration)
        return self._dirichlet.log_prob(stack([value, 1.0 - value], -1))

    def entropy(self):
        return self._dirichlet.entropy()
