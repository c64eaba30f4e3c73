"""PackedSequence helpers and packed input to RNN/LSTM/GRU, against PyTorch."""
import numpy as np
import pytest

import somanet
import somanet.nn as nn
from somanet.nn.utils import rnn as su
from reference import assert_close, compare, compare_modules, copy_state, torch_or_skip


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _is_torch(m):
    torch = torch_or_skip()
    return isinstance(m, torch.nn.Module)


def _rnn_utils(m):
    torch = torch_or_skip()
    return torch.nn.utils.rnn if _is_torch(m) else su


# --------------------------------------------------------------------------- the helpers themselves
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths,enforce_sorted", [([4, 3, 3, 1], True), ([2, 4, 1, 3], False), ([3, 1, 3, 2], False)])
def test_pack_padded_matches_torch(lengths, enforce_sorted, batch_first):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    T, B = 5, len(lengths)
    x = _randn(rng, B, T, 2) if batch_first else _randn(rng, T, B, 2)
    s = su.pack_padded_sequence(somanet.tensor(x), lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    t = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=batch_first,
                                                enforce_sorted=enforce_sorted)
    assert_close(s.batch_sizes, t.batch_sizes, what="batch_sizes")
    if enforce_sorted:
        assert s.sorted_indices is None and t.sorted_indices is None and s.unsorted_indices is None
    else:
        assert_close(s.sorted_indices, t.sorted_indices, what="sorted_indices")
        assert_close(s.unsorted_indices, t.unsorted_indices, what="unsorted_indices")
    assert_close(s.data, t.data, what="data")
    # And back, in the caller's batch order, with PyTorch's lengths and padding.
    sp, sl = su.pad_packed_sequence(s, batch_first=batch_first, padding_value=-1.0, total_length=6)
    tp, tl = torch.nn.utils.rnn.pad_packed_sequence(t, batch_first=batch_first, padding_value=-1.0, total_length=6)
    assert_close(sp, tp, what="padded")
    assert_close(sl, tl, what="lengths")


def test_pack_and_pad_gradients_match_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    lengths = [2, 5, 3]

    def run(utils):
        def fn(x):
            packed = utils.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            # Scale the packed data so the gradient is not just a mask.
            scaled = type(packed)(packed.data * 3.0, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
            return utils.pad_packed_sequence(scaled, batch_first=True)[0]
        return fn

    compare(run(su), run(torch.nn.utils.rnn), _randn(rng, 3, 5, 2))


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_matches_torch(batch_first, padding_side):
    torch = torch_or_skip()
    rng = np.random.default_rng(2)
    seqs = [_randn(rng, n, 2, 3) for n in (3, 5, 1)]

    def run(lib):
        return lambda *xs: lib.pad_sequence(list(xs), batch_first=batch_first, padding_value=0.5,
                                            padding_side=padding_side)

    compare(run(su), run(torch.nn.utils.rnn), *seqs)


def test_pack_sequence_unpack_and_unpad_round_trip():
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    seqs = [_randn(rng, n, 2) for n in (2, 4, 3)]
    s = su.pack_sequence([somanet.tensor(a) for a in seqs], enforce_sorted=False)
    t = torch.nn.utils.rnn.pack_sequence([torch.tensor(a) for a in seqs], enforce_sorted=False)
    assert_close(s.data, t.data)
    assert_close(s.batch_sizes, t.batch_sizes)
    for got, want in zip(su.unpack_sequence(s), seqs):
        assert_close(got, want)
    padded = su.pad_sequence([somanet.tensor(a) for a in seqs], batch_first=True)
    for got, want in zip(su.unpad_sequence(padded, somanet.tensor([2, 4, 3]), batch_first=True), seqs):
        assert_close(got, want)
    compare(lambda *xs: su.unpack_sequence(su.pack_sequence(list(xs), enforce_sorted=False)),
            lambda *xs: torch.nn.utils.rnn.unpack_sequence(
                torch.nn.utils.rnn.pack_sequence(list(xs), enforce_sorted=False)),
            *seqs)


def test_invert_permutation_and_packed_sequence_fields():
    perm = somanet.tensor([2, 0, 1])
    assert su.invert_permutation(perm).tolist() == [1, 2, 0]
    assert su.invert_permutation(None) is None
    p = su.PackedSequence(somanet.zeros(3, 2), [2, 1], [1, 0])
    assert p.unsorted_indices.tolist() == [1, 0]
    assert p.batch_sizes.dtype == np.int64
    data, batch_sizes, sorted_indices, unsorted_indices = p
    assert data is p.data
    assert p.double().data.dtype == np.float64


def test_pack_errors_are_clear():
    x = somanet.zeros(4, 3, 2)
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        su.pack_padded_sequence(x, [1, 3, 2])
    with pytest.raises(RuntimeError, match="has to be greater than 0"):
        su.pack_padded_sequence(x, [3, 0, 0])
    with pytest.raises(ValueError, match="got 2 lengths for a batch of 3"):
        su.pack_padded_sequence(x, [3, 2])
    with pytest.raises(RuntimeError, match="exceeds the 4 steps"):
        su.pack_padded_sequence(x, [5, 2, 1])
    with pytest.raises(RuntimeError, match="same trailing shape"):
        su.pad_sequence([somanet.zeros(2, 3), somanet.zeros(2, 4)])
    with pytest.raises(ValueError, match="at least the length of the longest"):
        su.pad_packed_sequence(su.pack_padded_sequence(x, [3, 2, 1]), total_length=2)


# --------------------------------------------------------------------------- packed input to the recurrent layers
def _packed_forward(kind, lengths, batch_first, with_state):
    def forward(m, x, *state):
        utils = _rnn_utils(m)
        packed = utils.pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
        if with_state:
            out, hn = m(packed, tuple(state) if kind == "lstm" else state[0])
        else:
            out, hn = m(packed)
        padded, _ = utils.pad_packed_sequence(out, batch_first=batch_first)
        return padded, hn
    return forward


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional,num_layers,batch_first,with_state",
                         [(False, 1, False, False), (True, 2, True, True), (True, 3, False, True),
                          (False, 2, True, True)])
