"""Recurrent ops: a whole layer-direction of an Elman RNN, LSTM or GRU as one ``Function``.

Every Function here runs one layer in one direction over the whole sequence:

- the input projection ``x @ W_ih^T`` of all time steps is one GEMM before the time loop;
- the loop computes only the recurrent part ``h_{t-1} @ W_hh^T`` and the gate nonlinearities, writing
  into buffers allocated once per call;
- backward-through-time is written by hand in the same Function: the loop only propagates the
  gradient through the recurrence; the weight gradients are one GEMM each over all steps afterwards.

Sequences come either padded, ``(T, B, I)`` time-major, or packed: ``(N, I)`` rows with
``batch_sizes`` (PyTorch's ``PackedSequence`` layout: step ``t`` owns the next ``batch_sizes[t]`` rows,
batch entries sorted by decreasing length). In the packed layout a step only touches the first
``batch_sizes[t]`` rows of the state, so a sequence that ended keeps its final state and, in the
reverse direction, a sequence that starts late starts from its initial state.

Sigmoid gates are computed as ``0.5 * tanh(z / 2) + 0.5``: halving the gate rows of the weights is
exact in binary floating point, so one ``tanh`` call covers every gate of a step and a fixed affine
map turns the sigmoid columns into sigmoids.

Shapes: ``T`` steps, ``B`` batch, ``I`` input features, ``H`` hidden size, ``P`` output (projection)
size (``P == H`` without projection), ``N`` rows of a packed sequence.
"""
import numpy as np

from .. import backend
from ..autograd.function import Function

__all__ = ["rnn_sequence", "lstm_sequence", "gru_sequence", "rnn_cell", "lstm_cell", "gru_cell"]


# --------------------------------------------------------------------------- sequence layout
class _Layout:
    """Where each time step lives in the flat ``(N, ...)`` row space, and in which order steps run."""

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

    def state_buffers(self, init, width, dtype, xp):
        """``(out, prev)``: per-row outputs and, for the same rows, the state each step started from.

        Padded input needs no copies: ``out`` and ``prev`` are two views of one buffer shifted by a
        step, with the initial state in the extra step. Packed input copies ``prev`` per step
        (see ``fill_prev``).
        """
        N, B = self.N, self.B
        if self.packed:
            return xp.empty((N, width), dtype), xp.empty((N, width), dtype)
        buf = xp.empty((N + B, width), dtype)
        if self.reverse:
            buf[N:] = 0 if init is None else init
            return buf[:N], buf[B:]
        buf[:B] = 0 if init is None else init
        return buf[B:], buf[:N]

    def fill_prev(self, t, out, prev, init):
        """Packed input: copy the state step ``t`` starts from into ``prev``'s rows for that step."""
        lo, b = self.offs[t], self.bs[t]
        if not self.reverse:
            if t == 0:
                src = None
                kept = 0
            else:
                kept = b
                src = self.offs[t - 1]
        else:
            if t == self.T - 1:
                kept = 0
            else:
                kept = self.bs[t + 1]
                src = self.offs[t + 1]
        if kept:
            prev[lo:lo + kept] = out[src:src + kept]
        if kept < b:
            prev[lo + kept:lo + b] = 0 if init is None else init[kept:b]

    def final_state(self, out, width, dtype, xp):
        """The state of every batch entry after its last step, ``(B, width)``."""
        B = self.B
        if self.reverse:
            return out[:B].copy()
        if not self.packed:
            return out[self.N - B:].copy()
        res = xp.empty((B, width), dtype)
        for t in range(self.T):
            nxt = self.bs[t + 1] if t + 1 < self.T else 0
            if nxt < self.bs[t]:
                res[nxt:self.bs[t]] = out[self.offs[t] + nxt:self.offs[t] + self.bs[t]]
        return res


def _flat_input(x, layout):
    return x if layout.packed else x.reshape(layout.N, x.shape[-1])


def _shape_out(rows, x, layout):
    return rows if layout.packed else rows.reshape(layout.T, layout.B, rows.shape[-1])


