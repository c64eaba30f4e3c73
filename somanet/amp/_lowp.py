"""Low-precision values on a CPU without low-precision arithmetic.

NumPy has float16 but no BLAS for it (a float16 matrix product runs about a thousand times slower than a
float32 one), and ml_dtypes' bfloat16 is a "V"-kind dtype that most NumPy-level code does not treat as a
float. So low-precision math here is emulated the way a GPU does it: the inputs hold values of the low
type, the op computes in float32, and the result is rounded to the low type. The rounding is what makes
the numbers those of low precision; the float32 arithmetic in between is the accumulator a GPU uses too.

How the two low types are held:

* float16 tensors are real ``float16`` arrays (NumPy's float16 is an ordinary float dtype). An emulated
  op converts them to float32 on the way in and rounds its float32 result back to float16.
* bfloat16 tensors are ``float32`` arrays whose values are all bfloat16 values, held by a ``Tensor``
  subclass whose ``dtype`` is ``somanet.bfloat16``. Every op sees plain float32 arrays (so every check and
  fast path of the op library works unchanged); an emulated op rounds its result to bfloat16 in place.
  Creation functions given ``dtype=somanet.bfloat16`` make such tensors too (``bfloat16_tensor``); a tensor
  holding an ml_dtypes bfloat16 array (``Tensor(array)``) is accepted as an op input and converted.

Gradients follow the same rule: an emulated op rounds the gradients it passes to bfloat16 inputs (float16
ones are rounded by the engine, which casts each gradient to its input's dtype), as the backward kernels
of the low type do.
"""
import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor, _wrap

ndarray = np.ndarray
F16 = np.dtype(np.float16)
F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)


#: ml_dtypes' bfloat16 dtype once ``load_bfloat16()`` has imported ml_dtypes (which takes a while, so work in
#: float16 or float32 never does); until then a placeholder dtype that no array has.
BF16 = np.dtype([("bfloat16 not loaded", np.uint16)])
#: ``somanet.bfloat16`` (a ``BFloat16DType``), once loaded.
BFLOAT16 = None


def load_bfloat16():
    """Import ml_dtypes and make bfloat16 known here; returns ``somanet.bfloat16``, or None without ml_dtypes."""
    global BF16, BFLOAT16
    if BFLOAT16 is None:
        try:
            import ml_dtypes
        except ImportError:
            return None
        from . import autocast_mode

        BF16 = autocast_mode.BF16 = np.dtype(ml_dtypes.bfloat16)
        BFLOAT16 = BFloat16DType()
    return BFLOAT16


class BFloat16DType:
    """The ``dtype`` of a bfloat16 tensor: equal to ``somanet.bfloat16`` (ml_dtypes' dtype, which NumPy
    gets from it wherever it takes a dtype) but of kind ``"f"``, so that the op library's floating-point
    checks accept it, as PyTorch counts bfloat16 among the floating types."""

    __slots__ = ()
    kind = "f"
    itemsize = 2
    name = "bfloat16"

    @property
    def dtype(self):
        # NumPy takes the dtype from this attribute: np.dtype(t.dtype), arr.astype(t.dtype), np.zeros(n, t.dtype).
        # Every conversion of somanet.bfloat16 to a NumPy dtype passes here: bfloat16 is being used.
        if not _in_use:
            bfloat16_in_use()
        return BF16

    @property
    def type(self):
        return BF16.type

    def __getattr__(self, name):
        return getattr(BF16, name)

    def __eq__(self, other):
        if other is self or other is BF16:
            return True
        if isinstance(other, (np.dtype, str, type)):
            try:
                return np.dtype(other) is BF16
            except TypeError:
                return False
        return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        return hash(BF16)

    def __repr__(self):
        return repr(BF16)

    def __str__(self):
        return "bfloat16"

    def __reduce__(self):
        return (_bfloat16_dtype, ())


def _bfloat16_dtype():
    return BFLOAT16


_in_use = False


def bfloat16_in_use():
    """Note that bfloat16 values exist in this process: ops keep going through the low-precision dispatch
    (see ``autocast_mode.install``), since bfloat16 tensors outlive any autocast region."""
    global _in_use
    if not _in_use:
        from .autocast_mode import install

        install(sticky=True)
        _in_use = True


def require_bfloat16(what):
    """ml_dtypes' bfloat16 dtype, loaded now; a clear error without ml_dtypes."""
    if load_bfloat16() is None:
        raise RuntimeError(f"{what} needs the ml_dtypes package for the bfloat16 dtype: pip install 'somanet[bf16]'")
    return BF16


