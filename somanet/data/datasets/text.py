"""Text corpora for language modelling: vocabularies, character- and word-level corpora,
``(B, T)`` training windows and BPTT streams, and readers for tinyshakespeare and WikiText-2.

>>> corpus = CharCorpus("hello world")
>>> corpus.decode(corpus.encode("low"))
'low'
>>> train_ids, val_ids = train_val_split(corpus.ids, val_fraction=0.1)
"""
import collections
import json
import os

import numpy as np

from ...autograd.tensor import Tensor
from ...ops.creation import from_numpy
from ..dataset import Dataset, IterableDataset
from ._download import atomic_write_text, dataset_root, download_file, missing_file_error

__all__ = ["Vocab", "CharCorpus", "WordCorpus", "train_val_split", "LMWindows", "batchify", "BPTTIterator",
           "load_tinyshakespeare", "TinyShakespeare", "load_wikitext2", "WikiText2"]


class Vocab:
    """A token <-> id mapping.

    Args:
        tokens: the tokens in id order (no duplicates).
        unk_token: the token that unknown tokens map to (it must be in ``tokens``); with ``None``,
            encoding an unknown token raises ``KeyError``.

    >>> v = Vocab.build("abracadabra", specials=(), unk_token=None)
    >>> v.itos, v.encode("cab").tolist()
    (['a', 'b', 'r', 'c', 'd'], [3, 0, 1])
    """

    def __init__(self, tokens, unk_token=None):
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            dupes = [t for t, c in collections.Counter(self.itos).items() if c > 1]
            raise ValueError(f"Vocab: duplicate tokens {dupes[:5]}")
        if unk_token is not None and unk_token not in self.stoi:
            raise ValueError(f"Vocab: unk_token {unk_token!r} is not one of the tokens")
        self.unk_token = unk_token
        self.unk_index = self.stoi[unk_token] if unk_token is not None else None
        self._char_table = None

    @classmethod
    def build(cls, tokens, min_freq=1, max_size=None, specials=("<unk>",), unk_token="<unk>"):
        """Build from an iterable of tokens (a ``str`` is its characters).

        Args:
            tokens: the training tokens.
            min_freq: tokens seen fewer times are left out (and become ``unk_token``).
            max_size: keep at most this many tokens, specials included, the most frequent first.
            specials: tokens placed first, whatever their counts (e.g. ``("<unk>", "<eos>")``).
            unk_token: the special that unknown tokens map to, or ``None``.

        Tokens are ordered by decreasing count, ties by the token itself, so a vocabulary built
        from the same text is always the same.
        """
        if min_freq < 1:
            raise ValueError(f"Vocab.build: min_freq must be >= 1, got {min_freq}")
        specials = list(specials)
        if unk_token is not None and unk_token not in specials:
            specials.insert(0, unk_token)
        counts = collections.Counter(tokens)
        ordered = sorted((t for t, c in counts.items() if c >= min_freq and t not in specials),
                         key=lambda t: (-counts[t], t))
        itos = specials + ordered
        if max_size is not None:
            if max_size < len(specials):
                raise ValueError(f"Vocab.build: max_size {max_size} is smaller than the {len(specials)} specials")
            itos = itos[:max_size]
        return cls(itos, unk_token=unk_token)

    def __len__(self):
        return len(self.itos)

    def __contains__(self, token):
        return token in self.stoi

    def __getitem__(self, token):
        idx = self.stoi.get(token, self.unk_index)
        if idx is None:
            raise KeyError(f"Vocab: token {token!r} is not in the vocabulary and there is no unk_token")
        return idx

    def __eq__(self, other):
        return isinstance(other, Vocab) and self.itos == other.itos and self.unk_token == other.unk_token

    def __repr__(self):
        return f"Vocab(size={len(self)}, unk_token={self.unk_token!r})"

    def lookup_token(self, index):
        """The token with id ``index``."""
        return self.itos[index]

    def _encode_chars(self, text):
        if self._char_table is None:
            top = max(ord(t) for t in self.itos) + 1
            table = np.full(top, -1 if self.unk_index is None else self.unk_index, dtype=np.int64)
            for i, t in enumerate(self.itos):
                table[ord(t)] = i
            self._char_table = table
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        table = self._char_table
        inside = codes < table.shape[0]
        ids = np.where(inside, table[np.minimum(codes, table.shape[0] - 1)],
                       -1 if self.unk_index is None else self.unk_index)
        if (ids < 0).any():
            unknown = sorted({chr(c) for c in codes[ids < 0]})
            raise KeyError(f"Vocab: characters {unknown[:10]} are not in the vocabulary and there is no unk_token")
        return ids

    def encode(self, tokens):
        """Ids ``(len(tokens),)`` int64 of a token sequence (a ``str`` is encoded character by character)."""
        if isinstance(tokens, str) and self.itos and all(len(t) == 1 for t in self.itos):
            return self._encode_chars(tokens)
        stoi, unk = self.stoi, self.unk_index
        if unk is not None:
            return np.fromiter((stoi.get(t, unk) for t in tokens), dtype=np.int64)
        try:
            return np.fromiter((stoi[t] for t in tokens), dtype=np.int64)
        except KeyError as exc:
            raise KeyError(f"Vocab: token {exc.args[0]!r} is not in the vocabulary and there is no unk_token") from None

    def decode(self, ids):
        """Tokens of a sequence of ids (a list, NumPy array or Tensor)."""
        if isinstance(ids, Tensor):
            ids = ids.array
        itos = self.itos
        return [itos[i] for i in np.asarray(ids, dtype=np.int64).ravel().tolist()]

    def save(self, path):
        """Write the vocabulary as JSON (atomically)."""
        payload = {"format": "somanet.vocab", "version": 1, "unk_token": self.unk_token, "tokens": self.itos}
        atomic_write_text(path, json.dumps(payload, ensure_ascii=False))

    @classmethod
    def load(cls, path):
        """Read a vocabulary written by ``save``."""
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        if not isinstance(payload, dict) or payload.get("format") != "somanet.vocab":
            raise ValueError(f"Vocab.load: {path} is not a somanet vocabulary file")
        return cls(payload["tokens"], unk_token=payload.get("unk_token"))


