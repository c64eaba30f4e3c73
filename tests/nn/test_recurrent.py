"""RNN, LSTM, GRU and their cells against PyTorch (weights copied by state_dict), plus float64 gradchecks."""
import math

import numpy as np
import pytest

import somanet
import somanet.nn as nn
from somanet.autograd import gradcheck
from somanet.ops import recurrent as R
from reference import assert_close, compare_modules, copy_state, torch_or_skip

T, B, I, H = 5, 3, 4, 6


def _pair(kind, **kw):
    """A somanet module and a PyTorch one of the same kind and configuration, same weights."""
    torch = torch_or_skip()
    s_cls, t_cls = {"rnn": (nn.RNN, torch.nn.RNN), "lstm": (nn.LSTM, torch.nn.LSTM), "gru": (nn.GRU, torch.nn.GRU),
                    "rnn_cell": (nn.RNNCell, torch.nn.RNNCell), "lstm_cell": (nn.LSTMCell, torch.nn.LSTMCell),
                    "gru_cell": (nn.GRUCell, torch.nn.GRUCell)}[kind]
    t_mod = t_cls(**kw)
    s_mod = s_cls(**kw)
    copy_state(t_mod, s_mod)
    return s_mod, t_mod


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


CONFIGS = [
    # (num_layers, batch_first, with_initial_state)
    (1, False, False),
    (2, True, True),
    (3, False, True),
]


