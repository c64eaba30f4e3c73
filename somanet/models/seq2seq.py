"""Sequence-to-sequence models: a recurrent encoder-decoder with additive (``nn.BahdanauAttention``,
Bahdanau et al., 2015) or multiplicative (``nn.LuongAttention``, Luong et al., 2015) attention, a
Transformer encoder-decoder, and greedy and beam-search decoding for both.

Both models take padded id batches ``src`` ``(B, S)`` and ``tgt`` ``(B, T)`` int64 where ``tgt`` starts
with ``<sos>`` and ends with ``<eos>`` (``somanet.data.datasets.Seq2SeqDataset`` makes them). Training
uses teacher forcing: the decoder reads ``tgt[:, :-1]`` and predicts ``tgt[:, 1:]``; ``training_step`` /
``validation_step`` make either model a ``somanet.train.Trainer`` model (cross-entropy over the
non-padding target tokens).

Decoding (``greedy_decode``, ``beam_search``) runs under ``no_grad`` and returns a ``DecodeResult``:
the best token ids per source (without ``<sos>``, ending with ``<eos>`` unless ``max_len`` cut it),
their scores, and the attention of every generated token over the source (for plotting).

Beam search keeps ``beam_size`` hypotheses per source. A hypothesis that emits ``<eos>`` among the
``beam_size`` best candidates of a step is finished; the others continue. The score of a finished
hypothesis is ``log P(y) / len(y) ** length_penalty`` with ``len(y)`` counting the generated tokens
and ``<eos>`` (the normalisation of fairseq and Hugging Face's ``generate``; ``length_penalty=0``
ranks by the plain log-probability). A source is done when it has ``beam_size`` finished hypotheses
and no live one can still beat the worst of them, so the result is the one a search run to
``max_len`` would give.
"""
import dataclasses

import numpy as np

from .. import nn
from ..autograd import grad_mode
from ..autograd.tensor import Tensor
from ..nn import functional as F
from ..nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from ..ops.creation import rand, tensor
from ..ops.shape import cat, stack

__all__ = ["RNNEncoder", "AttentionDecoder", "Seq2Seq", "TransformerSeq2Seq", "DecodeResult", "Hypothesis",
           "greedy_search", "beam_search"]

_CELLS = ("gru", "lstm")
_ATTENTIONS = ("bahdanau", "dot", "general", "concat")


