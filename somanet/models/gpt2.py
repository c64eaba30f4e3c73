"""GPT-2 (Radford et al., 2019) in the Hugging Face layout, with key/value-cache generation.

Module and parameter names are Hugging Face's ``GPT2LMHeadModel`` names (``transformer.wte.weight``,
``transformer.h.0.attn.c_attn.weight``, ``transformer.ln_f.bias``, ``lm_head.weight`` ...) and so is the
config (``GPT2Config`` reads a ``config.json`` as is), so a Hugging Face state dict loads with
``load_state_dict`` and gives the same logits. The projections are ``Conv1D`` layers as in the original
code: a linear layer whose weight is stored transposed, ``(in_features, out_features)``.

    >>> config = GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=4)
    >>> model = GPT2LMHeadModel(config).eval()
    >>> ids = somanet.tensor([[5, 17, 42]])
    >>> model(ids).logits.shape
    (1, 3, 100)
    >>> model.generate(ids, max_new_tokens=5).shape      # greedy, with the key/value cache
    (1, 8)
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
from ..random import numpy_rng
from .pretrained import (PreTrainedModel, PretrainedConfig, as_config, get_activation, int_ids, merge_heads,
                         split_heads)

__all__ = ["GPT2Config", "Conv1D", "GPT2Model", "GPT2LMHeadModel", "GPT2Output", "CausalLMOutput"]


class GPT2Config(PretrainedConfig):
    """GPT-2's hyper-parameters under Hugging Face's field names.

    ``vocab_size``, ``n_positions`` (the longest context), ``n_embd`` (width), ``n_layer``, ``n_head``,
    ``n_inner`` (feed-forward width, None: 4 * n_embd), ``activation_function`` ('gelu_new' is the tanh
    approximation GPT-2 uses), ``resid_pdrop``, ``embd_pdrop``, ``attn_pdrop``, ``layer_norm_epsilon``,
    ``initializer_range``, ``scale_attn_weights`` (divide scores by sqrt(head size)),
    ``scale_attn_by_inverse_layer_idx`` (and by layer index + 1), ``bos_token_id``, ``eos_token_id``,
    ``tie_word_embeddings``.
    """

    model_type = "gpt2"
    defaults = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, n_inner=None,
                    activation_function="gelu_new", resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
                    layer_norm_epsilon=1e-5, initializer_range=0.02, scale_attn_weights=True,
                    scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False, use_cache=True,
                    bos_token_id=50256, eos_token_id=50256, pad_token_id=None, tie_word_embeddings=True,
                    add_cross_attention=False)

    def validate(self):
        super().validate()
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPT2Config: {name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPT2Config: n_embd {self.n_embd} is not a multiple of n_head {self.n_head}")
        if self.add_cross_attention:
            raise ValueError("GPT2Config: add_cross_attention is not supported (decoder-only GPT-2)")
        get_activation(self.activation_function, "GPT2Config")

    @property
    def hidden_size(self):
        return self.n_embd

    @property
    def inner_size(self):
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd


#: ``GPT2Model``'s result: ``last_hidden_state`` (N, T, C), ``past_key_values`` (one ``(key, value)`` pair
#: (N, n_head, S, head size) per layer, with ``use_cache``, else None), ``hidden_states`` (with
#: ``output_hidden_states``).
GPT2Output = namedtuple("GPT2Output", ["last_hidden_state", "past_key_values", "hidden_states"])
#: A language model's result: ``loss`` (with ``labels``, else None), ``logits`` (N, T, vocab_size),
#: ``past_key_values``, ``hidden_states``.
CausalLMOutput = namedtuple("CausalLMOutput", ["loss", "logits", "past_key_values", "hidden_states"])


# --------------------------------------------------------------------------- building blocks
class Conv1D(nn.Module):
    """A linear layer with its weight stored as ``(in_features, out_features)``: ``y = x @ W + b``.

    GPT-2's checkpoints keep this layout, so its weights load without transposing.
    """

    def __init__(self, out_features, in_features):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(np.empty((in_features, out_features), np.float32))
        self.bias = nn.Parameter(np.zeros(out_features, np.float32))
        init.normal_(self.weight, 0.0, 0.02)

    def forward(self, x):
        return F.linear(x, self.weight.T, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class GPT2Attention(nn.Module):
    """Causal multi-head self-attention: ``c_attn`` (C -> 3C: query, key, value), the scaled dot-product
    attention, ``c_proj`` (C -> C) and dropout; with ``layer_past`` the keys and values of earlier
    positions come from the cache."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.embed_dim = config.n_embd
        self.scale = 1.0 / math.sqrt(self.head_dim) if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            self.scale /= float(layer_idx + 1)
        self.c_attn = Conv1D(3 * config.n_embd, config.n_embd)
        self.c_proj = Conv1D(config.n_embd, config.n_embd)
        self.attn_pdrop = config.attn_pdrop
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    #: Set by ``somanet.interpret.record_attention``: called with (module, weights (N, heads, T, S)).
    _attention_recorder = None

    def _heads(self, x):
        return split_heads(x, self.n_head, self.head_dim)

    def forward(self, x, layer_past=None, keep=None, use_cache=False):
        q, k, v = self.c_attn(x).split(self.embed_dim, dim=2)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        if layer_past is not None:
            k = cat([layer_past[0], k], dim=-2)
            v = cat([layer_past[1], v], dim=-2)
        present = (k, v) if use_cache else None
        p = self.attn_pdrop if self.training else 0.0
        if self._attention_recorder is not None:  # the same fused op, asked for its weights as well
            from ..ops.attention import ScaledDotProductAttention
            out, weights = ScaledDotProductAttention.apply(q, k, v, None if keep is None else keep.array,
                                                           scale=self.scale, dropout_p=p, need_weights=True,
                                                           is_causal=keep is None and q.shape[2] > 1)
            self._attention_recorder(self, weights)
        elif keep is None:  # no padding and no cache: the plain causal mask
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=q.shape[2] > 1, scale=self.scale)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p, scale=self.scale)
        return self.resid_dropout(self.c_proj(merge_heads(out))), present


