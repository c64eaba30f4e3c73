"""Gradient attributions: which input features (pixels, embedding entries) a model's output depends on.

Every method follows Captum's shape: build it on the model (``Saliency(model)``), then call
``attribute(inputs, target=...)`` with a batch of inputs ``(N, ...)`` and the output class to explain,
one int for the whole batch or one per sample. The model must return ``(N,)`` or ``(N, C)`` (``target``
may be left out for ``(N,)`` and ``(N, 1)``). The attributions come back as a tensor of the inputs' shape
(Grad-CAM: ``(N, 1, H, W)``), detached from the graph.

The model is run as it is: call ``model.eval()`` first so that dropout is off and batch norm uses its
running statistics (in training mode the samples of a batch influence each other's outputs).
"""
import math

import numpy as np

from ..autograd import engine
from ..autograd.grad_mode import enable_grad, no_grad
from ..autograd.tensor import Tensor
from ..nn.modules.module import Module

__all__ = ["Saliency", "SmoothGrad", "IntegratedGradients", "GradCAM", "GradCAMPlusPlus"]

_IG_METHODS = ("riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid", "gausslegendre")


# --------------------------------------------------------------------------- shared checks
def _check_model(who, model):
    if not callable(model):
        raise TypeError(f"{who}: model must be a Module or a callable, got {type(model).__name__}")
    return model


def _input_array(who, inputs):
    """The batch as a floating ndarray (a differentiable input), else a clear error."""
    if isinstance(inputs, Tensor):
        arr = inputs.array
    elif isinstance(inputs, np.ndarray):
        arr = inputs
    else:
        raise TypeError(f"{who}: inputs must be a Tensor (or ndarray) batch (N, ...), got {type(inputs).__name__}")
    if arr.dtype.kind != "f":
        raise TypeError(f"{who}: inputs must be floating point to be differentiated, got dtype {arr.dtype} "
                        f"(integer inputs such as token ids have no gradient; attribute to the embeddings instead)")
    if arr.ndim < 1 or arr.shape[0] == 0:
        raise ValueError(f"{who}: inputs must be a non-empty batch (N, ...), got shape {tuple(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{who}: inputs hold NaN or infinity; attributions need finite inputs")
    return arr


def _target_array(who, target, n):
    """``target`` as an int64 array (n,), or None."""
    if target is None:
        return None
    if isinstance(target, Tensor):
        target = target.array
    arr = np.asarray(target)
    if arr.dtype.kind not in "iu" or arr.ndim > 1:
        raise TypeError(f"{who}: target must be an int or a sequence of ints (one per sample), got {target!r}")
    if arr.ndim == 0:
        arr = np.full(n, int(arr), dtype=np.int64)
    if arr.shape != (n,):
        raise ValueError(f"{who}: target must give one class per sample ({n}), got {arr.shape[0]} values")
    return arr.astype(np.int64)


def _select(who, out, target, n):
    """The explained score of each sample, (N,), as part of the graph."""
    if not isinstance(out, Tensor):
        raise TypeError(f"{who}: the model must return a Tensor, got {type(out).__name__}")
    shape = tuple(out.shape)
    if not shape or shape[0] != n or len(shape) > 2:
        raise ValueError(f"{who}: the model must return (N,) or (N, C) scores for a batch of N={n}, got shape {shape}")
    if target is None:
        if len(shape) == 2 and shape[1] != 1:
            raise ValueError(f"{who}: the model returns {shape[1]} scores per sample; say which to explain with "
                             f"target=CLASS (an int, or one per sample)")
        return out.reshape(n)
    if len(shape) == 1:
        raise ValueError(f"{who}: the model returns one score per sample (shape {shape}); leave target out")
    bad = (target < 0) | (target >= shape[1])
    if bad.any():
        raise IndexError(f"{who}: target {int(target[np.argmax(bad)])} is out of range for the model's {shape[1]} "
                         f"outputs (expected 0 <= target < {shape[1]})")
    onehot = np.zeros(shape, dtype=out.array.dtype)
    onehot[np.arange(n), target] = 1
    return (out * Tensor(onehot)).sum(dim=1)


