"""Categorical distributions over ``{0, ..., K-1}``: as integer labels and as one-hot vectors."""
import numpy as np

from ..autograd.tensor import Tensor
from ..ops.creation import arange, eye, full
from ..ops.index import one_hot as _one_hot
from ..random import numpy_rng
from . import constraints
from .distribution import Distribution
from .utils import finfo, lazy_property, logits_to_probs, probs_to_logits, size_tuple

__all__ = ["Categorical", "OneHotCategorical"]


class Categorical(Distribution):
    """Categorical(probs) or Categorical(logits=...) over the last dimension of the parameter.

    ``probs`` need not sum to 1 (they are normalised) and ``logits`` are unnormalised log-probabilities
    (normalised by ``logsumexp``); the attributes ``.probs`` and ``.logits`` hold the normalised values.
    Draws are int64 class indices.
    """

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Categorical: give exactly one of probs and logits")
        if probs is not None:
            if not isinstance(probs, Tensor) or probs.ndim < 1:
                raise ValueError("Categorical: probs must be a tensor with at least one dimension")
            self.probs = probs / probs.sum(-1, keepdim=True)
            self._param = self.probs
        else:
            if not isinstance(logits, Tensor) or logits.ndim < 1:
                raise ValueError("Categorical: logits must be a tensor with at least one dimension")
            self.logits = logits - logits.logsumexp(-1, keepdim=True)
            self._param = self.logits
        self._num_events = self._param.shape[-1]
        super().__init__(tuple(self._param.shape[:-1]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._expanded(batch_shape, {"probs": 1, "logits": 1}, _instance)
        new._param = new.__dict__["probs"] if "probs" in self.__dict__ else new.__dict__["logits"]
        new._num_events = self._num_events
        return new

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self._num_events - 1)

    @lazy_property
    def logits(self):
        return probs_to_logits(self.probs)

    @lazy_property
    def probs(self):
        return logits_to_probs(self.logits)

    @property
    def param_shape(self):
        return tuple(self._param.shape)

    @property
    def mean(self):
        return full(self._extended_shape(), float("nan"), dtype=self.probs.dtype)

    @property
    def variance(self):
        return full(self._extended_shape(), float("nan"), dtype=self.probs.dtype)

    @property
    def mode(self):
        return self.probs.argmax(-1)

    def sample(self, sample_shape=()):
        sample_shape = size_tuple(sample_shape)
        k = self._num_events
        p = self.probs.array.reshape(-1, k).astype(np.float64)
        rows = p.shape[0]
        n = int(np.prod(sample_shape, dtype=np.int64))
        cdf = np.cumsum(p / p.sum(-1, keepdims=True), axis=-1)
        cdf[:, -1] = 1.0
        # One search over all rows at once: row b's CDF is shifted into [b, b + 1].
        offsets = np.arange(rows, dtype=np.float64)
        u = numpy_rng().random((n, rows)) + offsets
        idx = np.searchsorted((cdf + offsets[:, None]).ravel(), u.ravel(), side="right").reshape(n, rows)
        idx -= np.arange(rows) * k
        np.clip(idx, 0, k - 1, out=idx)
        return Tensor(idx.astype(np.int64).reshape(self._extended_shape(sample_shape)))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        index = value.array if isinstance(value, Tensor) else np.asarray(value)
        index = index.astype(np.int64)[..., None]
        logits = self.logits
        shape = np.broadcast_shapes(index.shape, tuple(logits.shape))
        index = np.broadcast_to(index, shape[:-1] + (1,))
        if tuple(logits.shape) != shape:
            logits = logits.expand(shape)
        return logits.gather(-1, Tensor(index)).squeeze(-1)

    def entropy(self):
        logits = self.logits.clamp(min=finfo(self.logits.dtype).min)
        return -(logits * self.probs).sum(-1)

    def enumerate_support(self, expand=True):
        values = arange(self._num_events).reshape((-1,) + (1,) * len(self._batch_shape))
        if expand:
            values = values.expand((-1,) + self._batch_shape)
        return values


class OneHotCategorical(Distribution):
    """A categorical distribution whose draws are one-hot vectors of length K (``event_shape = (K,)``)."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.one_hot
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        self._categorical = Categorical(probs, logits)
        batch_shape = self._categorical.batch_shape
        event_shape = self._categorical.param_shape[-1:]
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = type(self).__new__(type(self)) if _instance is None else _instance
        new._categorical = self._categorical.expand(batch_shape)
        Distribution.__init__(new, batch_shape, self._event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def _param(self):
        return self._categorical._param

    @property
    def probs(self):
        return self._categorical.probs

    @property
    def logits(self):
        return self._categorical.logits

    @property
    def param_shape(self):
        return self._categorical.param_shape

    @property
    def mean(self):
        return self._categorical.probs

    @property
    def mode(self):
        probs = self._categorical.probs
        return _one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)

    @property
    def variance(self):
        p = self._categorical.probs
        return p * (1 - p)

    def sample(self, sample_shape=()):
        probs = self._categorical.probs
        indices = self._categorical.sample(sample_shape)
        return _one_hot(indices, self._categorical._num_events).to(probs.dtype)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return self._categorical.log_prob(value.argmax(-1))

    def entropy(self):
        return self._categorical.entropy()

    def enumerate_support(self, expand=True):
        n = self._event_shape[0]
        values = eye(n, dtype=self._param.dtype).reshape((n,) + (1,) * len(self._batch_shape) + (n,))
        if expand:
            values = values.expand((n,) + self._batch_shape + (n,))
        return values
