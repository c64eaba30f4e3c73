"""The Laplace (double exponential) distribution."""
import math

from .distribution import LocScale
from .utils import as_float_tensor, finfo, uniform

__all__ = ["Laplace"]


class Laplace(LocScale):
    """Laplace(loc, scale): density ``exp(-|x - loc| / scale) / (2 scale)``."""

    @property
    def variance(self):
        return 2.0 * self.scale * self.scale

    @property
    def stddev(self):
        return math.sqrt(2.0) * self.scale

    def rsample(self, sample_shape=()):
        # u uniform on (eps - 1, 1): x = loc - scale sign(u) log(1 - |u|) inverts the CDF.
        shape = self._extended_shape(sample_shape)
        u = uniform(shape, self.loc.dtype, finfo(self.loc.dtype).eps - 1.0, 1.0)
        return self.loc - self.scale * u.sign() * (-u.abs()).log1p()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = as_float_tensor(value, self.loc)
        return -(2.0 * self.scale).log() - (value - self.loc).abs() / self.scale

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value, "cdf")
        value = as_float_tensor(value, self.loc)
        d = value - self.loc
        return 0.5 - 0.5 * d.sign() * (-(d.abs()) / self.scale).expm1()

    def icdf(self, value):
        value = as_float_tensor(value, self.loc)
        term = value - 0.5
        return self.loc - self.scale * term.sign() * (-2.0 * term.abs()).log1p()

    def entropy(self):
        return 1.0 + (2.0 * self.scale).log()
