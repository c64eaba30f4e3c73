"""Pretrained weights: ``from_pretrained`` for Hugging Face style folders, and the weight-name mapping that
lets Hugging Face and torchvision state dicts load into somanet models.

A Hugging Face folder holds ``config.json`` (whose ``model_type`` names the architecture) and the weights
as ``model.safetensors`` (or ``pytorch_model.bin``, read by ``somanet.load``; sharded checkpoints with an
``.index.json`` too). ``from_pretrained(path)`` builds the matching somanet model from the config and loads
the weights, checking every name and shape::

    model = from_pretrained("all-MiniLM-L6-v2")                      # BertModel
    clf = from_pretrained("all-MiniLM-L6-v2", task="sequence-classification", num_labels=2)

Architectures known here: ``bert``, ``vit`` and ``resnet``; ``gpt2`` and ``t5`` register themselves from
their modules (``somanet.models.gpt2``, ``somanet.models.t5``). Another one joins with
``register_architecture`` (its config class, a builder per Hugging Face class name, and the name mapping
both ways). ``load_weights(model, state_dict_or_file)`` is the same mapping for a state dict of any of
these layouts (Hugging Face, torchvision, somanet's own), with ``load_state_dict``'s strict semantics.
"""
import copy
import json
import os
import re
from collections import OrderedDict

import numpy as np

from .. import nn as _nn
from ..autograd.tensor import Tensor

__all__ = ["PretrainedConfig", "from_pretrained", "save_pretrained", "load_weights", "convert_state_dict",
           "read_state_dict", "register_architecture", "architectures", "get_activation", "Architecture",
           "UnknownArchitectureError", "WeightsMismatchError"]


class UnknownArchitectureError(ValueError):
    """``from_pretrained`` met a ``model_type`` (or an architecture name) that no registered family builds."""


class WeightsMismatchError(RuntimeError):
    """The weights do not fit the model: ``missing_keys`` (the model has, the checkpoint lacks),
    ``unexpected_keys`` (the checkpoint has, the model lacks) and ``shape_mismatches`` (name, checkpoint
    shape, model shape)."""

    def __init__(self, message, missing_keys=(), unexpected_keys=(), shape_mismatches=()):
        super().__init__(message)
        self.missing_keys = list(missing_keys)
        self.unexpected_keys = list(unexpected_keys)
        self.shape_mismatches = list(shape_mismatches)


# =========================================================================== configs
class PretrainedConfig:
    """A model's hyper-parameters under Hugging Face's field names, read from and written to ``config.json``.

    Subclasses set ``model_type`` and ``defaults``; every field of the file is kept as an attribute, the
    ones the model does not use included, so ``to_dict`` gives them back. Labels: ``id2label`` (``{0:
    'NEGATIVE', ...}``) or ``num_labels`` (which names them ``LABEL_0`` ...); two by default.
    """

    model_type = None
    defaults = {}

    def __init__(self, **kwargs):
        values = copy.deepcopy(self.defaults)
        values.update(kwargs)
        values.pop("model_type", None)
        num_labels = values.pop("num_labels", None)
        id2label = values.pop("id2label", None)
        values.pop("label2id", None)
        for key, value in values.items():
            setattr(self, key, value)
        if id2label is not None:
            id2label = {int(k): str(v) for k, v in dict(id2label).items()}
        if num_labels is not None and (id2label is None or len(id2label) != num_labels):
            if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 0:
                raise ValueError(f"{type(self).__name__}: num_labels must be a non-negative integer, got "
                                 f"{num_labels!r}")
            id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
        self.id2label = id2label if id2label is not None else {0: "LABEL_0", 1: "LABEL_1"}

    @property
    def num_labels(self):
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, n):
        self.id2label = {i: f"LABEL_{i}" for i in range(n)}

    @property
    def label2id(self):
        return {v: k for k, v in self.id2label.items()}

    def validate(self):
        """Raise ``ValueError`` naming the first field that the model cannot be built with."""

    def to_dict(self):
        """Every field, JSON-ready, with ``model_type`` and ``id2label``/``label2id`` as Hugging Face writes them."""
        out = {k: copy.deepcopy(v) for k, v in vars(self).items() if not k.startswith("_")}
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        out["label2id"] = {v: k for k, v in self.id2label.items()}
        if self.model_type is not None:
            out["model_type"] = self.model_type
        return dict(sorted(out.items()))

    @classmethod
    def from_dict(cls, values, **overrides):
        return cls(**{**dict(values), **overrides})

    @classmethod
    def from_json_file(cls, path, **overrides):
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh), **overrides)

    def to_json_file(self, path):
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=2, sort_keys=True)
            fh.write("\n")

    def copy(self, **overrides):
        return type(self).from_dict(self.to_dict(), **overrides)

    def __eq__(self, other):
        return type(other) is type(self) and self.to_dict() == other.to_dict()

    def __repr__(self):
        body = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k not in ("id2label", "label2id"))
        return f"{type(self).__name__}({body}, num_labels={self.num_labels})"


