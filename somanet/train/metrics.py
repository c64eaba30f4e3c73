"""Streaming metrics for training and evaluation.

Each metric accumulates over batches with ``update(preds, target)``, gives its value with
``compute()`` and starts over with ``reset()``, so an epoch's value is exact over the whole epoch
(not an average of batch averages). Names and arguments follow torchmetrics, the metrics library
of the PyTorch/Lightning world: ``Accuracy(top_k=5)``, ``F1Score(average="macro")``, ...

``preds`` may be class scores ``(N, C)`` (logits or probabilities; ``(N, ..., C)`` for sequences),
predicted labels ``(N,)``, or for binary tasks probabilities ``(N,)`` in [0, 1]; ``target`` holds
integer labels ``(N,)``. Regression metrics take values of any matching shape.

Sums are accumulated in float64 on purpose: a float32 running sum over many batches loses digits,
and the results are returned as Python floats (or float64 arrays for per-class values).
"""
import copy
import math
import re

import numpy as np

from ..autograd.tensor import Tensor

__all__ = ["Metric", "Accuracy", "Precision", "Recall", "F1Score", "ConfusionMatrix", "MeanSquaredError",
           "MeanAbsoluteError", "R2Score", "Perplexity", "MeanMetric", "get_metric", "METRIC_NAMES",
           "BLEUScore", "ExactMatch", "bleu_score", "sentence_bleu", "exact_match",
           "JaccardIndex", "PixelAccuracy", "jaccard_index", "pixel_accuracy", "hit_rate_at_k", "ndcg_at_k"]


def _np(x, what):
    if isinstance(x, Tensor):
        return x.array
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple, int, float, np.generic)):
        return np.asarray(x)
    raise TypeError(f"metrics: {what} must be a Tensor or array, got {type(x).__name__}")


class Metric:
    """Base class of a streaming metric.

    Subclasses define ``reset``, ``update`` and ``compute``, keep their state in attributes listed
    in ``_state_names`` (so ``state_dict`` can save them for an exact resume), and set ``name``
    (the key it is logged under) and ``higher_is_better``.
    """

    name = "metric"
    higher_is_better = True
    _state_names = ()

    def __init__(self):
        self.reset()

    def reset(self):
        """Forget everything accumulated so far."""
        raise NotImplementedError

    def update(self, preds, target):
        """Accumulate one batch of predictions and targets."""
        raise NotImplementedError

    def compute(self):
        """The metric over everything accumulated since the last ``reset``."""
        raise NotImplementedError

    def __call__(self, preds, target):
        """Update with one batch and return the metric of that batch alone (state is kept)."""
        fresh = copy.copy(self)
        fresh.reset()
        fresh.update(preds, target)
        self.update(preds, target)
        return fresh.compute()

    def state_dict(self):
        """The accumulated state (arrays and numbers), for checkpoints."""
        return {k: getattr(self, k) for k in self._state_names}

    def load_state_dict(self, state):
        """Restore what ``state_dict`` returned."""
        for k in self._state_names:
            setattr(self, k, state[k])

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


def _labels_and_scores(preds, target, owner):
    """Split ``preds`` into predicted labels, with a check of the shapes against ``target``."""
    preds = _np(preds, "preds")
    target = _np(target, "target")
    if preds.ndim == target.ndim + 1:
        return preds, target, "scores"
    if preds.shape != target.shape:
        raise ValueError(f"{owner}: preds has shape {preds.shape} and target {target.shape}; expected class "
                         f"scores of shape target.shape + (C,) or labels of shape target.shape")
    if preds.dtype.kind == "f":
        return preds, target, "probabilities"
    return preds, target, "labels"


def _predicted_labels(preds, kind, threshold=0.5):
    if kind == "scores":
        return preds.argmax(axis=-1)
    if kind == "probabilities":
        return (preds >= threshold).astype(np.int64)
    return preds


