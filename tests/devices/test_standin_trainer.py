"""``Trainer(device=...)`` and ``somanet train --device`` on the stand-in device (see standin.py): the same
losses and weights as on the CPU, checkpoints with host arrays, resuming, and the CUDA error."""
import numpy as np
import pytest

import somanet
from devices.standin import StandinArray
from somanet import optim
from somanet.models import MLP
from somanet.train import Trainer, seed_everything

CPU = somanet.device("cpu")


def _blobs(n=48, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    return (rng.standard_normal((n, d)) + 2.0 * y[:, None]).astype(np.float32), y


def _fit(dev, run_dir=None, epochs=2, max_steps=None, resume=None, seed=0):
    seed_everything(seed)
    model = MLP(6, [16], 3, dropout=0.2)
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    record = somanet.train.LambdaCallback(on_train_batch_end=lambda t, m, out, b, i: losses.append(out["loss"]))
    trainer = Trainer(device=dev, run_dir=run_dir, enable_progress_bar=False, plots=False)
    history = trainer.fit(model, _blobs(), _blobs(24, seed=1), epochs=epochs, optimizer=opt, loss="cross_entropy",
                          metrics=["accuracy"], batch_size=8, max_steps=max_steps, resume=resume,
                          callbacks=[record])
    return model, opt, trainer, history.history, losses


def _weights(model):
    return {k: somanet.devices.to_host(v.array) for k, v in model.state_dict().items()}


def test_fit_on_the_device_matches_the_cpu(device):
    cpu_model, _, _, cpu_history, cpu_losses = _fit(None)
    model, opt, trainer, history, losses = _fit(device)
    assert trainer.device == device and all(p.device == device for p in model.parameters())
    assert all(type(v) is StandinArray for s in opt.state.values() for k, v in s.items() if k != "step")
    np.testing.assert_allclose(losses, cpu_losses, rtol=1e-5, atol=1e-6)
    assert history.keys() == cpu_history.keys()
    for key in history:
        np.testing.assert_allclose(history[key], cpu_history[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for key, value in _weights(model).items():
        np.testing.assert_allclose(value, _weights(cpu_model)[key], rtol=1e-5, atol=1e-6, err_msg=key)
    x, y = _blobs(24, seed=1)
    predicted = trainer.predict(model, x)
    assert type(predicted) is np.ndarray and predicted.shape == (24, 3)
    logs = trainer.evaluate(model, (x, y))
    np.testing.assert_allclose(logs["loss"], history["val_loss"][-1], rtol=1e-6)


def test_a_device_checkpoint_loads_on_the_cpu_and_resumes_on_the_device(device, tmp_path):
    full = _fit(device, tmp_path / "full", epochs=2)
    cut = _fit(device, tmp_path / "cut", epochs=2, max_steps=9)
    assert cut[2].global_step == 9
    checkpoint = somanet.train.load_checkpoint(tmp_path / "cut" / "checkpoints" / "last")
    assert all(type(a) is np.ndarray for a in checkpoint.model_state.values())
    cpu_model = MLP(6, [16], 3, dropout=0.2)
    cpu_model.load_state_dict(checkpoint.model_state)
    resumed = _fit(device, tmp_path / "cut", epochs=2, resume=tmp_path / "cut", seed=1234)
    assert resumed[2].global_step == full[2].global_step
    assert all(p.device == device for p in resumed[0].parameters())
    for key, value in _weights(resumed[0]).items():
        np.testing.assert_allclose(value, _weights(full[0])[key], rtol=1e-6, atol=1e-7, err_msg=key)
    np.testing.assert_allclose(resumed[3]["loss"], full[3]["loss"], rtol=1e-6)


def test_cuda_without_a_gpu_is_a_clear_error():
    if somanet.cuda.is_available():
        pytest.skip("a GPU is available here")
    with pytest.raises(RuntimeError, match=r"Trainer: CUDA is not available: install somanet\[cuda\] on a machine "
                                           r"with an NVIDIA GPU"):
        Trainer(device="cuda")
    with pytest.raises(RuntimeError, match="device"):
        Trainer(device="nonsense")


def _metrics_csv(run):
    return [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()]


def test_somanet_train_device_flag_trains_there_and_resumes(device, tmp_path, monkeypatch, capsys):
    from somanet.cli.main import main

    monkeypatch.chdir(tmp_path)
    common = ["--set", "model.hidden_sizes=[16]", "--set", "data.n_per_class=80", "--no-plots"]
    assert main(["train", "spirals-mlp", "--epochs", "2", "--out", "cpu", *common]) == 0
    code = main(["train", "spirals-mlp", "--epochs", "2", "--max-steps", "6", "--out", "dev", "--device", "standin",
                 *common])
    assert code == 0, capsys.readouterr().err
    assert main(["train", "--resume", "dev", "--device", "standin", "--no-plots"]) == 0
    cpu, dev = _metrics_csv(tmp_path / "cpu"), _metrics_csv(tmp_path / "dev")
    assert cpu[0] == dev[0] and len(cpu) == len(dev) == 3
    for a, b in zip(cpu[1:], dev[1:]):
        np.testing.assert_allclose([float(v) for v in b], [float(v) for v in a], rtol=1e-4, atol=1e-6)
    checkpoint = somanet.train.load_checkpoint(tmp_path / "dev" / "checkpoints" / "last")
    assert all(type(a) is np.ndarray for a in checkpoint.model_state.values())


def test_device_flags_without_cuda_are_clear_errors(tmp_path, monkeypatch, capsys):
    if somanet.cuda.is_available():
        pytest.skip("a GPU is available here")
    from somanet.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "spirals-mlp", "--device", "cuda", "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available: install somanet[cuda] on a machine with an NVIDIA GPU" in err, err
    assert not (tmp_path / "run").exists()
    pytest.importorskip("torch")
    assert main(["bench", "--device", "cuda", "--only", "mlp"]) == 2
    assert "CUDA is not available: install somanet[cuda]" in capsys.readouterr().err


def test_bench_workloads_run_and_agree_with_pytorch_on_the_device(device):
    import os
    import sys

    from reference import torch_or_skip

    torch = torch_or_skip()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    try:
        from benchmarks import workloads
    finally:
        sys.path.pop(0)
    wl = workloads.get(["mlp"])[0]
    # Raises unless somanet on the device computes PyTorch's logits and first training losses.
    workloads.check_pair(torch, wl, steps=2, device=device)
    step, torch_step = workloads.build_pair(torch, wl, train=True, device=device)
    loss = step()
    assert loss.device == device and np.isfinite(loss.item())
    assert workloads.torch_device(torch, device).type == "cpu"
