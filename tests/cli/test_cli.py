"""The ``somanet`` command: end to end in subprocesses (train, evaluate, predict, resume) and its
error handling (in-process, through ``main``): clear messages, non-zero exits, nothing overwritten."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from somanet.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def somanet_cmd():
    script = os.path.join(os.path.dirname(sys.executable), "somanet")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "somanet.cli"]


def run(args, cwd):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(somanet_cmd() + list(args), cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def last_row(path):
    with open(path) as f:
        return list(csv.DictReader(f))[-1]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """``somanet train`` with no arguments: the default recipe on the bundled digits."""
    cwd = tmp_path_factory.mktemp("default")
    proc = run(["train"], cwd)
    assert proc.returncode == 0, proc.stderr
    return proc, cwd, cwd / "runs" / "digits-mlp-001"


@pytest.fixture(scope="module")
def digits_val():
    from somanet.data.datasets import Digits
    return Digits(train=False, flatten=True)


# ----------------------------------------------------------------------------- end to end
def test_default_recipe_reaches_its_accuracy(default_run):
    proc, cwd, run_dir = default_run
    lines = proc.stdout.splitlines()
    epochs = [line for line in lines if line.startswith("Epoch ")]
    # Not a terminal: exactly one line per epoch, and nothing else from the progress display.
    assert [e.split(" - ")[0] for e in epochs] == [f"Epoch {i}/20" for i in range(1, 21)]
    assert "\r" not in proc.stdout
    assert lines[-1] == "Run directory: runs/digits-mlp-001"
    assert any(line.startswith("Final metrics (epoch 20): ") for line in lines)
    assert float(last_row(run_dir / "metrics.csv")["val_accuracy"]) >= 0.97
    best = re.search(r"Best val_accuracy: ([0-9.]+)", proc.stdout)
    assert best and float(best.group(1)) >= 0.97
    assert sorted(os.listdir(run_dir)) == ["checkpoints", "config.json", "doctor.json", "doctor.md", "metrics.csv",
                                           "plots", "summary.txt"]
    assert sorted(os.listdir(run_dir / "plots")) == ["confusion_matrix.png", "history.png", "lr.png",
                                                      "predictions.png", "top_losses.png"]
    for png in os.listdir(run_dir / "plots"):
        data = (run_dir / "plots" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, png
    assert json.loads((run_dir / "config.json").read_text())["recipe"] == "digits-mlp"
    assert "Total params:" in (run_dir / "summary.txt").read_text()


def test_evaluate_and_predict_in_a_subprocess(default_run, digits_val, tmp_path):
    _, cwd, run_dir = default_run
    proc = run(["evaluate", str(run_dir)], cwd)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"validation \(359 samples\): loss: [0-9.]+ - accuracy: ([0-9.]+) - precision", proc.stdout)
    assert match and float(match.group(1)) >= 0.97, proc.stdout

    np.save(tmp_path / "ten.npy", digits_val.data[:10])
    proc = run(["predict", str(run_dir), str(tmp_path / "ten.npy")], cwd)
    assert proc.returncode == 0, proc.stderr
    predicted = [int(m) for m in re.findall(r"^sample \d+: predicted (\d)", proc.stdout, re.M)]
    assert len(predicted) == 10
    assert np.mean(np.array(predicted) == digits_val.targets[:10]) >= 0.9

    # The same digit as a picture, dark ink on white paper and four times larger.
    plt = pytest.importorskip("matplotlib.pyplot")
    image = np.kron(digits_val.data[3].reshape(8, 8), np.ones((4, 4)))
    plt.imsave(tmp_path / "digit.png", image, cmap="gray_r")
    proc = run(["predict", str(run_dir), str(tmp_path / "digit.png"), "--top-k", "2"], cwd)
    assert proc.returncode == 0, proc.stderr
    assert re.match(rf"sample 0: predicted {predicted[3]} \(p=[0-9.]+\); top-2: ", proc.stdout), proc.stdout


def test_resume_in_a_subprocess_equals_the_uninterrupted_run(tmp_path):
    full = run(["train", "--epochs", "3", "--out", "full", "--no-plots"], tmp_path)
    assert full.returncode == 0, full.stderr
    cut = run(["train", "--epochs", "3", "--max-steps", "60", "--out", "cut", "--no-plots"], tmp_path)
    assert cut.returncode == 0, cut.stderr
    assert "Stopped: max_steps=60 reached" in cut.stdout
    assert cut.stdout.count("\nEpoch ") + cut.stdout.startswith("Epoch ") == 2  # epoch 2 ends mid-way
    resumed = run(["train", "--resume", "cut", "--no-plots"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("Resuming digits-mlp")
    for name in ("model.safetensors", "state.safetensors"):
        assert (tmp_path / "full/checkpoints/last" / name).read_bytes() == \
               (tmp_path / "cut/checkpoints/last" / name).read_bytes(), name
    assert (tmp_path / "full/metrics.csv").read_text() == (tmp_path / "cut/metrics.csv").read_text()


def test_unknown_recipe_exits_non_zero_in_a_subprocess(tmp_path):
    proc = run(["train", "digits-mpl"], tmp_path)
    assert proc.returncode == 2
    m = re.fullmatch(r"somanet: error: unknown recipe 'digits-mpl'; known recipes: ([a-z0-9, -]*) "
                     r"\(see 'somanet recipes'\)\n", proc.stderr)
    assert m, proc.stderr
    known = m.group(1).split(", ")
    assert known == sorted(known) and {"digits-mlp", "mnist-lenet", "spirals-mlp"} <= set(known)
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- other commands
def test_recipes_summary_and_lr_find(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^digits-mlp +MLP .*\(default\)$", out, re.M)
    assert re.search(r"^mnist-lenet +", out, re.M) and re.search(r"^spirals-mlp +", out, re.M)

    assert main(["summary", "spirals-mlp"]) == 0
    out = capsys.readouterr().out
    assert "Input shape: [32, 2]" in out and "Total params: 4,482" in out

    assert main(["lr-find", "digits-mlp", "--num-steps", "60", "--out", "find"]) == 0
    out = capsys.readouterr().out
    lr = float(re.search(r"Suggested learning rate: ([0-9.e-]+)", out).group(1))
    assert 1e-4 <= lr <= 0.5
    assert (tmp_path / "find" / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "find" / "lr_find.csv").read_text().startswith("lr,loss,smoothed_loss\n")


def test_config_file_and_overrides(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg.toml").write_text('epochs = 5\nbatch_size = 64\n[optimizer]\nname = "sgd"\nlr = 0.2\n'
                                       'momentum = 0.9\n[model]\nhidden_sizes = [32]\n')
    code = main(["train", "--config", "cfg.toml", "--epochs", "1", "--set", "optimizer.nesterov=true",
                 "--out", "run", "--no-plots"])
    assert code == 0, capsys.readouterr().err
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["epochs"] == 1 and cfg["batch_size"] == 64  # the command line wins over the file
    assert cfg["optimizer"] == {"name": "sgd", "lr": 0.2, "momentum": 0.9, "nesterov": True}
    assert cfg["model"]["hidden_sizes"] == [32] and cfg["model"]["batch_norm"] is True
    pytest.importorskip("yaml")
    (tmp_path / "cfg.yaml").write_text("recipe: spirals-mlp\nepochs: 1\n")
    assert main(["train", "--config", "cfg.yaml", "--out", "spirals", "--no-plots"]) == 0
    assert json.loads((tmp_path / "spirals" / "config.json").read_text())["recipe"] == "spirals-mlp"


def test_mnist_lenet_with_a_data_dir(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    mnist = os.path.join(data_dir, "mnist")
    code = main(["train", "mnist-lenet", "--data-dir", mnist, "--epochs", "1", "--set", "data.limit=1920",
                 "--lr", "0.003", "--out", "lenet", "--no-plots"])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "Training mnist-lenet: 1920 training / 1000 validation samples" in out
    assert main(["evaluate", "lenet"]) == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"^test \(2000 samples\): loss: [0-9.]+ - accuracy: ([0-9.]+)", out, re.M).group(1))
    assert accuracy > 0.7, out  # one short epoch is far above chance (0.1)
    plt = pytest.importorskip("matplotlib.pyplot")
    from somanet.data.datasets import MNIST
    plt.imsave(tmp_path / "digit.png", MNIST(mnist, train=False).data[8000], cmap="gray")
    assert main(["predict", "lenet", "digit.png"]) == 0
    assert re.match(r"sample 0: predicted \d \(p=[0-9.]+\); top-3: ", capsys.readouterr().out)


# NumPy's own overflow warnings are expected on the way to the report: non-finite values are reported, not hidden.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
def test_a_diverging_run_exits_1_with_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--set", "optimizer.name=sgd", "--set", "optimizer.lr=1e30", "--out", "nan",
                 "--no-plots"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("TerminateOnNaN") == 1
    assert re.search(r"somanet: training failed: TerminateOnNaN: non-finite training at epoch 1, step \d+ "
                     r"\(batch \d+ of the epoch\): loss = nan; first parameter with non-finite gradients: "
                     r"'0\.weight'", err), err


# ----------------------------------------------------------------------------- bad input
def _error(capsys, args, code=2):
    assert main(args) == code
    captured = capsys.readouterr()
    assert captured.err.startswith("somanet: error: ")
    return captured.err


def test_bad_training_input_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("precious")
    err = _error(capsys, ["train", "--out", "taken"])
    assert "taken already exists and is not empty; nothing was overwritten" in err
    assert (tmp_path / "taken" / "keep.txt").read_text() == "precious"
    assert "needs a folder: pass --data-dir" in _error(capsys, ["train", "mnist-lenet", "--out", "m"])
    assert "unknown config key 'optimiser'" in _error(capsys, ["train", "--set", "optimiser.lr=1", "--out", "x"])
    (tmp_path / "bad.toml").write_text("epochs = [\n")
    assert "bad.toml is not valid TOML" in _error(capsys, ["train", "--config", "bad.toml"])
    (tmp_path / "neg.toml").write_text("epochs = 0\n")
    assert "config 'epochs' must be an int >= 1, got 0" in _error(capsys, ["train", "--config", "neg.toml"])
    assert "config 'optimizer': " in _error(capsys, ["train", "--set", "optimizer.momentun=0.9", "--out", "x"])
    assert "config file nope.toml does not exist" in _error(capsys, ["train", "--config", "nope.toml"])
    assert sorted(os.listdir(tmp_path)) == ["bad.toml", "neg.toml", "taken"]


def test_bad_run_directories_say_which_file_and_why(default_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert "run directory nowhere does not exist" in _error(capsys, ["evaluate", "nowhere"])
    (tmp_path / "empty").mkdir()
    assert "empty/config.json is missing: empty is not a run directory" in _error(capsys, ["evaluate", "empty"])
    shutil.copytree(default_run[2], tmp_path / "run")
    assert "--lr cannot be changed when resuming" in _error(capsys, ["train", "--resume", "run", "--lr", "0.1"])

    model_file = tmp_path / "run" / "checkpoints" / "best" / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:-100])
    err = _error(capsys, ["evaluate", "run"])
    assert re.search(r"run/checkpoints/best/model\.safetensors is corrupt: it has \d+ bytes", err)
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "best")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "last")
    assert "run/checkpoints/best is missing: the run has no checkpoint" in _error(capsys, ["evaluate", "run"])
    assert "run/checkpoints/last is missing: there is no checkpoint to resume" in \
        _error(capsys, ["train", "--resume", "run"])
    (tmp_path / "run" / "config.json").write_text("{oops")
    np.save(tmp_path / "x.npy", np.zeros(64, np.float32))
    assert "run/config.json is corrupt: not valid JSON" in _error(capsys, ["predict", "run", "x.npy"])


def test_bad_prediction_inputs(default_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_dir = str(default_run[2])
    assert "input missing.npy does not exist" in _error(capsys, ["predict", run_dir, "missing.npy"])
    np.save(tmp_path / "wrong.npy", np.zeros((3, 10), np.float32))
    assert "holds an array of shape (3, 10); this model takes samples of shape (64,)" in \
        _error(capsys, ["predict", run_dir, "wrong.npy"])
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert "cannot be loaded without pickle" in _error(capsys, ["predict", run_dir, "objects.npy"])
    (tmp_path / "notes.txt").write_text("3")
    assert "unsupported file type '.txt'" in _error(capsys, ["predict", run_dir, "notes.txt"])
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert "broken.png cannot be read as an image" in _error(capsys, ["predict", run_dir, "broken.png"])
    # One sample given as an 8 x 8 array is accepted as the 64 features it holds.
    from somanet.data.datasets import Digits
    np.save(tmp_path / "square.npy", Digits(train=False).data[0, 0])
    assert main(["predict", run_dir, "square.npy"]) == 0
    assert capsys.readouterr().out.startswith("sample 0: predicted ")


def _one_line_error(capsys, args):
    """``main(args)`` exits 2 with exactly one line on stderr (no traceback); returns that line."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("somanet: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_non_finite_or_empty_prediction_inputs_are_refused(default_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_dir = str(default_run[2])
    np.save(tmp_path / "nan.npy", np.full((1, 64), np.nan, np.float32))
    assert "nan.npy holds non-finite values (NaN or infinity) in 1 of 1 sample(s), the first being sample 0" in \
        _one_line_error(capsys, ["predict", run_dir, "nan.npy"])
    batch = np.zeros((5, 64), np.float64)
    batch[3, 10] = -np.inf
    np.save(tmp_path / "inf.npy", batch)
    assert "in 1 of 5 sample(s), the first being sample 3" in _one_line_error(capsys, ["predict", run_dir, "inf.npy"])
    batch[3, 10] = 1e300  # finite as float64, infinite as the model's float32
    np.save(tmp_path / "huge.npy", batch)
    assert "huge.npy holds values too large for float32" in _one_line_error(capsys, ["predict", run_dir, "huge.npy"])
    np.save(tmp_path / "empty.npy", np.zeros((0, 64), np.float32))
    assert "empty.npy holds no samples (an array of shape (0, 64))" in \
        _one_line_error(capsys, ["predict", run_dir, "empty.npy"])


def test_a_truncated_npy_file_is_called_truncated(default_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "cut.npy", np.zeros((10, 64), np.float32))
    data = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-100])
    err = _one_line_error(capsys, ["predict", str(default_run[2]), "cut.npy"])
    assert re.search(r"cut\.npy is truncated or corrupt: its header describes a float32 array of shape \(10, 64\), "
                     r"2,560 bytes of data, but only 2,460 bytes follow the header", err), err
    assert "pickle" not in err and "Python objects" not in err