class Accuracy(Metric):
    """Fraction of correct predictions; with ``top_k`` a hit is the target among the k best scores.

    Args:
        top_k: how many of the highest scores count as a hit (needs class scores).
        threshold: for binary probabilities ``(N,)``: the cut between class 0 and 1.
        ignore_index: a target value to leave out (e.g. padding).
        name: the log key; ``"accuracy"`` or ``"top{k}_accuracy"`` by default.
    """

    _state_names = ("correct", "total")

    def __init__(self, top_k=1, threshold=0.5, ignore_index=None, name=None):
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"Accuracy: top_k must be a positive int, got {top_k!r}")
        self.top_k = top_k
        self.threshold = threshold
        self.ignore_index = ignore_index
        self.name = name or ("accuracy" if top_k == 1 else f"top{top_k}_accuracy")
        super().__init__()

    def reset(self):
        self.correct = 0
        self.total = 0

    def update(self, preds, target):
        preds, target, kind = _labels_and_scores(preds, target, "Accuracy")
        if self.top_k > 1:
            if kind != "scores":
                raise ValueError(f"Accuracy(top_k={self.top_k}) needs class scores of shape (N, C); got preds "
                                 f"of shape {preds.shape} for target {target.shape}")
            if preds.shape[-1] < self.top_k:
                raise ValueError(f"Accuracy(top_k={self.top_k}): only {preds.shape[-1]} classes in preds")
            top = np.argpartition(preds, -self.top_k, axis=-1)[..., -self.top_k:]
            hit = (top == target[..., None]).any(axis=-1)
        else:
            hit = _predicted_labels(preds, kind, self.threshold) == target
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            self.correct += int(np.count_nonzero(hit & keep))
            self.total += int(np.count_nonzero(keep))
        else:
            self.correct += int(np.count_nonzero(hit))
            self.total += hit.size

    def compute(self):
        return self.correct / self.total if self.total else float("nan")


class ConfusionMatrix(Metric):
    """Counts ``C[true, predicted]`` as an int64 array of shape ``(num_classes, num_classes)``.

    Args:
        num_classes: the number of classes; ``None`` infers it from the scores' last dimension or
            grows with the largest label seen.
        threshold: for binary probabilities.
        ignore_index: a target value to leave out.
    """

    name = "confusion_matrix"
    _state_names = ("matrix",)

    def __init__(self, num_classes=None, threshold=0.5, ignore_index=None, name=None):
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(f"{type(self).__name__}: num_classes must be a positive int or None, got {num_classes!r}")
        self.num_classes = num_classes
        self.threshold = threshold
        self.ignore_index = ignore_index
        if name:
            self.name = name
        super().__init__()

    def reset(self):
        n = self.num_classes or 0
        self.matrix = np.zeros((n, n), dtype=np.int64)

    def _grow(self, n):
        if n > self.matrix.shape[0]:
            bigger = np.zeros((n, n), dtype=np.int64)
            k = self.matrix.shape[0]
            bigger[:k, :k] = self.matrix
            self.matrix = bigger

    def update(self, preds, target):
        preds, target, kind = _labels_and_scores(preds, target, type(self).__name__)
        labels = _predicted_labels(preds, kind, self.threshold).reshape(-1).astype(np.int64)
        target = target.reshape(-1).astype(np.int64)
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            labels, target = labels[keep], target[keep]
        if target.size and (target.min() < 0 or labels.min() < 0):
            raise ValueError(f"{type(self).__name__}: labels must be non-negative, got min target "
                             f"{target.min()} and min prediction {labels.min()}")
        n = self.num_classes
        if n is None:
            seen = max(int(target.max()) + 1 if target.size else 0, int(labels.max()) + 1 if labels.size else 0)
            n = max(seen, preds.shape[-1] if kind == "scores" else 0, 2 if kind == "probabilities" else 0)
            self._grow(n)
            n = self.matrix.shape[0]
        elif target.size and (target.max() >= n or labels.max() >= n):
            raise ValueError(f"{type(self).__name__}(num_classes={n}): got a label "
                             f"{max(int(target.max()), int(labels.max()))} outside [0, {n - 1}]")
        self.matrix += np.bincount(target * n + labels, minlength=n * n).reshape(n, n)

    def compute(self):
        return self.matrix.copy()


