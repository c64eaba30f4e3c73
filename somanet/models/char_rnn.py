"""``CharRNN``: a character-level (or token-level) recurrent language model: Embedding -> LSTM/GRU -> Linear."""
import numpy as np

from .. import nn
from ..autograd import grad_mode
from ..autograd.tensor import Tensor
from ..ops.shape import transpose
from ..random import numpy_rng

__all__ = ["CharRNN"]

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class CharRNN(nn.Module):
    """Recurrent language model over a vocabulary of ``vocab_size`` symbols.

    ``embedding`` (Embedding(vocab_size, embedding_dim)) -> ``rnn`` (LSTM, GRU or tanh RNN with
    ``num_layers`` layers of ``hidden_size``, ``dropout`` between layers) -> ``dropout`` -> ``head``
    (Linear(hidden_size, vocab_size)) giving next-symbol logits. With ``tie_weights`` (needs
    ``embedding_dim == hidden_size``) the head shares the embedding matrix.

    ``forward(idx, state=None)``: idx (N, T) integer symbols -> ``(logits (N, T, vocab_size), state)``,
    where ``state`` is the recurrent state to carry into the next chunk (truncated backpropagation
    through time: detach it between chunks).

    >>> model = CharRNN(65, embedding_dim=32, hidden_size=64)
    >>> logits, state = model(somanet.randint(0, 65, (4, 16)))
    >>> logits.shape
    (4, 16, 65)
    """

    def __init__(self, vocab_size, embedding_dim=128, hidden_size=256, num_layers=2, cell="lstm", dropout=0.0,
                 tie_weights=False):
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"CharRNN: cell must be one of {sorted(_CELLS)}, got {cell!r}")
        if tie_weights and embedding_dim != hidden_size:
            raise ValueError(f"CharRNN: tie_weights needs embedding_dim == hidden_size, got {embedding_dim} and "
                             f"{hidden_size}")
        self.vocab_size, self.embedding_dim, self.hidden_size = vocab_size, embedding_dim, hidden_size
        self.num_layers, self.cell = num_layers, cell
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        # Time-major inside: the recurrent layers run on (T, N, E) without a transpose copy.
        self.rnn = _CELLS[cell](embedding_dim, hidden_size, num_layers, dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)
        if tie_weights:
            self.head.weight = self.embedding.weight

    def forward(self, idx, state=None):
        if not isinstance(idx, Tensor) or idx.ndim != 2 or idx.dtype.kind not in "iu":
            raise ValueError(f"CharRNN: expected integer symbols of shape (N, T), got "
                             f"{getattr(idx, 'dtype', type(idx).__name__)} {tuple(getattr(idx, 'shape', ()))}")
        # The recurrent core reads the embedding table directly: for a small vocabulary its first layer's
        # input projection is one row per symbol instead of one per position (same results).
        out, state = self.rnn.forward_embedding(transpose(idx, 0, 1), self.embedding, state)
        logits = self.head(self.dropout(out))
        return transpose(logits, 0, 1), state

    @staticmethod
    def detach_state(state):
        """The state cut from the graph (for truncated backpropagation through time)."""
        if state is None:
            return None
        if isinstance(state, tuple):
            return tuple(s.detach() for s in state)
        return state.detach()

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
        """Continue the sequences ``idx`` (N, T0) by sampling ``max_new_tokens`` symbols; returns (N, T0 + new)."""
        with grad_mode.no_grad():
            was_training = self.training
            self.eval()
            try:
                logits, state = self(idx)
                seqs = [idx.array]
                for _ in range(max_new_tokens):
                    nxt = _sample(logits.array[:, -1], temperature, top_k, generator)
                    seqs.append(nxt[:, None])
                    logits, state = self(Tensor(nxt[:, None]), state)
            finally:
                self.train(was_training)
        return Tensor(np.concatenate(seqs, axis=1))


def _sample(logits, temperature, top_k, generator):
    """Draw one symbol per row from ``softmax(logits / temperature)``, optionally among the ``top_k`` best."""
    if temperature <= 0:
        return logits.argmax(-1).astype(np.int64)
    z = logits.astype(np.float64) / temperature
    if top_k is not None:
        kth = np.sort(z, axis=-1)[:, -min(top_k, z.shape[-1])][:, None]
        z = np.where(z < kth, -np.inf, z)
    z -= z.max(-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(-1, keepdims=True)
    rng = numpy_rng(generator)
    u = rng.random((p.shape[0], 1))
    return np.minimum((p.cumsum(-1) < u).sum(-1), p.shape[-1] - 1).astype(np.int64)
