"""Spectral normalisation of a layer's weight (Miyato et al., 2018), as ``torch.nn.utils.spectral_norm``.

The weight ``W`` is reshaped into a matrix ``W_mat`` (``dim`` first, everything else flattened) and
divided by an estimate of its largest singular value ``sigma = u^T W_mat v``. The singular vectors
``u`` and ``v`` are estimated by power iteration, one step (``n_power_iterations``) per forward pass in
training mode, warm-started from the previous pass; in evaluation mode the stored ``u`` and ``v`` are
used as they are. The iteration runs without gradient: only ``sigma``'s own dependence on ``W`` is
differentiated (``u`` and ``v`` are constants), as in the paper and in PyTorch.

After ``spectral_norm(module)``:

* the learnable tensor is the parameter ``weight_orig``;
* ``weight_u`` (``(rows,)``) and ``weight_v`` (``(cols,)``) are buffers, saved in the ``state_dict``
  (so a checkpoint continues the power iteration where it stopped);
* ``module.weight`` is a plain tensor recomputed before every forward pass (not in the ``state_dict``).

``remove_spectral_norm(module)`` folds the current normalised weight back into a plain parameter.
"""
import numpy as np

from ...autograd import grad_mode
from ...autograd.tensor import Tensor
from ...ops.creation import randn as _randn
from ..modules.module import Parameter

__all__ = ["spectral_norm", "remove_spectral_norm", "SpectralNorm"]


def _normalize(vec, eps):
    """``vec / max(||vec||, eps)`` (PyTorch's ``F.normalize``)."""
    norm = np.sqrt(np.dot(vec, vec))
    return vec / max(norm, eps)


class SpectralNorm:
    """The forward pre-hook that recomputes ``module.<name>`` from ``<name>_orig``, ``<name>_u`` and
    ``<name>_v``. Use ``spectral_norm()`` to install it."""

    def __init__(self, name="weight", n_power_iterations=1, dim=0, eps=1e-12):
        if n_power_iterations <= 0:
            raise ValueError(f"spectral_norm(): expected n_power_iterations to be positive, got "
                             f"{n_power_iterations}")
        self.name = name
        self.dim = dim
        self.n_power_iterations = n_power_iterations
        self.eps = eps

    def reshape_weight_to_matrix(self, weight):
        """``weight`` (a Tensor or array) as a 2-d ``(size(dim), -1)`` matrix."""
        if self.dim != 0:
            order = [self.dim] + [d for d in range(weight.ndim) if d != self.dim]
            weight = weight.permute(*order) if isinstance(weight, Tensor) else np.transpose(weight, order)
        return weight.reshape(weight.shape[0], -1)

    def _power_iteration(self, module):
        w = self.reshape_weight_to_matrix(getattr(module, self.name + "_orig").array)
        u_buf = getattr(module, self.name + "_u")
        v_buf = getattr(module, self.name + "_v")
        u, v = u_buf.array, v_buf.array
        for _ in range(self.n_power_iterations):
            # In place, as PyTorch does (``out=``): the buffers always hold the latest estimate.
            v[...] = _normalize(w.T @ u, self.eps)
            u[...] = _normalize(w @ v, self.eps)
        u_buf._version[0] += 1
        v_buf._version[0] += 1

    def compute_weight(self, module, do_power_iteration):
        """The normalised weight ``W / sigma``; runs the power iteration first if asked."""
        if do_power_iteration:
            self._power_iteration(module)
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u").detach().clone()
        v = getattr(module, self.name + "_v").detach().clone()
        weight_mat = self.reshape_weight_to_matrix(weight)
        sigma = (u * (weight_mat @ v)).sum()
        return weight / sigma

    def __call__(self, module, inputs):
        setattr(module, self.name, self.compute_weight(module, do_power_iteration=module.training))

    def remove(self, module):
        with grad_mode.no_grad():
            weight = self.compute_weight(module, do_power_iteration=False)
        delattr(module, self.name)
        delattr(module, self.name + "_u")
        delattr(module, self.name + "_v")
        delattr(module, self.name + "_orig")
        module.register_parameter(self.name, Parameter(weight.detach()))

    @staticmethod
    def apply(module, name, n_power_iterations, dim, eps):
        for hook, _ in module._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm) and hook.name == name:
                raise RuntimeError(f"Cannot register two spectral_norm hooks on the same parameter {name}")
        fn = SpectralNorm(name, n_power_iterations, dim, eps)
        weight = module._parameters.get(name)
        if not isinstance(weight, Parameter):
            raise ValueError(f"spectral_norm(): {type(module).__name__} has no parameter named {name!r}")
        mat = fn.reshape_weight_to_matrix(weight.array)
        h, w = mat.shape
        # Random starting vectors from somanet's default generator (seeded runs are reproducible).
        dtype = weight.array.dtype
        u = _normalize(_randn(h, dtype=dtype).array, eps).astype(dtype)
        v = _normalize(_randn(w, dtype=dtype).array, eps).astype(dtype)
        delattr(module, name)
        module.register_parameter(name + "_orig", weight)
        object.__setattr__(module, name, weight.detach())
        module.register_buffer(name + "_u", Tensor(u))
        module.register_buffer(name + "_v", Tensor(v))
        module.register_forward_pre_hook(fn)
        return fn


def _default_dim(module):
    from ..modules.conv import _ConvTranspose
    # A transposed convolution's weight is (in, out, ...): its output channels lie along dim 1.
    return 1 if isinstance(module, _ConvTranspose) else 0


def spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
    """Apply spectral normalisation to ``module``'s parameter ``name``; returns ``module``.

    Args:
        module: the layer (``Linear``, ``Conv2d``, ``ConvTranspose2d``, ``Embedding``, ...).
        name: the parameter to normalise.
        n_power_iterations: power-iteration steps per training-mode forward pass.
        eps: the floor of the norms in the iteration's normalisations.
        dim: the dimension of the output channels; ``None`` means 0, or 1 for transposed convolutions.

    >>> from somanet import nn
    >>> layer = nn.utils.spectral_norm(nn.Linear(20, 40))
    >>> sorted(layer.state_dict())
    ['bias', 'weight_orig', 'weight_u', 'weight_v']
    """
    if dim is None:
        dim = _default_dim(module)
    SpectralNorm.apply(module, name, n_power_iterations, dim, eps)
    return module


def remove_spectral_norm(module, name="weight"):
    """Undo ``spectral_norm``: ``name`` becomes a plain parameter holding the current normalised weight."""
    for key, (hook, _) in list(module._forward_pre_hooks.items()):
        if isinstance(hook, SpectralNorm) and hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"spectral_norm of '{name}' not found in {module}")