class _FromConfusion(ConfusionMatrix):
    """Precision, recall and F1 from a streaming confusion matrix."""

    _average_choices = ("macro", "micro", "weighted", "none", None)

    def __init__(self, num_classes=None, average="macro", threshold=0.5, ignore_index=None, name=None):
        if average not in self._average_choices:
            raise ValueError(f"{type(self).__name__}: average must be one of 'macro', 'micro', 'weighted', "
                             f"'none' or None, got {average!r}")
        self.average = "none" if average is None else average
        base = self._base_name
        default = base if self.average == "macro" else (f"{base}_per_class" if self.average == "none"
                                                         else f"{base}_{self.average}")
        super().__init__(num_classes, threshold, ignore_index, name or default)

    def _per_class(self, m):
        raise NotImplementedError

    def compute(self):
        m = self.matrix.astype(np.float64)
        if self.average == "micro":
            # Every prediction is one true or false positive, so micro precision, recall and F1 all
            # equal accuracy in single-label classification.
            total = m.sum()
            return float(np.trace(m) / total) if total else float("nan")
        per_class = self._per_class(m)
        if self.average == "none":
            return per_class
        if self.average == "weighted":
            support = m.sum(axis=1)
            return float((per_class * support).sum() / support.sum()) if support.sum() else float("nan")
        return float(per_class.mean()) if per_class.size else float("nan")


def _ratio(num, den):
    # Classes with no predictions (or no samples) score 0, as scikit-learn's zero_division default.
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


class Precision(_FromConfusion):
    """Of the samples predicted as a class, the fraction that belong to it; macro-averaged by default.

    ``average``: ``"macro"`` (mean over classes), ``"micro"``, ``"weighted"`` (by support) or
    ``"none"`` (a per-class array, logged as ``precision_per_class``).
    """

    _base_name = "precision"

    def _per_class(self, m):
        return _ratio(np.diag(m), m.sum(axis=0))


class Recall(_FromConfusion):
    """Of the samples of a class, the fraction predicted as it; macro-averaged by default."""

    _base_name = "recall"

    def _per_class(self, m):
        return _ratio(np.diag(m), m.sum(axis=1))


class F1Score(_FromConfusion):
    """The harmonic mean of precision and recall per class; macro-averaged by default."""

    _base_name = "f1"

    def _per_class(self, m):
        tp = np.diag(m)
        return _ratio(2 * tp, m.sum(axis=0) + m.sum(axis=1))


class _Regression(Metric):
    higher_is_better = False
    _state_names = ("sum", "count")

    def __init__(self, name=None):
        if name:
            self.name = name
        super().__init__()

    def reset(self):
        self.sum = 0.0
        self.count = 0

    def _pair(self, preds, target):
        preds = _np(preds, "preds")
        target = _np(target, "target")
        if preds.shape != target.shape:
            if preds.size == target.size:
                preds = preds.reshape(target.shape)
            else:
                raise ValueError(f"{type(self).__name__}: preds has shape {preds.shape} but target has shape "
                                 f"{target.shape}; expected the same shape")
        return preds.astype(np.float64), target.astype(np.float64)

    def compute(self):
        return self.sum / self.count if self.count else float("nan")


class MeanSquaredError(_Regression):
    """Mean of the squared errors over every element seen; its square root (RMSE, logged as
    ``"rmse"``) with ``squared=False``, as in torchmetrics."""

    name = "mse"

    def __init__(self, squared=True, name=None):
        self.squared = bool(squared)
        if not self.squared and not name:
            name = "rmse"
        super().__init__(name)

    def update(self, preds, target):
        p, t = self._pair(preds, target)
        d = p - t
        self.sum += float(np.dot(d.ravel(), d.ravel()))
        self.count += d.size

    def compute(self):
        mse = super().compute()
        return mse if self.squared else math.sqrt(mse)


class MeanAbsoluteError(_Regression):
    """Mean of the absolute errors over every element seen."""

    name = "mae"

    def update(self, preds, target):
        p, t = self._pair(preds, target)
        self.sum += float(np.abs(p - t).sum())
        self.count += p.size


class R2Score(_Regression):
    """Coefficient of determination, ``1 - SS_res / SS_tot``; the mean over outputs for 2-D targets.

    Computed from running sums, so it is exact over the whole epoch.
    """

    name = "r2"
    higher_is_better = True
    _state_names = ("n", "sum_t", "sum_t2", "sum_res")

    def reset(self):
        self.n = 0
        self.sum_t = 0.0
        self.sum_t2 = 0.0
        self.sum_res = 0.0

    def update(self, preds, target):
        p, t = self._pair(preds, target)
        if t.ndim <= 1:
            p, t = p.reshape(-1, 1), t.reshape(-1, 1)
        else:
            p, t = p.reshape(t.shape[0], -1), t.reshape(t.shape[0], -1)
        self.n += t.shape[0]
        self.sum_t = self.sum_t + t.sum(axis=0)
        self.sum_t2 = self.sum_t2 + (t * t).sum(axis=0)
        self.sum_res = self.sum_res + ((t - p) ** 2).sum(axis=0)

    def compute(self):
        if self.n < 2:
            return float("nan")
        ss_tot = np.asarray(self.sum_t2 - self.sum_t ** 2 / self.n, dtype=np.float64)
        ss_res = np.asarray(self.sum_res, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0),
                          np.where(ss_res == 0, 1.0, 0.0))
        return float(r2.mean())


