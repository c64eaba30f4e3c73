"""Text-generation and forecasting metrics: BLEU against values computed by hand and NLTK's documented
examples, the smoothing methods, exact match, and RMSE.

The expected values are written out here (NLTK is not a dependency): each hand computation lists the
clipped n-gram matches and totals it uses.
"""
import math

import numpy as np
import pytest

import somanet
from somanet.train.metrics import (BLEUScore, ExactMatch, MeanSquaredError, bleu_score, exact_match, get_metric,
                                   sentence_bleu)

# NLTK's documentation examples (nltk.translate.bleu_score)
HYP1 = ("It is a guide to action which ensures that the military always obeys the commands of the party").split()
REF1A = ("It is a guide to action that ensures that the military will forever heed Party commands").split()
REF1B = ("It is the guiding principle which guarantees the military forces always being under the command of the "
         "Party").split()
REF1C = "It is the practical guide for the army always to heed the directions of the party".split()
HYP2 = "he read the book because he was interested in world history".split()
REF2A = "he was interested in world history because he read the book".split()


def _bleu(matches, totals, c, r, weights=None):
    weights = weights or [1 / len(matches)] * len(matches)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(sum(w * math.log(m / t) for w, m, t in zip(weights, matches, totals)))


def test_bleu_of_nltk_documented_examples():
    # sentence 1 against its three references: clipped matches 17/18 (all but "obeys"; "the" occurs 3 times
    # in hyp1 and 4 times in ref1b, so it is not clipped), 10/17, 7/16 (It is a, is a guide, a guide to,
    # guide to action, ensures that the, that the military, of the party), 4/15; c = 18 and the closest
    # reference length is 18 (ref1b), so BP = 1
    expected1 = _bleu([17, 10, 7, 4], [18, 17, 16, 15], 18, 18)
    assert sentence_bleu(HYP1, [REF1A, REF1B, REF1C]) == pytest.approx(expected1, abs=1e-12)
    assert expected1 == pytest.approx(0.5045666840058485)   # NLTK's sentence_bleu doc: 0.5045...
    # the corpus adds sentence 2 (11/11, 9/10, 6/9, 4/8; length 11 = its reference's): corpus precisions
    # 28/29, 19/27, 13/25, 8/23 with c = r = 29
    expected = _bleu([28, 19, 13, 8], [29, 27, 25, 23], 29, 29)
    assert bleu_score([HYP1, HYP2], [[REF1A, REF1B, REF1C], [REF2A]]) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.5920778868801042)    # NLTK's corpus_bleu doc: 0.5920...
    # strings are split on whitespace
    assert bleu_score([" ".join(HYP2)], [" ".join(REF2A)]) == pytest.approx(_bleu([11, 9, 6, 4], [11, 10, 9, 8],
                                                                                    11, 11))


def test_bleu_clipping_brevity_and_weights():
    # Papineni's example: "the the the the the the the" against "the cat is on the mat": unigram
    # precision clipped to 2/7
    assert bleu_score(["the the the the the the the"], [["the cat is on the mat", "there is a cat on the mat"]],
                      n_gram=1) == pytest.approx(2 / 7)
    # a short hypothesis: "the cat" (c = 2) against a 6-token reference: p1 = p2 = 1, BP = exp(1 - 6/2)
    assert bleu_score(["the cat"], [["the cat is on the mat"]], n_gram=2) == pytest.approx(math.exp(-2.0))
    # the closest reference length (ties to the shorter): c = 3 against lengths 2 and 4 -> r = 2, BP = 1
    assert bleu_score(["a b c"], [["a b", "a b c d"]], n_gram=1) == pytest.approx(1.0)
    # weights: only bigrams count: "a b c d" vs "a b x d": bigram matches 1 of 3
    assert bleu_score(["a b c d"], [["a b x d"]], n_gram=2, weights=[0.0, 1.0]) == pytest.approx(1 / 3)
    # identical sentences score 1; no 4-gram match without smoothing gives 0
    assert bleu_score(["a b c d e"], [["a b c d e"]]) == pytest.approx(1.0)
    assert bleu_score(["a b c d"], [["a b c x"]]) == 0.0