@pytest.mark.parametrize("num_layers,batch_first,with_state", CONFIGS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind,extra", [("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("lstm", {}), ("gru", {})])
def test_stack_matches_torch(kind, extra, bidirectional, num_layers, batch_first, with_state):
    rng = np.random.default_rng(1)
    s_mod, t_mod = _pair(kind, input_size=I, hidden_size=H, num_layers=num_layers, bidirectional=bidirectional,
                         batch_first=batch_first, **extra)
    D = 2 if bidirectional else 1
    x = _randn(rng, B, T, I) if batch_first else _randn(rng, T, B, I)
    arrays = [x]
    if with_state:
        arrays.append(_randn(rng, D * num_layers, B, H))
        if kind == "lstm":
            arrays.append(_randn(rng, D * num_layers, B, H))

    def forward(m, x, *state):
        if not state:
            return m(x)
        return m(x, tuple(state) if kind == "lstm" else state[0])

    compare_modules(s_mod, t_mod, *arrays, forward=forward)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_projection_matches_torch(bidirectional):
    rng = np.random.default_rng(2)
    s_mod, t_mod = _pair("lstm", input_size=I, hidden_size=H, num_layers=2, proj_size=3, bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    assert tuple(s_mod.weight_hr_l0.shape) == (3, H)
    assert tuple(s_mod.weight_hh_l1.shape) == (4 * H, 3)
    x, h0, c0 = _randn(rng, T, B, I), _randn(rng, 2 * D, B, 3), _randn(rng, 2 * D, B, H)
    compare_modules(s_mod, t_mod, x, h0, c0, forward=lambda m, x, h, c: m(x, (h, c)))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_no_bias_matches_torch(kind):
    rng = np.random.default_rng(3)
    s_mod, t_mod = _pair(kind, input_size=I, hidden_size=H, bias=False, num_layers=2)
    assert "bias_ih_l0" not in dict(s_mod.named_parameters())
    compare_modules(s_mod, t_mod, _randn(rng, T, B, I))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_unbatched_input_matches_torch(kind):
    rng = np.random.default_rng(4)
    s_mod, t_mod = _pair(kind, input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
    x = _randn(rng, T, I)
    h0 = _randn(rng, 4, H)
    if kind == "lstm":
        c0 = _randn(rng, 4, H)
        compare_modules(s_mod, t_mod, x, h0, c0, forward=lambda m, x, h, c: m(x, (h, c)))
    else:
        compare_modules(s_mod, t_mod, x, h0, forward=lambda m, x, h: m(x, h))


def test_longer_sequence_and_larger_sizes():
    """A realistic size (T=40, H=32): errors must not build up through backpropagation in time."""
    rng = np.random.default_rng(5)
    s_mod, t_mod = _pair("lstm", input_size=16, hidden_size=32, num_layers=2)
    compare_modules(s_mod, t_mod, _randn(rng, 40, 4, 16), rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kernel", ["reference", "blocked"])
def test_step_products_of_every_kernel_match_torch(kind, threads, kernel):
    # The plain step loop (reference) and the feature-major one, whose step product runs in row blocks on
    # one thread and whole on two (tests/kernels/test_recurrent_kernels.py asserts which): PyTorch's
    # results every way.
    previous = somanet.get_num_threads()
    somanet.set_num_threads(threads)
    try:
        with somanet.backends.cpu.kernel("recurrent", kernel):
            rng = np.random.default_rng(6)
            s_mod, t_mod = _pair(kind, input_size=8, hidden_size=128, num_layers=1)
            compare_modules(s_mod, t_mod, _randn(rng, 3, 32, 8), rtol=1e-4, atol=2e-5)
    finally:
        somanet.set_num_threads(previous)


@pytest.mark.parametrize("kind", ["rnn_cell", "lstm_cell", "gru_cell"])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_cells_match_torch(kind, batched, with_state):
    rng = np.random.default_rng(6)
    extra = {"nonlinearity": "relu"} if kind == "rnn_cell" and batched else {}
    s_mod, t_mod = _pair(kind, input_size=I, hidden_size=H, **extra)
    lead = (B,) if batched else ()
    x = _randn(rng, *lead, I)
    if not with_state:
        compare_modules(s_mod, t_mod, x)
    elif kind == "lstm_cell":
        compare_modules(s_mod, t_mod, x, _randn(rng, *lead, H), _randn(rng, *lead, H),
                        forward=lambda m, x, h, c: m(x, (h, c)))
    else:
        compare_modules(s_mod, t_mod, x, _randn(rng, *lead, H), forward=lambda m, x, h: m(x, h))


def test_cell_unrolled_equals_sequence_layer():
    """Running LSTMCell step by step gives the one-layer LSTM's output, with the same weights."""
    rng = np.random.default_rng(7)
    lstm = nn.LSTM(I, H)
    cell = nn.LSTMCell(I, H)
    cell.load_state_dict({k[:-3]: v for k, v in lstm.state_dict().items()})
    x = somanet.tensor(_randn(rng, T, B, I))
    out, (h_n, c_n) = lstm(x)
    h = c = None
    for t in range(T):
        h, c = cell(x[t], None if h is None else (h, c))
        assert_close(h, out[t], what=f"step {t}")
    assert_close(c, c_n[0], what="final cell state")


# --------------------------------------------------------------------------- parameters and initialisation
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_state_dict_keys_and_shapes_match_torch(kind):
    torch = torch_or_skip()
    kw = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
    if kind == "lstm":
        kw["proj_size"] = 2
    s_mod = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind](**kw)
    t_mod = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](**kw)
    s_state = s_mod.state_dict()
    t_state = t_mod.state_dict()
    assert list(s_state) == list(t_state)
    for k in t_state:
        assert tuple(s_state[k].shape) == tuple(t_state[k].shape), k
        assert s_state[k].dtype == np.float32
    assert [n for n, _ in s_mod.named_parameters()] == [n for n, _ in t_mod.named_parameters()]


@pytest.mark.parametrize("cls,cell_cls", [(nn.LSTM, nn.LSTMCell), (nn.GRU, nn.GRUCell)])
def test_initialisation_is_uniform_in_inverse_sqrt_hidden(cls, cell_cls):
    hidden = 64
    bound = 1 / math.sqrt(hidden)
    for mod in (cls(32, hidden, num_layers=2), cell_cls(32, hidden)):
        values = np.concatenate([p.array.ravel() for p in mod.parameters()])
        assert values.dtype == np.float32
        assert np.abs(values).max() <= bound
        # Uniform on (-b, b): standard deviation b / sqrt(3), mean 0.
        assert abs(values.std() - bound / math.sqrt(3)) < 0.02 * bound
        assert abs(values.mean()) < 0.02 * bound


def test_double_precision_module():
    torch = torch_or_skip()
    rng = np.random.default_rng(8)
    s_mod, t_mod = _pair("gru", input_size=I, hidden_size=H, num_layers=2)
    s_mod.double()
    t_mod.double()
    x = rng.standard_normal((T, B, I))
    out, h = s_mod(somanet.tensor(x))
    t_out, t_h = t_mod(torch.tensor(x))
    assert out.dtype == np.float64 and h.dtype == np.float64
    assert_close(out, t_out, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- dropout between layers
def test_dropout_one_zeroes_input_of_upper_layers():
    """dropout=1 zeroes every input of layer 2 in training; PyTorch does the same, so outputs match exactly."""
    rng = np.random.default_rng(9)
    s_mod, t_mod = _pair("lstm", input_size=I, hidden_size=H, num_layers=2, dropout=1.0)
    s_mod.train()
    t_mod.train()
    compare_modules(s_mod, t_mod, _randn(rng, T, B, I))


def test_dropout_between_layers_only_in_training():
    rng = np.random.default_rng(10)
    mod = nn.GRU(I, H, num_layers=2, dropout=0.5)
    ref = nn.GRU(I, H, num_layers=2)
    ref.load_state_dict(mod.state_dict())
    x = somanet.tensor(_randn(rng, T, B, I))
    mod.eval()
    assert_close(mod(x)[0], ref(x)[0], what="eval mode output")
    mod.train()
    a, b = mod(x)[0].array, mod(x)[0].array
    assert not np.allclose(a, b), "two training passes with dropout should differ"
    assert not np.allclose(a, ref(x)[0].array)
    # One layer: dropout has no effect (and PyTorch warns about it).
    with pytest.warns(UserWarning, match="dropout"):
        single = nn.LSTM(I, H, dropout=0.5)
    single.train()
    assert np.array_equal(single(x)[0].array, single(x)[0].array)


# --------------------------------------------------------------------------- float64 finite differences
def _weights(rng, gates, inp, hidden, proj=None, bias=True):
    out_h = proj or hidden
    ws = [somanet.tensor(rng.standard_normal((gates * hidden, inp)) * 0.5, requires_grad=True),
          somanet.tensor(rng.standard_normal((gates * hidden, out_h)) * 0.5, requires_grad=True)]
    if bias:
        ws += [somanet.tensor(rng.standard_normal(gates * hidden) * 0.5, requires_grad=True) for _ in range(2)]
    else:
        ws += [None, None]
    return ws


def _f64(rng, *shape):
    return somanet.tensor(rng.standard_normal(shape), requires_grad=True)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("packed", [False, True])
def test_gradcheck_lstm_sequence(reverse, packed):
    rng = np.random.default_rng(11)
    bs = np.array([3, 2, 2, 1]) if packed else None
    x = _f64(rng, int(bs.sum()), 2) if packed else _f64(rng, 4, 3, 2)
    h0, c0 = _f64(rng, 3, 3), _f64(rng, 3, 3)
    w = _weights(rng, 4, 2, 3)

    def fn(x, h0, c0, *w):
        return R.lstm_sequence(x, h0, c0, *w, batch_sizes=bs, reverse=reverse)

    assert gradcheck(fn, [x, h0, c0, *w])


def test_gradcheck_lstm_projection():
    rng = np.random.default_rng(12)
    x, h0, c0 = _f64(rng, 3, 2, 2), _f64(rng, 2, 2), _f64(rng, 2, 3)
    w = _weights(rng, 4, 2, 3, proj=2)
    w_hr = _f64(rng, 2, 3)
    assert gradcheck(lambda x, h0, c0, a, b, c, d, e: R.lstm_sequence(x, h0, c0, a, b, c, d, e),
                     [x, h0, c0, *w, w_hr])


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("packed", [False, True])
def test_gradcheck_gru_sequence(reverse, packed):
    rng = np.random.default_rng(13)
    bs = np.array([3, 3, 1]) if packed else None
    x = _f64(rng, int(bs.sum()), 2) if packed else _f64(rng, 3, 3, 2)
    h0 = _f64(rng, 3, 3)
    w = _weights(rng, 3, 2, 3)
    assert gradcheck(lambda x, h0, *w: R.gru_sequence(x, h0, *w, batch_sizes=bs, reverse=reverse), [x, h0, *w])


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("packed", [False, True])
def test_gradcheck_rnn_sequence(nonlinearity, packed):
    rng = np.random.default_rng(14)
    bs = np.array([2, 2, 1]) if packed else None
    x = _f64(rng, int(bs.sum()), 2) if packed else _f64(rng, 3, 2, 2)
    h0 = _f64(rng, 2, 3)
    w = _weights(rng, 1, 2, 3)
    for reverse in (False, True):
        assert gradcheck(lambda x, h0, *w: R.rnn_sequence(x, h0, *w, nonlinearity=nonlinearity, batch_sizes=bs,
                                                          reverse=reverse), [x, h0, *w])


def test_gradcheck_cells_without_bias():
    rng = np.random.default_rng(15)
    x, h, c = _f64(rng, 2, 3), _f64(rng, 2, 2), _f64(rng, 2, 2)
    w4 = _weights(rng, 4, 3, 2, bias=False)[:2]
    w3 = _weights(rng, 3, 3, 2, bias=False)[:2]
    w1 = _weights(rng, 1, 3, 2, bias=False)[:2]
    assert gradcheck(lambda x, h, c, a, b: R.lstm_cell(x, h, c, a, b), [x, h, c, *w4])
    assert gradcheck(lambda x, h, a, b: R.gru_cell(x, h, a, b), [x, h, *w3])
    assert gradcheck(lambda x, h, a, b: R.rnn_cell(x, h, a, b), [x, h, *w1])


def test_gradient_through_final_states_only():
    """Only h_n and c_n used: the Function receives no output gradient and must still be right."""
    torch = torch_or_skip()
    rng = np.random.default_rng(16)
    s_mod, t_mod = _pair("lstm", input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
    compare_modules(s_mod, t_mod, _randn(rng, T, B, I), forward=lambda m, x: m(x)[1])
    s_mod, t_mod = _pair("gru", input_size=I, hidden_size=H)
    compare_modules(s_mod, t_mod, _randn(rng, T, B, I), forward=lambda m, x: m(x)[0])


def test_float32_stays_float32():
    rng = np.random.default_rng(17)
    mod = nn.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=2)
    x = somanet.tensor(_randn(rng, T, B, I), requires_grad=True)
    out, (h, c) = mod(x)
    assert out.dtype == h.dtype == c.dtype == np.float32
    (out.sum() + h.sum() + c.sum()).backward()
    assert x.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in mod.parameters())


# --------------------------------------------------------------------------- errors
def test_errors_name_module_and_shapes():
    lstm = nn.LSTM(I, H, num_layers=2)
    with pytest.raises(RuntimeError, match=r"LSTM: input.size\(-1\) must be equal to input_size. Expected 4, got 7"):
        lstm(somanet.randn(T, B, 7))
    with pytest.raises(ValueError, match="LSTM: Expected input to be 2D or 3D, got 4D"):
        lstm(somanet.randn(T, B, I, 1))
    with pytest.raises(RuntimeError, match=r"LSTM: Expected hidden state size \(2, 3, 6\), got \(1, 3, 6\)"):
        lstm(somanet.randn(T, B, I), (somanet.zeros(1, B, H), somanet.zeros(2, B, H)))
    with pytest.raises(TypeError, match="LSTM: hx must be a tuple"):
        lstm(somanet.randn(T, B, I), somanet.zeros(2, B, H))
    with pytest.raises(RuntimeError, match="GRU: input dtype float64 does not match the parameters' dtype float32"):
        nn.GRU(I, H)(somanet.tensor(np.zeros((T, B, I))))
    with pytest.raises(RuntimeError, match=r"GRUCell: Expected hidden state size \(3, 6\), got \(2, 6\)"):
        nn.GRUCell(I, H)(somanet.randn(B, I), somanet.randn(2, H))
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        nn.RNNBase("GRU", I, H, proj_size=2)
    with pytest.raises(ValueError, match="has to be smaller than hidden_size"):
        nn.LSTM(I, H, proj_size=H)
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        nn.RNN(I, H, nonlinearity="gelu")
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.GRU(I, H, dropout=1.5)


# --------------------------------------------------------------------------- token input through an embedding table
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional,batch_first,padding_idx", [(False, False, None), (True, True, 2)])
def test_forward_embedding_matches_torch_embedding_then_rnn(kind, bidirectional, batch_first, padding_idx):
    """``forward_embedding(tokens, emb)`` == PyTorch's ``rnn(emb(tokens))``, embedding gradient included."""
    torch = torch_or_skip()
    rng = np.random.default_rng(20)
    V = 7
    s_rnn, t_rnn = _pair(kind, input_size=I, hidden_size=H, num_layers=2, bidirectional=bidirectional,
                         batch_first=batch_first)
    t_emb = torch.nn.Embedding(V, I, padding_idx=padding_idx)
    s_emb = nn.Embedding(V, I, padding_idx=padding_idx)
    copy_state(t_emb, s_emb)
    tokens = rng.integers(0, V, (B, T) if batch_first else (T, B))
    D = 2 if bidirectional else 1
    h0 = _randn(rng, 2 * D, B, H)
    state = (lambda h: (h, h * 0.5)) if kind == "lstm" else (lambda h: h)
    s_out, s_state = s_rnn.forward_embedding(somanet.tensor(tokens), s_emb, state(somanet.tensor(h0)))
    t_out, t_state = t_rnn(t_emb(torch.tensor(tokens)), state(torch.tensor(h0)))
    assert_close(s_out, t_out, what="output")
    g = _randn(rng, *t_out.shape)
    s_hn = s_state[0] if kind == "lstm" else s_state
    t_hn = t_state[0] if kind == "lstm" else t_state
    (s_out * somanet.tensor(g)).sum().backward(retain_graph=True)
    s_hn.sum().backward()
    ((t_out * torch.tensor(g)).sum() + t_hn.sum()).backward()
    assert_close(s_emb.weight.grad, t_emb.weight.grad, what="embedding gradient")
    for name, tp in t_rnn.named_parameters():
        assert_close(dict(s_rnn.named_parameters())[name].grad, tp.grad, what=name)
    if padding_idx is not None:
        assert not np.any(s_emb.weight.grad.array[padding_idx])


def test_forward_embedding_large_vocabulary_and_errors():
    rng = np.random.default_rng(21)
    lstm = nn.LSTM(I, H)
    big = nn.Embedding(500, I)          # more symbols than positions: the plain path is used
    tokens = somanet.tensor(rng.integers(0, 500, (T, B)))
    out, _ = lstm.forward_embedding(tokens, big)
    assert_close(out, lstm(big(tokens))[0])
    with pytest.raises(IndexError, match=r"token ids must be in \[0, 500\)"):
        lstm.forward_embedding(somanet.tensor([[500]]), big)
    with pytest.raises(RuntimeError, match="embedding_dim 3 must equal input_size 4"):
        lstm.forward_embedding(tokens, nn.Embedding(10, 3))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_gradcheck_token_input(kind):
    rng = np.random.default_rng(22)
    tokens = rng.integers(0, 4, (3, 2))
    emb = _f64(rng, 4, 3)
    h0 = _f64(rng, 2, 2)
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    w = _weights(rng, gates, 3, 2)
    if kind == "lstm":
        fn = lambda e, h, *w: R.lstm_sequence(tokens, h, h, *w, embedding=e, reverse=True)  # noqa: E731
    elif kind == "gru":
        fn = lambda e, h, *w: R.gru_sequence(tokens, h, *w, embedding=e)  # noqa: E731
    else:
        fn = lambda e, h, *w: R.rnn_sequence(tokens, h, *w, embedding=e)  # noqa: E731
    assert gradcheck(fn, [emb, h0, *w])


# --------------------------------------------------------------------------- batch blocks on threads
@pytest.fixture
def batch_blocks(monkeypatch, two_threads):
    """Two threads and the ``"batch_threads"`` kernel forced, so every padded sequence runs as batch blocks;
    returns the list of block counts the sequence Functions ran with (0: whole)."""
    runs = []
    for cls in (R.RNNSequence, R.LSTMSequence, R.GRUSequence):
        forward = cls.forward

        def spy(ctx, *args, _forward=forward, **kw):
            out = _forward(ctx, *args, **kw)
            if ctx.batch_blocks:  # the blocks' own contexts run whole and are not counted
                runs.append(ctx.n_blocks)
            return out

        monkeypatch.setattr(cls, "forward", spy)
    with somanet.backends.cpu.kernel("recurrent", "batch_threads"):
        yield runs


@pytest.mark.parametrize("kind,extra", [("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("lstm", {}), ("gru", {}),
                                        ("lstm", {"proj_size": 3})])
@pytest.mark.parametrize("batch", [2, 5])
def test_batch_blocks_match_torch(batch_blocks, kind, extra, batch):
    """A padded batch split over two threads (uneven blocks at 5) gives PyTorch's outputs, final states and
    every gradient, through two bidirectional layers from given initial states."""
    rng = np.random.default_rng(30)
    s_mod, t_mod = _pair(kind, input_size=I, hidden_size=H, num_layers=2, bidirectional=True, batch_first=True,
                         **extra)
    out_h = extra.get("proj_size", H)
    arrays = [_randn(rng, batch, T, I), _randn(rng, 4, batch, out_h)]
    if kind == "lstm":
        arrays.append(_randn(rng, 4, batch, H))

    def forward(m, x, h0, *c0):
        out, state = m(x, (h0, c0[0]) if c0 else h0)
        states = state if isinstance(state, tuple) else (state,)
        return out.sum() + sum((s * s).sum() for s in states)  # gradients reach h_n (and c_n) too

    compare_modules(s_mod, t_mod, *arrays, forward=forward)
    assert batch_blocks and set(batch_blocks) == {2}


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_batch_blocks_token_input_and_inference(batch_blocks, kind):
    """Token input in blocks: the embedding's gradient is summed over the blocks; without grad recording
    (one step's buffers reused) the blocks give the same output."""
    torch = torch_or_skip()
    rng = np.random.default_rng(31)
    V = 7
    s_rnn, t_rnn = _pair(kind, input_size=I, hidden_size=H, num_layers=2)
    t_emb = torch.nn.Embedding(V, I)
    s_emb = nn.Embedding(V, I)
    copy_state(t_emb, s_emb)
    tokens = rng.integers(0, V, (T, 4))
    s_out, _ = s_rnn.forward_embedding(somanet.tensor(tokens), s_emb)
    t_out, _ = t_rnn(t_emb(torch.tensor(tokens)))
    assert_close(s_out, t_out, what="output")
    s_out.sum().backward()
    t_out.sum().backward()
    assert_close(s_emb.weight.grad, t_emb.weight.grad, what="embedding gradient")
    for name, tp in t_rnn.named_parameters():
        assert_close(dict(s_rnn.named_parameters())[name].grad, tp.grad, what=name)
    with somanet.no_grad():
        assert_close(s_rnn.forward_embedding(somanet.tensor(tokens), s_emb)[0], t_out, what="no-grad output")
    assert set(batch_blocks) == {2}


def test_batch_blocks_leave_packed_cells_and_single_entries_whole(batch_blocks):
    rng = np.random.default_rng(32)
    lstm = nn.LSTM(I, H)
    seqs = [somanet.tensor(_randn(rng, n, I)) for n in (4, 3, 1)]
    lstm(nn.utils.rnn.pack_sequence(seqs, enforce_sorted=False))
    lstm(somanet.tensor(_randn(rng, T, 1, I)))
    assert batch_blocks == [0, 0]
    cell = nn.LSTMCell(I, H)
    cell(somanet.tensor(_randn(rng, 4, I)))
    assert batch_blocks == [0, 0]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_gradcheck_batch_blocks(batch_blocks, kind):
    rng = np.random.default_rng(33)
    x, h0 = _f64(rng, 3, 3, 2), _f64(rng, 3, 3)
    w = _weights(rng, {"rnn": 1, "lstm": 4, "gru": 3}[kind], 2, 3)
    if kind == "lstm":
        fn = lambda x, h, *w: R.lstm_sequence(x, h, h * 0.5, *w, reverse=True)  # noqa: E731
    elif kind == "gru":
        fn = lambda x, h, *w: R.gru_sequence(x, h, *w)  # noqa: E731
    else:
        fn = lambda x, h, *w: R.rnn_sequence(x, h, *w)  # noqa: E731
    assert gradcheck(fn, [x, h0, *w])
    assert set(batch_blocks) == {2}


def test_batch_blocks_keep_in_place_checks_and_free_after_backward(batch_blocks):
    rng = np.random.default_rng(34)
    w = _weights(rng, 4, 2, 3)
    x = somanet.tensor(_randn(rng, 3, 4, 2), requires_grad=True)
    out, h, c = R.lstm_sequence(x, None, None, *w)
    with somanet.no_grad():
        w[1].mul_(2)
    with pytest.raises(RuntimeError, match="modified by an in-place"):
        out.sum().backward()
    out, h, c = R.lstm_sequence(x, None, None, *w)
    out.sum().backward(retain_graph=True)
    first = x.grad.array.copy()
    out.sum().backward()
    assert_close(x.grad, 2 * first)
    with pytest.raises(RuntimeError, match="second time"):
        out.sum().backward()
