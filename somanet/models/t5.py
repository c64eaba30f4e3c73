"""T5 (Raffel et al., 2020), the text-to-text encoder-decoder, in the Hugging Face layout.

Module and parameter names are Hugging Face's (``shared.weight``,
``encoder.block.0.layer.0.SelfAttention.q.weight``,
``encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight``,
``decoder.block.0.layer.1.EncDecAttention.k.weight``, ``decoder.block.0.layer.2.DenseReluDense.wi.weight``,
``encoder.final_layer_norm.weight``, ``lm_head.weight`` ...), and so is the config (``T5Config``), so a
Hugging Face state dict loads with ``load_state_dict``.

What sets T5 apart from the Transformer of the paper:

* no position embeddings: the first layer of each stack holds a learned bias per head and *relative
  position bucket* (exact buckets for small distances, logarithmic ones up to ``relative_attention_max_distance``;
  the encoder's buckets tell left from right, the decoder's only look back), added to every layer's scores;
* attention scores are not divided by sqrt(head size) (that scale lives in the initialisation);
* ``T5LayerNorm`` only rescales: ``x / sqrt(mean(x^2) + eps) * weight``, no mean subtraction and no bias;
* the feed-forward block is ``wi`` -> ReLU -> ``wo`` (``feed_forward_proj='relu'``), or gated
  (``'gated-gelu'``: ``gelu_new(wi_0 x) * wi_1 x`` -> ``wo``, as T5 v1.1 and Flan-T5);
* the encoder, the decoder and the head share one embedding (``shared``); with tied embeddings the
  decoder output is scaled by ``d_model ** -0.5`` before the head;
* the decoder starts from ``decoder_start_token_id`` (the pad token, 0).

    >>> config = T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    >>> model = T5ForConditionalGeneration(config).eval()
    >>> ids = somanet.tensor([[5, 17, 42, 1]])
    >>> model.generate(ids, max_new_tokens=5).shape[1] <= 6     # the start token, then up to 5 tokens
    True
"""
import math
from collections import namedtuple

import numpy as np

from .. import nn
from ..autograd import grad_mode
from ..autograd.tensor import Tensor
from ..nn import functional as F
from ..nn import init
from ..ops.shape import cat
from .gpt2 import next_tokens
from .pretrained import (PreTrainedModel, PretrainedConfig, as_config, get_activation, int_ids, merge_heads,
                         split_heads)

__all__ = ["T5Config", "T5LayerNorm", "T5Model", "T5EncoderModel", "T5ForConditionalGeneration", "Seq2SeqLMOutput",
           "T5StackOutput", "relative_position_bucket"]


class T5Config(PretrainedConfig):
    """T5's hyper-parameters under Hugging Face's field names.

    ``vocab_size``, ``d_model``, ``d_kv`` (head size), ``d_ff`` (feed-forward width), ``num_layers``,
    ``num_decoder_layers`` (None: ``num_layers``), ``num_heads``, ``relative_attention_num_buckets``,
    ``relative_attention_max_distance``, ``dropout_rate``, ``layer_norm_epsilon``, ``initializer_factor``,
    ``feed_forward_proj`` ('relu', 'gelu', 'gated-gelu', 'gated-silu', ...), ``tie_word_embeddings``,
    ``pad_token_id``, ``eos_token_id``, ``decoder_start_token_id``.
    """

    model_type = "t5"
    defaults = dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=None,
                    num_heads=8, relative_attention_num_buckets=32, relative_attention_max_distance=128,
                    dropout_rate=0.1, layer_norm_epsilon=1e-6, initializer_factor=1.0, feed_forward_proj="relu",
                    is_encoder_decoder=True, use_cache=True, pad_token_id=0, eos_token_id=1,
                    decoder_start_token_id=0, tie_word_embeddings=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers
        # Derived from feed_forward_proj (a config.json may hold stale copies): the activation's name is the
        # part after 'gated-', and 'gated-gelu' means the tanh approximation.
        proj = str(self.feed_forward_proj)
        self.is_gated_act = proj.split("-")[0] == "gated"
        self.dense_act_fn = "gelu_new" if proj == "gated-gelu" else proj.split("-")[-1]

    def validate(self):
        super().validate()
        for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
                     "relative_attention_num_buckets", "relative_attention_max_distance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"T5Config: {name} must be a positive integer, got {value!r}")
        parts = self.feed_forward_proj.split("-")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
            raise ValueError(f"T5Config: feed_forward_proj must be '{{act}}' or 'gated-{{act}}' (e.g. 'relu', "
                             f"'gated-gelu'), got {self.feed_forward_proj!r}")
        get_activation(self.dense_act_fn, "T5Config")