class ViTConfig(PretrainedConfig):
    """Hugging Face's ViT config fields (``image_size``, ``patch_size``, ``num_channels``, ``hidden_size``,
    ``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size``, ``layer_norm_eps``, ...)."""

    model_type = "vit"
    defaults = dict(image_size=224, patch_size=16, num_channels=3, hidden_size=768, num_hidden_layers=12,
                    num_attention_heads=12, intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12, qkv_bias=True, initializer_range=0.02)

    def validate(self):
        if self.hidden_act != "gelu":
            raise ValueError(f"ViTConfig: hidden_act {self.hidden_act!r} is not supported (somanet's "
                             f"VisionTransformer uses the exact GELU, 'gelu')")
        if not self.qkv_bias:
            raise ValueError("ViTConfig: qkv_bias=False is not supported (somanet's attention has one bias switch "
                             "for the input and output projections)")
        if isinstance(self.image_size, (list, tuple)) or isinstance(self.patch_size, (list, tuple)):
            raise ValueError("ViTConfig: only square images and patches (int image_size, patch_size) are supported")


class ResNetConfig(PretrainedConfig):
    """Hugging Face's ResNet config fields (``embedding_size``, ``hidden_sizes``, ``depths``,
    ``layer_type``, ...); somanet builds the torchvision-layout ResNet these describe."""

    model_type = "resnet"
    defaults = dict(num_channels=3, embedding_size=64, hidden_sizes=[256, 512, 1024, 2048], depths=[3, 4, 6, 3],
                    layer_type="bottleneck", hidden_act="relu", downsample_in_first_stage=False,
                    downsample_in_bottleneck=False)

    def validate(self):
        expansion = {"basic": 1, "bottleneck": 4}.get(self.layer_type)
        if expansion is None:
            raise ValueError(f"ResNetConfig: layer_type must be 'basic' or 'bottleneck', got {self.layer_type!r}")
        standard = [64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion]
        if (self.embedding_size != 64 or list(self.hidden_sizes) != standard or len(self.depths) != 4
                or self.hidden_act != "relu" or self.downsample_in_first_stage or self.downsample_in_bottleneck):
            raise ValueError(f"ResNetConfig: somanet builds the standard ResNet (embedding_size 64, hidden_sizes "
                             f"{standard} for '{self.layer_type}' layers, 4 stages, relu, no extra downsampling); "
                             f"got embedding_size={self.embedding_size}, hidden_sizes={list(self.hidden_sizes)}, "
                             f"depths={list(self.depths)}, hidden_act={self.hidden_act!r}")


# =========================================================================== activations
def _quick_gelu(x):
    from ..ops.elementwise import sigmoid
    return x * sigmoid(x * 1.702)