def _check_choice(value, choices, what, owner):
    if value not in choices:
        raise ValueError(f"{owner}: {what} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_ids(x, name, owner):
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: {name} must be a Tensor of token ids, got {type(x).__name__}")
    if x.ndim != 2 or x.dtype.kind not in "iu":
        raise ValueError(f"{owner}: {name} must be int64 token ids of shape (B, L), got {x.dtype} of shape "
                         f"{tuple(x.shape)}")


# --------------------------------------------------------------------------- recurrent encoder-decoder
class RNNEncoder(nn.Module):
    """Embedding and a (bidirectional) GRU or LSTM over padded source ids.

    ``forward(src (B, S), lengths=None)`` returns ``(outputs (B, S, D*hidden_size), h_n)`` (``(h_n, c_n)``
    for an LSTM; ``(D*num_layers, B, hidden_size)`` as PyTorch's). Padding (``padding_idx``) is left
    out of the recurrence through a packed sequence, so the final states are those of the last real
    token; ``lengths`` defaults to the count of non-padding ids (at least 1).
    """

    def __init__(self, vocab_size, embed_dim, hidden_size, num_layers=1, cell="gru", bidirectional=False,
                 dropout=0.0, padding_idx=0):
        super().__init__()
        _check_choice(cell, _CELLS, "cell", "RNNEncoder")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        rnn_cls = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn_cls(embed_dim, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional,
                           dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.cell, self.padding_idx, self.hidden_size = cell, padding_idx, hidden_size
        self.num_directions = 2 if bidirectional else 1
        self.num_layers = num_layers

    @property
    def output_size(self):
        """Features of each output step: ``hidden_size`` times the number of directions."""
        return self.hidden_size * self.num_directions

    def forward(self, src, lengths=None):
        _check_ids(src, "src", "RNNEncoder")
        if lengths is None:
            lengths = (src.array != self.padding_idx).sum(axis=1)
        # an all-padding source is read as its first position alone (attention needs one key)
        lengths = np.maximum(np.asarray(lengths.array if isinstance(lengths, Tensor) else lengths, dtype=np.int64), 1)
        if lengths.max() > src.shape[1]:
            raise ValueError(f"RNNEncoder: lengths up to {lengths.max()} for sources of {src.shape[1]} positions")
        emb = self.dropout(self.embedding(src))
        packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        return out, state


class AttentionDecoder(nn.Module):
    """One-layer GRU or LSTM decoder with attention over the encoder outputs.

    With ``attention="bahdanau"`` (``nn.BahdanauAttention``) the previous state queries the source and
    the context joins the embedding as the cell's input; the output layer reads ``[h_t; c_t; e_t]``.
    With ``"dot"``, ``"general"`` or ``"concat"`` (``nn.LuongAttention``) the new state queries the
    source and ``h~_t = tanh(W_c [c_t; h_t])`` feeds the output layer and, concatenated to the next
    embedding, the next step ("input feeding").

    The state is a tuple of ``(B, ...)`` Tensors: ``(h,)`` or ``(h, c)``, plus ``h~`` for Luong
    attention. ``step(token (B,), state, memory (B, S, M), pad_mask (B, S) bool, True at padding)``
    returns ``(logits (B, V), state, weights (B, S))``.
    """

    def __init__(self, vocab_size, embed_dim, hidden_size, memory_size, attention="bahdanau", cell="gru",
                 dropout=0.0, padding_idx=None):
        super().__init__()
        _check_choice(cell, _CELLS, "cell", "AttentionDecoder")
        _check_choice(attention, _ATTENTIONS, "attention", "AttentionDecoder")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        self.dropout = nn.Dropout(dropout)
        cell_cls = nn.GRUCell if cell == "gru" else nn.LSTMCell
        if attention == "bahdanau":
            self.attention = nn.BahdanauAttention(hidden_size, memory_size, hidden_size)
            self.rnn = cell_cls(embed_dim + memory_size, hidden_size)
            self.out = nn.Linear(hidden_size + memory_size + embed_dim, vocab_size)
        else:
            self.attention = nn.LuongAttention(hidden_size, memory_size, attention)
            self.rnn = cell_cls(embed_dim + hidden_size, hidden_size)
            self.concat = nn.Linear(memory_size + hidden_size, hidden_size)
            self.out = nn.Linear(hidden_size, vocab_size)
        self.attention_type, self.cell, self.hidden_size = attention, cell, hidden_size

    def init_state(self, h0, c0=None):
        """The first state from the initial hidden (and cell) state ``(B, hidden_size)``."""
        state = (h0,) if self.cell == "gru" else (h0, c0 if c0 is not None else h0 * 0.0)
        if self.attention_type != "bahdanau":
            state = state + (h0 * 0.0,)
        return state

    def step(self, token, state, memory, pad_mask=None):
        """One decoding step; see the class documentation."""
        emb = self.dropout(self.embedding(token))
        hx = state[0] if self.cell == "gru" else (state[0], state[1])
        if self.attention_type == "bahdanau":
            context, weights = self.attention(state[0], memory, key_padding_mask=pad_mask)
            new = self.rnn(cat([emb, context], dim=1), hx)
            h = new if self.cell == "gru" else new[0]
            logits = self.out(self.dropout(cat([h, context, emb], dim=1)))
            return logits, ((new,) if self.cell == "gru" else tuple(new)), weights
        new = self.rnn(cat([emb, state[-1]], dim=1), hx)
        h = new if self.cell == "gru" else new[0]
        context, weights = self.attention(h, memory, key_padding_mask=pad_mask)
        h_tilde = self.concat(cat([context, h], dim=1)).tanh()
        logits = self.out(self.dropout(h_tilde))
        return logits, ((new,) if self.cell == "gru" else tuple(new)) + (h_tilde,), weights


class _Seq2SeqBase(nn.Module):
    """Training steps and decoding shared by the two encoder-decoders. Subclasses define
    ``forward(src, tgt_in)``, ``_start(src) -> state`` and ``_step(tokens (N,), state) -> (logits,
    state, weights)``, with every Tensor of ``state`` batch-first so that beams can be reordered."""

    def _loss(self, batch, owner):
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError(f"{type(self).__name__}.{owner}: expected a (src, tgt) batch, got "
                             f"{type(batch).__name__}")
        src, tgt = batch
        _check_ids(tgt, "tgt", f"{type(self).__name__}.{owner}")
        if tgt.shape[1] < 2:
            raise ValueError(f"{type(self).__name__}.{owner}: tgt needs <sos> and at least one more token, got "
                             f"shape {tuple(tgt.shape)}")
        logits = self(src, tgt[:, :-1])
        target = tgt[:, 1:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                               ignore_index=self.pad_idx, label_smoothing=self.label_smoothing)
        keep = target.array != self.pad_idx
        correct = (logits.array.argmax(-1) == target.array) & keep
        return loss, float(correct.sum()) / max(int(keep.sum()), 1)

    def training_step(self, batch, batch_idx):
        """Teacher-forced cross-entropy of ``tgt[:, 1:]`` given ``tgt[:, :-1]`` (padding left out)."""
        loss, acc = self._loss(batch, "training_step")
        return {"loss": loss, "token_accuracy": acc}

    def validation_step(self, batch, batch_idx):
        """The same loss and token accuracy on a validation batch."""
        loss, acc = self._loss(batch, "validation_step")
        return {"loss": loss, "token_accuracy": acc}

    def _decode_args(self, src, max_len, owner):
        _check_ids(src, "src", f"{type(self).__name__}.{owner}")
        max_len = self.max_decode_len if max_len is None else max_len
        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"{type(self).__name__}.{owner}: max_len must be an int >= 1, got {max_len!r}")
        return max_len

    def _step_fn(self):
        def step(tokens, state):
            logits, state, weights = self._step(tensor(tokens), state)
            return logits.log_softmax(-1).array, state, weights.array
        return step

    def greedy_decode(self, src, max_len=None):
        """The most likely next token at every step, for each source in ``src`` ``(B, S)``; returns a
        ``DecodeResult`` (scores: summed log-probabilities)."""
        max_len = self._decode_args(src, max_len, "greedy_decode")
        with _eval_mode(self):
            return greedy_search(self._step_fn(), self._start(src), src.shape[0], self.sos_idx, self.eos_idx, max_len)

    def beam_search(self, src, beam_size=5, max_len=None, length_penalty=1.0, return_all=False):
        """Beam search (see the module documentation) for each source in ``src`` ``(B, S)``.

        Args:
            beam_size: hypotheses kept per source.
            max_len: most tokens generated (``<eos>`` included); the model's ``max_decode_len`` by default.
            length_penalty: ``alpha`` of ``score = log P / len ** alpha``.
            return_all: also return every finished hypothesis per source (``DecodeResult.beams``).
        """
        max_len = self._decode_args(src, max_len, "beam_search")
        if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
            raise ValueError(f"{type(self).__name__}.beam_search: beam_size must be an int >= 1, got {beam_size!r}")
        with _eval_mode(self):
            state = _index_state(self._start(src), np.repeat(np.arange(src.shape[0]), beam_size))
            return beam_search(self._step_fn(), state, src.shape[0], self.sos_idx, self.eos_idx, beam_size, max_len,
                               length_penalty, return_all)

    def translate(self, src, beam_size=1, max_len=None, length_penalty=1.0):
        """Decoded token-id lists (``<eos>`` dropped): greedy for ``beam_size=1``, else beam search."""
        res = (self.greedy_decode(src, max_len) if beam_size == 1
               else self.beam_search(src, beam_size, max_len, length_penalty))
        return [[t for t in seq if t != self.eos_idx] for seq in res.sequences]


class Seq2Seq(_Seq2SeqBase):
    """Recurrent encoder-decoder with attention.

    Args:
        src_vocab_size, tgt_vocab_size: vocabulary sizes.
        embed_dim: embedding width (source and target).
        hidden_size: the recurrent state (per direction in the encoder; the decoder's).
        num_layers: encoder layers.
        cell: ``"gru"`` or ``"lstm"``.
        bidirectional: a bidirectional encoder.
        attention: ``"bahdanau"`` (additive), ``"dot"``, ``"general"`` or ``"concat"`` (Luong).
        dropout: on embeddings, between encoder layers and before the output layer.
        pad_idx, sos_idx, eos_idx: the special ids (``Seq2SeqDataset``'s by default).
        label_smoothing: of the training cross-entropy.
        max_decode_len: the default ``max_len`` of decoding.

    The decoder's first state is ``tanh(bridge([h_fwd; h_bwd]))`` of the encoder's last layer (and the
    same for the LSTM's cell state with ``bridge_c``).

    ``forward(src (B, S), tgt_in (B, T), teacher_forcing_ratio=1.0, return_attention=False)`` returns
    logits ``(B, T, V)`` (and the attention ``(B, T, S)``); with ``teacher_forcing_ratio < 1`` each step
    after the first reads the model's own previous prediction with probability ``1 - ratio``. Without
    ``tgt_in`` the decoder runs free for ``max_decode_len`` steps from ``<sos>`` on its own argmax.

    >>> model = Seq2Seq(20, 15, embed_dim=8, hidden_size=16)
    >>> model(somanet.randint(4, 20, (2, 7)), somanet.randint(4, 15, (2, 5))).shape
    (2, 5, 15)
    """

    def __init__(self, src_vocab_size, tgt_vocab_size, embed_dim=64, hidden_size=128, num_layers=1, cell="gru",
                 bidirectional=True, attention="bahdanau", dropout=0.0, pad_idx=0, sos_idx=1, eos_idx=2,
                 label_smoothing=0.0, max_decode_len=50):
        super().__init__()
        self.encoder = RNNEncoder(src_vocab_size, embed_dim, hidden_size, num_layers, cell, bidirectional, dropout,
                                  padding_idx=pad_idx)
        self.decoder = AttentionDecoder(tgt_vocab_size, embed_dim, hidden_size, self.encoder.output_size, attention,
                                        cell, dropout, padding_idx=pad_idx)
        self.bridge = nn.Linear(self.encoder.output_size, hidden_size)
        self.bridge_c = nn.Linear(self.encoder.output_size, hidden_size) if cell == "lstm" else None
        self.pad_idx, self.sos_idx, self.eos_idx = pad_idx, sos_idx, eos_idx
        self.label_smoothing, self.max_decode_len = label_smoothing, max_decode_len
        self.cell = cell

    def _last_layer(self, h_n):
        d = self.encoder.num_directions
        return cat([h_n[h_n.shape[0] - d + i] for i in range(d)], dim=1)

    def encode(self, src):
        """``(memory (B, S, M), padding mask (B, S) bool, True at padding, decoder state)`` for ``src``."""
        _check_ids(src, "src", "Seq2Seq")
        memory, state = self.encoder(src)
        pad = src.array == self.pad_idx
        pad[:, 0] &= ~pad.all(axis=1)  # an all-padding source keeps its first position as a key
        mask = tensor(pad)
        if self.cell == "gru":
            dec = self.decoder.init_state(self.bridge(self._last_layer(state)).tanh())
        else:
            dec = self.decoder.init_state(self.bridge(self._last_layer(state[0])).tanh(),
                                          self.bridge_c(self._last_layer(state[1])).tanh())
        return memory, mask, dec

    def forward(self, src, tgt_in=None, teacher_forcing_ratio=1.0, return_attention=False):
        if tgt_in is None:
            # free-running: every step reads the previous step's most likely token
            steps, teacher_forcing_ratio = self.max_decode_len, 0.0
            tgt_in = tensor(np.full((src.shape[0], 1), self.sos_idx, dtype=np.int64))
        else:
            _check_ids(tgt_in, "tgt_in", "Seq2Seq")
            steps = tgt_in.shape[1]
        if tgt_in.shape[0] != src.shape[0]:
            raise ValueError(f"Seq2Seq: src has {src.shape[0]} sequences but tgt_in {tgt_in.shape[0]}")
        memory, mask, state = self.encode(src)
        logits, weights = [], []
        token = tgt_in[:, 0]
        for t in range(steps):
            if t > 0:
                if teacher_forcing_ratio >= 1.0:
                    token = tgt_in[:, t]
                elif teacher_forcing_ratio <= 0.0:
                    token = tensor(logits[-1].array.argmax(-1))
                else:
                    own = rand(tgt_in.shape[0]).array >= teacher_forcing_ratio
                    token = tensor(np.where(own, logits[-1].array.argmax(-1), tgt_in.array[:, t]))
            out, state, w = self.decoder.step(token, state, memory, mask)
            logits.append(out)
            weights.append(w)
        out = stack(logits, dim=1)
        return (out, stack(weights, dim=1)) if return_attention else out

    def _start(self, src):
        memory, mask, state = self.encode(src)
        return (state, memory, mask)

    def _step(self, tokens, state):
        dec, memory, mask = state
        logits, dec, weights = self.decoder.step(tokens, dec, memory, mask)
        return logits, (dec, memory, mask), weights


# --------------------------------------------------------------------------- Transformer
class TransformerSeq2Seq(_Seq2SeqBase):
    """Encoder-decoder Transformer (``nn.Transformer``, batch-first) over token ids, with scaled
    embeddings (``sqrt(d_model)``), sinusoidal positions and a linear output layer ``generator``.

    Args:
        src_vocab_size, tgt_vocab_size: vocabulary sizes.
        d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward, dropout: as
            ``nn.Transformer``.
        max_len: the longest source or target (the positional table).
        pad_idx, sos_idx, eos_idx, label_smoothing, max_decode_len: as ``Seq2Seq``.

    ``forward(src (B, S), tgt_in (B, T), return_attention=False)`` returns logits ``(B, T, V)`` (and the
    last decoder layer's cross-attention averaged over heads, ``(B, T, S)``); without ``tgt_in`` it runs
    free for ``max_decode_len`` steps from ``<sos>`` on its own argmax. Decoding recomputes
    the decoder over the prefix at every step (no cache; targets are short).
    """

    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=128, nhead=4, num_encoder_layers=2,
                 num_decoder_layers=2, dim_feedforward=256, dropout=0.1, max_len=128, pad_idx=0, sos_idx=1, eos_idx=2,
                 label_smoothing=0.0, max_decode_len=50):
        super().__init__()
        self.src_embed = nn.Embedding(src_vocab_size, d_model, padding_idx=pad_idx)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model, padding_idx=pad_idx)
        self.pos = nn.SinusoidalPositionalEncoding(d_model, max_len, dropout=dropout, batch_first=True)
        self.transformer = nn.Transformer(d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward,
                                          dropout, batch_first=True)
        self.generator = nn.Linear(d_model, tgt_vocab_size)
        self.d_model, self.max_len = d_model, max_len
        self.pad_idx, self.sos_idx, self.eos_idx = pad_idx, sos_idx, eos_idx
        self.label_smoothing, self.max_decode_len = label_smoothing, min(max_decode_len, max_len)

    def _embed(self, embedding, ids, what):
        if ids.shape[1] > self.max_len:
            raise ValueError(f"TransformerSeq2Seq: {what} has {ids.shape[1]} positions, more than max_len "
                             f"{self.max_len}")
        return self.pos(embedding(ids) * float(np.sqrt(self.d_model)))

    def encode(self, src):
        """``(memory (B, S, d_model), padding mask (B, S) bool, True = padding)``."""
        _check_ids(src, "src", "TransformerSeq2Seq")
        pad = src.array == self.pad_idx
        pad[:, 0] &= ~pad.all(axis=1)  # an all-padding source keeps its first position as a key
        pad = tensor(pad)
        memory = self.transformer.encoder(self._embed(self.src_embed, src, "src"), src_key_padding_mask=pad)
        return memory, pad

    def decode(self, tgt_in, memory, src_pad, return_attention=False):
        """Logits ``(B, T, V)`` of the target prefix ``tgt_in`` given the encoded source."""
        _check_ids(tgt_in, "tgt_in", "TransformerSeq2Seq")
        t = tgt_in.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(t)
        x = self._embed(self.tgt_embed, tgt_in, "tgt_in")
        layers = self.transformer.decoder.layers
        for i, layer in enumerate(layers):
            if return_attention and i == len(layers) - 1:
                weights = self._cross_attention(layer, x, memory, causal, src_pad)
            x = layer(x, memory, tgt_mask=causal, memory_key_padding_mask=src_pad, tgt_is_causal=True)
        if self.transformer.decoder.norm is not None:
            x = self.transformer.decoder.norm(x)
        logits = self.generator(x)
        return (logits, weights) if return_attention else logits

    @staticmethod
    def _cross_attention(layer, x, memory, causal, src_pad):
        # the query that the layer's cross-attention block sees, computed as the layer does
        if layer.norm_first:
            x = x + layer._sa_block(layer.norm1(x), causal, None, True)
            query = layer.norm2(x)
        else:
            query = layer.norm1(x + layer._sa_block(x, causal, None, True))
        return layer.multihead_attn(query, memory, memory, key_padding_mask=src_pad, need_weights=True)[1]

    def forward(self, src, tgt_in=None, return_attention=False):
        if tgt_in is None:
            # free-running: extend the prefix with the most likely token, max_decode_len times
            memory, pad = self.encode(src)
            prefix = np.full((src.shape[0], 1), self.sos_idx, dtype=np.int64)
            for _ in range(self.max_decode_len - 1):
                last = self.decode(tensor(prefix), memory, pad)[:, -1]
                prefix = np.concatenate([prefix, last.array.argmax(-1)[:, None]], axis=1)
            return self.decode(tensor(prefix), memory, pad, return_attention)
        if tgt_in.shape[0] != src.shape[0]:
            raise ValueError(f"TransformerSeq2Seq: src has {src.shape[0]} sequences but tgt_in {tgt_in.shape[0]}")
        memory, pad = self.encode(src)
        return self.decode(tgt_in, memory, pad, return_attention)

    def _start(self, src):
        memory, pad = self.encode(src)
        return (np.zeros((src.shape[0], 0), np.int64), memory, pad)

    def _step(self, tokens, state):
        prefix, memory, pad = state
        prefix = np.concatenate([prefix, tokens.array[:, None]], axis=1)
        logits, weights = self.decode(tensor(prefix), memory, pad, return_attention=True)
        return logits[:, -1], (prefix, memory, pad), weights[:, -1]


