"""Recurrent ops: a whole layer-direction of an Elman RNN, LSTM or GRU as one ``Function``.

Every Function here runs one layer in one direction over the whole sequence, and its backward is
backward-through-time written by hand. The code below is the reference: the input projection
``x W_ih^T`` of all steps at once, then per step ``z = x_t W_ih^T + b + h_{t-1} W_hh^T`` and the cell's
gates, each step's values kept for backward, which runs the steps in reverse and finishes with one product
per weight gradient. The kernel of op ``"recurrent"`` that its chooser picks may run the layer instead
(``kernels/recurrent.py``: the same results by faster loops, and a batch split into blocks).

Sequences come either padded, ``(T, B, I)`` time-major, or packed: ``(N, I)`` rows with
``batch_sizes`` (PyTorch's ``PackedSequence`` layout: step ``t`` owns the next ``batch_sizes[t]`` rows,
batch entries sorted by decreasing length). A step updates only the first ``batch_sizes[t]`` entries of
the state, so a sequence that ended keeps its final state and, in the reverse direction, a sequence that
starts late starts from its initial state. With ``emb`` (V, I) the input holds int symbols and the layer
runs on their embedding rows.

Shapes: ``T`` steps, ``B`` batch, ``I`` input features, ``H`` hidden size, ``P`` output (projection)
size (``P == H`` without projection), ``N`` rows (``T * B`` when padded).
"""
from functools import partial

from ..autograd.function import Function
from ..autograd.recompute import recompute_grad
from ..backend import array_module
from ..kernels import _select
from .embedding import scatter_add_rows

__all__ = ["rnn_sequence", "lstm_sequence", "gru_sequence", "rnn_cell", "lstm_cell", "gru_cell"]

# The positional inputs of each sequence Function, in ``apply`` order; a cell step takes a prefix of them.
RNN_INPUTS = ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "emb")
LSTM_INPUTS = ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr", "emb")
GRU_INPUTS = ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "emb")


class _BatchBlocks:
    """What a sequence Function tells its kernel about splitting the batch."""

    #: Whether ``forward`` may split the batch into blocks (cell steps, and the blocks, run whole).
    batch_blocks = True
    #: How many batch blocks the forward ran (0: it ran whole); their contexts end ``saved``.
    n_blocks = 0


def _kernel(ctx, x, batch_sizes, w_hh):
    """The ``"recurrent"`` kernel that runs this call: None for the reference below."""
    name = _select.choose("recurrent", x, batch_sizes, w_hh, ctx.batch_blocks)
    return _select.implementation("recurrent", name)


# --------------------------------------------------------------------------- the reference
def _steps(x, batch_sizes, reverse):
    """``(order, offs, bs, B, N)``: the steps in run order; step ``t`` owns input rows
    ``offs[t] : offs[t] + bs[t]`` and the first ``bs[t]`` batch entries; ``B`` entries, ``N`` rows."""
    if batch_sizes is None:
        T, B = x.shape[0], (x.shape[1] if x.ndim > 1 else 0)
        bs = [B] * T
    else:
        bs = [int(b) for b in batch_sizes]
        T, B = len(bs), (bs[0] if bs else 0)
    offs, n = [], 0
    for b in bs:
        offs.append(n)
        n += b
    return (range(T - 1, -1, -1) if reverse else range(T)), offs, bs, B, n


def _input_rows(x, emb, N):
    """The (N, I) input rows: ``x``'s, or the embedding rows of its symbols."""
    if emb is None:
        return x.reshape(N, x.shape[-1])
    return array_module(emb).take(emb, x.reshape(-1), axis=0)


def _state(init, B, width, dtype, xp):
    """A (B, width) state to update in place: a copy of ``init``, or zeros."""
    if init is None:
        return xp.zeros((B, width), dtype)
    return init.astype(dtype, copy=True)


def _sigmoid(z, xp):
    return 0.5 * xp.tanh(0.5 * z) + 0.5


def _input_grads(ctx, inputs, dgx, rows, w_ih, emb):
    """``(dx, dW_ih, d_emb)`` from ``dgx`` (N, G), the gradient of every step's input projection; ``rows``
    are the (N, I) input rows and ``inputs`` the Function's input names."""
    need_x = ctx.needs(inputs.index("x")) or (emb is not None and ctx.needs(inputs.index("emb")))
    d_rows = dgx @ w_ih if need_x else None
    dw_ih = dgx.T @ rows if ctx.needs(inputs.index("w_ih")) else None
    if emb is None:
        return (None if d_rows is None else d_rows.reshape(ctx.x_shape)), dw_ih, None
    d_emb = None
    if d_rows is not None:
        d_emb = scatter_add_rows(ctx.saved[0].reshape(-1), d_rows, emb.shape[0])
        if ctx.params[3] is not None:
            d_emb[ctx.params[3]] = 0
    return None, dw_ih, d_emb


