"""``autocast``: run the ops of a region in low precision where that is safe, in float32 where it is not.

Which op runs in which type follows PyTorch's CPU autocast lists (``torch.autocast("cpu")``):

* lower precision: matrix products and convolutions (``matmul``, ``linear``, ``einsum``, ``conv*``,
  ``conv_transpose*``), attention (``scaled_dot_product_attention`` and the projections of
  ``MultiheadAttention``), ``prelu``, the LSTM and the plain (tanh/ReLU) RNN. Their floating inputs are
  cast to the autocast dtype (float64 inputs are left alone, as in PyTorch).
* float32: the losses (cross-entropy, NLL, MSE, L1, smooth L1, Huber, KL divergence, binary
  cross-entropy with and without logits), ``prod``, ``cdist``, the matrix inverses and decompositions,
  reflection and replication padding, 3-d pooling, max-unpooling and local response normalisation. Their
  low-precision inputs are cast to float32.
* everything else runs in the type of its inputs: an activation, a softmax or a sum of bfloat16 values
  stays bfloat16, and an op mixing bfloat16 with float32 (``cat``, ``stack``, ``add``...) gives float32,
  the widest type. The normalisations (layer, group, batch, RMS), the GRU and the LSTM and GRU cells
  follow their first input's type even with float32 weights, as PyTorch's kernels do.

Parameters stay float32: a cast inside the region is an op of the graph, so their gradients come back as
float32. Casts of leaf tensors that require grad (the weights) are cached for the region, as in PyTorch.

A region swaps ``Function.apply`` for a dispatching version (as anomaly mode does) and float16 regions put
the plain one back when the last ends, so a program without low precision pays nothing. Once bfloat16 is
used the dispatch stays (its tensors outlive regions), checking each op's inputs for bfloat16. See
``_lowp`` for how low-precision values are held and computed.
"""
import functools
import threading
import warnings

import numpy as np

from ..autograd import anomaly
from ..autograd import grad_mode
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from . import _lowp
from ._lowp import BF16, F16, F32, F64, BFloat16Tensor, convert, emulated, tag

_plain = anomaly._plain_apply.__func__
_anomaly_apply = anomaly._anomaly_apply
_anomaly_state = anomaly._state

DEFAULT, LOWER, FP32, FOLLOW = 0, 1, 2, 3

# Op classes by module, per policy (PyTorch's CPU lists, mapped to somanet's ops).
_LOWER_OPS = {
    "somanet.ops.linalg": ("MatMul", "Linear", "Einsum"),
    "somanet.ops.conv": ("ConvNd", "ConvTransposeNd"),
    "somanet.ops.attention": ("ScaledDotProductAttention", "HeadProjection", "MergeHeadsProjection",
                              "AppendKeyValue", "AttentionPool"),
    "somanet.ops.activation": ("Prelu",),
    "somanet.ops.recurrent": ("LSTMSequence", "RNNSequence", "RNNCellStep"),
}
_FP32_OPS = {
    "somanet.ops.loss": ("_Pointwise", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "CrossEntropy",
                         "SoftCrossEntropy", "NLLLoss", "BinaryCrossEntropy", "BinaryCrossEntropyWithLogits", "KLDiv"),
    "somanet.ops.reduce": ("Prod",),
    "somanet.ops.matrix": ("Cdist", "Inverse", "Cholesky", "Pinverse", "Det", "LogDet", "SlogDet"),
    "somanet.ops.shape": ("IndexPad",),
    "somanet.ops.pool": ("MaxUnpool",),
    "somanet.ops.norm": ("LocalResponseNorm",),
}
# Ops whose result takes their first input's type whatever the type of the others (float32 weights, states):
# the normalisations, as PyTorch's mixed-type kernels, and the GRU and the LSTM and GRU cells, which PyTorch
# leaves off its lists (they run in their input's type) although they take float32 weights.
_FOLLOW_OPS = {"somanet.ops.norm": ("LayerNorm", "GroupNorm", "BatchNorm", "RMSNorm"),
               "somanet.ops.recurrent": ("LSTMCellStep", "GRUCellStep", "GRUSequence")}


def _pool_policy(position):
    """3-d pooling runs in float32 (PyTorch's list has the 3-d forms only); ``position`` is the index of
    the op's ``spatial`` argument."""

    def policy(inputs, params):
        spatial = inputs[position] if len(inputs) > position else params.get("spatial")
        return FP32 if spatial == 3 else DEFAULT

    return policy


