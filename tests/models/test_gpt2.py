"""GPT-2 against Hugging Face's GPT2LMHeadModel from the same (random) weights: logits, loss, greedy
generation, the key/value cache, and the Hugging Face folder round trip."""
import numpy as np
import pytest

import somanet
from somanet.models import GPT2Config, GPT2LMHeadModel, GPT2Model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CONFIG = dict(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
              attn_pdrop=0.0, bos_token_id=96, eos_token_id=96)


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    ref = transformers.GPT2LMHeadModel(transformers.GPT2Config(**CONFIG)).eval()
    with torch.no_grad():  # non-trivial LayerNorm and bias values, so that every parameter is checked
        for name, p in ref.named_parameters():
            if name.endswith(("bias", "ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.add_(torch.randn_like(p) * 0.1)
    model = GPT2LMHeadModel(GPT2Config(**CONFIG)).eval()
    state = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    model.load_state_dict(state)
    return model, ref


def _ids(shape, seed=0, vocab=97):
    return np.random.default_rng(seed).integers(0, vocab, shape).astype(np.int64)


def test_layout_matches_hugging_face(pair):
    model, ref = pair
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert ours == theirs
    assert ours["transformer.h.0.attn.c_attn.weight"] == (32, 96)  # Conv1D: (in, out)
    assert model.lm_head.weight is model.transformer.wte.weight


def test_logits_and_loss_match(pair):
    model, ref = pair
    ids = _ids((2, 11))
    labels = ids.copy()
    labels[0, 3] = -100
    out = model(somanet.tensor(ids), labels=somanet.tensor(labels))
    with torch.no_grad():
        exp = ref(torch.from_numpy(ids), labels=torch.from_numpy(labels))
    np.testing.assert_allclose(out.logits.array, exp.logits.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(out.loss.item()), float(exp.loss), rtol=1e-5, atol=1e-5)


def test_padding_mask_matches(pair):
    model, ref = pair
    ids = _ids((2, 7), seed=3)
    mask = np.ones((2, 7), np.int64)
    mask[1, 5:] = 0  # right padding: the real positions must agree
    out = model(somanet.tensor(ids), attention_mask=somanet.tensor(mask)).logits.array
    with torch.no_grad():
        exp = ref(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
    np.testing.assert_allclose(out[0], exp[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out[1, :5], exp[1, :5], rtol=1e-4, atol=1e-4)


def test_greedy_generation_matches_hugging_face(pair):
    model, ref = pair
    ids = _ids((2, 5), seed=1)
    got = model.generate(somanet.tensor(ids), max_new_tokens=8).array
    with torch.no_grad():
        exp = ref.generate(torch.from_numpy(ids), max_new_tokens=8, do_sample=False, pad_token_id=0,
                           attention_mask=torch.ones(2, 5, dtype=torch.long)).numpy()
    np.testing.assert_array_equal(got, exp)


def test_left_padded_generation_matches_hugging_face(pair):
    model, ref = pair
    ids = _ids((2, 6), seed=7)
    mask = np.ones((2, 6), np.int64)
    mask[1, :2] = 0  # the second prompt is two tokens shorter, padded on the left
    ids[1, :2] = 0
    got = model.generate(somanet.tensor(ids), 6, attention_mask=somanet.tensor(mask)).array
    with torch.no_grad():
        exp = ref.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), max_new_tokens=6,
                           do_sample=False, pad_token_id=0).numpy()
    np.testing.assert_array_equal(got, exp)


def test_cache_generation_equals_full_recompute(pair):
    model, _ = pair
    ids = somanet.tensor(_ids((3, 4), seed=2))
    cached = model.generate(ids, max_new_tokens=10, use_cache=True).array
    plain = model.generate(ids, max_new_tokens=10, use_cache=False).array
    np.testing.assert_array_equal(cached, plain)
    g1, g2 = somanet.Generator().manual_seed(5), somanet.Generator().manual_seed(5)
    s1 = model.generate(ids, 6, do_sample=True, top_k=20, top_p=0.9, temperature=0.8, generator=g1).array
    s2 = model.generate(ids, 6, do_sample=True, top_k=20, top_p=0.9, temperature=0.8, generator=g2,
                        use_cache=False).array
    np.testing.assert_array_equal(s1, s2)
    assert s1.shape == (3, 10) and s1.min() >= 0 and s1.max() < 97


def test_cached_logits_equal_full_forward(pair):
    model, _ = pair
    ids = somanet.tensor(_ids((2, 9), seed=4))
    full = model(ids).logits.array
    first = model(ids[:, :6], use_cache=True)
    rest = model(ids[:, 6:], past_key_values=first.past_key_values, use_cache=True)
    np.testing.assert_allclose(rest.logits.array, full[:, 6:], rtol=1e-5, atol=1e-5)
    assert rest.past_key_values[0][0].shape == (2, 4, 9, 8)


def test_gradients_flow_and_backbone(pair):
    model, _ = pair
    model.zero_grad()
    ids = somanet.tensor(_ids((2, 6), seed=6))
    model.train()
    try:
        model(ids, labels=ids).loss.backward()
    finally:
        model.eval()
    assert all(p.grad is not None for p in model.parameters())
    base = GPT2Model(GPT2Config(**CONFIG))
    assert base(ids).last_hidden_state.shape == (2, 6, 32)


def test_config_errors():
    with pytest.raises(ValueError, match="n_head"):
        GPT2Config(n_embd=30, n_head=4).validate()
    model = GPT2LMHeadModel(GPT2Config(**CONFIG))
    with pytest.raises(ValueError, match="n_positions"):
        model(somanet.tensor(_ids((1, 40))))


def test_from_pretrained_reads_a_hugging_face_folder(pair, tmp_path):
    pytest.importorskip("safetensors")
    model, ref = pair
    ref.save_pretrained(tmp_path)
    loaded = somanet.models.from_pretrained(tmp_path)
    assert isinstance(loaded, GPT2LMHeadModel)
    ids = _ids((1, 6), seed=8)
    np.testing.assert_allclose(loaded(somanet.tensor(ids)).logits.array, model(somanet.tensor(ids)).logits.array,
                               rtol=1e-6, atol=1e-6)
    base = somanet.models.from_pretrained(tmp_path, task="base")
    assert isinstance(base, GPT2Model) and base.loading_info["unused_keys"] == []
    out = tmp_path / "again"
    loaded.save_pretrained(out)
    back = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    with torch.no_grad():
        np.testing.assert_allclose(back(torch.from_numpy(ids)).logits.numpy(),
                                   model(somanet.tensor(ids)).logits.array, rtol=1e-4, atol=1e-4)
