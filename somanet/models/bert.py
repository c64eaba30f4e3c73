"""BERT (Devlin et al., 2018) in the Hugging Face layout: the encoder, its pooler, and the masked-LM,
sequence-classification and token-classification heads.

Module and parameter names are Hugging Face's (``embeddings.word_embeddings.weight``,
``encoder.layer.0.attention.self.query.weight``, ``pooler.dense.weight``, ``cls.predictions.bias``,
``classifier.weight``, ...) and so is the config (``BertConfig`` reads a ``config.json`` as is), so a
Hugging Face state dict loads with ``load_state_dict`` and gives the same outputs. Sentence-transformers
encoders such as all-MiniLM-L6-v2 are BERT encoders with a pooling step on top:
``sentence_embeddings`` does that step.
"""
from collections import namedtuple
from collections.abc import Mapping

import json
import os

import numpy as np

from .. import nn
from ..autograd import grad_mode
from ..autograd.tensor import Tensor
from ..nn import functional as F
from ..nn import init
from .pretrained import (PreTrainedModel, PretrainedConfig, as_config, get_activation, int_ids, merge_heads,
                         split_heads)

__all__ = ["BertConfig", "BertModel", "BertForMaskedLM", "BertForSequenceClassification",
           "BertForTokenClassification", "BertModelOutput", "mean_pooling", "sentence_embeddings",
           "SentenceEncoder"]


class BertConfig(PretrainedConfig):
    """BERT's hyper-parameters, under Hugging Face's field names (a ``config.json`` reads as is).

    ``vocab_size``, ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
    ``intermediate_size`` (the feed-forward width), ``hidden_act`` ('gelu' is the exact GELU),
    ``hidden_dropout_prob``, ``attention_probs_dropout_prob``, ``max_position_embeddings``,
    ``type_vocab_size``, ``initializer_range``, ``layer_norm_eps``, ``pad_token_id``,
    ``classifier_dropout`` (None: ``hidden_dropout_prob``), ``num_labels`` (or ``id2label``),
    ``tie_word_embeddings``. Fields it does not use are kept, so ``to_dict`` writes them back.
    """

    model_type = "bert"
    defaults = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
                    attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=2,
                    initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=0, classifier_dropout=None,
                    position_embedding_type="absolute", tie_word_embeddings=True, is_decoder=False,
                    add_cross_attention=False)

    def validate(self):
        super().validate()
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BertConfig: {name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"BertConfig: hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                             f"{self.num_attention_heads}")
        if self.position_embedding_type not in (None, "absolute"):
            raise ValueError(f"BertConfig: position_embedding_type {self.position_embedding_type!r} is not supported "
                             f"(only 'absolute')")
        if self.is_decoder or self.add_cross_attention:
            raise ValueError("BertConfig: decoder BERT (is_decoder / add_cross_attention) is not supported; this is "
                             "the bidirectional encoder")
        get_activation(self.hidden_act, "BertConfig")


#: What ``BertModel`` returns: ``last_hidden_state`` (N, L, H), ``pooler_output`` (N, H) or None without a
#: pooler, ``hidden_states`` (the embeddings' output then every layer's, with ``output_hidden_states``).
BertModelOutput = namedtuple("BertModelOutput", ["last_hidden_state", "pooler_output", "hidden_states"])


# --------------------------------------------------------------------------- building blocks
class BertEmbeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout: (N, L) ids -> (N, L, H)."""

    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.max_position_embeddings = config.max_position_embeddings

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None):
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        n, length = inputs_embeds.shape[0], inputs_embeds.shape[1]
        if length > self.max_position_embeddings:
            raise ValueError(f"BertEmbeddings: sequence length {length} exceeds max_position_embeddings "
                             f"{self.max_position_embeddings}; truncate the input (e.g. tokenizer max_length)")
        if position_ids is None:
            position_ids = Tensor(np.arange(length, dtype=np.int64)[None, :])
        if token_type_ids is None:
            token_type_ids = Tensor(np.zeros((n, length), dtype=np.int64))
        x = inputs_embeds + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    """Multi-head self-attention with separate ``query``/``key``/``value`` projections."""

    def __init__(self, config):
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def _heads(self, x):
        return split_heads(x, self.num_attention_heads, self.attention_head_size)

    def forward(self, hidden_states, attention_mask=None):
        q = self._heads(self.query(hidden_states))
        k = self._heads(self.key(hidden_states))
        v = self._heads(self.value(hidden_states))
        p = self.dropout.p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, dropout_p=p)
        return merge_heads(out)


class BertSelfOutput(nn.Module):
    """Output projection of the attention, dropout, residual and LayerNorm."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertAttention(nn.Module):
    """``self`` (the attention) then ``output`` (projection, residual, LayerNorm)."""

    def __init__(self, config):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, hidden_states, attention_mask=None):
        return self.output(self.self(hidden_states, attention_mask), hidden_states)


