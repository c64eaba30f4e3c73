"""The normal (Gaussian) distribution."""
from ..ops.special import ndtr, ndtri
from . import constraints
from .distribution import Distribution
from .utils import LOG_SQRT_2PI, as_float_tensor, broadcast_all, is_number, standard_normal

__all__ = ["Normal"]


class Normal(Distribution):
    """Normal(loc, scale): mean ``loc`` and standard deviation ``scale`` (numbers or tensors, broadcast).

    >>> m = Normal(somanet.tensor([0.0]), somanet.tensor([1.0]))
    >>> m.sample().shape
    (1,)
    """

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

    @property
    def stddev(self):
        return self.scale

    @property
    def variance(self):
        return self.scale * self.scale

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        eps = standard_normal(shape, self.loc.dtype)
        return self.loc + eps * self.scale

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = as_float_tensor(value, self.loc)
        z = (value - self.loc) / self.scale
        return -0.5 * z * z - self.scale.log() - LOG_SQRT_2PI

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value, "cdf")
        value = as_float_tensor(value, self.loc)
        return ndtr((value - self.loc) / self.scale)

    def icdf(self, value):
        value = as_float_tensor(value, self.loc)
        return self.loc + self.scale * ndtri(value)

    def entropy(self):
        return 0.5 + LOG_SQRT_2PI + self.scale.log()