class Perplexity(Metric):
    """``exp`` of the mean negative log-likelihood of the targets under ``preds`` (logits).

    Args:
        ignore_index: a target value to leave out (e.g. padding).

    ``preds`` are unnormalised scores ``(N, C)`` or ``(N, T, C)``; ``target`` class indices ``(N,)``
    or ``(N, T)``.
    """

    name = "perplexity"
    higher_is_better = False
    _state_names = ("nll", "count")

    def __init__(self, ignore_index=None, name=None):
        self.ignore_index = ignore_index
        if name:
            self.name = name
        super().__init__()

    def reset(self):
        self.nll = 0.0
        self.count = 0

    def update(self, preds, target):
        preds = _np(preds, "preds")
        target = _np(target, "target")
        if preds.ndim != target.ndim + 1 or preds.shape[:-1] != target.shape:
            raise ValueError(f"Perplexity: expected logits of shape target.shape + (C,), got preds {preds.shape} "
                             f"and target {target.shape}")
        logits = preds.reshape(-1, preds.shape[-1])
        t = target.reshape(-1).astype(np.int64)
        if self.ignore_index is not None:
            keep = t != self.ignore_index
            logits, t = logits[keep], t[keep]
        if t.size == 0:
            return
        if t.min() < 0 or t.max() >= logits.shape[-1]:
            raise ValueError(f"Perplexity: target indices must be in [0, {logits.shape[-1] - 1}], got "
                             f"[{t.min()}, {t.max()}]")
        m = logits.max(axis=-1, keepdims=True)
        lse = np.log(np.exp(logits - m).sum(axis=-1)) + m[:, 0]
        picked = logits[np.arange(t.size), t]
        self.nll += float((lse - picked).astype(np.float64).sum())
        self.count += t.size

    def compute(self):
        return math.exp(self.nll / self.count) if self.count else float("nan")


class MeanMetric(Metric):
    """A weighted running mean of values: ``update(value, weight=1)``. Used for losses and extra logs."""

    _state_names = ("sum", "weight")

    def __init__(self, name="mean"):
        self.name = name
        super().__init__()

    def reset(self):
        self.sum = 0.0
        self.weight = 0.0

    def update(self, value, weight=1.0):
        self.sum += float(value) * weight
        self.weight += weight

    def compute(self):
        return self.sum / self.weight if self.weight else float("nan")


_FACTORIES = {
    "accuracy": lambda: Accuracy(),
    "acc": lambda: Accuracy(),
    "precision": lambda: Precision(),
    "recall": lambda: Recall(),
    "f1": lambda: F1Score(),
    "f1_score": lambda: F1Score(),
    "precision_per_class": lambda: Precision(average="none"),
    "recall_per_class": lambda: Recall(average="none"),
    "f1_per_class": lambda: F1Score(average="none"),
    "confusion_matrix": lambda: ConfusionMatrix(),
    "mse": lambda: MeanSquaredError(),
    "mae": lambda: MeanAbsoluteError(),
    "rmse": lambda: MeanSquaredError(squared=False),
    "r2": lambda: R2Score(),
    "perplexity": lambda: Perplexity(),
}

#: Names accepted by ``get_metric`` (plus ``top{k}_accuracy`` for any k).
METRIC_NAMES = tuple(sorted(_FACTORIES)) + ("top{k}_accuracy",)


def get_metric(spec):
    """A ``Metric`` from a name (``"accuracy"``, ``"top5_accuracy"``, ``"f1"``, ``"r2"``, ...) or a Metric.

    A plain callable ``fn(preds, target) -> float`` is wrapped as a batch-size-weighted mean named
    after the function.
    """
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        key = spec.lower()
        if key in _FACTORIES:
            return _FACTORIES[key]()
        match = re.fullmatch(r"top_?(\d+)_acc(uracy)?", key)
        if match:
            return Accuracy(top_k=int(match.group(1)))
        raise ValueError(f"unknown metric {spec!r}; known metrics: {', '.join(METRIC_NAMES)}")
    if callable(spec):
        return _FunctionMetric(spec)
    raise TypeError(f"a metric must be a name, a Metric or a function (preds, target) -> float; "
                    f"got {type(spec).__name__}")


