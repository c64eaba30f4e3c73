"""Second derivatives through RNN/LSTM/GRU (layers, cells, packed sequences), GELU, softsign, local response
norm and abs, against PyTorch on identical inputs and copied weights, and against finite differences
(``gradgradcheck``) in float64.

Each module case takes the gradients of its outputs against a random cotangent with ``create_graph=True``
with respect to the inputs and every parameter, then differentiates a random projection of those
gradients again, and compares both levels.
"""
import numpy as np
import pytest

import somanet
import somanet.nn.functional as SF
from reference import lib_tensor, to_numpy, torch_or_skip
from somanet.autograd import gradgradcheck
from somanet.ops import recurrent as R

torch = pytest.importorskip("torch")
RTOL, ATOL = 1e-6, 1e-9


def rand(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed + 7 * sum(shape)).standard_normal(shape) * scale




def _flatten(out):
    if isinstance(out, (tuple, list)):
        return [o for x in out for o in _flatten(x)]
    if hasattr(out, "data") and hasattr(out, "batch_sizes"):  # a PackedSequence: its rows
        return [out.data]
    return [out]


def _build(lib, make, seed):
    """``make(lib)`` in float64 with parameters drawn from a seed per name (the same in both libraries)."""
    m = make(lib).double()
    with lib.no_grad():
        for name, p in m.named_parameters():
            p.copy_(lib.tensor(np.random.default_rng(seed + sum(map(ord, name))).standard_normal(tuple(p.shape)) * 0.5))
    return m


def _two_levels(lib, make, call, arrays, seed=0):
    """``g = J^T u`` over inputs and parameters, and ``d/d(inputs, params) <g, w>``, as NumPy arrays."""
    m = _build(lib, make, seed)
    xs = [lib_tensor(lib, a, a.dtype.kind == "f") for a in arrays]
    params = [p for _, p in sorted(m.named_parameters())]
    wrt = [x for x in xs if x.requires_grad] + params
    outs = [o for o in _flatten(call(lib, m, *xs)) if o.requires_grad]
    rng = np.random.default_rng(seed + 1)
    us = [lib_tensor(lib, rng.standard_normal(tuple(o.shape)), False) for o in outs]
    g = lib.autograd.grad(outs, wrt, us, create_graph=True, allow_unused=True)
    total = None
    for gi, t in zip(g, wrt):
        if gi is not None and gi.requires_grad:
            term = (gi * lib_tensor(lib, rng.standard_normal(tuple(t.shape)), False)).sum()
            total = term if total is None else total + term
    h = lib.autograd.grad([total], wrt, allow_unused=True)
    return [to_numpy(x) for x in g], [to_numpy(x) for x in h]


def check_module(make, call, *arrays, rtol=RTOL, atol=ATOL):
    torch_or_skip()
    arrays = [np.asarray(a) for a in arrays]
    got = _two_levels(somanet, make, call, arrays)
    want = _two_levels(torch, make, call, arrays)
    for level, a_list, b_list in zip(("first", "second"), got, want):
        assert len(a_list) == len(b_list)
        for i, (a, b) in enumerate(zip(a_list, b_list)):
            if b is None:
                assert a is None or not np.any(a), f"{level} derivative {i}: expected none"
                continue
            assert a is not None, f"{level} derivative {i}: somanet has none"
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{level} derivative {i}")


def _seq(lib, m, x, *states):
    if not states:
        return m(x)
    return m(x, states[0] if len(states) == 1 else tuple(states))


