"""Recommendation: matrix factorisation and NCF against PyTorch twins with the same weights (outputs and
every gradient), HR@10 / NDCG@10 against hand-computed rankings, the interaction generator and the
leave-one-out split, and a short recsys-ncf run that must beat the popularity baseline."""
import json
import os

import numpy as np
import pytest

import somanet
from somanet.data.datasets import ImplicitFeedback, leave_one_out, make_interactions
from somanet.models.recsys import NCF, MatrixFactorization
from somanet.train.metrics import hit_rate_at_k, ndcg_at_k

from reference import compare_modules, copy_state, torch_or_skip


def _pairs(n, users, items, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, users, n), rng.integers(0, items, n)


def test_matrix_factorization_matches_torch():
    torch = torch_or_skip()
    nn = torch.nn

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.user_embedding = nn.Embedding(7, 5)
            self.item_embedding = nn.Embedding(9, 5)
            self.user_bias = nn.Embedding(7, 1)
            self.item_bias = nn.Embedding(9, 1)
            self.global_bias = nn.Parameter(torch.tensor(0.3))

        def forward(self, u, i):
            return ((self.user_embedding(u) * self.item_embedding(i)).sum(-1) + self.user_bias(u).squeeze(-1)
                    + self.item_bias(i).squeeze(-1) + self.global_bias)

    torch.manual_seed(0)
    twin = Twin()
    model = MatrixFactorization(7, 9, embedding_dim=5)
    copy_state(twin, model)
    users, items = _pairs(12, 7, 9)  # repeated indices accumulate gradients in the same rows
    out = compare_modules(model, twin, users, items)
    assert out.shape == (12,)


def test_ncf_matches_torch():
    torch = torch_or_skip()
    nn = torch.nn

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.gmf_user, self.gmf_item = nn.Embedding(6, 4), nn.Embedding(8, 4)
            self.mlp_user, self.mlp_item = nn.Embedding(6, 8), nn.Embedding(8, 8)
            self.mlp = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())
            self.predict_layer = nn.Linear(8, 1)

        def forward(self, u, i):
            gmf = self.gmf_user(u) * self.gmf_item(i)
            mlp = self.mlp(torch.cat([self.mlp_user(u), self.mlp_item(i)], -1))
            return self.predict_layer(torch.cat([gmf, mlp], -1)).squeeze(-1)

    torch.manual_seed(0)
    twin = Twin()
    for emb in (twin.gmf_user, twin.gmf_item, twin.mlp_user, twin.mlp_item):
        nn.init.normal_(emb.weight, std=0.5)  # larger than the default init, so the ReLUs see both signs
    model = NCF(6, 8, embedding_dim=4, mlp_layers=(16, 8, 4))
    copy_state(twin, model)
    users, items = _pairs(10, 6, 8, seed=1)
    out = compare_modules(model, twin, users.reshape(2, 5), items.reshape(2, 5))
    assert out.shape == (2, 5)


def test_training_step_is_the_binary_cross_entropy():
    torch = torch_or_skip()
    model = NCF(5, 6, embedding_dim=4, mlp_layers=(8, 4))
    users, items = _pairs(6, 5, 6)
    labels = np.array([1, 0, 0, 1, 0, 0], np.float32)
    batch = (somanet.tensor(users), somanet.tensor(items), somanet.tensor(labels))
    logits = model(batch[0], batch[1]).array
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(logits), torch.tensor(labels))
    assert model.training_step(batch, 0).item() == pytest.approx(expected.item(), rel=1e-5)


def test_recsys_models_check_their_input():
    model = MatrixFactorization(4, 5)
    with pytest.raises(IndexError, match=r"MatrixFactorization: items indices must be in \[0, 4\], got"):
        model(somanet.tensor([0, 1]), somanet.tensor([2, 5]))
    with pytest.raises(TypeError, match="NCF: users must be an integer Tensor of indices, got float32"):
        NCF(4, 5)(somanet.tensor([0.0]), somanet.tensor([1]))
    with pytest.raises(ValueError, match="users and items must have the same shape"):
        model(somanet.tensor([0, 1]), somanet.tensor([2]))
    with pytest.raises(ValueError, match="mlp_layers must be positive ints with an even first width"):
        NCF(4, 5, mlp_layers=(7, 4))
    with pytest.raises(TypeError, match="a batch must be \\(users, items, labels\\)"):
        model.training_step((somanet.tensor([0]), somanet.tensor([1])), 0)