def _rnn_reference(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, emb, nonlinearity, batch_sizes, reverse):
    xp = array_module(w_hh)
    order, offs, bs, B, N = _steps(x, batch_sizes, reverse)
    H = w_hh.shape[0]
    rows = _input_rows(x, emb, N)
    gx = rows @ w_ih.T
    if b_ih is not None:
        gx += b_ih + b_hh
    h = _state(h0, B, H, w_hh.dtype, xp)
    out = xp.empty((N, H), w_hh.dtype)
    h_prev = xp.empty((N, H), w_hh.dtype)
    for t in order:
        lo, b = offs[t], bs[t]
        h_prev[lo:lo + b] = h[:b]
        z = gx[lo:lo + b] + h[:b] @ w_hh.T
        h[:b] = xp.maximum(z, 0) if nonlinearity == "relu" else xp.tanh(z)
        out[lo:lo + b] = h[:b]
    ctx.save_for_backward(x, h0, w_ih, w_hh, b_ih, b_hh, emb, rows, h_prev, out)
    return (out if batch_sizes is not None else out.reshape(x.shape[0], B, H)), h


def _rnn_reference_backward(ctx, grad_out, grad_hn):
    x, h0, w_ih, w_hh, b_ih, b_hh, emb, rows, h_prev, out = ctx.saved
    xp = array_module(w_hh)
    nonlinearity, batch_sizes, reverse, _ = ctx.params
    order, offs, bs, B, N = _steps(x, batch_sizes, reverse)
    H = w_hh.shape[0]
    g_rows = None if grad_out is None else grad_out.reshape(N, H)
    dh = xp.zeros((B, H), w_hh.dtype) if grad_hn is None else grad_hn.astype(w_hh.dtype, copy=True)
    dz = xp.empty((N, H), w_hh.dtype)
    for t in reversed(order):
        lo, b = offs[t], bs[t]
        d = dh[:b] if g_rows is None else dh[:b] + g_rows[lo:lo + b]
        h = out[lo:lo + b]
        dz[lo:lo + b] = d * (h > 0) if nonlinearity == "relu" else d * (1 - h * h)
        dh[:b] = dz[lo:lo + b] @ w_hh
    dx, dw_ih, d_emb = _input_grads(ctx, RNN_INPUTS, dz, rows, w_ih, emb)
    dw_hh = dz.T @ h_prev if ctx.needs(RNN_INPUTS.index("w_hh")) else None
    db = dz.sum(0) if b_ih is not None else None
    return dx, dh, dw_ih, dw_hh, db, db, d_emb


def _lstm_reference(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, emb, batch_sizes, reverse):
    xp = array_module(w_hh)
    order, offs, bs, B, N = _steps(x, batch_sizes, reverse)
    H, P = w_hh.shape[0] // 4, w_hh.shape[1]
    dtype = w_hh.dtype
    rows = _input_rows(x, emb, N)
    gx = rows @ w_ih.T
    if b_ih is not None:
        gx += b_ih + b_hh
    h, c = _state(h0, B, P, dtype, xp), _state(c0, B, H, dtype, xp)
    out, h_prev = xp.empty((N, P), dtype), xp.empty((N, P), dtype)
    c_prev, tanh_c = xp.empty((N, H), dtype), xp.empty((N, H), dtype)
    gates = xp.empty((N, 4 * H), dtype)    # i, f, g, o of every step
    cell_out = None if w_hr is None else xp.empty((N, H), dtype)   # o * tanh(c) before the projection
    for t in order:
        lo, b = offs[t], bs[t]
        hi = lo + b
        h_prev[lo:hi], c_prev[lo:hi] = h[:b], c[:b]
        z = gx[lo:hi] + h[:b] @ w_hh.T
        i, f, g, o = _sigmoid(z[:, :H], xp), _sigmoid(z[:, H:2 * H], xp), xp.tanh(z[:, 2 * H:3 * H]), \
            _sigmoid(z[:, 3 * H:], xp)
        c[:b] = f * c[:b] + i * g
        tanh_c[lo:hi] = xp.tanh(c[:b])
        m = o * tanh_c[lo:hi]
        if w_hr is None:
            h[:b] = m
        else:
            cell_out[lo:hi] = m
            h[:b] = m @ w_hr.T
        gates[lo:hi, :H], gates[lo:hi, H:2 * H], gates[lo:hi, 2 * H:3 * H], gates[lo:hi, 3 * H:] = i, f, g, o
        out[lo:hi] = h[:b]
    ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, emb, rows, h_prev, c_prev, gates, tanh_c,
                          cell_out)
    return (out if batch_sizes is not None else out.reshape(x.shape[0], B, P)), h, c