_CONDITIONAL_OPS = {"somanet.ops.pool": {"MaxPool": _pool_policy(6), "AvgPool": _pool_policy(6),
                                         "AdaptiveAvgPool": _pool_policy(2), "AdaptiveMaxPool": _pool_policy(2)}}

_by_name = None
_policies = {}


def _names():
    global _by_name
    if _by_name is None:
        table = {}
        for policy, groups in ((LOWER, _LOWER_OPS), (FP32, _FP32_OPS), (FOLLOW, _FOLLOW_OPS)):
            for module, names in groups.items():
                for name in names:
                    table[(module, name)] = policy
        for module, entries in _CONDITIONAL_OPS.items():
            for name, fn in entries.items():
                table[(module, name)] = fn
        _by_name = table
    return _by_name


def policy_of(cls):
    """The autocast policy of op class ``cls``: the first class in its MRO that a list names."""
    policy = _policies.get(cls)
    if policy is None:
        table = _names()
        policy = DEFAULT
        for klass in cls.__mro__:
            found = table.get((klass.__module__, klass.__name__))
            if found is not None:
                policy = found
                break
        _policies[cls] = policy
    return policy


# --------------------------------------------------------------------------- per-thread state
class _State(threading.local):
    dtype = None  # the autocast dtype inside an enabled CPU region of this thread, else None
    cache_enabled = True
    depth = 0  # nesting of autocast regions (enabled or not), to clear the cache on leaving the outermost
    cache = None


_state = _State()
_install_lock = threading.RLock()


def _cast_inputs(inputs, target, inner, lower):
    """``inputs`` with floating tensors cast to ``target``: all but float64 ones for a lower-precision op,
    the low-precision ones for a float32 op. Leaf tensors that require grad are cast once per region."""
    out = None
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            continue
        if type(x) is BFloat16Tensor:
            d = BF16
        else:
            d = x.array.dtype
            if d is F64 or (d.kind != "f" and d is not BF16):
                continue
        if d is target:
            continue
        if not lower and d is not F16 and d is not BF16:
            continue
        if lower and x.requires_grad and x.grad_fn is None and _state.cache_enabled:
            cast = _cached_cast(x, target, inner)
        else:
            cast = convert(x, target, share=not lower, inner=inner)
        if out is None:
            out = list(inputs)
        out[i] = cast
    return inputs if out is None else tuple(out)


def _cached_cast(x, target, inner):
    cache = _state.cache
    if cache is None:
        cache = _state.cache = {}
    enabled = grad_mode._state.enabled
    key = (id(x), target, enabled)
    hit = cache.get(key)
    if hit is not None and hit[0] is x and hit[1] == x._version[0]:
        return hit[2]
    cast = convert(x, target, inner=inner)
    cache[key] = (x, x._version[0], cast)
    return cast


def _tag_outputs(out):
    if type(out) is tuple:
        for o in out:
            if isinstance(o, Tensor) and o.array.dtype is F32:
                tag(o)
    elif out.array.dtype is F32:
        tag(out)
    return out


def _make_dispatch(inner):
    """``Function.apply`` while low precision is in use: autocast's casts, then the op through ``inner`` (the
    plain apply, or anomaly mode's checking one), emulated when an input holds low-precision values."""

    def dispatch(cls, *inputs, **params):
        # Outside autocast (no region in any thread, or none in this one) only bfloat16 inputs need anything:
        # the common case is one loop and a call.
        target = _state.dtype if _regions else None
        if target is None and cls is not _Cast:
            for x in inputs:
                kind = type(x)
                if kind is BFloat16Tensor or kind is Tensor and x.array.dtype is BF16:
                    break
            else:
                return inner(cls, *inputs, **params)
        return _dispatch_low(cls, target, inputs, params, inner)

    return dispatch


_dispatch = _make_dispatch(_plain)
_dispatch_checking = _make_dispatch(_anomaly_apply)