def _scores(who, model, arr, target):
    """Forward ``arr`` (no gradient) and return the explained scores as an (N,) ndarray."""
    with no_grad():
        out = model(Tensor(arr))
    return _select(who, out, target, arr.shape[0]).array


def _input_gradient(who, model, arr, target):
    """d score_i / d input_i for every sample of ``arr``: an ndarray of ``arr``'s shape."""
    x = Tensor(arr.copy(), requires_grad=True)
    with enable_grad():
        score = _select(who, model(x), target, arr.shape[0]).sum()
    if score.grad_fn is None:
        raise RuntimeError(f"{who}: the model's output does not depend on its input through differentiable "
                           f"operations (no gradient reaches the input)")
    (g,) = engine.grad(score, [x], allow_unused=True)
    if g is None:
        raise RuntimeError(f"{who}: the model's output does not depend on its input through differentiable "
                           f"operations (no gradient reaches the input)")
    return g.array


def _chunks(n_total, size):
    size = n_total if not size else int(size)
    for start in range(0, n_total, size):
        yield start, min(start + size, n_total)


def _check_batch_size(who, name, size):
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"{who}: {name} must be a positive int or None, got {size!r}")


def _result(arr, like):
    return Tensor(np.ascontiguousarray(arr, dtype=like.dtype))


# --------------------------------------------------------------------------- saliency
class Saliency:
    """Saliency maps (Simonyan et al., 2013): the gradient of the target score with respect to each input
    feature, by default its absolute value (Captum's ``Saliency``).

    >>> attr = Saliency(model.eval()).attribute(images, target=labels)   # (N, C, H, W)
    """

    def __init__(self, model):
        self.model = _check_model("Saliency", model)

    def attribute(self, inputs, target=None, abs=True):  # noqa: A002 - Captum's argument name
        """``d output[target] / d inputs`` (its absolute value when ``abs``), shape of ``inputs``."""
        arr = _input_array("Saliency", inputs)
        t = _target_array("Saliency", target, arr.shape[0])
        g = _input_gradient("Saliency", self.model, arr, t)
        return _result(np.abs(g) if abs else g, arr)