def _lstm_reference_backward(ctx, grad_out, grad_hn, grad_cn):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, emb, rows, h_prev, c_prev, gates, tanh_c, cell_out = ctx.saved
    xp = array_module(w_hh)
    _, batch_sizes, reverse, _ = ctx.params
    order, offs, bs, B, N = _steps(x, batch_sizes, reverse)
    H, P = w_hh.shape[0] // 4, w_hh.shape[1]
    dtype = w_hh.dtype
    g_rows = None if grad_out is None else grad_out.reshape(N, P)
    dh = xp.zeros((B, P), dtype) if grad_hn is None else grad_hn.astype(dtype, copy=True)
    dc = xp.zeros((B, H), dtype) if grad_cn is None else grad_cn.astype(dtype, copy=True)
    dz = xp.empty((N, 4 * H), dtype)
    dh_rows = None if w_hr is None else xp.empty((N, P), dtype)   # gradient of each step's projected output
    for t in reversed(order):
        lo, b = offs[t], bs[t]
        hi = lo + b
        d = dh[:b] if g_rows is None else dh[:b] + g_rows[lo:hi]
        if w_hr is None:
            dm = d
        else:
            dh_rows[lo:hi] = d
            dm = d @ w_hr
        i, f, g, o = gates[lo:hi, :H], gates[lo:hi, H:2 * H], gates[lo:hi, 2 * H:3 * H], gates[lo:hi, 3 * H:]
        tc = tanh_c[lo:hi]
        dcell = dc[:b] + dm * o * (1 - tc * tc)
        dz[lo:hi, :H] = dcell * g * i * (1 - i)
        dz[lo:hi, H:2 * H] = dcell * c_prev[lo:hi] * f * (1 - f)
        dz[lo:hi, 2 * H:3 * H] = dcell * i * (1 - g * g)
        dz[lo:hi, 3 * H:] = dm * tc * o * (1 - o)
        dh[:b] = dz[lo:hi] @ w_hh
        dc[:b] = dcell * f
    dx, dw_ih, d_emb = _input_grads(ctx, LSTM_INPUTS, dz, rows, w_ih, emb)
    dw_hh = dz.T @ h_prev if ctx.needs(LSTM_INPUTS.index("w_hh")) else None
    db = dz.sum(0) if b_ih is not None else None
    dw_hr = None if w_hr is None else dh_rows.T @ cell_out
    return dx, dh, dc, dw_ih, dw_hh, db, db, dw_hr, d_emb


def _gru_reference(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, emb, batch_sizes, reverse):
    xp = array_module(w_hh)
    order, offs, bs, B, N = _steps(x, batch_sizes, reverse)
    H = w_hh.shape[1]
    dtype = w_hh.dtype
    rows = _input_rows(x, emb, N)
    gx = rows @ w_ih.T
    if b_ih is not None:
        gx += b_ih
    h = _state(h0, B, H, dtype, xp)
    out, h_prev = xp.empty((N, H), dtype), xp.empty((N, H), dtype)
    gates = xp.empty((N, 3 * H), dtype)    # r, z, n of every step
    hn = xp.empty((N, H), dtype)           # W_hn h + b_hn, inside r * (...)
    for t in order:
        lo, b = offs[t], bs[t]
        hi = lo + b
        h_prev[lo:hi] = h[:b]
        gh = h[:b] @ w_hh.T
        if b_hh is not None:
            gh += b_hh
        r = _sigmoid(gx[lo:hi, :H] + gh[:, :H], xp)
        z = _sigmoid(gx[lo:hi, H:2 * H] + gh[:, H:2 * H], xp)
        n = xp.tanh(gx[lo:hi, 2 * H:] + r * gh[:, 2 * H:])
        h[:b] = n + z * (h[:b] - n)
        gates[lo:hi, :H], gates[lo:hi, H:2 * H], gates[lo:hi, 2 * H:] = r, z, n
        hn[lo:hi] = gh[:, 2 * H:]
        out[lo:hi] = h[:b]
    ctx.save_for_backward(x, h0, w_ih, w_hh, b_ih, b_hh, emb, rows, h_prev, gates, hn)
    return (out if batch_sizes is not None else out.reshape(x.shape[0], B, H)), h


def _gru_reference_backward(ctx, grad_out, grad_hn):
    x, h0, w_ih, w_hh, b_ih, b_hh, emb, rows, h_prev, gates, hn = ctx.saved
    xp = array_module(w_hh)
    _, batch_sizes, reverse, _ = ctx.params
    order, offs, bs, B, N = _steps(x, batch_sizes, reverse)
    H = w_hh.shape[1]
    dtype = w_hh.dtype
    g_rows = None if grad_out is None else grad_out.reshape(N, H)
    dh = xp.zeros((B, H), dtype) if grad_hn is None else grad_hn.astype(dtype, copy=True)
    dgx = xp.empty((N, 3 * H), dtype)   # gradient of the input side's pre-activations
    dgh = xp.empty((N, 3 * H), dtype)   # and of the recurrent side's (W_hh h + b_hh)
    for t in reversed(order):
        lo, b = offs[t], bs[t]
        hi = lo + b
        d = dh[:b] if g_rows is None else dh[:b] + g_rows[lo:hi]
        r, z, n = gates[lo:hi, :H], gates[lo:hi, H:2 * H], gates[lo:hi, 2 * H:]
        dn = d * (1 - z) * (1 - n * n)
        dz = d * (h_prev[lo:hi] - n) * z * (1 - z)
        dr = dn * hn[lo:hi] * r * (1 - r)
        dgx[lo:hi, :H], dgx[lo:hi, H:2 * H], dgx[lo:hi, 2 * H:] = dr, dz, dn
        dgh[lo:hi, :H], dgh[lo:hi, H:2 * H], dgh[lo:hi, 2 * H:] = dr, dz, dn * r
        dh[:b] = d * z + dgh[lo:hi] @ w_hh
    dx, dw_ih, d_emb = _input_grads(ctx, GRU_INPUTS, dgx, rows, w_ih, emb)
    dw_hh = dgh.T @ h_prev if ctx.needs(GRU_INPUTS.index("w_hh")) else None
    db_ih = dgx.sum(0) if b_ih is not None else None
    db_hh = dgh.sum(0) if b_hh is not None else None
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh, d_emb