def _dispatch_low(cls, target, inputs, params, inner):
    if cls is _Cast:
        return _cast_op(inner, inputs, params)
    policy = DEFAULT
    if target is not None:
        policy = _policies.get(cls)
        if policy is None:
            policy = policy_of(cls)
        if type(policy) is not int:
            policy = policy(inputs, params)
        if policy == LOWER:
            inputs = _cast_inputs(inputs, target, inner, True)
        elif policy == FP32:
            inputs = _cast_inputs(inputs, F32, inner, False)
    low = None
    wide = explicit = False
    conv = None
    in_dtypes = None
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor):
            if type(x) is BFloat16Tensor:
                d = BF16
            else:
                d = x.array.dtype
                if d is BF16 or (d is F16 and target is not None):
                    conv = (conv or ()) + (i,)
                else:
                    if d.kind == "f":
                        wide = True
                    continue
            if in_dtypes is None:
                in_dtypes = [None] * len(inputs)
            in_dtypes[i] = d
            if low is None:
                low = d
            elif low is not d:
                wide = True
        elif type(x) is np.ndarray:
            d = x.dtype
            if d is BF16 or (d is F16 and target is not None):
                conv = (conv or ()) + (i,)
        elif isinstance(x, np.dtype):
            explicit = True  # an op told its result type (sum(dtype=...)): its output is not rounded
    if in_dtypes is None and conv is None:
        return inner(cls, *inputs, **params)
    if cls.is_view and conv is None:
        out = inner(cls, *inputs, **params)
        return _tag_outputs(out) if low is BF16 and not wide else out
    out_dtype = None if wide else low
    if policy == FOLLOW:
        out_dtype = in_dtypes[0] if in_dtypes else None
    if explicit or params.get("dtype") is not None:
        out_dtype = None
    info = (conv, out_dtype, tuple(in_dtypes) if in_dtypes else ())
    out = inner(emulated(cls), *inputs, _amp=info, **params)
    return _tag_outputs(out) if out_dtype is BF16 else out


def _cast_op(inner, inputs, params):
    x = inputs[0]
    dtype = inputs[1] if len(inputs) > 1 else params.get("dtype")
    dtype = np.dtype(dtype) if dtype is not None else dtype
    if isinstance(x, Tensor) and (dtype is BF16 or type(x) is BFloat16Tensor or x.array.dtype is BF16):
        return convert(x, dtype, inner=inner)
    return inner(_Cast, *inputs, **params)


_Cast = None
_regions = 0  # autocast regions active in all threads
_sticky = False  # set once bfloat16 is used: its tensors can outlive any region


def install(sticky=False):
    """Put the dispatching ``Function.apply`` in place. With ``sticky`` (bfloat16 is in use: its tensors
    may outlive a region, and ops on them must keep rounding) it stays for the rest of the process;
    otherwise it goes when the last autocast region ends."""
    global _Cast, _sticky
    with _install_lock:
        if sticky:
            _sticky = True
        if anomaly._outer_apply is not None:
            return
        from ..ops.shape import Cast

        _Cast = Cast
        anomaly._outer_apply = (classmethod(_dispatch), classmethod(_dispatch_checking))
        Function.apply = anomaly._outer_apply[bool(_anomaly_state["enabled"])]


def _uninstall_if_idle():
    with _install_lock:
        if _regions or _sticky or anomaly._outer_apply is None:
            return
        anomaly._outer_apply = None
        Function.apply = classmethod(_anomaly_apply) if _anomaly_state["enabled"] else anomaly._plain_apply


def _enter_region():
    global _regions
    with _install_lock:
        _regions += 1
    install()


def _leave_region():
    global _regions
    with _install_lock:
        _regions -= 1
    _uninstall_if_idle()


# --------------------------------------------------------------------------- the public API
_SUPPORTED = {"cpu": ("bfloat16", "float16")}


def _dtype_of(dtype):
    if dtype is None:
        return None
    if isinstance(dtype, str):
        dtype = {"bf16": "bfloat16", "half": "float16", "fp16": "float16"}.get(dtype, dtype)
        if dtype == "bfloat16":
            return _lowp.require_bfloat16("autocast(dtype=bfloat16)")
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"autocast: unknown dtype {dtype!r}") from None