class GPT2MLP(nn.Module):
    """``c_fc`` (C -> n_inner), the activation, ``c_proj`` (n_inner -> C), dropout."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = Conv1D(config.inner_size, config.n_embd)
        self.c_proj = Conv1D(config.n_embd, config.inner_size)
        self.act = get_activation(config.activation_function, "GPT2MLP")
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class GPT2Block(nn.Module):
    """A pre-norm block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = GPT2Attention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(config)

    def forward(self, x, layer_past=None, keep=None, use_cache=False):
        a, present = self.attn(self.ln_1(x), layer_past, keep, use_cache)
        x = x + a
        return x + self.mlp(self.ln_2(x)), present


class GPT2PreTrainedModel(PreTrainedModel):
    """Shared by the GPT-2 models: the config, GPT-2's initialisation (N(0, initializer_range) weights,
    residual projections scaled by 1/sqrt(2 * n_layer), zero biases, unit LayerNorms) and the Hugging
    Face directory round trip."""

    config_class = GPT2Config
    #: Parameter names that share another parameter (name -> the name it shares).
    tied_weights = {}

    def _init_weights(self):
        std = self.config.initializer_range
        for name, module in self.named_modules():
            if isinstance(module, (Conv1D, nn.Linear)):
                scale = std
                if name.endswith("c_proj"):
                    scale = std / math.sqrt(2 * self.config.n_layer)
                init.normal_(module.weight, 0.0, scale)
                if module.bias is not None:
                    init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                init.normal_(module.weight, 0.0, std)
            elif isinstance(module, nn.LayerNorm):
                init.ones_(module.weight)
                init.zeros_(module.bias)



def _past_length(past_key_values):
    if not past_key_values:
        return 0
    return past_key_values[0][0].shape[-2]