def _reference_inputs(ctx, n):
    """The first ``n`` saved arrays (the reference saves its inputs first), ``x`` in the caller's shape."""
    x = ctx.saved[0]
    return (x.reshape(ctx.x_shape),) + tuple(ctx.saved[1:n])


# --------------------------------------------------------------------------- the Functions
class RNNSequence(_BatchBlocks, Function):
    """Elman RNN layer-direction: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``.

    Inputs: ``x`` (T, B, I) or packed (N, I); ``h0`` (B, H) or None for zeros; ``w_ih`` (H, I);
    ``w_hh`` (H, H); ``b_ih``, ``b_hh`` (H,) or None. Params: ``nonlinearity`` 'tanh' or 'relu',
    ``batch_sizes`` for packed input, ``reverse``. Returns ``(output, h_n)``: (T, B, H) or (N, H), and (B, H).
    """

    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, emb=None, nonlinearity="tanh", batch_sizes=None, reverse=False,
                padding_idx=None):
        ctx.params, ctx.x_shape = (nonlinearity, batch_sizes, reverse, padding_idx), x.shape
        kern = ctx.kern = _kernel(ctx, x, batch_sizes, w_hh)
        if kern is None:
            return _rnn_reference(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, emb, nonlinearity, batch_sizes, reverse)
        if kern.splits_batch:
            return kern.forward(ctx, RNNSequence.forward, x, (h0,), (w_ih, w_hh, b_ih, b_hh, emb),
                                {"nonlinearity": nonlinearity, "reverse": reverse, "padding_idx": padding_idx})
        return kern.rnn_forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, emb, nonlinearity, batch_sizes, reverse,
                                padding_idx)

    def backward(ctx, grad_out, grad_hn):
        if ctx.kern is None:
            return _rnn_reference_backward(ctx, grad_out, grad_hn)
        if ctx.n_blocks:
            return ctx.kern.backward(ctx, (grad_out, grad_hn))
        return ctx.kern.rnn_backward(ctx, grad_out, grad_hn)

    def grad_graph(ctx, grad_out, grad_hn):
        return recompute_grad(ctx, ctx.input_values(), partial(_rerun_rnn, _rerun_params(ctx)), (grad_out, grad_hn))

    def input_values(ctx):
        """The arrays of the inputs (``RNN_INPUTS``) for create_graph's re-run."""
        if ctx.n_blocks:
            return ctx.saved[:len(RNN_INPUTS)]
        if ctx.kern is None:
            return _reference_inputs(ctx, len(RNN_INPUTS))
        return ctx.kern.rnn_inputs(ctx)


class LSTMSequence(_BatchBlocks, Function):
    """LSTM layer-direction with PyTorch's gates ``i, f, g, o`` and optional projection ``W_hr``.

    ``i, f, o = sigmoid(.)``, ``g = tanh(.)`` of ``x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh``;
    ``c_t = f * c_{t-1} + i * g``; ``h_t = o * tanh(c_t)`` (times ``W_hr^T`` with a projection).

    Inputs: ``x`` (T, B, I) or packed (N, I); ``h0`` (B, P) and ``c0`` (B, H) or None for zeros;
    ``w_ih`` (4H, I); ``w_hh`` (4H, P); ``b_ih``, ``b_hh`` (4H,) or None; ``w_hr`` (P, H) or None.
    Returns ``(output, h_n, c_n)``: (T, B, P) or (N, P), (B, P), (B, H).
    """

    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, emb=None, batch_sizes=None, reverse=False,
                padding_idx=None):
        ctx.params, ctx.x_shape = ("tanh", batch_sizes, reverse, padding_idx), x.shape
        kern = ctx.kern = _kernel(ctx, x, batch_sizes, w_hh)
        if kern is None:
            return _lstm_reference(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, emb, batch_sizes, reverse)
        if kern.splits_batch:
            return kern.forward(ctx, LSTMSequence.forward, x, (h0, c0), (w_ih, w_hh, b_ih, b_hh, w_hr, emb),
                                {"reverse": reverse, "padding_idx": padding_idx})
        return kern.lstm_forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, emb, batch_sizes, reverse, padding_idx)

    def backward(ctx, grad_out, grad_hn, grad_cn):
        if ctx.kern is None:
            return _lstm_reference_backward(ctx, grad_out, grad_hn, grad_cn)
        if ctx.n_blocks:
            return ctx.kern.backward(ctx, (grad_out, grad_hn, grad_cn))
        return ctx.kern.lstm_backward(ctx, grad_out, grad_hn, grad_cn)

    def grad_graph(ctx, grad_out, grad_hn, grad_cn):
        return recompute_grad(ctx, ctx.input_values(), partial(_rerun_lstm, _rerun_params(ctx)),
                              (grad_out, grad_hn, grad_cn))

    def input_values(ctx):
        """The arrays of the inputs (``LSTM_INPUTS``) for create_graph's re-run."""
        if ctx.n_blocks:
            return ctx.saved[:len(LSTM_INPUTS)]
        if ctx.kern is None:
            return _reference_inputs(ctx, len(LSTM_INPUTS))
        return ctx.kern.lstm_inputs(ctx)


