"""``GPT``: a small GPT-style causal decoder (pre-norm Transformer blocks, learned positions, tied head)."""
import math

import numpy as np

from .. import nn
from ..autograd import grad_mode
from ..ops.elementwise import gelu
from ..autograd.tensor import Tensor
from .gpt2 import next_tokens

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

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, do_sample=True,
                 generator=None):
        """Continue ``idx`` (N, T0) by ``max_new_tokens`` symbols, one at a time; returns (N, T0 + max_new_tokens).

        Each step runs the model on the last ``block_size`` symbols (the context is cropped, as in
        nanoGPT) and picks the next symbol from the last position's logits, filtered as Hugging Face's
        ``generate`` does (``somanet.models.gpt2.next_tokens``): divided by ``temperature``, then only
        the ``top_k`` most likely kept, then only the smallest set whose probability reaches ``top_p``.
        With ``do_sample`` the symbol is drawn from the softmax of what is left (from ``generator``, so
        a seeded generator gives the same text every time), else it is the most likely one (greedy; so
        is ``temperature=0``). Unlike ``GPT2LMHeadModel.generate`` it samples by default, as nanoGPT's does.

        Args:
            idx: integer symbols (N, T0) with T0 >= 1, a Tensor or array.
            max_new_tokens: how many symbols to add (>= 0).
            temperature: > 0 scales the logits (below 1 sharper, above 1 flatter); 0 means greedy.
            top_k: keep the ``top_k`` largest logits (ties with the k-th kept too), or None for all.
            top_p: nucleus sampling: keep the most likely symbols until their probability reaches
                ``top_p`` in (0, 1] (at least one), or None for all.
            do_sample: sample (True) or take the most likely symbol (False).
            generator: a ``somanet.Generator`` to draw from (the default generator when None).
        """
        seq = idx.array if isinstance(idx, Tensor) else np.asarray(idx)
        if seq.ndim != 2 or seq.dtype.kind not in "iu" or seq.shape[1] < 1:
            raise ValueError(f"GPT.generate: expected integer symbols of shape (N, T0) with T0 >= 1, got "
                             f"{seq.dtype} {tuple(seq.shape)}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
            raise ValueError(f"GPT.generate: max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
        _check_sampling(temperature, top_k, top_p, "GPT.generate")
        if seq.size and (seq.min() < 0 or seq.max() >= self.vocab_size):
            raise ValueError(f"GPT.generate: symbols must be in [0, {self.vocab_size}), got values in "
                             f"[{seq.min()}, {seq.max()}]")
        greedy = not do_sample or temperature == 0
        seq = seq.astype(np.int64)
        with grad_mode.no_grad():
            was_training = self.training
            self.eval()
            try:
                for _ in range(max_new_tokens):
                    logits = self(Tensor(seq[:, -self.block_size:])).array[:, -1]
                    nxt = next_tokens(logits, not greedy, temperature, top_k, top_p, generator)
                    seq = np.concatenate([seq, nxt.astype(np.int64)[:, None]], axis=1)
            finally:
                self.train(was_training)
        return Tensor(seq)


def _check_sampling(temperature, top_k, top_p, owner):
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)) \
            or not 0 <= temperature < float("inf"):
        raise ValueError(f"{owner}: temperature must be a finite number >= 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(f"{owner}: top_k must be a positive int or None, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float, np.number))
                              or not 0 < top_p <= 1):
        raise ValueError(f"{owner}: top_p must be in (0, 1] or None, got {top_p!r}")