# --------------------------------------------------------------------------- decoding
@dataclasses.dataclass
class Hypothesis:
    """One decoded sequence: ``tokens`` (ids without ``<sos>``), ``score`` (length-normalised),
    ``log_prob`` (the summed log-probability), ``finished`` (ended with ``<eos>``), ``attention``
    ``(len(tokens), S)`` or None."""

    tokens: list
    score: float
    log_prob: float
    finished: bool
    attention: np.ndarray = None


@dataclasses.dataclass
class DecodeResult:
    """The result of decoding a batch: per source the best ``sequences`` (lists of ids), their
    ``scores`` ``(B,)`` float64, their ``attention`` (a list of ``(L, S)`` arrays, or None), and with
    ``return_all`` every finished hypothesis, best first (``beams``)."""

    sequences: list
    scores: np.ndarray
    attention: list = None
    beams: list = None


class _eval_mode:
    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()
        self.no_grad = grad_mode.no_grad()
        self.no_grad.__enter__()

    def __exit__(self, *exc):
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)


def _index_state(state, index):
    """Select the rows ``index`` of every Tensor / array in a (nested) state."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.index_select(0, tensor(np.asarray(index, dtype=np.int64)))
    if isinstance(state, np.ndarray):
        return state[index]
    if isinstance(state, (tuple, list)):
        return type(state)(_index_state(s, index) for s in state)
    if isinstance(state, dict):
        return {k: _index_state(v, index) for k, v in state.items()}
    raise TypeError(f"beam_search: cannot reorder a state of type {type(state).__name__}")


def _check_log_probs(log_probs, n, owner):
    log_probs = np.asarray(log_probs)
    if log_probs.ndim != 2 or log_probs.shape[0] != n:
        raise ValueError(f"{owner}: step must return log-probabilities of shape ({n}, V), got {log_probs.shape}")
    if np.isnan(log_probs).any():
        raise ValueError(f"{owner}: the step's log-probabilities contain NaN")
    return log_probs.astype(np.float64)


def greedy_search(step, state, batch_size, sos_idx, eos_idx, max_len):
    """Greedy decoding with a step function.

    Args:
        step: ``step(tokens (N,) int64, state) -> (log_probs (N, V), state, weights (N, S) or None)``.
        state: the initial state of the ``batch_size`` sequences.
        sos_idx, eos_idx: the start and end ids.
        max_len: most tokens generated per sequence.

    Returns a ``DecodeResult`` whose scores are the summed log-probabilities of the tokens kept.
    """
    tokens = np.full(batch_size, sos_idx, dtype=np.int64)
    done = np.zeros(batch_size, dtype=bool)
    scores = np.zeros(batch_size)
    seqs, attn = [], []
    for _ in range(max_len):
        log_probs, state, weights = step(tokens, state)
        log_probs = _check_log_probs(log_probs, batch_size, "greedy_search")
        tokens = log_probs.argmax(-1)
        scores += np.where(done, 0.0, log_probs[np.arange(batch_size), tokens])
        seqs.append(np.where(done, -1, tokens))
        attn.append(None if weights is None else np.asarray(weights))
        done |= tokens == eos_idx
        if done.all():
            break
    seqs = np.stack(seqs, axis=1)
    sequences, attention = [], []
    for b in range(batch_size):
        keep = seqs[b] >= 0
        sequences.append(seqs[b][keep].tolist())
        attention.append(None if attn[0] is None else np.stack([a[b] for a in attn], axis=0)[keep])
    return DecodeResult(sequences, scores, attention)


def beam_search(step, state, batch_size, sos_idx, eos_idx, beam_size=5, max_len=50, length_penalty=1.0,
                return_all=False):
    """Beam search with a step function (see the module documentation for the scores and the stop rule).

    Args:
        step: ``step(tokens (N,) int64, state) -> (log_probs (N, V), state, weights (N, S) or None)``
            with ``N = batch_size * beam_size``, row ``b * beam_size + k`` beam ``k`` of source ``b``.
        state: the initial state with ``N`` rows (each source's repeated ``beam_size`` times); rows
            are reordered with ``index_select`` (Tensors) or indexing (arrays) as beams move.
        sos_idx, eos_idx: the start and end ids.
        beam_size, max_len, length_penalty: as ``Seq2Seq.beam_search``.
        return_all: fill ``DecodeResult.beams`` with every kept hypothesis, best first.

    Returns a ``DecodeResult`` (scores: the length-normalised scores of the best hypotheses).
    """
    k_beams, n = beam_size, batch_size * beam_size
    if length_penalty < 0:
        raise ValueError(f"beam_search: length_penalty must be >= 0, got {length_penalty}")

    def norm(log_prob, length):
        return log_prob / (length ** length_penalty) if length_penalty else log_prob

    scores = np.full((batch_size, k_beams), -np.inf)
    scores[:, 0] = 0.0
    tokens = np.full(n, sos_idx, dtype=np.int64)
    seqs = np.zeros((n, 0), dtype=np.int64)
    attn = None
    finished = [[] for _ in range(batch_size)]
    done = np.zeros(batch_size, dtype=bool)
    for t in range(max_len):
        log_probs, state, weights = step(tokens, state)
        log_probs = _check_log_probs(log_probs, n, "beam_search")
        vocab = log_probs.shape[1]
        if weights is not None:
            w = np.asarray(weights)[:, None, :]
            attn = w if attn is None else np.concatenate([attn, w], axis=1)
        cand = (scores.reshape(n, 1) + log_probs).reshape(batch_size, k_beams * vocab)
        width = min(2 * k_beams, cand.shape[1])
        top = np.argpartition(-cand, width - 1, axis=1)[:, :width]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(cand, top, axis=1), axis=1, kind="stable"), 1)
        next_scores = np.full((batch_size, k_beams), -np.inf)
        origin = np.repeat(np.arange(batch_size) * k_beams, k_beams).reshape(batch_size, k_beams)
        next_tokens = np.full((batch_size, k_beams), eos_idx, dtype=np.int64)
        for b in range(batch_size):
            if done[b]:
                continue
            j = 0
            for rank, c in enumerate(top[b]):
                s = cand[b, c]
                if s == -np.inf:
                    break
                k, v = divmod(int(c), vocab)
                row = b * k_beams + k
                if v == eos_idx:
                    if rank < k_beams:
                        finished[b].append(Hypothesis(seqs[row].tolist() + [eos_idx], norm(s, t + 1), float(s), True,
                                                      None if attn is None else attn[row].copy()))
                    continue
                next_scores[b, j], origin[b, j], next_tokens[b, j] = s, row, v
                j += 1
                if j == k_beams:
                    break
            best_alive = next_scores[b].max()
            if best_alive == -np.inf:
                done[b] = True
            elif len(finished[b]) >= k_beams:
                worst = sorted(h.score for h in finished[b])[-k_beams]
                # a live beam's log-probability only falls; its best normalisation is at max_len
                if norm(best_alive, max_len if best_alive < 0 else t + 2) <= worst:
                    done[b] = True
        if done.all():
            break
        rows = origin.reshape(-1)
        scores, tokens = next_scores, next_tokens.reshape(-1)
        seqs = np.concatenate([seqs[rows], tokens[:, None]], axis=1)
        if attn is not None:
            attn = attn[rows]
        state = _index_state(state, rows)
    else:
        # max_len reached: the live beams count as (unfinished) hypotheses
        for b in np.flatnonzero(~done):
            for k in range(k_beams):
                s = scores[b, k]
                if s > -np.inf:
                    row = b * k_beams + k
                    finished[b].append(Hypothesis(seqs[row].tolist(), norm(s, seqs.shape[1]), float(s), False,
                                                  None if attn is None else attn[row].copy()))
    sequences, out_scores, attention, beams = [], np.zeros(batch_size), [], []
    for b in range(batch_size):
        hyps = sorted(finished[b], key=lambda h: -h.score)
        best = hyps[0]
        sequences.append(best.tokens)
        out_scores[b] = best.score
        attention.append(best.attention)
        beams.append(hyps)
    return DecodeResult(sequences, out_scores, attention, beams if return_all else None)