#: A stack's result: ``last_hidden_state`` (N, L, d_model), ``past_key_values`` (the decoder's cache, one
#: tuple ``(self key, self value, cross key, cross value)`` per layer, with ``use_cache``).
T5StackOutput = namedtuple("T5StackOutput", ["last_hidden_state", "past_key_values"])
#: ``T5ForConditionalGeneration``'s result: ``loss`` (with ``labels``), ``logits`` (N, L, vocab_size),
#: ``past_key_values``, ``encoder_last_hidden_state``.
Seq2SeqLMOutput = namedtuple("Seq2SeqLMOutput", ["loss", "logits", "past_key_values", "encoder_last_hidden_state"])
#: ``T5Model``'s result: the decoder's ``last_hidden_state``, ``past_key_values``, ``encoder_last_hidden_state``.
Seq2SeqModelOutput = namedtuple("Seq2SeqModelOutput", ["last_hidden_state", "past_key_values",
                                                       "encoder_last_hidden_state"])


def relative_position_bucket(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    """T5's bucket (int64 array) of each ``key position - query position`` (an int array).

    Half the buckets (a quarter each way when ``bidirectional``) count distances exactly; the rest grow
    logarithmically up to ``max_distance``, beyond which everything shares the last bucket. The decoder
    (not bidirectional) only distinguishes how far back a key is; keys ahead share bucket 0.
    """
    rel = np.asarray(relative_position, dtype=np.int64)
    buckets = np.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets += (rel > 0).astype(np.int64) * num_buckets
        n = np.abs(rel)
    else:
        n = -np.minimum(rel, 0)
    max_exact = num_buckets // 2
    small = n < max_exact
    with np.errstate(divide="ignore"):
        scaled = (np.log(n.astype(np.float32) / np.float32(max_exact)) / np.float32(math.log(max_distance / max_exact))
                  * np.float32(num_buckets - max_exact))
    large = max_exact + np.where(small, 0, scaled).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return buckets + np.where(small, n, large)


# --------------------------------------------------------------------------- building blocks
class T5LayerNorm(nn.Module):
    """Root-mean-square normalisation: ``weight * x / sqrt(mean(x^2, -1) + eps)`` (no centring, no bias)."""

    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(np.ones(hidden_size, np.float32))
        self.variance_epsilon = eps

    def forward(self, x):
        variance = (x * x).mean(-1, keepdim=True)
        return self.weight * (x * (variance + self.variance_epsilon).rsqrt())

    def extra_repr(self):
        return f"{self.weight.shape[0]}, eps={self.variance_epsilon}"


class T5DenseActDense(nn.Module):
    """``wo(dropout(act(wi(x))))``."""

    def __init__(self, config):
        super().__init__()
        self.wi = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.act = get_activation(config.dense_act_fn, "T5DenseActDense")

    def forward(self, x):
        return self.wo(self.dropout(self.act(self.wi(x))))


class T5DenseGatedActDense(nn.Module):
    """``wo(dropout(act(wi_0(x)) * wi_1(x)))``."""

    def __init__(self, config):
        super().__init__()
        self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.act = get_activation(config.dense_act_fn, "T5DenseGatedActDense")

    def forward(self, x):
        return self.wo(self.dropout(self.act(self.wi_0(x)) * self.wi_1(x)))


class T5LayerFF(nn.Module):
    """``x + dropout(DenseReluDense(layer_norm(x)))``."""

    def __init__(self, config):
        super().__init__()
        self.DenseReluDense = T5DenseGatedActDense(config) if config.is_gated_act else T5DenseActDense(config)
        self.layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x):
        return x + self.dropout(self.DenseReluDense(self.layer_norm(x)))


