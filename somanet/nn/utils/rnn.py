"""Variable-length batches for recurrent layers: ``PackedSequence`` and its pad/pack helpers.

A packed sequence stores only the valid steps of a batch, time-major: the rows of step ``t`` are the
``batch_sizes[t]`` batch entries still running at ``t``, longest first. ``RNN``, ``LSTM`` and ``GRU``
accept one directly and return one.

>>> from somanet.nn.utils.rnn import pad_sequence, pack_padded_sequence
>>> seqs = [somanet.ones(3, 2), somanet.ones(1, 2)]
>>> packed = pack_padded_sequence(pad_sequence(seqs), [3, 1])
>>> packed.batch_sizes
tensor([2, 1, 1])
"""
from collections import namedtuple

import numpy as np

from ... import backend
from ...autograd.tensor import Tensor
from ...ops.recurrent import PackRows, PadStack, SplitPadded, UnpackRows

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "unpad_sequence", "pack_sequence", "unpack_sequence"]


def _as_index_array(x, what):
    if x is None:
        return None
    arr = x.array if isinstance(x, Tensor) else np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{what} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def invert_permutation(permutation):
    """The permutation that undoes ``permutation`` (a 1-D int64 tensor), or None for None."""
    if permutation is None:
        return None
    perm = _as_index_array(permutation, "invert_permutation(): permutation")
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size, dtype=np.int64)
    return Tensor(inv)