class GPT2Model(GPT2PreTrainedModel):
    """The GPT-2 decoder: ``wte`` (token embedding) + ``wpe`` (learned positions) -> ``drop`` -> blocks
    ``h.0`` ... ``h.{n_layer - 1}`` -> ``ln_f``.

    ``forward(input_ids, past_key_values=None, attention_mask=None, position_ids=None, token_type_ids=None,
    use_cache=False, output_hidden_states=False)``: ``input_ids`` (N, T); ``past_key_values`` the cache a
    previous call returned (the new tokens continue those sequences); ``attention_mask`` (N, S) with S =
    cached + new positions, 1 for a token and 0 for padding; ``position_ids`` (N, T), by default counting
    on from the cached length. Returns a ``GPT2Output``.
    """

    def __init__(self, config=None, **kwargs):
        super().__init__()
        self.config = as_config(config, kwargs, GPT2Config, "GPT2Model")
        self.config.validate()
        c = self.config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.n_positions, c.n_embd)
        self.drop = nn.Dropout(c.embd_pdrop)
        self.h = nn.ModuleList([GPT2Block(c, i) for i in range(c.n_layer)])
        self.ln_f = nn.LayerNorm(c.n_embd, eps=c.layer_norm_epsilon)
        self._init_weights()

    def _keep_mask(self, attention_mask, n, t, past):
        """The bool (N, 1, T, S) mask of the allowed (query, key) pairs, or None for the plain causal case."""
        s = past + t
        if attention_mask is None and past == 0:
            return None
        causal = np.arange(s)[None, :] <= (past + np.arange(t))[:, None]  # (T, S), aligned to the end
        if attention_mask is None:
            return Tensor(causal[None, None])
        m = attention_mask.array if isinstance(attention_mask, Tensor) else np.asarray(attention_mask)
        if m.shape != (n, s):
            raise ValueError(f"{type(self).__name__}: attention_mask must be (N, cached + new positions) = "
                             f"{(n, s)}, got {tuple(m.shape)}")
        return Tensor(causal[None, None] & (m != 0)[:, None, None, :])

    def forward(self, input_ids=None, past_key_values=None, attention_mask=None, position_ids=None,
                token_type_ids=None, use_cache=False, output_hidden_states=False, inputs_embeds=None):
        who = type(self).__name__
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError(f"{who}: pass exactly one of input_ids and inputs_embeds")
        input_ids = int_ids(input_ids, "input_ids", who)
        position_ids = int_ids(position_ids, "position_ids", who)
        token_type_ids = int_ids(token_type_ids, "token_type_ids", who)
        shape = tuple(input_ids.shape) if input_ids is not None else tuple(inputs_embeds.shape[:-1])
        if len(shape) != 2:
            raise ValueError(f"{who}: expected input_ids of shape (N, T), got {shape}")
        n, t = shape
        if past_key_values is not None and len(past_key_values) != len(self.h):
            raise ValueError(f"{who}: past_key_values holds {len(past_key_values)} layers, the model has "
                             f"{len(self.h)}")
        past = _past_length(past_key_values)
        if past + t > self.config.n_positions:
            raise ValueError(f"{who}: {past + t} positions exceed n_positions={self.config.n_positions}")
        if input_ids is not None and input_ids.array.size:
            lo, hi = int(input_ids.array.min()), int(input_ids.array.max())
            if lo < 0 or hi >= self.config.vocab_size:
                raise ValueError(f"{who}: input_ids must be in [0, {self.config.vocab_size}), got values in "
                                 f"[{lo}, {hi}]")
        x = self.wte(input_ids) if inputs_embeds is None else inputs_embeds
        if position_ids is None:
            pos = self.wpe.weight[past:past + t]  # (T, C), broadcast over the batch
        else:
            pos = self.wpe(position_ids)
        x = x + pos
        if token_type_ids is not None:
            x = x + self.wte(token_type_ids)
        x = self.drop(x)
        keep = self._keep_mask(attention_mask, n, t, past)
        presents = [] if use_cache else None
        states = [] if output_hidden_states else None
        for i, block in enumerate(self.h):
            if states is not None:
                states.append(x)
            layer_past = past_key_values[i] if past_key_values is not None else None
            x, present = block(x, layer_past, keep, use_cache)
            if presents is not None:
                presents.append(present)
        x = self.ln_f(x)
        if states is not None:
            states.append(x)
        return GPT2Output(x, tuple(presents) if presents is not None else None,
                          tuple(states) if states is not None else None)