class BertIntermediate(nn.Module):
    """The feed-forward block's expansion: ``dense`` (H -> intermediate_size) and the activation."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = get_activation(config.hidden_act, "BertIntermediate")

    def forward(self, hidden_states):
        return self.intermediate_act_fn(self.dense(hidden_states))


class BertOutput(nn.Module):
    """The feed-forward block's contraction: ``dense`` back to H, dropout, residual and LayerNorm."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertLayer(nn.Module):
    """One post-norm encoder layer: attention, then the feed-forward block."""

    def __init__(self, config):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden_states, attention_mask=None):
        attended = self.attention(hidden_states, attention_mask)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    """``layer.0`` ... ``layer.{num_hidden_layers - 1}``."""

    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden_states, attention_mask=None, output_hidden_states=False):
        states = [hidden_states] if output_hidden_states else None
        for layer in self.layer:
            hidden_states = layer(hidden_states, attention_mask)
            if states is not None:
                states.append(hidden_states)
        return hidden_states, (tuple(states) if states is not None else None)


class BertPooler(nn.Module):
    """``tanh(dense(h[:, 0]))``: the first ([CLS]) token's state, projected."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        return self.activation(self.dense(hidden_states[:, 0]))


# --------------------------------------------------------------------------- models
class BertPreTrainedModel(PreTrainedModel):
    """Shared by the BERT models: the config, BERT's initialisation (N(0, initializer_range) weights, zero
    biases and padding row, unit LayerNorm) and the Hugging Face directory round trip."""

    config_class = BertConfig
    #: Parameter names that share another parameter (name -> the name it shares): a state dict may hold
    #: only the second, as Hugging Face files do.
    tied_weights = {}

    def _init_weights(self):
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, nn.Linear):
                init.normal_(module.weight, 0.0, std)
                if module.bias is not None:
                    init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                init.normal_(module.weight, 0.0, std)
                module._fill_padding_idx_with_zero()
            elif isinstance(module, nn.LayerNorm):
                init.ones_(module.weight)
                init.zeros_(module.bias)



def _inputs(args, kwargs, who):
    """Accept ``model(batch)`` where ``batch`` is a mapping of the keyword arguments (a tokenizer's output)."""
    if args and isinstance(args[0], Mapping):
        if len(args) > 1:
            raise TypeError(f"{who}: a mapping of inputs must be the only positional argument")
        merged = dict(args[0])
        merged.update(kwargs)
        return (), merged
    return args, kwargs


class BertModel(BertPreTrainedModel):
    """The BERT encoder: ``embeddings`` -> ``encoder`` -> ``pooler`` (optional).

    ``forward(input_ids, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
    output_hidden_states=False)``: ``input_ids`` (N, L) token ids; ``attention_mask`` (N, L), 1 for a
    token and 0 for padding (padding takes no part in attention; its own outputs are computed like any
    other's and mean nothing); ``token_type_ids`` (N, L) segment ids, zeros by default. Returns a
    ``BertModelOutput``: ``last_hidden_state`` (N, L, H), ``pooler_output`` (N, H) (None without a
    pooler), ``hidden_states``. A tokenizer's output can be passed as the only argument: ``model(batch)``.

    >>> model = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
    ...                              num_attention_heads=4, intermediate_size=64))
    >>> model(somanet.tensor([[2, 5, 7, 3]])).last_hidden_state.shape
    (1, 4, 32)
    """

    def __init__(self, config=None, add_pooling_layer=True, **kwargs):
        super().__init__()
        self.config = as_config(config, kwargs, BertConfig, "BertModel")
        self.config.validate()
        self.embeddings = BertEmbeddings(self.config)
        self.encoder = BertEncoder(self.config)
        self.pooler = BertPooler(self.config) if add_pooling_layer else None
        self._init_weights()

    @staticmethod
    def attention_bias(attention_mask, who="BertModel"):
        """The (N, 1, 1, L) bool mask attention takes (True = attend) from an (N, L) 0/1 mask, or None."""
        if attention_mask is None:
            return None
        arr = attention_mask.array if isinstance(attention_mask, Tensor) else np.asarray(attention_mask)
        if arr.ndim != 2:
            raise ValueError(f"{who}: attention_mask must be (N, L), got shape {tuple(arr.shape)}")
        keep = arr != 0
        if keep.all():
            return None
        return Tensor(keep[:, None, None, :])

    def forward(self, *args, **kwargs):
        args, kwargs = _inputs(args, kwargs, "BertModel")
        return self._forward(*args, **kwargs)

    def _forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                 inputs_embeds=None, output_hidden_states=False):
        who = type(self).__name__
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError(f"{who}: pass exactly one of input_ids and inputs_embeds")
        input_ids = int_ids(input_ids, "input_ids", who)
        token_type_ids = int_ids(token_type_ids, "token_type_ids", who)
        position_ids = int_ids(position_ids, "position_ids", who)
        shape = tuple(input_ids.shape) if input_ids is not None else tuple(inputs_embeds.shape[:-1])
        if len(shape) != 2:
            raise ValueError(f"{who}: expected input_ids of shape (N, L), got {shape}")
        for name, t in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if t is not None and tuple(t.shape) != shape:
                raise ValueError(f"{who}: {name} has shape {tuple(t.shape)}, expected {shape} like input_ids")
        if input_ids is not None and input_ids.array.size:
            top = int(input_ids.array.max())
            if top >= self.config.vocab_size or int(input_ids.array.min()) < 0:
                raise ValueError(f"{who}: input_ids must be in [0, {self.config.vocab_size}), got values up to "
                                 f"{top}; is the tokenizer the model's own?")
        mask = self.attention_bias(attention_mask, who)
        x = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        x, states = self.encoder(x, mask, output_hidden_states)
        pooled = self.pooler(x) if self.pooler is not None else None
        return BertModelOutput(x, pooled, states)