def get_activation(name, who="get_activation"):
    """The function for a Hugging Face ``hidden_act`` name: 'gelu' (exact), 'gelu_new', 'gelu_fast' and
    'gelu_pytorch_tanh' (the tanh approximation), 'quick_gelu', 'relu', 'silu' / 'swish', 'tanh',
    'sigmoid'."""
    from ..ops import elementwise as E
    table = {
        "gelu": E.gelu,
        "gelu_new": lambda x: E.gelu(x, approximate="tanh"),
        "gelu_fast": lambda x: E.gelu(x, approximate="tanh"),
        "gelu_pytorch_tanh": lambda x: E.gelu(x, approximate="tanh"),
        "quick_gelu": _quick_gelu,
        "relu": E.relu,
        "silu": E.silu,
        "swish": E.silu,
        "tanh": E.tanh,
        "sigmoid": E.sigmoid,
    }
    if callable(name):
        return name
    if name not in table:
        raise ValueError(f"{who}: unknown activation {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


# =========================================================================== shared by the transformer models
def as_config(config, kwargs, cls, who):
    """``config`` (a ``cls``, a dict of its fields, or None for the defaults) with ``kwargs`` applied."""
    from collections.abc import Mapping
    if config is None:
        return cls(**kwargs)
    if isinstance(config, Mapping):
        return cls(**{**config, **kwargs})
    if not isinstance(config, cls):
        raise TypeError(f"{who}: config must be a {cls.__name__} or a dict, got {type(config).__name__}")
    return config.copy(**kwargs) if kwargs else config


def int_ids(x, what, who):
    """Token ids, labels or positions as an integer Tensor (None stays None); floats are refused."""
    if x is None:
        return None
    if not isinstance(x, Tensor):
        x = Tensor(np.asarray(x))
    if x.dtype.kind not in "iub":
        raise TypeError(f"{who}: {what} must hold integers, got dtype {x.dtype}")
    return x


def split_heads(x, num_heads, head_dim):
    """``(N, L, num_heads * head_dim) -> (N, num_heads, L, head_dim)``, the layout attention runs in."""
    return x.reshape(x.shape[0], x.shape[1], num_heads, head_dim).transpose(1, 2)


def merge_heads(x):
    """``(N, heads, L, head_dim) -> (N, L, heads * head_dim)``, the inverse of ``split_heads``."""
    n, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(n, length, heads * head_dim)


class PreTrainedModel(_nn.Module):
    """Base of the Hugging Face-layout models (BERT, GPT-2, T5): ``reset_parameters`` runs the model's
    ``_init_weights``, and ``from_pretrained`` / ``save_pretrained`` read and write a model directory."""

    def reset_parameters(self):
        self._init_weights()

    @classmethod
    def from_pretrained(cls, path, **overrides):
        """This model with the weights of a Hugging Face directory (see ``somanet.models.from_pretrained``)."""
        return from_pretrained(path, architecture=cls.__name__, **overrides)

    def save_pretrained(self, path):
        """Write ``config.json`` and ``model.safetensors`` in the Hugging Face layout."""
        return save_pretrained(self, path)


# =========================================================================== name mapping
def _template_regex(template):
    """``'encoder.layer.{i}.x'`` -> a regex with one named integer group per ``{name}``."""
    out, pos = "", 0
    for m in re.finditer(r"\{(\w+)\}", template):
        out += re.escape(template[pos:m.start()]) + f"(?P<{m.group(1)}>\\d+)"
        pos = m.end()
    return re.compile(out + re.escape(template[pos:]) + "$")


class _Renamer:
    """Renames keys by a table of ``(ours, theirs)`` templates, in either direction; keys no row matches are
    kept as they are (so that a stray name is reported, not dropped)."""

    def __init__(self, pairs):
        self.pairs = [(a, b, _template_regex(a), _template_regex(b)) for a, b in pairs]

    def _apply(self, key, to_ours):
        for ours, theirs, rx_ours, rx_theirs in self.pairs:
            m = (rx_theirs if to_ours else rx_ours).match(key)
            if m:
                return (ours if to_ours else theirs).format(**m.groupdict())
        return key

    def to_ours(self, key):
        return self._apply(key, True)

    def to_theirs(self, key):
        return self._apply(key, False)


def _to_array(value):
    if isinstance(value, Tensor):
        return value.array
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _strip(state_dict, prefix, roots):
    """Split a checkpoint into its backbone (keys under ``roots``, with ``prefix`` removed) and the rest."""
    base, heads = OrderedDict(), OrderedDict()
    for key, value in state_dict.items():
        bare = key[len(prefix):] if prefix and key.startswith(prefix) else key
        if bare.startswith(roots):
            base[bare] = value
        else:
            heads[key] = value
    return base, heads


def _merge_qkv(state, layer_key, who):
    """Concatenate ``query``/``key``/``value`` weights and biases of the collected layers into
    ``in_proj_weight``/``in_proj_bias``."""
    out = OrderedDict()
    for (layer, kind), parts in state.items():
        if set(parts) == {"query", "key", "value"}:
            out[layer_key.format(i=layer) + f"in_proj_{kind}"] = np.concatenate(
                [_to_array(parts["query"]), _to_array(parts["key"]), _to_array(parts["value"])], axis=0)
        else:  # an incomplete triple is reported by name rather than guessed at
            for part, value in parts.items():
                out[f"{who}.{layer}.{part}.{kind}"] = value
    return out


# --------------------------------------------------------------------------- BERT
_BERT_ROOTS = ("embeddings.", "encoder.", "pooler.")
# Buffers older Hugging Face versions saved; they are recomputed, never loaded.
_BERT_DROP = ("embeddings.position_ids", "embeddings.token_type_ids")


def _bert_to_ours(state_dict, model):
    base, heads = _strip(state_dict, "bert.", _BERT_ROOTS)
    prefix = "bert." if hasattr(model, "bert") else ""
    own = model.state_dict()
    out, unused = OrderedDict(), []
    for key, value in base.items():
        if key in _BERT_DROP:
            continue
        # Checkpoints converted from TensorFlow call LayerNorm's affine parameters gamma and beta.
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key))
        out[prefix + key] = value
        if key.startswith("pooler.") and prefix + key not in own:
            unused.append(prefix + key)
    for key, value in heads.items():
        out[key] = value
        if key not in own:  # another task's head (the pretraining heads, a classifier)
            unused.append(key)
    return out, unused


def _bert_to_theirs(state_dict, model):
    """Hugging Face's names are BERT's names here: only the tied copies are left out, as its files do."""
    tied = getattr(model, "tied_weights", {})
    return OrderedDict((k, v) for k, v in state_dict.items() if k not in tied)


# --------------------------------------------------------------------------- ViT
_VIT_PAIRS = [
    ("class_token", "embeddings.cls_token"),
    ("pos_embedding", "embeddings.position_embeddings"),
    ("conv_proj.weight", "embeddings.patch_embeddings.projection.weight"),
    ("conv_proj.bias", "embeddings.patch_embeddings.projection.bias"),
    ("encoder.layers.{i}.norm1.weight", "encoder.layer.{i}.layernorm_before.weight"),
    ("encoder.layers.{i}.norm1.bias", "encoder.layer.{i}.layernorm_before.bias"),
    ("encoder.layers.{i}.self_attn.out_proj.weight", "encoder.layer.{i}.attention.output.dense.weight"),
    ("encoder.layers.{i}.self_attn.out_proj.bias", "encoder.layer.{i}.attention.output.dense.bias"),
    ("encoder.layers.{i}.norm2.weight", "encoder.layer.{i}.layernorm_after.weight"),
    ("encoder.layers.{i}.norm2.bias", "encoder.layer.{i}.layernorm_after.bias"),
    ("encoder.layers.{i}.linear1.weight", "encoder.layer.{i}.intermediate.dense.weight"),
    ("encoder.layers.{i}.linear1.bias", "encoder.layer.{i}.intermediate.dense.bias"),
    ("encoder.layers.{i}.linear2.weight", "encoder.layer.{i}.output.dense.weight"),
    ("encoder.layers.{i}.linear2.bias", "encoder.layer.{i}.output.dense.bias"),
    ("encoder.norm.weight", "layernorm.weight"),
    ("encoder.norm.bias", "layernorm.bias"),
    ("head.weight", "classifier.weight"),
    ("head.bias", "classifier.bias"),
]
_VIT_HF = _Renamer(_VIT_PAIRS)
_VIT_HF_QKV = re.compile(r"encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$")

