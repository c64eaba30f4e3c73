"""Probability distributions with PyTorch's ``torch.distributions`` interface.

Each distribution has ``batch_shape`` and ``event_shape``, ``sample``/``rsample`` (reparameterised,
differentiable in the parameters), ``log_prob``, ``entropy`` and its moments; ``kl_divergence(p, q)``
gives closed-form KL divergences. Draws come from somanet's global generator, so ``somanet.manual_seed``
makes them reproducible.

>>> from somanet.distributions import Normal, kl_divergence
>>> p = Normal(somanet.zeros(3), somanet.ones(3))
>>> p.log_prob(p.rsample()).shape
(3,)
"""
from . import constraints, transforms
from .bernoulli import Bernoulli
from .categorical import Categorical, OneHotCategorical
from .distribution import Distribution
from .gamma import Beta, Dirichlet, Gamma
from .independent import Independent
from .kl import kl_divergence, register_kl
from .laplace import Laplace
from .multivariate_normal import MultivariateNormal
from .normal import Normal
from .transformed_distribution import TransformedDistribution
from .transforms import (AffineTransform, ComposeTransform, ExpTransform, SigmoidTransform, TanhTransform,
                         Transform)
from .uniform import Uniform

__all__ = [
    "AffineTransform", "Bernoulli", "Beta", "Categorical", "ComposeTransform", "Dirichlet", "Distribution",
    "ExpTransform", "Gamma", "Independent", "Laplace", "MultivariateNormal", "Normal", "OneHotCategorical",
    "SigmoidTransform", "TanhTransform", "Transform", "TransformedDistribution", "Uniform", "constraints",
    "kl_divergence", "register_kl", "transforms",
]