class BertLMPredictionHead(nn.Module):
    """``transform`` (dense, activation, LayerNorm) then ``decoder`` to the vocabulary, with ``bias``."""

    def __init__(self, config):
        super().__init__()
        self.transform = _PredictionTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(np.zeros(config.vocab_size, np.float32))
        self.decoder.bias = self.bias

    def forward(self, hidden_states):
        return self.decoder(self.transform(hidden_states))


class _PredictionTransform(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = get_activation(config.hidden_act, "BertForMaskedLM")
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states):
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class _MLMHead(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, hidden_states):
        return self.predictions(hidden_states)


class BertForMaskedLM(BertPreTrainedModel):
    """BERT (without pooler) and the masked-LM head ``cls.predictions``, whose decoder weight is the word
    embedding matrix (with ``tie_word_embeddings``, the default). ``forward`` takes BertModel's inputs and
    returns the logits (N, L, vocab_size)."""

    tied_weights = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
                    "cls.predictions.decoder.bias": "cls.predictions.bias"}

    def __init__(self, config=None, **kwargs):
        super().__init__()
        self.config = as_config(config, kwargs, BertConfig, "BertForMaskedLM")
        self.bert = BertModel(self.config, add_pooling_layer=False)
        self.cls = _MLMHead(self.config)
        self._init_weights()
        if self.config.tie_word_embeddings:
            self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        else:
            self.tied_weights = {"cls.predictions.decoder.bias": "cls.predictions.bias"}

    def forward(self, *args, **kwargs):
        args, kwargs = _inputs(args, kwargs, "BertForMaskedLM")
        return self.cls(self.bert(*args, **kwargs).last_hidden_state)


class BertForSequenceClassification(BertPreTrainedModel):
    """BERT with its pooler, dropout and ``classifier`` (Linear(H, num_labels)) on the pooled [CLS] state.
    ``forward`` takes BertModel's inputs and returns the logits (N, num_labels)."""

    def __init__(self, config=None, **kwargs):
        super().__init__()
        self.config = as_config(config, kwargs, BertConfig, "BertForSequenceClassification")
        self.num_labels = self.config.num_labels
        self.bert = BertModel(self.config)
        p = self.config.classifier_dropout
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob if p is None else p)
        self.classifier = nn.Linear(self.config.hidden_size, self.num_labels)
        self._init_weights()

    def forward(self, *args, **kwargs):
        args, kwargs = _inputs(args, kwargs, "BertForSequenceClassification")
        return self.classifier(self.dropout(self.bert(*args, **kwargs).pooler_output))