# --------------------------------------------------------------------------- SmoothGrad
class SmoothGrad:
    """SmoothGrad (Smilkov et al., 2017): input gradients averaged over noisy copies of each input,
    Captum's ``NoiseTunnel(Saliency(model))``.

    ``attribute(inputs, target=None, nt_type='smoothgrad', nt_samples=5, stdevs=0.15, abs=False,
    nt_samples_batch_size=None, generator=None, noise=None)``: each sample gets ``nt_samples`` copies
    ``x + sigma * eps`` with ``eps ~ N(0, 1)`` and ``sigma = stdevs * (x.max() - x.min())`` (the noise
    level as a fraction of the sample's value range, as in the paper; Captum's ``stdevs`` is absolute).
    ``nt_type``: 'smoothgrad' (mean of the gradients), 'smoothgrad_sq' (mean of their squares) or
    'vargrad' (their variance). ``abs`` takes the gradients' absolute value first. ``noise``
    (nt_samples, *inputs.shape) gives the standard normal draws ``eps`` directly (reproducible across
    frameworks); else they come from ``generator`` (a ``somanet.Generator``) or the global generator.
    """

    def __init__(self, model):
        self.model = _check_model("SmoothGrad", model)

    def attribute(self, inputs, target=None, nt_type="smoothgrad", nt_samples=5, stdevs=0.15, abs=False,  # noqa: A002
                  nt_samples_batch_size=None, generator=None, noise=None):
        """Smoothed gradients of ``output[target]``, shape of ``inputs`` (see the class docstring)."""
        who = "SmoothGrad"
        arr = _input_array(who, inputs)
        n = arr.shape[0]
        t = _target_array(who, target, n)
        if nt_type not in ("smoothgrad", "smoothgrad_sq", "vargrad"):
            raise ValueError(f"{who}: nt_type must be 'smoothgrad', 'smoothgrad_sq' or 'vargrad', got {nt_type!r}")
        if isinstance(nt_samples, bool) or not isinstance(nt_samples, int) or nt_samples < 1:
            raise ValueError(f"{who}: nt_samples must be a positive int, got {nt_samples!r}")
        if not (isinstance(stdevs, (int, float)) and 0 <= stdevs < math.inf):
            raise ValueError(f"{who}: stdevs must be a non-negative number (a fraction of the input range), "
                             f"got {stdevs!r}")
        _check_batch_size(who, "nt_samples_batch_size", nt_samples_batch_size)
        if noise is not None:
            eps = noise.array if isinstance(noise, Tensor) else np.asarray(noise)
            if eps.shape != (nt_samples,) + arr.shape:
                raise ValueError(f"{who}: noise must have shape (nt_samples, *inputs.shape) = "
                                 f"{(nt_samples,) + arr.shape}, got {tuple(eps.shape)}")
        else:
            from ..ops.creation import randn
            eps = randn(nt_samples, *arr.shape, generator=generator, dtype=arr.dtype).array
        flat = arr.reshape(n, -1)
        sigma = (stdevs * (flat.max(axis=1) - flat.min(axis=1))).astype(arr.dtype)
        sigma = sigma.reshape((1, n) + (1,) * (arr.ndim - 1))
        noisy = (arr[None] + sigma * eps.astype(arr.dtype)).reshape((nt_samples * n,) + arr.shape[1:])
        tt = None if t is None else np.tile(t, nt_samples)
        grads = np.empty_like(noisy)
        chunk = None if nt_samples_batch_size is None else nt_samples_batch_size * n
        for lo, hi in _chunks(len(noisy), chunk):
            grads[lo:hi] = _input_gradient(who, self.model, noisy[lo:hi], None if tt is None else tt[lo:hi])
        grads = grads.reshape((nt_samples,) + arr.shape)
        if abs:
            grads = np.abs(grads)
        if nt_type == "smoothgrad":
            out = grads.mean(axis=0)
        elif nt_type == "smoothgrad_sq":
            out = (grads * grads).mean(axis=0)
        else:
            out = grads.var(axis=0)
        return _result(out, arr)


# --------------------------------------------------------------------------- integrated gradients
def _ig_alphas(method, n_steps):
    """The points alpha_i in [0, 1] and weights w_i of Integrated Gradients' path integral rule."""
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n_steps)
        return 0.5 * (x + 1.0), 0.5 * w
    if method == "riemann_trapezoid":
        if n_steps < 2:
            raise ValueError("IntegratedGradients: method 'riemann_trapezoid' needs n_steps >= 2, got "
                             f"{n_steps}")
        alphas = np.linspace(0.0, 1.0, n_steps)
        w = np.full(n_steps, 1.0 / (n_steps - 1))
        w[[0, -1]] *= 0.5
        return alphas, w
    w = np.full(n_steps, 1.0 / n_steps)
    if method == "riemann_left":
        return np.linspace(0.0, 1.0 - 1.0 / n_steps, n_steps), w
    if method == "riemann_right":
        return np.linspace(1.0 / n_steps, 1.0, n_steps), w
    return np.linspace(0.5 / n_steps, 1.0 - 0.5 / n_steps, n_steps), w  # riemann_middle