class T5Attention(nn.Module):
    """Multi-head attention without bias terms or score scaling (``q``, ``k``, ``v``: d_model -> heads *
    d_kv, ``o`` back); ``relative_attention_bias`` (an Embedding(num_buckets, num_heads)) in the first
    layer of each stack only."""

    def __init__(self, config, has_relative_attention_bias=False, is_decoder=False):
        super().__init__()
        self.is_decoder = is_decoder
        self.has_relative_attention_bias = has_relative_attention_bias
        self.num_buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance
        self.d_model, self.d_kv, self.n_heads = config.d_model, config.d_kv, config.num_heads
        self.inner_dim = self.n_heads * self.d_kv
        self.dropout = config.dropout_rate
        self.q = nn.Linear(self.d_model, self.inner_dim, bias=False)
        self.k = nn.Linear(self.d_model, self.inner_dim, bias=False)
        self.v = nn.Linear(self.d_model, self.inner_dim, bias=False)
        self.o = nn.Linear(self.inner_dim, self.d_model, bias=False)
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(self.num_buckets, self.n_heads)

    def compute_bias(self, query_length, key_length, past=0):
        """The (1, heads, L, S) position bias for queries at ``past ... past + L - 1`` and keys ``0 ... S - 1``."""
        context = np.arange(past, past + query_length, dtype=np.int64)[:, None]
        memory = np.arange(key_length, dtype=np.int64)[None, :]
        buckets = relative_position_bucket(memory - context, bidirectional=not self.is_decoder,
                                           num_buckets=self.num_buckets, max_distance=self.max_distance)
        values = self.relative_attention_bias(Tensor(buckets))  # (L, S, heads)
        return values.permute(2, 0, 1).unsqueeze(0)

    def _heads(self, x):
        return split_heads(x, self.n_heads, self.d_kv)

    def forward(self, x, key_value_states=None, bias=None, past=None, use_cache=False):
        q = self._heads(self.q(x))
        if key_value_states is not None:  # cross-attention: the encoder's keys never change
            if past is not None:
                k, v = past
            else:
                k, v = self._heads(self.k(key_value_states)), self._heads(self.v(key_value_states))
        else:
            k, v = self._heads(self.k(x)), self._heads(self.v(x))
            if past is not None:
                k = cat([past[0], k], dim=-2)
                v = cat([past[1], v], dim=-2)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p, scale=1.0)
        out = self.o(merge_heads(out))
        return out, ((k, v) if use_cache else None)


class T5LayerSelfAttention(nn.Module):
    def __init__(self, config, has_relative_attention_bias=False, is_decoder=False):
        super().__init__()
        self.SelfAttention = T5Attention(config, has_relative_attention_bias, is_decoder)
        self.layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x, bias=None, past=None, use_cache=False):
        out, present = self.SelfAttention(self.layer_norm(x), bias=bias, past=past, use_cache=use_cache)
        return x + self.dropout(out), present


class T5LayerCrossAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.EncDecAttention = T5Attention(config, False, is_decoder=True)
        self.layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x, key_value_states, bias=None, past=None, use_cache=False):
        out, present = self.EncDecAttention(self.layer_norm(x), key_value_states, bias=bias, past=past,
                                            use_cache=use_cache)
        return x + self.dropout(out), present


class T5Block(nn.Module):
    """``layer.0`` self-attention, (decoder: ``layer.1`` cross-attention,) then the feed-forward layer."""

    def __init__(self, config, has_relative_attention_bias=False, is_decoder=False):
        super().__init__()
        self.is_decoder = is_decoder
        layers = [T5LayerSelfAttention(config, has_relative_attention_bias, is_decoder)]
        if is_decoder:
            layers.append(T5LayerCrossAttention(config))
        layers.append(T5LayerFF(config))
        self.layer = nn.ModuleList(layers)

    def forward(self, x, bias=None, encoder_hidden_states=None, cross_bias=None, past=None, use_cache=False):
        x, self_kv = self.layer[0](x, bias, None if past is None else past[:2], use_cache)
        cross_kv = None
        if self.is_decoder:
            x, cross_kv = self.layer[1](x, encoder_hidden_states, cross_bias, None if past is None else past[2:],
                                        use_cache)
        x = self.layer[-1](x)
        present = (self_kv + cross_kv) if use_cache and self.is_decoder else (self_kv if use_cache else None)
        return x, present


def _additive(keep, dtype=np.float32):
    """A bool keep-mask as the additive mask Hugging Face uses (0 or the dtype's lowest value)."""
    return np.where(keep, 0.0, np.finfo(dtype).min).astype(dtype)


def _padding_keep(mask, n, s, who):
    m = mask.array if isinstance(mask, Tensor) else np.asarray(mask)
    if m.shape != (n, s):
        raise ValueError(f"{who}: attention mask must be {(n, s)}, got {tuple(m.shape)}")
    return (m != 0)[:, None, None, :]