def _needs(ctx, i):
    edges = getattr(ctx, "edges", None)
    return edges is not None and edges[i] is not None


def _grad_rows(grad, layout):
    if grad is None:
        return None
    return grad if layout.packed else grad.reshape(layout.N, grad.shape[-1])


def _state_grad(grad, B, width, dtype, xp):
    return xp.zeros((B, width), dtype) if grad is None else grad.astype(dtype, copy=True)


def _input_grads(ctx, dz, x2d, w_ih, x_shape, w_ih_index):
    """``dx`` and ``dW_ih`` from the pre-activation gradient of every step, each one GEMM."""
    dx = dz @ w_ih if _needs(ctx, 0) else None
    if dx is not None:
        dx = dx.reshape(x_shape)
    dw_ih = dz.T @ x2d if _needs(ctx, w_ih_index) else None
    return dx, dw_ih


def _scaled_transpose(w, scale, xp):
    """``(w * scale[:, None]).T`` as a C-ordered array, in one pass: the per-step GEMM ``h @ w.T`` runs
    markedly faster on a C-ordered right operand than on a transposed view."""
    out = xp.empty((w.shape[1], w.shape[0]), w.dtype)
    np.multiply(w.T, scale, out=out)
    return out


# --------------------------------------------------------------------------- Elman RNN
class RNNSequence(Function):
    """Elman RNN layer-direction: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``.

    Inputs: ``x`` (T, B, I) or packed (N, I); ``h0`` (B, H) or None for zeros; ``w_ih`` (H, I);
    ``w_hh`` (H, H); ``b_ih``, ``b_hh`` (H,) or None. Params: ``nonlinearity`` 'tanh' or 'relu',
    ``batch_sizes`` for packed input, ``reverse``. Returns ``(output, h_n)``: (T, B, H) or (N, H), and (B, H).
    """

    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh", batch_sizes=None, reverse=False):
        xp = backend.array_module(x)
        lay = _Layout(x, batch_sizes, reverse)
        dtype = x.dtype
        H = w_hh.shape[0]
        x2d = _flat_input(x, lay)
        out, prev = lay.state_buffers(h0, H, dtype, xp)
        # The input projection of every step lands directly in the output rows; the loop adds the
        # recurrent part and applies the nonlinearity in place.
        np.matmul(x2d, w_ih.T, out=out)
        if b_ih is not None:
            out += b_ih + b_hh
        w_hh_t = np.ascontiguousarray(w_hh.T)  # the per-step GEMM runs faster on a C-ordered operand
        tmp = xp.empty((lay.B, H), dtype)
        relu = nonlinearity == "relu"
        for t in lay.order:
            lo, b = lay.offs[t], lay.bs[t]
            if lay.packed:
                lay.fill_prev(t, out, prev, h0)
            rows = out[lo:lo + b]
            np.matmul(prev[lo:lo + b], w_hh_t, out=tmp[:b])
            rows += tmp[:b]
            if relu:
                np.maximum(rows, 0, out=rows)
            else:
                np.tanh(rows, out=rows)
        h_n = lay.final_state(out, H, dtype, xp)
        ctx.save_for_backward(x2d, out, prev, w_ih, w_hh)
        ctx.lay, ctx.relu, ctx.x_shape, ctx.has_bias = lay, relu, x.shape, b_ih is not None
        return _shape_out(out, x, lay), h_n

    def backward(ctx, grad_out, grad_hn):
        x2d, out, prev, w_ih, w_hh = ctx.saved
        lay = ctx.lay
        xp = backend.array_module(out)
        dtype = out.dtype
        H = w_hh.shape[0]
        # Derivative of the nonlinearity for every step at once, from its output.
        if ctx.relu:
            deriv = (out > 0).astype(dtype)
        else:
            deriv = out * out
            np.subtract(1, deriv, out=deriv)
        g_rows = _grad_rows(grad_out, lay)
        dz = xp.empty_like(out)
        dh = _state_grad(grad_hn, lay.B, H, dtype, xp)
        for t in reversed(lay.order):
            lo, b = lay.offs[t], lay.bs[t]
            d = dh[:b]
            if g_rows is not None:
                d += g_rows[lo:lo + b]
            np.multiply(d, deriv[lo:lo + b], out=dz[lo:lo + b])
            np.matmul(dz[lo:lo + b], w_hh, out=d)
        dx, dw_ih = _input_grads(ctx, dz, x2d, w_ih, ctx.x_shape, 2)
        dw_hh = dz.T @ prev if _needs(ctx, 3) else None
        db = dz.sum(0) if ctx.has_bias else None
        return dx, dh, dw_ih, dw_hh, db, db


