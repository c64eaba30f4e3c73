"""The training doctor: each deliberately broken run gets its own finding and no other; healthy runs none."""
import importlib.util
import json
import math
import os

import numpy as np
import pytest

import somanet
from somanet import nn, optim
from somanet.cli.main import main as cli_main
from somanet.train import Trainer
from somanet.train.doctor import DEFAULT_THRESHOLDS, Doctor, diagnose, load_record, record_from_metrics


def _gallery():
    """examples/doctor_gallery.py, whose synthetic data and MLP builder the broken runs here share."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples",
                        "doctor_gallery.py")
    spec = importlib.util.spec_from_file_location("doctor_gallery", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_GALLERY = _gallery()
blobs, mlp = _GALLERY.blobs, _GALLERY.mlp


def run(model, optimizer, data=None, val=None, epochs=5, every=5, batch_size=32, **trainer_kwargs):
    trainer = Trainer(enable_progress_bar=False, doctor=Doctor(every_n_steps=every, verbose=False), **trainer_kwargs)
    trainer.fit(model, data or blobs(), val, epochs=epochs, optimizer=optimizer, loss="cross_entropy",
                batch_size=batch_size)
    return trainer


def kinds(trainer):
    return [f.kind for f in trainer.doctor.findings]


class LogLayer(nn.Module):
    def forward(self, x):
        return x.log()


class Sqrt(nn.Module):
    def forward(self, x):
        return x.sqrt()


# ----------------------------------------------------------------------------- broken runs, one per finding
def test_deep_sigmoid_mlp_has_vanishing_gradients():
    somanet.manual_seed(0)
    model = mlp([16] + [32] * 19 + [4], nn.Sigmoid)
    trainer = run(model, optim.SGD(model.parameters(), lr=0.1))
    assert kinds(trainer) == ["vanishing_gradients"]
    finding = trainer.doctor.findings[0]
    assert finding.data["ratio"] < 1e-10
    assert len(finding.data["layers"]) == 20
    assert any("ReLU" in a for a in finding.advice) and any("kaiming" in a for a in finding.advice)


def test_too_high_learning_rate_is_diagnosed_as_such():
    # A run that blows up within the first epoch, with NumPy and with the compiled kernels alike (a run on
    # the edge of divergence takes either path depending on float rounding).
    somanet.manual_seed(2)
    model = mlp([16, 64, 64, 4])
    trainer = run(model, optim.SGD(model.parameters(), lr=3.0), data=blobs(scale=1.0))
    assert kinds(trainer) == ["learning_rate"]
    finding = trainer.doctor.findings[0]
    assert finding.data["diverged"]
    assert "learning rate to ~0.3" in finding.advice[0]


def test_lr_find_option_runs_the_finder_from_the_initial_weights():
    somanet.manual_seed(0)
    model = mlp([16, 64, 64, 4])
    initial = {k: v.array.copy() for k, v in model.state_dict().items()}
    data = blobs(scale=0.5)
    trainer = Trainer(enable_progress_bar=False, doctor=Doctor(every_n_steps=5, verbose=False, lr_find=True))
    trainer.fit(model, data, epochs=5, optimizer=optim.SGD(model.parameters(), lr=3.0), loss="cross_entropy")
    assert kinds(trainer) == ["learning_rate"]
    suggestion = trainer.doctor.record["lr_finder"]["suggestion"]
    assert 1e-4 < suggestion < 3.0
    assert f"~{suggestion:.3g} (the learning-rate finder's suggestion); it is 3 now" in \
        trainer.doctor.findings[0].advice[0]
    assert trainer.doctor._initial_model is None  # the copy is released
    # The finder ran on a copy of the initial weights: the trained model is what a run without it gives.
    somanet.manual_seed(0)
    plain = mlp([16, 64, 64, 4])
    assert all(np.array_equal(v.array, initial[k]) for k, v in plain.state_dict().items())
    run(plain, optim.SGD(plain.parameters(), lr=3.0), data=data)
    assert all(np.array_equal(v.array, model.state_dict()[k].array, equal_nan=True)
               for k, v in plain.state_dict().items())


def test_learning_rate_advice_quotes_the_lr_finder():
    record = {"losses": [1.0] * 4 + [5.0, 0.5, 6.0, 0.4, 7.0, 0.5, 8.0, 0.5] * 5, "samples": [], "layers": [],
              "epochs": {"loss": [1.0, 2.0, 3.0]}, "activations": {}, "nan": None}

    class Finder:
        suggestion = 0.0123
    findings = diagnose(record, lr_finder=Finder())
    assert [f.kind for f in findings] == ["learning_rate"]
    assert "~0.0123 (the learning-rate finder's suggestion)" in findings[0].advice[0]


def test_weights_times_100_explode_from_the_first_step():
    somanet.manual_seed(0)
    model = mlp([16, 64, 64, 4])
    for p in model.parameters():
        p.array[...] *= 100
    trainer = run(model, optim.SGD(model.parameters(), lr=0.01))
    assert kinds(trainer) == ["exploding_gradients"]
    finding = trainer.doctor.findings[0]
    assert finding.data["from_start"] and finding.data["peak_grad_norm"] > 1e3
    assert any("gradient_clip_val=" in a for a in finding.advice)


def test_tanh_weights_times_100_saturate():
    somanet.manual_seed(0)
    model = mlp([16, 64, 64, 4], nn.Tanh)
    for name, p in model.named_parameters():
        if name.endswith("weight"):
            p.array[...] *= 100
    trainer = run(model, optim.Adam(model.parameters(), lr=1e-3))
    assert kinds(trainer) == ["saturation"]
    layers = trainer.doctor.findings[0].data["layers"]
    assert set(layers) == {"1", "3"} and min(layers.values()) > 0.9
    assert any("xavier_uniform_" in a for a in trainer.doctor.findings[0].advice)


def test_relus_behind_a_negative_bias_are_dead():
    somanet.manual_seed(0)
    model = mlp([16, 64, 64, 4])
    model[0].bias.array[:48] = -20  # 48 of the 64 first-layer units can never fire
    trainer = run(model, optim.Adam(model.parameters(), lr=1e-3))
    assert kinds(trainer) == ["dead_relu"]
    dead = trainer.doctor.record["activations"]["1"]
    assert dead["units"] == 64 and dead["dead_fraction"] == pytest.approx(48 / 64)
    assert trainer.doctor.record["activations"]["3"]["dead_fraction"] < 0.5


def test_all_zero_init_layers_do_not_learn():
    somanet.manual_seed(0)
    model = mlp([16, 64, 64, 4])
    for p in model.parameters():
        p.array[...] = 0
    trainer = run(model, optim.Adam(model.parameters(), lr=1e-3))
    assert kinds(trainer) == ["not_learning"]
    finding = trainer.doctor.findings[0]
    assert set(finding.data["layers"]) == {"0", "2"} and finding.data["zero_weights"] == ["0", "2"]
    assert any("kaiming" in a for a in finding.advice)


def test_overfitting_names_the_epoch_where_it_began():
    x, y = blobs(40, seed=1)
    x = x + 3 * np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    val = blobs(200, seed=1)
    somanet.manual_seed(0)
    model = mlp([16, 256, 256, 4])
    trainer = run(model, optim.Adam(model.parameters(), lr=1e-3), data=(x, y), val=val, epochs=15, batch_size=8)
    assert kinds(trainer) == ["overfitting"]
    finding = trainer.doctor.findings[0]
    val_loss = trainer.history.history["val_loss"]
    assert finding.data["best_epoch"] == int(np.argmin(val_loss))
    assert f"from epoch {finding.data['best_epoch'] + 2}" in finding.summary
    assert any("EarlyStopping" in a for a in finding.advice)


def test_log_of_zero_names_the_op_layer_step_and_batch(capsys):
    somanet.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), LogLayer(), nn.Linear(32, 4))
    trainer = run(model, optim.Adam(model.parameters(), lr=1e-3))
    assert kinds(trainer) == ["nan"]
    nan = trainer.doctor.record["nan"]
    assert (nan["op"], nan["module"], nan["module_type"], nan["phase"]) == ("Log", "2", "LogLayer", "forward")
    assert (nan["step"], nan["epoch"], nan["batch"]) == (0, 0, 0)
    assert any("clamp(min=" in a for a in trainer.doctor.findings[0].advice)
    assert "TerminateOnNaN" in capsys.readouterr().err
    # The diagnosis left nothing behind: no hooks, no gradients, anomaly mode off.
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert not somanet.autograd.anomaly.is_anomaly_enabled()


def test_infinite_gradient_is_traced_to_the_nested_layer_in_backward():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 16)
            self.act = nn.ReLU()
            self.root = Sqrt()

        def forward(self, x):
            return self.root(self.act(self.fc(x)))

    somanet.manual_seed(0)
    model = nn.Sequential(Block(), nn.Linear(16, 3))
    rng = np.random.default_rng(0)
    data = rng.standard_normal((64, 8)).astype(np.float32), rng.integers(0, 3, 64)
    trainer = run(model, optim.Adam(model.parameters()), data=data)
    assert kinds(trainer) == ["nan"]
    nan = trainer.doctor.record["nan"]
    assert (nan["op"], nan["module"], nan["phase"]) == ("Sqrt", "0.root", "backward")
    assert math.isfinite(nan["loss"]) and "A gradient became NaN/Inf" in trainer.doctor.findings[0].summary


def test_nan_without_terminate_on_nan_is_diagnosed_on_the_weights_that_produced_it():
    somanet.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), LogLayer(), nn.Linear(32, 4))
    trainer = run(model, optim.SGD(model.parameters(), lr=0.1), epochs=1, terminate_on_nan=False)
    assert kinds(trainer) == ["nan"]
    assert trainer.doctor.record["nan"]["op"] == "Log"


# ----------------------------------------------------------------------------- healthy runs stay quiet
def test_healthy_mlp_on_digits_has_no_findings(tmp_path, capsys):
    from somanet.data.datasets.tabular import Digits
    somanet.manual_seed(0)
    model = mlp([64, 64, 10])
    trainer = Trainer(doctor=Doctor(every_n_steps=5), run_dir=tmp_path, plots=False)
    trainer.fit(model, Digits(train=True, flatten=True), Digits(train=False, flatten=True), epochs=6,
                optimizer=optim.Adam(model.parameters(), lr=1e-3), loss="cross_entropy")
    assert trainer.doctor.findings == []
    out = capsys.readouterr().out
    assert f"doctor: no problems found ({tmp_path / 'doctor.md'})" in out.splitlines()
    assert "No problems found" in (tmp_path / "doctor.md").read_text()


def test_healthy_small_cnn_has_no_findings():
    from somanet.data.datasets.tabular import Digits
    somanet.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10))
    trainer = run(model, optim.Adam(model.parameters(), lr=3e-3), data=Digits(train=True),
                  val=Digits(train=False), epochs=3)
    assert kinds(trainer) == []
    assert set(trainer.doctor.record["activations"]) == {"1", "4"}  # both ReLUs watched


# ----------------------------------------------------------------------------- measurements
def test_measured_norms_and_updates_match_pytorch():
    torch = pytest.importorskip("torch")
    somanet.manual_seed(0)
    model = mlp([16, 32, 4])
    x, y = blobs(64)
    tmodel = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    with torch.no_grad():
        for tp, p in zip(tmodel.parameters(), model.parameters()):
            tp.copy_(torch.from_numpy(p.array.copy()))
    trainer = Trainer(enable_progress_bar=False, doctor=Doctor(every_n_steps=3, verbose=False))
    trainer.fit(model, (x, y), epochs=1, optimizer=optim.SGD(model.parameters(), lr=0.1), loss="cross_entropy",
                shuffle=False, batch_size=16)
    samples = trainer.doctor.record["samples"]
    assert [s["step"] for s in samples] == [0, 3]
    loss = torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(x[:16])), torch.from_numpy(y[:16]))
    loss.backward()
    first = samples[0]
    for layer, tlayer in (("0", tmodel[0]), ("2", tmodel[2])):
        g = math.hypot(tlayer.weight.grad.norm().item(), tlayer.bias.grad.norm().item())
        w = math.hypot(tlayer.weight.norm().item(), tlayer.bias.norm().item())
        assert first["grad_norm"][layer] == pytest.approx(g, rel=1e-4)
        assert first["weight_norm"][layer] == pytest.approx(w, rel=1e-5)
        assert first["update_ratio"][layer] == pytest.approx(0.1 * g / w, rel=1e-3)  # SGD: lr * |g| / |w|
    relu = first["activations"]["1"]
    hidden = torch.relu(tmodel[0](torch.from_numpy(x[:16]))).detach().numpy()
    assert relu["rms"] == pytest.approx(float(np.sqrt((hidden ** 2).mean())), rel=1e-4)
    assert relu["inactive_fraction"] == pytest.approx(float((hidden <= 0).mean()))
    # Hooks live only for a measured step's forward pass.
    assert all(not m._forward_hooks for m in model.modules())


def test_doctor_keeps_the_fast_batch_loop_and_off_means_off(tmp_path):
    doc = Doctor(verbose=False)
    assert "on_train_batch_start" not in vars(Doctor)  # a batch-start hook would leave the plain loop
    trainer = Trainer(enable_progress_bar=False, doctor=False, run_dir=tmp_path / "run")
    model = mlp([16, 8, 4])
    trainer.fit(model, blobs(64), epochs=1, loss="cross_entropy")
    assert trainer.doctor is None and not (tmp_path / "run" / "doctor.md").exists()
    assert Trainer(doctor=doc).doctor is doc
    with pytest.raises(TypeError, match="doctor must be True, False or a Doctor"):
        Trainer(doctor="yes")
    with pytest.raises(ValueError, match="every_n_steps must be an int >= 1"):
        Doctor(every_n_steps=0)
    with pytest.raises(ValueError, match="unknown threshold 'dead_relu'"):
        Doctor(thresholds={"dead_relu": 0.2})
    assert Doctor(thresholds={"dead_relu_fraction": 0.9}).thresholds["dead_relu_fraction"] == 0.9
    assert DEFAULT_THRESHOLDS["dead_relu_fraction"] == 0.5


# ----------------------------------------------------------------------------- run directory and CLI
def test_report_and_record_in_run_dir_and_cli_rediagnoses(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    somanet.manual_seed(0)
    model = mlp([16] + [32] * 19 + [4], nn.Sigmoid)
    run_dir = tmp_path / "run"
    trainer = run(model, optim.SGD(model.parameters(), lr=0.1), run_dir=run_dir, epochs=3)
    text = (run_dir / "doctor.md").read_text()
    assert text.startswith("# Training doctor") and "## 1. Vanishing gradients" in text
    assert "![Vanishing gradients](plots/doctor_vanishing_gradients.png)" in text
    assert (run_dir / "plots" / "doctor_vanishing_gradients.png").read_bytes()[:4] == b"\x89PNG"
    record = load_record(run_dir / "doctor.json")
    assert [f.kind for f in diagnose(record)] == ["vanishing_gradients"]
    assert len(record["losses"]) == 48 and record["every_n_steps"] == 5
    capsys.readouterr()
    assert cli_main(["doctor", str(run_dir)]) == 1
    assert "Vanishing gradients" in capsys.readouterr().out
    # A looser threshold clears it; the symptom it explained (the loss not falling) then shows on its own.
    assert cli_main(["doctor", str(run_dir), "--threshold", "vanishing_ratio=1e-30"]) == 1
    out = capsys.readouterr().out
    assert "Vanishing" not in out and "## 1. Underfitting" in out
    assert cli_main(["doctor", str(run_dir), "--threshold", "nope=1"]) == 2
    assert "unknown threshold 'nope'" in capsys.readouterr().err
    assert cli_main(["doctor", str(tmp_path / "missing")]) == 2
    assert trainer.doctor.report_path == os.path.join(str(run_dir), "doctor.md")


def test_cli_diagnoses_from_metrics_csv_without_doctor_json(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rows = ["epoch,loss,lr,val_loss"] + [f"{i + 1},{1.0 / (i + 1)!r},0.001,{v!r}"
                                          for i, v in enumerate([1.0, 0.8, 0.7, 0.75, 0.9, 1.1])]
    (run_dir / "metrics.csv").write_text("\n".join(rows) + "\n")
    record = record_from_metrics(run_dir / "metrics.csv")
    assert [f.kind for f in diagnose(record)] == ["overfitting"]
    assert cli_main(["doctor", str(run_dir), "--write", "--no-plots"]) == 1
    out = capsys.readouterr().out
    assert "Overfitting from epoch 4" in out and "per-epoch logs only" in out
    assert json.dumps(record)  # JSON-friendly
    assert "## 1. Overfitting" in (run_dir / "doctor.md").read_text()


def test_resumed_run_keeps_the_doctor_record(tmp_path):
    x, y = blobs(64)
    somanet.manual_seed(0)
    model = mlp([16, 8, 4])
    whole = Trainer(enable_progress_bar=False, doctor=Doctor(every_n_steps=3, verbose=False))
    whole.fit(model, (x, y), epochs=4, loss="cross_entropy", batch_size=16)
    somanet.manual_seed(0)
    model = mlp([16, 8, 4])
    first = Trainer(enable_progress_bar=False, run_dir=tmp_path, doctor=Doctor(every_n_steps=3, verbose=False))
    first.fit(model, (x, y), epochs=2, loss="cross_entropy", batch_size=16)
    model = mlp([16, 8, 4])
    second = Trainer(enable_progress_bar=False, run_dir=tmp_path, doctor=Doctor(every_n_steps=3, verbose=False))
    second.fit(model, (x, y), epochs=4, loss="cross_entropy", batch_size=16, resume=tmp_path)
    a, b = whole.doctor.record, second.doctor.record
    assert b["loss_steps"] == a["loss_steps"] == list(range(1, 17))
    np.testing.assert_allclose(b["losses"], a["losses"], rtol=1e-6)
    assert [s["step"] for s in b["samples"]] == [s["step"] for s in a["samples"]] == [0, 3, 6, 9, 12, 15]
    assert json.loads((tmp_path / "doctor.json").read_text())["epochs"]["loss"] == pytest.approx(a["epochs"]["loss"])


def test_long_runs_keep_a_bounded_record(monkeypatch):
    import somanet.train.doctor as doctor_module
    monkeypatch.setattr(doctor_module, "_MAX_LOSS_POINTS", 8)
    monkeypatch.setattr(doctor_module, "_MAX_SAMPLES", 4)
    doc = Doctor(every_n_steps=1, verbose=False)
    somanet.manual_seed(0)
    model = mlp([16, 8, 4])
    Trainer(enable_progress_bar=False, doctor=doc).fit(model, blobs(80), epochs=2, loss="cross_entropy",
                                                       batch_size=4)
    rec = doc.record
    assert len(rec["losses"]) < 8 and rec["loss_stride"] == 8 and len(rec["losses"]) == len(rec["loss_steps"])
    assert len(rec["samples"]) < 4 and rec["samples"][0]["step"] == 0
    assert rec["loss_steps"] == sorted(rec["loss_steps"])


def test_reports_without_matplotlib_say_plots_were_skipped(tmp_path, monkeypatch):
    import somanet.train.plots as plots

    def no_matplotlib(width, height):
        raise ImportError("plots need matplotlib: pip install 'somanet[plot]'")
    monkeypatch.setattr(plots, "_figure", no_matplotlib)
    somanet.manual_seed(0)
    model = mlp([16, 64, 64, 4])
    for p in model.parameters():
        p.array[...] = 0
    trainer = Trainer(enable_progress_bar=False, run_dir=tmp_path, plots=True, doctor=Doctor(verbose=False))
    trainer.fit(model, blobs(128), epochs=3, loss="cross_entropy")
    text = (tmp_path / "doctor.md").read_text()
    assert "## 1. Layers not learning" in text
    assert "plots skipped: plots need matplotlib: pip install 'somanet[plot]'" in text and "![" not in text


def test_cli_rejects_a_corrupt_record(tmp_path, capsys):
    (tmp_path / "doctor.json").write_text('{"samples": [{"no": 1}], "losses": []}')
    assert cli_main(["doctor", str(tmp_path)]) == 2
    assert "is not a valid doctor record" in capsys.readouterr().err
    (tmp_path / "doctor.json").write_text("{not json")
    assert cli_main(["doctor", str(tmp_path)]) == 2
    assert "invalid JSON" in capsys.readouterr().err
    (tmp_path / "doctor.json").unlink()
    assert cli_main(["doctor", str(tmp_path)]) == 2
    assert "neither doctor.json nor metrics.csv" in capsys.readouterr().err


def test_steps_that_optimize_by_themselves_get_only_the_findings_that_fit_them():
    class Adversarial(nn.Module):
        automatic_optimization = False

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 4)
            self.step = 0

        def training_step(self, batch, batch_idx):
            x, y = batch
            opt = self.trainer.optimizer
            opt.zero_grad()
            loss = nn.functional.cross_entropy(self.fc(x), y)
            loss.backward()
            opt.step()
            self.step += 1
            # A loss that swings like a GAN's: it says nothing about the learning rate.
            return {"loss": loss.detach() * (10.0 if self.step % 3 == 0 else 1.0)}

    somanet.manual_seed(0)
    model = Adversarial()
    trainer = run(model, optim.SGD(model.parameters(), lr=0.01))
    assert trainer.doctor.record["manual_optimization"] and trainer.doctor.record["samples"] == []
    assert kinds(trainer) == []
    record = dict(trainer.doctor.record, manual_optimization=False)
    assert [f.kind for f in diagnose(record)] == ["learning_rate"]  # the same curve, read as a plain run


def test_oscillation_and_gapped_validation_from_synthetic_records():
    spikes = [1.0] * 5 + ([0.3] * 5 + [2.0] * 5) * 6 + [0.3] * 5  # jumping back, stretch after stretch
    record = {"losses": spikes, "samples": [], "layers": [], "activations": {}, "nan": None,
              "epochs": {"loss": [0.7, 0.6, 0.6]}}
    (finding,) = diagnose(record)
    assert finding.kind == "learning_rate" and finding.data["oscillating"] and not finding.data["diverged"]
    assert "oscillates" in finding.summary
    # Validation every other epoch (NaN in between): overfitting is still found, at the right epoch.
    nan = float("nan")
    record = {"losses": [], "samples": [], "layers": [], "activations": {}, "nan": None,
              "epochs": {"loss": [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2], "val_loss": [1.0, nan, 0.7, nan, 0.9, nan, 1.2]}}
    (finding,) = diagnose(record)
    assert finding.kind == "overfitting" and finding.data["best_epoch"] == 2
    assert "would have kept epoch 3" in finding.advice[0]
    # A smooth, falling curve is healthy.
    record = {"losses": list(np.linspace(2.0, 0.1, 60)), "samples": [], "layers": [], "activations": {},
              "nan": None, "epochs": {"loss": [1.5, 0.8, 0.3], "val_loss": [1.4, 0.9, 0.5]}}
    assert diagnose(record) == []
