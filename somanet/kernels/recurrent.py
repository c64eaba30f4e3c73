"""Fast kernels of the recurrent layers (``ops/recurrent.py``: Elman RNN, LSTM and GRU, whole sequences
and single cell steps), registered as op ``"recurrent"``.

The reference in ``ops/recurrent.py`` is the plain batch-major step loop: ``z = x_t W_ih^T + h W_hh^T``,
the gates, and backward-through-time step by step. The kernels here compute the same results faster on
NumPy:

- ``"blocked"``: one layer-direction as a feature-major loop. The input projection of all steps is one
  GEMM before the loop (for an LSTM on dense padded input it rides in the step product instead,
  ``[W_hh | W_ih | b] @ [h; x_t; 1]``); inside the loop a state is ``(features, B)``, so every gate of a
  step is one contiguous block of rows, and the step product ``W_hh @ h`` is cut into row blocks of
  ``W_hh`` (one stacked ``matmul``). A step's product is usually just above OpenBLAS's small-product
  limit (``blas.SMALL_GEMM``), so whole it would re-pack the weight at every step; in blocks under the
  limit OpenBLAS reads it in place. Every output element is still one dot product over the full ``K``.
  With more than one BLAS thread a product of ``THREADED_GEMM`` multiply-adds or more stays whole:
  OpenBLAS threads it, but never the small blocks. Sigmoid gates are computed as ``0.5 * tanh(z / 2) +
  0.5`` (halving the gate rows of the weights is exact), so one ``tanh`` covers every gate of a step.
  Buffers are allocated once per call; without gradient recording an LSTM keeps one step's gates in
  cache instead of streaming through ``(T, 4H, B)`` buffers. Backward does everything that does not
  depend on the incoming gradient for all steps at once, and the weight gradients are one GEMM each.
- ``"batch_threads"``: the batch entries of a recurrence are independent, so a padded sequence runs as
  one batch block per thread (``threads.split_batch``, BLAS single-threaded meanwhile), each block a whole
  ``"blocked"`` layer-direction, time loop and weight-gradient GEMMs included; the blocks' weight
  gradients are summed. That is one hand-over per layer, where OpenBLAS would thread each step's small
  GEMM separately. Each block owns its buffers (threads writing halves of the same cache lines lose the
  gain). Packed sequences, whose batch width changes from step to step, and cell steps run whole.

The chooser takes ``"batch_threads"`` for padded NumPy batches whose recurrent multiply-adds reach
``threads.PARALLEL_MIN_WORK`` with several threads, else ``"blocked"`` for NumPy arrays and
``"reference"`` for other array libraries (CuPy). A Numba kernel for the gates' elementwise math was
measured slower than NumPy's vectorised ``tanh`` at the benchmark's sizes and is not kept
(docs/dev/kernels.md).

Shapes: ``T`` steps, ``B`` batch, ``I`` input features, ``H`` hidden size, ``P`` output (projection)
size (``P == H`` without projection), ``N`` rows of a packed sequence.
"""
import numpy as np

from .. import backend
from ..autograd.grad_mode import is_grad_enabled, set_grad_enabled
from ..backend import array_module
from . import _select, threads
from .blas import SMALL_GEMM

__all__ = ["MIN_BLOCK_ROWS", "THREADED_GEMM", "row_blocks", "choose"]

# The positional inputs of each sequence Function, in ``apply`` order (as in ``ops/recurrent.py``).
RNN_INPUTS = ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "emb")
LSTM_INPUTS = ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr", "emb")
GRU_INPUTS = ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "emb")

#: Fewest rows of ``W_hh`` per block: thinner blocks lose more to per-call overhead than packing costs.
MIN_BLOCK_ROWS = 8
#: Multiply-adds from which a step product stays whole when BLAS has several threads.
THREADED_GEMM = 1 << 20