class GPT2LMHeadModel(GPT2PreTrainedModel):
    """GPT-2 with its language-model head: ``transformer`` (a ``GPT2Model``) and ``lm_head`` (Linear(C,
    vocab_size, bias=False), sharing ``transformer.wte.weight`` when ``tie_word_embeddings``).

    ``forward(input_ids, past_key_values=None, attention_mask=None, position_ids=None, labels=None,
    use_cache=False, ...)`` returns a ``CausalLMOutput``; with ``labels`` (N, T) the loss is the mean
    cross-entropy of each position's logits against the next label (labels are shifted inside, -100
    is ignored), as in Hugging Face.
    """

    def __init__(self, config=None, **kwargs):
        super().__init__()
        self.config = as_config(config, kwargs, GPT2Config, "GPT2LMHeadModel")
        self.transformer = GPT2Model(self.config)
        self.lm_head = nn.Linear(self.config.n_embd, self.config.vocab_size, bias=False)
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.transformer.wte.weight
            self.tied_weights = {"lm_head.weight": "transformer.wte.weight"}
        else:
            init.normal_(self.lm_head.weight, 0.0, self.config.initializer_range)

    def forward(self, input_ids=None, past_key_values=None, attention_mask=None, position_ids=None, labels=None,
                use_cache=False, token_type_ids=None, output_hidden_states=False, inputs_embeds=None):
        out = self.transformer(input_ids, past_key_values=past_key_values, attention_mask=attention_mask,
                               position_ids=position_ids, token_type_ids=token_type_ids, use_cache=use_cache,
                               output_hidden_states=output_hidden_states, inputs_embeds=inputs_embeds)
        logits = self.lm_head(out.last_hidden_state)
        loss = None
        if labels is not None:
            labels = int_ids(labels, "labels", type(self).__name__)
            v = logits.shape[-1]
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, v), labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutput(loss, logits, out.past_key_values, out.hidden_states)

    def generate(self, input_ids, max_new_tokens=20, temperature=1.0, top_k=None, top_p=None, do_sample=False,
                 generator=None, attention_mask=None, eos_token_id=None, pad_token_id=None, use_cache=True):
        """Continue ``input_ids`` (N, T0) by ``max_new_tokens`` tokens; returns (N, T0 + new).

        Greedy by default (``do_sample=False``); with ``do_sample`` each token is drawn from
        ``softmax(logits / temperature)`` restricted to the ``top_k`` best and to the smallest set whose
        probability reaches ``top_p``, using ``generator``. With ``use_cache`` (the default) each step runs
        only the new token through the model, reading earlier keys and values from the cache; the tokens
        are the same as without it. A sequence that produced ``eos_token_id`` (default: the config's) is
        continued with ``pad_token_id`` (default: eos), and generation stops once every sequence has
        ended. ``attention_mask`` (N, T0) marks left padding (0) in a batch of prompts of unequal length.
        """
        who = f"{type(self).__name__}.generate()"
        input_ids = int_ids(input_ids, "input_ids", who)
        if input_ids.ndim != 2:
            raise ValueError(f"{who}: input_ids must be (N, T), got shape {tuple(input_ids.shape)}")
        seq = np.asarray(input_ids.array, dtype=np.int64)
        if seq.shape[1] + max_new_tokens > self.config.n_positions:
            raise ValueError(f"{who}: {seq.shape[1]} + {max_new_tokens} tokens exceed n_positions="
                             f"{self.config.n_positions}")
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        eos = None if eos is None or eos < 0 or eos >= self.config.vocab_size else int(eos)
        pad = pad_token_id if pad_token_id is not None else (self.config.pad_token_id if self.config.pad_token_id
                                                              is not None else eos)
        mask = None if attention_mask is None else np.asarray(
            attention_mask.array if isinstance(attention_mask, Tensor) else attention_mask, dtype=np.int64)
        done = np.zeros(seq.shape[0], bool)
        past = None
        was_training = self.training
        self.eval()
        try:
            with grad_mode.no_grad():
                for step in range(max_new_tokens):
                    if use_cache and past is not None:
                        step_ids = seq[:, -1:]
                    else:
                        step_ids = seq
                    pos = None
                    if mask is not None:
                        full = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
                        pos = Tensor(full[:, -step_ids.shape[1]:])
                    out = self(Tensor(step_ids), past_key_values=past if use_cache else None,
                               attention_mask=None if mask is None else Tensor(mask), position_ids=pos,
                               use_cache=use_cache)
                    past = out.past_key_values
                    nxt = next_tokens(out.logits.array[:, -1], do_sample, temperature, top_k, top_p, generator)
                    if eos is not None:
                        nxt = np.where(done, pad, nxt)
                        done |= nxt == eos
                    seq = np.concatenate([seq, nxt[:, None].astype(np.int64)], axis=1)
                    if mask is not None:
                        mask = np.concatenate([mask, np.ones((mask.shape[0], 1), np.int64)], axis=1)
                    if eos is not None and done.all():
                        break
        finally:
            self.train(was_training)
        return Tensor(seq)


