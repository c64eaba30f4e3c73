"""The Bernoulli distribution over {0, 1}."""
import numpy as np

from ..autograd.tensor import Tensor
from ..ops.creation import arange
from ..random import numpy_rng
from . import constraints
from .distribution import Distribution
from .utils import (as_float_tensor, broadcast_all, is_number, lazy_property, logits_to_probs, probs_to_logits,
                    softplus)

__all__ = ["Bernoulli"]


class Bernoulli(Distribution):
    """Bernoulli(probs) or Bernoulli(logits=...): 1 with probability ``probs = sigmoid(logits)``.

    Exactly one of ``probs`` and ``logits`` is given; the other is computed on first use.
    """

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.boolean
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Bernoulli: give exactly one of probs and logits")
        if probs is not None:
            scalar = is_number(probs)
            (self.probs,) = broadcast_all(probs)
            self._param = self.probs
        else:
            scalar = is_number(logits)
            (self.logits,) = broadcast_all(logits)
            self._param = self.logits
        batch_shape = () if scalar else tuple(self._param.shape)
        super().__init__(batch_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._expanded(batch_shape, {"probs": 0, "logits": 0}, _instance)
        new._param = new.__dict__["probs"] if "probs" in self.__dict__ else new.__dict__["logits"]
        return new

    @lazy_property
    def logits(self):
        return probs_to_logits(self.probs, is_binary=True)

    @lazy_property
    def probs(self):
        return logits_to_probs(self.logits, is_binary=True)

    @property
    def param_shape(self):
        return tuple(self._param.shape)

    @property
    def mean(self):
        return self.probs

    @property
    def mode(self):
        p = self.probs.array
        mode = (p >= 0.5).astype(p.dtype)
        mode[p == 0.5] = np.nan
        return Tensor(mode)

    @property
    def variance(self):
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        p = np.broadcast_to(self.probs.array, shape)
        draws = numpy_rng().random(shape, dtype=np.float64 if p.dtype == np.float64 else np.float32) < p
        return Tensor(draws.astype(p.dtype))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, as_float_tensor(value, self._param))
        # log p(v) = v * logits - softplus(logits), the negative binary cross-entropy with logits.
        return logits * value - softplus(logits)

    def entropy(self):
        logits = self.logits
        return softplus(logits) - logits * self.probs

    def enumerate_support(self, expand=True):
        values = arange(2, dtype=self._param.dtype).reshape((-1,) + (1,) * len(self._batch_shape))
        if expand:
            values = values.expand((-1,) + self._batch_shape)
        return values

