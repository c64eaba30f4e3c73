"""``GPT.generate`` against its references: greedy decoding against nanoGPT's loop (crop to ``block_size``,
argmax) on an equivalent PyTorch model, the sampling filters against Hugging Face's logits warpers
(temperature, top-k, top-p), seeded repeatability, and its argument errors."""
import numpy as np
import pytest

import somanet
from somanet.models import GPT
from reference import copy_state, torch_gpt, torch_or_skip


def test_greedy_decoding_matches_nanogpt_loop_on_torch_twin():
    torch = torch_or_skip()
    torch.manual_seed(0)
    t = torch_gpt(torch, 11, 8, 2, 2, 16).eval()
    with torch.no_grad():
        t.pos_emb.weight.normal_(0, 0.5)
        t.tok_emb.weight.normal_(0, 1.0)  # large logits: no near-ties between the two best symbols
    s = GPT(11, block_size=8, n_layer=2, n_head=2, d_model=16)
    copy_state(t, s)
    prompt = np.random.default_rng(0).integers(0, 11, (2, 5))
    idx = torch.tensor(prompt)
    with torch.no_grad():
        for _ in range(12):  # the context outgrows block_size: both crop to the last 8 symbols
            nxt = t(idx[:, -8:])[:, -1].argmax(-1, keepdim=True)
            idx = torch.cat([idx, nxt], dim=1)
    got = s.generate(somanet.tensor(prompt), 12, do_sample=False)
    np.testing.assert_array_equal(got.array, idx.numpy())
    np.testing.assert_array_equal(s.generate(prompt, 12, temperature=0).array, idx.numpy())
    assert s.training


def _hf_kept(logits, temperature, top_k, top_p):
    """The symbols Hugging Face's warpers leave finite, per row."""
    torch = torch_or_skip()
    transformers = pytest.importorskip("transformers")
    z = torch.tensor(logits)
    ids = torch.zeros((z.shape[0], 1), dtype=torch.long)
    z = transformers.TemperatureLogitsWarper(temperature)(ids, z)
    if top_k is not None:
        z = transformers.TopKLogitsWarper(top_k)(ids, z)
    if top_p is not None:
        z = transformers.TopPLogitsWarper(top_p)(ids, z)
    return [set(np.flatnonzero(np.isfinite(row))) for row in z.numpy()]


class _FixedLogits(GPT):
    """A GPT whose next-symbol logits are given (the same at every step), to test the sampler alone."""

    def __init__(self, logits):
        super().__init__(logits.shape[1], block_size=4, n_layer=1, n_head=1, d_model=4)
        self.fixed = logits

    def forward(self, idx):
        return somanet.tensor(np.repeat(self.fixed[:, None], idx.shape[1], axis=1))


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, None, None), (0.7, 5, None), (1.3, None, 0.8),
                                                       (0.9, 6, 0.6), (1.0, 1, None), (2.0, None, 0.05)])
def test_sampling_draws_exactly_from_huggingface_filtered_set(temperature, top_k, top_p):
    rng = np.random.default_rng(1)
    logits = (rng.normal(size=(3, 12)) * 2).astype(np.float32)
    logits[2, 3] = logits[2, 7]  # a tie at the boundary of the kept set
    kept = _hf_kept(logits, temperature, top_k, top_p)
    model = _FixedLogits(logits)
    draws = model.generate(np.zeros((3, 1), np.int64), 600, temperature=temperature, top_k=top_k, top_p=top_p,
                           generator=somanet.Generator(0)).array[:, 1:]
    z = logits.astype(np.float64) / temperature
    for row in range(3):
        seen = set(np.unique(draws[row]).tolist())
        assert seen <= kept[row], (row, seen - kept[row])
        p = np.exp(z[row, sorted(kept[row])] - z[row].max())
        p /= p.sum()
        # Every kept symbol with a fair chance turns up in 600 draws.
        likely = {s for s, q in zip(sorted(kept[row]), p) if q > 0.02}
        assert likely <= seen, (row, likely - seen)


def test_seeded_sampling_repeats_and_errors():
    model = GPT(9, block_size=6, n_layer=1, n_head=1, d_model=8)
    prompt = somanet.tensor([[1, 2, 3]])
    a = model.generate(prompt, 20, top_k=4, top_p=0.9, generator=somanet.Generator(5)).array
    b = model.generate(prompt, 20, top_k=4, top_p=0.9, generator=somanet.Generator(5)).array
    c = model.generate(prompt, 20, top_k=4, top_p=0.9, generator=somanet.Generator(6)).array
    assert np.array_equal(a, b) and not np.array_equal(a, c) and a.shape == (1, 23)
    assert model.generate(prompt, 0).shape == (1, 3)
    for kwargs, message in (({"temperature": -0.5}, "temperature must be a finite number >= 0, got -0.5"),
                            ({"top_k": 0}, "top_k must be a positive int or None, got 0"),
                            ({"top_p": 0.0}, r"top_p must be in \(0, 1\] or None, got 0.0"),
                            ({"top_p": 1.5}, r"top_p must be in \(0, 1\] or None, got 1.5")):
        with pytest.raises(ValueError, match="GPT.generate: " + message):
            model.generate(prompt, 3, **kwargs)
    with pytest.raises(ValueError, match=r"max_new_tokens must be a non-negative int, got -1"):
        model.generate(prompt, -1)
    with pytest.raises(ValueError, match=r"symbols must be in \[0, 9\), got values in \[1, 9\]"):
        model.generate(somanet.tensor([[1, 9]]), 3)
    with pytest.raises(ValueError, match=r"expected integer symbols of shape \(N, T0\) with T0 >= 1, got float32"):
        model.generate(somanet.zeros(1, 3), 3)