# --------------------------------------------------------------------------- LSTM
def _lstm_gate_scale(H, dtype, xp):
    """Row scale for the gate pre-activations (i, f, g, o) and the affine map back to sigmoids."""
    scale = xp.full(4 * H, 0.5, dtype)
    scale[2 * H:3 * H] = 1
    shift = xp.full(4 * H, 0.5, dtype)
    shift[2 * H:3 * H] = 0
    return scale, shift


class LSTMSequence(Function):
    """LSTM layer-direction with PyTorch's gates ``i, f, g, o`` and optional projection ``W_hr``.

    ``i, f, o = sigmoid(.)``, ``g = tanh(.)`` of ``x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh``;
    ``c_t = f * c_{t-1} + i * g``; ``h_t = o * tanh(c_t)`` (times ``W_hr^T`` with a projection).

    Inputs: ``x`` (T, B, I) or packed (N, I); ``h0`` (B, P) and ``c0`` (B, H) or None for zeros;
    ``w_ih`` (4H, I); ``w_hh`` (4H, P); ``b_ih``, ``b_hh`` (4H,) or None; ``w_hr`` (P, H) or None.
    Returns ``(output, h_n, c_n)``: (T, B, P) or (N, P), (B, P), (B, H).
    """

    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes=None, reverse=False):
        xp = backend.array_module(x)
        lay = _Layout(x, batch_sizes, reverse)
        dtype = x.dtype
        H = w_hh.shape[0] // 4
        P = w_hh.shape[1]
        N, B = lay.N, lay.B
        x2d = _flat_input(x, lay)
        scale, shift = _lstm_gate_scale(H, dtype, xp)
        gates = np.matmul(x2d, (w_ih * scale[:, None]).T)
        if b_ih is not None:
            gates += (b_ih + b_hh) * scale
        w_hh_t = _scaled_transpose(w_hh, scale, xp)
        hout, hprev = lay.state_buffers(h0, P, dtype, xp)
        cout, cprev = lay.state_buffers(c0, H, dtype, xp)
        tanh_c = xp.empty((N, H), dtype)
        if w_hr is not None:
            cell_out = xp.empty((N, H), dtype)
            w_hr_t = np.ascontiguousarray(w_hr.T)
        tmp_g = xp.empty((B, 4 * H), dtype)
        tmp_h = xp.empty((B, H), dtype)
        for t in lay.order:
            lo, b = lay.offs[t], lay.bs[t]
            hi = lo + b
            if lay.packed:
                lay.fill_prev(t, hout, hprev, h0)
                lay.fill_prev(t, cout, cprev, c0)
            g = gates[lo:hi]
            np.matmul(hprev[lo:hi], w_hh_t, out=tmp_g[:b])
            g += tmp_g[:b]
            np.tanh(g, out=g)
            g *= scale
            g += shift
            c = cout[lo:hi]
            np.multiply(g[:, H:2 * H], cprev[lo:hi], out=c)
            np.multiply(g[:, :H], g[:, 2 * H:3 * H], out=tmp_h[:b])
            c += tmp_h[:b]
            tc = tanh_c[lo:hi]
            np.tanh(c, out=tc)
            if w_hr is None:
                np.multiply(g[:, 3 * H:], tc, out=hout[lo:hi])
            else:
                m = cell_out[lo:hi]
                np.multiply(g[:, 3 * H:], tc, out=m)
                np.matmul(m, w_hr_t, out=hout[lo:hi])
        h_n = lay.final_state(hout, P, dtype, xp)
        c_n = lay.final_state(cout, H, dtype, xp)
        ctx.save_for_backward(x2d, gates, cprev, tanh_c, hprev, w_ih, w_hh,
                              cell_out if w_hr is not None else None, w_hr)
        ctx.lay, ctx.x_shape, ctx.has_bias = lay, x.shape, b_ih is not None
        return _shape_out(hout, x, lay), h_n, c_n

    def backward(ctx, grad_out, grad_hn, grad_cn):
        x2d, gates, cprev, tanh_c, hprev, w_ih, w_hh, cell_out, w_hr = ctx.saved
        lay = ctx.lay
        xp = backend.array_module(gates)
        dtype = gates.dtype
        N, B = lay.N, lay.B
        H = w_hh.shape[0] // 4
        P = w_hh.shape[1]
        i, f, g, o = (gates[:, k * H:(k + 1) * H] for k in range(4))
        # Everything that does not depend on the incoming gradient is computed for all steps at once:
        # pre[:, gate] * dc (or * dm for o) is the gradient of that gate's pre-activation.
        pre = 1 - gates
        pre *= gates
        pre[:, 2 * H:3 * H] = g * g
        np.subtract(1, pre[:, 2 * H:3 * H], out=pre[:, 2 * H:3 * H])
        pre[:, :H] *= g
        pre[:, H:2 * H] *= cprev
        pre[:, 2 * H:3 * H] *= i
        pre[:, 3 * H:] *= tanh_c
        dc_from_m = tanh_c * tanh_c
        np.subtract(1, dc_from_m, out=dc_from_m)
        dc_from_m *= o
        pre3 = pre.reshape(N, 4, H)

        g_rows = _grad_rows(grad_out, lay)
        dz = xp.empty((N, 4 * H), dtype)
        dz3 = dz.reshape(N, 4, H)
        dh = _state_grad(grad_hn, B, P, dtype, xp)
        dc = _state_grad(grad_cn, B, H, dtype, xp)
        tmp = xp.empty((B, H), dtype)
        if w_hr is not None:
            dh_rows = xp.empty((N, P), dtype)
            dm_buf = xp.empty((B, H), dtype)
        for t in reversed(lay.order):
            lo, b = lay.offs[t], lay.bs[t]
            hi = lo + b
            d = dh[:b]
            if g_rows is not None:
                d += g_rows[lo:hi]
            if w_hr is None:
                dm = d
            else:
                dh_rows[lo:hi] = d
                dm = dm_buf[:b]
                np.matmul(d, w_hr, out=dm)
            dct = dc[:b]
            np.multiply(dm, dc_from_m[lo:hi], out=tmp[:b])
            dct += tmp[:b]
            np.multiply(pre3[lo:hi, :3], dct[:, None, :], out=dz3[lo:hi, :3])
            np.multiply(pre3[lo:hi, 3], dm, out=dz3[lo:hi, 3])
            dct *= f[lo:hi]
            np.matmul(dz[lo:hi], w_hh, out=d)
        dx, dw_ih = _input_grads(ctx, dz, x2d, w_ih, ctx.x_shape, 3)
        dw_hh = dz.T @ hprev if _needs(ctx, 4) else None
        db = dz.sum(0) if ctx.has_bias else None
        dw_hr = dh_rows.T @ cell_out if w_hr is not None else None
        return dx, dh, dc, dw_ih, dw_hh, db, db, dw_hr


