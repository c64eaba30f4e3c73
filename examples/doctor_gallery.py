"""The training doctor on deliberately broken runs, one per finding, and on a healthy one.

    python examples/doctor_gallery.py                 # writes runs/doctor-gallery/<case>/doctor.md
    python examples/doctor_gallery.py --out DIR --overhead

Each case trains a few epochs on small synthetic data (or the bundled digits) with the doctor on, then
prints the case, the findings' kinds and the report's path. ``--overhead`` also measures the doctor's
cost on a small MLP (process CPU time, doctor off / default / every step, median of several runs).
"""
import argparse
import os
import sys
import time

import numpy as np

import somanet
from somanet import nn, optim
from somanet.models import MLP
from somanet.train import Doctor, Trainer


def blobs(n=512, d=16, k=4, scale=2.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centers = rng.standard_normal((k, d)) * scale
    return (rng.standard_normal((n, d)) + centers[y]).astype(np.float32), y


def mlp(sizes, act=nn.ReLU):
    return MLP(sizes[0], sizes[1:-1], sizes[-1], activation=act)


class LogLayer(nn.Module):
    """log(x) on ReLU outputs: a log of zero as soon as one unit is off."""

    def forward(self, x):
        return x.log()


def case_vanishing():
    model = mlp([16] + [32] * 19 + [4], nn.Sigmoid)
    return model, optim.SGD(model.parameters(), lr=0.1), blobs(), None, 5, 32


def case_learning_rate():
    model = mlp([16, 64, 64, 4])
    return model, optim.SGD(model.parameters(), lr=3.0), blobs(scale=0.5), None, 5, 32


def case_exploding_init():
    model = mlp([16, 64, 64, 4])
    for p in model.parameters():
        p.array[...] *= 100
    return model, optim.SGD(model.parameters(), lr=0.01), blobs(), None, 5, 32


def case_saturation():
    model = mlp([16, 64, 64, 4], nn.Tanh)
    for name, p in model.named_parameters():
        if name.endswith("weight"):
            p.array[...] *= 100
    return model, optim.Adam(model.parameters(), lr=1e-3), blobs(), None, 5, 32


def case_dead_relu():
    model = mlp([16, 64, 64, 4])
    model[0].bias.array[:48] = -20  # 48 of the 64 first-layer units can never fire
    return model, optim.Adam(model.parameters(), lr=1e-3), blobs(), None, 5, 32


def case_zero_init():
    model = mlp([16, 64, 64, 4])
    for p in model.parameters():
        p.array[...] = 0
    return model, optim.Adam(model.parameters(), lr=1e-3), blobs(), None, 5, 32


def case_overfitting():
    x, y = blobs(40, seed=1)
    x = x + 3 * np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    model = mlp([16, 256, 256, 4])
    return model, optim.Adam(model.parameters(), lr=1e-3), (x, y), blobs(200, seed=1), 15, 8


def case_nan_log_zero():
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), LogLayer(), nn.Linear(32, 4))
    return model, optim.Adam(model.parameters(), lr=1e-3), blobs(), None, 5, 32


def case_healthy_digits():
    from somanet.data.datasets.tabular import Digits
    model = mlp([64, 64, 10])
    return (model, optim.Adam(model.parameters(), lr=1e-3), Digits(train=True, flatten=True),
            Digits(train=False, flatten=True), 6, 32)


CASES = {"vanishing": case_vanishing, "learning-rate": case_learning_rate, "exploding-init": case_exploding_init,
         "tanh-x100": case_saturation, "dead-relu": case_dead_relu, "zero-init": case_zero_init,
         "overfitting": case_overfitting, "nan-log-zero": case_nan_log_zero,
         "healthy-digits": case_healthy_digits}


def run_case(name, out):
    somanet.manual_seed(0)
    model, optimizer, data, val, epochs, batch_size = CASES[name]()
    trainer = Trainer(enable_progress_bar=False, run_dir=os.path.join(out, name),
                      doctor=Doctor(every_n_steps=5, verbose=False))
    trainer.fit(model, data, val, epochs=epochs, optimizer=optimizer, loss="cross_entropy", batch_size=batch_size)
    return trainer.doctor


class TimedDoctor(Doctor):
    """A Doctor that adds up the CPU time spent in its own hooks (forward hooks included), less the cost of
    the timing itself."""

    seconds = 0.0
    calls = 0

    def _timed(self, fn):
        def run(*args, **kwargs):
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - t0
                self.calls += 1
        return run

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("on_fit_start", "on_before_optimizer_step", "on_train_batch_end", "on_train_epoch_end",
                     "on_train_end", "on_fit_end"):
            setattr(self, name, self._timed(getattr(self, name)))

    def _activation_hook(self, name, kind):
        return self._timed(super()._activation_hook(name, kind))


