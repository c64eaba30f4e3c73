"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and their one-step cells, with PyTorch's API and layout.

Each layer and direction runs as one fused ``Function`` over the whole sequence (see
``somanet.ops.recurrent``); this file only checks arguments, arranges states and stacks layers.
Parameters are named and shaped as in PyTorch (``weight_ih_l0``, ``weight_hh_l0_reverse``,
``bias_ih_l1``, ``weight_hr_l0`` ...), so a PyTorch ``state_dict`` loads as is.
"""
import math
import warnings

import numpy as np

from ... import backend
from ...autograd.tensor import Tensor
from ...ops import recurrent as R
from ...ops.dropout import dropout
from ...ops.shape import cat, transpose, unsqueeze, squeeze
from ...random import numpy_rng
from ..utils.rnn import PackedSequence
from .module import Module, Parameter

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _param_dtype(dtype):
    dtype = backend.default_float if dtype is None else backend.to_dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"recurrent layers need a floating dtype, got {dtype}")
    return dtype


def _uniform_(params, bound):
    rng = numpy_rng()
    for p in params:
        p.array[...] = rng.uniform(-bound, bound, p.array.shape)


class RNNBase(Module):
    """Shared machinery of ``RNN``, ``LSTM`` and ``GRU``: parameters, state checks, layer stacking.

    ``mode`` is 'RNN_TANH', 'RNN_RELU', 'LSTM' or 'GRU'. Parameters per layer ``k`` and direction
    (suffix '' or '_reverse'): ``weight_ih_l{k}`` (G*H, I_k), ``weight_hh_l{k}`` (G*H, P),
    ``bias_ih_l{k}``/``bias_hh_l{k}`` (G*H,), and with ``proj_size`` ``weight_hr_l{k}`` (P, H), where G is
    the number of gates, P = proj_size or hidden_size, and I_k is ``input_size`` for layer 0 and
    ``num_directions * P`` above. All are initialised uniform in (-1/sqrt(H), 1/sqrt(H)).
    """

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
        if mode not in _GATES:
            raise ValueError(f"RNNBase: unknown mode {mode!r}; expected 'RNN_TANH', 'RNN_RELU', 'LSTM' or 'GRU'")
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout should be a number in range [0, 1] representing the probability "
                             f"of an element being zeroed, got {dropout!r}")
        for arg, val in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val <= 0:
                raise ValueError(f"{name}: {arg} must be a positive int, got {val!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout option adds dropout after all but last recurrent layer, so non-zero "
                          f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                          f"num_layers={num_layers}")
        if proj_size < 0:
            raise ValueError(f"{name}: proj_size should be a positive integer or zero to disable projections, "
                             f"got {proj_size}")
        if proj_size >= hidden_size and proj_size:
            raise ValueError(f"{name}: proj_size ({proj_size}) has to be smaller than hidden_size ({hidden_size})")
        if proj_size and mode != "LSTM":
            raise ValueError(f"{name}: proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode = mode
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = int(proj_size)
        num_directions = 2 if bidirectional else 1
        real_hidden = proj_size if proj_size > 0 else hidden_size
        gate_size = _GATES[mode] * hidden_size
        pdtype = _param_dtype(dtype)
        self._flat_weights_names = []
        self._all_weights = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * num_directions
            for direction in range(num_directions):
                suffix = "_reverse" if direction == 1 else ""
                shapes = [("weight_ih", (gate_size, layer_input)), ("weight_hh", (gate_size, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size > 0:
                    shapes += [("weight_hr", (proj_size, hidden_size))]
                names = []
                for base, shape in shapes:
                    pname = f"{base}_l{layer}{suffix}"
                    setattr(self, pname, Parameter(np.empty(shape, pdtype)))
                    names.append(pname)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self):
        """Every weight and bias uniform in (-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as in PyTorch."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        _uniform_(self.parameters(), stdv)

    def flatten_parameters(self):
        """Kept for PyTorch compatibility: parameters are always used in place, so nothing to do."""

    @property
    def all_weights(self):
        """The parameters grouped per layer and direction, in PyTorch's order."""
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    def _layer_weights(self, layer, direction):
        suffix = "_reverse" if direction == 1 else ""
        p = self._parameters
        get = lambda base: p.get(f"{base}_l{layer}{suffix}")  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")

    # ----------------------------------------------------------------- argument checks
    @property
    def _name(self):
        return type(self).__name__

    def _check_input(self, data, expected_dim):
        if data.ndim != expected_dim:
            what = "packed data to be 2D (N, H_in)" if expected_dim == 2 else "input to be 2D or 3D"
            raise ValueError(f"{self._name}: Expected {what}, got {data.ndim}D input of shape {tuple(data.shape)}")
        if data.shape[-1] != self.input_size:
            raise RuntimeError(f"{self._name}: input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {data.shape[-1]} (input shape {tuple(data.shape)})")
        wdtype = self.weight_ih_l0.dtype
        if data.dtype != wdtype and not backend.autocasting():
            raise RuntimeError(f"{self._name}: input dtype {data.dtype} does not match the parameters' dtype "
                               f"{wdtype}; convert one of them (e.g. module.double() or input.float())")

    def _check_state(self, h, expected, what):
        if not isinstance(h, Tensor):
            raise TypeError(f"{self._name}: {what} must be a Tensor, got {type(h).__name__}")
        if tuple(h.shape) != expected:
            raise RuntimeError(f"{self._name}: Expected {what} size {expected}, got {tuple(h.shape)}")
        if h.dtype != self.weight_ih_l0.dtype and not backend.autocasting():
            raise RuntimeError(f"{self._name}: {what} dtype {h.dtype} does not match the parameters' dtype "
                               f"{self.weight_ih_l0.dtype}")

    # ----------------------------------------------------------------- forward
    def forward(self, input, hx=None):
        """Run the stack over ``input``.

        ``input``: (L, N, H_in), (N, L, H_in) with ``batch_first``, unbatched (L, H_in), or a
        ``PackedSequence``. ``hx``: (D*num_layers, N, H_out) or (D*num_layers, H_out) unbatched, zeros if
        None; for LSTM a tuple ``(h_0, c_0)`` with ``c_0`` (D*num_layers, N, H_cell).
        Returns ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``), output (L, N, D*H_out) or packed.
        """
        return self._forward(input, hx)

    def forward_embedding(self, tokens, embedding, hx=None):
        """``self(embedding(tokens), hx)`` without materialising the embedded sequence.

        ``tokens``: int (L, N) ((N, L) with ``batch_first``, (L,) unbatched); ``embedding``: an
        ``Embedding`` whose ``embedding_dim`` is ``input_size``. The first layer's input projection is
        computed once per vocabulary entry and gathered by token, and its gradient is summed per entry
        before the weight GEMMs: for a small vocabulary (characters) this replaces the largest GEMMs of
        the first layer by tiny ones. Same results and gradients (embedding weight included) as the
        plain call, which is used instead when the vocabulary is large or the embedding renormalises
        rows (``max_norm``) or scales gradients by frequency.
        """
        name = self._name
        if not isinstance(tokens, Tensor) or tokens.dtype.kind not in "iu" or tokens.ndim not in (1, 2):
            raise ValueError(f"{name}.forward_embedding(): tokens must be an integer tensor (L, N), (N, L) or (L,), "
                             f"got {getattr(tokens, 'dtype', type(tokens).__name__)} "
                             f"{tuple(getattr(tokens, 'shape', ()))}")
        weight = embedding.weight
        V, E = weight.shape
        if E != self.input_size:
            raise RuntimeError(f"{name}.forward_embedding(): embedding_dim {E} must equal input_size "
                               f"{self.input_size}")
        n_tokens = tokens.array.size
        if n_tokens and (tokens.array.min() < 0 or tokens.array.max() >= V):
            raise IndexError(f"{name}.forward_embedding(): token ids must be in [0, {V}), got values in "
                             f"[{int(tokens.array.min())}, {int(tokens.array.max())}]")
        plain = (getattr(embedding, "max_norm", None) is not None or getattr(embedding, "scale_grad_by_freq", False)
                 or V > 2 * E or V > n_tokens or weight.dtype != self.weight_ih_l0.dtype)
        if plain:
            return self._forward(embedding(tokens), hx)
        return self._forward(tokens, hx, emb=weight, padding_idx=getattr(embedding, "padding_idx", None))

    def _forward(self, input, hx, emb=None, padding_idx=None):
        is_lstm = self.mode == "LSTM"
        D = 2 if self.bidirectional else 1
        real_hidden = self.proj_size or self.hidden_size
        packed = isinstance(input, PackedSequence)
        batch_sizes = sorted_idx = unsorted_idx = None
        batched = True
        if packed:
            x, bs_t, sorted_t, unsorted_t = input
            batch_sizes = bs_t.array
            self._check_input(x, 2)
            B = int(batch_sizes[0])
            sorted_idx = None if sorted_t is None else sorted_t.array
            unsorted_idx = None if unsorted_t is None else unsorted_t.array
        else:
            if not isinstance(input, Tensor):
                raise TypeError(f"{self._name}: input must be a Tensor or PackedSequence, got {type(input).__name__}")
            if emb is None:
                if input.ndim not in (2, 3):
                    raise ValueError(f"{self._name}: Expected input to be 2D or 3D, got {input.ndim}D input of "
                                     f"shape {tuple(input.shape)}")
                batched = input.ndim == 3
                self._check_input(input, input.ndim)
            else:
                batched = input.ndim == 2  # token ids: one dimension fewer
            x = input
            if not batched:
                x = unsqueeze(x, 1)
            elif self.batch_first:
                x = transpose(x, 0, 1)
            B = x.shape[1]

        h0 = c0 = None
        if hx is not None:
            if is_lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError(f"{self._name}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
                h0, c0 = hx
            else:
                if isinstance(hx, (tuple, list)):
                    raise TypeError(f"{self._name}: hx must be a Tensor, got a {type(hx).__name__}")
                h0 = hx
            states = [(h0, real_hidden, "hidden")]
            if is_lstm:
                states.append((c0, self.hidden_size, "cell"))
            checked = []
            for h, width, what in states:
                if not batched:
                    if h.ndim != 2:
                        raise RuntimeError(f"{self._name}: For unbatched 2-D input, {what} state should also be "
                                           f"2-D but got {h.ndim}-D tensor of shape {tuple(h.shape)}")
                    h = unsqueeze(h, 1)
                elif h.ndim != 3:
                    raise RuntimeError(f"{self._name}: For batched 3-D input, {what} state should also be 3-D "
                                       f"but got {h.ndim}-D tensor of shape {tuple(h.shape)}")
                self._check_state(h, (self.num_layers * D, B, width), f"{what} state")
                checked.append(h)
            h0s = R.SplitStates.apply(checked[0], order=sorted_idx)
            c0s = R.SplitStates.apply(checked[1], order=sorted_idx) if is_lstm else None
        n_states = self.num_layers * D
        if hx is None:
            h0s = [None] * n_states
            c0s = [None] * n_states

        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_weights(layer, d)
                # Token input only reaches the first layer; the layers above see its dense output.
                kw = dict(batch_sizes=batch_sizes, reverse=d == 1)
                layer_emb = emb if layer == 0 else None
                if layer_emb is not None:
                    kw["padding_idx"] = padding_idx
                if is_lstm:
                    out, h, c = R.LSTMSequence.apply(x, h0s[k], c0s[k], w_ih, w_hh, b_ih, b_hh, w_hr, layer_emb, **kw)
                    c_n.append(c)
                elif self.mode == "GRU":
                    out, h = R.GRUSequence.apply(x, h0s[k], w_ih, w_hh, b_ih, b_hh, layer_emb, **kw)
                else:
                    out, h = R.RNNSequence.apply(x, h0s[k], w_ih, w_hh, b_ih, b_hh, layer_emb,
                                                 nonlinearity="relu" if self.mode == "RNN_RELU" else "tanh", **kw)
                outs.append(out)
                h_n.append(h)
            x = outs[0] if D == 1 else cat(outs, dim=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = dropout(x, self.dropout, training=True)

        h_n = R.StackStates.apply(*h_n, order=unsorted_idx)
        if is_lstm:
            c_n = R.StackStates.apply(*c_n, order=unsorted_idx)
        if packed:
            output = PackedSequence(x, input.batch_sizes, input.sorted_indices, input.unsorted_indices)
        else:
            output = x
            if not batched:
                output = squeeze(output, 1)
                h_n = squeeze(h_n, 1)
                if is_lstm:
                    c_n = squeeze(c_n, 1)
            elif self.batch_first:
                output = transpose(output, 0, 1)
        if is_lstm:
            return output, (h_n, c_n)
        return output, h_n

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


class RNN(RNNBase):
    """Elman RNN ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or ReLU), stacked, optionally bidirectional.

    ``RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True, batch_first=False,
    dropout=0.0, bidirectional=False)``. Input (L, N, H_in) (or (N, L, H_in) with ``batch_first``,
    (L, H_in) unbatched, or a ``PackedSequence``); ``h_0`` (D*num_layers, N, H). Returns
    ``(output, h_n)``: (L, N, D*H) and (D*num_layers, N, H).

    >>> rnn = RNN(10, 20, 2)
    >>> out, h_n = rnn(somanet.randn(5, 3, 10))
    >>> out.shape, h_n.shape
    ((5, 3, 20), (2, 3, 20))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"RNN: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def extra_repr(self):
        s = super().extra_repr()
        if self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class LSTM(RNNBase):
    """Long short-term memory, PyTorch's gates ``i, f, g, o``, stacked, optionally bidirectional and projected.

    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)`` (times ``W_hr^T`` when ``proj_size > 0``).
    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, proj_size=0)``. Input (L, N, H_in) (or batch-first, unbatched, packed);
    ``(h_0, c_0)``: (D*num_layers, N, H_out) and (D*num_layers, N, H_cell). Returns
    ``(output, (h_n, c_n))`` with output (L, N, D*H_out), where H_out = proj_size or hidden_size.

    >>> lstm = LSTM(10, 20, 2, batch_first=True)
    >>> out, (h_n, c_n) = lstm(somanet.randn(3, 5, 10))
    >>> out.shape, c_n.shape
    ((3, 5, 20), (2, 3, 20))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)