def round_bf16(a, inplace=False):
    """``a`` (a float32 array) rounded to the nearest bfloat16 values, ties to even, kept as float32.

    Integer arithmetic on the bits: add half of the dropped 16 bits (plus the round-to-even bit) and clear
    them. Infinities stay infinite, values above bfloat16's largest round to infinity, and NumPy's NaNs
    (quiet NaNs, whose top mantissa bit is set, so the addition cannot carry into the exponent) stay NaN.
    """
    if not inplace or not a.flags.writeable:
        a = np.array(a, dtype=F32, copy=True)
    if a.ndim == 0:
        a = a.reshape(1)
        _round_bits(a.view(np.uint32))
        return a.reshape(())
    _round_bits(a.view(np.uint32))
    return a


def _round_bits(u):
    b = u >> 16
    b &= 1
    b += 0x7FFF
    u += b
    u &= 0xFFFF0000


def to_bfloat16_values(a):
    """Any float array as float32 holding bfloat16 values (a new array)."""
    if a.dtype == BF16:
        return a.astype(F32)
    return round_bf16(a.astype(F32, copy=True), inplace=True)


# --------------------------------------------------------------------------- the bfloat16 tensor
class BFloat16Tensor(Tensor):
    """A tensor of dtype ``somanet.bfloat16``: its ``array`` is float32 holding bfloat16 values.

    Ops read the float32 array; ``dtype``, ``element_size()`` and the conversions (``float()``, ``to()``,
    ``half()``, ``double()``, ``type()``) speak bfloat16. ``numpy()`` gives the float32 array (every
    bfloat16 value is a float32 value, so nothing is lost).
    """

    __slots__ = ()

    @property
    def dtype(self):
        return BFLOAT16

    def element_size(self):
        return 2

    @property
    def itemsize(self):
        return 2

    def is_floating_point(self):
        return True

    @property
    def data(self):
        return tag(_wrap(self.array, False, None, 0))

    @data.setter
    def data(self, value):
        Tensor.data.fset(self, value)

    def detach(self):
        return tag(Tensor.detach(self))

    def to(self, *args, dtype=None, device=None, copy=False, non_blocking=False, memory_format=None):
        from ..ops.shape import to_args

        dtype, device = to_args(args, dtype, device)
        if dtype is not None:
            from .. import backend

            dtype = backend.to_dtype(dtype)
            if dtype != BF16:
                out = convert(self, dtype)
                return out.to(device=device) if device is not None else out
        return Tensor.to(self, device=device, copy=copy)

    def type(self, dtype=None, non_blocking=False, **kwargs):
        if dtype is None:
            return "somanet.BFloat16Tensor"
        return Tensor.type(self, dtype) if isinstance(dtype, str) else self.to(dtype)

    def float(self, memory_format=None):
        return convert(self, F32)

    def double(self, memory_format=None):
        return convert(self, F64)

    def half(self, memory_format=None):
        return convert(self, F16)

    def bfloat16(self, memory_format=None):
        return self

    def type_as(self, other):
        return self.to(other.dtype)

    def __repr__(self):
        text = Tensor.__repr__(self)
        for mark in (", grad_fn=", ", requires_grad="):
            i = text.rfind(mark)
            if i >= 0:
                return text[:i] + ", dtype=somanet.bfloat16" + text[i:]
        return text[:-1] + ", dtype=somanet.bfloat16)"

    __str__ = __repr__


def tag(t):
    """Mark ``t`` (a tensor whose float32 array holds bfloat16 values) as a bfloat16 tensor."""
    if not _in_use:
        bfloat16_in_use()
    t.__class__ = BFloat16Tensor
    return t


def bfloat16_tensor(arr):
    """A new ``BFloat16Tensor`` holding the values of ``arr`` (any float array, ml_dtypes' bfloat16 too)."""
    return tag(_wrap(to_bfloat16_values(arr), False, None, 0))


# --------------------------------------------------------------------------- conversions
class LowCast(Function):
    """A conversion between float dtypes in which bfloat16 means float32 holding bfloat16 values.

    ``dtype`` is the target dtype; ``src_bf16`` says the source holds bfloat16 values. The gradient goes
    back converted to the source's dtype by the engine (and rounded to bfloat16 here when the source was
    bfloat16). With ``share`` a conversion that changes no value (bfloat16 to float32) returns the source
    array itself: for inputs an op consumes at once.
    """

    def forward(ctx, a, dtype, src_bf16=False, share=False):
        ctx.src_bf16 = src_bf16
        if a.dtype is BF16:  # an ml_dtypes array: its float32 copy is exact
            a = a.astype(F32)
            share = True
        if dtype is BF16:
            if src_bf16:
                return a if share else a.copy()
            return round_bf16(a.astype(F32), inplace=True)
        if src_bf16 and dtype is F32:
            return a if share else a.copy()
        return a.astype(dtype)

    def backward(ctx, grad):
        if ctx.src_bf16 and grad.dtype is F32:
            return round_bf16(grad)
        return grad

    def grad_graph(ctx, grad):
        if ctx.src_bf16 and grad.array.dtype is F32:
            return LowCast.apply(grad, BF16)  # the same rounding, as a differentiable cast
        return grad


