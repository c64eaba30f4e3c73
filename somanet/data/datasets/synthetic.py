"""Synthetic data with real structure, generated in NumPy under a seed.

- ``make_spirals`` / ``Spirals``: two interleaved spirals, a classic non-linear 2-D problem.
- ``make_time_series`` / ``TimeSeriesWindows``: noisy series with trend and several seasonal periods.
- ``make_shapes`` / ``Shapes``: images of circles, squares and triangles with boxes and masks, for
  detection and segmentation.
- ``make_reverse_pairs``, ``make_sort_pairs``, ``make_date_pairs`` and ``Seq2SeqDataset``: string
  transduction tasks for sequence-to-sequence models.

Every generator takes ``seed`` (an int, for its own stream) or ``generator`` (a ``somanet.Generator``);
with neither it draws from somanet's default generator.
"""
import numpy as np

from ...ops.creation import from_numpy
from ...random import numpy_rng
from ..collate import default_collate
from ..dataset import Dataset

__all__ = ["make_spirals", "Spirals", "make_time_series", "TimeSeriesWindows", "make_shapes", "Shapes",
           "detection_collate", "SHAPE_CLASSES", "make_reverse_pairs", "make_sort_pairs", "make_date_pairs",
           "Seq2SeqDataset", "PAD", "SOS", "EOS", "UNK", "make_interactions", "leave_one_out", "ImplicitFeedback"]


def _rng(seed, generator):
    if seed is not None and generator is not None:
        raise ValueError("give seed or generator, not both")
    if seed is not None:
        return np.random.Generator(np.random.PCG64(seed))
    return numpy_rng(generator)