def test_bleu_smoothing_methods_by_hand():
    # "a b c x" vs "a b c d": matches 3/4, 2/3, 1/2, 0/1; c = r = 4
    m, t = [3, 2, 1, 0], [4, 3, 2, 1]
    # add-one on orders 2.. (Lin and Och; torchmetrics smooth=True, NLTK method 2)
    add1 = math.exp(sum(math.log(p) for p in [3 / 4, 3 / 4, 2 / 3, 1 / 2]) / 4)
    assert bleu_score(["a b c x"], [["a b c d"]], smooth=True) == pytest.approx(add1)
    assert bleu_score(["a b c x"], [["a b c d"]], smooth="add-k") == pytest.approx(add1)
    # floor: the zero count becomes 0.1 (NLTK method 1)
    floor = math.exp(sum(math.log(p) for p in [3 / 4, 2 / 3, 1 / 2, 0.1 / 1]) / 4)
    assert bleu_score(["a b c x"], [["a b c d"]], smooth="floor") == pytest.approx(floor)
    # exp: the k-th zero precision becomes 1 / (2^k * total) (NLTK method 3, sacreBLEU's default)
    expo = math.exp(sum(math.log(p) for p in [3 / 4, 2 / 3, 1 / 2, 1 / (2 * 1)]) / 4)
    assert bleu_score(["a b c x"], [["a b c d"]], smooth="exp") == pytest.approx(expo)
    # two zero orders under 'exp': 1/(2 * total) then 1/(4 * total); "a x b y" vs "a b c d": 2/4, 0/3, 0/2, 0/1
    expo2 = math.exp(sum(math.log(p) for p in [2 / 4, 1 / (2 * 3), 1 / (4 * 2), 1 / (8 * 1)]) / 4)
    assert bleu_score(["a x b y"], [["a b c d"]], smooth="exp") == pytest.approx(expo2)
    assert bleu_score(["a b c x"], [["a b c d"]]) == 0.0 == _bleu_or_zero(m, t)


def _bleu_or_zero(matches, totals):
    return 0.0 if 0 in matches else _bleu(matches, totals, 4, 4)


def test_bleu_on_token_ids_characters_and_streaming():
    ids = [np.array([5, 6, 7, 8]), [5, 6, 7, 9]]
    assert bleu_score(ids, [np.array([5, 6, 7, 8]), [[5, 6, 7, 8]]], smooth="floor") == pytest.approx(
        bleu_score(["a b c d", "a b c x"], [["a b c d"], ["a b c d"]], smooth="floor"))
    # character-level BLEU of ISO dates
    assert bleu_score(["1998-03-03"], ["1998-03-03"], tokenizer=list) == pytest.approx(1.0)
    char = bleu_score(["1998-03-04"], ["1998-03-03"], tokenizer=list)
    # 10 characters, one wrong at the end: matches 9/10, 8/9, 7/8, 6/7
    assert char == pytest.approx(_bleu([9, 8, 7, 6], [10, 9, 8, 7], 10, 10))
    metric = BLEUScore()
    metric.update([HYP1], [[REF1A, REF1B, REF1C]])
    metric.update([HYP2], [[REF2A]])
    assert metric.compute() == pytest.approx(0.5920778868801042)
    state = metric.state_dict()
    fresh = BLEUScore()
    fresh.load_state_dict(state)
    assert fresh.compute() == metric.compute()


def test_exact_match_and_errors():
    assert exact_match(["1998-03-03", "2001-01-01"], ["1998-03-03", "2001-01-02"]) == 0.5
    assert exact_match([[1, 2], np.array([3, 4])], [[1, 2], [3, 5]]) == 0.5
    m = ExactMatch()
    m.update(["a"], ["a"])
    assert m.compute() == 1.0
    with pytest.raises(ValueError, match="2 predictions but 1"):
        bleu_score(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="smooth must be"):
        bleu_score(["a"], [["a"]], smooth="nist")
    with pytest.raises(TypeError, match="wrap it in a list"):
        bleu_score("a b", [["a b"]])
    with pytest.raises(ValueError, match="weights must hold n_gram=4"):
        bleu_score(["a"], [["a"]], weights=[1.0])


def test_rmse_matches_numpy_and_torch_definition():
    rng = np.random.default_rng(0)
    p, t = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32)
    rmse = get_metric("rmse")
    assert rmse.name == "rmse" and not rmse.higher_is_better
    rmse.update(somanet.tensor(p[:2]), somanet.tensor(t[:2]))
    rmse.update(p[2:], t[2:])
    expected = math.sqrt(float(((p.astype(np.float64) - t) ** 2).mean()))
    assert rmse.compute() == pytest.approx(expected, rel=1e-12)
    assert MeanSquaredError().name == "mse" and MeanSquaredError(squared=False).name == "rmse"