# --------------------------------------------------------------------------- GRU
class GRUSequence(Function):
    """GRU layer-direction with PyTorch's gates ``r, z, n`` and formula.

    ``r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)``, ``z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)``,
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.

    Inputs: ``x`` (T, B, I) or packed (N, I); ``h0`` (B, H) or None for zeros; ``w_ih`` (3H, I);
    ``w_hh`` (3H, H); ``b_ih``, ``b_hh`` (3H,) or None. Returns ``(output, h_n)``.
    """

    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes=None, reverse=False):
        xp = backend.array_module(x)
        lay = _Layout(x, batch_sizes, reverse)
        dtype = x.dtype
        H = w_hh.shape[1]
        N, B = lay.N, lay.B
        x2d = _flat_input(x, lay)
        scale = xp.full(3 * H, 0.5, dtype)
        scale[2 * H:] = 1
        # ``act`` starts as the input projection and becomes the gate activations (r, z, n) step by step.
        act = np.matmul(x2d, (w_ih * scale[:, None]).T)
        if b_ih is not None:
            act += b_ih * scale
        if b_hh is not None:
            act[:, :2 * H] += 0.5 * b_hh[:2 * H]
            b_hn = b_hh[2 * H:]
        w_hh_t = _scaled_transpose(w_hh, scale, xp)
        hout, hprev = lay.state_buffers(h0, H, dtype, xp)
        hn_part = xp.empty((N, H), dtype)  # W_hn h + b_hn, needed by backward
        tmp = xp.empty((B, 3 * H), dtype)
        tmp_h = xp.empty((B, H), dtype)
        for t in lay.order:
            lo, b = lay.offs[t], lay.bs[t]
            hi = lo + b
            if lay.packed:
                lay.fill_prev(t, hout, hprev, h0)
            hp = hprev[lo:hi]
            gh = tmp[:b]
            np.matmul(hp, w_hh_t, out=gh)
            rz = act[lo:hi, :2 * H]
            rz += gh[:, :2 * H]
            np.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            hn = hn_part[lo:hi]
            if b_hh is not None:
                np.add(gh[:, 2 * H:], b_hn, out=hn)
            else:
                hn[...] = gh[:, 2 * H:]
            n = act[lo:hi, 2 * H:]
            np.multiply(rz[:, :H], hn, out=tmp_h[:b])
            n += tmp_h[:b]
            np.tanh(n, out=n)
            h = hout[lo:hi]
            np.subtract(hp, n, out=h)
            h *= rz[:, H:]
            h += n
        h_n = lay.final_state(hout, H, dtype, xp)
        ctx.save_for_backward(x2d, act, hn_part, hprev, w_ih, w_hh)
        ctx.lay, ctx.x_shape, ctx.has_bias = lay, x.shape, b_ih is not None
        return _shape_out(hout, x, lay), h_n

    def backward(ctx, grad_out, grad_hn):
        x2d, act, hn_part, hprev, w_ih, w_hh = ctx.saved
        lay = ctx.lay
        xp = backend.array_module(act)
        dtype = act.dtype
        N, B = lay.N, lay.B
        H = w_hh.shape[1]
        r, z, n = act[:, :H], act[:, H:2 * H], act[:, 2 * H:]
        # Per-step factors computed for all steps at once:
        #   dn_pre = dh * a_n, dz_pre = dh * a_z, dr_pre = dn_pre * a_r.
        a_n = n * n
        np.subtract(1, a_n, out=a_n)
        a_n *= 1 - z
        a_z = hprev - n
        a_z *= z
        a_z *= 1 - z
        a_r = r * (1 - r)
        a_r *= hn_part
        g_rows = _grad_rows(grad_out, lay)
        # Recurrent-side pre-activation gradients (r, z, r * dn_pre) and the input-side n gradient.
        dzh = xp.empty((N, 3 * H), dtype)
        dn_in = xp.empty((N, H), dtype)
        dh = _state_grad(grad_hn, B, H, dtype, xp)
        tmp = xp.empty((B, H), dtype)
        for t in reversed(lay.order):
            lo, b = lay.offs[t], lay.bs[t]
            hi = lo + b
            d = dh[:b]
            if g_rows is not None:
                d += g_rows[lo:hi]
            dzt = dzh[lo:hi]
            dnt = dn_in[lo:hi]
            np.multiply(d, a_n[lo:hi], out=dnt)
            np.multiply(d, a_z[lo:hi], out=dzt[:, H:2 * H])
            np.multiply(dnt, a_r[lo:hi], out=dzt[:, :H])
            np.multiply(dnt, r[lo:hi], out=dzt[:, 2 * H:])
            np.multiply(d, z[lo:hi], out=tmp[:b])
            np.matmul(dzt, w_hh, out=d)
            d += tmp[:b]
        drz = dzh[:, :2 * H]
        dx = None
        if _needs(ctx, 0):
            dx = drz @ w_ih[:2 * H]
            dx += dn_in @ w_ih[2 * H:]
            dx = dx.reshape(ctx.x_shape)
        dw_ih = None
        if _needs(ctx, 2):
            dw_ih = xp.empty_like(w_ih)
            np.matmul(drz.T, x2d, out=dw_ih[:2 * H])
            np.matmul(dn_in.T, x2d, out=dw_ih[2 * H:])
        dw_hh = dzh.T @ hprev if _needs(ctx, 3) else None
        db_ih = db_hh = None
        if ctx.has_bias:
            db_hh = dzh.sum(0)
            db_ih = db_hh.copy()
            db_ih[2 * H:] = dn_in.sum(0)
        return dx, dh, dw_ih, dw_hh, db_ih, db_hh