def _positive_int(value, name, fn):
    if int(value) != value or value < 1:
        raise ValueError(f"{fn}: {name} must be a positive integer, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------- spirals
def make_spirals(n_per_class=100, noise=0.1, turns=1.5, seed=None, generator=None):
    """Two interleaved spirals in the plane.

    Point ``t`` in ``[0, 1]`` of class ``k`` lies at radius ``t`` and angle ``2 pi turns t + pi k``
    (points spread evenly along the arm), plus Gaussian noise of std ``noise`` times the radius
    gap between neighbouring arms, so ``noise=1`` makes the arms touch.

    Args:
        n_per_class: points per spiral.
        noise: noise level, relative to the gap between arms.
        turns: how many turns each arm makes.
        seed: an int for a private random stream (or use ``generator``).
        generator: a ``somanet.Generator``.

    Returns:
        ``X`` float32 ``(2 n, 2)`` and ``y`` int64 ``(2 n,)``: class 0 then class 1.
    """
    n = _positive_int(n_per_class, "n_per_class", "make_spirals")
    if noise < 0 or turns <= 0:
        raise ValueError(f"make_spirals: noise must be >= 0 and turns > 0, got noise={noise}, turns={turns}")
    rng = _rng(seed, generator)
    xs, ys = [], []
    gap = 0.5 / turns  # radial distance between the two arms
    for k in (0, 1):
        t = np.sqrt(rng.random(n)) * 0.95 + 0.05
        angle = 2.0 * np.pi * turns * t + np.pi * k
        pts = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
        pts += rng.standard_normal((n, 2)) * (noise * gap * 0.5)
        xs.append(pts)
        ys.append(np.full(n, k, dtype=np.int64))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


class Spirals(Dataset):
    """The two-spirals problem as a Dataset of ``(x float32 (2,), label int)``.

    Arguments as ``make_spirals``; ``seed`` defaults to 0 so the dataset is the same every run.
    ``data`` (``(N, 2)``) and ``targets`` (``(N,)``) hold everything.
    """

    def __init__(self, n_per_class=100, noise=0.1, turns=1.5, seed=0, generator=None):
        self.data, self.targets = make_spirals(n_per_class, noise, turns,
                                               seed=None if generator is not None else seed, generator=generator)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self.data[index], int(self.targets[index])

    def _fetch_batch(self, indices):
        idx = np.asarray(indices, dtype=np.int64)
        return [from_numpy(self.data[idx]), from_numpy(self.targets[idx])]


# ----------------------------------------------------------------------------- time series
def make_time_series(n_steps=2000, n_series=1, periods=(24, 168), amplitudes=None, trend=0.0005, noise=0.2,
                     ar=0.6, seed=None, generator=None):
    """Noisy series with a trend, several seasonal cycles and autocorrelated noise.

    ``x[t] = level + trend * t + sum_k a_k sin(2 pi t / p_k + phase_k) + 0.3 a_k sin(4 pi t / p_k + phase'_k) + e[t]``
    where ``e`` is AR(1) noise (``e[t] = ar * e[t-1] + noise * sqrt(1 - ar^2) * N(0, 1)``); each
    series gets its own level, phases and amplitude jitter. The default periods are "daily" and
    "weekly" cycles of hourly data.

    Args:
        n_steps: length ``T``.
        n_series: number of series ``C``.
        periods: seasonal periods (in steps).
        amplitudes: one amplitude per period (default ``1, 0.5, 0.25, ...``).
        trend: slope per step.
        noise: stationary std of the noise.
        ar: AR(1) coefficient of the noise, in ``[0, 1)``.
        seed, generator: randomness (see the module docstring).

    Returns:
        float32 ``(T, C)``.
    """
    t_len = _positive_int(n_steps, "n_steps", "make_time_series")
    c = _positive_int(n_series, "n_series", "make_time_series")
    if not 0.0 <= ar < 1.0:
        raise ValueError(f"make_time_series: ar must be in [0, 1), got {ar}")
    periods = [float(p) for p in periods]
    if any(p <= 0 for p in periods):
        raise ValueError(f"make_time_series: periods must be positive, got {periods}")
    if amplitudes is None:
        amplitudes = [0.5 ** k for k in range(len(periods))]
    if len(amplitudes) != len(periods):
        raise ValueError(f"make_time_series: {len(amplitudes)} amplitudes for {len(periods)} periods")
    rng = _rng(seed, generator)
    t = np.arange(t_len, dtype=np.float64)[:, None]
    series = rng.normal(0.0, 1.0, size=(1, c)) + trend * t
    for p, a in zip(periods, amplitudes):
        amp = a * rng.uniform(0.8, 1.2, size=(1, c))
        phase1, phase2 = rng.uniform(0, 2 * np.pi, size=(2, 1, c))
        series = series + amp * np.sin(2 * np.pi * t / p + phase1) + 0.3 * amp * np.sin(4 * np.pi * t / p + phase2)
    shocks = rng.standard_normal((t_len, c)) * noise * np.sqrt(1.0 - ar ** 2)
    e = np.empty((t_len, c))
    e[0] = rng.standard_normal(c) * noise
    # The AR(1) recursion is sequential in time; it is a loop over steps with vector work per step.
    for i in range(1, t_len):
        e[i] = ar * e[i - 1] + shocks[i]
    return (series + e).astype(np.float32)


class TimeSeriesWindows(Dataset):
    """Forecasting windows: item ``i`` is ``(x (input_len, C), y (horizon, C))`` float32, where ``x``
    is ``series[s : s + input_len]`` and ``y`` the following ``horizon`` steps, ``s = i * stride``.

    Args:
        series: ``(T,)`` or ``(T, C)`` values.
        input_len: steps the model sees.
        horizon: steps to forecast.
        stride: start-to-start distance.
    """

    def __init__(self, series, input_len, horizon=1, stride=1):
        arr = np.asarray(series.data if hasattr(series, "data") and not isinstance(series, np.ndarray) else series)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"TimeSeriesWindows: series must be (T,) or (T, C), got shape {arr.shape}")
        self.series = arr.astype(np.float32, copy=False)
        self.input_len = _positive_int(input_len, "input_len", "TimeSeriesWindows")
        self.horizon = _positive_int(horizon, "horizon", "TimeSeriesWindows")
        self.stride = _positive_int(stride, "stride", "TimeSeriesWindows")
        if len(self) < 1:
            raise ValueError(f"TimeSeriesWindows: a series of {arr.shape[0]} steps has no window of "
                             f"{input_len} + {horizon}")

    def __len__(self):
        return max((self.series.shape[0] - self.input_len - self.horizon) // self.stride + 1, 0)

    def __getitem__(self, index):
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"TimeSeriesWindows: index {index} out of range for {n} windows")
        s = index * self.stride
        return self.series[s:s + self.input_len], self.series[s + self.input_len:s + self.input_len + self.horizon]


