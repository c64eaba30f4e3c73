"""The multivariate normal distribution."""
import math

import numpy as np

from ..autograd.tensor import Tensor
from ..ops.creation import eye
from ..ops.matrix import cholesky
from . import constraints
from ._functions import diagonal, solve_triangular
from .distribution import Distribution
from .utils import as_float_tensor, lazy_property, standard_normal

__all__ = ["MultivariateNormal"]


def batch_mahalanobis(scale_tril, diff):
    """``|L^-1 d|^2`` over the last dimension, for ``L`` of shape ``(*, n, n)`` and ``d`` of shape
    ``(*, n)`` (batch dimensions broadcast)."""
    solved = solve_triangular(scale_tril, diff.unsqueeze(-1))
    return (solved * solved).sum((-2, -1))


def precision_to_scale_tril(precision):
    """The lower Cholesky factor of ``precision^-1`` without forming the inverse: with ``J`` the
    reversal permutation, ``J P J = Lf Lf^T`` gives ``P = U U^T`` with ``U = J Lf J`` upper triangular,
    and ``P^-1 = U^-T U^-1`` where ``U^-T`` is lower triangular."""
    lf = cholesky(precision.flip((-2, -1)))
    u_t = lf.flip((-2, -1)).mT  # U^T, lower triangular
    ident = eye(precision.shape[-1], dtype=precision.dtype)
    return solve_triangular(u_t, ident)


class MultivariateNormal(Distribution):
    """MultivariateNormal(loc, covariance_matrix=None, precision_matrix=None, scale_tril=None).

    ``loc`` has shape ``(*, n)``; exactly one of the covariance matrix, the precision matrix or the
    lower Cholesky factor of the covariance (``scale_tril``) is given, of shape ``(*, n, n)``. Batch
    dimensions broadcast. ``rsample`` draws ``loc + L eps``.
    """

    arg_constraints = {"loc": constraints.real_vector, "covariance_matrix": constraints.positive_definite,
                       "precision_matrix": constraints.positive_definite,
                       "scale_tril": constraints.lower_cholesky}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, covariance_matrix=None, precision_matrix=None, scale_tril=None, validate_args=None):
        if not isinstance(loc, Tensor) or loc.ndim < 1:
            raise ValueError("MultivariateNormal: loc must be a tensor with at least one dimension")
        given = [(name, m) for name, m in (("covariance_matrix", covariance_matrix),
                                           ("precision_matrix", precision_matrix), ("scale_tril", scale_tril))
                 if m is not None]
        if len(given) != 1:
            raise ValueError("MultivariateNormal: give exactly one of covariance_matrix, precision_matrix and "
                             "scale_tril")
        name, matrix = given[0]
        if not isinstance(matrix, Tensor) or matrix.ndim < 2:
            raise ValueError(f"MultivariateNormal: {name} must be a tensor of at least two dimensions, "
                             f"(*, n, n)")
        n = loc.shape[-1]
        if tuple(matrix.shape[-2:]) != (n, n):
            raise ValueError(f"MultivariateNormal: {name} must have shape (*, {n}, {n}) to match loc of shape "
                             f"{tuple(loc.shape)}, got {tuple(matrix.shape)}")
        try:
            batch_shape = tuple(np.broadcast_shapes(tuple(matrix.shape[:-2]), tuple(loc.shape[:-1])))
        except ValueError:
            raise ValueError(f"MultivariateNormal: the batch shapes of loc {tuple(loc.shape)} and {name} "
                             f"{tuple(matrix.shape)} do not broadcast") from None
        setattr(self, name, matrix.expand(batch_shape + (n, n)))
        self.loc = loc.expand(batch_shape + (n,))
        super().__init__(batch_shape, (n,), validate_args=validate_args)
        if name == "scale_tril":
            self._unbroadcasted_scale_tril = matrix
        elif name == "covariance_matrix":
            self._unbroadcasted_scale_tril = cholesky(matrix)
        else:
            self._unbroadcasted_scale_tril = precision_to_scale_tril(matrix)

    def expand(self, batch_shape, _instance=None):
        new = self._expanded(batch_shape, {"loc": 1, "covariance_matrix": 2, "precision_matrix": 2,
                                           "scale_tril": 2}, _instance)
        new._unbroadcasted_scale_tril = self._unbroadcasted_scale_tril
        return new

    @lazy_property
    def scale_tril(self):
        low = self._unbroadcasted_scale_tril
        return low.expand(self._batch_shape + self._event_shape * 2)

    @lazy_property
    def covariance_matrix(self):
        low = self._unbroadcasted_scale_tril
        return (low @ low.mT).expand(self._batch_shape + self._event_shape * 2)

    @lazy_property
    def precision_matrix(self):
        low = self._unbroadcasted_scale_tril
        inv = solve_triangular(low, eye(low.shape[-1], dtype=low.dtype))
        return (inv.mT @ inv).expand(self._batch_shape + self._event_shape * 2)

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        low = self._unbroadcasted_scale_tril
        return (low * low).sum(-1).expand(self._batch_shape + self._event_shape)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        eps = standard_normal(shape, self.loc.dtype)
        return self.loc + (self._unbroadcasted_scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    def _half_log_det(self):
        return diagonal(self._unbroadcasted_scale_tril).log().sum(-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = as_float_tensor(value, self.loc)
        diff = value - self.loc
        m = batch_mahalanobis(self._unbroadcasted_scale_tril, diff)
        n = self._event_shape[0]
        return -0.5 * (n * math.log(2 * math.pi) + m) - self._half_log_det()

    def entropy(self):
        n = self._event_shape[0]
        h = 0.5 * n * (1.0 + math.log(2 * math.pi)) + self._half_log_det()
        return h if tuple(h.shape) == self._batch_shape else h.expand(self._batch_shape)