# --------------------------------------------------------------------------- cells: one step
class RNNCellStep(RNNSequence):
    """One Elman RNN step: ``x`` (B, I), ``h`` (B, H) -> ``h'`` (B, H)."""

    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh"):
        _, h_n = RNNSequence.forward(ctx, x[None], h0, w_ih, w_hh, b_ih, b_hh, nonlinearity=nonlinearity)
        ctx.x_shape = x.shape
        return h_n

    def backward(ctx, grad):
        return RNNSequence.backward(ctx, None, grad)


class LSTMCellStep(LSTMSequence):
    """One LSTM step: ``x`` (B, I), ``h`` (B, H), ``c`` (B, H) -> ``(h', c')``."""

    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        _, h_n, c_n = LSTMSequence.forward(ctx, x[None], h0, c0, w_ih, w_hh, b_ih, b_hh, None)
        ctx.x_shape = x.shape
        return h_n, c_n

    def backward(ctx, grad_h, grad_c):
        return LSTMSequence.backward(ctx, None, grad_h, grad_c)[:-1]


class GRUCellStep(GRUSequence):
    """One GRU step: ``x`` (B, I), ``h`` (B, H) -> ``h'`` (B, H)."""

    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):
        _, h_n = GRUSequence.forward(ctx, x[None], h0, w_ih, w_hh, b_ih, b_hh)
        ctx.x_shape = x.shape
        return h_n

    def backward(ctx, grad):
        return GRUSequence.backward(ctx, None, grad)


