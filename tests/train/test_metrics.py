"""Streaming metrics against scikit-learn (and PyTorch for perplexity), fed batch by batch."""
import math

import numpy as np
import pytest
from sklearn import metrics as skm

import somanet
from somanet.train import metrics as M
from reference import torch_or_skip


def _batches(*arrays, size=7):
    n = len(arrays[0])
    for i in range(0, n, size):
        yield tuple(a[i:i + size] for a in arrays)


def _stream(metric, preds, target, size=7):
    metric.reset()
    for p, t in _batches(preds, target, size=size):
        metric.update(p, t)
    return metric.compute()


@pytest.fixture
def cls_data():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((103, 5)).astype(np.float32)
    target = rng.integers(0, 5, size=103)
    # Make the predictions informative so every class has some hits and misses.
    logits[np.arange(103), target] += rng.random(103).astype(np.float32) * 2
    return logits, target


def test_accuracy_and_top_k_match_sklearn(cls_data):
    logits, target = cls_data
    assert _stream(M.Accuracy(), logits, target) == pytest.approx(skm.accuracy_score(target, logits.argmax(1)))
    for k in (2, 3):
        acc = _stream(M.get_metric(f"top{k}_accuracy"), logits, target)
        assert acc == pytest.approx(skm.top_k_accuracy_score(target, logits, k=k, labels=range(5)))
    assert M.Accuracy(top_k=3).name == "top3_accuracy"


def test_accuracy_accepts_tensors_labels_and_binary_probabilities(cls_data):
    logits, target = cls_data
    m = M.Accuracy()
    m.update(somanet.tensor(logits), somanet.tensor(target))
    assert m.compute() == pytest.approx(skm.accuracy_score(target, logits.argmax(1)))
    assert _stream(M.Accuracy(), logits.argmax(1), target) == pytest.approx(m.compute())
    probs = np.array([0.1, 0.9, 0.6, 0.4], dtype=np.float32)
    assert _stream(M.Accuracy(), probs, np.array([0, 1, 0, 0])) == pytest.approx(0.75)


def test_accuracy_ignore_index():
    m = M.Accuracy(ignore_index=-100)
    m.update(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), np.array([0, -100, 1]))
    assert m.compute() == pytest.approx(0.5)


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_precision_recall_f1_match_sklearn(cls_data, average):
    logits, target = cls_data
    pred = logits.argmax(1)
    for cls, fn in ((M.Precision, skm.precision_score), (M.Recall, skm.recall_score), (M.F1Score, skm.f1_score)):
        ours = _stream(cls(average=average), logits, target)
        assert ours == pytest.approx(fn(target, pred, average=average, zero_division=0)), cls.__name__


def test_per_class_scores_and_zero_division():
    target = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 0, 0])  # class 2 never predicted: precision 0, as sklearn
    for cls, fn in ((M.Precision, skm.precision_score), (M.Recall, skm.recall_score), (M.F1Score, skm.f1_score)):
        ours = _stream(cls(average="none", num_classes=3), pred, target, size=4)
        np.testing.assert_allclose(ours, fn(target, pred, average=None, zero_division=0, labels=[0, 1, 2]))
    assert M.F1Score(average=None).name == "f1_per_class"


def test_confusion_matrix_matches_sklearn_and_grows(cls_data):
    logits, target = cls_data
    np.testing.assert_array_equal(_stream(M.ConfusionMatrix(), logits, target),
                                  skm.confusion_matrix(target, logits.argmax(1)))
    m = M.ConfusionMatrix()
    m.update(np.array([0, 1]), np.array([0, 1]))
    m.update(np.array([3]), np.array([2]))  # labels seen later enlarge the matrix
    np.testing.assert_array_equal(m.compute(), skm.confusion_matrix([0, 1, 2], [0, 1, 3], labels=range(4)))
    with pytest.raises(ValueError, match="outside"):
        M.ConfusionMatrix(num_classes=2).update(np.array([2]), np.array([0]))


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(2)
    y = rng.standard_normal((50, 3)).astype(np.float32)
    p = (y + 0.3 * rng.standard_normal((50, 3))).astype(np.float32)
    assert _stream(M.MeanSquaredError(), p, y) == pytest.approx(skm.mean_squared_error(y, p), rel=1e-6)
    assert _stream(M.MeanAbsoluteError(), p, y) == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-6)
    assert _stream(M.R2Score(), p, y) == pytest.approx(skm.r2_score(y, p), rel=1e-6)
    assert _stream(M.R2Score(), p[:, 0], y[:, 0]) == pytest.approx(skm.r2_score(y[:, 0], p[:, 0]), rel=1e-6)
    # (N, 1) predictions against (N,) targets are accepted as the same values.
    assert _stream(M.MeanSquaredError(), p[:, :1], y[:, 0]) == pytest.approx(skm.mean_squared_error(y[:, 0], p[:, 0]),
                                                                            rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        M.MeanSquaredError().update(p, y[:, :2])


def test_perplexity_matches_torch_cross_entropy():
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((4, 6, 11)).astype(np.float32) * 3
    target = rng.integers(0, 11, size=(4, 6))
    target[0, :2] = -100
    ours = _stream(M.Perplexity(ignore_index=-100), logits, target, size=2)
    ce = torch.nn.functional.cross_entropy(torch.tensor(logits).reshape(-1, 11), torch.tensor(target).reshape(-1),
                                           ignore_index=-100)
    assert ours == pytest.approx(math.exp(ce.item()), rel=1e-5)
    with pytest.raises(ValueError, match=r"target indices must be in \[0, 10\]"):
        M.Perplexity().update(logits, np.full((4, 6), 11))


def test_state_dict_round_trip_mid_stream(cls_data):
    logits, target = cls_data
    a = M.F1Score()
    a.update(logits[:50], target[:50])
    b = M.F1Score()
    b.load_state_dict(a.state_dict())
    a.update(logits[50:], target[50:])
    b.update(logits[50:], target[50:])
    assert a.compute() == b.compute()


def test_call_returns_batch_value_and_keeps_state(cls_data):
    logits, target = cls_data
    m = M.Accuracy()
    first = m(logits[:10], target[:10])
    assert first == pytest.approx(skm.accuracy_score(target[:10], logits[:10].argmax(1)))
    m(logits[10:], target[10:])
    assert m.compute() == pytest.approx(skm.accuracy_score(target, logits.argmax(1)))


def test_get_metric_errors_and_shapes():
    with pytest.raises(ValueError, match="unknown metric 'acuracy'; known metrics: .*accuracy"):
        M.get_metric("acuracy")
    with pytest.raises(TypeError, match="got int"):
        M.get_metric(3)
    with pytest.raises(ValueError, match=r"preds has shape \(4, 2, 3\) and target \(4,\)"):
        M.Accuracy().update(np.zeros((4, 2, 3)), np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="needs class scores"):
        M.Accuracy(top_k=2).update(np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.int64))
    assert math.isnan(M.Accuracy().compute())


def test_function_metric_is_a_sample_weighted_mean():
    def max_logit(preds, target):
        return float(np.asarray(preds).max(axis=1).mean())

    m = M.get_metric(max_logit)
    assert m.name == "max_logit"
    m.update(np.array([[1.0], [3.0]]), np.array([0, 0]))
    m.update(np.array([[5.0]]), np.array([0]))
    assert m.compute() == pytest.approx(3.0)