class autocast:  # noqa: N801 - PyTorch's spelling
    """Run the ops of a region in mixed precision: ``with somanet.autocast("cpu", dtype=somanet.bfloat16):``.

    ``device_type`` is ``"cpu"`` (``"cuda"`` is accepted and disabled with a warning, as PyTorch does on a
    machine without a GPU). ``dtype`` is ``somanet.bfloat16`` (the CPU default) or ``somanet.float16``.
    ``enabled=False`` turns autocast off for a nested region. ``cache_enabled`` keeps the low-precision
    copies of the weights for the whole region (recast on every use when False). Works as a decorator too.
    """

    def __init__(self, device_type="cpu", dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"autocast: expected device_type to be a str, got {type(device_type).__name__}")
        self.device = device_type
        self.fast_dtype = _dtype_of(dtype)
        self._enabled = bool(enabled)
        self._cache_enabled = True if cache_enabled is None else bool(cache_enabled)
        if device_type != "cpu":
            if device_type in ("cuda", "mps", "xpu", "hpu", "xla", "mtia"):
                if self._enabled:
                    warnings.warn(f"autocast: device_type '{device_type}' is not available (somanet computes on "
                                  f"the CPU); disabling autocast", UserWarning, stacklevel=2)
                self._enabled = False
                return
            raise RuntimeError(f"autocast: unsupported device_type {device_type!r}; somanet supports 'cpu'")
        if self.fast_dtype is None:
            self.fast_dtype = _lowp.require_bfloat16("autocast('cpu') (its default dtype is bfloat16)")
        if self.fast_dtype is not BF16 and self.fast_dtype is not F16:
            if self._enabled:
                warnings.warn(f"autocast: CPU autocast supports bfloat16 and float16, got {self.fast_dtype}; "
                              f"disabling autocast", UserWarning, stacklevel=2)
            self._enabled = False

    def __enter__(self):
        st = _state
        self._prev = (st.dtype, st.cache_enabled)
        self._counted = self.device == "cpu" and self._enabled
        if self._counted:
            _enter_region()
            if self.fast_dtype is BF16:
                install(sticky=True)
            st.dtype = self.fast_dtype
            st.cache_enabled = self._cache_enabled
        elif self.device == "cpu":
            st.dtype = None
        st.depth += 1
        return self

    def __exit__(self, *exc):
        st = _state
        st.depth -= 1
        if st.depth == 0:
            st.cache = None
        st.dtype, st.cache_enabled = self._prev
        if self._counted:
            _leave_region()
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self._enabled, self._cache_enabled):
                return fn(*args, **kwargs)

        return wrapper


def lowered_operand(x, product):
    """For ops made of a matrix product and an addition (``addmm``, ``baddbmm``, ``addbmm``, ``addmv``):
    under autocast the added tensor ``x`` is cast to the product's low-precision type, as PyTorch casts
    every input of these ops."""
    target = _state.dtype
    if target is None or not isinstance(x, Tensor) or not isinstance(product, Tensor):
        return x
    low = BF16 if type(product) is BFloat16Tensor else product.array.dtype
    if low is not target or type(x) is BFloat16Tensor or x.array.dtype is not F32:
        return x
    return convert(x, target, inner=_anomaly_apply if _anomaly_state["enabled"] else _plain)


def is_autocast_enabled(device_type="cpu"):
    """Whether autocast is on for ``device_type`` in this thread (PyTorch's ``torch.is_autocast_enabled``)."""
    return device_type == "cpu" and _state.dtype is not None


def get_autocast_dtype(device_type="cpu"):
    """The dtype autocast uses for ``device_type``: the active region's, else the default (bfloat16)."""
    if device_type != "cpu":
        return F16
    d = _state.dtype
    if d is None:
        d = BF16 if _lowp.load_bfloat16() is not None else F16
    return _lowp.BFLOAT16 if d is BF16 else d


def is_autocast_available(device_type):
    return device_type == "cpu"


def clear_autocast_cache():
    _state.cache = None


def custom_fwd(fwd=None, *, device_type="cpu", cast_inputs=None):
    """Decorator for the ``forward`` of a PyTorch-style custom ``Function``: with ``cast_inputs`` its
    floating tensor arguments are cast to that dtype and it runs with autocast off."""
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)
    cast = _dtype_of(cast_inputs)

    @functools.wraps(fwd)
    def wrapper(*args, **kwargs):
        if cast is None or _state.dtype is None:
            return fwd(*args, **kwargs)
        args = tuple(_cast_arg(a, cast) for a in args)
        kwargs = {k: _cast_arg(v, cast) for k, v in kwargs.items()}
        with autocast(device_type, enabled=False):
            return fwd(*args, **kwargs)

    return wrapper


def custom_bwd(bwd=None, *, device_type="cpu"):
    """Decorator for the ``backward`` of a custom ``Function`` (accepted for PyTorch code)."""
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)
    return bwd


def _cast_arg(a, dtype):
    if isinstance(a, Tensor) and (a.array.dtype.kind == "f" or type(a) is BFloat16Tensor):
        return convert(a, dtype)
    return a