def test_packed_input_matches_torch(kind, bidirectional, num_layers, batch_first, with_state):
    """Variable-length batches, unsorted: output, final states (in caller order) and every gradient."""
    torch = torch_or_skip()
    rng = np.random.default_rng(4)
    lengths = [3, 6, 1, 6, 4]
    B, T, I, H = len(lengths), 6, 3, 5
    kw = dict(input_size=I, hidden_size=H, num_layers=num_layers, bidirectional=bidirectional,
              batch_first=batch_first)
    s_mod = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind](**kw)
    t_mod = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](**kw)
    copy_state(t_mod, s_mod)
    D = 2 if bidirectional else 1
    x = _randn(rng, B, T, I) if batch_first else _randn(rng, T, B, I)
    arrays = [x]
    if with_state:
        arrays += [_randn(rng, D * num_layers, B, H) for _ in range(2 if kind == "lstm" else 1)]
    compare_modules(s_mod, t_mod, *arrays, forward=_packed_forward(kind, lengths, batch_first, with_state))


def test_packed_sorted_input_and_projection_match_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    lengths = [5, 4, 4, 2]
    kw = dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True, proj_size=2)
    s_mod, t_mod = nn.LSTM(**kw), torch.nn.LSTM(**kw)
    copy_state(t_mod, s_mod)

    def forward(m, x, h, c):
        utils = _rnn_utils(m)
        out, (hn, cn) = m(utils.pack_padded_sequence(x, lengths), (h, c))
        return out.data, hn, cn

    compare_modules(s_mod, t_mod, _randn(rng, 5, 4, 3), _randn(rng, 4, 4, 2), _randn(rng, 4, 4, 5), forward=forward)


def test_packed_output_equals_running_each_sequence_alone():
    """The final state of a packed sequence is the state after its own last step, not after padding."""
    rng = np.random.default_rng(6)
    gru = nn.GRU(3, 4, bidirectional=True)
    seqs = [somanet.tensor(_randn(rng, n, 3)) for n in (2, 5, 3)]
    out, h_n = gru(su.pack_sequence(seqs, enforce_sorted=False))
    padded, lengths = su.pad_packed_sequence(out)
    assert lengths.tolist() == [2, 5, 3]
    for b, s in enumerate(seqs):
        alone, h_alone = gru(s[:, None, :])
        assert_close(padded.data[:len(s), b], alone.data[:, 0], what=f"output of sequence {b}")
        assert_close(h_n.data[:, b], h_alone.data[:, 0], what=f"final state of sequence {b}")
        assert not np.any(padded.array[len(s):, b])
