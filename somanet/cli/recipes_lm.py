"""Language-model recipes of the ``somanet`` command: ``shakespeare-char``, a character-level GPT on
tinyshakespeare, trained offline from the copy of the text that ships with somanet.

    somanet train shakespeare-char                 # 11 minutes of CPU time, one core
    somanet generate runs/shakespeare-char-001 --prompt "ROMEO:" --max-new-tokens 300

The pieces, registered in ``somanet.cli.recipes``:

* dataset ``tinyshakespeare``: the text (the shipped copy, or ``tinyshakespeare.txt`` / ``input.txt``
  in ``data_dir``) cut into its first 90 % for training and its last 10 % for validation, as
  ``(x, y)`` windows of ``block_size`` characters and the same shifted by one (``LMWindows``). Options:
  ``data_dir``, ``block_size`` (128), ``stride`` (start-to-start distance of the training windows,
  ``block_size`` by default), ``val_fraction`` (0.1), ``max_chars`` (use only the text's first
  characters, for quick trials). The vocabulary is every character of the whole text (65).
* model ``char-gpt``: a ``CharGPT`` (``somanet.models.GPT`` with its training and validation steps
  and its vocabulary), with GPT's keyword arguments (``n_layer``, ``n_head``, ``d_model``,
  ``dim_feedforward``, ``dropout``, ``bias``, ``tie_weights``); ``block_size`` is the data's. Its
  ``report`` table sets the text sampled at the end of training (``TextSampleReport``).
"""
import os

import numpy as np

from ..autograd.tensor import Tensor
from ..models.gpt import GPT
from ..nn import functional as F
from ..train.callbacks import Callback
from ..train.recipe import ConfigError, Recipe
from .recipes import DataInfo, DatasetSpec, register_dataset, register_model, register_recipe

__all__ = ["CharGPT", "TextSampleReport", "SHAKESPEARE_PATH", "load_text_vocab", "text_report"]

#: The tinyshakespeare text shipped with somanet (see the README next to it).
SHAKESPEARE_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "datasets",
                                "files", "tinyshakespeare.txt")

_SHAKESPEARE_OPTIONS = ("data_dir", "block_size", "stride", "val_fraction", "max_chars")
_cache = {}


def _int_option(options, key, default, minimum, owner, allow_none=False):
    value = options.get(key, default)
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"config 'data.{key}' ({owner}) must be an integer >= {minimum}"
                          f"{' or none' if allow_none else ''}, got {value!r}")
    return value


def load_text_vocab(options):
    """``(text, vocab)`` of the ``tinyshakespeare`` dataset options: the text (the shipped copy, or the one
    in ``data_dir``), cut to ``max_chars``, and its character vocabulary (read once per process)."""
    from ..data.datasets.text import Vocab, load_tinyshakespeare
    data_dir = options.get("data_dir")
    max_chars = _int_option(options, "max_chars", None, 2, "tinyshakespeare", allow_none=True)
    key = (data_dir, max_chars)
    if key not in _cache:
        if data_dir is None:
            with open(SHAKESPEARE_PATH, encoding="utf-8") as f:
                text = f.read()
        else:
            try:
                text = load_tinyshakespeare(data_dir)
            except (FileNotFoundError, OSError) as exc:
                raise ConfigError(f"config 'data.data_dir' (tinyshakespeare): {exc}") from None
        if max_chars is not None:
            text = text[:max_chars]
        _cache.clear()
        _cache[key] = (text, Vocab.build(text, specials=(), unk_token=None))
    return _cache[key]


def _shakespeare_info(options):
    unknown = sorted(set(options) - set(_SHAKESPEARE_OPTIONS))
    if unknown:
        raise ConfigError(f"config 'data' (tinyshakespeare): unknown option(s) {', '.join(unknown)}; known: "
                          f"{', '.join(_SHAKESPEARE_OPTIONS)}")
    block_size = _int_option(options, "block_size", 128, 1, "tinyshakespeare")
    _int_option(options, "stride", block_size, 1, "tinyshakespeare")
    fraction = options.get("val_fraction", 0.1)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(f"config 'data.val_fraction' (tinyshakespeare) must be in (0, 1), got {fraction!r}")
    _, vocab = load_text_vocab(options)
    return DataInfo((block_size,), len(vocab), list(vocab.itos), task="language_model")


