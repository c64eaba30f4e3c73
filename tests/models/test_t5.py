"""T5 against Hugging Face's T5ForConditionalGeneration from the same (random) weights: encoder output,
logits, loss, greedy generation (with and without the cache), the relative position buckets, both
feed-forward variants, and padding masks."""
import numpy as np
import pytest

import somanet
from somanet.models import T5Config, T5EncoderModel, T5ForConditionalGeneration, relative_position_bucket

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CONFIG = dict(vocab_size=61, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
              relative_attention_num_buckets=8, relative_attention_max_distance=20, dropout_rate=0.0,
              decoder_start_token_id=0)


def _pair(feed_forward_proj="relu", seed=0):
    torch.manual_seed(seed)
    ref = transformers.T5ForConditionalGeneration(
        transformers.T5Config(**CONFIG, feed_forward_proj=feed_forward_proj)).eval()
    with torch.no_grad():  # layer norms away from 1, so that every weight is checked
        for name, p in ref.named_parameters():
            if "layer_norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model = T5ForConditionalGeneration(T5Config(**CONFIG, feed_forward_proj=feed_forward_proj)).eval()
    model.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    return model, ref


@pytest.fixture(scope="module")
def pair():
    return _pair()


def _ids(shape, seed=0):
    return np.random.default_rng(seed).integers(2, CONFIG["vocab_size"], shape).astype(np.int64)


def test_buckets_match_hugging_face():
    rel = np.arange(-40, 41)[None, :] - np.arange(0, 5)[:, None]
    from transformers.models.t5.modeling_t5 import T5Attention
    for bidirectional in (True, False):
        exp = T5Attention._relative_position_bucket(torch.from_numpy(rel), bidirectional=bidirectional,
                                                    num_buckets=32, max_distance=128).numpy()
        np.testing.assert_array_equal(relative_position_bucket(rel, bidirectional, 32, 128), exp)


def test_layout_matches_hugging_face(pair):
    model, ref = pair
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert ours == theirs
    assert model.lm_head.weight is model.shared.weight is model.encoder.embed_tokens.weight


@pytest.mark.parametrize("ff", ["relu", "gated-gelu"])
def test_logits_loss_and_encoder_match(ff, pair):
    model, ref = pair if ff == "relu" else _pair(ff, seed=1)
    src, tgt = _ids((2, 9), 1), _ids((2, 6), 2)
    labels = tgt.copy()
    labels[1, -2:] = -100
    mask = np.ones((2, 9), np.int64)
    mask[1, 7:] = 0
    out = model(somanet.tensor(src), attention_mask=somanet.tensor(mask), labels=somanet.tensor(labels))
    with torch.no_grad():
        exp = ref(input_ids=torch.from_numpy(src), attention_mask=torch.from_numpy(mask),
                  labels=torch.from_numpy(labels))
    np.testing.assert_allclose(out.encoder_last_hidden_state.array[0], exp.encoder_last_hidden_state.numpy()[0],
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out.encoder_last_hidden_state.array[1, :7],
                               exp.encoder_last_hidden_state.numpy()[1, :7], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out.logits.array, exp.logits.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(out.loss.item()), float(exp.loss), rtol=1e-5, atol=1e-5)


def test_greedy_generation_matches_hugging_face(pair):
    model, ref = pair
    src = _ids((3, 7), 3)
    got = model.generate(somanet.tensor(src), max_new_tokens=8).array
    with torch.no_grad():
        exp = ref.generate(torch.from_numpy(src), max_new_tokens=8, do_sample=False).numpy()
    np.testing.assert_array_equal(got, exp)
    plain = model.generate(somanet.tensor(src), max_new_tokens=8, use_cache=False).array
    np.testing.assert_array_equal(got, plain)


def test_cached_decoder_equals_full_decoder(pair):
    model, _ = pair
    src, tgt = somanet.tensor(_ids((2, 5), 4)), somanet.tensor(_ids((2, 7), 5))
    full = model(src, decoder_input_ids=tgt).logits.array
    first = model(src, decoder_input_ids=tgt[:, :4], use_cache=True)
    rest = model(decoder_input_ids=tgt[:, 4:], encoder_outputs=(first.encoder_last_hidden_state,),
                 past_key_values=first.past_key_values, use_cache=True)
    np.testing.assert_allclose(rest.logits.array, full[:, 4:], rtol=1e-5, atol=1e-5)


def test_gradients_and_encoder_model():
    model = T5ForConditionalGeneration(T5Config(**CONFIG))
    src, tgt = somanet.tensor(_ids((2, 5), 6)), somanet.tensor(_ids((2, 4), 7))
    model(src, labels=tgt).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []
    enc = T5EncoderModel(T5Config(**CONFIG))
    assert enc(src).last_hidden_state.shape == (2, 5, 32)


def test_config_errors():
    with pytest.raises(ValueError, match="feed_forward_proj"):
        T5Config(feed_forward_proj="fancy-relu").validate()


def test_from_pretrained_reads_a_hugging_face_folder(pair, tmp_path):
    pytest.importorskip("safetensors")
    model, ref = pair
    ref.save_pretrained(tmp_path)
    loaded = somanet.models.from_pretrained(tmp_path)
    assert isinstance(loaded, T5ForConditionalGeneration)
    src, tgt = somanet.tensor(_ids((1, 6), 8)), somanet.tensor(_ids((1, 3), 9))
    np.testing.assert_allclose(loaded(src, decoder_input_ids=tgt).logits.array,
                               model(src, decoder_input_ids=tgt).logits.array, rtol=1e-6, atol=1e-6)
    enc = somanet.models.from_pretrained(tmp_path, task="feature-extraction")
    assert isinstance(enc, T5EncoderModel)
    np.testing.assert_allclose(enc(src).last_hidden_state.array, model.encoder(src).last_hidden_state.array,
                               rtol=1e-6, atol=1e-6)