class GRUSequence(_BatchBlocks, Function):
    """GRU layer-direction with PyTorch's gates ``r, z, n`` and formula.

    ``r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)``, ``z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)``,
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.

    Inputs: ``x`` (T, B, I) or packed (N, I); ``h0`` (B, H) or None for zeros; ``w_ih`` (3H, I);
    ``w_hh`` (3H, H); ``b_ih``, ``b_hh`` (3H,) or None. Returns ``(output, h_n)``.
    """

    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, emb=None, batch_sizes=None, reverse=False, padding_idx=None):
        ctx.params, ctx.x_shape = ("tanh", batch_sizes, reverse, padding_idx), x.shape
        kern = ctx.kern = _kernel(ctx, x, batch_sizes, w_hh)
        if kern is None:
            return _gru_reference(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, emb, batch_sizes, reverse)
        if kern.splits_batch:
            return kern.forward(ctx, GRUSequence.forward, x, (h0,), (w_ih, w_hh, b_ih, b_hh, emb),
                                {"reverse": reverse, "padding_idx": padding_idx})
        return kern.gru_forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, emb, batch_sizes, reverse, padding_idx)

    def backward(ctx, grad_out, grad_hn):
        if ctx.kern is None:
            return _gru_reference_backward(ctx, grad_out, grad_hn)
        if ctx.n_blocks:
            return ctx.kern.backward(ctx, (grad_out, grad_hn))
        return ctx.kern.gru_backward(ctx, grad_out, grad_hn)

    def grad_graph(ctx, grad_out, grad_hn):
        return recompute_grad(ctx, ctx.input_values(), partial(_rerun_gru, _rerun_params(ctx)), (grad_out, grad_hn))

    def input_values(ctx):
        """The arrays of the inputs (``GRU_INPUTS``) for create_graph's re-run."""
        if ctx.n_blocks:
            return ctx.saved[:len(GRU_INPUTS)]
        if ctx.kern is None:
            return _reference_inputs(ctx, len(GRU_INPUTS))
        return ctx.kern.gru_inputs(ctx)


# --------------------------------------------------------------------------- create_graph=True: the re-run
# Backward with create_graph=True needs a gradient built from differentiable ops. The hand-written
# backward-through-time above works on raw arrays, so the layer's forward is re-run instead, step by step on
# tensor ops (matmul, sigmoid, tanh, slices), and that re-run is differentiated (``recompute_grad``). It is
# slower than the Functions, which ordinary training keeps using untouched.
def _rerun_params(ctx):
    """``(nonlinearity, batch_sizes, reverse, padding_idx)`` of a sequence call."""
    return ctx.params


def _rerun_layer(x, init, widths, w_ih, b_in, emb, params, step):
    """One layer-direction on tensor ops: ``(output, *final states)``.

    ``x`` (T, B, I), packed (N, I), or int symbols with ``emb``; ``init`` the initial state tensors (None
    for zeros) of widths ``widths``; ``b_in`` the bias added to the input projection (or None);
    ``step(gx_t, states) -> states`` one step, its first state being the step's output.
    """
    from .embedding import embedding
    from .linalg import matmul
    from .shape import cat, stack, t as transpose2d

    _, batch_sizes, reverse, padding_idx = params
    if emb is not None:
        x = embedding(x, emb, padding_idx=padding_idx)
    gx = matmul(x, transpose2d(w_ih))
    if b_in is not None:
        gx = gx + b_in
    if batch_sizes is None:
        T, B = x.shape[0], x.shape[1]
        bs, offs = [B] * T, None
    else:
        bs = [int(b) for b in batch_sizes]
        T, B = len(bs), bs[0]
        offs = [0] * T
        for k in range(1, T):
            offs[k] = offs[k - 1] + bs[k - 1]
    dtype = w_ih.dtype
    init = tuple(_zeros((B, w), dtype) if s is None else s for s, w in zip(init, widths))
    outs, states, done = [None] * T, None, []
    for k in (range(T - 1, -1, -1) if reverse else range(T)):
        b = bs[k]
        if states is None:
            prev = tuple(s if s.shape[0] == b else s[:b] for s in init)
        elif states[0].shape[0] > b:
            # Packed, forward: the sequences past ``b`` ended at the previous step with these states.
            done.append(tuple(s[b:] for s in states))
            prev = tuple(s[:b] for s in states)
        elif states[0].shape[0] < b:
            # Packed, reverse: the sequences past the previous width begin here, from their initial state.
            n = states[0].shape[0]
            prev = tuple(cat([s, s0[n:b]], 0) for s, s0 in zip(states, init))
        else:
            prev = states
        states = step(gx[k] if offs is None else gx[offs[k]:offs[k] + b], prev)
        outs[k] = states[0]
    done.append(states)
    finals = tuple(cat([d[j] for d in reversed(done)], 0) if len(done) > 1 else states[j] for j in range(len(states)))
    return (stack(outs, 0) if offs is None else cat(outs, 0),) + finals


