"""``Trainer(precision=...)``: "bf16-mixed" and "16-mixed" train with autocast (and a GradScaler for float16),
keep the parameters float32, save the scaler in checkpoints, and resume an interrupted run bit for bit."""
import json

import numpy as np
import pytest

import somanet
from somanet import nn, optim
from somanet.data import DataLoader, TensorDataset
from somanet.random import Generator
from somanet.train import LambdaCallback, Trainer, load_checkpoint, seed_everything

pytest.importorskip("ml_dtypes")

# Overflowing float16 values and infinite gradients are what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _data(n=64, scale=1.0):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    y = (x @ rng.standard_normal((6, 1)) * scale).astype(np.float32)
    return x, y


def _run(run_dir, precision, seed=0, max_steps=None, resume=None, scale=1.0, record=None, sgd=None, dropout=0.2):
    seed_everything(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 1))
    opt = optim.SGD(model.parameters(), lr=sgd) if sgd else optim.Adam(model.parameters(), lr=1e-2)
    x, y = _data(scale=scale)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=Generator(seed + 1))
    callbacks = []
    if record is not None:
        callbacks.append(LambdaCallback(on_train_batch_end=lambda t, m, out, b, i: record.append(
            (t.global_step, out["loss"], t.scaler.get_scale() if t.scaler is not None else None))))
    trainer = Trainer(run_dir=run_dir, enable_progress_bar=False, plots=False, precision=precision)
    trainer.fit(model, loader, epochs=3, optimizer=opt, loss="mse", max_steps=max_steps, resume=resume,
                callbacks=callbacks)
    return model, opt, trainer


@pytest.mark.parametrize("precision", ["32", "bf16-mixed", "16-mixed"])
def test_precision_modes_train_with_float32_parameters(tmp_path, precision):
    seen = []
    model, opt, trainer = _run(tmp_path, precision, record=seen)
    assert trainer.precision == precision
    assert all(p.dtype == somanet.float32 and p.grad is None or p.grad.dtype == somanet.float32
               for p in model.parameters())
    for state in opt.state.values():
        assert all(v.dtype == somanet.float32 for v in state.values() if isinstance(v, somanet.Tensor) and v.ndim)
    losses = [loss for _, loss, _ in seen]
    assert np.mean(losses[-8:]) < np.mean(losses[:8])
    assert (trainer.scaler is not None) == (precision == "16-mixed")
    if precision != "32":
        assert json.loads((tmp_path / "config.json").read_text())["precision"] == precision


def test_mixed_precision_follows_float32_closely(tmp_path):
    # Small targets: no scaled gradient overflows float16, so no step is skipped and the runs stay together.
    ref, _, _ = _run(tmp_path / "32", "32", sgd=0.1, dropout=0.0, scale=0.1)
    for precision, tol in (("bf16-mixed", 0.01), ("16-mixed", 0.001)):
        seen = []
        model, _, _ = _run(tmp_path / precision, precision, sgd=0.1, dropout=0.0, scale=0.1, record=seen)
        assert precision == "bf16-mixed" or all(s == 2.0 ** 16 for _, _, s in seen)
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            scale = float(np.abs(q.array).max())
            assert np.abs(p.array - q.array).max() <= tol * scale, (precision, name)


def test_autocast_is_on_in_the_forward_pass_and_off_after(tmp_path):
    dtypes = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 1)

        def forward(self, x):
            out = self.lin(x)
            dtypes.append(out.dtype)
            return out

    seed_everything(0)
    x, y = _data()
    trainer = Trainer(enable_progress_bar=False, plots=False, precision="bf16-mixed")
    trainer.fit(Probe(), (x, y), (x, y), epochs=1, loss="mse", batch_size=32)
    assert dtypes and all(d == somanet.bfloat16 for d in dtypes)  # training and validation batches
    assert not somanet.is_autocast_enabled()
    out = trainer.predict(Probe(), x[:4])
    assert out.dtype == np.float32  # bfloat16 values, handed out as float32 arrays


def test_16_mixed_skips_overflowing_steps_and_backs_off(tmp_path):
    seen = []
    _run(tmp_path, "16-mixed", scale=300.0, record=seen)
    scales = [s for _, _, s in seen]
    assert scales[0] < 2.0 ** 16  # the first steps overflowed float16 and were skipped
    assert all(b <= a for a, b in zip(scales, scales[1:]))  # growth needs 2000 clean steps


@pytest.mark.parametrize("precision, stop_at", [("bf16-mixed", 11), ("16-mixed", 11), ("16-mixed", 8)])
def test_resume_is_bit_exact(tmp_path, precision, stop_at):
    full_seen, resumed_seen = [], []
    full = _run(tmp_path / "full", precision, scale=300.0, record=full_seen)
    first = _run(tmp_path / "cut", precision, max_steps=stop_at, scale=300.0)
    assert first[2].global_step == stop_at
    if precision == "16-mixed":
        saved = load_checkpoint(tmp_path / "cut").trainer_state["grad_scaler"]
        assert saved["scale"] == first[2].scaler.get_scale()
        assert saved["_growth_tracker"] == first[2].scaler._get_growth_tracker()
    resumed = _run(tmp_path / "cut", precision, seed=99, resume=tmp_path / "cut", scale=300.0, record=resumed_seen)
    for (key, a), b in zip(full[0].state_dict().items(), resumed[0].state_dict().values()):
        assert np.array_equal(a.array, b.array), key
    assert full[2].global_step == resumed[2].global_step
    tail = [e for e in full_seen if e[0] > stop_at]
    assert resumed_seen[-len(tail):] == tail and tail
    if precision == "16-mixed":
        assert full[2].scaler.state_dict() == resumed[2].scaler.state_dict()


def test_precision_is_checked():
    with pytest.raises(ValueError, match="precision must be"):
        Trainer(precision="8-mixed")
    assert Trainer(precision=16).precision == "16-mixed"
    assert Trainer(precision="bf16").precision == "bf16-mixed"
    assert Trainer(precision="32-true").precision == "32"


def test_16_mixed_clips_and_hooks_see_unscaled_gradients():
    seen = []

    def before_step(trainer, model, optimizer):
        g = model[0].weight.grad.array
        seen.append(float(np.abs(g).max()) if np.isfinite(g).all() else None)

    seed_everything(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))
    x, y = _data(scale=0.1)
    trainer = Trainer(enable_progress_bar=False, plots=False, precision="16-mixed", gradient_clip_val=1.0)
    trainer.fit(model, (x, y), epochs=1, optimizer=optim.SGD(model.parameters(), lr=0.1), loss="mse", batch_size=16,
                callbacks=[LambdaCallback(on_before_optimizer_step=before_step)])
    finite = [s for s in seen if s is not None]
    assert finite and max(finite) < 10.0  # the scale (65536) has been divided out
    assert trainer.last_grad_norm is not None and trainer.last_grad_norm < 10.0