_VIT_TV_PAIRS = [
    ("class_token", "class_token"),
    ("pos_embedding", "encoder.pos_embedding"),
    ("conv_proj.weight", "conv_proj.weight"),
    ("conv_proj.bias", "conv_proj.bias"),
    ("encoder.layers.{i}.norm1.weight", "encoder.layers.encoder_layer_{i}.ln_1.weight"),
    ("encoder.layers.{i}.norm1.bias", "encoder.layers.encoder_layer_{i}.ln_1.bias"),
    ("encoder.layers.{i}.self_attn.in_proj_weight", "encoder.layers.encoder_layer_{i}.self_attention.in_proj_weight"),
    ("encoder.layers.{i}.self_attn.in_proj_bias", "encoder.layers.encoder_layer_{i}.self_attention.in_proj_bias"),
    ("encoder.layers.{i}.self_attn.out_proj.weight",
     "encoder.layers.encoder_layer_{i}.self_attention.out_proj.weight"),
    ("encoder.layers.{i}.self_attn.out_proj.bias", "encoder.layers.encoder_layer_{i}.self_attention.out_proj.bias"),
    ("encoder.layers.{i}.norm2.weight", "encoder.layers.encoder_layer_{i}.ln_2.weight"),
    ("encoder.layers.{i}.norm2.bias", "encoder.layers.encoder_layer_{i}.ln_2.bias"),
    ("encoder.layers.{i}.linear1.weight", "encoder.layers.encoder_layer_{i}.mlp.0.weight"),
    ("encoder.layers.{i}.linear1.bias", "encoder.layers.encoder_layer_{i}.mlp.0.bias"),
    ("encoder.layers.{i}.linear2.weight", "encoder.layers.encoder_layer_{i}.mlp.3.weight"),
    ("encoder.layers.{i}.linear2.bias", "encoder.layers.encoder_layer_{i}.mlp.3.bias"),
    ("encoder.norm.weight", "encoder.ln.weight"),
    ("encoder.norm.bias", "encoder.ln.bias"),
    ("head.weight", "heads.head.weight"),
    ("head.bias", "heads.head.bias"),
]
_VIT_TV = _Renamer(_VIT_TV_PAIRS)
# torchvision before 0.13 named the MLP's linears linear_1 and linear_2.
_VIT_TV_LEGACY = re.compile(r"(encoder\.layers\.encoder_layer_\d+\.mlp\.)linear_([12])\.(weight|bias)$")


def _vit_hf_to_ours(state_dict, model):
    base, heads = _strip(state_dict, "vit.", ("embeddings.", "encoder.", "layernorm.", "pooler."))
    out, unused, qkv = OrderedDict(), [], {}
    for key, value in base.items():
        m = _VIT_HF_QKV.match(key)
        if m:
            qkv.setdefault((int(m.group(1)), m.group(3)), {})[m.group(2)] = value
        elif key.startswith("pooler."):  # ViTModel's tanh pooler: somanet's ViT has no such layer
            out[key] = value
            unused.append(key)
        else:
            out[_VIT_HF.to_ours(key)] = value
    out.update(_merge_qkv(qkv, "encoder.layers.{i}.self_attn.", "encoder.layer.attention"))
    for key, value in heads.items():
        ours = _VIT_HF.to_ours(key)
        out[ours] = value
        if _submodule(model, "head") is None or not hasattr(model.head, "weight"):
            unused.append(ours)
    return out, unused


def _vit_ours_to_hf(state_dict, model):
    out = OrderedDict()
    head = hasattr(getattr(model, "head", None), "weight")
    for key, value in state_dict.items():
        m = re.match(r"encoder\.layers\.(\d+)\.self_attn\.in_proj_(weight|bias)$", key)
        if m:
            arr = _to_array(value)
            for part, chunk in zip(("query", "key", "value"), np.split(arr, 3, axis=0)):
                out[f"{'vit.' if head else ''}encoder.layer.{m.group(1)}.attention.attention.{part}.{m.group(2)}"] = chunk
            continue
        theirs = _VIT_HF.to_theirs(key)
        out[theirs if theirs.startswith("classifier.") or not head else "vit." + theirs] = value
    return out


def _vit_tv_to_ours(state_dict, model):
    out = OrderedDict()
    for key, value in state_dict.items():
        m = _VIT_TV_LEGACY.match(key)
        if m:
            key = f"{m.group(1)}{0 if m.group(2) == '1' else 3}.{m.group(3)}"
        out[_VIT_TV.to_ours(key)] = value
    return out, []