class BertForTokenClassification(BertPreTrainedModel):
    """BERT (without pooler), dropout and ``classifier`` (Linear(H, num_labels)) on every token.
    ``forward`` takes BertModel's inputs and returns the logits (N, L, num_labels)."""

    def __init__(self, config=None, **kwargs):
        super().__init__()
        self.config = as_config(config, kwargs, BertConfig, "BertForTokenClassification")
        self.num_labels = self.config.num_labels
        self.bert = BertModel(self.config, add_pooling_layer=False)
        p = self.config.classifier_dropout
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob if p is None else p)
        self.classifier = nn.Linear(self.config.hidden_size, self.num_labels)
        self._init_weights()

    def forward(self, *args, **kwargs):
        args, kwargs = _inputs(args, kwargs, "BertForTokenClassification")
        return self.classifier(self.dropout(self.bert(*args, **kwargs).last_hidden_state))


# --------------------------------------------------------------------------- sentence embeddings
def mean_pooling(last_hidden_state, attention_mask=None):
    """The mean of each sequence's token states over its real tokens: (N, L, H), (N, L) -> (N, H).
    Differentiable; a row with no token at all gives zeros."""
    if attention_mask is None:
        return last_hidden_state.mean(dim=1)
    arr = attention_mask.array if isinstance(attention_mask, Tensor) else np.asarray(attention_mask)
    weights = (arr != 0).astype(last_hidden_state.dtype)
    counts = np.maximum(weights.sum(axis=1, keepdims=True), 1e-9).astype(last_hidden_state.dtype)
    return (last_hidden_state * Tensor(weights[:, :, None])).sum(dim=1) / Tensor(counts)


def _cls_pooling(last_hidden_state, attention_mask=None):
    return last_hidden_state[:, 0]


def _max_pooling(last_hidden_state, attention_mask=None):
    if attention_mask is None:
        return last_hidden_state.amax(dim=1)
    arr = attention_mask.array if isinstance(attention_mask, Tensor) else np.asarray(attention_mask)
    fill = np.where(arr[:, :, None] != 0, 0.0, -1e9).astype(last_hidden_state.dtype)
    return (last_hidden_state + Tensor(fill)).amax(dim=1)


_POOLINGS = {"mean": mean_pooling, "cls": _cls_pooling, "max": _max_pooling}


def _encoder_of(model):
    if isinstance(model, BertModel):
        return model
    inner = getattr(model, "bert", None)
    if isinstance(inner, BertModel):
        return inner
    raise TypeError(f"sentence_embeddings(): model must be a BertModel (or a BERT model with a .bert encoder), got "
                    f"{type(model).__name__}")


