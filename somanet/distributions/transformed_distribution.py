"""``TransformedDistribution``: the distribution of ``t_n(...t_1(x))`` for ``x`` from a base distribution."""
from ..autograd.tensor import Tensor
from . import constraints
from .distribution import Distribution
from .independent import Independent
from .transforms import ComposeTransform, Transform
from .utils import sum_rightmost

__all__ = ["TransformedDistribution"]


class TransformedDistribution(Distribution):
    """Push ``base_distribution`` through ``transforms`` (one transform or a list, applied in order).

    ``log_prob(y)`` inverts the transforms and subtracts each ``log |dy/dx|`` (the change of variables
    formula); ``sample``/``rsample`` transform draws of the base (``rsample`` needs a base with
    ``has_rsample``). A squashed Gaussian policy is
    ``TransformedDistribution(Normal(mu, sigma), [TanhTransform(cache_size=1)])``.
    """

    arg_constraints = {}

    def __init__(self, base_distribution, transforms, validate_args=None):
        if isinstance(transforms, Transform):
            transforms = [transforms]
        elif isinstance(transforms, (list, tuple)):
            transforms = list(transforms)
            for t in transforms:
                if not isinstance(t, Transform):
                    raise ValueError(f"TransformedDistribution: transforms must be Transform objects, got "
                                     f"{type(t).__name__}")
        else:
            raise ValueError(f"TransformedDistribution: transforms must be a Transform or a list of them, got "
                             f"{type(transforms).__name__}")
        self.transforms = transforms
        chain = ComposeTransform(transforms)
        base_shape = base_distribution.batch_shape + base_distribution.event_shape
        base_event_dim = len(base_distribution.event_shape)
        if len(base_shape) < chain.event_dim:
            raise ValueError(f"TransformedDistribution: the base distribution's shape {base_shape} has fewer "
                             f"dimensions than the transforms' event_dim {chain.event_dim}")
        shape = chain.forward_shape(base_shape)
        expanded = chain.inverse_shape(shape)
        if expanded != base_shape:
            base_distribution = base_distribution.expand(expanded[:len(expanded) - base_event_dim])
        if chain.event_dim > base_event_dim:
            base_distribution = Independent(base_distribution, chain.event_dim - base_event_dim)
        self.base_dist = base_distribution
        event_dim = max(chain.event_dim, base_event_dim)
        cut = len(shape) - event_dim
        super().__init__(shape[:cut], shape[cut:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = type(self).__new__(type(self)) if _instance is None else _instance
        batch_shape = tuple(batch_shape)
        shape = batch_shape + self._event_shape
        for t in reversed(self.transforms):
            shape = t.inverse_shape(shape)
        base_batch = shape[:len(shape) - len(self.base_dist.event_shape)]
        new.base_dist = self.base_dist.expand(base_batch)
        new.transforms = self.transforms
        Distribution.__init__(new, batch_shape, self._event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @constraints.dependent_property
    def support(self):
        if not self.transforms:
            return self.base_dist.support
        result = self.transforms[-1].codomain
        if len(self._event_shape) > result.event_dim:
            result = constraints.independent(result, len(self._event_shape) - result.event_dim)
        return result

    @property
    def has_rsample(self):
        return self.base_dist.has_rsample

    def sample(self, sample_shape=()):
        x = self.base_dist.sample(sample_shape)
        for t in self.transforms:
            x = t(x)
        return x

    def rsample(self, sample_shape=()):
        x = self.base_dist.rsample(sample_shape)
        for t in self.transforms:
            x = t(x)
        return x

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        event_dim = len(self._event_shape)
        log_prob = 0.0
        y = value
        for t in reversed(self.transforms):
            x = t.inv(y)
            log_prob = log_prob - sum_rightmost(t.log_abs_det_jacobian(x, y), event_dim - t.event_dim)
            y = x
        base = sum_rightmost(self.base_dist.log_prob(y), event_dim - len(self.base_dist.event_shape))
        return base + log_prob if isinstance(log_prob, Tensor) else base

    def _monotonize_cdf(self, value):
        sign = 1
        for t in self.transforms:
            sign = sign * t.sign
        if isinstance(sign, int) and sign == 1:
            return value
        return sign * (value - 0.5) + 0.5

    def cdf(self, value):
        for t in reversed(self.transforms):
            value = t.inv(value)
        if self._validate_args:
            self.base_dist._validate_sample(value, "cdf")
        return self._monotonize_cdf(self.base_dist.cdf(value))

    def icdf(self, value):
        value = self._monotonize_cdf(value)
        value = self.base_dist.icdf(value)
        for t in self.transforms:
            value = t(value)
        return value

    def __repr__(self):
        return f"TransformedDistribution({self.base_dist!r}, {self.transforms!r})"
