"""``kl_divergence(p, q)``: KL(p || q) = E_p[log p - log q] in closed form, dispatched on the pair of
types; ``register_kl`` adds formulas for new pairs."""
import math

import numpy as np

from ..autograd.tensor import Tensor
from ..ops.elementwise import where
from ..ops.special import digamma, lgamma
from .bernoulli import Bernoulli
from .categorical import Categorical, OneHotCategorical
from .gamma import Beta, Dirichlet, Gamma
from .independent import Independent
from .laplace import Laplace
from .multivariate_normal import MultivariateNormal, batch_mahalanobis
from ._functions import diagonal, solve_triangular
from .normal import Normal
from .uniform import Uniform
from .utils import softplus, sum_rightmost

__all__ = ["kl_divergence", "register_kl"]

_REGISTRY = {}
_DISPATCH_CACHE = {}


def register_kl(type_p, type_q):
    """Decorator registering ``fn(p, q)`` as the KL divergence of a ``type_p`` from a ``type_q``::

        @register_kl(MyDist, Normal)
        def kl_mine_normal(p, q):
            ...

    Subclasses inherit the formula; the most specific registered pair wins.
    """
    for t in (type_p, type_q):
        if not (isinstance(t, type) and hasattr(t, "log_prob")):
            raise TypeError(f"register_kl: expected distribution classes, got {t!r}")

    def decorator(fn):
        _REGISTRY[type_p, type_q] = fn
        _DISPATCH_CACHE.clear()
        return fn

    return decorator


def _dispatch(type_p, type_q):
    """The registered function for the most specific pair of base classes (by MRO distance)."""
    best = None
    for (sp, sq), fn in _REGISTRY.items():
        if issubclass(type_p, sp) and issubclass(type_q, sq):
            rank = (type_p.__mro__.index(sp) + type_q.__mro__.index(sq), type_p.__mro__.index(sp))
            if best is None or rank < best[0]:
                best = (rank, fn)
    return None if best is None else best[1]


def kl_divergence(p, q):
    """KL(p || q), one value per batch element (``batch_shape`` of the two, broadcast).

    Raises ``NotImplementedError`` for a pair of types with no registered formula.
    """
    key = (type(p), type(q))
    fn = _DISPATCH_CACHE.get(key)
    if fn is None:
        fn = _dispatch(*key)
        if fn is None:
            raise NotImplementedError(f"kl_divergence: no closed form is registered for KL({type(p).__name__} || "
                                      f"{type(q).__name__}); register one with @register_kl("
                                      f"{type(p).__name__}, {type(q).__name__})")
        _DISPATCH_CACHE[key] = fn
    return fn(p, q)


def _infinite_where(mask, value):
    """``value`` with +inf where the bool array ``mask`` holds (gradient 0 there)."""
    if not np.any(mask):
        return value
    return where(Tensor(np.broadcast_to(mask, value.shape)), math.inf, value)


def _zero_where(mask, value):
    if not np.any(mask):
        return value
    return where(Tensor(np.broadcast_to(mask, value.shape)), 0.0, value)


@register_kl(Normal, Normal)
def _kl_normal_normal(p, q):
    var_ratio = (p.scale / q.scale) ** 2
    t1 = ((p.loc - q.loc) / q.scale) ** 2
    return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p, q):
    pp, qp = p.probs, q.probs
    t1 = pp * (softplus(-q.logits) - softplus(-p.logits))
    t1 = _zero_where(pp.array == 0, _infinite_where(qp.array == 0, t1))
    t2 = (1 - pp) * (softplus(q.logits) - softplus(p.logits))
    t2 = _zero_where(pp.array == 1, _infinite_where(qp.array == 1, t2))
    return t1 + t2


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p, q):
    t = p.probs * (p.logits - q.logits)
    t = _zero_where(p.probs.array == 0, _infinite_where(q.probs.array == 0, t))
    return t.sum(-1)


@register_kl(OneHotCategorical, OneHotCategorical)
def _kl_onehot_onehot(p, q):
    return _kl_categorical_categorical(p._categorical, q._categorical)


@register_kl(MultivariateNormal, MultivariateNormal)
def _kl_mvn_mvn(p, q):
    if p.event_shape != q.event_shape:
        raise ValueError(f"kl_divergence: the two MultivariateNormals have different event shapes, "
                         f"{p.event_shape} and {q.event_shape}")
    n = p.event_shape[0]
    lp, lq = p._unbroadcasted_scale_tril, q._unbroadcasted_scale_tril
    half_log_det = diagonal(lq).log().sum(-1) - diagonal(lp).log().sum(-1)
    # tr(Sigma_q^-1 Sigma_p) = |Lq^-1 Lp|_F^2
    m = solve_triangular(lq, lp)
    trace = (m * m).sum((-2, -1))
    maha = batch_mahalanobis(lq, q.loc - p.loc)
    kl = half_log_det + 0.5 * (trace + maha - n)
    batch = tuple(np.broadcast_shapes(p.batch_shape, q.batch_shape))
    return kl if tuple(kl.shape) == batch else kl.expand(batch)


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p, q):
    result = ((q.high - q.low) / (p.high - p.low)).log()
    outside = (q.low.array > p.low.array) | (q.high.array < p.high.array)
    return _infinite_where(outside, result)


@register_kl(Beta, Beta)
def _kl_beta_beta(p, q):
    p1, p0 = p.concentration1, p.concentration0
    q1, q0 = q.concentration1, q.concentration0
    sum_p, sum_q = p1 + p0, q1 + q0
    t1 = lgamma(q1) + lgamma(q0) + lgamma(sum_p)
    t2 = lgamma(p1) + lgamma(p0) + lgamma(sum_q)
    t3 = (p1 - q1) * digamma(p1)
    t4 = (p0 - q0) * digamma(p0)
    t5 = (sum_q - sum_p) * digamma(sum_p)
    return t1 - t2 + t3 + t4 + t5


@register_kl(Gamma, Gamma)
def _kl_gamma_gamma(p, q):
    t1 = q.concentration * (p.rate / q.rate).log()
    t2 = lgamma(q.concentration) - lgamma(p.concentration)
    t3 = (p.concentration - q.concentration) * digamma(p.concentration)
    t4 = (q.rate - p.rate) * (p.concentration / p.rate)
    return t1 + t2 + t3 + t4


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet_dirichlet(p, q):
    cp, cq = p.concentration, q.concentration
    sum_p = cp.sum(-1)
    t1 = lgamma(sum_p) - lgamma(cq.sum(-1))
    t2 = (lgamma(cp) - lgamma(cq)).sum(-1)
    t3 = cp - cq
    t4 = digamma(cp) - digamma(sum_p).unsqueeze(-1)
    return t1 - t2 + (t3 * t4).sum(-1)


@register_kl(Laplace, Laplace)
def _kl_laplace_laplace(p, q):
    scale_ratio = p.scale / q.scale
    loc_abs_diff = (p.loc - q.loc).abs()
    t1 = -scale_ratio.log()
    t2 = loc_abs_diff / q.scale
    t3 = scale_ratio * (-loc_abs_diff / p.scale).exp()
    return t1 + t2 + t3 - 1


@register_kl(Independent, Independent)
def _kl_independent_independent(p, q):
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
        raise NotImplementedError(f"kl_divergence: Independent distributions with different "
                                  f"reinterpreted_batch_ndims ({p.reinterpreted_batch_ndims} and "
                                  f"{q.reinterpreted_batch_ndims}) are not supported")
    return sum_rightmost(kl_divergence(p.base_dist, q.base_dist), p.reinterpreted_batch_ndims)
