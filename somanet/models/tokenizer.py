"""Tokenizers that turn text into the ``input_ids`` / ``attention_mask`` / ``token_type_ids`` models take.

``Tokenizer`` wraps the ``tokenizers`` library (WordPiece, BPE, Unigram: whatever a ``tokenizer.json``
describes; ``pip install 'somanet[text]'``), so a Hugging Face model folder's tokenizer gives the very ids
the model was trained with. ``ByteTokenizer`` needs nothing: every UTF-8 byte is a token, plus four
special tokens. Both are called the same way::

    batch = tokenizer(["a short one", "and a longer sentence"], padding=True, truncation=True, max_length=32)
    batch["input_ids"]        # (2, L) int64 Tensor, padded on the right
    batch["attention_mask"]   # 1 for tokens, 0 for padding
    model(batch)              # BERT models take the whole batch as their only argument
"""
import json
import os

import numpy as np

from ..autograd.tensor import Tensor

__all__ = ["Tokenizer", "ByteTokenizer", "BatchEncoding"]


class BatchEncoding(dict):
    """The tokenizer's output: a dict (``input_ids``, ``attention_mask``, ``token_type_ids``) whose entries
    can also be read as attributes (``batch.input_ids``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no {name!r}; keys: {sorted(self)}") from None


class _TokenizerBase:
    """Padding, truncation and batching shared by the tokenizers; subclasses supply ``_encode_one(text,
    pair, add_special_tokens, max_length) -> (ids, type_ids)`` and ``pad_token_id``."""

    pad_token_id = 0
    model_max_length = None

    def _encode_one(self, text, pair, add_special_tokens, max_length):
        raise NotImplementedError

    def encode(self, text, text_pair=None, add_special_tokens=True, truncation=False, max_length=None):
        """The token ids of one text (or pair of texts), as a list of ints."""
        _check_text(text, "encode")
        limit = self._limit(truncation, max_length)
        ids, _ = self._encode_one(text, text_pair, add_special_tokens, limit)
        return ids

    def _limit(self, truncation, max_length):
        if truncation in (False, None, "do_not_truncate"):
            return None
        if max_length is None:
            max_length = self.model_max_length
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                       or max_length < 1):
            raise ValueError(f"{type(self).__name__}: max_length must be a positive integer, got {max_length!r}")
        return max_length

    def __call__(self, texts, text_pair=None, *, padding=True, truncation=True, max_length=None,
                 return_tensors="somanet", add_special_tokens=True, return_token_type_ids=True):
        """Tokenize a text or a list of texts (with an optional second text each, for pair tasks).

        Args:
            texts: a string or a list of strings.
            text_pair: the second text of each pair (same shape as ``texts``), or None.
            padding: True or 'longest' pads to the longest in the batch; 'max_length' to ``max_length``;
                False leaves lengths as they are (then ``return_tensors`` must be None unless they agree).
            truncation: cut inputs longer than ``max_length`` (default: ``model_max_length``).
            max_length: the length limit for truncation and ``padding='max_length'``.
            return_tensors: 'somanet' (int64 Tensors, the default), 'np' (NumPy arrays) or None (lists).
            add_special_tokens: add the model's special tokens ([CLS] ... [SEP] for BERT).
            return_token_type_ids: include ``token_type_ids`` (segment ids).

        Returns:
            a ``BatchEncoding`` with ``input_ids``, ``attention_mask`` and ``token_type_ids``, each
            (N, L); a single string gives N = 1.
        """
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        pairs = None
        if text_pair is not None:
            pairs = [text_pair] if isinstance(text_pair, str) else list(text_pair)
            if len(pairs) != len(batch):
                raise ValueError(f"{type(self).__name__}: {len(batch)} texts but {len(pairs)} text pairs")
        if not batch:
            raise ValueError(f"{type(self).__name__}: no texts to tokenize")
        for t in batch + (pairs or []):
            _check_text(t, type(self).__name__)
        if padding not in (True, False, "longest", "max_length", "do_not_pad"):
            raise ValueError(f"{type(self).__name__}: padding must be True, False, 'longest' or 'max_length', got "
                             f"{padding!r}")
        if return_tensors not in ("somanet", "np", None):
            raise ValueError(f"{type(self).__name__}: return_tensors must be 'somanet', 'np' or None, got "
                             f"{return_tensors!r}")
        limit = self._limit(truncation, max_length)
        encoded = [self._encode_one(t, pairs[i] if pairs else None, add_special_tokens, limit)
                   for i, t in enumerate(batch)]
        ids = [e[0] for e in encoded]
        types = [e[1] for e in encoded]
        lengths = [len(i) for i in ids]
        if padding == "max_length":
            target = max_length if max_length is not None else self.model_max_length
            if target is None:
                raise ValueError(f"{type(self).__name__}: padding='max_length' needs max_length")
            target = max(target, max(lengths))
        elif padding in (True, "longest"):
            target = max(lengths)
        else:
            target = None
        masks = [[1] * n for n in lengths]
        if target is not None:
            ids = [i + [self.pad_token_id] * (target - len(i)) for i in ids]
            types = [t + [0] * (target - len(t)) for t in types]
            masks = [m + [0] * (target - len(m)) for m in masks]
        out = {"input_ids": ids, "attention_mask": masks}
        if return_token_type_ids:
            out["token_type_ids"] = types
        if return_tensors is not None:
            if len(set(len(i) for i in ids)) > 1:
                raise ValueError(f"{type(self).__name__}: the texts have different lengths ({min(lengths)} to "
                                 f"{max(lengths)} tokens); pass padding=True or return_tensors=None")
            out = {k: np.asarray(v, dtype=np.int64).reshape(len(v), -1) for k, v in out.items()}
            if return_tensors == "somanet":
                out = {k: Tensor(v) for k, v in out.items()}
        return BatchEncoding(out)

    def batch_decode(self, sequences, skip_special_tokens=True):
        """``decode`` for each row of ``sequences`` (lists, an array or a Tensor)."""
        if isinstance(sequences, Tensor):
            sequences = sequences.array
        return [self.decode(list(np.asarray(s).tolist()), skip_special_tokens=skip_special_tokens)
                for s in sequences]


def _check_text(text, who):
    if not isinstance(text, str):
        raise TypeError(f"{who}: texts must be strings, got {type(text).__name__}")


def _tokenizers():
    try:
        import tokenizers
    except ImportError as exc:
        raise ImportError("Tokenizer needs the tokenizers package: pip install 'somanet[text]' (or pip install "
                          "tokenizers); ByteTokenizer works without it") from exc
    return tokenizers


class Tokenizer(_TokenizerBase):
    """A tokenizer from the ``tokenizers`` library (WordPiece, BPE, Unigram), as described by a
    ``tokenizer.json`` or, for BERT, a ``vocab.txt``.

    ``Tokenizer.from_pretrained(folder)`` reads a Hugging Face model folder (``tokenizer.json``, else
    ``vocab.txt``; ``tokenizer_config.json`` for ``model_max_length`` and the special tokens). Any padding
    or truncation preset stored in the file is switched off: each call says what it wants.

    ``encode(text)`` -> ids; ``tokenize(text)`` -> token strings; ``decode(ids)`` -> text; calling it on
    texts gives a padded ``BatchEncoding`` (see ``__call__``).
    """

    def __init__(self, backend, *, model_max_length=None, pad_token=None):
        self._backend = backend
        backend.no_padding()
        backend.no_truncation()
        self.model_max_length = model_max_length
        vocab = backend.get_vocab(with_added_tokens=True)
        if pad_token is None:
            pad_token = next((t for t in ("[PAD]", "<pad>", "<|pad|>") if t in vocab), None)
        self.pad_token = pad_token
        self.pad_token_id = vocab.get(pad_token, 0) if pad_token is not None else 0

    @classmethod
    def from_file(cls, path, **kwargs):
        """Load a ``tokenizer.json``."""
        tk = _tokenizers()
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Tokenizer.from_file(): {path} does not exist")
        try:
            backend = tk.Tokenizer.from_file(os.fspath(path))
        except Exception as exc:  # the library raises its own exception type
            raise ValueError(f"Tokenizer.from_file(): {path} is not a tokenizer.json the tokenizers library reads: "
                             f"{exc}") from None
        return cls(backend, **kwargs)

    @classmethod
    def from_pretrained(cls, folder, **kwargs):
        """The tokenizer of a Hugging Face model folder."""
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"Tokenizer.from_pretrained(): {folder} is not a folder")
        settings = {}
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as fh:
                    loaded = json.load(fh)
                settings.update({k: v for k, v in loaded.items() if k not in settings})
        pad = settings.get("pad_token")
        if isinstance(pad, dict):
            pad = pad.get("content")
        max_len = settings.get("model_max_length")
        if not isinstance(max_len, int) or max_len > 1_000_000:  # "no limit" is written as a huge number
            max_len = None
        options = {"model_max_length": max_len, "pad_token": pad}
        options.update(kwargs)
        path = os.path.join(folder, "tokenizer.json")
        if os.path.isfile(path):
            return cls.from_file(path, **options)
        vocab = os.path.join(folder, "vocab.txt")
        if os.path.isfile(vocab):
            tk = _tokenizers()
            lower = settings.get("do_lower_case", True)
            backend = tk.BertWordPieceTokenizer(vocab, lowercase=lower)
            return cls(backend._tokenizer if hasattr(backend, "_tokenizer") else backend, **options)
        raise FileNotFoundError(f"Tokenizer.from_pretrained(): {folder} has neither tokenizer.json nor vocab.txt")

    @property
    def vocab_size(self):
        return self._backend.get_vocab_size(with_added_tokens=True)

    def get_vocab(self):
        return self._backend.get_vocab(with_added_tokens=True)

    def token_to_id(self, token):
        return self._backend.token_to_id(token)

    def id_to_token(self, index):
        return self._backend.id_to_token(index)

    def tokenize(self, text, add_special_tokens=False):
        _check_text(text, "tokenize")
        return self._backend.encode(text, add_special_tokens=add_special_tokens).tokens

    def _encode_one(self, text, pair, add_special_tokens, max_length):
        backend = self._backend
        if max_length is not None:
            backend.enable_truncation(max_length)
        try:
            enc = backend.encode(text, pair, add_special_tokens=add_special_tokens)
        finally:
            if max_length is not None:
                backend.no_truncation()
        return list(enc.ids), list(enc.type_ids)

    def decode(self, ids, skip_special_tokens=True):
        if isinstance(ids, Tensor):
            ids = ids.array
        return self._backend.decode([int(i) for i in np.asarray(ids).reshape(-1)],
                                    skip_special_tokens=skip_special_tokens)

    def save(self, path):
        """Write the tokenizer as a ``tokenizer.json``."""
        self._backend.save(os.fspath(path))

    def __repr__(self):
        model = type(self._backend.model).__name__
        return f"Tokenizer({model}, vocab_size={self.vocab_size}, model_max_length={self.model_max_length})"


class ByteTokenizer(_TokenizerBase):
    """A tokenizer with no dependency and no vocabulary to learn: every UTF-8 byte is one token.

    Ids: 0 ``[PAD]``, 1 ``[CLS]`` (start), 2 ``[SEP]`` (end / separator), 3 ``[MASK]``, then byte ``b`` is
    ``b + 4``; ``vocab_size`` 260. With special tokens a text reads ``[CLS] bytes [SEP]`` and a pair
    ``[CLS] a [SEP] b [SEP]`` (segment ids 0 then 1), as in BERT. Any text round-trips through
    ``encode``/``decode``; truncation may cut a multi-byte character, which ``decode`` shows as U+FFFD.

    >>> tok = ByteTokenizer()
    >>> tok.encode("hi")
    [1, 108, 109, 2]
    >>> tok.decode(tok.encode("héllo"))
    'héllo'
    """

    pad_token_id, cls_token_id, sep_token_id, mask_token_id = 0, 1, 2, 3
    offset = 4
    special_tokens = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")

    def __init__(self, model_max_length=None):
        self.model_max_length = model_max_length

    @property
    def vocab_size(self):
        return 256 + self.offset

    def tokenize(self, text, add_special_tokens=False):
        _check_text(text, "tokenize")
        return [self.id_to_token(i) for i in self.encode(text, add_special_tokens=add_special_tokens)]

    def id_to_token(self, index):
        if index < self.offset:
            return self.special_tokens[index]
        return bytes([index - self.offset]).decode("latin-1")

    def token_to_id(self, token):
        if token in self.special_tokens:
            return self.special_tokens.index(token)
        raw = token.encode("latin-1") if len(token) == 1 else b""
        return raw[0] + self.offset if len(raw) == 1 else None

    def _encode_one(self, text, pair, add_special_tokens, max_length):
        a = [b + self.offset for b in text.encode("utf-8")]
        b = [c + self.offset for c in pair.encode("utf-8")] if pair is not None else None
        n_special = (3 if b is not None else 2) if add_special_tokens else 0
        if max_length is not None:
            room = max(max_length - n_special, 0)
            if b is None:
                a = a[:room]
            else:  # longest first: take from whichever is longer, one token at a time
                while len(a) + len(b) > room:
                    if len(a) >= len(b):
                        a.pop()
                    else:
                        b.pop()
        if not add_special_tokens:
            ids = a + (b or [])
            types = [0] * len(a) + [1] * len(b or [])
            return ids, types
        ids = [self.cls_token_id] + a + [self.sep_token_id]
        types = [0] * len(ids)
        if b is not None:
            ids += b + [self.sep_token_id]
            types += [1] * (len(b) + 1)
        return ids, types

    def decode(self, ids, skip_special_tokens=True):
        if isinstance(ids, Tensor):
            ids = ids.array
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"ByteTokenizer.decode(): ids must be in [0, {self.vocab_size}), got {bad[:5]}")
        out, parts = bytearray(), []
        for i in ids:
            if i >= self.offset:
                out.append(i - self.offset)
            elif not skip_special_tokens:
                parts.append(out.decode("utf-8", errors="replace"))
                parts.append(self.special_tokens[i])
                out = bytearray()
        parts.append(out.decode("utf-8", errors="replace"))
        return "".join(parts)

    def __repr__(self):
        return f"ByteTokenizer(vocab_size={self.vocab_size}, model_max_length={self.model_max_length})"