def _timer_cost(n=20000):
    """CPU seconds one timed call adds by itself (two clock reads and the bookkeeping)."""
    probe = TimedDoctor(verbose=False)
    noop = probe._timed(lambda: None)
    t0 = time.process_time()
    for _ in range(n):
        noop()
    t1 = time.process_time()
    for _ in range(n):
        pass
    return max(0.0, (t1 - t0 - (time.process_time() - t1)) / n)


def hook_cost(n=200000):
    """Microseconds the doctor's two per-step hooks take on a step it does not measure."""
    import timeit
    import types
    doctor = Doctor(verbose=False)
    doctor._manual, doctor._measure_next, doctor._params = False, False, []
    trainer = types.SimpleNamespace(last_loss=0.5, global_step=7, at_step_boundary=True, should_stop=False)
    outputs = {"loss": 0.5}
    empty = timeit.timeit(lambda: None, number=n)
    before = timeit.timeit(lambda: doctor.on_before_optimizer_step(trainer, None, None), number=n)
    end = timeit.timeit(lambda: doctor.on_train_batch_end(trainer, None, outputs, None, 0), number=n)
    print(f"  per-step hooks on an unmeasured step: on_before_optimizer_step {(before - empty) / n * 1e6:.2f} us, "
          f"on_train_batch_end {(end - empty) / n * 1e6:.2f} us")


def self_time(repeats=5, epochs=20):
    """The doctor's own CPU time (its hooks, timed inside) as a share of the rest of the fit."""
    from somanet.data.datasets.tabular import Digits
    data = Digits(train=True, flatten=True)
    cost = _timer_cost()
    for every in (Doctor().every_n_steps, 50, 1):
        shares = []
        for _ in range(repeats):
            somanet.manual_seed(0)
            model = mlp([64, 128, 128, 10])
            doctor = TimedDoctor(every_n_steps=every, verbose=False)
            trainer = Trainer(enable_progress_bar=False, doctor=doctor)
            t0 = time.process_time()
            trainer.fit(model, data, epochs=epochs, optimizer=optim.Adam(model.parameters(), lr=1e-3),
                        loss="cross_entropy", batch_size=32)
            total = time.process_time() - t0 - doctor.calls * cost
            own = doctor.seconds - doctor.calls * cost
            shares.append(own / (total - own))
        print(f"  doctor's own CPU time, every {every:3d} steps: median {np.median(shares) * 100:.2f} % of the rest "
              f"of the fit (min {min(shares) * 100:.2f} %, max {max(shares) * 100:.2f} %, {repeats} runs; "
              f"timer cost {cost * 1e6:.2f} us per call subtracted)")


def overhead(repeats=9, epochs=20):
    """Process CPU time of a small digits MLP fit, doctor off / default / every step (min and median of
    ``repeats`` interleaved runs: the minimum is the least disturbed by other work on the machine)."""
    from somanet.data.datasets.tabular import Digits
    data = Digits(train=True, flatten=True)
    configs = {"off": lambda: False, f"default (every {Doctor().every_n_steps} steps)": lambda: Doctor(verbose=False),
               "every step": lambda: Doctor(every_n_steps=1, verbose=False)}
    times = {k: [] for k in configs}
    steps = 0
    for _ in range(repeats):
        for name, make in configs.items():
            somanet.manual_seed(0)
            model = mlp([64, 128, 128, 10])
            trainer = Trainer(enable_progress_bar=False, doctor=make())
            t0 = time.process_time()
            trainer.fit(model, data, epochs=epochs, optimizer=optim.Adam(model.parameters(), lr=1e-3),
                        loss="cross_entropy", batch_size=32)
            times[name].append(time.process_time() - t0)
            steps = trainer.global_step
    base_min, base_med = min(times["off"]), float(np.median(times["off"]))
    for name, ts in times.items():
        lo, med = min(ts), float(np.median(ts))
        print(f"  {name:26s} min {lo:6.3f} s ({(lo / base_min - 1) * 100:+5.1f} %)   median {med:6.3f} s "
              f"({(med / base_med - 1) * 100:+5.1f} %)   CPU, {steps} steps")
    # The cost of one measured step, from the every-step runs, spread over the default interval.
    per_step = base_min / steps
    measured = (min(times["every step"]) - base_min) / steps
    n = Doctor().every_n_steps
    print(f"  a step: {per_step * 1e3:.3f} ms; a measured step costs {measured * 1e3:.3f} ms more; every "
          f"{n} steps that is {measured / n / per_step * 100:.2f} % of the step time")
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("runs", "doctor-gallery"))
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="run only these cases")
    parser.add_argument("--overhead", action="store_true", help="also measure the doctor's overhead")
    args = parser.parse_args(argv)
    for name in args.case or CASES:
        doctor = run_case(name, args.out)
        print(f"{name:15s} -> {[f.kind for f in doctor.findings] or 'no findings'}  ({doctor.report_path})")
    if args.overhead:
        print("doctor overhead, small MLP on digits (64-128-128-10, batch 32):")
        hook_cost()
        self_time()
        overhead()
    return 0


if __name__ == "__main__":
    sys.exit(main())
