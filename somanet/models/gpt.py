"""``GPT``: a small GPT-style causal decoder (pre-norm Transformer blocks, learned positions, tied head)."""
import math

import numpy as np

from .. import nn
from ..autograd import grad_mode
from ..ops.elementwise import gelu
from ..autograd.tensor import Tensor
from .char_rnn import _sample

__all__ = ["GPT"]


def gelu_tanh(x):
    """GELU with the tanh approximation, as GPT-2 uses (PyTorch's ``gelu(x, approximate='tanh')``)."""
    return gelu(x, approximate="tanh")


class GPT(nn.Module):
    """Decoder-only Transformer language model in the GPT-2 layout.

    ``tok_emb`` (Embedding(vocab_size, d_model)) + ``pos_emb`` (LearnedPositionalEncoding(block_size,
    d_model)) -> ``drop`` -> ``n_layer`` pre-norm ``TransformerEncoderLayer`` blocks (tanh-approximated
    GELU as in GPT-2, feed-forward
    ``dim_feedforward`` = 4 * d_model by default) under a causal mask -> ``ln_f`` (LayerNorm) -> ``head``
    (Linear(d_model, vocab_size, bias=False), sharing ``tok_emb.weight`` when ``tie_weights``).
    Weights are initialised as in GPT-2: N(0, 0.02), residual output projections N(0, 0.02 / sqrt(2 *
    n_layer)), zero biases.

    ``forward(idx)``: idx (N, T) integer symbols with T <= block_size -> logits (N, T, vocab_size).

    >>> model = GPT(65, block_size=32, n_layer=2, n_head=2, d_model=32)
    >>> model(somanet.randint(0, 65, (4, 16))).shape
    (4, 16, 65)
    """

    def __init__(self, vocab_size, block_size=128, n_layer=4, n_head=4, d_model=128, dim_feedforward=None,
                 dropout=0.0, bias=True, tie_weights=True):
        super().__init__()
        self.vocab_size, self.block_size, self.n_layer, self.n_head, self.d_model = (vocab_size, block_size, n_layer,
                                                                                     n_head, d_model)
        ff = 4 * d_model if dim_feedforward is None else dim_feedforward
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.LearnedPositionalEncoding(block_size, d_model, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(d_model, n_head, ff, dropout, activation=gelu_tanh, batch_first=True,
                                       norm_first=True, bias=bias) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model, bias=bias)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_weights:
            self.head.weight = self.tok_emb.weight
        mask = np.triu(np.full((block_size, block_size), -np.inf, np.float32), k=1)
        self.register_buffer("causal_mask", Tensor(mask), persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        """GPT-2's initialisation: N(0, 0.02) weights, scaled residual projections, zero biases."""
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith("bias") or ".norm" in name or name.startswith("ln_f"):
                continue
            scale = std
            if name.endswith("out_proj.weight") or name.endswith("linear2.weight"):
                scale = std / math.sqrt(2 * self.n_layer)
            nn.init.normal_(p, 0.0, scale)
        for name, p in self.named_parameters():
            if name.endswith("bias") and ".norm" not in name and not name.startswith("ln_f"):
                nn.init.zeros_(p)

    def forward(self, idx):
        if not isinstance(idx, Tensor) or idx.ndim != 2 or idx.dtype.kind not in "iu":
            raise ValueError(f"GPT: expected integer symbols of shape (N, T), got "
                             f"{getattr(idx, 'dtype', type(idx).__name__)} {tuple(getattr(idx, 'shape', ()))}")
        T = idx.shape[1]
        if T > self.block_size:
            raise ValueError(f"GPT: sequence length {T} exceeds block_size={self.block_size} (input shape "
                             f"{tuple(idx.shape)})")
        x = self.drop(self.pos_emb(self.tok_emb(idx)))
        mask = Tensor(self.causal_mask.array[:T, :T])
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True)
        return self.head(self.ln_f(x))

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
        """Continue ``idx`` (N, T0) by sampling ``max_new_tokens`` symbols (the context is cropped to
        ``block_size``); returns (N, T0 + max_new_tokens)."""
        seq = idx.array
        with grad_mode.no_grad():
            was_training = self.training
            self.eval()
            try:
                for _ in range(max_new_tokens):
                    logits = self(Tensor(seq[:, -self.block_size:]))
                    nxt = _sample(logits.array[:, -1], temperature, top_k, generator)
                    seq = np.concatenate([seq, nxt[:, None]], axis=1)
            finally:
                self.train(was_training)
        return Tensor(seq)