class T5Stack(nn.Module):
    """The encoder or the decoder: ``embed_tokens`` (the shared embedding), ``block.0`` ... , then
    ``final_layer_norm`` and dropout."""

    def __init__(self, config, embed_tokens, is_decoder=False):
        super().__init__()
        self.is_decoder = is_decoder
        self.embed_tokens = embed_tokens
        n = config.num_decoder_layers if is_decoder else config.num_layers
        self.block = nn.ModuleList([T5Block(config, i == 0, is_decoder) for i in range(n)])
        self.final_layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, input_ids, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                past_key_values=None, use_cache=False):
        who = "T5 decoder" if self.is_decoder else "T5 encoder"
        input_ids = int_ids(input_ids, "input_ids", who)
        if input_ids.ndim != 2:
            raise ValueError(f"{who}: expected input_ids of shape (N, L), got {tuple(input_ids.shape)}")
        n, length = input_ids.shape
        vocab = self.embed_tokens.weight.shape[0]
        if input_ids.array.size and (input_ids.array.min() < 0 or input_ids.array.max() >= vocab):
            raise ValueError(f"{who}: input_ids must be in [0, {vocab}), got values in "
                             f"[{int(input_ids.array.min())}, {int(input_ids.array.max())}]")
        if past_key_values is not None and len(past_key_values) != len(self.block):
            raise ValueError(f"{who}: past_key_values holds {len(past_key_values)} layers, the stack has "
                             f"{len(self.block)}")
        past = past_key_values[0][0].shape[-2] if past_key_values else 0
        s = past + length
        x = self.dropout(self.embed_tokens(input_ids))
        bias = self.block[0].layer[0].SelfAttention.compute_bias(length, s, past)
        keep = None
        if self.is_decoder and length > 1:
            keep = (np.arange(s)[None, :] <= (past + np.arange(length))[:, None])[None, None]
        if attention_mask is not None:
            pad = _padding_keep(attention_mask, n, s, who)
            keep = pad if keep is None else keep & pad
        if keep is not None:
            bias = bias + Tensor(_additive(keep, bias.dtype))
        cross_bias = None
        if self.is_decoder and encoder_attention_mask is not None:
            src = encoder_hidden_states.shape[1]
            cross_bias = Tensor(_additive(_padding_keep(encoder_attention_mask, n, src, who), x.dtype))
        presents = [] if use_cache else None
        for i, block in enumerate(self.block):
            layer_past = past_key_values[i] if past_key_values is not None else None
            x, present = block(x, bias, encoder_hidden_states, cross_bias, layer_past, use_cache)
            if presents is not None:
                presents.append(present)
        x = self.dropout(self.final_layer_norm(x))
        return T5StackOutput(x, tuple(presents) if presents is not None else None)


class T5PreTrainedModel(PreTrainedModel):
    """Shared by the T5 models: the config, T5's initialisation (per-layer normal scales from
    ``initializer_factor``, unit layer norms) and the Hugging Face directory round trip."""

    config_class = T5Config
    tied_weights = {}

    def _init_weights(self):
        factor = self.config.initializer_factor
        d_model, d_kv, heads, d_ff = self.config.d_model, self.config.d_kv, self.config.num_heads, self.config.d_ff
        for module in self.modules():
            if isinstance(module, T5LayerNorm):
                init.constant_(module.weight, factor)
            elif isinstance(module, T5DenseActDense):
                init.normal_(module.wi.weight, 0.0, factor * d_model ** -0.5)
                init.normal_(module.wo.weight, 0.0, factor * d_ff ** -0.5)
            elif isinstance(module, T5DenseGatedActDense):
                init.normal_(module.wi_0.weight, 0.0, factor * d_model ** -0.5)
                init.normal_(module.wi_1.weight, 0.0, factor * d_model ** -0.5)
                init.normal_(module.wo.weight, 0.0, factor * d_ff ** -0.5)
            elif isinstance(module, T5Attention):
                init.normal_(module.q.weight, 0.0, factor * (d_model * d_kv) ** -0.5)
                init.normal_(module.k.weight, 0.0, factor * d_model ** -0.5)
                init.normal_(module.v.weight, 0.0, factor * d_model ** -0.5)
                init.normal_(module.o.weight, 0.0, factor * (heads * d_kv) ** -0.5)
                if module.has_relative_attention_bias:
                    init.normal_(module.relative_attention_bias.weight, 0.0, factor * d_model ** -0.5)
        init.normal_(self.shared.weight, 0.0, factor)
        head = getattr(self, "lm_head", None)
        if head is not None and head.weight is not self.shared.weight:
            init.normal_(head.weight, 0.0, factor)


    def _build(self, config, kwargs, decoder=True):
        self.config = as_config(config, kwargs, T5Config, type(self).__name__)
        self.config.validate()
        self.shared = nn.Embedding(self.config.vocab_size, self.config.d_model)
        self.encoder = T5Stack(self.config, self.shared)
        tied = {"encoder.embed_tokens.weight": "shared.weight"}
        if decoder:
            self.decoder = T5Stack(self.config, self.shared, is_decoder=True)
            tied["decoder.embed_tokens.weight"] = "shared.weight"
        self.tied_weights = tied

    def _shift_right(self, labels):
        """Decoder inputs for teacher forcing: the start token, then ``labels`` without their last token
        (ignored labels, -100, become the pad token)."""
        start = self.config.decoder_start_token_id
        if start is None:
            raise ValueError(f"{type(self).__name__}: config.decoder_start_token_id is needed to build decoder "
                             f"inputs from labels")
        arr = labels.array if isinstance(labels, Tensor) else np.asarray(labels)
        out = np.empty_like(arr, dtype=np.int64)
        out[:, 0] = start
        out[:, 1:] = arr[:, :-1]
        out[out == -100] = self.config.pad_token_id if self.config.pad_token_id is not None else 0
        return Tensor(out)