def train_val_split(data, val_fraction=0.1):
    """Split a sequence (text or ids) into its first ``1 - val_fraction`` and its last ``val_fraction``.

    Language-model splits are contiguous, not shuffled, so no validation text leaks into training.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"train_val_split: val_fraction must be in (0, 1), got {val_fraction}")
    n = len(data)
    cut = int(n * (1.0 - val_fraction))
    return data[:cut], data[cut:]


class CharCorpus:
    """A text encoded character by character.

    Args:
        text: the corpus.
        vocab: a ``Vocab`` of single characters; by default every character of ``text``, without an
            unknown token (encoding an unseen character raises ``KeyError``).

    Attributes: ``text``, ``vocab``, ``ids`` (int64 ``(len(text),)``).
    """

    def __init__(self, text, vocab=None):
        if not isinstance(text, str):
            raise TypeError(f"CharCorpus: text must be a str, got {type(text).__name__}")
        self.vocab = vocab if vocab is not None else Vocab.build(text, specials=(), unk_token=None)
        self.text = text
        self.ids = self.vocab.encode(text)

    def encode(self, text):
        """Ids ``(len(text),)`` int64 of a string."""
        return self.vocab.encode(text)

    def decode(self, ids):
        """The string of a sequence of ids."""
        return "".join(self.vocab.decode(ids))

    def split(self, val_fraction=0.1):
        """``(train_ids, val_ids)``: the first and last parts of ``ids``."""
        return train_val_split(self.ids, val_fraction)

    def __len__(self):
        return len(self.ids)

    def __repr__(self):
        return f"{type(self).__name__}(chars={len(self.ids)}, vocab={len(self.vocab)})"


def _word_tokens(text, eos_token):
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    tokens = []
    for line in lines:
        tokens.extend(line.split())
        if eos_token is not None:
            tokens.append(eos_token)
    return tokens


class WordCorpus:
    """A text split into whitespace-separated words, with ``eos_token`` at the end of every line.

    Args:
        text: the corpus.
        vocab: a ``Vocab``; by default built from ``text`` with ``min_freq`` and ``max_size``.
        min_freq: words seen fewer times become ``unk_token``.
        max_size: keep only the most frequent words.
        eos_token: appended after every line (``None``: nothing).
        unk_token: the unknown word.

    Attributes: ``tokens`` (list of str), ``vocab``, ``ids`` (int64 ``(len(tokens),)``).
    """

    def __init__(self, text, vocab=None, min_freq=1, max_size=None, eos_token="<eos>", unk_token="<unk>"):
        if not isinstance(text, str):
            raise TypeError(f"WordCorpus: text must be a str, got {type(text).__name__}")
        self.eos_token = eos_token
        self.tokens = _word_tokens(text, eos_token)
        if vocab is None:
            specials = [unk_token] if unk_token is not None else []
            if eos_token is not None:
                specials.append(eos_token)
            vocab = Vocab.build(self.tokens, min_freq=min_freq, max_size=max_size, specials=specials,
                                unk_token=unk_token)
        self.vocab = vocab
        self.ids = vocab.encode(self.tokens)

    def encode(self, text):
        """Ids of a string, tokenised the same way (words, plus ``eos_token`` per line)."""
        return self.vocab.encode(_word_tokens(text, self.eos_token))

    def decode(self, ids):
        """Words joined by spaces, with ``eos_token`` shown as a line break."""
        words = self.vocab.decode(ids)
        out = " ".join(words)
        if self.eos_token is not None:
            out = out.replace(f" {self.eos_token} ", "\n").replace(f" {self.eos_token}", "\n")
            out = out.replace(f"{self.eos_token} ", "\n").replace(self.eos_token, "\n")
        return out

    def split(self, val_fraction=0.1):
        """``(train_ids, val_ids)``: the first and last parts of ``ids``."""
        return train_val_split(self.ids, val_fraction)

    def __len__(self):
        return len(self.ids)

    def __repr__(self):
        return f"{type(self).__name__}(tokens={len(self.ids)}, vocab={len(self.vocab)})"


def _ids_array(ids, what):
    arr = ids.array if isinstance(ids, Tensor) else np.asarray(ids)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"{what}: expected a 1-D sequence of integer ids, got {arr.dtype} of shape {arr.shape}")
    return arr.astype(np.int64, copy=False)


class LMWindows(Dataset):
    """Next-token windows: item ``i`` is ``(x, y)``, ``x = ids[s : s + seq_len]``, ``y = ids[s + 1 : s + seq_len + 1]``
    with ``s = i * stride``. A DataLoader batches them into ``(B, T)`` int64 tensors.

    Args:
        ids: token ids ``(L,)``.
        seq_len: window length ``T``.
        stride: start-to-start distance (``seq_len`` by default: non-overlapping windows; 1 gives
            every window, for random sampling with ``shuffle=True``).
    """

    def __init__(self, ids, seq_len, stride=None):
        self.ids = _ids_array(ids, "LMWindows")
        if seq_len < 1:
            raise ValueError(f"LMWindows: seq_len must be >= 1, got {seq_len}")
        self.seq_len = int(seq_len)
        self.stride = int(stride) if stride is not None else self.seq_len
        if self.stride < 1:
            raise ValueError(f"LMWindows: stride must be >= 1, got {stride}")
        if len(self.ids) < self.seq_len + 1:
            raise ValueError(f"LMWindows: {len(self.ids)} ids are too few for one window of {seq_len} plus its target")

    def __len__(self):
        return (len(self.ids) - self.seq_len - 1) // self.stride + 1

    def __getitem__(self, index):
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"LMWindows: index {index} out of range for {n} windows")
        s = index * self.stride
        return self.ids[s:s + self.seq_len], self.ids[s + 1:s + self.seq_len + 1]

    def _fetch_batch(self, indices):
        # One gather for the whole batch instead of B slices and a stack.
        idx = np.asarray(indices, dtype=np.int64)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"LMWindows: index out of range for {n} windows in batch {idx.tolist()[:8]}")
        starts = (idx % n) * self.stride
        pos = starts[:, None] + np.arange(self.seq_len + 1)
        block = self.ids[pos]
        return [from_numpy(np.ascontiguousarray(block[:, :-1])), from_numpy(np.ascontiguousarray(block[:, 1:]))]


def batchify(ids, batch_size):
    """Cut ``ids`` into ``batch_size`` contiguous streams: an int64 array ``(B, L // B)`` (the tail is dropped).

    Row ``b`` continues where nothing else does, so a recurrent model can carry its hidden state
    from one BPTT window of row ``b`` to the next.
    """
    arr = _ids_array(ids, "batchify")
    if batch_size < 1 or len(arr) < batch_size:
        raise ValueError(f"batchify: need 1 <= batch_size <= {len(arr)} ids, got batch_size={batch_size}")
    n = len(arr) // batch_size
    return arr[:n * batch_size].reshape(batch_size, n)


class BPTTIterator(IterableDataset):
    """Truncated-backpropagation-through-time batches: ``(x, y)`` int64 tensors ``(B, T)``.

    The ids are cut into ``batch_size`` streams (``batchify``); window ``k`` is columns
    ``[k * bptt, (k + 1) * bptt)`` of the streams and ``y`` is ``x`` shifted by one token, so the
    hidden state after window ``k`` is the right start for window ``k + 1``. The last window may be
    shorter.

    Args:
        ids: token ids ``(L,)``.
        batch_size: streams ``B``.
        bptt: window length ``T``.
    """

    def __init__(self, ids, batch_size, bptt):
        self.data = batchify(ids, batch_size)
        if bptt < 1:
            raise ValueError(f"BPTTIterator: bptt must be >= 1, got {bptt}")
        if self.data.shape[1] < 2:
            raise ValueError(f"BPTTIterator: streams of {self.data.shape[1]} ids are too short for one step")
        self.bptt = int(bptt)

    def __len__(self):
        return -(-(self.data.shape[1] - 1) // self.bptt)

    def __iter__(self):
        total = self.data.shape[1] - 1
        for start in range(0, total, self.bptt):
            t = min(self.bptt, total - start)
            yield (from_numpy(np.ascontiguousarray(self.data[:, start:start + t])),
                   from_numpy(np.ascontiguousarray(self.data[:, start + 1:start + 1 + t])))


def _read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _find_or_download(what, folder, names, download, url, sha256, save_as):
    search = [folder] + [os.path.join(folder, sub) for sub in ("wikitext-2",)]
    for d in search:
        for name in names:
            path = os.path.join(d, name)
            if os.path.isfile(path):
                return path
    if not download:
        raise missing_file_error(what, names[:1], folder)
    return download_file(url, os.path.join(folder, save_as), sha256, what)


_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def load_tinyshakespeare(root=None, download=False):
    """The tinyshakespeare text (about 1.1 M characters).

    Args:
        root: folder holding ``tinyshakespeare.txt`` (or char-rnn's ``input.txt``); by default
            ``data_home()/tinyshakespeare``.
        download: fetch it (sha256-checked) when missing.
    """
    folder = dataset_root(root, "tinyshakespeare")
    path = _find_or_download("tinyshakespeare", folder, ["tinyshakespeare.txt", "input.txt"], download,
                             _SHAKESPEARE_URL, _SHAKESPEARE_SHA256, "tinyshakespeare.txt")
    return _read_text(path)


class TinyShakespeare(CharCorpus):
    """tinyshakespeare as a character corpus; the usual split is the first 90 % / last 10 %.

    Args:
        root, download: as ``load_tinyshakespeare``.
        split: ``"train"``, ``"val"`` or ``"all"``.
        val_fraction: the share of the validation split.

    The vocabulary is built from the whole text, so both splits share it (65 characters).
    """

    def __init__(self, root=None, split="train", download=False, val_fraction=0.1):
        if split not in ("train", "val", "all"):
            raise ValueError(f"TinyShakespeare: split must be 'train', 'val' or 'all', got {split!r}")
        full = load_tinyshakespeare(root, download)
        vocab = Vocab.build(full, specials=(), unk_token=None)
        train, val = train_val_split(full, val_fraction)
        self.split_name = split
        super().__init__({"train": train, "val": val, "all": full}[split], vocab=vocab)


_WIKITEXT_URL = "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/{}.txt"
_WIKITEXT_SHA256 = {
    "train": "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
    "valid": "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
    "test": "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
}


def load_wikitext2(root=None, split="valid", download=False):
    """One split of WikiText-2 (tokenised, rare words already ``<unk>``) as text.

    Args:
        root: folder holding ``wikitext2-{split}.txt`` (or ``{split}.txt`` / ``wiki.{split}.tokens``,
            also in a ``wikitext-2`` subfolder); by default ``data_home()/wikitext-2``.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        download: fetch it (sha256-checked) when missing.
    """
    if split not in _WIKITEXT_SHA256:
        raise ValueError(f"load_wikitext2: split must be 'train', 'valid' or 'test', got {split!r}")
    folder = dataset_root(root, "wikitext-2")
    names = [f"wikitext2-{split}.txt", f"{split}.txt", f"wiki.{split}.tokens"]
    path = _find_or_download("WikiText2", folder, names, download, _WIKITEXT_URL.format(split),
                             _WIKITEXT_SHA256[split], names[0])
    return _read_text(path)


class WikiText2(WordCorpus):
    """WikiText-2 as a word corpus (``<eos>`` after every line).

    Args:
        root, split, download: as ``load_wikitext2``.
        vocab: reuse another split's vocabulary (e.g. score ``test`` with the ``valid`` vocabulary:
            words it lacks become ``<unk>``).
        min_freq, max_size: vocabulary limits when it is built here.
    """

    def __init__(self, root=None, split="valid", download=False, vocab=None, min_freq=1, max_size=None):
        self.split_name = split
        super().__init__(load_wikitext2(root, split, download), vocab=vocab, min_freq=min_freq, max_size=max_size)