def convert(x, dtype, share=False, inner=None):
    """Tensor ``x`` converted to NumPy dtype ``dtype`` (``BF16`` gives a ``BFloat16Tensor``), recorded for
    autograd between floating dtypes. ``inner`` is the ``apply`` to record it with (the plain one by default)."""
    if inner is None:
        inner = Function.apply.__func__
    is_bf16 = type(x) is BFloat16Tensor
    if dtype is BF16 and is_bf16:
        return x
    src_bf16 = is_bf16 or x.array.dtype is BF16
    if dtype is not BF16 and dtype.kind not in "fc":
        from ..autograd.grad_mode import no_grad

        with no_grad():
            return inner(LowCast, x, dtype, src_bf16, False)
    out = inner(LowCast, x, dtype, src_bf16, share)
    return tag(out) if dtype is BF16 else out


# --------------------------------------------------------------------------- emulated ops
_EMULATED = {}


def emulated(cls):
    """The subclass of op ``cls`` that runs it in float32 on low-precision inputs and rounds its results.

    It takes one extra keyword, ``_amp = (convert, out_dtype, in_dtypes)``: the positions of inputs to
    convert to float32 (float16 and ml_dtypes arrays), the dtype to round float32 outputs to (None: keep),
    and each input's low dtype (None for others), used to round the gradients going back to them.
    """
    emu = _EMULATED.get(cls)
    if emu is not None:
        return emu
    base_forward = cls.forward
    base_backward = cls.backward

    def forward(ctx, *arrays, _amp, **params):
        conv, out_dtype, in_dtypes = _amp
        originals = None
        if conv:
            arrays = list(arrays)
            originals = {}
            for i in conv:
                a = arrays[i]
                c = a.astype(F32)
                originals[id(c)] = a
                arrays[i] = c
        out = base_forward(ctx, *arrays, **params)
        ctx.amp_out = out_dtype
        ctx.amp_in = in_dtypes
        if out_dtype is not None:
            if type(out) is tuple:
                out = tuple(_round_out(ctx, o, out_dtype) for o in out)
            else:
                out = _round_out(ctx, out, out_dtype)
        if originals and ctx.saved:
            # Keep what backward needs in the low type (as the low-precision kernels do), not as copies.
            ctx.saved = tuple(originals.get(id(s), s) for s in ctx.saved)
        return out

    def backward(ctx, *grads):
        saved = ctx.saved
        low_saved = False
        if saved and type(saved) is tuple:
            for s in saved:
                if type(s) is ndarray and s.dtype == F16:
                    low_saved = True
                    break
            if low_saved:
                ctx.saved = tuple(s.astype(F32) if type(s) is ndarray and s.dtype == F16 else s for s in saved)
        out_dtype = ctx.amp_out
        if out_dtype is not None:
            grads = tuple(g if g is None else _grad_in(g, out_dtype) for g in grads)
        try:
            result = base_backward(ctx, *grads)
        finally:
            if low_saved:
                ctx.saved = saved
        in_dtypes = ctx.amp_in
        if BF16 in in_dtypes:
            single = type(result) is not tuple
            items = (result,) if single else result
            items = tuple(round_bf16(g) if d is BF16 and type(g) is ndarray and g.dtype == F32 else g
                          for g, d in zip(items, in_dtypes + (None,) * (len(items) - len(in_dtypes))))
            result = items[0] if single else items
        return result

    emu = type(cls.__name__, (cls,), {"forward": forward, "backward": backward, "__module__": cls.__module__,
                                      "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})
    _EMULATED[cls] = emu
    return emu


def _round_out(ctx, out, dtype):
    if type(out) is not ndarray:
        if not isinstance(out, (np.generic, float)):
            return out
        out = np.asarray(out)
    d = out.dtype
    if d == F32:
        if dtype is BF16:
            return round_bf16(out, inplace=True)
        rounded = out.astype(F16)
        if ctx.saved and type(ctx.saved) is tuple:
            ctx.saved = tuple(rounded if s is out else s for s in ctx.saved)
        return rounded
    if d is BF16:
        return out.astype(F32)
    return out


def _grad_in(g, dtype):
    """An incoming gradient for a low-precision output, as the float32 the op's backward computes in."""
    if g.dtype == F16:
        return g.astype(F32)
    if dtype is BF16 and g.dtype == F32:
        return round_bf16(g)
    return g