def _vit_ours_to_tv(state_dict, model):
    return OrderedDict((_VIT_TV.to_theirs(k), v) for k, v in state_dict.items())


# --------------------------------------------------------------------------- ResNet (Hugging Face layout)
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


# The stem and the classifier; the stages are renamed by _resnet_hf_key_to_ours / _resnet_our_key_to_hf,
# since Hugging Face counts stages and convolutions from 0 where torchvision's names count from 1.
_RESNET_HF = _Renamer([("conv1.weight", "embedder.embedder.convolution.weight")]
                      + [(f"bn1.{p}", f"embedder.embedder.normalization.{p}") for p in _BN]
                      + [("fc.weight", "classifier.1.weight"), ("fc.bias", "classifier.1.bias")])


def _resnet_hf_key_to_ours(key):
    m = re.match(r"encoder\.stages\.(\d+)\.layers\.(\d+)\.(shortcut|layer\.(\d+))\.(convolution|normalization)\.(\w+)$",
                 key)
    if not m:
        return _RESNET_HF.to_ours(key)
    stage, block, what, conv, kind, param = m.groups()
    where = f"layer{int(stage) + 1}.{block}."
    if what == "shortcut":
        return where + ("downsample.0." if kind == "convolution" else "downsample.1.") + param
    k = int(conv) + 1
    return where + (f"conv{k}." if kind == "convolution" else f"bn{k}.") + param


def _resnet_our_key_to_hf(key):
    m = re.match(r"layer(\d+)\.(\d+)\.(downsample\.(0|1)|conv(\d+)|bn(\d+))\.(\w+)$", key)
    if not m:
        return _RESNET_HF.to_theirs(key)
    stage, block, what, ds, conv, bn, param = m.groups()
    where = f"encoder.stages.{int(stage) - 1}.layers.{block}."
    if ds is not None:
        return where + ("shortcut.convolution." if ds == "0" else "shortcut.normalization.") + param
    if conv is not None:
        return where + f"layer.{int(conv) - 1}.convolution." + param
    return where + f"layer.{int(bn) - 1}.normalization." + param


def _resnet_hf_to_ours(state_dict, model):
    base, heads = _strip(state_dict, "resnet.", ("embedder.", "encoder.", "pooler."))
    out, unused = OrderedDict(), []
    for key, value in base.items():
        out[_resnet_hf_key_to_ours(key)] = value
    for key, value in heads.items():
        ours = _resnet_hf_key_to_ours(key)
        out[ours] = value
        if not hasattr(getattr(model, "fc", None), "weight"):
            unused.append(ours)
    return out, unused


def _resnet_ours_to_hf(state_dict, model):
    head = hasattr(getattr(model, "fc", None), "weight")
    out = OrderedDict()
    for key, value in state_dict.items():
        theirs = _resnet_our_key_to_hf(key)
        out[theirs if theirs.startswith("classifier.") or not head else "resnet." + theirs] = value
    return out


# =========================================================================== the registry
class Architecture:
    """A model family ``from_pretrained`` can build.

    Args:
        model_type: ``config.json``'s ``model_type``.
        config_class: a ``PretrainedConfig`` subclass.
        builders: Hugging Face class name -> ``fn(config) -> Module``.
        default: the class name built when the config names none this family knows.
        tasks: task name ('base', 'masked-lm', 'sequence-classification', ...) -> class name.
        to_ours: ``fn(state_dict, model) -> (state_dict in the model's names, [keys the model does not
            use by design, e.g. another task's head])``.
        to_theirs: ``fn(state_dict, model) -> state_dict`` in the family's file layout (for
            ``save_pretrained``).
        new_heads: class name -> name prefixes that may be absent from a checkpoint (a head that
            fine-tuning starts afresh); anything else absent is an error.
    """

    def __init__(self, model_type, config_class, builders, default, tasks, to_ours, to_theirs, new_heads=None):
        self.model_type = model_type
        self.config_class = config_class
        self.builders = dict(builders)
        self.default = default
        self.tasks = dict(tasks)
        self.to_ours = to_ours
        self.to_theirs = to_theirs
        self.new_heads = dict(new_heads or {})

    def class_name_of(self, model):
        for name in self.builders:
            if getattr(model, "_hf_class", None) == name:
                return name
        cls = type(model).__name__
        return cls if cls in self.builders else self.default


_REGISTRY = OrderedDict()


def register_architecture(arch):
    """Add (or replace) an ``Architecture`` under its ``model_type``; returns it."""
    if not isinstance(arch, Architecture):
        raise TypeError(f"register_architecture(): expected an Architecture, got {type(arch).__name__}")
    _REGISTRY[arch.model_type] = arch
    return arch


def architectures():
    """The registered ``model_type`` names."""
    return list(_REGISTRY)


def _bert_builders():
    def build(name, **kw):
        def fn(config):
            from . import bert
            return getattr(bert, name)(config, **kw)
        return fn
    return {"BertModel": build("BertModel"), "BertForMaskedLM": build("BertForMaskedLM"),
            "BertForPreTraining": build("BertForMaskedLM"),
            "BertForSequenceClassification": build("BertForSequenceClassification"),
            "BertForTokenClassification": build("BertForTokenClassification")}