# --------------------------------------------------------------------------- decoding
def next_tokens(logits, do_sample=False, temperature=1.0, top_k=None, top_p=None, generator=None):
    """The next token of each row of ``logits`` (N, V): the best one, or with ``do_sample`` one drawn from
    ``softmax(logits / temperature)`` among the ``top_k`` best and the smallest set reaching ``top_p``
    (Hugging Face's order: temperature, then top-k, then top-p)."""
    logits = np.asarray(logits)
    if not do_sample:
        return logits.argmax(-1).astype(np.int64)
    if temperature <= 0:
        raise ValueError(f"generate(): temperature must be positive when sampling, got {temperature}")
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k > 0:
        kth = np.sort(z, axis=-1)[:, -min(int(top_k), z.shape[-1])][:, None]
        z = np.where(z < kth, -np.inf, z)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(z, axis=-1, kind="stable")  # ascending
        sz = np.take_along_axis(z, order, -1)
        p = np.exp(sz - sz[:, -1:])
        p /= p.sum(-1, keepdims=True)
        remove = np.cumsum(p, -1) <= 1 - top_p
        remove[:, -1] = False  # always keep the most likely token
        drop = np.zeros_like(remove)
        np.put_along_axis(drop, order, remove, -1)
        z = np.where(drop, -np.inf, z)
    z = z - z.max(-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(-1, keepdims=True)
    u = numpy_rng(generator).random((p.shape[0], 1))
    return np.minimum((np.cumsum(p, -1) < u).sum(-1), p.shape[-1] - 1).astype(np.int64)


# --------------------------------------------------------------------------- Hugging Face folders
# Buffers older Hugging Face versions saved (the causal mask); they are rebuilt, never loaded.
_GPT2_DROP = (".attn.bias", ".attn.masked_bias")


def _gpt2_to_ours(state_dict, model):
    """Hugging Face GPT-2 names -> this model's: the ``transformer.`` prefix added or removed as the model
    needs (the original checkpoints have none), old mask buffers dropped, ``lm_head`` kept only for a head."""
    from collections import OrderedDict

    head = isinstance(model, GPT2LMHeadModel)
    out, unused = OrderedDict(), []
    for key, value in state_dict.items():
        if key.endswith(_GPT2_DROP):
            continue
        if key.startswith("lm_head."):
            out[key] = value
            if not head:
                unused.append(key)
            continue
        bare = key[len("transformer."):] if key.startswith("transformer.") else key
        out[("transformer." if head else "") + bare] = value
    return out, unused


def _gpt2_to_theirs(state_dict, model):
    tied = getattr(model, "tied_weights", {})
    return type(state_dict)((k, v) for k, v in state_dict.items() if k not in tied)


def _register():
    from .pretrained import Architecture, register_architecture

    register_architecture(Architecture(
        "gpt2", GPT2Config, {"GPT2Model": GPT2Model, "GPT2LMHeadModel": GPT2LMHeadModel}, "GPT2LMHeadModel",
        {"base": "GPT2Model", "feature-extraction": "GPT2Model", "causal-lm": "GPT2LMHeadModel",
         "text-generation": "GPT2LMHeadModel"},
        _gpt2_to_ours, _gpt2_to_theirs))


_register()
