"""One training step of a 784-512-256-10 MLP (batch 128, Adam, cross-entropy), somanet against PyTorch.

Both models start from the same weights (PyTorch's state_dict loaded into somanet) and train on the same
batch; a step is ``zero_grad(); loss = criterion(model(x), y); loss.backward(); optimizer.step()``.

    python benchmarks/bench_mlp.py [--write] [--profile] [--threads N]
"""
import argparse
import cProfile
import os
import pstats
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import harness  # noqa: E402
import numpy as np  # noqa: E402  (after somanet: see benchmarks/__init__.py)

import somanet  # noqa: E402
from somanet import nn, optim  # noqa: E402

SIZES = (784, 512, 256, 10)
BATCH = 128


def build(torch):
    """Identical somanet and PyTorch models, optimizers, losses and one batch of data."""
    torch.manual_seed(0)
    t_model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256),
                                  torch.nn.ReLU(), torch.nn.Linear(256, 10))
    s_model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    s_model.load_state_dict({k: v.detach().numpy().copy() for k, v in t_model.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 784)).astype(np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int64)
    t_opt = torch.optim.Adam(t_model.parameters(), lr=1e-3)
    s_opt = optim.Adam(s_model.parameters(), lr=1e-3)
    t_loss, s_loss = torch.nn.CrossEntropyLoss(), nn.CrossEntropyLoss()
    tx, ty = torch.tensor(x), torch.tensor(y)
    sx, sy = somanet.tensor(x), somanet.tensor(y)

    def s_step():
        s_opt.zero_grad()
        loss = s_loss(s_model(sx), sy)
        loss.backward()
        s_opt.step()
        return loss

    def t_step():
        t_opt.zero_grad()
        loss = t_loss(t_model(tx), ty)
        loss.backward()
        t_opt.step()
        return loss

    return s_step, t_step, s_model, t_model


def check_same_training(torch, steps=3):
    """Both frameworks must compute the same losses from the same start (else the timing means nothing)."""
    s_step, t_step, _, _ = build(torch)
    for _ in range(steps):
        s, t = s_step().item(), t_step().item()
        if not np.isclose(s, t, rtol=1e-4, atol=1e-5):
            raise AssertionError(f"losses differ: somanet {s} vs PyTorch {t}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="write the result into docs/benchmarks.md")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of 200 somanet steps")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: torch's own)")
    parser.add_argument("--blocks", type=int, default=9)
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
        somanet.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    check_same_training(torch)
    s_step, t_step, _, _ = build(torch)
    if args.profile:
        for _ in range(5):
            s_step()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(200):
            s_step()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    res = harness.compare(s_step, t_step, warmup=5, blocks=args.blocks, block_s=0.3)
    res["name"] = "MLP 784-512-256-10 train step (batch 128, Adam, CE)"
    print(f"{res['name']}: somanet {harness.fmt_time(res['somanet_s'])}, PyTorch {harness.fmt_time(res['torch_s'])} "
          f"(torch threads: {threads}), torch/somanet {res['ratio']:.2f}")
    if args.write:
        blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
        body = (f"Measured on {harness.machine_line()}; PyTorch threads: {threads}, OPENBLAS_NUM_THREADS: {blas}. "
                f"One step is zero_grad, "
                f"forward, cross-entropy, backward and an Adam update on a batch of 128, both frameworks from the "
                f"same weights (losses checked equal first). Median per step over {args.blocks} alternating timed "
                f"blocks after warm-up; a ratio above 1 means somanet is faster. Timings on a shared machine are "
                f"noisy: run it a few times before drawing conclusions.\n\n" + harness.table([res]))
        harness.write_section("MLP training step", body)
    return res


if __name__ == "__main__":
    main()