# --------------------------------------------------------------------------- RNN / LSTM / GRU layers
T, B, I, H = 4, 3, 3, 4
LAYERS = {
    "rnn_tanh_2layer_bidir_h0": (lambda L: L.nn.RNN(I, H, 2, bidirectional=True),
                                 (rand(T, B, I), rand(4, B, H, seed=1))),
    "rnn_relu_batch_first_nobias": (lambda L: L.nn.RNN(I, H, nonlinearity="relu", bias=False, batch_first=True),
                                    (rand(B, T, I),)),
    "lstm_2layer_bidir_h0_c0": (lambda L: L.nn.LSTM(I, H, 2, bidirectional=True),
                                (rand(T, B, I), rand(4, B, H, seed=1), rand(4, B, H, seed=2))),
    "lstm_proj_batch_first_nobias": (lambda L: L.nn.LSTM(I, H, proj_size=2, bias=False, batch_first=True),
                                     (rand(B, T, I),)),
    "gru_2layer_bidir_h0": (lambda L: L.nn.GRU(I, H, 2, bidirectional=True), (rand(T, B, I), rand(4, B, H, seed=1))),
    "gru_batch_first_nobias": (lambda L: L.nn.GRU(I, H, bias=False, batch_first=True), (rand(B, T, I),)),
    "gru_unbatched": (lambda L: L.nn.GRU(I, H), (rand(T, I),)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_recurrent_layer(name):
    make, arrays = LAYERS[name]
    check_module(make, _seq, *arrays)


def _packed(lib, m, x, *states):
    """The layer on ``pack_padded_sequence`` of unsorted lengths, unpacked again."""
    U = lib.nn.utils.rnn
    packed = U.pack_padded_sequence(x * 1.5, [2, 4, 1], batch_first=True, enforce_sorted=False)
    out, hn = _seq(lib, m, packed, *states)
    padded, _ = U.pad_packed_sequence(out, batch_first=True, total_length=5)
    return padded, hn


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_recurrent_layer_packed(mode):
    """Packed bidirectional layers, with initial states (sorted into the packed order and back)."""
    n_states = 2 if mode == "LSTM" else 1
    states = [rand(4, B, H, seed=1 + k) for k in range(n_states)]
    check_module(lambda L: getattr(L.nn, mode)(I, H, 2, bidirectional=True, batch_first=True), _packed,
                 rand(B, T, I), *states)


def _sequence_helpers(lib, m, a, b, c):
    """pack_sequence / unpack_sequence and pad_sequence / unpad_sequence around an LSTM."""
    U = lib.nn.utils.rnn
    out, _ = m(U.pack_sequence([a * a, b, c], enforce_sorted=False))
    parts = U.unpack_sequence(out)
    padded = U.pad_sequence([p * 2 for p in parts], batch_first=True)
    return U.unpad_sequence(padded, lib.tensor([len(p) for p in parts]), batch_first=True)


def test_packing_helpers():
    check_module(lambda L: L.nn.LSTM(I, H), _sequence_helpers, rand(3, I), rand(4, I, seed=1), rand(2, I, seed=2))


def test_recurrent_layer_on_token_input():
    """``forward_embedding`` runs the first layer straight on the symbols (somanet only); PyTorch embeds first."""
    torch_or_skip()
    tokens = np.array([[0, 2, 1], [3, 2, 2], [1, 0, 3], [2, 1, 0]])

    def run(lib, seed):
        m = _build(lib, lambda L: L.nn.GRU(I, H, 2), seed)
        emb = _build(lib, lambda L: L.nn.Embedding(4, I, padding_idx=1), seed + 5)
        idx = lib.tensor(tokens)
        out, hn = m.forward_embedding(idx, emb) if lib is somanet else m(emb(idx))
        params = [p for _, p in sorted(m.named_parameters())] + [emb.weight]
        u = np.random.default_rng(3).standard_normal(tuple(out.shape))
        g = lib.autograd.grad([out], params, [lib.tensor(u)], create_graph=True)
        v = [np.random.default_rng(4 + k).standard_normal(tuple(p.shape)) for k, p in enumerate(params)]
        total = sum((gi * lib.tensor(vi)).sum() for gi, vi in zip(g, v))
        return [to_numpy(x) for x in g], [to_numpy(x) for x in lib.autograd.grad([total], params)]

    for a_list, b_list in zip(run(somanet, 0), run(torch, 0)):
        for a, b in zip(a_list, b_list):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_recurrent_layer_on_the_reference_kernel():
    """The plain step loop (``ops/recurrent.py``) gives the same second derivatives, packed input included."""
    with somanet.backends.cpu.kernel("recurrent", "reference"):
        out, _ = somanet.nn.GRU(I, H).double()(somanet.tensor(rand(T, B, I), requires_grad=True))
        assert out.grad_fn.kern is None
        for mode in ("RNN", "LSTM", "GRU"):
            check_module(lambda L, mode=mode: getattr(L.nn, mode)(I, H, bidirectional=True), _seq, rand(T, B, I))
        check_module(lambda L: L.nn.LSTM(I, H, 2, bidirectional=True, batch_first=True), _packed, rand(B, T, I),
                     rand(4, B, H, seed=1), rand(4, B, H, seed=2))


def test_recurrent_layer_in_batch_blocks():
    """A batch split into blocks (as with several threads) gives the same second derivatives."""
    with somanet.backends.cpu.kernel("recurrent", "batch_threads"):
        out, _ = somanet.nn.LSTM(I, H).double()(somanet.tensor(rand(T, B, I), requires_grad=True))
        assert out.grad_fn.n_blocks == 2
        for mode in ("RNN", "LSTM", "GRU"):
            check_module(lambda L, mode=mode: getattr(L.nn, mode)(I, H, bidirectional=True), _seq, rand(T, B, I))


# --------------------------------------------------------------------------- cells
def _cell_loop(lib, m, x, *states):
    """Three steps of a cell; LSTMCell carries (h, c)."""
    state = None if not states else (states[0] if len(states) == 1 else tuple(states))
    outs = []
    for t in range(x.shape[0]):
        state = m(x[t], state)
        outs.append(state[0] if isinstance(state, tuple) else state)
    return outs, state


CELLS = {
    "rnn_cell_tanh_h0": (lambda L: L.nn.RNNCell(I, H), (rand(3, B, I), rand(B, H, seed=1))),
    "rnn_cell_relu_nobias": (lambda L: L.nn.RNNCell(I, H, bias=False, nonlinearity="relu"), (rand(3, B, I),)),
    "lstm_cell_h0_c0": (lambda L: L.nn.LSTMCell(I, H), (rand(3, B, I), rand(B, H, seed=1), rand(B, H, seed=2))),
    "lstm_cell": (lambda L: L.nn.LSTMCell(I, H), (rand(3, B, I),)),
    "gru_cell_h0": (lambda L: L.nn.GRUCell(I, H), (rand(3, B, I), rand(B, H, seed=1))),
    "gru_cell_nobias": (lambda L: L.nn.GRUCell(I, H, bias=False), (rand(3, B, I),)),
}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell(name):
    make, arrays = CELLS[name]
    check_module(make, _cell_loop, *arrays)


# --------------------------------------------------------------------------- the usual second-order uses
def test_hessian_vector_product_through_lstm():
    """``H v`` of a loss over every LSTM weight, by double backward, equals PyTorch's."""
    torch_or_skip()
    x, y = rand(5, 2, I), rand(2, H, seed=3)

    def hvp(lib):
        m = _build(lib, lambda L: L.nn.LSTM(I, H, 2), 11)
        params = [p for _, p in sorted(m.named_parameters())]
        out, _ = m(lib.tensor(x))
        loss = ((out[-1] - lib.tensor(y)) ** 2).mean()
        g = lib.autograd.grad(loss, params, create_graph=True)
        v = [lib.tensor(np.random.default_rng(k).standard_normal(tuple(p.shape))) for k, p in enumerate(params)]
        gv = sum((gi * vi).sum() for gi, vi in zip(g, v))
        return [to_numpy(h) for h in lib.autograd.grad(gv, params)]

    for a, b in zip(hvp(somanet), hvp(torch)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_gradient_penalty_through_gru():
    """``||d out / d x||^2`` backpropagated to the GRU's weights (WGAN-GP style) equals PyTorch's."""
    torch_or_skip()
    x = rand(2, 4, I, seed=5)

    def penalty_grads(lib):
        m = _build(lib, lambda L: L.nn.GRU(I, H, batch_first=True, bidirectional=True), 21)
        xt = lib.tensor(x, requires_grad=True)
        out, _ = m(xt)
        score = (out * out).sum(-1).mean(1)
        (g,) = lib.autograd.grad(score, xt, lib.ones_like(score), create_graph=True)
        penalty = ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
        penalty.backward()
        return [to_numpy(p.grad) for _, p in sorted(m.named_parameters())]

    for a, b in zip(penalty_grads(somanet), penalty_grads(torch)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_first_order_path_is_unchanged_by_a_graph_pass():
    """The ordinary backward after a create_graph pass gives the fused Function's gradients."""
    somanet.manual_seed(0)
    m = somanet.nn.LSTM(I, H, 2, bidirectional=True).double()
    x = somanet.tensor(rand(T, B, I), requires_grad=True)
    out, _ = m(x)
    plain = somanet.autograd.grad(out.sum(), [x] + list(m.parameters()), retain_graph=True)
    graph = somanet.autograd.grad(out.sum(), [x] + list(m.parameters()), create_graph=True)
    assert all(g.requires_grad for g in graph)
    for a, b in zip(plain, graph):
        np.testing.assert_allclose(a.array, b.array, rtol=1e-12, atol=1e-13)


# --------------------------------------------------------------------------- gradgradcheck in float64
def _t(a):
    return somanet.tensor(a, requires_grad=True)


def test_gradgradcheck_rnn_sequence_packed_reverse():
    x, h0 = _t(rand(5, 2, scale=0.5)), _t(rand(2, 2, seed=1, scale=0.5))
    ws = [_t(rand(2, 2, seed=k, scale=0.5)) for k in (2, 3)] + [_t(rand(2, seed=k, scale=0.5)) for k in (4, 5)]
    assert gradgradcheck(lambda *a: R.rnn_sequence(*a, batch_sizes=[2, 2, 1], reverse=True), [x, h0] + ws)


def test_gradgradcheck_lstm_sequence_projection():
    x, h0, c0 = _t(rand(2, 2, 2, scale=0.5)), _t(rand(2, 1, seed=1, scale=0.5)), _t(rand(2, 2, seed=2, scale=0.5))
    w_ih, w_hh, w_hr = _t(rand(8, 2, seed=3, scale=0.5)), _t(rand(8, 1, seed=4, scale=0.5)), _t(rand(1, 2, seed=5))
    b = _t(rand(8, seed=6, scale=0.5))
    assert gradgradcheck(lambda *a: R.lstm_sequence(*a), [x, h0, c0, w_ih, w_hh, b, b * 1, w_hr])


def test_gradgradcheck_gru_sequence_packed():
    x, h0 = _t(rand(4, 2, scale=0.5)), _t(rand(2, 2, seed=1, scale=0.5))
    ws = [_t(rand(6, 2, seed=k, scale=0.5)) for k in (2, 3)] + [_t(rand(6, seed=k, scale=0.5)) for k in (4, 5)]
    assert gradgradcheck(lambda *a: R.gru_sequence(*a, batch_sizes=[2, 1, 1]), [x, h0] + ws)


def test_gradgradcheck_packing_helpers():
    U = somanet.nn.utils.rnn

    def fn(x):
        packed = U.pack_padded_sequence(x * x, [1, 3, 2], batch_first=True, enforce_sorted=False)
        return U.pad_packed_sequence(packed, padding_value=0.5)[0] * x.transpose(0, 1)

    assert gradgradcheck(fn, [_t(rand(3, 3, 2))])


CELL_FNS = {
    "rnn_tanh": (1, lambda x, h, w1, w2: R.rnn_cell(x, h, w1, w2)),
    "rnn_relu": (1, lambda x, h, w1, w2: R.rnn_cell(x, h, w1, w2, nonlinearity="relu")),
    "lstm": (4, lambda x, h, w1, w2: R.lstm_cell(x, h, h * h, w1, w2)),
    "gru": (3, lambda x, h, w1, w2: R.gru_cell(x, h, w1, w2)),
}


@pytest.mark.parametrize("name", sorted(CELL_FNS))
def test_gradgradcheck_cells(name):
    n_gates, fn = CELL_FNS[name]
    x, h = _t(rand(2, 2, scale=0.5)), _t(rand(2, 2, seed=1, scale=0.5))
    assert gradgradcheck(fn, [x, h, _t(rand(2 * n_gates, 2, seed=2)), _t(rand(2 * n_gates, 2, seed=3))])


# --------------------------------------------------------------------------- GELU, softsign, LRN, abs
def _two_levels_fn(lib, fn, arrays):
    F = SF if lib is somanet else torch.nn.functional
    xs = [lib_tensor(lib, a, True) for a in arrays]
    out = fn(lib, F, *xs)
    rng = np.random.default_rng(1)
    g = lib.autograd.grad([out], xs, [lib_tensor(lib, rng.standard_normal(tuple(out.shape)), False)],
                          create_graph=True)
    total = sum((gi * lib_tensor(lib, rng.standard_normal(a.shape), False)).sum() for gi, a in zip(g, arrays))
    return [to_numpy(x) for x in g], [to_numpy(x) for x in lib.autograd.grad([total], xs)]


POINTWISE = {
    "gelu": (lambda L, F, x: F.gelu(x) * x, 1e-10),
    "gelu_tanh": (lambda L, F, x: F.gelu(x, approximate="tanh") * x, 1e-10),
    "softsign": (lambda L, F, x: F.softsign(x) * x, 1e-12),
    "lrn_size3": (lambda L, F, x: F.local_response_norm(x, 3, alpha=0.5, beta=0.75, k=1.5) * x, 1e-12),
    "lrn_size2_4d": (lambda L, F, x: F.local_response_norm(x.reshape(2, 4, 3, 1), 2, alpha=0.3, k=2.0), 1e-12),
}


@pytest.mark.parametrize("name", sorted(POINTWISE))
def test_gelu_softsign_lrn(name):
    torch_or_skip()
    fn, tol = POINTWISE[name]
    x = rand(2, 4, 3) * 2
    for a_list, b_list in zip(_two_levels_fn(somanet, fn, [x]), _two_levels_fn(torch, fn, [x])):
        np.testing.assert_allclose(a_list[0], b_list[0], rtol=1e-7, atol=tol)
    assert gradgradcheck(lambda t: fn(somanet, SF, t), [_t(x)])


def test_gelu_float32_second_derivative():
    torch_or_skip()
    x = rand(3, 5).astype(np.float32) * 3
    for approximate in ("none", "tanh"):
        def fn(lib, F, t):
            return F.gelu(t, approximate=approximate)
        got = _two_levels_fn(somanet, fn, [x])
        want = _two_levels_fn(torch, fn, [x])
        for a, b in zip(got, want):
            assert a[0].dtype == np.float32
            np.testing.assert_allclose(a[0], b[0], rtol=2e-5, atol=2e-6)


def test_abs_at_zero_and_nan():
    """First derivative 0 at 0 and at NaN (PyTorch's sign there), second derivative 0 everywhere, and the
    gradient is a tensor of the graph, as in PyTorch."""
    torch_or_skip()
    x = np.array([np.nan, 0.0, -0.0, 1.5, -2.0, np.inf])

    def levels(lib):
        t = lib_tensor(lib, x, True)
        u = lib_tensor(lib, np.arange(2.0, 8.0), True)
        (g,) = lib.autograd.grad([t.abs()], [t], [u], create_graph=True)
        assert g.requires_grad
        h = lib.autograd.grad([(g * lib_tensor(lib, np.arange(1.0, 7.0), False)).sum()], [t, u],
                              allow_unused=True, materialize_grads=True)
        return [to_numpy(g)] + [to_numpy(a) for a in h]

    for a, b in zip(levels(somanet), levels(torch)):
        np.testing.assert_array_equal(a, b)
    assert gradgradcheck(lambda t: t.abs() * t, [_t(np.array([-1.5, -0.3, 0.4, 2.0]))])
