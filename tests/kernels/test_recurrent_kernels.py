"""The kernels of op ``"recurrent"`` (RNN, LSTM, GRU): every kernel against PyTorch and against the
reference, gradients included, and the chooser's pick for representative shapes and thread counts."""
import numpy as np
import pytest

import somanet
import somanet.nn as nn
from somanet.backends import cpu
from somanet.kernels import _select
from somanet.kernels import recurrent as K
from reference import assert_close, copy_state, torch_or_skip

torch = torch_or_skip()
KERNELS = ("reference", "blocked", "batch_threads")


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_the_kernels_and_their_order():
    assert cpu.kernel_names("recurrent") == KERNELS


def _run(s_mod, x, state, packed_lengths=None):
    """Output, final states and every gradient of ``s_mod`` on ``x`` (a weighted sum of all outputs)."""
    s_mod.zero_grad()
    xt = somanet.tensor(x, requires_grad=True)
    states = None if state is None else tuple(somanet.tensor(s, requires_grad=True) for s in state)
    arg = xt
    if packed_lengths is not None:
        arg = nn.utils.rnn.pack_padded_sequence(xt, packed_lengths, batch_first=s_mod.batch_first,
                                                enforce_sorted=False)
    hx = None if states is None else (states if len(states) > 1 else states[0])
    out, h = s_mod(arg, hx)
    if packed_lengths is not None:
        out = nn.utils.rnn.pad_packed_sequence(out, batch_first=s_mod.batch_first)[0]
    finals = h if isinstance(h, tuple) else (h,)
    weight = somanet.tensor(_x(*out.shape, seed=9))
    total = (out * weight).sum() + sum((f * f).sum() for f in finals)
    total.backward()
    grads = [xt.grad.array] + [s.grad.array for s in states or ()]
    grads += [p.grad.array for _, p in sorted(s_mod.named_parameters())]
    return [out.array] + [f.array for f in finals], grads


def _torch_run(t_mod, x, state, packed_lengths=None):
    xt = torch.tensor(x, requires_grad=True)
    states = None if state is None else tuple(torch.tensor(s, requires_grad=True) for s in state)
    arg = xt
    if packed_lengths is not None:
        arg = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(packed_lengths), batch_first=t_mod.batch_first,
                                                      enforce_sorted=False)
    hx = None if states is None else (states if len(states) > 1 else states[0])
    out, h = t_mod(arg, hx)
    if packed_lengths is not None:
        out = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=t_mod.batch_first)[0]
    finals = h if isinstance(h, tuple) else (h,)
    weight = torch.tensor(_x(*out.shape, seed=9))
    total = (out * weight).sum() + sum((f * f).sum() for f in finals)
    total.backward()
    grads = [xt.grad] + [s.grad for s in states or ()]
    grads += [p.grad for _, p in sorted(t_mod.named_parameters())]
    return [out.detach()] + [f.detach() for f in finals], grads


# (kind, hidden, layers, bidirectional, batch_first, batch, steps, with_state, packed lengths)
CASES = [
    ("lstm", 6, 2, True, False, 5, 4, True, None),
    ("gru", 6, 2, True, True, 5, 4, False, None),
    ("rnn", 6, 1, False, False, 4, 3, True, None),
    ("lstm", 6, 2, True, True, 4, 5, True, [5, 2, 4, 1]),
    ("gru", 6, 1, True, False, 3, 4, False, [4, 4, 2]),
    ("lstm", 128, 1, False, False, 32, 3, False, None),   # a step product large enough for row blocks
    ("gru", 128, 1, False, True, 32, 3, True, None),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c[:5]) + ("-packed" if c[8] else ""))
@pytest.mark.parametrize("kernel", KERNELS)
def test_every_kernel_matches_torch_and_the_reference(one_thread, kernel, case):
    kind, hidden, layers, bidi, batch_first, batch, steps, with_state, lengths = case
    cls = {"rnn": (nn.RNN, torch.nn.RNN), "lstm": (nn.LSTM, torch.nn.LSTM), "gru": (nn.GRU, torch.nn.GRU)}[kind]
    t_mod = cls[1](4, hidden, layers, bidirectional=bidi, batch_first=batch_first)
    s_mod = cls[0](4, hidden, layers, bidirectional=bidi, batch_first=batch_first)
    copy_state(t_mod, s_mod)
    x = _x(*((batch, steps, 4) if batch_first else (steps, batch, 4)), seed=1)
    n_states = 2 if kind == "lstm" else 1
    state = None
    if with_state:
        state = [_x(layers * (2 if bidi else 1), batch, hidden, seed=2 + k) for k in range(n_states)]
    with cpu.kernel("recurrent", "reference"):
        ref_out, ref_grads = _run(s_mod, x, state, lengths)
    with cpu.kernel("recurrent", kernel):
        out, grads = _run(s_mod, x, state, lengths)
    t_out, t_grads = _torch_run(t_mod, x, state, lengths)
    for i, (a, r, t) in enumerate(zip(out, ref_out, t_out)):
        assert_close(a, r, rtol=1e-5, atol=1e-5, what=f"output {i} against the reference")
        assert_close(a, t, rtol=1e-4, atol=1e-5, what=f"output {i} against torch")
    for i, (a, r, t) in enumerate(zip(grads, ref_grads, t_grads)):
        assert_close(a, r, rtol=1e-4, atol=1e-5, what=f"gradient {i} against the reference")
        assert_close(a, t, rtol=1e-4, atol=2e-5, what=f"gradient {i} against torch")