class IntegratedGradients:
    """Integrated Gradients (Sundararajan et al., 2017), Captum's ``IntegratedGradients``:
    ``(x - x') * integral_0^1 dF(x' + a (x - x')) / dx da`` along the straight path from the baseline
    ``x'`` to the input, the integral taken with ``n_steps`` points of ``method``.

    ``attribute(inputs, baselines=None, target=None, n_steps=50, method='gausslegendre',
    internal_batch_size=None, return_convergence_delta=False)``. ``baselines``: None (zeros), a number,
    or an array/tensor broadcastable to ``inputs``. ``method``: 'riemann_right', 'riemann_left',
    'riemann_middle', 'riemann_trapezoid' or 'gausslegendre'. ``internal_batch_size`` bounds the samples
    per forward pass (default: all ``n_steps * N`` at once). With ``return_convergence_delta`` returns
    ``(attributions, delta)``, ``delta`` (N,) the completeness error ``sum(attributions) - (F(x) -
    F(x'))`` of each sample, which shrinks as ``n_steps`` grows.
    """

    def __init__(self, model):
        self.model = _check_model("IntegratedGradients", model)

    def attribute(self, inputs, baselines=None, target=None, n_steps=50, method="gausslegendre",
                  internal_batch_size=None, return_convergence_delta=False):
        """Attributions of ``output[target]``, shape of ``inputs`` (and the deltas; see the class)."""
        who = "IntegratedGradients"
        arr = _input_array(who, inputs)
        n = arr.shape[0]
        t = _target_array(who, target, n)
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
            raise ValueError(f"{who}: n_steps must be a positive int, got {n_steps!r}")
        if method not in _IG_METHODS:
            raise ValueError(f"{who}: method must be one of {', '.join(_IG_METHODS)}, got {method!r}")
        _check_batch_size(who, "internal_batch_size", internal_batch_size)
        base = self._baselines(who, baselines, arr)
        alphas, weights = _ig_alphas(method, n_steps)
        diff = arr - base
        shape = (n_steps, 1) + (1,) * (arr.ndim - 1)
        path = (base[None] + alphas.astype(arr.dtype).reshape(shape) * diff[None]).reshape((n_steps * n,) +
                                                                                           arr.shape[1:])
        tt = None if t is None else np.tile(t, n_steps)
        grads = np.empty_like(path)
        for lo, hi in _chunks(len(path), internal_batch_size):
            grads[lo:hi] = _input_gradient(who, self.model, path[lo:hi], None if tt is None else tt[lo:hi])
        avg = np.tensordot(weights, grads.reshape((n_steps,) + arr.shape).astype(np.float64), axes=(0, 0))
        attr = (avg * diff).astype(arr.dtype)
        result = _result(attr, arr)
        if not return_convergence_delta:
            return result
        gap = (_scores(who, self.model, arr, t).astype(np.float64)
               - _scores(who, self.model, np.ascontiguousarray(base), t).astype(np.float64))
        delta = attr.reshape(n, -1).astype(np.float64).sum(axis=1) - gap
        return result, Tensor(delta.astype(arr.dtype))

    @staticmethod
    def _baselines(who, baselines, arr):
        if baselines is None:
            return np.zeros_like(arr)
        if isinstance(baselines, (int, float)) and not isinstance(baselines, bool):
            return np.full_like(arr, baselines)
        b = baselines.array if isinstance(baselines, Tensor) else np.asarray(baselines)
        try:
            return np.broadcast_to(b, arr.shape).astype(arr.dtype)
        except ValueError:
            raise ValueError(f"{who}: baselines of shape {tuple(b.shape)} do not broadcast to the inputs' shape "
                             f"{tuple(arr.shape)}") from None


