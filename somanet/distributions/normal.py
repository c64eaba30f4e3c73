"""The normal (Gaussian) distribution."""
from ..ops.special import ndtr, ndtri
from .distribution import LocScale
from .utils import LOG_SQRT_2PI, as_float_tensor, standard_normal

__all__ = ["Normal"]


class Normal(LocScale):
    """Normal(loc, scale): mean ``loc`` and standard deviation ``scale`` (numbers or tensors, broadcast).

    >>> m = Normal(somanet.tensor([0.0]), somanet.tensor([1.0]))
    >>> m.sample().shape
    (1,)
    """

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


