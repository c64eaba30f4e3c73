"""Framework overhead of ``Trainer.fit`` against a bare training loop on the same model and data.

    python benchmarks/bench_fit.py [--write] [--epochs 3] [--blocks 9]

Both sides train the default recipe's model (MLP 64-256-10 with batch norm and dropout, Adam) on the
bundled digits with batch size 32, shuffled by a DataLoader with its own generator. The bare loop
does what any hand-written loop does: zero_grad, forward, loss, backward, step, and ``loss.item()``
for a running loss. ``fit`` adds what it always does (History, TerminateOnNaN's loss and gradient
checks, the epoch's running loss) and, in the default configuration, the progress display (one
line per epoch to a non-terminal stream). Calls alternate fit / bare / fit / bare ... and the median
process CPU time per call is reported (BLAS limited to one thread); the overhead is ``fit / bare - 1``.
"""
import argparse
import io
import os
import statistics
import sys
import time

# One BLAS thread, and CPU time rather than wall time: the overhead is a few microseconds per step,
# which only a measure that other processes on the machine cannot inflate resolves.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import harness  # noqa: E402

import somanet  # noqa: E402
from somanet import nn, optim  # noqa: E402
from somanet.data import DataLoader  # noqa: E402
from somanet.data.datasets import Digits  # noqa: E402
from somanet.models import MLP  # noqa: E402
from somanet.train import Trainer  # noqa: E402


def make(seed=0):
    somanet.manual_seed(seed)
    model = MLP(64, [256], 10, dropout=0.2, batch_norm=True)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(Digits(train=True, flatten=True), batch_size=32, shuffle=True,
                        generator=somanet.Generator(seed))
    return model, opt, loader


def bare_loop(model, opt, loader, epochs):
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        total, count = 0.0, 0
        for x, y in loader:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            n = len(y)
            total += loss.item() * n
            count += n


def fit_loop(model, opt, loader, epochs, **trainer_kwargs):
    Trainer(**trainer_kwargs).fit(model, loader, epochs=epochs, optimizer=opt, loss=nn.CrossEntropyLoss())


def measure(epochs, blocks, variants):
    """Median CPU seconds per call of each variant, calls alternating between variants."""
    setups = {name: make() for name in variants}
    for name, fn in variants.items():  # warm-up
        fn(*setups[name], epochs)
    times = {name: [] for name in variants}
    for _ in range(blocks):
        for name, fn in variants.items():
            start = time.process_time()
            fn(*setups[name], epochs)
            times[name].append(time.process_time() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed call (45 steps each)")
    parser.add_argument("--blocks", type=int, default=15, help="timed calls per variant")
    parser.add_argument("--write", action="store_true", help="write the result into docs/benchmarks.md")
    args = parser.parse_args(argv)

    sink = io.StringIO()
    variants = {
        "bare loop": bare_loop,
        "fit (defaults: progress lines, NaN guard)": lambda m, o, ld, e: fit_loop(m, o, ld, e, progress_stream=sink),
        "fit (no progress, no NaN guard)": lambda m, o, ld, e: fit_loop(m, o, ld, e, enable_progress_bar=False,
                                                                       terminate_on_nan=False),
    }
    result = measure(args.epochs, args.blocks, variants)
    steps = args.epochs * len(make()[2])
    bare = result["bare loop"]
    rows = []
    for name, seconds in result.items():
        overhead = seconds / bare - 1.0
        rows.append((name, seconds, overhead))
        print(f"{name:45s} {harness.fmt_time(seconds):>10s} per {args.epochs} epochs "
              f"({harness.fmt_time(seconds / steps)} per step)  overhead {overhead * 100:+.1f} %")
    if args.write:
        lines = ["| loop | time per call | per step | overhead vs bare loop |", "| --- | ---: | ---: | ---: |"]
        for name, seconds, overhead in rows:
            lines.append(f"| {name} | {harness.fmt_time(seconds)} | {harness.fmt_time(seconds / steps)} | "
                         + ("--" if name == "bare loop" else f"{overhead * 100:+.1f} %") + " |")
        body = (f"Measured on {harness.machine_line()}. `python benchmarks/bench_fit.py --write`: the default recipe's "
                f"model (MLP 64-256-10, batch norm, dropout, Adam) on the bundled digits, batch size 32, "
                f"{args.epochs} epochs ({steps} steps) per call, median process CPU time of {args.blocks} calls "
                f"alternating between the loops, one BLAS thread. The bare loop is zero_grad / forward / loss / "
                f"backward / step / `loss.item()`; "
                f"`fit` adds the History, the epoch's running loss, TerminateOnNaN's loss and gradient checks and "
                f"the progress display (one line per epoch to a non-terminal stream). Target: under 5 %. Most of "
                f"the difference is TerminateOnNaN's gradient check (one BLAS dot product per parameter, a few "
                f"microseconds per step); `Trainer(terminate_on_nan=False)` or "
                f"`TerminateOnNaN(check_gradients=False)` removes it.\n\n"
                + "\n".join(lines))
        harness.write_section("Training loop overhead", body)
    return rows


if __name__ == "__main__":
    main()