class _FunctionMetric(MeanMetric):
    def __init__(self, fn):
        self.fn = fn
        super().__init__(getattr(fn, "__name__", "metric"))

    def update(self, preds, target):
        n = len(_np(target, "target"))
        super().update(float(self.fn(preds, target)), n)


# --------------------------------------------------------------------------- text generation
# BLEU (Papineni et al., 2002) and exact match compare token sequences, not score arrays: they take
# strings (split on whitespace unless a tokenizer is given) or sequences of tokens.
_BLEU_SMOOTHING = (False, True, "floor", "add-k", "exp")


def _tokens(text, tokenizer, what):
    if isinstance(text, str):
        return list(tokenizer(text)) if tokenizer is not None else text.split()
    if isinstance(text, Tensor):
        text = text.array
    if isinstance(text, np.ndarray):
        text = text.tolist()
    if isinstance(text, (list, tuple)):
        return list(text)
    raise TypeError(f"BLEU: {what} must be a string or a sequence of tokens, got {type(text).__name__}")


def _references(refs, pred_is_text, tokenizer, i):
    if isinstance(refs, (str, np.ndarray, Tensor)):
        refs = [refs]
    elif not pred_is_text and refs and all(not isinstance(r, (list, tuple, np.ndarray, Tensor)) for r in refs):
        refs = [refs]  # the tokens of one reference, given directly
    if not refs:
        raise ValueError(f"BLEU: prediction {i} has no reference")
    return [_tokens(r, tokenizer, f"reference of prediction {i}") for r in refs]


def _ngram_counts(tokens, n):
    counts = {}
    for j in range(len(tokens) - n + 1):
        key = tuple(tokens[j:j + n])
        counts[key] = counts.get(key, 0) + 1
    return counts


def _bleu_statistics(pred, refs, n_gram):
    """Clipped n-gram matches and n-gram totals (orders 1..n_gram), the prediction's length and the
    closest reference length (ties go to the shorter reference)."""
    matches, totals = np.zeros(n_gram), np.zeros(n_gram)
    for n in range(1, n_gram + 1):
        hyp = _ngram_counts(pred, n)
        most = {}
        for ref in refs:
            for key, c in _ngram_counts(ref, n).items():
                if c > most.get(key, 0):
                    most[key] = c
        matches[n - 1] = sum(min(c, most.get(key, 0)) for key, c in hyp.items())
        totals[n - 1] = max(len(pred) - n + 1, 0)
    ref_len = min((abs(len(r) - len(pred)), len(r)) for r in refs)[1]
    return matches, totals, len(pred), ref_len


def _check_bleu_args(n_gram, smooth, weights, owner):
    if isinstance(n_gram, bool) or not isinstance(n_gram, int) or n_gram < 1:
        raise ValueError(f"{owner}: n_gram must be an int >= 1, got {n_gram!r}")
    if not any(smooth is s or (isinstance(s, str) and smooth == s) for s in _BLEU_SMOOTHING):
        raise ValueError(f"{owner}: smooth must be False, True (add-one), 'floor', 'add-k' or 'exp', got {smooth!r}")
    if weights is None:
        return np.full(n_gram, 1.0 / n_gram)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n_gram,):
        raise ValueError(f"{owner}: weights must hold n_gram={n_gram} values, got {weights.shape[0] if weights.ndim else 0}")
    return weights


def _bleu_from_statistics(matches, totals, pred_len, ref_len, weights, smooth, epsilon=0.1, k=1.0):
    matches, totals = np.asarray(matches, np.float64).copy(), np.asarray(totals, np.float64).copy()
    if pred_len == 0:
        return 0.0
    if smooth is True or smooth == "add-k":
        matches[1:] += k
        totals[1:] += k
    precisions = np.zeros(len(matches))
    doubling = 1.0
    for n in range(len(matches)):
        if matches[n] > 0:
            precisions[n] = matches[n] / totals[n]
        elif smooth == "floor":
            precisions[n] = epsilon / max(totals[n], 1.0)
        elif smooth == "exp":
            doubling *= 2.0
            precisions[n] = 1.0 / (doubling * max(totals[n], 1.0))
    used = weights > 0
    if np.any(precisions[used] == 0):
        return 0.0
    log_precision = float(np.sum(weights[used] * np.log(precisions[used])))
    brevity = 1.0 if pred_len > ref_len else math.exp(1.0 - ref_len / pred_len)
    return brevity * math.exp(log_precision)


