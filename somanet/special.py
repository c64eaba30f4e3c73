"""``somanet.special``: special functions under ``torch.special``'s names, each differentiable.

>>> import somanet
>>> somanet.special.gammaln(somanet.tensor([1.0, 4.0]))
tensor([0.    , 1.7918])
"""

from .ops.elementwise import erf, sigmoid as expit  # noqa: F401
from .ops.reduce import log_softmax, logsumexp, softmax  # noqa: F401
from .ops.special import digamma, lgamma as gammaln, ndtr, ndtri, polygamma  # noqa: F401

psi = digamma

__all__ = ["gammaln", "digamma", "psi", "polygamma", "ndtr", "ndtri", "erf", "expit", "logsumexp", "softmax",
           "log_softmax"]