def _zeros(shape, dtype):
    from ..autograd.higher_order import zeros

    return zeros(shape, dtype)


def _rerun_rnn(params, x, h0, w_ih, w_hh, b_ih, b_hh, emb=None):
    """``RNNSequence`` on tensor ops: ``(output, h_n)``."""
    from .elementwise import relu, tanh
    from .linalg import matmul
    from .shape import t as transpose2d

    act = relu if params[0] == "relu" else tanh
    w_hh_t = transpose2d(w_hh)

    def step(g, states):
        return (act(g + matmul(states[0], w_hh_t)),)

    b_in = None if b_ih is None else b_ih + b_hh
    return _rerun_layer(x, (h0,), (w_hh.shape[1],), w_ih, b_in, emb, params, step)


def _rerun_lstm(params, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr=None, emb=None):
    """``LSTMSequence`` on tensor ops: ``(output, h_n, c_n)``."""
    from .elementwise import sigmoid, tanh
    from .linalg import matmul
    from .shape import split, t as transpose2d

    H = w_hh.shape[0] // 4
    w_hh_t = transpose2d(w_hh)
    w_hr_t = None if w_hr is None else transpose2d(w_hr)

    def step(g, states):
        h, c = states
        i, f, gg, o = split(g + matmul(h, w_hh_t), H, 1)
        c = sigmoid(f) * c + sigmoid(i) * tanh(gg)
        h = sigmoid(o) * tanh(c)
        return (h if w_hr_t is None else matmul(h, w_hr_t), c)

    b_in = None if b_ih is None else b_ih + b_hh
    return _rerun_layer(x, (h0, c0), (w_hh.shape[1], H), w_ih, b_in, emb, params, step)


def _rerun_gru(params, x, h0, w_ih, w_hh, b_ih, b_hh, emb=None):
    """``GRUSequence`` on tensor ops: ``(output, h_n)``."""
    from .elementwise import sigmoid, tanh
    from .linalg import matmul
    from .shape import split, t as transpose2d

    H = w_hh.shape[1]
    w_hh_t = transpose2d(w_hh)

    def step(g, states):
        h = states[0]
        gh = matmul(h, w_hh_t)
        if b_hh is not None:
            gh = gh + b_hh
        r_x, z_x, n_x = split(g, H, 1)
        r_h, z_h, n_h = split(gh, H, 1)
        r = sigmoid(r_x + r_h)
        z = sigmoid(z_x + z_h)
        n = tanh(n_x + r * n_h)
        return (n + z * (h - n),)

    return _rerun_layer(x, (h0,), (H,), w_ih, b_ih, emb, params, step)


def _rerun_cell(rerun, params, x, *rest):
    """A cell step (``x`` (B, I)) as a one-step sequence re-run: its final states."""
    from .shape import unsqueeze

    return rerun(params, unsqueeze(x, 0), *rest)[1:]


# --------------------------------------------------------------------------- cells: one step
class RNNCellStep(RNNSequence):
    """One Elman RNN step: ``x`` (B, I), ``h`` (B, H) -> ``h'`` (B, H)."""

    batch_blocks = False

    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh"):
        _, h_n = RNNSequence.forward(ctx, x[None], h0, w_ih, w_hh, b_ih, b_hh, nonlinearity=nonlinearity)
        ctx.x_shape = x.shape
        return h_n

    def backward(ctx, grad):
        return RNNSequence.backward(ctx, None, grad)[:6]

    def grad_graph(ctx, grad):
        run = partial(_rerun_cell, _rerun_rnn, _rerun_params(ctx))
        return recompute_grad(ctx, ctx.input_values()[:6], run, (grad,))


class LSTMCellStep(LSTMSequence):
    """One LSTM step: ``x`` (B, I), ``h`` (B, H), ``c`` (B, H) -> ``(h', c')``."""

    batch_blocks = False

    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        _, h_n, c_n = LSTMSequence.forward(ctx, x[None], h0, c0, w_ih, w_hh, b_ih, b_hh, None)
        ctx.x_shape = x.shape
        return h_n, c_n

    def backward(ctx, grad_h, grad_c):
        return LSTMSequence.backward(ctx, None, grad_h, grad_c)[:7]

    def grad_graph(ctx, grad_h, grad_c):
        return recompute_grad(ctx, ctx.input_values()[:7], partial(_rerun_cell, _rerun_lstm, _rerun_params(ctx)),
                              (grad_h, grad_c))


