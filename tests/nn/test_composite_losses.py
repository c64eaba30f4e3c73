"""Margin, ranking, embedding and likelihood losses against PyTorch: values and gradients."""
import numpy as np
import pytest

import somanet
import somanet.nn.functional as F
from reference import assert_close, torch_or_skip

rng = np.random.default_rng(0)
X1 = rng.standard_normal((5, 4)).astype(np.float32)
X2 = rng.standard_normal((5, 4)).astype(np.float32)
X3 = rng.standard_normal((5, 4)).astype(np.float32)
SIGN = np.array([1, -1, 1, -1, -1], dtype=np.float32)
LABELS = np.array([2, 0, 3, 1, 3])
MULTI = (rng.random((5, 4)) > 0.5).astype(np.float32)
LABEL_LISTS = np.array([[3, 0, -1, 1], [1, -1, 0, 0], [0, 1, 2, 3], [2, -1, 0, 0], [-1, 0, 0, 0]])
COUNTS = rng.poisson(2.0, (5, 4)).astype(np.float32)
VAR = (rng.random((5, 4)) + 0.1).astype(np.float32)

CASES = {
    "cosine_embedding_loss": (lambda f, a, b, c: f.cosine_embedding_loss(a, b, c, margin=0.2), [X1, X2], [SIGN]),
    "margin_ranking_loss": (lambda f, a, b, c: f.margin_ranking_loss(a[:, 0], b[:, 0], c, margin=0.3),
                            [X1, X2], [SIGN]),
    "triplet_margin_loss": (lambda f, a, b, c: f.triplet_margin_loss(a, b, c, margin=0.5), [X1, X2, X3], []),
    "triplet_margin_loss_swap_p1": (lambda f, a, b, c: f.triplet_margin_loss(a, b, c, p=1, swap=True),
                                    [X1, X2, X3], []),
    "triplet_with_distance": (lambda f, a, b, c: f.triplet_margin_with_distance_loss(
        a, b, c, distance_function=lambda u, v: 1 - f.cosine_similarity(u, v), margin=0.4), [X1, X2, X3], []),
    "hinge_embedding_loss": (lambda f, a, c: f.hinge_embedding_loss(a, c, margin=0.7), [X1], [np.tile(SIGN[:, None], 4)]),
    "soft_margin_loss": (lambda f, a, c: f.soft_margin_loss(a, c), [X1], [np.tile(SIGN[:, None], 4)]),
    "multilabel_soft_margin_loss": (lambda f, a, c: f.multilabel_soft_margin_loss(a, c), [X1], [MULTI]),
    "multi_margin_loss": (lambda f, a, c: f.multi_margin_loss(a, c, margin=0.8), [X1], [LABELS]),
    "multi_margin_loss_p2": (lambda f, a, c: f.multi_margin_loss(a, c, p=2), [X1], [LABELS]),
    "multilabel_margin_loss": (lambda f, a, c: f.multilabel_margin_loss(a, c), [X1], [LABEL_LISTS]),
    "gaussian_nll_loss": (lambda f, a, b, c: f.gaussian_nll_loss(a, b, c), [X1, X2, VAR], []),
    "gaussian_nll_loss_full": (lambda f, a, b, c: f.gaussian_nll_loss(a, b, c[:, :1], full=True), [X1, X2, VAR], []),
    "poisson_nll_loss": (lambda f, a, c: f.poisson_nll_loss(a, c), [X1], [COUNTS]),
    "poisson_nll_loss_full_rate": (lambda f, a, c: f.poisson_nll_loss(a.abs() + 0.1, c, log_input=False, full=True),
                                   [X1], [COUNTS]),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", list(CASES))
def test_loss_matches_torch(name, reduction):
    torch = torch_or_skip()
    import torch.nn.functional as TF

    fn, diff_inputs, fixed = CASES[name]
    s_in = [somanet.tensor(a, requires_grad=True) for a in diff_inputs]
    t_in = [torch.tensor(a, requires_grad=True) for a in diff_inputs]
    s_fixed = [somanet.tensor(a) for a in fixed]
    t_fixed = [torch.tensor(a) for a in fixed]

    def with_reduction(lib_f):
        class Wrapped:
            def __getattr__(self, attr):
                target = getattr(lib_f, attr)
                if attr.endswith("loss"):
                    return lambda *a, **k: target(*a, **{**k, "reduction": reduction})
                return target
        return Wrapped()

    s_out = fn(with_reduction(F), *s_in, *s_fixed)
    t_out = fn(with_reduction(TF), *t_in, *t_fixed)
    assert_close(s_out, t_out, rtol=1e-5, atol=1e-6)
    cot = np.linspace(0.5, 1.5, max(1, int(np.prod(t_out.shape))), dtype=np.float32).reshape(tuple(t_out.shape))
    s_out.backward(somanet.tensor(cot))
    t_out.backward(torch.tensor(cot))
    for i, (a, b) in enumerate(zip(s_in, t_in)):
        assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, what=f"gradient of input {i}")


def test_loss_modules_match_torch():
    torch = torch_or_skip()
    pairs = [
        (somanet.nn.CosineEmbeddingLoss(0.1), torch.nn.CosineEmbeddingLoss(0.1), (X1, X2, SIGN)),
        (somanet.nn.MarginRankingLoss(0.2), torch.nn.MarginRankingLoss(0.2), (X1[:, 0], X2[:, 0], SIGN)),
        (somanet.nn.TripletMarginLoss(), torch.nn.TripletMarginLoss(), (X1, X2, X3)),
        (somanet.nn.MultiMarginLoss(weight=[1.0, 2.0, 0.5, 1.0]),
         torch.nn.MultiMarginLoss(weight=torch.tensor([1.0, 2.0, 0.5, 1.0])), (X1, LABELS)),
        (somanet.nn.MultiLabelSoftMarginLoss(), torch.nn.MultiLabelSoftMarginLoss(), (X1, MULTI)),
        (somanet.nn.GaussianNLLLoss(), torch.nn.GaussianNLLLoss(), (X1, X2, VAR)),
        (somanet.nn.PoissonNLLLoss(), torch.nn.PoissonNLLLoss(), (X1, COUNTS)),
        (somanet.nn.CosineSimilarity(dim=1), torch.nn.CosineSimilarity(dim=1), (X1, X2)),
        (somanet.nn.PairwiseDistance(), torch.nn.PairwiseDistance(), (X1, X2)),
    ]
    for mine, ref, args in pairs:
        assert_close(mine(*[somanet.tensor(a) for a in args]), ref(*[torch.tensor(a) for a in args]),
                     rtol=1e-5, atol=1e-6, what=type(mine).__name__)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="multi_margin_loss.*p == 1"):
        F.multi_margin_loss(somanet.tensor(X1), somanet.tensor(LABELS), p=3)
    with pytest.raises(ValueError, match="reduction"):
        F.soft_margin_loss(somanet.tensor(X1), somanet.tensor(X2), reduction="avg")
    with pytest.raises(ValueError, match="gaussian_nll_loss.*var"):
        F.gaussian_nll_loss(somanet.tensor(X1), somanet.tensor(X2), somanet.ones(3))
    with pytest.raises(NotImplementedError, match="ctc_loss"):
        somanet.nn.CTCLoss()(somanet.zeros(3, 1, 4), somanet.zeros(1, 2), [3], [2])