class T5EncoderModel(T5PreTrainedModel):
    """The encoder alone: ``forward(input_ids, attention_mask=None)`` -> a ``T5StackOutput``."""

    def __init__(self, config=None, **kwargs):
        super().__init__()
        self._build(config, kwargs, decoder=False)
        self._init_weights()

    def forward(self, input_ids, attention_mask=None):
        return self.encoder(input_ids, attention_mask)


class T5Model(T5PreTrainedModel):
    """Encoder and decoder without the language-model head; ``forward(input_ids, attention_mask=None,
    decoder_input_ids=..., decoder_attention_mask=None, encoder_outputs=None, past_key_values=None,
    use_cache=False)`` -> a ``Seq2SeqModelOutput`` (the decoder's last hidden state first)."""

    def __init__(self, config=None, **kwargs):
        super().__init__()
        self._build(config, kwargs)
        self._init_weights()

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                encoder_outputs=None, past_key_values=None, use_cache=False):
        if decoder_input_ids is None:
            raise ValueError("T5Model: decoder_input_ids are required")
        enc = encoder_outputs if encoder_outputs is not None else self.encoder(input_ids, attention_mask)
        enc_h = enc[0]
        dec = self.decoder(decoder_input_ids, decoder_attention_mask, enc_h, attention_mask, past_key_values,
                           use_cache)
        return Seq2SeqModelOutput(dec.last_hidden_state, dec.past_key_values, enc_h)