def _vit_build(head):
    def fn(config):
        from .. import nn
        from .vit import VisionTransformer
        model = VisionTransformer(config.image_size, config.patch_size, in_channels=config.num_channels,
                                  num_classes=max(config.num_labels, 1), d_model=config.hidden_size,
                                  num_layers=config.num_hidden_layers, num_heads=config.num_attention_heads,
                                  mlp_dim=config.intermediate_size, dropout=config.hidden_dropout_prob,
                                  layer_norm_eps=config.layer_norm_eps)
        if not head or config.num_labels == 0:
            model.head = nn.Identity()
        return model
    return fn


def _resnet_build(head):
    def fn(config):
        from .. import nn
        from .resnet import BasicBlock, Bottleneck, ResNet
        block = BasicBlock if config.layer_type == "basic" else Bottleneck
        model = ResNet(block, list(config.depths), num_classes=max(config.num_labels, 1),
                       in_channels=config.num_channels)
        if not head or config.num_labels == 0:
            model.fc = nn.Identity()
        return model
    return fn


class _LazyConfig:
    """A config 'class' that imports its real class on first use (BERT's lives in bert.py)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def resolve(self):
        import importlib
        return getattr(importlib.import_module(self.module, __package__), self.name)


register_architecture(Architecture(
    "bert", _LazyConfig(".bert", "BertConfig"), _bert_builders(), "BertModel",
    {"base": "BertModel", "feature-extraction": "BertModel", "masked-lm": "BertForMaskedLM",
     "sequence-classification": "BertForSequenceClassification",
     "token-classification": "BertForTokenClassification"},
    _bert_to_ours, _bert_to_theirs,
    new_heads={"BertModel": ("pooler.",), "BertForSequenceClassification": ("classifier.", "bert.pooler."),
               "BertForTokenClassification": ("classifier.",),
               "BertForMaskedLM": ("cls.",)}))

register_architecture(Architecture(
    "vit", ViTConfig, {"ViTModel": _vit_build(False), "ViTForImageClassification": _vit_build(True)}, "ViTModel",
    {"base": "ViTModel", "feature-extraction": "ViTModel", "image-classification": "ViTForImageClassification"},
    _vit_hf_to_ours, _vit_ours_to_hf, new_heads={"ViTForImageClassification": ("head.",)}))

register_architecture(Architecture(
    "resnet", ResNetConfig, {"ResNetModel": _resnet_build(False), "ResNetForImageClassification": _resnet_build(True)},
    "ResNetModel",
    {"base": "ResNetModel", "feature-extraction": "ResNetModel", "image-classification": "ResNetForImageClassification"},
    _resnet_hf_to_ours, _resnet_ours_to_hf, new_heads={"ResNetForImageClassification": ("fc.",)}))


def _config_class(arch):
    cls = arch.config_class
    return cls.resolve() if isinstance(cls, _LazyConfig) else cls


# =========================================================================== reading weights
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


def _safetensors_numpy():
    try:
        import safetensors.numpy as st
    except ImportError as exc:
        raise ImportError("reading .safetensors weights needs the safetensors package: pip install "
                          "'somanet[text]' (or pip install safetensors)") from exc
    return st


def read_state_dict(path):
    """A checkpoint file as ``{name: ndarray}``: ``.safetensors``, a torch file (``.bin``, ``.pt``, ``.pth``,
    read safely by ``somanet.load``), a sharded checkpoint's ``.index.json``, or a folder holding one of
    ``model.safetensors`` / ``pytorch_model.bin`` (and their sharded forms)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in _WEIGHT_FILES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return read_state_dict(candidate)
        raise FileNotFoundError(f"no weights in {path}: expected one of {', '.join(_WEIGHT_FILES)}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist")
    if path.endswith(".index.json"):
        with open(path, encoding="utf-8") as fh:
            index = json.load(fh)
        shards = sorted(set(index.get("weight_map", {}).values()))
        if not shards:
            raise ValueError(f"{path}: a sharded-checkpoint index needs a non-empty 'weight_map'")
        out = OrderedDict()
        for shard in shards:
            out.update(read_state_dict(os.path.join(os.path.dirname(path), shard)))
        return out
    if path.endswith(".safetensors"):
        st = _safetensors_numpy()
        try:
            return OrderedDict(st.load_file(path))
        except Exception as exc:  # safetensors raises its own error types
            raise ValueError(f"{path} is not a readable safetensors file: {exc}") from None
    from ..serialization import load
    obj = load(path, map_location="cpu")
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return OrderedDict((k, _to_array(v)) for k, v in obj.items())


# =========================================================================== loading into a model
def _submodule(model, name):
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def _family(model):
    """The registered family a somanet model belongs to, by class."""
    from .resnet import ResNet
    from .vit import VisionTransformer
    if isinstance(model, VisionTransformer):
        return "vit"
    if isinstance(model, ResNet):
        return "resnet"
    if type(model).__module__.endswith(".bert") or hasattr(model, "bert"):
        return "bert"
    arch = getattr(model, "config", None)
    return getattr(arch, "model_type", None)