def _big_png(path, width, height):
    """A black 1-bit PNG of width x height pixels, written row by row: a few kilobytes on disk."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = bytes(1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_an_oversized_image_is_refused_before_it_is_decoded(default_run, tmp_path, monkeypatch, capsys):
    image = pytest.importorskip("PIL.Image")
    monkeypatch.chdir(tmp_path)
    _big_png(tmp_path / "huge.png", 12000, 12000)
    assert os.path.getsize(tmp_path / "huge.png") < 200_000
    decoded = []
    real_load = image.Image.load
    monkeypatch.setattr(image.Image, "load", lambda self: decoded.append(self.size) or real_load(self))
    err = _one_line_error(capsys, ["predict", str(default_run[2]), "huge.png"])
    assert "huge.png is a 12000 x 12000 image (144,000,000 pixels); predict reads images of at most " \
           "4,194,304 pixels (2048 x 2048)" in err, err
    assert decoded == []  # only the header was read
    # A large image within the limit is still read (and scaled down to the model's 8 x 8).
    _big_png(tmp_path / "large.png", 1000, 800)
    assert main(["predict", str(default_run[2]), "large.png"]) == 0
    assert capsys.readouterr().out.startswith("sample 0: predicted ") and set(decoded) == {(1000, 800)}


def test_config_errors_fail_before_a_run_directory_exists(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    cases = [
        (["--set", 'loss="bogus"'], "config 'loss': unknown loss 'bogus'"),
        (["--set", 'metrics=["nope"]'], "config 'metrics': unknown metric 'nope'"),
        (["--set", 'loss={"name": "mse", "bogus": 1}'], "config 'loss': "),
        (["--set", 'metrics=["accuracy", "acc"]'], "config 'metrics' names accuracy more than once"),
        (["--set", "checkpoint.monitor=val_f1"],
         "config 'checkpoint.monitor' is 'val_f1', which this run does not log"),
        (["--set", "early_stopping.monitor=bogus"], "config 'early_stopping.monitor' is 'bogus'"),
        (["--set", "checkpoint.save_top_k=-5"], "config 'checkpoint': ModelCheckpoint: save_top_k must be >= -1"),
        (["--set", "trainer.accumulate_grad_batches=0"], "config 'trainer': Trainer: accumulate_grad_batches"),
    ]
    for extra, message in cases:
        assert message in _one_line_error(capsys, ["train", "--out", "run", "--no-plots", *extra]), extra
        assert not os.path.exists("run"), extra
    assert "--out afile/sub cannot be created: afile is a file, not a folder" in \
        _one_line_error(capsys, ["train", "--out", "afile/sub"])
    assert "--out afile/deeper/sub cannot be created: afile is a file" in \
        _one_line_error(capsys, ["lr-find", "digits-mlp", "--out", "afile/deeper/sub"])
    assert "--min-lr must be below --max-lr, got --min-lr 1 and --max-lr 0.001" in \
        _one_line_error(capsys, ["lr-find", "digits-mlp", "--min-lr", "1", "--max-lr", "0.001", "--out", "lr"])
    assert "--num-steps must be at least 2" in \
        _one_line_error(capsys, ["lr-find", "digits-mlp", "--num-steps", "1", "--out", "lr"])
    assert "config 'loss': unknown loss" in \
        _one_line_error(capsys, ["lr-find", "digits-mlp", "--set", 'loss="bogus"', "--out", "lr"])
    assert sorted(os.listdir(tmp_path)) == ["afile"]


@pytest.mark.skipif(os.name != "posix", reason="names a dead process id the POSIX way")
def test_resume_and_evaluate_recover_a_checkpoint_left_half_swapped(default_run, tmp_path, monkeypatch, capsys):
    import subprocess
    from somanet.train import _io
    monkeypatch.chdir(tmp_path)
    shutil.copytree(default_run[2], tmp_path / "run")
    folder = tmp_path / "run" / "checkpoints"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # A save killed between its two renames: no checkpoints/last, the new one complete under a hidden name.
    os.rename(folder / "last", folder / f".last.tmp-{dead.pid}-{_io._host_tag()}-00c0ffee")
    assert main(["evaluate", "run", "--checkpoint", "last"]) == 0
    assert "(epoch 20)" in capsys.readouterr().out
    assert sorted(os.listdir(folder)) == ["best", "last"]
    os.rename(folder / "last", folder / f".last.tmp-{dead.pid}-{_io._host_tag()}-00c0ffee")
    assert main(["train", "--resume", "run", "--epochs", "21", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Resuming digits-mlp") and "Final metrics (epoch 21)" in out, out
    assert sorted(os.listdir(folder)) == ["best", "last"]


def test_summary_of_a_gan_recipe_describes_both_networks(data_dir, capsys):
    assert main(["summary", "dcgan-mnist", "--data-dir", os.path.join(data_dir, "mnist")]) == 0
    out = capsys.readouterr().out
    assert "Generator (noise [+ label] -> examples)" in out and "Discriminator (examples" in out