class T5ForConditionalGeneration(T5PreTrainedModel):
    """T5 with its language-model head ``lm_head`` (Linear(d_model, vocab_size, bias=False); the shared
    embedding when ``tie_word_embeddings``, in which case the decoder output is first scaled by
    ``d_model ** -0.5``).

    ``forward(input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
    labels=None, encoder_outputs=None, past_key_values=None, use_cache=False)``: ``input_ids`` (N, S) and
    ``attention_mask`` (N, S) (1 = token, 0 = padding) for the encoder; ``decoder_input_ids`` (N, L), or
    built from ``labels`` by ``_shift_right``. With ``labels`` the loss is the mean cross-entropy over
    the labels that are not -100. Returns a ``Seq2SeqLMOutput``.
    """

    def __init__(self, config=None, **kwargs):
        super().__init__()
        self._build(config, kwargs)
        self.lm_head = nn.Linear(self.config.d_model, self.config.vocab_size, bias=False)
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.shared.weight
            self.tied_weights = {**self.tied_weights, "lm_head.weight": "shared.weight"}
        self._init_weights()

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                labels=None, encoder_outputs=None, past_key_values=None, use_cache=False):
        who = type(self).__name__
        if labels is not None:
            labels = int_ids(labels, "labels", who)
            if decoder_input_ids is None:
                decoder_input_ids = self._shift_right(labels)
        if decoder_input_ids is None:
            raise ValueError(f"{who}: pass decoder_input_ids or labels")
        if encoder_outputs is None:
            if input_ids is None:
                raise ValueError(f"{who}: pass input_ids or encoder_outputs")
            encoder_outputs = self.encoder(input_ids, attention_mask)
        enc_h = encoder_outputs[0]
        dec = self.decoder(decoder_input_ids, decoder_attention_mask, enc_h, attention_mask, past_key_values,
                           use_cache)
        h = dec.last_hidden_state
        if self.config.tie_word_embeddings:
            h = h * (self.config.d_model ** -0.5)
        logits = self.lm_head(h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        return Seq2SeqLMOutput(loss, logits, dec.past_key_values, enc_h)

    def generate(self, input_ids, max_new_tokens=20, attention_mask=None, do_sample=False, temperature=1.0,
                 top_k=None, top_p=None, generator=None, decoder_start_token_id=None, eos_token_id=None,
                 pad_token_id=None, use_cache=True):
        """Decode from ``input_ids`` (N, S): returns (N, 1 + generated) decoder tokens, starting with the
        decoder start token.

        The encoder runs once; each step feeds the decoder the new token, reading earlier self-attention
        keys/values and the encoder's cross-attention keys/values from the cache (``use_cache=False``
        recomputes the whole prefix instead: same tokens). Greedy unless ``do_sample`` (then temperature,
        ``top_k``, ``top_p`` and ``generator`` as in ``GPT2LMHeadModel.generate``). A sequence that produced
        ``eos_token_id`` (default: the config's) continues with ``pad_token_id``; decoding stops when every
        sequence has ended or after ``max_new_tokens``.
        """
        who = f"{type(self).__name__}.generate()"
        input_ids = int_ids(input_ids, "input_ids", who)
        start = self.config.decoder_start_token_id if decoder_start_token_id is None else decoder_start_token_id
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        eos = None if eos is None or eos < 0 else int(eos)
        pad = pad_token_id if pad_token_id is not None else self.config.pad_token_id
        pad = 0 if pad is None else pad
        n = input_ids.shape[0]
        seq = np.full((n, 1), start, np.int64)
        done = np.zeros(n, bool)
        was_training = self.training
        self.eval()
        try:
            with grad_mode.no_grad():
                enc = self.encoder(input_ids, attention_mask)
                past = None
                for _ in range(max_new_tokens):
                    step = seq[:, -1:] if (use_cache and past is not None) else seq
                    out = self(attention_mask=attention_mask, decoder_input_ids=Tensor(step), encoder_outputs=enc,
                               past_key_values=past if use_cache else None, use_cache=use_cache)
                    past = out.past_key_values
                    nxt = next_tokens(out.logits.array[:, -1], do_sample, temperature, top_k, top_p, generator)
                    if eos is not None:
                        nxt = np.where(done, pad, nxt)
                        done |= nxt == eos
                    seq = np.concatenate([seq, nxt[:, None].astype(np.int64)], axis=1)
                    if eos is not None and done.all():
                        break
        finally:
            self.train(was_training)
        return Tensor(seq)


# --------------------------------------------------------------------------- Hugging Face folders
def _t5_to_ours(state_dict, model):
    """Hugging Face T5 names are this model's; keys the model does not have by design (the decoder and head
    for ``T5EncoderModel``, the head for ``T5Model``, the cross-attention position bias some old files
    hold) are reported as unused rather than unexpected."""
    from collections import OrderedDict

    own = model.state_dict()
    out, unused = OrderedDict(), []
    for key, value in state_dict.items():
        out[key] = value
        if key not in own and (key.startswith(("decoder.", "lm_head.")) or "EncDecAttention.relative_attention_bias"
                               in key):
            unused.append(key)
    return out, unused


def _t5_to_theirs(state_dict, model):
    """The state dict without the tied copies of ``shared.weight``, as Hugging Face writes it."""
    tied = getattr(model, "tied_weights", {})
    return type(state_dict)((k, v) for k, v in state_dict.items() if k not in tied)


def _register():
    from .pretrained import Architecture, register_architecture

    register_architecture(Architecture(
        "t5", T5Config, {"T5Model": T5Model, "T5ForConditionalGeneration": T5ForConditionalGeneration,
                         "T5EncoderModel": T5EncoderModel}, "T5ForConditionalGeneration",
        {"base": "T5Model", "feature-extraction": "T5EncoderModel",
         "text2text-generation": "T5ForConditionalGeneration", "seq2seq-lm": "T5ForConditionalGeneration"},
        _t5_to_ours, _t5_to_theirs))


_register()
