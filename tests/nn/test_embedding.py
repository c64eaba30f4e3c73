"""Embedding against PyTorch: lookup, scatter-add of repeated indices, padding_idx, max_norm,
scale_grad_by_freq, from_pretrained/freeze, initialisation and errors."""
import numpy as np
import pytest

import somanet
import somanet.nn as nn
import somanet.nn.functional as F
from somanet.autograd import gradcheck
from reference import assert_close, compare, compare_modules, copy_state, torch_or_skip

torch = torch_or_skip()
tnn = torch.nn

# Repeated indices (3 appears four times) and the padding index 0.
INDICES = np.array([[3, 1, 3, 0], [3, 7, 0, 3], [9, 1, 2, 2]], dtype=np.int64)


@pytest.mark.parametrize("kwargs", [{}, {"padding_idx": 0}, {"padding_idx": -1}, {"scale_grad_by_freq": True},
                                    {"padding_idx": 2, "scale_grad_by_freq": True}])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_embedding_matches_torch(kwargs, mode):
    t_mod = tnn.Embedding(10, 4, **kwargs)
    s_mod = nn.Embedding(10, 4, **kwargs)
    copy_state(t_mod, s_mod)
    getattr(s_mod, mode)()
    getattr(t_mod, mode)()
    out = compare_modules(s_mod, t_mod, INDICES)
    assert out.shape == (3, 4, 4) and out.dtype == np.float32
    assert repr(s_mod) == repr(t_mod)


def test_embedding_gradient_accumulates_repeated_rows_and_skips_padding():
    emb = nn.Embedding(10, 3, padding_idx=0)
    out = emb(somanet.tensor(INDICES))
    out.sum().backward()
    counts = np.bincount(INDICES.reshape(-1), minlength=10).astype(np.float32)
    counts[0] = 0
    np.testing.assert_array_equal(emb.weight.grad.array, np.repeat(counts[:, None], 3, axis=1))
    assert not emb.weight.array[0].any()


def test_embedding_max_norm_renormalises_looked_up_rows_like_torch():
    t_mod = tnn.Embedding(10, 4, max_norm=1.0)
    s_mod = nn.Embedding(10, 4, max_norm=1.0)
    copy_state(t_mod, s_mod)
    compare_modules(s_mod, t_mod, INDICES)
    assert_close(s_mod.weight, t_mod.weight, what="weight after renorm")
    norms = np.linalg.norm(s_mod.weight.array[np.unique(INDICES)], axis=1)
    assert norms.max() <= 1.0 + 1e-6
    untouched = [i for i in range(10) if i not in INDICES]
    assert np.linalg.norm(s_mod.weight.array[untouched], axis=1).max() > 1.0


def test_embedding_functional_gradcheck_and_torch():
    w = np.random.default_rng(0).standard_normal((10, 3))
    idx = somanet.tensor(INDICES)
    assert gradcheck(lambda weight: F.embedding(idx, weight), [somanet.tensor(w, requires_grad=True)])
    compare(lambda weight: F.embedding(idx, weight), lambda weight: torch.nn.functional.embedding(
        torch.tensor(INDICES), weight), w.astype(np.float32))


def test_embedding_default_init_is_standard_normal_like_torch():
    s, t = nn.Embedding(1000, 64, padding_idx=3), tnn.Embedding(1000, 64, padding_idx=3)
    w = s.weight.array
    assert w.dtype == np.float32
    assert abs(w.mean()) < 0.02 and abs(w.std() - t.weight.detach().numpy().std()) < 0.02
    assert not w[3].any()


def test_from_pretrained_freezes_and_shares():
    pre = somanet.randn(5, 3)
    emb = nn.Embedding.from_pretrained(pre)
    assert not emb.weight.requires_grad
    assert emb.weight.array is pre.array
    out = emb(somanet.tensor([1, 4]))
    np.testing.assert_array_equal(out.array, pre.array[[1, 4]])
    assert not out.requires_grad
    trainable = nn.Embedding.from_pretrained(pre, freeze=False, padding_idx=0)
    assert trainable.weight.requires_grad and trainable.padding_idx == 0
    t = tnn.Embedding.from_pretrained(torch.tensor(pre.array), freeze=False, padding_idx=0)
    assert repr(trainable) == repr(t)


def test_embedding_errors_name_the_problem():
    emb = nn.Embedding(5, 2)
    with pytest.raises(IndexError, match="index 5 is out of range for an embedding with 5 rows"):
        emb(somanet.tensor([0, 5]))
    with pytest.raises(IndexError, match="index -1"):
        emb(somanet.tensor([-1]))
    with pytest.raises(TypeError, match="integer indices.*float32"):
        emb(somanet.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="padding_idx 7"):
        nn.Embedding(5, 2, padding_idx=7)
    with pytest.raises(ValueError, match="2-D"):
        nn.Embedding.from_pretrained(somanet.randn(5))


def test_embedding_parameter_names_match_torch():
    assert list(nn.Embedding(4, 2).state_dict()) == list(tnn.Embedding(4, 2).state_dict())