# --------------------------------------------------------------------------- functional wrappers
def rnn_sequence(input, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh",
                 batch_sizes=None, reverse=False):
    """Run one Elman RNN layer in one direction over a sequence; see ``RNNSequence``.

    ``input`` (T, B, I) time-major, or packed rows (N, I) with ``batch_sizes``. Returns ``(output, h_n)``.
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_sequence(): unknown nonlinearity {nonlinearity!r}; expected 'tanh' or 'relu'")
    return RNNSequence.apply(input, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity=nonlinearity,
                             batch_sizes=batch_sizes, reverse=reverse)


def lstm_sequence(input, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, weight_hr=None,
                  batch_sizes=None, reverse=False):
    """Run one LSTM layer in one direction over a sequence; see ``LSTMSequence``.

    ``input`` (T, B, I) time-major, or packed rows (N, I) with ``batch_sizes``.
    Returns ``(output, h_n, c_n)``.
    """
    return LSTMSequence.apply(input, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr,
                              batch_sizes=batch_sizes, reverse=reverse)


def gru_sequence(input, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, batch_sizes=None, reverse=False):
    """Run one GRU layer in one direction over a sequence; see ``GRUSequence``. Returns ``(output, h_n)``."""
    return GRUSequence.apply(input, h0, weight_ih, weight_hh, bias_ih, bias_hh, batch_sizes=batch_sizes,
                             reverse=reverse)


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
class PackRows(Function):
    """Gather the valid rows of a padded batch into packed order: ``out[k] = padded[time[k], batch[k]]``.

    ``padded`` (T, B, *) or, with ``batch_first``, (B, T, *); ``time``/``batch`` are int arrays of the
    N packed rows. Returns (N, *).
    """

    def forward(ctx, padded, time_idx, batch_idx, batch_first=False):
        ctx.shape, ctx.dtype = padded.shape, padded.dtype
        ctx.index = (batch_idx, time_idx) if batch_first else (time_idx, batch_idx)
        return padded[ctx.index]

    def backward(ctx, grad):
        xp = backend.array_module(grad)
        out = xp.zeros(ctx.shape, ctx.dtype)
        out[ctx.index] = grad
        return out, None, None


class UnpackRows(Function):
    """Scatter packed rows (N, *) into a padded batch filled with ``padding_value``; the inverse of ``PackRows``."""

    def forward(ctx, data, time_idx, batch_idx, shape=None, padding_value=0.0, batch_first=False):
        xp = backend.array_module(data)
        ctx.index = (batch_idx, time_idx) if batch_first else (time_idx, batch_idx)
        out = xp.full(shape, padding_value, data.dtype)
        out[ctx.index] = data
        return out

    def backward(ctx, grad):
        return grad[ctx.index], None, None


class PadStack(Function):
    """Stack sequences of different lengths (L_i, *) into one padded (T, B, *) or (B, T, *) array."""

    def forward(ctx, *seqs, batch_first=False, padding_value=0.0, left=False):
        xp = backend.array_module(seqs[0])
        T = max(s.shape[0] for s in seqs)
        B = len(seqs)
        trail = seqs[0].shape[1:]
        dtype = np.result_type(*seqs)
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
        return out

    def backward(ctx, grad):
        if ctx.batch_first:
            return tuple(grad[b, lo:hi] for b, (lo, hi) in enumerate(ctx.spans))
        return tuple(grad[lo:hi, b] for b, (lo, hi) in enumerate(ctx.spans))


class SplitPadded(Function):
    """The inverse of ``PadStack``: the first ``lengths[b]`` steps of every batch entry, as separate arrays."""

    def forward(ctx, padded, lengths=(), batch_first=False):
        ctx.shape, ctx.dtype, ctx.lengths, ctx.batch_first = padded.shape, padded.dtype, lengths, batch_first
        if batch_first:
            return tuple(padded[b, :n].copy() for b, n in enumerate(lengths))
        return tuple(padded[:n, b].copy() for b, n in enumerate(lengths))

    def backward(ctx, *grads):
        xp = backend.array_module(next(g for g in grads if g is not None))
        out = xp.zeros(ctx.shape, ctx.dtype)
        for b, (n, g) in enumerate(zip(ctx.lengths, grads)):
            if g is not None:
                if ctx.batch_first:
                    out[b, :n] = g
                else:
                    out[:n, b] = g
        return out


# --------------------------------------------------------------------------- hidden-state plumbing
class SplitStates(Function):
    """Split initial states (L*D, B, H) into L*D arrays (B, H), reordering the batch by ``order`` if given."""

    def forward(ctx, hx, order=None):
        ctx.order = order
        if order is not None:
            hx = hx[:, order]
        return tuple(hx[k].copy() for k in range(hx.shape[0]))

    def backward(ctx, *grads):
        ref = next(g for g in grads if g is not None)
        xp = backend.array_module(ref)
        out = xp.zeros((len(grads),) + ref.shape, ref.dtype)
        for k, g in enumerate(grads):
            if g is not None:
                out[k] = g
        if ctx.order is not None:
            unsorted = xp.empty_like(out)
            unsorted[:, ctx.order] = out
            out = unsorted
        return out


class StackStates(Function):
    """Stack final states (B, H) of every layer-direction into (L*D, B, H), batch reordered by ``order``."""

    def forward(ctx, *states, order=None):
        ctx.order = order
        out = np.stack(states)
        if order is not None:
            out = out[:, order]
        return out

    def backward(ctx, grad):
        if ctx.order is not None:
            xp = backend.array_module(grad)
            back = xp.empty_like(grad)
            back[:, ctx.order] = grad
            grad = back
        return tuple(grad[k] for k in range(grad.shape[0]))