class GRU(RNNBase):
    """Gated recurrent unit with PyTorch's gates ``r, z, n`` and formula, stacked and optionally bidirectional.

    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.
    ``GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False)``. Input (L, N, H_in) (or batch-first, unbatched, packed); ``h_0``
    (D*num_layers, N, H). Returns ``(output, h_n)``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


# --------------------------------------------------------------------------- cells
class RNNCellBase(Module):
    """Shared parameters of the one-step cells: ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H),
    ``bias_ih`` and ``bias_hh`` (G*H,), uniform in (-1/sqrt(H), 1/sqrt(H))."""

    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        for arg, val in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val <= 0:
                raise ValueError(f"{type(self).__name__}: {arg} must be a positive int, got {val!r}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.bias = bias
        pdtype = _param_dtype(dtype)
        self.weight_ih = Parameter(np.empty((num_chunks * hidden_size, input_size), pdtype))
        self.weight_hh = Parameter(np.empty((num_chunks * hidden_size, hidden_size), pdtype))
        if bias:
            self.bias_ih = Parameter(np.empty(num_chunks * hidden_size, pdtype))
            self.bias_hh = Parameter(np.empty(num_chunks * hidden_size, pdtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Every weight and bias uniform in (-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as in PyTorch."""
        _uniform_(self.parameters(), 1.0 / math.sqrt(self.hidden_size))

    def _prepare(self, input, states):
        """Check the input and states; add the batch dim to unbatched ones. Returns (input, states, batched)."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead "
                             f"(shape {tuple(input.shape)})")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input has inconsistent input_size: got {input.shape[-1]} expected "
                               f"{self.input_size} (input shape {tuple(input.shape)})")
        if input.dtype != self.weight_ih.dtype and not backend.autocasting():
            raise RuntimeError(f"{name}: input dtype {input.dtype} does not match the parameters' dtype "
                               f"{self.weight_ih.dtype}")
        batched = input.ndim == 2
        if not batched:
            input = unsqueeze(input, 0)
        B = input.shape[0]
        out = []
        for h in states:
            if h is not None:
                if not isinstance(h, Tensor):
                    raise TypeError(f"{name}: hidden state must be a Tensor, got {type(h).__name__}")
                if h.ndim != (2 if batched else 1):
                    raise RuntimeError(f"{name}: Expected hidden state to be {'2' if batched else '1'}D "
                                       f"for {'2' if batched else '1'}D input, got shape {tuple(h.shape)}")
                if not batched:
                    h = unsqueeze(h, 0)
                if tuple(h.shape) != (B, self.hidden_size):
                    raise RuntimeError(f"{name}: Expected hidden state size {(B, self.hidden_size)}, "
                                       f"got {tuple(h.shape)}")
            out.append(h)
        return input, out, batched

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(RNNCellBase):
    """One Elman RNN step: ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or ReLU).

    Input (N, H_in) or (H_in,), ``hx`` (N, H) or (H,), zeros if None. Returns ``h'`` (N, H) or (H,).
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: Unknown nonlinearity: {nonlinearity}. Select from 'tanh' or 'relu'.")
        super().__init__(input_size, hidden_size, bias, 1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        x, (h,), batched = self._prepare(input, [hx])
        out = R.RNNCellStep.apply(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                                  nonlinearity=self.nonlinearity)
        return out if batched else squeeze(out, 0)


class LSTMCell(RNNCellBase):
    """One LSTM step with gates ``i, f, g, o``.

    Input (N, H_in) or (H_in,), ``hx`` a tuple ``(h, c)`` of (N, H) or (H,), zeros if None.
    Returns ``(h', c')``.
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        if hx is None:
            hx = (None, None)
        elif not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}")
        x, (h, c), batched = self._prepare(input, list(hx))
        h1, c1 = R.LSTMCellStep.apply(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if not batched:
            return squeeze(h1, 0), squeeze(c1, 0)
        return h1, c1


class GRUCell(RNNCellBase):
    """One GRU step with gates ``r, z, n`` and PyTorch's formula.

    Input (N, H_in) or (H_in,), ``hx`` (N, H) or (H,), zeros if None. Returns ``h'``.
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        x, (h,), batched = self._prepare(input, [hx])
        out = R.GRUCellStep.apply(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out if batched else squeeze(out, 0)