def _shakespeare_load(options):
    from ..data.datasets.text import LMWindows, train_val_split
    info = _shakespeare_info(options)
    text, vocab = load_text_vocab(options)
    block_size = info.input_shape[0]
    train_ids, val_ids = train_val_split(vocab.encode(text), options.get("val_fraction", 0.1))
    for split, ids in (("training", train_ids), ("validation", val_ids)):
        if len(ids) < block_size + 1:
            raise ConfigError(f"config 'data.block_size' (tinyshakespeare): the {split} text has {len(ids)} "
                              f"characters, too few for one window of {block_size} plus its target")
    train = LMWindows(train_ids, block_size, stride=options.get("stride", block_size))
    return train, LMWindows(val_ids, block_size), None


register_dataset("tinyshakespeare", DatasetSpec(
    _shakespeare_info, _shakespeare_load,
    "tinyshakespeare (shipped, or from data_dir) as windows of block_size characters; first 90 % train, last 10 % "
    "validation"))


class CharGPT(GPT):
    """A ``GPT`` that knows its vocabulary and trains itself under ``Trainer.fit`` on ``(x, y)`` windows.

    Args:
        vocab: the symbols, in id order (a list of single characters for a character-level model).
        **kwargs: ``GPT``'s arguments (``block_size``, ``n_layer``, ``n_head``, ``d_model``, ...).

    The vocabulary is kept as a buffer (``vocab_codes``: the characters' code points), so a
    checkpoint holds everything ``encode`` / ``decode`` need. ``training_step`` and
    ``validation_step`` return the mean next-character cross-entropy over every position of the
    batch (nats per character).

    >>> model = CharGPT(list("abc "), block_size=16, n_layer=1, n_head=2, d_model=16)
    >>> model.decode(model.encode("a cab"))
    'a cab'
    """

    def __init__(self, vocab, **kwargs):
        vocab = list(vocab)
        if not vocab or any(not isinstance(c, str) or len(c) != 1 for c in vocab):
            raise ValueError(f"CharGPT: vocab must be a non-empty list of single characters, got {vocab[:5]!r}")
        super().__init__(len(vocab), **kwargs)
        self.register_buffer("vocab_codes", Tensor(np.array([ord(c) for c in vocab], dtype=np.int64)))

    @property
    def vocab(self):
        """The symbols, in id order."""
        return [chr(c) for c in self.vocab_codes.array.tolist()]

    def unknown_symbols(self, text):
        """The characters of ``text`` that are not in the vocabulary (sorted, each once)."""
        known = set(self.vocab)
        return sorted({c for c in text if c not in known})

    def encode(self, text):
        """int64 ids ``(len(text),)`` of a string; unknown characters raise ``KeyError`` naming them."""
        unknown = self.unknown_symbols(text)
        if unknown:
            raise KeyError(f"CharGPT.encode: characters {unknown!r} are not in the model's vocabulary")
        stoi = {c: i for i, c in enumerate(self.vocab)}
        return np.array([stoi[c] for c in text], dtype=np.int64)

    def decode(self, ids):
        """The string of a sequence of ids (a list, array or Tensor)."""
        if isinstance(ids, Tensor):
            ids = ids.array
        vocab = self.vocab
        return "".join(vocab[i] for i in np.asarray(ids, dtype=np.int64).ravel().tolist())

    def _loss(self, batch, owner):
        if not isinstance(batch, (list, tuple)) or len(batch) != 2:
            raise ValueError(f"CharGPT.{owner}: expected (x, y) batches of integer windows, got "
                             f"{type(batch).__name__}")
        x, y = batch
        logits = self(x)
        if tuple(y.shape) != tuple(x.shape):
            raise ValueError(f"CharGPT.{owner}: targets of shape {tuple(y.shape)} do not match inputs of shape "
                             f"{tuple(x.shape)}")
        return F.cross_entropy(logits.reshape(-1, self.vocab_size), y.reshape(-1))

    def training_step(self, batch, batch_idx):
        """The mean next-character cross-entropy of a batch of ``(x, y)`` windows, for ``Trainer.fit``."""
        return {"loss": self._loss(batch, "training_step")}

    def validation_step(self, batch, batch_idx):
        """The same loss on held-out windows (logged as ``val_loss``)."""
        return {"loss": self._loss(batch, "validation_step")}


_GPT_KEYS = ("n_layer", "n_head", "d_model", "dim_feedforward", "dropout", "bias", "tie_weights")


