"""The ``shakespeare-char`` recipe's pieces on tiny configs: the shipped text, the standard 90 / 10 split into
windows, ``CharGPT``'s loss against PyTorch's, a few training steps that lower the loss, and the seeded
text sample written at the end of a run."""
import hashlib
import os

import numpy as np
import pytest

import somanet
from somanet.cli import recipes as registry
from somanet.cli.recipes_lm import SHAKESPEARE_PATH, CharGPT, TextSampleReport, text_report
from somanet.data.datasets.text import train_val_split
from somanet.train import Trainer
from somanet.train.recipe import ConfigError, build_callbacks
from somanet.random import get_rng_state
from reference import torch_or_skip

SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY = {"model.n_layer": 1, "model.n_head": 2, "model.d_model": 16, "data.block_size": 16}


def tiny_config(**sets):
    overrides = [{"model": {k.split(".")[1]: v}} if k.startswith("model.") else {"data": {k.split(".")[1]: v}}
                 for k, v in {**TINY, **sets}.items()]
    return registry.get_recipe("shakespeare-char").resolve(*overrides)


def test_shipped_text_is_tinyshakespeare(data_dir):
    with open(SHAKESPEARE_PATH, "rb") as f:
        shipped = f.read()
    assert hashlib.sha256(shipped).hexdigest() == SHA256
    with open(os.path.join(data_dir, "text", "tinyshakespeare.txt"), "rb") as f:
        assert f.read() == shipped


def test_data_is_the_standard_split_in_windows():
    cfg = tiny_config()
    info = registry.data_info(cfg)
    assert info.input_shape == (16,) and info.num_classes == 65 and len(info.classes) == 65
    train, val, test = registry.load_data(cfg)
    assert test is None
    with open(SHAKESPEARE_PATH, encoding="utf-8") as f:
        text = f.read()
    train_text, val_text = train_val_split(text, 0.1)
    assert len(train_text) == int(0.9 * len(text)) and len(val_text) == len(text) - len(train_text)
    assert len(train) == (len(train_text) - 17) // 16 + 1 and len(val) == (len(val_text) - 17) // 16 + 1
    decode = "".join
    x, y = train[3]
    assert decode(info.classes[i] for i in x) == train_text[48:64]
    assert decode(info.classes[i] for i in y) == train_text[49:65]
    x, y = val[0]
    assert decode(info.classes[i] for i in x) == val_text[:16]


def test_data_options_are_checked():
    with pytest.raises(ConfigError, match=r"unknown option\(s\) blocksize"):
        registry.data_info(tiny_config(**{"data.blocksize": 8}))
    with pytest.raises(ConfigError, match=r"'data.block_size'.*integer >= 1, got 0"):
        registry.data_info(tiny_config(**{"data.block_size": 0}))
    with pytest.raises(ConfigError, match="too few for one window"):
        registry.load_data(tiny_config(**{"data.max_chars": 100, "data.block_size": 32}))
    with pytest.raises(ConfigError, match=r"model.*unknown option\(s\) n_layers"):
        registry.build_model(tiny_config(**{"model.n_layers": 2}))
    with pytest.raises(ConfigError, match=r"model.report.*unknown option\(s\) tokens"):
        text_report(tiny_config(**{"model.report": {"tokens": 3}}))


def test_char_gpt_loss_matches_torch_cross_entropy():
    torch = torch_or_skip()
    model = registry.build_model(tiny_config())
    assert isinstance(model, CharGPT) and model.vocab_size == 65 and model.block_size == 16
    assert "vocab_codes" in model.state_dict()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 65, (3, 16)), rng.integers(0, 65, (3, 16))
    loss = model.training_step((somanet.tensor(x), somanet.tensor(y)), 0)["loss"]
    loss.backward()
    logits = torch.tensor(model(somanet.tensor(x)).array, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 65), torch.tensor(y).reshape(-1))
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-5)
    assert model.head.weight.grad is not None
    with pytest.raises(ValueError, match=r"targets of shape \(3, 15\) do not match inputs of shape \(3, 16\)"):
        model.training_step((somanet.tensor(x), somanet.tensor(y[:, :15])), 0)


def test_char_gpt_vocabulary_survives_a_state_dict():
    a = CharGPT(list("ab c"), block_size=8, n_layer=1, n_head=1, d_model=8)
    b = CharGPT(list("xyzw"), block_size=8, n_layer=1, n_head=1, d_model=8)
    b.load_state_dict(a.state_dict())
    assert b.vocab == ["a", "b", " ", "c"] and b.decode(b.encode("a cab")) == "a cab"
    assert b.unknown_symbols("abXc!") == ["!", "X"]
    with pytest.raises(KeyError, match=r"characters \['!', 'X'\] are not in the model's vocabulary"):
        b.encode("abXc!")
    with pytest.raises(ValueError, match="vocab must be a non-empty list of single characters"):
        CharGPT(["ab"], block_size=8)


def test_a_few_steps_on_a_small_slice_lower_the_loss(tmp_path):
    cfg = tiny_config(**{"data.max_chars": 20000})
    somanet.manual_seed(0)
    model = registry.build_model(cfg)
    train, val, _ = registry.load_data(cfg)
    trainer = Trainer(enable_progress_bar=False)
    before = trainer.evaluate(model, val, batch_size=64)["loss"]
    trainer.fit(model, train, val, epochs=2, optimizer=somanet.optim.AdamW(model.parameters(), lr=1e-2),
                batch_size=32, max_steps=60)
    after = trainer.evaluate(model, val, batch_size=64)["loss"]
    assert before > 4.0 > 3.2 > after, (before, after)


def test_sample_report_is_seeded_and_written(tmp_path, capsys):
    cfg = tiny_config(**{"model.report": {"prompt": "ROMEO:", "max_new_tokens": 30, "seed": 3}})
    (report,) = [cb for cb in build_callbacks(cfg) if isinstance(cb, TextSampleReport)]
    model = registry.build_model(cfg)
    trainer = Trainer(run_dir=str(tmp_path), enable_progress_bar=False)
    state = get_rng_state()
    report.on_fit_end(trainer, model)
    assert get_rng_state()["bit_generator"] == state["bit_generator"]
    text = (tmp_path / "samples.txt").read_text(encoding="utf-8")
    assert text == report.text + "\n" and report.text.startswith("ROMEO:") and len(report.text) == 36
    assert report.text in capsys.readouterr().out
    assert report.sample(model) == report.text
    other = TextSampleReport(prompt="ROMEO:", max_new_tokens=30, seed=4)
    assert other.sample(model) != report.text


def test_summary_command_feeds_symbol_ids(capsys):
    from somanet.cli import main
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    assert main(["summary", "shakespeare-char", *sets]) == 0
    out = capsys.readouterr().out
    assert "Model: CharGPT" in out and "Input shape: [16, 16]" in out