# --------------------------------------------------------------------------- Grad-CAM
class GradCAM:
    """Grad-CAM (Selvaraju et al., 2017) for convolutional networks.

    ``GradCAM(model, target_layer)``: ``target_layer`` is a module of ``model`` whose output is a
    feature map ``A`` (N, K, h, w), usually the last convolutional block. A forward hook keeps ``A``; the
    gradient of the target score with respect to it gives each channel's weight
    ``alpha_k = mean_ij dy/dA_kij`` and the map ``relu(sum_k alpha_k A_k)`` (Captum's
    ``LayerGradCam`` with ``relu_attributions=True``), upsampled bilinearly (``align_corners=False``)
    to the input's height and width.

    ``attribute(inputs, target=None, relu_attributions=True, upsample=True)`` -> (N, 1, H, W) (the
    layer's (N, 1, h, w) with ``upsample=False``).

    >>> cam = GradCAM(model.eval(), model.block3).attribute(images, target=labels)
    """

    _who = "GradCAM"

    def __init__(self, model, target_layer):
        who = self._who
        _check_model(who, model)
        if not isinstance(target_layer, Module):
            raise TypeError(f"{who}: target_layer must be a module of the model (e.g. model.layer4), got "
                            f"{type(target_layer).__name__}")
        if isinstance(model, Module) and not any(m is target_layer for m in model.modules()):
            raise ValueError(f"{who}: target_layer {type(target_layer).__name__} is not a submodule of the model "
                             f"({type(model).__name__})")
        self.model, self.target_layer = model, target_layer

    def _channel_weights(self, acts, grads):
        """alpha (N, K): the mean gradient over each channel's positions."""
        return grads.mean(axis=(2, 3))

    def attribute(self, inputs, target=None, relu_attributions=True, upsample=True):
        """The class activation map of ``output[target]`` (see the class docstring)."""
        who = self._who
        arr = _input_array(who, inputs)
        t = _target_array(who, target, arr.shape[0])
        acts, grads = self._layer_gradient(arr, t)
        alpha = self._channel_weights(acts, grads)
        cam = np.einsum("nk,nkhw->nhw", alpha, acts)[:, None]
        if relu_attributions:
            cam = np.maximum(cam, 0)
        cam = Tensor(np.ascontiguousarray(cam, dtype=arr.dtype))
        if upsample:
            if arr.ndim != 4:
                raise ValueError(f"{who}: upsampling to the input needs image inputs (N, C, H, W), got shape "
                                 f"{tuple(arr.shape)}; pass upsample=False for the layer's map")
            from ..ops.sampling import interpolate
            with no_grad():
                cam = interpolate(cam, size=tuple(arr.shape[2:]), mode="bilinear", align_corners=False)
        return cam

    def _layer_gradient(self, arr, target):
        who = self._who
        seen = []

        def keep_output(module, args, out):
            seen.append(out)

        handle = self.target_layer.register_forward_hook(keep_output)
        try:
            x = Tensor(arr.copy(), requires_grad=True)
            with enable_grad():
                score = _select(who, self.model(x), target, arr.shape[0]).sum()
        finally:
            handle.remove()
        layer = type(self.target_layer).__name__
        if not seen:
            raise RuntimeError(f"{who}: target_layer {layer} was not called during the model's forward pass")
        if len(seen) > 1:
            raise RuntimeError(f"{who}: target_layer {layer} was called {len(seen)} times in one forward pass; "
                               f"pick a layer that runs once")
        act = seen[0]
        if not isinstance(act, Tensor) or act.ndim != 4:
            shape = tuple(act.shape) if isinstance(act, Tensor) else type(act).__name__
            raise ValueError(f"{who}: target_layer {layer} gives {shape}; Grad-CAM needs a convolutional feature "
                             f"map (N, C, H, W): pick a convolutional layer or block")
        if act.shape[0] != arr.shape[0]:
            raise ValueError(f"{who}: target_layer {layer} gives a batch of {act.shape[0]} for {arr.shape[0]} inputs")
        (g,) = engine.grad(score, [act], allow_unused=True) if act.requires_grad else (None,)
        if g is None:
            raise RuntimeError(f"{who}: no gradient reaches target_layer {layer}: the explained output does not "
                               f"depend on its output")
        return act.array.astype(np.float64), g.array.astype(np.float64)


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++ (Chattopadhyay et al., 2018): Grad-CAM with pixel-wise channel weights
    ``alpha_k = sum_ij a_kij relu(g_kij)``, ``a_kij = g^2 / (2 g^2 + sum_ab A_kab g^3)`` (``g = dy/dA``,
    the closed form for an exponential of the score; zero where ``g`` is zero), which credits every
    occurrence of a class in the image rather than the largest.

    Same constructor and ``attribute`` as ``GradCAM``; (N, 1, H, W).
    """

    _who = "GradCAMPlusPlus"

    def _channel_weights(self, acts, grads):
        g2 = grads * grads
        denom = 2.0 * g2 + acts.sum(axis=(2, 3), keepdims=True) * g2 * grads
        safe = np.where(denom != 0, denom, 1.0)
        a = np.where((grads != 0) & (denom != 0), g2 / safe, 0.0)
        return (a * np.maximum(grads, 0)).sum(axis=(2, 3))