@register_model("char-gpt")
def _char_gpt(kwargs, info):
    kwargs = dict(kwargs)
    kwargs.pop("report", None)
    unknown = sorted(set(kwargs) - set(_GPT_KEYS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(_GPT_KEYS)}, report "
                         f"(block_size is the data's)")
    if not info.classes or len(info.input_shape) != 1:
        raise ValueError("char-gpt models text: the data must be a character vocabulary and windows of "
                         f"block_size symbols, got input shape {tuple(info.input_shape)}")
    return CharGPT(info.classes, block_size=info.input_shape[0], **kwargs)


# --------------------------------------------------------------------------- samples at the end of training
class TextSampleReport(Callback):
    """At the end of ``fit``, continue ``prompt`` by ``max_new_tokens`` characters, print the text and
    write it to ``samples.txt`` in the run directory.

    Sampling follows ``GPT.generate`` (``temperature``, ``top_k``, ``top_p``) and draws from its own
    generator seeded with ``seed``, so the run's random state, and hence its training, is the same
    with or without the report.
    """

    rank_zero_only = True

    def __init__(self, prompt="\n", max_new_tokens=500, temperature=0.8, top_k=None, top_p=None, seed=0,
                 verbose=True):
        self.prompt, self.max_new_tokens = prompt, max_new_tokens
        self.temperature, self.top_k, self.top_p, self.seed = temperature, top_k, top_p, seed
        self.verbose = verbose
        self.text = None

    def sample(self, model):
        """The prompt and its continuation by ``model`` (a ``CharGPT``), as a string."""
        from ..random import Generator
        generator = Generator().manual_seed(self.seed)
        idx = model.encode(self.prompt)[None]
        out = model.generate(idx, self.max_new_tokens, temperature=self.temperature, top_k=self.top_k,
                             top_p=self.top_p, generator=generator)
        return model.decode(out.array[0])

    def on_fit_end(self, trainer, model):
        """Sample, print and save the text."""
        from ..train._io import atomic_write_text
        model = getattr(model, "module", model)  # unwrapped from a data-parallel wrapper
        if not isinstance(model, CharGPT) or self.max_new_tokens <= 0:
            return
        self.text = self.sample(model)
        if getattr(trainer, "run_dir", None):
            atomic_write_text(os.path.join(trainer.run_dir, "samples.txt"), self.text + "\n")
        if self.verbose:
            print(f"Sample ({self.max_new_tokens} characters, temperature {self.temperature}, seed {self.seed}):\n"
                  f"{self.text}\n", flush=True)


_REPORT_KEYS = ("prompt", "max_new_tokens", "temperature", "top_k", "top_p", "seed")


def text_report(cfg):
    """The ``TextSampleReport`` a ``char-gpt`` run config asks for in its ``model.report`` table."""
    report = dict((cfg.get("model") or {}).get("report") or {})
    unknown = sorted(set(report) - set(_REPORT_KEYS))
    if unknown:
        raise ConfigError(f"config 'model.report': unknown option(s) {', '.join(unknown)}; known: "
                          f"{', '.join(_REPORT_KEYS)}")
    return TextSampleReport(**report)


# --------------------------------------------------------------------------- the recipe
register_recipe(Recipe(
    "shakespeare-char", "character-level GPT (4 layers, d 128, context 128) on tinyshakespeare (shipped); "
                        "validation loss 1.57 in 11 minutes of CPU time on one core, then samples text",
    model={"name": "char-gpt", "n_layer": 4, "n_head": 4, "d_model": 128, "dropout": 0.0,
           "report": {"prompt": "\n", "max_new_tokens": 500, "temperature": 0.8, "seed": 0}},
    data={"name": "tinyshakespeare", "block_size": 128},
    optimizer={"name": "adamw", "lr": 3e-3, "betas": [0.9, 0.99], "weight_decay": 0.01},
    # Warm up over the first 5 % of the steps from a tenth of the peak, then decay (cosine) back to a tenth.
    scheduler={"name": "onecycle", "pct_start": 0.05, "div_factor": 10.0, "final_div_factor": 1.0,
               "cycle_momentum": False},
    # The model's own steps compute this loss over every position of each window.
    loss="cross_entropy", metrics=(), task="regression",
    epochs=7, batch_size=16, seed=0,
    checkpoint={"monitor": "val_loss"},
    trainer={"gradient_clip_val": 1.0}))