class GRUCellStep(GRUSequence):
    """One GRU step: ``x`` (B, I), ``h`` (B, H) -> ``h'`` (B, H)."""

    batch_blocks = False

    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):
        _, h_n = GRUSequence.forward(ctx, x[None], h0, w_ih, w_hh, b_ih, b_hh)
        ctx.x_shape = x.shape
        return h_n

    def backward(ctx, grad):
        return GRUSequence.backward(ctx, None, grad)[:6]

    def grad_graph(ctx, grad):
        run = partial(_rerun_cell, _rerun_gru, _rerun_params(ctx))
        return recompute_grad(ctx, ctx.input_values()[:6], run, (grad,))


# --------------------------------------------------------------------------- functional wrappers
def rnn_sequence(input, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh",
                 batch_sizes=None, reverse=False, embedding=None, padding_idx=None):
    """Run one Elman RNN layer in one direction over a sequence; see ``RNNSequence``.

    ``input`` (T, B, I) time-major, or packed rows (N, I) with ``batch_sizes``. Returns ``(output, h_n)``.
    With ``embedding`` (V, I), ``input`` holds int symbols, (T, B) or packed (N,), and the layer runs on
    ``embedding[input]`` without materialising it (``padding_idx``: an embedding row without gradient).
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_sequence(): unknown nonlinearity {nonlinearity!r}; expected 'tanh' or 'relu'")
    return RNNSequence.apply(input, h0, weight_ih, weight_hh, bias_ih, bias_hh, embedding, nonlinearity=nonlinearity,
                             batch_sizes=batch_sizes, reverse=reverse, padding_idx=padding_idx)


def lstm_sequence(input, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, weight_hr=None,
                  batch_sizes=None, reverse=False, embedding=None, padding_idx=None):
    """Run one LSTM layer in one direction over a sequence; see ``LSTMSequence``.

    ``input`` (T, B, I) time-major, or packed rows (N, I) with ``batch_sizes``.
    Returns ``(output, h_n, c_n)``.
    With ``embedding`` (V, I), ``input`` holds int symbols, (T, B) or packed (N,), and the layer runs on
    ``embedding[input]`` without materialising it (``padding_idx``: an embedding row without gradient).
    """
    return LSTMSequence.apply(input, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, embedding,
                              batch_sizes=batch_sizes, reverse=reverse, padding_idx=padding_idx)


def gru_sequence(input, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, batch_sizes=None, reverse=False,
                 embedding=None, padding_idx=None):
    """Run one GRU layer in one direction over a sequence; see ``GRUSequence``. Returns ``(output, h_n)``.

    With ``embedding`` (V, I), ``input`` holds int symbols, (T, B) or packed (N,), and the layer runs on
    ``embedding[input]`` without materialising it (``padding_idx``: an embedding row without gradient).
    """
    return GRUSequence.apply(input, h0, weight_ih, weight_hh, bias_ih, bias_hh, embedding, batch_sizes=batch_sizes,
                             reverse=reverse, padding_idx=padding_idx)


def rnn_cell(input, hx, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    """One Elman RNN step: ``input`` (B, I), ``hx`` (B, H) or None -> (B, H)."""
    return RNNCellStep.apply(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity=nonlinearity)


def lstm_cell(input, hx, cx, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """One LSTM step: ``input`` (B, I), ``hx``/``cx`` (B, H) or None -> ``(h', c')``."""
    return LSTMCellStep.apply(input, hx, cx, weight_ih, weight_hh, bias_ih, bias_hh)


def gru_cell(input, hx, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """One GRU step: ``input`` (B, I), ``hx`` (B, H) or None -> (B, H)."""
    return GRUCellStep.apply(input, hx, weight_ih, weight_hh, bias_ih, bias_hh)


# --------------------------------------------------------------------------- packing variable-length batches
def _rows_index(xp, time_idx, batch_idx, batch_first):
    """The packed rows' index into a padded batch, on the data's device (the lengths they come from are
    host data, as PyTorch keeps them)."""
    if type(time_idx) is not xp.ndarray:
        time_idx, batch_idx = xp.asarray(time_idx), xp.asarray(batch_idx)
    return (batch_idx, time_idx) if batch_first else (time_idx, batch_idx)


class PackRows(Function):
    """Gather the valid rows of a padded batch into packed order: ``out[k] = padded[time[k], batch[k]]``.

    ``padded`` (T, B, *) or, with ``batch_first``, (B, T, *); ``time``/``batch`` are int arrays of the
    N packed rows. Returns (N, *).
    """

    def forward(ctx, padded, time_idx, batch_idx, batch_first=False):
        ctx.shape, ctx.dtype = padded.shape, padded.dtype
        ctx.time_batch, ctx.batch_first = (time_idx, batch_idx), batch_first
        ctx.index = _rows_index(array_module(padded), time_idx, batch_idx, batch_first)
        return padded[ctx.index]

    def backward(ctx, grad):
        xp = array_module(grad)
        out = xp.zeros(ctx.shape, ctx.dtype)
        out[ctx.index] = grad
        return out, None, None

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda v, *_: PackRows.apply(v, *ctx.time_batch, batch_first=ctx.batch_first))


class UnpackRows(Function):
    """Scatter packed rows (N, *) into a padded batch filled with ``padding_value``; the inverse of ``PackRows``."""

    def forward(ctx, data, time_idx, batch_idx, shape=None, padding_value=0.0, batch_first=False):
        xp = array_module(data)
        ctx.time_batch, ctx.shape, ctx.batch_first = (time_idx, batch_idx), shape, batch_first
        ctx.index = _rows_index(xp, time_idx, batch_idx, batch_first)
        out = xp.full(shape, padding_value, data.dtype)
        out[ctx.index] = data
        return out

    def backward(ctx, grad):
        return grad[ctx.index], None, None

    def grad_graph(ctx, grad):
        # The padding is a constant: the op's linear part scatters into zeros.
        return ctx.graph_linear((grad,), lambda v, *_: UnpackRows.apply(v, *ctx.time_batch, shape=ctx.shape,
                                                                        batch_first=ctx.batch_first))


class PadStack(Function):
    """Stack sequences of different lengths (L_i, *) into one padded (T, B, *) or (B, T, *) array."""

    def forward(ctx, *seqs, batch_first=False, padding_value=0.0, left=False):
        xp = array_module(seqs[0])
        T = max(s.shape[0] for s in seqs)
        B = len(seqs)
        trail = seqs[0].shape[1:]
        dtype = xp.result_type(*seqs)
        out = xp.full((B, T) + trail if batch_first else (T, B) + trail, padding_value, dtype)
        spans = []
        for b, s in enumerate(seqs):
            n = s.shape[0]
            lo = T - n if left else 0
            spans.append((lo, lo + n))
            if batch_first:
                out[b, lo:lo + n] = s
            else:
                out[lo:lo + n, b] = s
        ctx.spans, ctx.batch_first = spans, batch_first
        ctx.left = left
        return out

    def backward(ctx, grad):
        if ctx.batch_first:
            return tuple(grad[b, lo:hi] for b, (lo, hi) in enumerate(ctx.spans))
        return tuple(grad[lo:hi, b] for b, (lo, hi) in enumerate(ctx.spans))

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda *seqs: PadStack.apply(*seqs, batch_first=ctx.batch_first,
                                                                       left=ctx.left))


class SplitPadded(Function):
    """The inverse of ``PadStack``: the first ``lengths[b]`` steps of every batch entry, as separate arrays."""

    def forward(ctx, padded, lengths=(), batch_first=False):
        ctx.shape, ctx.dtype, ctx.lengths, ctx.batch_first = padded.shape, padded.dtype, lengths, batch_first
        if batch_first:
            return tuple(padded[b, :n].copy() for b, n in enumerate(lengths))
        return tuple(padded[:n, b].copy() for b, n in enumerate(lengths))

    def backward(ctx, *grads):
        xp = array_module(next(g for g in grads if g is not None))
        out = xp.zeros(ctx.shape, ctx.dtype)
        for b, (n, g) in enumerate(zip(ctx.lengths, grads)):
            if g is not None:
                if ctx.batch_first:
                    out[b, :n] = g
                else:
                    out[:n, b] = g
        return out

    def grad_graph(ctx, *grads):
        return ctx.graph_linear(grads, lambda v: SplitPadded.apply(v, lengths=ctx.lengths, batch_first=ctx.batch_first))


# --------------------------------------------------------------------------- hidden-state plumbing
def _on_device_of(like, order):
    """A batch order (sorting indices, host data until now) on the device of the array ``like``."""
    if order is None or type(order) is type(like):
        return order
    return array_module(like).asarray(order)


class SplitStates(Function):
    """Split initial states (L*D, B, H) into L*D arrays (B, H), reordering the batch by ``order`` if given."""

    def forward(ctx, hx, order=None):
        ctx.order = order = _on_device_of(hx, order)
        if order is not None:
            hx = hx[:, order]
        return tuple(hx[k].copy() for k in range(hx.shape[0]))

    def backward(ctx, *grads):
        ref = next(g for g in grads if g is not None)
        xp = array_module(ref)
        out = xp.zeros((len(grads),) + ref.shape, ref.dtype)
        for k, g in enumerate(grads):
            if g is not None:
                out[k] = g
        if ctx.order is not None:
            unsorted = xp.empty_like(out)
            unsorted[:, ctx.order] = out
            out = unsorted
        return out

    def grad_graph(ctx, *grads):
        return ctx.graph_linear(grads, lambda v: SplitStates.apply(v, order=ctx.order))


class StackStates(Function):
    """Stack final states (B, H) of every layer-direction into (L*D, B, H), batch reordered by ``order``."""

    def forward(ctx, *states, order=None):
        ctx.order = order = _on_device_of(states[0], order)
        out = array_module(states[0]).stack(states)
        if order is not None:
            out = out[:, order]
        return out

    def backward(ctx, grad):
        if ctx.order is not None:
            xp = array_module(grad)
            back = xp.empty_like(grad)
            back[:, ctx.order] = grad
            grad = back
        return tuple(grad[k] for k in range(grad.shape[0]))

    def grad_graph(ctx, grad):
        return ctx.graph_linear((grad,), lambda *states: StackStates.apply(*states, order=ctx.order))
