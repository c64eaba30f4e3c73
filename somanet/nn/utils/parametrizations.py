"""Weight parametrizations in the form of ``torch.nn.utils.parametrizations``: ``spectral_norm``.

A parametrization replaces a parameter by a function of a stored tensor. After
``parametrizations.spectral_norm(layer)``:

* the learnable tensor is ``layer.parametrizations.weight.original``;
* the spectral-norm state is the pair of buffers ``layer.parametrizations.weight[0]._u`` / ``._v``;
* reading ``layer.weight`` computes ``original / sigma`` (and, in training mode, first runs
  ``n_power_iterations`` steps of the power iteration, as each read does in PyTorch).

State-dict keys are PyTorch's: ``parametrizations.weight.original``, ``parametrizations.weight.0._u``
and ``parametrizations.weight.0._v``. Compared with the hook form (``nn.utils.spectral_norm``), the
power iteration updates ``u`` from ``v`` first, starts with 15 steps at registration, and a 1-d
weight is simply divided by its norm.
"""
import numpy as np

from ...autograd.tensor import Tensor
from ...ops.creation import randn as _randn
from ..modules.container import ModuleDict, ModuleList
from ..modules.module import Module, Parameter

__all__ = ["spectral_norm"]


def _normalize(vec, eps):
    return vec / max(float(np.sqrt(np.dot(vec, vec))), eps)


class _SpectralNorm(Module):
    """The spectral-norm parametrization: ``forward(weight) = weight / sigma(weight)``."""

    def __init__(self, weight, n_power_iterations=1, dim=0, eps=1e-12):
        super().__init__()
        ndim = weight.ndim
        if dim >= ndim or dim < -ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [-{ndim}, {ndim - 1}] but got {dim})")
        if n_power_iterations <= 0:
            raise ValueError(f"Expected n_power_iterations to be positive, but got n_power_iterations="
                             f"{n_power_iterations}")
        self.dim = dim if dim >= 0 else dim + ndim
        self.eps = eps
        self.n_power_iterations = n_power_iterations
        if ndim > 1:
            mat = self._reshape_weight_to_matrix(weight.array)
            h, w = mat.shape
            dtype = weight.array.dtype
            self.register_buffer("_u", Tensor(_normalize(_randn(h, dtype=dtype).array, eps).astype(dtype)))
            self.register_buffer("_v", Tensor(_normalize(_randn(w, dtype=dtype).array, eps).astype(dtype)))
            self._power_method(mat, 15)

    def _reshape_weight_to_matrix(self, weight):
        if self.dim != 0:
            order = [self.dim] + [d for d in range(weight.ndim) if d != self.dim]
            weight = weight.permute(*order) if isinstance(weight, Tensor) else np.transpose(weight, order)
        return weight.reshape(weight.shape[0], -1)

    def _power_method(self, mat, n_power_iterations):
        u, v = self._u.array, self._v.array
        for _ in range(n_power_iterations):
            u[...] = _normalize(mat @ v, self.eps)
            v[...] = _normalize(mat.T @ u, self.eps)
        self._u._version[0] += 1
        self._v._version[0] += 1

    def forward(self, weight):
        if weight.ndim == 1:
            norm = (weight * weight).sum().sqrt()
            return weight / norm.clamp(min=self.eps)
        mat = self._reshape_weight_to_matrix(weight)
        if self.training:
            self._power_method(mat.detach().array, self.n_power_iterations)
        u = self._u.detach().clone()
        v = self._v.detach().clone()
        sigma = (u * (mat @ v)).sum()
        return weight / sigma

    def right_inverse(self, value):
        return value


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor, applied in order to ``original``."""

    def __init__(self, modules, original):
        super().__init__(modules)
        self.original = original

    def forward(self):
        x = self.original
        for module in self:
            x = module(x)
        return x


def _parametrized_class(module):
    cls = type(module)
    if getattr(cls, "_somanet_parametrized", False):
        return cls
    return type(f"Parametrized{cls.__name__}", (cls,), {"_somanet_parametrized": True})


def _register(module, name, parametrization):
    weight = module._parameters.get(name)
    if not isinstance(weight, Parameter):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if getattr(type(module), "_somanet_parametrized", False) and name in module.parametrizations:
        raise ValueError(f"{name} of {type(module).__name__} is already parametrized; somanet supports one "
                         f"parametrization per tensor")
    del module._parameters[name]
    plist = ParametrizationList([parametrization], weight)
    if not getattr(type(module), "_somanet_parametrized", False):
        module.__class__ = _parametrized_class(module)
        module.parametrizations = ModuleDict()
    module.parametrizations[name] = plist
    setattr(type(module), name, property(lambda self, _n=name: self.parametrizations[_n]()))
    return module


def spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
    """Register a spectral-norm parametrization of ``module``'s ``name`` (PyTorch's
    ``nn.utils.parametrizations.spectral_norm``); returns ``module``.

    ``dim`` defaults to 1 for transposed convolutions (their output channels) and 0 otherwise.

    >>> from somanet import nn
    >>> layer = nn.utils.parametrizations.spectral_norm(nn.Linear(20, 40))
    >>> sorted(layer.state_dict())
    ['bias', 'parametrizations.weight.0._u', 'parametrizations.weight.0._v', 'parametrizations.weight.original']
    """
    from ..modules.conv import _ConvTranspose
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if dim is None:
        dim = 1 if isinstance(module, _ConvTranspose) else 0
    return _register(module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