def bleu_score(preds, target, n_gram=4, smooth=False, weights=None, tokenizer=None):
    """Corpus BLEU (Papineni et al., 2002) of ``preds`` against ``target``, in [0, 1].

    Clipped n-gram counts (each n-gram counts at most as often as in the reference where it is most
    frequent) and prediction lengths are summed over the corpus; BLEU is
    ``BP * exp(sum_n w_n log p_n)`` with ``p_n`` the corpus n-gram precisions and the brevity penalty
    ``BP = min(1, exp(1 - r / c))`` (``c`` the total prediction length, ``r`` the total of each
    prediction's closest reference length, ties to the shorter one).

    Args:
        preds: predictions, each a string (split on whitespace) or a sequence of tokens.
        target: per prediction its references: a list of strings / token sequences, or one string.
        n_gram: the highest n-gram order (4 for BLEU-4).
        weights: one weight per order (uniform ``1 / n_gram`` by default).
        smooth: ``False`` (a zero precision gives BLEU 0, as in Papineni); ``True`` or ``"add-k"``: add
            one to the matches and totals of orders 2 and up (Lin and Och, 2004; NLTK's method 2,
            torchmetrics' ``smooth=True``, sacreBLEU's ``add-k``); ``"floor"``: a zero match count
            becomes 0.1 (NLTK's method 1, sacreBLEU's ``floor``); ``"exp"``: the k-th zero precision
            becomes ``1 / (2^k total)`` (NLTK's method 3, sacreBLEU's default ``exp``).
        tokenizer: a function ``str -> tokens`` for string inputs (``list`` gives characters).

    >>> round(bleu_score(["the cat is on the mat"], [["the cat is on the mat", "a cat"]]), 4)
    1.0
    """
    weights = _check_bleu_args(n_gram, smooth, weights, "bleu_score")
    metric = BLEUScore(n_gram, smooth, weights, tokenizer)
    metric.update(preds, target)
    return metric.compute()


def sentence_bleu(pred, references, n_gram=4, smooth=False, weights=None, tokenizer=None):
    """BLEU of one prediction against its references (``bleu_score`` of a one-sentence corpus)."""
    return bleu_score([pred], [references], n_gram, smooth, weights, tokenizer)


def exact_match(preds, target):
    """Fraction of predictions equal to their target (strings, or token sequences compared element-wise)."""
    metric = ExactMatch()
    metric.update(preds, target)
    return metric.compute()


class BLEUScore(Metric):
    """Streaming corpus BLEU: ``update(preds, target)`` adds a batch of predictions and references;
    ``compute()`` gives ``bleu_score`` over everything seen. Arguments as ``bleu_score``."""

    name = "bleu"
    _state_names = ("matches", "totals", "pred_len", "ref_len")

    def __init__(self, n_gram=4, smooth=False, weights=None, tokenizer=None, name=None):
        self.weights = _check_bleu_args(n_gram, smooth, weights, "BLEUScore")
        self.n_gram, self.smooth, self.tokenizer = n_gram, smooth, tokenizer
        if name:
            self.name = name
        super().__init__()

    def reset(self):
        self.matches = np.zeros(self.n_gram)
        self.totals = np.zeros(self.n_gram)
        self.pred_len = 0
        self.ref_len = 0

    def update(self, preds, target):
        if isinstance(preds, str):
            raise TypeError("BLEUScore: preds must be a list of predictions, got one string; wrap it in a list")
        preds, target = list(preds), list(target)
        if len(preds) != len(target):
            raise ValueError(f"BLEUScore: {len(preds)} predictions but {len(target)} reference lists")
        for i, (pred, refs) in enumerate(zip(preds, target)):
            hyp = _tokens(pred, self.tokenizer, f"prediction {i}")
            m, t, c, r = _bleu_statistics(hyp, _references(refs, isinstance(pred, str), self.tokenizer, i),
                                          self.n_gram)
            self.matches += m
            self.totals += t
            self.pred_len += c
            self.ref_len += r

    def compute(self):
        return _bleu_from_statistics(self.matches, self.totals, self.pred_len, self.ref_len, self.weights, self.smooth)