def test_hit_rate_and_ndcg_by_hand():
    scores = np.array([[0.9, 0.1, 0.5, 0.3],    # positive ranked first: rank 0
                       [0.2, 0.8, 0.5, 0.1],    # two above: rank 2
                       [0.5, 0.5, 0.1, 0.7]])   # one tie and one above: rank 2 (ties count against it)
    assert hit_rate_at_k(scores, 0, k=1) == pytest.approx(1 / 3)
    assert hit_rate_at_k(scores, 0, k=2) == pytest.approx(1 / 3)
    assert hit_rate_at_k(scores, 0, k=3) == pytest.approx(1.0)
    assert ndcg_at_k(scores, 0, k=3) == pytest.approx((1 + 2 / np.log2(4)) / 3)
    assert ndcg_at_k(scores, 0, k=2) == pytest.approx(1 / 3)
    # the positive's column per row
    assert hit_rate_at_k(scores, np.array([1, 1, 3]), k=1) == pytest.approx(2 / 3)
    # a constant scorer ranks the positive last
    assert hit_rate_at_k(np.zeros((5, 100)), 0, k=10) == 0.0
    with pytest.raises(ValueError, match=r"hit_rate_at_k: scores must be \(N, M\)"):
        hit_rate_at_k(np.zeros(4), 0)
    with pytest.raises(ValueError, match="ndcg_at_k: target must hold the column"):
        ndcg_at_k(scores, 4)
    with pytest.raises(ValueError, match="k must be a positive int"):
        ndcg_at_k(scores, 0, k=0)


def test_interactions_and_leave_one_out():
    pairs = make_interactions(50, 40, rank=4, density=0.1, seed=3)
    assert pairs.dtype == np.int64 and pairs.shape == (50 * 4, 2)
    assert len({tuple(p) for p in pairs.tolist()}) == len(pairs)  # no repeated pair
    same, logits = make_interactions(50, 40, rank=4, density=0.1, seed=3, return_logits=True)
    np.testing.assert_array_equal(pairs, same)
    assert logits.shape == (50, 40)
    # the chosen items score above the others on average: the logits are the taste they were drawn from
    chosen = np.zeros((50, 40), bool)
    chosen[pairs[:, 0], pairs[:, 1]] = True
    assert logits[chosen].mean() > logits[~chosen].mean() + 1.0
    train, users, cand = leave_one_out(pairs, 40, num_negatives=20, seed=0)
    assert train.shape == (150, 2) and users.shape == (50,) and cand.shape == (50, 21)
    seen = {(u, i) for u, i in pairs.tolist()}
    train_set = {(u, i) for u, i in train.tolist()}
    for u, row in zip(users.tolist(), cand.tolist()):
        assert (u, row[0]) in seen and (u, row[0]) not in train_set  # the held-out item is the last one
        assert row[0] == pairs[pairs[:, 0] == u][-1, 1]
        assert len(set(row)) == 21 and not any((u, i) in seen for i in row[1:])
    with pytest.raises(ValueError, match="make_interactions: density"):
        make_interactions(5, 10, density=0.95)


def test_implicit_feedback_samples_unseen_negatives():
    pairs = make_interactions(30, 20, rank=3, density=0.2, seed=1)
    data = ImplicitFeedback(pairs, 20, num_negatives=3, seed=0)
    assert len(data) == len(pairs) * 4
    users, items, labels = data._fetch_batch(np.arange(len(data)))
    np.testing.assert_array_equal(labels.array, np.tile([1, 0, 0, 0], len(pairs)).astype(np.float32))
    np.testing.assert_array_equal(items.array[::4], pairs[:, 1])
    seen = {(u, i) for u, i in pairs.tolist()}
    negatives = [(u, i) for u, i, y in zip(users.array.tolist(), items.array.tolist(), labels.array) if y == 0]
    assert not any(p in seen for p in negatives)
    assert data[1][2] == 0.0 and data[0] == (int(pairs[0, 0]), int(pairs[0, 1]), 1.0)


def test_recsys_ncf_beats_popularity(tmp_path, monkeypatch, one_thread):
    """A short run of the recipe (600 users, 3 epochs at learning rate 3e-3 for NCF and for MF): on the
    held-out items, each against 99 sampled negatives, the HR@10 of NCF, MF and the oracle (the generator's
    logits) must be at least 0.1 above popularity's, and popularity's above chance (0.1)."""
    from somanet.cli.main import main
    monkeypatch.chdir(tmp_path)
    code = main(["train", "recsys-ncf", "--epochs", "3", "--lr", "0.003", "--set", "data.n_users=600",
                 "--set", "model.report.mf.epochs=3", "--out", "run", "--no-plots"])
    assert code == 0
    with open(os.path.join("run", "recommendation.json")) as f:
        r = json.load(f)
    assert r["users"] == 600 and r["candidates"] == 100 and r["k"] == 10
    pop = r["popularity"]
    assert pop["hr"] > 0.1, r
    assert r["NCF"]["hr"] > pop["hr"] + 0.1 and r["NCF"]["ndcg"] > pop["ndcg"], r
    assert r["MatrixFactorization"]["hr"] > pop["hr"] + 0.1, r
    assert r["oracle"]["hr"] > pop["hr"] + 0.1, r  # the generator's own logits know the taste
    with open(os.path.join("run", "summary.txt")) as f:
        assert "Recommendation quality" in f.read()