class PackedSequence(namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """A batch of variable-length sequences without padding.

    - ``data`` (N, *): the valid steps of every sequence, step by step, longest sequences first;
    - ``batch_sizes`` (T,) int64: how many sequences are still running at each step;
    - ``sorted_indices`` (B,) int64 or None: batch order of the rows (``data`` row ``j`` of a step is
      input batch entry ``sorted_indices[j]``);
    - ``unsorted_indices`` (B,) int64 or None: its inverse, to return to the caller's order.

    Build one with ``pack_padded_sequence`` or ``pack_sequence`` rather than by hand.
    """

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if batch_sizes is None:
            raise ValueError("PackedSequence(): batch_sizes is required; build packed sequences with "
                             "pack_padded_sequence() or pack_sequence()")
        batch_sizes = Tensor(_as_index_array(batch_sizes, "PackedSequence: batch_sizes"))
        if sorted_indices is not None and not isinstance(sorted_indices, Tensor):
            sorted_indices = Tensor(_as_index_array(sorted_indices, "PackedSequence: sorted_indices"))
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        elif not isinstance(unsorted_indices, Tensor):
            unsorted_indices = Tensor(_as_index_array(unsorted_indices, "PackedSequence: unsorted_indices"))
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    @property
    def is_cuda(self):
        """Always False: somanet's packed sequences live on the CPU."""
        return False

    def is_pinned(self):
        """Always False (no pinned memory on the CPU backend)."""
        return False

    def to(self, *args, **kwargs):
        """A packed sequence with ``data`` converted by ``Tensor.to``; the index tensors stay as they are."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        return type(self)(data, self.batch_sizes, self.sorted_indices, self.unsorted_indices)

    def float(self):
        """``data`` as float32."""
        return self.to(backend.float32)

    def double(self):
        """``data`` as float64."""
        return self.to(backend.float64)

    def cpu(self):
        """This packed sequence (already on the CPU)."""
        return self


def _lengths_array(lengths):
    arr = lengths.array if isinstance(lengths, Tensor) else np.asarray(lengths)
    if arr.ndim != 1:
        raise ValueError(f"lengths must be a 1-D sequence of ints, got shape {tuple(arr.shape)}")
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"lengths must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _packed_index(batch_sizes, sorted_indices):
    """(time, batch) position in the padded batch of every packed row."""
    bs = np.asarray(batch_sizes, dtype=np.int64)
    T = bs.size
    time_idx = np.repeat(np.arange(T, dtype=np.int64), bs)
    starts = np.cumsum(bs) - bs
    rank = np.arange(time_idx.size, dtype=np.int64) - np.repeat(starts, bs)
    batch_idx = rank if sorted_indices is None else sorted_indices[rank]
    return time_idx, batch_idx


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) (or (B, T, *) with ``batch_first``) of sequences of ``lengths``.

    With ``enforce_sorted=True`` the lengths must be in decreasing order; otherwise the batch is sorted
    here and the permutation kept in the result so outputs come back in the caller's order.
    Gradients flow back to the valid steps of ``input``.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"pack_padded_sequence(): input must be a Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        raise ValueError(f"pack_padded_sequence(): input must have at least 2 dims (T, B, *), "
                         f"got shape {tuple(input.shape)}")
    lens = _lengths_array(lengths)
    B = input.shape[0] if batch_first else input.shape[1]
    T = input.shape[1] if batch_first else input.shape[0]
    if lens.size != B:
        raise ValueError(f"pack_padded_sequence(): got {lens.size} lengths for a batch of {B} "
                         f"(input shape {tuple(input.shape)}, batch_first={batch_first})")
    if B and lens.min() <= 0:
        raise RuntimeError("pack_padded_sequence(): Length of all samples has to be greater than 0, but found an "
                           f"element in 'lengths' that is <= 0 (lengths {lens.tolist()})")
    if B and lens.max() > T:
        raise RuntimeError(f"pack_padded_sequence(): a length of {int(lens.max())} exceeds the {T} steps of the "
                           f"input (shape {tuple(input.shape)}, batch_first={batch_first})")
    if enforce_sorted:
        if np.any(np.diff(lens) > 0):
            raise RuntimeError("pack_padded_sequence(): `lengths` array must be sorted in decreasing order when "
                               f"`enforce_sorted` is True (got {lens.tolist()}). You can pass `enforce_sorted=False` "
                               "to pack_padded_sequence and/or pack_sequence to sidestep this requirement if you do "
                               "not need ONNX exportability.")
        sorted_indices = None
        sorted_lens = lens
    else:
        # A stable sort keeps equal lengths in batch order.
        sorted_indices = np.argsort(-lens, kind="stable").astype(np.int64)
        sorted_lens = lens[sorted_indices]
    max_len = int(sorted_lens[0]) if B else 0
    steps = np.arange(max_len)
    batch_sizes = (sorted_lens[None, :] > steps[:, None]).sum(1).astype(np.int64)
    time_idx, batch_idx = _packed_index(batch_sizes, sorted_indices)
    data = PackRows.apply(input, time_idx, batch_idx, batch_first=batch_first)
    return PackedSequence(data, batch_sizes, sorted_indices, None)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Unpack a ``PackedSequence`` into ``(padded, lengths)``: (T, B, *) (or (B, T, *)) and (B,) int64.

    The batch comes back in the order it was packed from; ``total_length`` pads to at least that many steps.
    """
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"pad_packed_sequence(): expected a PackedSequence, got {type(sequence).__name__}")
    bs = sequence.batch_sizes.array
    T = int(bs.size)
    B = int(bs[0]) if T else 0
    if total_length is not None:
        if total_length < T:
            raise ValueError(f"pad_packed_sequence(): Expected total_length to be at least the length of the "
                             f"longest sequence ({T}), but got total_length={total_length}")
        T = int(total_length)
    sorted_np = None if sequence.sorted_indices is None else sequence.sorted_indices.array
    time_idx, batch_idx = _packed_index(bs, sorted_np)
    data = sequence.data
    trail = tuple(data.shape[1:])
    shape = (B, T) + trail if batch_first else (T, B) + trail
    padded = UnpackRows.apply(data, time_idx, batch_idx, shape=shape, padding_value=padding_value,
                              batch_first=batch_first)
    sorted_lengths = (bs[None, :] > np.arange(B)[:, None]).sum(1).astype(np.int64)
    lengths = np.empty(B, np.int64)
    if sorted_np is None:
        lengths[:] = sorted_lengths
    else:
        lengths[sorted_np] = sorted_lengths
    return padded, Tensor(lengths)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack tensors of shape (L_i, *) into (T, B, *) (or (B, T, *)), padding with ``padding_value``.

    ``padding_side`` 'right' (default) or 'left' says where the padding goes.
    """
    if isinstance(sequences, Tensor):
        sequences = list(sequences.unbind(0)) if sequences.ndim else [sequences]
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("pad_sequence(): received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise ValueError(f"pad_sequence(): padding_side must be 'left' or 'right', got {padding_side!r}")
    trail = tuple(sequences[0].shape[1:]) if sequences[0].ndim else None
    for i, s in enumerate(sequences):
        if not isinstance(s, Tensor):
            raise TypeError(f"pad_sequence(): sequence {i} is a {type(s).__name__}, expected a Tensor")
        if s.ndim == 0 or tuple(s.shape[1:]) != trail:
            raise RuntimeError(f"pad_sequence(): every sequence must be (L, *) with the same trailing shape; "
                               f"sequence 0 has shape {tuple(sequences[0].shape)}, sequence {i} has {tuple(s.shape)}")
    return PadStack.apply(*sequences, batch_first=batch_first, padding_value=padding_value,
                          left=padding_side == "left")


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """Split a padded batch (T, B, *) (or (B, T, *)) back into a list of (L_i, *) tensors."""
    lens = _lengths_array(lengths)
    B = padded_sequences.shape[0] if batch_first else padded_sequences.shape[1]
    if lens.size != B:
        raise ValueError(f"unpad_sequence(): got {lens.size} lengths for a batch of {B} "
                         f"(shape {tuple(padded_sequences.shape)}, batch_first={batch_first})")
    out = SplitPadded.apply(padded_sequences, lengths=tuple(int(n) for n in lens), batch_first=batch_first)
    return list(out)


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of (L_i, *) tensors; same as ``pack_padded_sequence(pad_sequence(sequences), lengths)``."""
    lengths = [int(s.shape[0]) for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    """Turn a ``PackedSequence`` back into the list of (L_i, *) tensors it was packed from."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