def _detect_source(state_dict, family):
    keys = list(state_dict)
    if family == "vit":
        if any(k.startswith(("vit.", "embeddings.patch_embeddings")) for k in keys):
            return "huggingface"
        if any(".encoder_layer_" in k or k.startswith("heads.") for k in keys):
            return "torchvision"
        return "somanet"
    if family == "resnet":
        if any(k.startswith(("resnet.", "embedder.")) for k in keys):
            return "huggingface"
        return "somanet"  # torchvision's names are somanet's
    if family in ("bert", "gpt2", "t5"):
        return "huggingface"  # the names are the same either way (GPT-2's prefix is handled by its mapping)
    return "somanet"


def convert_state_dict(state_dict, model, source="auto"):
    """Rename ``state_dict`` (from ``source``: 'huggingface', 'torchvision', 'somanet' or 'auto') into
    ``model``'s parameter names; returns ``(converted, unused)`` where ``unused`` lists the keys that belong
    to parts the model does not have by design (another task's head, Hugging Face's ViT pooler)."""
    family = _family(model)
    if source == "auto":
        source = _detect_source(state_dict, family)
    if source not in ("huggingface", "torchvision", "somanet"):
        raise ValueError(f"convert_state_dict(): source must be 'auto', 'huggingface', 'torchvision' or 'somanet', "
                         f"got {source!r}")
    state_dict = OrderedDict(state_dict)
    if source == "somanet" or (source == "torchvision" and family == "resnet"):
        return state_dict, []
    if source == "torchvision":
        if family != "vit":
            raise ValueError(f"convert_state_dict(): no torchvision layout is known for {type(model).__name__}")
        return _vit_tv_to_ours(state_dict, model)
    if family not in _REGISTRY:
        raise UnknownArchitectureError(f"convert_state_dict(): {type(model).__name__} belongs to no registered "
                                       f"architecture ({', '.join(architectures())})")
    return _REGISTRY[family].to_ours(state_dict, model)


def _names(keys, limit=25):
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... and {len(keys) - limit} more" if len(keys) > limit else "")


def _load_checked(model, state_dict, *, strict=True, unused=(), new_heads=(), ignore_mismatched_sizes=False,
                  origin=None):
    """Load a converted state dict with per-key shape checks. Keys in ``unused`` may be left over; keys
    under ``new_heads`` prefixes may be absent (only all of one prefix at once). Returns a dict of what
    happened."""
    own = model.state_dict(keep_vars=True)
    state = OrderedDict((k, _to_array(v)) for k, v in state_dict.items())
    for alias, source in getattr(model, "tied_weights", {}).items():
        if alias in own and alias not in state and source in state:
            state[alias] = state[source]
    unused = [k for k in unused if k not in own]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own and k not in unused]
    fresh = []
    for prefix in new_heads:
        under = [k for k in own if k.startswith(prefix)]
        if under and all(k in missing for k in under):
            fresh += under
    missing = [k for k in missing if k not in fresh]
    mismatched = []
    for key, arr in state.items():
        if key in own and tuple(arr.shape) != tuple(own[key].array.shape):
            mismatched.append((key, tuple(arr.shape), tuple(own[key].array.shape)))
    skipped = []
    if ignore_mismatched_sizes:
        skipped = [m[0] for m in mismatched]
        mismatched = []
    where = f" from {origin}" if origin else ""
    problems = []
    if strict and missing:
        problems.append(f"missing from the checkpoint ({len(missing)}): {_names(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected in the checkpoint ({len(unexpected)}): {_names(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch ({len(mismatched)}): " + "; ".join(
            f"{k}: checkpoint {c}, model {m}" for k, c, m in mismatched[:25]))
    if problems:
        hint = ""
        if mismatched and any(k.startswith(tuple(new_heads)) for k, _, _ in mismatched):
            hint = "\n  (a head of another size: pass ignore_mismatched_sizes=True to start it afresh)"
        raise WeightsMismatchError(f"the weights{where} do not fit {type(model).__name__}:\n  " + "\n  ".join(problems)
                                   + hint, missing, unexpected, mismatched)
    model.load_state_dict({k: v for k, v in state.items() if k in own and k not in skipped}, strict=False)
    return {"missing_keys": missing, "unexpected_keys": unexpected, "unused_keys": unused,
            "newly_initialized_keys": fresh + skipped, "mismatched_keys": skipped}


def load_weights(model, state_dict, *, source="auto", strict=True):
    """Load a state dict (or a checkpoint file or folder, see ``read_state_dict``) of any known layout into
    ``model``: Hugging Face names (BERT, ViT, ResNet), torchvision's (ResNet, ViT) or somanet's.

    Names are mapped first (``convert_state_dict``), then every key is checked as ``load_state_dict``
    does: a shape mismatch is always an error naming the key and both shapes; with ``strict`` (the
    default) so are missing and unexpected keys, all listed in one ``WeightsMismatchError``. Returns the
    ``(missing_keys, unexpected_keys)`` pair ``load_state_dict`` returns.
    """
    origin = None
    if isinstance(state_dict, (str, os.PathLike)):
        origin = os.fspath(state_dict)
        state_dict = read_state_dict(state_dict)
    converted, _ = convert_state_dict(state_dict, model, source)
    info = _load_checked(model, converted, strict=strict, origin=origin)
    from ..nn.modules.module import _IncompatibleKeys
    return _IncompatibleKeys(info["missing_keys"], info["unexpected_keys"])