def row_blocks(w, cols):
    """How many row blocks to cut ``w`` (M, K) into for products with ``cols`` right-hand columns: the
    fewest that bring each block under ``SMALL_GEMM`` with at least ``MIN_BLOCK_ROWS`` rows and an even
    split, else 1 (also when BLAS threads the whole product)."""
    M, K = w.shape
    if M * K * cols >= THREADED_GEMM and threads.blas_threads() > 1:
        return 1
    for n in range(1, M // MIN_BLOCK_ROWS + 1):
        if M % n == 0 and (M // n) * K * cols <= SMALL_GEMM:
            return n
    return 1


def _row_blocks(w, cols):
    """``w`` (M, K) as the stack (n, M // n, K) of ``row_blocks(w, cols)`` row blocks."""
    n = row_blocks(w, cols)
    return w.reshape(n, w.shape[0] // n, w.shape[1])


def _blocked_out(buf, n):
    """(M, B) buffer as the (n, M // n, B) view matching ``_row_blocks``."""
    return buf.reshape(n, buf.shape[0] // n, buf.shape[1])


# --------------------------------------------------------------------------- sequence layout
class _Layout:
    """Where each time step lives and in which order steps run.

    Rows (inputs, outputs, the per-row gradients of the weights) are time-major: step ``t`` owns rows
    ``offs[t] : offs[t] + bs[t]``. Inside the time loop everything is feature-major: a state is
    ``(features, B)``, the recurrent product is ``W_hh @ h^T`` (the transpose of ``h @ W_hh^T``), and
    every gate of a step is one contiguous block of rows.
    """

    __slots__ = ("T", "B", "N", "bs", "offs", "order", "packed", "reverse")

    def __init__(self, x, batch_sizes, reverse):
        if batch_sizes is None:
            T, B = x.shape[0], x.shape[1]
            bs = [B] * T
            self.packed = False
        else:
            bs = [int(b) for b in batch_sizes]
            T, B = len(bs), (bs[0] if bs else 0)
            self.packed = True
        offs = [0] * T
        acc = 0
        for t in range(T):
            offs[t] = acc
            acc += bs[t]
        self.T, self.B, self.N, self.bs, self.offs = T, B, acc, bs, offs
        self.reverse = reverse
        self.order = range(T - 1, -1, -1) if reverse else range(T)

    # Slots of a state stack (T + 1, features, B): step t reads slot ``prev_slot(t)`` and writes
    # ``out_slot(t)``; the initial state sits in the extra slot.
    def out_slot(self, t):
        return t if self.reverse else t + 1

    def prev_slot(self, t):
        return t + 1 if self.reverse else t

    def buffer(self, shape, dtype, xp):
        """A per-step buffer; zeroed for packed input so the columns a step does not use stay finite."""
        return xp.zeros(shape, dtype) if self.packed else xp.empty(shape, dtype)

    def states(self, init, width, dtype, xp, S=None):
        """The feature-major state stack (T + 1, width, B) with ``init`` (B, width) (or zeros) in place;
        ``S`` is a (T + 1, width, B) view to use instead of a new buffer."""
        if S is None:
            S = self.buffer((self.T + 1, width, self.B), dtype, xp)
        k = self.T if self.reverse else 0
        if init is None:
            S[k] = 0
        else:
            S[k] = init.T
        return S

    def prev_view(self, S):
        """(T, width, B): for every step, the state it started from."""
        return S[1:] if self.reverse else S[:-1]

    def out_view(self, S):
        """(T, width, B): for every step, the state it produced."""
        return S[:-1] if self.reverse else S[1:]

    def start_late(self, t, S, init):
        """Packed, reverse direction: the sequences that begin at step ``t`` begin from their initial state."""
        if self.packed and self.reverse and t < self.T - 1:
            n, b = self.bs[t + 1], self.bs[t]
            if n < b:
                S[t + 1][:, n:b] = 0 if init is None else init[n:b].T

    def rows(self, S, init, width, dtype, xp):
        """``(out, prev)``: the per-row (N, width) outputs of the state stack and the states the same rows
        started from (the left operand of the recurrent weight's gradient).

        Padded input: ``out`` and ``prev`` are two views of one buffer shifted by a step, with the
        initial state in the extra step, so ``prev`` costs nothing.
        """
        T, B, N = self.T, self.B, self.N
        if not self.packed:
            buf = xp.empty((N + B, width), dtype)
            if self.reverse:
                out, prev, first = buf[:N], buf[B:], buf[N:]
            else:
                out, prev, first = buf[B:], buf[:N], buf[:B]
            xp.copyto(out.reshape(T, B, width), self.out_view(S).transpose(0, 2, 1))
            first[...] = 0 if init is None else init
            return out, prev
        out = xp.empty((N, width), dtype)
        prev = xp.empty((N, width), dtype)
        for t in range(T):
            lo, b = self.offs[t], self.bs[t]
            out[lo:lo + b] = S[self.out_slot(t)][:, :b].T
        for t in range(T):
            self._fill_prev(t, out, prev, init)
        return out, prev

    def _fill_prev(self, t, out, prev, init):
        lo, b = self.offs[t], self.bs[t]
        kept, src = 0, 0
        if not self.reverse and t > 0:
            kept, src = b, self.offs[t - 1]
        elif self.reverse and t < self.T - 1:
            kept, src = self.bs[t + 1], self.offs[t + 1]
        if kept:
            prev[lo:lo + kept] = out[src:src + kept]
        if kept < b:
            prev[lo + kept:lo + b] = 0 if init is None else init[kept:b]

    def final_state(self, S, width, dtype, xp):
        """The state of every batch entry after its own last step, ``(B, width)``."""
        if self.reverse:
            return S[0].T.copy()
        if not self.packed:
            return S[self.T].T.copy()
        res = xp.empty((self.B, width), dtype)
        for t in range(self.T):
            nxt = self.bs[t + 1] if t + 1 < self.T else 0
            if nxt < self.bs[t]:
                res[nxt:self.bs[t]] = S[t + 1][:, nxt:self.bs[t]].T
        return res



def _flat_input(x, layout):
    return x if layout.packed else x.reshape(layout.N, x.shape[-1])


def _shape_out(rows, x, layout):
    return rows if layout.packed else rows.reshape(layout.T, layout.B, rows.shape[-1])


def _grad_rows(grad, layout):
    if grad is None:
        return None
    return grad if layout.packed else grad.reshape(layout.N, grad.shape[-1])


def _state_grad(grad, B, width, dtype, xp):
    """The incoming gradient of a final state (B, width) as a feature-major (width, B) accumulator."""
    if grad is None:
        return xp.zeros((width, B), dtype)
    out = xp.empty((width, B), dtype)
    out[...] = grad.T
    return out


def _gate_scale(n_gates, H, sigmoid_gates, dtype, xp):
    """Row scale of the gate pre-activations: 0.5 on sigmoid gates (see the module docstring), else 1."""
    scale = xp.ones(n_gates * H, dtype)
    for k in sigmoid_gates:
        scale[k * H:(k + 1) * H] = 0.5
    return scale


def _input_projection(x, lay, w_ih, scale, bias, emb, xp):
    """Every step's input projection as one feature-major (G, N) array, and what backward needs of ``x``.

    Dense input: ``(w_ih * scale) @ x^T + bias``, one GEMM. Token input (``emb`` given, ``x`` the int
    symbols): the embedding table is projected once per vocabulary entry, ``(w_ih * scale) @ emb^T``,
    and gathered by token, which replaces an (N, I) x (I, G) GEMM by a (V, I) x (I, G) one when the
    vocabulary is small.
    """
    w = w_ih if scale is None else w_ih * scale[:, None]
    if emb is None:
        x2d = _flat_input(x, lay)
        gx = xp.matmul(w, x2d.T)
        if bias is not None:
            gx += bias[:, None]
        return gx, x2d
    tokens = x.reshape(-1)
    table = xp.matmul(w, emb.T)
    if bias is not None:
        table += bias[:, None]
    return xp.take(table, tokens, axis=1), tokens


def _token_sums(parts, tokens, vocab, xp):
    """Per-token sums of gradient columns: (G_p, N) -> (G_p, V) for each part, one GEMM with a one-hot."""
    onehot = xp.zeros((tokens.size, vocab), parts[0].dtype)
    onehot[xp.arange(tokens.size), tokens] = 1
    return [xp.matmul(dz, onehot) for dz in parts]


def _input_grads(ctx, parts, x_saved, w_ih, emb, inputs):
    """``(dx, dW_ih, d_emb)`` from the pre-activation gradients of every step; ``inputs`` names the
    Function's inputs (``RNN_INPUTS``, ...), to ask which of them need a gradient.

    ``parts`` pairs row slices of ``w_ih`` with their (G_p, N) gradients (one part for RNN/LSTM, the
    r,z and n rows for GRU). Dense input: ``dx = dz^T @ w_ih`` and ``dW_ih = dz @ x``, one GEMM each.
    Token input: the gradients are first summed per vocabulary entry, then ``dW_ih = D @ emb`` and
    ``d_emb = D^T @ w_ih`` are tiny GEMMs.
    """
    xp = array_module(w_ih)
    need_w = ctx.needs(inputs.index("w_ih"))
    dw_ih = xp.empty_like(w_ih) if need_w else None
    if emb is None:
        dx = None
        if ctx.needs(inputs.index("x")):
            for rows, dz in parts:
                term = xp.matmul(dz.T, w_ih[rows])
                dx = term if dx is None else dx + term
            dx = dx.reshape(ctx.x_shape)
        if need_w:
            for rows, dz in parts:
                xp.matmul(dz, x_saved, out=dw_ih[rows])
        return dx, dw_ih, None
    sums = _token_sums([dz for _, dz in parts], x_saved, emb.shape[0], xp)
    d_emb = None
    for (rows, _), D in zip(parts, sums):
        if need_w:
            xp.matmul(D, emb, out=dw_ih[rows])
        if ctx.needs(inputs.index("emb")):
            term = xp.matmul(D.T, w_ih[rows])
            d_emb = term if d_emb is None else d_emb + term
    if d_emb is not None and ctx.padding_idx is not None:
        d_emb[ctx.padding_idx] = 0
    return None, dw_ih, d_emb


def rnn_forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, emb, nonlinearity, batch_sizes, reverse, padding_idx):
    """``RNNSequence.forward`` on the feature-major layout, step products in row blocks."""
    xp = array_module(w_hh)
    lay = _Layout(x, batch_sizes, reverse)
    dtype = w_hh.dtype
    H = w_hh.shape[0]
    gx, x_saved = _input_projection(x, lay, w_ih, None, None if b_ih is None else b_ih + b_hh, emb, xp)
    hs = lay.states(h0, H, dtype, xp)
    relu = nonlinearity == "relu"
    w_blk = _row_blocks(w_hh, lay.B)
    nb = w_blk.shape[0]
    matmul, maximum, tanh = xp.matmul, xp.maximum, xp.tanh
    for t in lay.order:
        lo, b = lay.offs[t], lay.bs[t]
        lay.start_late(t, hs, h0)
        h_full = hs[lay.out_slot(t)]
        h = h_full[:, :b]
        matmul(w_blk, hs[lay.prev_slot(t)][:, :b], out=_blocked_out(h_full, nb)[:, :, :b])
        h += gx[:, lo:lo + b]
        if relu:
            maximum(h, 0, out=h)
        else:
            tanh(h, out=h)
    out, prev = lay.rows(hs, h0, H, dtype, xp)
    h_n = lay.final_state(hs, H, dtype, xp)
    ctx.save_for_backward(x_saved, hs, prev, w_ih, w_hh, emb)
    ctx.lay, ctx.relu, ctx.x_shape, ctx.has_bias = lay, relu, x.shape, b_ih is not None
    ctx.padding_idx = padding_idx
    ctx.unsaved = (h0, b_ih, b_hh)  # small arrays only create_graph's re-run reads
    return _shape_out(out, x, lay), h_n


def rnn_backward(ctx, grad_out, grad_hn):
    """Backward of ``rnn_forward``."""
    x_saved, hs, prev, w_ih, w_hh, emb = ctx.saved
    lay = ctx.lay
    xp = array_module(hs)
    dtype = hs.dtype
    H = w_hh.shape[0]
    out = lay.out_view(hs)
    # Derivative of the nonlinearity for every step at once, from its output.
    if ctx.relu:
        deriv = (out > 0).astype(dtype)
    else:
        deriv = out * out
        xp.subtract(1, deriv, out=deriv)
    g_rows = _grad_rows(grad_out, lay)
    dz = xp.empty((H, lay.N), dtype)
    dh = _state_grad(grad_hn, lay.B, H, dtype, xp)
    w_blk = _row_blocks(xp.ascontiguousarray(w_hh.T), lay.B)
    d_blk = _blocked_out(dh, w_blk.shape[0])
    # The step's gradient is formed in a small contiguous buffer: BLAS's unpacked small-matrix path is
    # slow on a right operand with the long row stride of a column slice of ``dz``.
    dz_step = xp.empty((H, lay.B), dtype)
    matmul, multiply = xp.matmul, xp.multiply
    for t in reversed(lay.order):
        lo, b = lay.offs[t], lay.bs[t]
        d = dh[:, :b]
        if g_rows is not None:
            d += g_rows[lo:lo + b].T
        dzt = dz_step[:, :b]
        multiply(d, deriv[t][:, :b], out=dzt)
        matmul(w_blk, dzt, out=d_blk[:, :, :b])
        dz[:, lo:lo + b] = dzt
    dx, dw_ih, d_emb = _input_grads(ctx, [(slice(None), dz)], x_saved, w_ih, emb, RNN_INPUTS)
    dw_hh = dz @ prev if ctx.needs(RNN_INPUTS.index("w_hh")) else None
    db = dz.sum(1) if ctx.has_bias else None
    return dx, xp.ascontiguousarray(dh.T), dw_ih, dw_hh, db, db, d_emb


def rnn_inputs(ctx):
    """The arrays of the inputs of ``rnn_forward``, in ``apply`` order, for create_graph's re-run."""
    x_saved, _, _, w_ih, w_hh, emb = ctx.saved
    h0, b_ih, b_hh = ctx.unsaved
    return x_saved.reshape(ctx.x_shape), h0, w_ih, w_hh, b_ih, b_hh, emb


def lstm_forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, emb, batch_sizes, reverse, padding_idx):
    """``LSTMSequence.forward`` on the feature-major layout, step products in row blocks."""
    xp = array_module(w_hh)
    lay = _Layout(x, batch_sizes, reverse)
    dtype = w_hh.dtype
    H = w_hh.shape[0] // 4
    P = w_hh.shape[1]
    T, B, N = lay.T, lay.B, lay.N
    scale = _gate_scale(4, H, (0, 1, 3), dtype, xp)
    bias = None if b_ih is None else (b_ih + b_hh) * scale
    # Dense padded input: each step's input rides in the recurrent GEMM, ``[W_hh | W_ih | b] @ [h; x_t; 1]``
    # over a stack whose slot holds a state and the input of the step that starts from it: one GEMM
    # instead of the recurrent part, a separate projection and a pass adding them.
    fused = emb is None and not lay.packed and T > 0
    if fused:
        I = x.shape[-1]
        x_saved = x.reshape(N, I)
        stack = xp.empty((T + 1, P + I + (bias is not None), B), dtype)
        x_slots = stack[1:, P:P + I] if reverse else stack[:T, P:P + I]
        xp.copyto(x_slots, x.transpose(0, 2, 1))
        stack[0 if reverse else T, P:] = 0  # the slot no step starts from
        if bias is not None:
            stack[:, P + I] = 1
        # [W_hh | W_ih | b], gate rows scaled, written in place.
        w_step = xp.empty((4 * H, stack.shape[1]), dtype)
        xp.multiply(w_hh, scale[:, None], out=w_step[:, :P])
        xp.multiply(w_ih, scale[:, None], out=w_step[:, P:P + I])
        if bias is not None:
            w_step[:, P + I] = bias
        hs = lay.states(h0, P, dtype, xp, S=stack[:, :P])
        operand = stack
    else:
        gx, x_saved = _input_projection(x, lay, w_ih, scale, bias, emb, xp)
        w_step = w_hh * scale[:, None]
        hs = lay.states(h0, P, dtype, xp)
        operand = hs
    cs = lay.states(c0, H, dtype, xp)
    # Without gradient recording backward never runs: one step's gates and tanh(c) are then reused
    # in place and stay in cache instead of streaming through (T, 4H, B) buffers.
    keep = is_grad_enabled()
    gates = lay.buffer((T if keep else 1, 4 * H, B), dtype, xp)
    tanh_c = lay.buffer((T if keep else 1, H, B), dtype, xp)
    cell_out = xp.empty((H, N), dtype) if w_hr is not None else None
    tmp_h = xp.empty((H, B), dtype)
    w_blk = _row_blocks(w_step, B)
    nb = w_blk.shape[0]
    # The recurrent GEMM writes straight into the step's gate rows, seen as ``w_blk``'s row blocks.
    gates_blk = gates.reshape(gates.shape[0], nb, 4 * H // nb, B)
    matmul, multiply, tanh = xp.matmul, xp.multiply, xp.tanh
    packed, reverse, offs, bs = lay.packed, lay.reverse, lay.offs, lay.bs
    views_of = None
    for t in lay.order:
        lo, b = offs[t], bs[t]
        if packed:
            lay.start_late(t, hs, h0)
            lay.start_late(t, cs, c0)
        k = t if keep else 0
        # Slicing costs about as much as a small ufunc call, so the step's views are only rebuilt
        # when the gate slot or the batch width changes (never, for a full batch without grad).
        if views_of != (k, b):
            views_of = (k, b)
            g_out = gates_blk[k][:, :, :b]
            g = gates[k][:, :b]
            sig_if, g_i, g_f, g_g, g_o = g[:2 * H], g[:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:]
            tc = tanh_c[k][:, :b]
            th = tmp_h[:, :b]
        prev, nxt = (t + 1, t) if reverse else (t, t + 1)
        matmul(w_blk, operand[prev][:, :b], out=g_out)
        if not fused:
            g += gx[:, lo:lo + b]
        tanh(g, out=g)
        sig_if *= 0.5
        sig_if += 0.5
        g_o *= 0.5
        g_o += 0.5
        c = cs[nxt][:, :b]
        multiply(g_f, cs[prev][:, :b], out=c)
        multiply(g_i, g_g, out=th)
        c += th
        tanh(c, out=tc)
        if w_hr is None:
            multiply(g_o, tc, out=hs[nxt][:, :b])
        else:
            m = cell_out[:, lo:lo + b]
            multiply(g_o, tc, out=m)
            matmul(w_hr, m, out=hs[nxt][:, :b])
    out, hprev = lay.rows(hs, h0, P, dtype, xp)
    h_n = lay.final_state(hs, P, dtype, xp)
    c_n = lay.final_state(cs, H, dtype, xp)
    ctx.save_for_backward(x_saved, gates, cs, tanh_c, hprev, w_ih, w_hh, cell_out, w_hr, emb)
    ctx.lay, ctx.x_shape, ctx.has_bias, ctx.padding_idx = lay, x.shape, b_ih is not None, padding_idx
    ctx.unsaved = (h0, c0, b_ih, b_hh)  # small arrays only create_graph's re-run reads
    return _shape_out(out, x, lay), h_n, c_n


def lstm_backward(ctx, grad_out, grad_hn, grad_cn):
    """Backward of ``lstm_forward``."""
    x_saved, gates, cs, tanh_c, hprev, w_ih, w_hh, cell_out, w_hr, emb = ctx.saved
    lay = ctx.lay
    xp = array_module(gates)
    dtype = gates.dtype
    T, B, N = lay.T, lay.B, lay.N
    H = w_hh.shape[0] // 4
    P = w_hh.shape[1]
    i, f, g, o = (gates[:, k * H:(k + 1) * H] for k in range(4))
    # Everything that does not depend on the incoming gradient is computed for all steps at once:
    # pre[:, gate] * dc (or * dm for o) is the gradient of that gate's pre-activation.
    pre = 1 - gates
    pre *= gates
    pre_g = pre[:, 2 * H:3 * H]
    xp.multiply(g, g, out=pre_g)
    xp.subtract(1, pre_g, out=pre_g)
    pre[:, :H] *= g
    pre[:, H:2 * H] *= lay.prev_view(cs)
    pre_g *= i
    pre[:, 3 * H:] *= tanh_c
    dc_from_m = tanh_c * tanh_c
    xp.subtract(1, dc_from_m, out=dc_from_m)
    dc_from_m *= o
    pre4 = pre.reshape(T, 4, H, B)

    g_rows = _grad_rows(grad_out, lay)
    dz = xp.empty((4 * H, N), dtype)
    dh = _state_grad(grad_hn, B, P, dtype, xp)
    dc = _state_grad(grad_cn, B, H, dtype, xp)
    w_blk = _row_blocks(xp.ascontiguousarray(w_hh.T), B)
    d_blk = _blocked_out(dh, w_blk.shape[0])
    # The step's gradient is formed in a small contiguous buffer (see rnn_backward).
    dz_step = xp.empty((4 * H, B), dtype)
    dz_step4 = dz_step.reshape(4, H, B)
    tmp = xp.empty((H, B), dtype)
    if w_hr is not None:
        dh_cols = xp.empty((P, N), dtype)
        dm_buf = xp.empty((H, B), dtype)
        w_hr_t = xp.ascontiguousarray(w_hr.T)
    matmul, multiply = xp.matmul, xp.multiply
    offs, bs = lay.offs, lay.bs
    width = None
    for t in reversed(lay.order):
        lo, b = offs[t], bs[t]
        hi = lo + b
        # Views of the fixed-size buffers change only with the batch width (see lstm_forward).
        if width != b:
            width = b
            d, dct, th, dzt = dh[:, :b], dc[:, :b], tmp[:, :b], dz_step[:, :b]
            dz_ifg, dz_o, d_out = dz_step4[:3, :, :b], dz_step4[3, :, :b], d_blk[:, :, :b]
            dm = d if w_hr is None else dm_buf[:, :b]
        if g_rows is not None:
            d += g_rows[lo:hi].T
        if w_hr is not None:
            dh_cols[:, lo:hi] = d
            matmul(w_hr_t, d, out=dm)
        pre_t = pre4[t]
        if b == B:
            multiply(dm, dc_from_m[t], out=th)
            dct += th
            multiply(pre_t[:3], dct, out=dz_ifg)
            multiply(pre_t[3], dm, out=dz_o)
            dct *= f[t]
        else:
            multiply(dm, dc_from_m[t][:, :b], out=th)
            dct += th
            multiply(pre_t[:3, :, :b], dct, out=dz_ifg)
            multiply(pre_t[3, :, :b], dm, out=dz_o)
            dct *= f[t][:, :b]
        matmul(w_blk, dzt, out=d_out)
        dz[:, lo:hi] = dzt
    dx, dw_ih, d_emb = _input_grads(ctx, [(slice(None), dz)], x_saved, w_ih, emb, LSTM_INPUTS)
    dw_hh = dz @ hprev if ctx.needs(LSTM_INPUTS.index("w_hh")) else None
    db = dz.sum(1) if ctx.has_bias else None
    dw_hr = dh_cols @ cell_out.T if w_hr is not None else None
    return dx, xp.ascontiguousarray(dh.T), xp.ascontiguousarray(dc.T), dw_ih, dw_hh, db, db, dw_hr, d_emb


def lstm_inputs(ctx):
    """The arrays of the inputs of ``lstm_forward``, in ``apply`` order, for create_graph's re-run."""
    x_saved, w_ih, w_hh, w_hr, emb = (ctx.saved[k] for k in (0, 5, 6, 8, 9))
    h0, c0, b_ih, b_hh = ctx.unsaved
    return x_saved.reshape(ctx.x_shape), h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, emb


def gru_forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, emb, batch_sizes, reverse, padding_idx):
    """``GRUSequence.forward`` on the feature-major layout, step products in row blocks."""
    xp = array_module(w_hh)
    lay = _Layout(x, batch_sizes, reverse)
    dtype = w_hh.dtype
    H = w_hh.shape[1]
    T, B = lay.T, lay.B
    scale = _gate_scale(3, H, (0, 1), dtype, xp)
    bias = None
    if b_ih is not None:
        # b_hr and b_hz add to the input side; b_hn stays inside r * (W_hn h + b_hn).
        bias = b_ih * scale
        bias[:2 * H] += 0.5 * b_hh[:2 * H]
    gx, x_saved = _input_projection(x, lay, w_ih, scale, bias, emb, xp)
    b_hn = None if b_hh is None else b_hh[2 * H:, None]
    w_hh_s = w_hh * scale[:, None]
    hs = lay.states(h0, H, dtype, xp)
    act = lay.buffer((T, 3 * H, B), dtype, xp)      # r, z, n of every step
    hn_part = lay.buffer((T, H, B), dtype, xp)      # W_hn h + b_hn, needed by backward
    tmp = xp.empty((3 * H, B), dtype)
    w_blk = _row_blocks(w_hh_s, B)
    tmp_blk = _blocked_out(tmp, w_blk.shape[0])
    matmul, add, subtract, multiply, tanh = xp.matmul, xp.add, xp.subtract, xp.multiply, xp.tanh
    for t in lay.order:
        lo, b = lay.offs[t], lay.bs[t]
        hi = lo + b
        lay.start_late(t, hs, h0)
        hp = hs[lay.prev_slot(t)][:, :b]
        gh = tmp[:, :b]
        matmul(w_blk, hp, out=tmp_blk[:, :, :b])
        a = act[t][:, :b]
        rz = a[:2 * H]
        add(gh[:2 * H], gx[:2 * H, lo:hi], out=rz)
        tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5
        hn = hn_part[t][:, :b]
        if b_hn is not None:
            add(gh[2 * H:], b_hn, out=hn)
        else:
            hn[...] = gh[2 * H:]
        n = a[2 * H:]
        multiply(rz[:H], hn, out=n)
        n += gx[2 * H:, lo:hi]
        tanh(n, out=n)
        h = hs[lay.out_slot(t)][:, :b]
        subtract(hp, n, out=h)
        h *= rz[H:]
        h += n
    out, hprev = lay.rows(hs, h0, H, dtype, xp)
    h_n = lay.final_state(hs, H, dtype, xp)
    ctx.save_for_backward(x_saved, act, hn_part, hs, hprev, w_ih, w_hh, emb)
    ctx.lay, ctx.x_shape, ctx.has_bias, ctx.padding_idx = lay, x.shape, b_ih is not None, padding_idx
    ctx.unsaved = (h0, b_ih, b_hh)  # small arrays only create_graph's re-run reads
    return _shape_out(out, x, lay), h_n


def gru_backward(ctx, grad_out, grad_hn):
    """Backward of ``gru_forward``."""
    x_saved, act, hn_part, hs, hprev, w_ih, w_hh, emb = ctx.saved
    lay = ctx.lay
    xp = array_module(act)
    dtype = act.dtype
    N, B = lay.N, lay.B
    H = w_hh.shape[1]
    r, z, n = act[:, :H], act[:, H:2 * H], act[:, 2 * H:]
    # Per-step factors computed for all steps at once:
    #   dn_pre = dh * a_n, dz_pre = dh * a_z, dr_pre = dn_pre * a_r.
    a_n = n * n
    xp.subtract(1, a_n, out=a_n)
    a_n *= 1 - z
    a_z = lay.prev_view(hs) - n
    a_z *= z
    a_z *= 1 - z
    a_r = r * (1 - r)
    a_r *= hn_part
    g_rows = _grad_rows(grad_out, lay)
    # Recurrent-side pre-activation gradients (r, z, r * dn_pre) and the input-side n gradient.
    dzh = xp.empty((3 * H, N), dtype)
    dn_in = xp.empty((H, N), dtype)
    dh = _state_grad(grad_hn, B, H, dtype, xp)
    w_blk = _row_blocks(xp.ascontiguousarray(w_hh.T), B)
    d_blk = _blocked_out(dh, w_blk.shape[0])
    # The step's gradient is formed in a small contiguous buffer (see rnn_backward).
    dz_step = xp.empty((3 * H, B), dtype)
    tmp = xp.empty((H, B), dtype)
    matmul, multiply = xp.matmul, xp.multiply
    for t in reversed(lay.order):
        lo, b = lay.offs[t], lay.bs[t]
        hi = lo + b
        d = dh[:, :b]
        if g_rows is not None:
            d += g_rows[lo:hi].T
        dzt = dz_step[:, :b]
        dnt = dn_in[:, lo:hi]
        multiply(d, a_n[t][:, :b], out=dnt)
        multiply(d, a_z[t][:, :b], out=dzt[H:2 * H])
        multiply(dnt, a_r[t][:, :b], out=dzt[:H])
        multiply(dnt, r[t][:, :b], out=dzt[2 * H:])
        multiply(d, z[t][:, :b], out=tmp[:, :b])
        matmul(w_blk, dzt, out=d_blk[:, :, :b])
        dzh[:, lo:hi] = dzt
        d += tmp[:, :b]
    dx, dw_ih, d_emb = _input_grads(ctx, [(slice(0, 2 * H), dzh[:2 * H]), (slice(2 * H, 3 * H), dn_in)], x_saved,
                                    w_ih, emb, GRU_INPUTS)
    dw_hh = dzh @ hprev if ctx.needs(GRU_INPUTS.index("w_hh")) else None
    db_ih = db_hh = None
    if ctx.has_bias:
        db_hh = dzh.sum(1)
        db_ih = db_hh.copy()
        db_ih[2 * H:] = dn_in.sum(1)
    return dx, xp.ascontiguousarray(dh.T), dw_ih, dw_hh, db_ih, db_hh, d_emb


def gru_inputs(ctx):
    """The arrays of the inputs of ``gru_forward``, in ``apply`` order, for create_graph's re-run."""
    x_saved, w_ih, w_hh, emb = (ctx.saved[k] for k in (0, 5, 6, 7))
    h0, b_ih, b_hh = ctx.unsaved
    return x_saved.reshape(ctx.x_shape), h0, w_ih, w_hh, b_ih, b_hh, emb


class _Blocked:
    """The ``"blocked"`` kernel: ``<cell>_forward``, ``<cell>_backward`` and ``<cell>_inputs`` for the three
    cells, the batch whole."""

    splits_batch = False
    rnn_forward, rnn_backward = staticmethod(rnn_forward), staticmethod(rnn_backward)
    lstm_forward, lstm_backward = staticmethod(lstm_forward), staticmethod(lstm_backward)
    gru_forward, gru_backward = staticmethod(gru_forward), staticmethod(gru_backward)
    rnn_inputs, lstm_inputs, gru_inputs = staticmethod(rnn_inputs), staticmethod(lstm_inputs), staticmethod(gru_inputs)


def _block_count(x):
    """Batch blocks for a padded ``x`` (T, B, ...): one per thread, at least two (a forced kernel splits
    even on one thread), at most ``B``."""
    return min(x.shape[1], max(2, backend.get_num_threads()))


def forward_blocks(ctx, forward, x, states, shared, params):
    """``forward(sub, x_block, *state_blocks, *shared, **params)`` on batch blocks at once, each with its
    own context ``sub``; returns the outputs joined along the batch (axis 1 for the sequence output, 0
    for the final states). ``states`` are the (B, ...) initial states or None."""
    enabled = is_grad_enabled()  # grad mode is per thread: the blocks run under the caller's

    def block(lo, hi):
        sub = object.__new__(type(ctx))
        sub.batch_blocks = False
        with set_grad_enabled(enabled):
            outs = forward(sub, x[:, lo:hi], *(None if s is None else s[lo:hi] for s in states), *shared, **params)
        return sub, outs

    parts = threads.split_batch(block, x.shape[1], _block_count(x))
    subs = [sub for sub, _ in parts]
    ctx.n_blocks = len(subs)
    # The inputs are saved only so that the engine's in-place checks cover them; freeing ``saved`` after
    # backward frees the blocks' contexts too.
    ctx.save_for_backward(x, *states, *shared, *subs)
    outs = [o for _, o in parts]
    xp = backend.array_module(outs[0][0])
    first = xp.concatenate([o[0] for o in outs], axis=1)
    return (first,) + tuple(xp.concatenate([o[k] for o in outs], axis=0) for k in range(1, len(outs[0])))


def backward_blocks(ctx, grads):
    """Backward of ``forward_blocks``: each block's backward on its slice of ``grads`` (sequence output
    first, then the final states), at once; input and initial-state gradients joined along the batch,
    the shared inputs' gradients summed."""
    subs = ctx.saved[-ctx.n_blocks:]
    B = sum(sub.lay.B for sub in subs)
    index = {lo: i for i, (lo, _) in enumerate(threads.batch_ranges(B, len(subs)))}
    n_states = len(grads) - 1

    def block(lo, hi):
        sub = subs[index[lo]]
        sub.edges = ctx.edges
        g_out = None if grads[0] is None else grads[0][:, lo:hi]
        return type(sub).backward(sub, g_out, *(None if g is None else g[lo:hi] for g in grads[1:]))

    parts = threads.split_batch(block, B, len(subs))
    joined = []
    for i, blocks in enumerate(zip(*parts)):
        if blocks[0] is None:
            joined.append(None)
        elif i <= n_states:
            xp = backend.array_module(blocks[0])
            joined.append(xp.concatenate(blocks, axis=1 if i == 0 else 0))
        else:
            total = blocks[0].copy()
            for g in blocks[1:]:
                total += g
            joined.append(total)
    return tuple(joined)


class _BatchThreads(_Blocked):
    """The ``"batch_threads"`` kernel: batch blocks on threads, each block ``"blocked"``."""

    splits_batch = True
    forward = staticmethod(forward_blocks)
    backward = staticmethod(backward_blocks)


def _splittable(x, batch_sizes, w_hh, may_split):
    return may_split and batch_sizes is None and x.ndim >= 2 and x.shape[1] >= 2


def choose(x, batch_sizes, w_hh, may_split):
    """The chooser of ``"recurrent"`` for a layer-direction over ``x`` (padded (T, B, I), packed rows with
    ``batch_sizes``, or token ids), recurrent weight ``w_hh``; ``may_split``: whether the call may split
    its batch (False for cell steps and for the blocks themselves)."""
    if backend.array_module(w_hh) is not np:
        return "reference"
    if (_splittable(x, batch_sizes, w_hh, may_split)
            and threads.parallel_blocks(x.shape[1], x.shape[0] * x.shape[1] * w_hh.size) > 1):
        return "batch_threads"
    return "blocked"


def _numpy(x, batch_sizes, w_hh, may_split):
    return backend.array_module(w_hh) is np


_select.register("recurrent", "blocked", _Blocked, chooser=choose, supports=_numpy)
_select.register("recurrent", "batch_threads", _BatchThreads,
                 supports=lambda *args: _numpy(*args) and _splittable(*args))