def test_batch_threads_split_the_batch_and_the_others_do_not(one_thread):
    lstm = nn.LSTM(4, 6)
    x = somanet.tensor(_x(3, 5, 4), requires_grad=True)
    for kernel, blocks in (("reference", 0), ("blocked", 0), ("batch_threads", 2)):
        with cpu.kernel("recurrent", kernel):
            out, _ = lstm(x)
        assert out.grad_fn.n_blocks == blocks, kernel


def _choice(x, w_hh, batch_sizes=None, may_split=True):
    return _select.choose("recurrent", x, batch_sizes, w_hh, may_split)


def test_chooser_picks_batch_threads_only_for_big_padded_batches_on_several_threads(two_threads):
    x = np.empty((64, 32, 128), np.float32)            # the benchmark's LSTM: T=64, B=32, H=256
    w = np.empty((1024, 256), np.float32)
    assert _choice(x, w) == "batch_threads"
    assert _choice(x, w, may_split=False) == "blocked"  # a cell step, or a block itself
    assert _choice(x, w, batch_sizes=[32] * 64) == "blocked"  # packed: the batch width changes
    assert _choice(np.empty((2, 2, 8), np.float32), np.empty((24, 6), np.float32)) == "blocked"  # too little work
    assert _choice(np.empty((64, 1, 128), np.float32), w) == "blocked"  # one batch entry
    somanet.set_num_threads(1)
    assert _choice(x, w) == "blocked"


def test_forced_batch_threads_leave_calls_they_cannot_split_to_the_chooser(one_thread):
    w = np.empty((24, 6), np.float32)
    with cpu.kernel("recurrent", "batch_threads"):
        assert _choice(np.empty((3, 4, 2), np.float32), w) == "batch_threads"
        assert _choice(np.empty((3, 4, 2), np.float32), w, may_split=False) == "blocked"
        assert _choice(np.empty((7, 2), np.float32), w, batch_sizes=[3, 2, 2]) == "blocked"
    assert cpu.kernel("recurrent") is None


def test_row_blocks_bring_each_step_product_under_the_small_gemm_limit(one_thread):
    w = np.empty((512, 128), np.float32)                 # LSTM gates of H=128
    n = K.row_blocks(w, 32)
    assert n > 1 and 512 % n == 0 and (512 // n) * 128 * 32 <= K.SMALL_GEMM
    assert K.row_blocks(np.empty((24, 6), np.float32), 32) == 1    # already small
    assert K.row_blocks(np.empty((12, 4096), np.float32), 512) == 1  # no split keeps MIN_BLOCK_ROWS rows


def test_row_blocks_stay_whole_when_blas_threads_the_product(two_threads):
    pytest.importorskip("threadpoolctl")
    from somanet.kernels import threads

    if threads.blas_threads() != 2:
        pytest.skip("NumPy's BLAS thread count can't be set here")
    assert K.row_blocks(np.empty((512, 128), np.float32), 32) == 1


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_token_input_with_padding_idx_matches_torch_in_every_kernel(one_thread, kernel, kind):
    # The layer runs on the embedding rows of int symbols; the padding row gets no gradient.
    V = 7
    cls = {"rnn": (nn.RNN, torch.nn.RNN), "lstm": (nn.LSTM, torch.nn.LSTM), "gru": (nn.GRU, torch.nn.GRU)}[kind]
    t_rnn, s_rnn = cls[1](4, 5, bidirectional=True), cls[0](4, 5, bidirectional=True)
    copy_state(t_rnn, s_rnn)
    t_emb, s_emb = torch.nn.Embedding(V, 4, padding_idx=0), nn.Embedding(V, 4, padding_idx=0)
    copy_state(t_emb, s_emb)
    tokens = np.random.default_rng(3).integers(0, V, (6, 3))
    with cpu.kernel("recurrent", kernel):
        s_out, _ = s_rnn.forward_embedding(somanet.tensor(tokens), s_emb)
        (s_out * s_out).sum().backward()
    t_out, _ = t_rnn(t_emb(torch.tensor(tokens)))
    (t_out * t_out).sum().backward()
    assert_close(s_out, t_out, what="output")
    assert_close(s_emb.weight.grad, t_emb.weight.grad, what="embedding gradient")
    for name, tp in t_rnn.named_parameters():
        assert_close(dict(s_rnn.named_parameters())[name].grad, tp.grad, what=name)