class ExactMatch(Metric):
    """Fraction of predictions exactly equal to their targets (strings or token sequences)."""

    name = "exact_match"
    _state_names = ("correct", "total")

    def reset(self):
        self.correct = 0
        self.total = 0

    def update(self, preds, target):
        if isinstance(preds, str) or isinstance(target, str):
            raise TypeError("ExactMatch: preds and target must be lists of predictions, not one string")
        preds, target = list(preds), list(target)
        if len(preds) != len(target):
            raise ValueError(f"ExactMatch: {len(preds)} predictions but {len(target)} targets")
        for p, t in zip(preds, target):
            same = (p == t) if isinstance(p, str) or isinstance(t, str) else \
                _tokens(p, None, "prediction") == _tokens(t, None, "target")
            self.correct += int(same)
            self.total += 1

    def compute(self):
        return self.correct / self.total if self.total else float("nan")


# --------------------------------------------------------------------------- segmentation
# Dense predictions follow PyTorch's layout: class scores (N, C, ...) with the classes in dim 1 (as
# torchmetrics' segmentation metrics take them), or predicted labels of the target's shape (N, ...).
def _dense_labels(preds, target, owner):
    preds = _np(preds, "preds")
    target = _np(target, "target")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{owner}: target must hold integer class labels, got dtype {target.dtype}")
    if preds.ndim == target.ndim + 1 and preds.ndim >= 2 and preds.shape[:1] + preds.shape[2:] == target.shape:
        return preds.argmax(axis=1), target, preds.shape[1]
    if preds.shape == target.shape:
        if preds.dtype.kind not in "iu":
            raise TypeError(f"{owner}: preds of the target's shape must be integer labels, got dtype {preds.dtype}")
        return preds, target, None
    raise ValueError(f"{owner}: preds has shape {preds.shape} and target {target.shape}; expected class scores "
                     f"(N, C, ...) with target (N, ...), or labels of the target's shape")


class JaccardIndex(Metric):
    """Intersection over union per class (``tp / (tp + fp + fn)``), streamed over batches; the mean
    over classes is the mean IoU of semantic segmentation.

    Follows torchmetrics' ``JaccardIndex(task="multiclass")``: ``average="macro"`` averages the classes
    whose union is not empty (a class absent from both targets and predictions is left out; a class
    predicted but absent from the targets counts with IoU 0), ``"micro"`` pools the counts of all
    classes, ``"weighted"`` weights by the number of target pixels, ``"none"`` / ``None`` gives the
    per-class array (0 for a class with an empty union). Pixels whose target is ``ignore_index`` are
    left out, and that class is left out of the macro mean.

    Args:
        num_classes: the number of classes (labels ``0 .. num_classes - 1``).
        average: ``"macro"`` (default), ``"micro"``, ``"weighted"``, ``"none"`` or None.
        ignore_index: a target value to leave out.
        name: the log key; ``"mean_iou"`` (``"iou_per_class"`` for per-class values) by default.
    """

    _state_names = ("matrix",)

    def __init__(self, num_classes, average="macro", ignore_index=None, name=None):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"JaccardIndex: num_classes must be a positive int, got {num_classes!r}")
        if average not in ("macro", "micro", "weighted", "none", None):
            raise ValueError(f"JaccardIndex: average must be one of 'macro', 'micro', 'weighted', 'none' or None, "
                             f"got {average!r}")
        self.num_classes = num_classes
        self.average = "none" if average is None else average
        self.ignore_index = ignore_index
        self.name = name or ("iou_per_class" if self.average == "none" else
                             "mean_iou" if self.average == "macro" else f"iou_{self.average}")
        super().__init__()

    def reset(self):
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, preds, target):
        labels, target, classes = _dense_labels(preds, target, "JaccardIndex")
        n = self.num_classes
        if classes is not None and classes != n:
            raise ValueError(f"JaccardIndex(num_classes={n}): preds has {classes} class scores in dim 1")
        labels = labels.reshape(-1).astype(np.int64)
        target = target.reshape(-1).astype(np.int64)
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            labels, target = labels[keep], target[keep]
        if target.size:
            lo, hi = min(target.min(), labels.min()), max(target.max(), labels.max())
            if lo < 0 or hi >= n:
                raise ValueError(f"JaccardIndex(num_classes={n}): got a label {lo if lo < 0 else hi} outside "
                                 f"[0, {n - 1}]")
        self.matrix += np.bincount(target * n + labels, minlength=n * n).reshape(n, n)

    def compute(self):
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        union = m.sum(axis=0) + m.sum(axis=1) - tp
        if self.average == "micro":
            return float(tp.sum() / union.sum()) if union.sum() else float("nan")
        iou = _ratio(tp, union)
        if self.average == "none":
            return iou
        if self.average == "weighted":
            weights = m.sum(axis=1)
        else:
            weights = (union > 0).astype(np.float64)
        if self.ignore_index is not None and 0 <= self.ignore_index < self.num_classes:
            weights[self.ignore_index] = 0.0
        return float((weights * iou).sum() / weights.sum()) if weights.sum() else float("nan")