# =========================================================================== from_pretrained
def _read_config(folder):
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder} has no config.json (a Hugging Face model folder holds config.json and "
                                f"model.safetensors or pytorch_model.bin)")
    try:
        with open(path, encoding="utf-8") as fh:
            values = json.load(fh)
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(values).__name__}")
    return values


def _pick_class(arch, values, architecture, task):
    if architecture is not None and task is not None:
        raise ValueError("from_pretrained(): pass architecture or task, not both")
    if task is not None:
        if task not in arch.tasks:
            raise ValueError(f"from_pretrained(): unknown task {task!r} for {arch.model_type}; known: "
                             f"{', '.join(arch.tasks)}")
        return arch.tasks[task]
    if architecture is not None:
        if architecture not in arch.builders:
            raise UnknownArchitectureError(f"from_pretrained(): unknown architecture {architecture!r} for "
                                           f"model_type {arch.model_type!r}; known: {', '.join(arch.builders)}")
        return architecture
    for name in values.get("architectures") or ():
        if name in arch.builders:
            return name
    return arch.default


def from_pretrained(path, *, architecture=None, task=None, strict=True, ignore_mismatched_sizes=False, **overrides):
    """The somanet model a Hugging Face style folder describes, with its weights loaded.

    Args:
        path: a folder with ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``, or a
            sharded checkpoint), e.g. a sentence-transformers model folder.
        architecture: the Hugging Face class to build (``'BertForSequenceClassification'``); default: the
            config's ``architectures`` entry, else the family's base model.
        task: instead of ``architecture``: 'base', 'masked-lm', 'sequence-classification',
            'token-classification', 'image-classification'.
        strict: every model parameter must come from the checkpoint (except a task head the checkpoint
            lacks, which starts from its initialisation) and every checkpoint entry must be used (except
            another task's head).
        ignore_mismatched_sizes: start afresh any parameter whose shape differs (a classifier with another
            number of labels) instead of failing.
        **overrides: config fields to change, e.g. ``num_labels=3``, ``hidden_dropout_prob=0.0``.

    Returns:
        the model in eval mode, with ``model.config`` and ``model.loading_info`` (``missing_keys``,
        ``unexpected_keys``, ``unused_keys``, ``newly_initialized_keys``, ``mismatched_keys``).

    Raises:
        UnknownArchitectureError: ``model_type`` or ``architecture`` is not registered.
        WeightsMismatchError: names or shapes do not fit; the message lists them all.
    """
    folder = os.fspath(path)
    if os.path.isfile(folder):
        folder = os.path.dirname(folder) or "."
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"from_pretrained(): {folder} is not a folder")
    values = _read_config(folder)
    model_type = values.get("model_type")
    if model_type not in _REGISTRY:
        raise UnknownArchitectureError(f"from_pretrained(): {folder}/config.json has model_type {model_type!r}, "
                                       f"which somanet cannot build; known: {', '.join(architectures())}")
    arch = _REGISTRY[model_type]
    name = _pick_class(arch, values, architecture, task)
    config = _config_class(arch).from_dict(values, **overrides)
    config.validate()
    model = arch.builders[name](config)
    object.__setattr__(model, "config", config)
    object.__setattr__(model, "_hf_class", name)
    state = read_state_dict(folder)
    converted, unused = arch.to_ours(state, model)
    info = _load_checked(model, converted, strict=strict, unused=unused, new_heads=arch.new_heads.get(name, ()),
                         ignore_mismatched_sizes=ignore_mismatched_sizes, origin=folder)
    object.__setattr__(model, "loading_info", info)
    model.eval()
    return model


def save_pretrained(model, path):
    """Write ``model`` as a Hugging Face folder: ``config.json`` (with ``model_type`` and ``architectures``)
    and ``model.safetensors`` under the family's names (tied copies written once). The model needs a
    ``config`` (every model ``from_pretrained`` or the BERT classes build has one)."""
    config = getattr(model, "config", None)
    if not isinstance(config, PretrainedConfig):
        raise ValueError(f"save_pretrained(): {type(model).__name__} has no config to describe it; build it with "
                         f"from_pretrained or from a config")
    arch = _REGISTRY.get(config.model_type)
    if arch is None:
        raise UnknownArchitectureError(f"save_pretrained(): model_type {config.model_type!r} is not registered")
    st = _safetensors_numpy()
    os.makedirs(path, exist_ok=True)
    values = config.to_dict()
    values["architectures"] = [arch.class_name_of(model)]
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as fh:
        json.dump(values, fh, indent=2, sort_keys=True)
        fh.write("\n")
    theirs = arch.to_theirs(model.state_dict(), model)
    # (np.ascontiguousarray would turn 0-d arrays such as num_batches_tracked into 1-d ones.)
    arrays = {k: np.array(_to_array(v), order="C", copy=True) for k, v in theirs.items()}
    st.save_file(arrays, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    return path