# ----------------------------------------------------------------------------- shapes
SHAPE_CLASSES = ("background", "circle", "square", "triangle")


def _shape_mask(kind, cy, cx, r, size, yy, xx):
    if kind == 1:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    if kind == 2:
        return (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
    # An upward triangle with its apex r above the centre and its base r below.
    top = cy - r
    frac = (yy - top) / (2.0 * r)
    return (yy >= top) & (yy <= cy + r) & (np.abs(xx - cx) <= frac * r)


def make_shapes(n=100, image_size=32, max_shapes=3, min_size=4, max_size=None, noise=0.05, seed=None, generator=None):
    """Images of random circles, squares and triangles, with their boxes and masks.

    Shapes are drawn one over another in random colours on a dark noisy background; a shape that
    ends up fully hidden is dropped. Labels use ``SHAPE_CLASSES`` (0 is the background).

    Args:
        n: number of images.
        image_size: height and width ``S``.
        max_shapes: 1 to ``max_shapes`` shapes per image.
        min_size, max_size: half-size range of a shape in pixels (``max_size`` defaults to ``S // 4``).
        noise: std of the background and colour noise.
        seed, generator: randomness (see the module docstring).

    Returns:
        ``(images, semantic, targets)``: float32 ``(n, 3, S, S)`` in [0, 1]; int64 ``(n, S, S)`` class
        maps; and per image a dict with ``boxes`` float32 ``(k, 4)`` as ``(x1, y1, x2, y2)``
        (inclusive-exclusive pixel bounds of the visible part), ``labels`` int64 ``(k,)`` and
        ``masks`` uint8 ``(k, S, S)`` of the visible part.
    """
    n = _positive_int(n, "n", "make_shapes")
    s = _positive_int(image_size, "image_size", "make_shapes")
    max_shapes = _positive_int(max_shapes, "max_shapes", "make_shapes")
    max_size = s // 4 if max_size is None else max_size
    if not 2 <= min_size <= max_size or 2 * max_size >= s:
        raise ValueError(f"make_shapes: need 2 <= min_size <= max_size < image_size / 2, got "
                         f"min_size={min_size}, max_size={max_size}, image_size={s}")
    rng = _rng(seed, generator)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    images = (rng.random((n, 3, 1, 1)) * 0.2 + rng.standard_normal((n, 3, s, s)) * noise).astype(np.float32)
    semantic = np.zeros((n, s, s), dtype=np.int64)
    targets = []
    for i in range(n):
        count = int(rng.integers(1, max_shapes + 1))
        instance = np.full((s, s), -1, dtype=np.int64)
        kinds = rng.integers(1, len(SHAPE_CLASSES), size=count)
        for j, kind in enumerate(kinds):
            r = float(rng.integers(min_size, max_size + 1))
            cy, cx = rng.uniform(r, s - 1 - r, size=2)
            mask = _shape_mask(int(kind), cy, cx, r, s, yy, xx)
            colour = rng.uniform(0.4, 1.0, size=3).astype(np.float32)
            images[i][:, mask] = colour[:, None] + rng.standard_normal((3, int(mask.sum()))).astype(np.float32) * noise
            instance[mask] = j
            semantic[i][mask] = kind
        boxes, labels, masks = [], [], []
        for j, kind in enumerate(kinds):
            visible = instance == j
            if not visible.any():
                continue
            rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
            boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
            labels.append(int(kind))
            masks.append(visible.astype(np.uint8))
        targets.append({"boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                        "labels": np.asarray(labels, dtype=np.int64),
                        "masks": np.stack(masks) if masks else np.zeros((0, s, s), np.uint8)})
    np.clip(images, 0.0, 1.0, out=images)
    return images, semantic, targets


class Shapes(Dataset):
    """``make_shapes`` as a Dataset for detection or segmentation.

    Args:
        n, image_size, max_shapes, min_size, max_size, noise: as ``make_shapes``.
        task: ``"segmentation"``: samples ``(image (3, S, S), class map (S, S) int64)``, which the
            default collate batches; ``"detection"``: samples ``(image, target dict)`` as torchvision's
            detection models take them, batched with ``collate_fn=detection_collate``.
        seed: seed of the images (default 0: the same set every run).
        transform: applied to the image (only photometric changes keep the targets valid).
    """

    def __init__(self, n=100, image_size=32, max_shapes=3, min_size=4, max_size=None, noise=0.05, task="segmentation",
                 seed=0, transform=None):
        if task not in ("segmentation", "detection"):
            raise ValueError(f"Shapes: task must be 'segmentation' or 'detection', got {task!r}")
        self.task = task
        self.transform = transform
        self.images, self.masks, self.targets = make_shapes(n, image_size, max_shapes, min_size, max_size, noise,
                                                            seed=seed)
        self.classes = list(SHAPE_CLASSES)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        img = self.images[index]
        if self.transform is not None:
            img = self.transform(img)
        if self.task == "segmentation":
            return img, self.masks[index]
        return img, self.targets[index]


def detection_collate(batch):
    """Collate ``(image, target dict)`` samples: ``(images (B, C, H, W) Tensor, list of target dicts)``
    with the targets' arrays made Tensors (their sizes differ, so they cannot be stacked)."""
    images = default_collate([b[0] for b in batch])
    targets = [{k: from_numpy(np.asarray(v)) for k, v in b[1].items()} for b in batch]
    return images, targets


# ----------------------------------------------------------------------------- seq2seq
PAD, SOS, EOS, UNK = "<pad>", "<sos>", "<eos>", "<unk>"
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _random_strings(rng, n, min_len, max_len, alphabet):
    fn = "make_pairs"
    _positive_int(n, "n", fn)
    if not 1 <= min_len <= max_len:
        raise ValueError(f"{fn}: need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    letters = np.array(list(alphabet))
    lengths = rng.integers(min_len, max_len + 1, size=n)
    return ["".join(letters[rng.integers(0, len(letters), size=k)]) for k in lengths]


def make_reverse_pairs(n=1000, min_len=3, max_len=12, alphabet="abcdefghijklmnopqrstuvwxyz", seed=None, generator=None):
    """``n`` pairs ``(s, s reversed)`` of random strings over ``alphabet``."""
    rng = _rng(seed, generator)
    return [(s, s[::-1]) for s in _random_strings(rng, n, min_len, max_len, alphabet)]


def make_sort_pairs(n=1000, min_len=3, max_len=12, alphabet="0123456789", seed=None, generator=None):
    """``n`` pairs ``(s, s with its characters sorted)`` of random strings over ``alphabet``."""
    rng = _rng(seed, generator)
    return [(s, "".join(sorted(s))) for s in _random_strings(rng, n, min_len, max_len, alphabet)]


def _format_date(rng, year, month, day, weekday):
    name, short = _MONTHS[month - 1], _MONTHS[month - 1][:3]
    style = int(rng.integers(0, 8))
    if style == 0:
        return f"{name} {day}, {year}"
    if style == 1:
        return f"{day} {name} {year}"
    if style == 2:
        return f"{short} {day} {year}"
    if style == 3:
        return f"{_WEEKDAYS[weekday]}, {name} {day}, {year}"
    if style == 4:
        return f"{day:02d}.{month:02d}.{year}"
    if style == 5:
        return f"{short.lower()} {day:02d}, {year}"
    if style == 6:
        return f"{day} {short.upper()} {year}"
    return f"{_WEEKDAYS[weekday][:3]} {day} {name} {year}"


def make_date_pairs(n=1000, start_year=1950, end_year=2049, seed=None, generator=None):
    """``n`` pairs ``(human-readable date, ISO date)``, e.g. ``("Tuesday, March 5, 2024", "2024-03-05")``.

    Dates are uniform over ``start_year`` .. ``end_year``; each is written in one of eight English
    styles (month names, abbreviations, weekdays, ``dd.mm.yyyy``).
    """
    import datetime

    n = _positive_int(n, "n", "make_date_pairs")
    rng = _rng(seed, generator)
    first = datetime.date(start_year, 1, 1).toordinal()
    last = datetime.date(end_year, 12, 31).toordinal()
    pairs = []
    for ordinal in rng.integers(first, last + 1, size=n):
        d = datetime.date.fromordinal(int(ordinal))
        pairs.append((_format_date(rng, d.year, d.month, d.day, d.weekday()), d.isoformat()))
    return pairs


class Seq2SeqDataset(Dataset):
    """Character-level ``(source, target)`` string pairs as id sequences.

    Args:
        pairs: a list of ``(source, target)`` strings.
        src_vocab, tgt_vocab: ``Vocab``s to reuse (e.g. the training set's); built from ``pairs``
            by default, with the specials ``<pad>`` (id 0), ``<sos>`` (1), ``<eos>`` (2), ``<unk>`` (3).

    Item ``i`` is ``(src, tgt)`` int64 arrays: ``src`` is the source characters then ``<eos>``;
    ``tgt`` is ``<sos>``, the target characters, ``<eos>`` (feed ``tgt[:-1]`` to the decoder and
    predict ``tgt[1:]``). Batch with ``collate_fn=dataset.collate``, which pads with ``<pad>``.
    """

    def __init__(self, pairs, src_vocab=None, tgt_vocab=None):
        from .text import Vocab

        self.pairs = list(pairs)
        if not self.pairs:
            raise ValueError("Seq2SeqDataset: pairs is empty")
        specials = (PAD, SOS, EOS, UNK)
        self.src_vocab = src_vocab or Vocab.build("".join(p[0] for p in self.pairs), specials=specials, unk_token=UNK)
        self.tgt_vocab = tgt_vocab or Vocab.build("".join(p[1] for p in self.pairs), specials=specials, unk_token=UNK)
        self.pad_index = self.tgt_vocab[PAD]
        if self.src_vocab[PAD] != self.pad_index:
            raise ValueError("Seq2SeqDataset: source and target vocabularies must share the <pad> id")

    def _ids(self, vocab, text, sos):
        ids = [vocab[c] for c in text] + [vocab[EOS]]
        return np.asarray(([vocab[SOS]] if sos else []) + ids, dtype=np.int64)

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        src, tgt = self.pairs[index]
        return self._ids(self.src_vocab, src, False), self._ids(self.tgt_vocab, tgt, True)

    def collate(self, batch):
        """Pad a list of ``(src, tgt)`` to ``(src (B, S), tgt (B, T))`` int64 Tensors filled with ``<pad>``."""
        out = []
        for part in (0, 1):
            seqs = [b[part] for b in batch]
            arr = np.full((len(seqs), max(len(q) for q in seqs)), self.pad_index, dtype=np.int64)
            for i, q in enumerate(seqs):
                arr[i, :len(q)] = q
            out.append(from_numpy(arr))
        return tuple(out)

    def decode(self, ids, target=True):
        """The string of an id sequence, stopping at ``<eos>`` and skipping ``<sos>``/``<pad>``."""
        vocab = self.tgt_vocab if target else self.src_vocab
        chars = []
        for tok in vocab.decode(ids):
            if tok == EOS:
                break
            if tok not in (SOS, PAD):
                chars.append(tok)
        return "".join(chars)


# ----------------------------------------------------------------------------- implicit feedback
def make_interactions(n_users=1000, n_items=500, rank=8, density=0.05, seed=None, generator=None, *, popularity=1.0,
                      return_logits=False):
    """User-item interactions (implicit feedback) with a known low-rank structure.

    Users and items get ``rank``-dimensional factors ``u``, ``v`` (Gaussian, scaled so that ``<u, v>``
    has unit variance) and items a popularity ``b ~ N(0, 1)``. Each user interacts with
    ``max(3, round(density * n_items))`` distinct items drawn without replacement with probabilities
    proportional to ``exp(3 <u, v> + popularity * b)`` (Gumbel top-k), in a random order that stands for
    time: ``leave_one_out`` holds out each user's last interactions.

    Args:
        n_users, n_items: sizes of the index ranges.
        rank: dimension of the preference structure.
        density: fraction of the items each user interacts with.
        seed, generator: randomness (see the module docstring).
        popularity: weight of the item popularity in the choice (0: pure low-rank taste).
        return_logits: also return the ``(n_users, n_items)`` float64 logits the choices were drawn
            from (the best possible scores: an oracle to compare a recommender with).

    Returns:
        int64 ``(N, 2)`` array of ``(user, item)`` pairs grouped by user, each user's in time order
        (and the logits with ``return_logits``).
    """
    n_users = _positive_int(n_users, "n_users", "make_interactions")
    n_items = _positive_int(n_items, "n_items", "make_interactions")
    rank = _positive_int(rank, "rank", "make_interactions")
    per_user = max(3, int(round(density * n_items)))
    if not 0 < density <= 1 or per_user >= n_items:
        raise ValueError(f"make_interactions: density must be in (0, 1] and leave items to sample as negatives; got "
                         f"density={density} for {n_items} items ({per_user} interactions per user)")
    rng = _rng(seed, generator)
    scale = rank ** -0.25
    u = rng.standard_normal((n_users, rank)) * scale
    v = rng.standard_normal((n_items, rank)) * scale
    logits = 3.0 * (u @ v.T) + popularity * rng.standard_normal(n_items)
    keys = logits + rng.gumbel(size=logits.shape)
    chosen = np.argpartition(-keys, per_user - 1, axis=1)[:, :per_user]
    chosen = rng.permuted(chosen, axis=1)
    users = np.repeat(np.arange(n_users), per_user)
    pairs = np.stack([users, chosen.reshape(-1)], axis=1).astype(np.int64)
    return (pairs, logits) if return_logits else pairs


def leave_one_out(interactions, n_items, num_negatives=99, seed=0):
    """The leave-one-out split of He et al. (2017): each user's last interaction is held out and ranked
    against ``num_negatives`` items the user never interacted with.

    Args:
        interactions: int64 ``(N, 2)`` ``(user, item)`` pairs, each user's in time order (as
            ``make_interactions`` gives); users with fewer than 2 interactions are not held out.
        n_items: number of items (negatives are drawn from ``0 .. n_items - 1``).
        num_negatives: sampled negatives per held-out item.
        seed: seed of the negative sampling.

    Returns:
        ``(train, users, candidates)``: the remaining pairs ``(M, 2)``; the held-out users ``(U,)``; and
        ``(U, 1 + num_negatives)`` candidate items, column 0 the held-out item.
    """
    pairs = np.asarray(interactions)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.dtype.kind not in "iu":
        raise ValueError(f"leave_one_out: interactions must be integer (N, 2) (user, item) pairs, got "
                         f"{pairs.dtype} array of shape {pairs.shape}")
    pairs = pairs.astype(np.int64)
    last = {}
    counts = np.bincount(pairs[:, 0]) if len(pairs) else np.zeros(0, np.int64)
    for k, user in enumerate(pairs[:, 0]):
        last[int(user)] = k
    held = np.array(sorted(k for u, k in last.items() if counts[u] >= 2), dtype=np.int64)
    keep = np.ones(len(pairs), bool)
    keep[held] = False
    users = pairs[held, 0]
    seen = set((pairs[:, 0] * n_items + pairs[:, 1]).tolist())
    rng = np.random.default_rng(seed)
    negatives = np.empty((len(users), num_negatives), np.int64)
    for row, user in enumerate(users):
        if counts[user] + num_negatives > n_items:
            raise ValueError(f"leave_one_out: user {user} has {counts[user]} interactions; {num_negatives} negatives "
                             f"cannot be drawn from {n_items} items")
        picked = []
        taken = set()
        while len(picked) < num_negatives:
            for item in rng.integers(0, n_items, num_negatives).tolist():
                if len(picked) < num_negatives and item not in taken and user * n_items + item not in seen:
                    taken.add(item)
                    picked.append(item)
        negatives[row] = picked
    return pairs[keep], users, np.concatenate([pairs[held, 1:2], negatives], axis=1)


class ImplicitFeedback(Dataset):
    """Observed ``(user, item)`` pairs as positives, each followed by ``num_negatives`` items the user
    did not interact with, drawn afresh at every access (so every epoch sees new negatives).

    Samples are ``(user, item, label)`` with ``label`` 1.0 for the observed pair and 0.0 for a negative;
    ``len`` is ``len(pairs) * (1 + num_negatives)``. The DataLoader batches them as three tensors.

    Args:
        pairs: int64 ``(N, 2)`` observed pairs.
        n_items: number of items.
        num_negatives: negatives per positive (4 in the NCF paper).
        exclude: more ``(user, item)`` pairs never drawn as negatives (e.g. held-out ones).
        seed: seed of the negative sampling stream.
    """

    def __init__(self, pairs, n_items, num_negatives=4, exclude=None, seed=0):
        pairs = np.asarray(pairs)
        if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.dtype.kind not in "iu":
            raise ValueError(f"ImplicitFeedback: pairs must be integer (N, 2) (user, item) pairs, got {pairs.dtype} "
                             f"array of shape {pairs.shape}")
        if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 0:
            raise ValueError(f"ImplicitFeedback: num_negatives must be a non-negative int, got {num_negatives!r}")
        self.pairs = pairs.astype(np.int64)
        self.n_items = _positive_int(n_items, "n_items", "ImplicitFeedback")
        if len(self.pairs) and self.pairs[:, 1].max() >= self.n_items:
            raise ValueError(f"ImplicitFeedback: an item index {self.pairs[:, 1].max()} is not below n_items={n_items}")
        self.num_negatives = num_negatives
        known = self.pairs if exclude is None else np.concatenate([self.pairs, np.asarray(exclude, np.int64)])
        self._known = np.unique(known[:, 0] * self.n_items + known[:, 1])
        self._rng = np.random.Generator(np.random.PCG64(seed))

    def __len__(self):
        return len(self.pairs) * (1 + self.num_negatives)

    def _sample(self, indices):
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"ImplicitFeedback: index out of range for {len(self)} samples")
        idx = idx % len(self)
        pos, slot = np.divmod(idx, 1 + self.num_negatives)
        users = self.pairs[pos, 0]
        items = self.pairs[pos, 1].copy()
        neg = slot > 0
        todo = np.flatnonzero(neg)
        while todo.size:
            draw = self._rng.integers(0, self.n_items, todo.size)
            codes = users[todo] * self.n_items + draw
            found = np.searchsorted(self._known, codes)
            clash = (found < len(self._known)) & (self._known[np.minimum(found, len(self._known) - 1)] == codes)
            items[todo[~clash]] = draw[~clash]
            todo = todo[clash]
        return users, items, (~neg).astype(np.float32)

    def __getitem__(self, index):
        users, items, labels = self._sample([index])
        return int(users[0]), int(items[0]), float(labels[0])

    def _fetch_batch(self, indices):
        return [from_numpy(a) for a in self._sample(indices)]