class PixelAccuracy(Metric):
    """Fraction of pixels (elements) whose predicted class equals the target, over all images seen:
    torchmetrics' ``Accuracy(task="multiclass", average="micro")`` on dense predictions.

    Args:
        ignore_index: a target value to leave out.
        name: the log key (``"pixel_accuracy"``).
    """

    _state_names = ("correct", "total")

    def __init__(self, ignore_index=None, name="pixel_accuracy"):
        self.ignore_index = ignore_index
        self.name = name
        super().__init__()

    def reset(self):
        self.correct = 0
        self.total = 0

    def update(self, preds, target):
        labels, target, _ = _dense_labels(preds, target, "PixelAccuracy")
        keep = np.ones(target.shape, bool) if self.ignore_index is None else target != self.ignore_index
        self.correct += int(np.count_nonzero((labels == target) & keep))
        self.total += int(np.count_nonzero(keep))

    def compute(self):
        return self.correct / self.total if self.total else float("nan")


def jaccard_index(preds, target, num_classes, average="macro", ignore_index=None):
    """The ``JaccardIndex`` of one set of dense predictions (class scores ``(N, C, ...)`` or labels)."""
    metric = JaccardIndex(num_classes, average, ignore_index)
    metric.update(preds, target)
    return metric.compute()


def pixel_accuracy(preds, target, ignore_index=None):
    """The ``PixelAccuracy`` of one set of dense predictions (class scores ``(N, C, ...)`` or labels)."""
    metric = PixelAccuracy(ignore_index)
    metric.update(preds, target)
    return metric.compute()


# --------------------------------------------------------------------------- ranking
def _positive_ranks(scores, target, k, owner):
    scores = np.asarray(_np(scores, "scores"), dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"{owner}: scores must be (N, M) with M >= 2 candidates per row, got shape {scores.shape}")
    target = np.broadcast_to(np.asarray(_np(target, "target")), (scores.shape[0],))
    if target.dtype.kind not in "iu" or target.min(initial=0) < 0 or target.max(initial=0) >= scores.shape[1]:
        raise ValueError(f"{owner}: target must hold the column of each row's positive, integers in "
                         f"[0, {scores.shape[1] - 1}]; got {target.dtype} values")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{owner}: k must be a positive int, got {k!r}")
    if not np.isfinite(scores).all():
        raise ValueError(f"{owner}: scores hold NaN or infinite values")
    rows = np.arange(scores.shape[0])
    pos = scores[rows, target]
    # Ties count against the positive, so a constant scorer ranks it last, not first.
    return (scores >= pos[:, None]).sum(axis=1) - 1


def hit_rate_at_k(scores, target=0, k=10):
    """Hit rate at ``k`` (HR@k) of the leave-one-out protocol of He et al. (2017): the fraction of rows
    whose positive item is among the ``k`` highest-scored candidates.

    Args:
        scores: ``(N, M)`` scores of each user's ``M`` candidates (the held-out item and sampled
            negatives).
        target: the column of each row's positive, an int or ``(N,)`` ints (default 0).
        k: the cut-off.

    A candidate scoring the same as the positive counts as ranked above it (the pessimistic rule).
    """
    return float((_positive_ranks(scores, target, k, "hit_rate_at_k") < k).mean())


def ndcg_at_k(scores, target=0, k=10):
    """Normalised discounted cumulative gain at ``k`` (NDCG@k) with one relevant item per row: the mean
    of ``1 / log2(rank + 2)`` for a positive at 0-based ``rank < k``, 0 otherwise. Arguments and ties
    as ``hit_rate_at_k``."""
    rank = _positive_ranks(scores, target, k, "ndcg_at_k")
    return float(np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0).mean())