def sentence_embeddings(model, tokenizer, sentences, *, pooling="mean", normalize=True, batch_size=32,
                        max_length=None, as_numpy=False):
    """One embedding per sentence, as sentence-transformers computes it for BERT encoders: run the encoder,
    pool the token states (``'mean'`` over real tokens, ``'cls'`` or ``'max'``) and L2-normalise.

    Args:
        model: a ``BertModel`` (e.g. from ``from_pretrained`` on a sentence-transformers folder).
        tokenizer: a ``somanet.models.Tokenizer`` (or anything called like one).
        sentences: a string or a list of strings.
        pooling: 'mean', 'cls' or 'max'.
        normalize: scale each embedding to unit L2 norm (cosine similarity is then a dot product).
        batch_size: sentences per forward pass.
        max_length: truncate longer inputs to this many tokens (default: the tokenizer's, then the
            model's ``max_position_embeddings``).
        as_numpy: return a NumPy array instead of a Tensor.

    Returns:
        (len(sentences), hidden_size) float32, computed in eval mode without a graph.

    >>> emb = sentence_embeddings(model, tokenizer, ["A cat sits.", "A dog runs."])  # doctest: +SKIP
    """
    encoder = _encoder_of(model)
    if pooling not in _POOLINGS:
        raise ValueError(f"sentence_embeddings(): pooling must be one of {sorted(_POOLINGS)}, got {pooling!r}")
    if isinstance(sentences, str):
        sentences = [sentences]
    sentences = list(sentences)
    if not all(isinstance(s, str) for s in sentences):
        raise TypeError("sentence_embeddings(): sentences must be strings")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"sentence_embeddings(): batch_size must be a positive integer, got {batch_size!r}")
    if max_length is None:
        max_length = getattr(tokenizer, "model_max_length", None) or encoder.config.max_position_embeddings
        max_length = min(int(max_length), encoder.config.max_position_embeddings)
    pool = _POOLINGS[pooling]
    out = np.zeros((len(sentences), encoder.config.hidden_size), np.float32)
    was_training = encoder.training
    encoder.eval()
    try:
        with grad_mode.no_grad():
            for start in range(0, len(sentences), batch_size):
                batch = tokenizer(sentences[start:start + batch_size], padding=True, truncation=True,
                                  max_length=max_length)
                hidden = encoder(batch["input_ids"], attention_mask=batch["attention_mask"],
                                 token_type_ids=batch.get("token_type_ids")).last_hidden_state
                out[start:start + batch["input_ids"].shape[0]] = pool(hidden, batch["attention_mask"]).array
    finally:
        encoder.train(was_training)
    if normalize:
        norms = np.sqrt((out.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
        out = (out / np.maximum(norms, 1e-12)).astype(np.float32)
    return out if as_numpy else Tensor(out)



class SentenceEncoder:
    """A BERT encoder, its tokenizer and its pooling, read from a sentence-transformers model folder (such as
    all-MiniLM-L6-v2): ``encode(sentences)`` gives the embeddings sentence-transformers gives.

    The folder holds the encoder at its top level (``config.json``, ``model.safetensors``, ``tokenizer.json``),
    the pooling settings in ``1_Pooling/config.json``, ``max_seq_length`` in ``sentence_bert_config.json``
    and, when the embeddings are normalised, a ``Normalize`` entry in ``modules.json``. A plain BERT folder
    works too (mean pooling, normalised, the tokenizer's length limit).

    >>> encoder = SentenceEncoder.from_pretrained(folder)        # doctest: +SKIP
    >>> encoder.encode(["A cat sits.", "A dog runs."]).shape       # doctest: +SKIP
    (2, 384)
    """

    def __init__(self, model, tokenizer, pooling="mean", normalize=True, max_length=None):
        if pooling not in _POOLINGS:
            raise ValueError(f"SentenceEncoder: pooling must be one of {sorted(_POOLINGS)}, got {pooling!r}")
        self.model, self.tokenizer = _encoder_of(model), tokenizer
        self.pooling, self.normalize, self.max_length = pooling, normalize, max_length

    @classmethod
    def from_pretrained(cls, folder):
        from .pretrained import from_pretrained
        from .tokenizer import Tokenizer
        folder = os.fspath(folder)
        model = from_pretrained(folder, task="base")
        tokenizer = Tokenizer.from_pretrained(folder)
        pooling, normalize, max_length = "mean", True, None
        modules = _read_json(os.path.join(folder, "modules.json"))
        if isinstance(modules, list):
            types = [str(m.get("type", "")) for m in modules if isinstance(m, dict)]
            normalize = any(t.endswith("Normalize") for t in types)
            for m in modules:
                if isinstance(m, dict) and str(m.get("type", "")).endswith("Pooling"):
                    settings = _read_json(os.path.join(folder, m.get("path", ""), "config.json")) or {}
                    known = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean",
                             "pooling_mode_max_tokens": "max"}
                    modes = [k for k, v in settings.items() if k.startswith("pooling_mode_") and v]
                    if len(modes) != 1 or modes[0] not in known:
                        raise ValueError(f"SentenceEncoder: {folder} pools with {modes or 'nothing'}; somanet does "
                                         f"one of {', '.join(known)}")
                    pooling = known[modes[0]]
        st_config = _read_json(os.path.join(folder, "sentence_bert_config.json")) or {}
        if isinstance(st_config.get("max_seq_length"), int):
            max_length = st_config["max_seq_length"]
        return cls(model, tokenizer, pooling=pooling, normalize=normalize, max_length=max_length)

    def encode(self, sentences, batch_size=32, as_numpy=True):
        """The embeddings of ``sentences`` (a string or a list), (N, hidden_size) float32."""
        return sentence_embeddings(self.model, self.tokenizer, sentences, pooling=self.pooling,
                                   normalize=self.normalize, batch_size=batch_size, max_length=self.max_length,
                                   as_numpy=as_numpy)

    __call__ = encode

    def __repr__(self):
        return (f"SentenceEncoder(hidden_size={self.model.config.hidden_size}, pooling={self.pooling!r}, "
                f"normalize={self.normalize}, max_length={self.max_length})")


def _read_json(path):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
