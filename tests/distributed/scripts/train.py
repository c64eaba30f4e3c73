"""Rank script: ``Trainer.fit`` on a DistributedDataParallel model (or, run without MPI, a plain one).

    train.py OUT first    two runs in one job: OUT/a uninterrupted (3 epochs), OUT/b stopped at step 10,
                          and OUT/c with accumulate_grad_batches=2
    train.py OUT resume   continue OUT/b
    train.py OUT alone    (one plain process) continue OUT/b1, a copy of OUT/b's checkpoint

Each rank writes ``<run>_rank{r}.npz`` with its final weights, counters and what it wrote.
"""
import os
import sys

import numpy as np

import somanet
from somanet import nn, optim
from somanet.train import Trainer


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 8)).astype(np.float32)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)


def fit(run_dir, distributed, max_steps=None, resume=None, accumulate=1):
    somanet.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    wrapped = model
    if distributed:
        from somanet.nn.parallel import DistributedDataParallel
        wrapped = DistributedDataParallel(model)
    x, y = data()
    trainer = Trainer(run_dir=run_dir, seed=0, enable_progress_bar=False, plots=False,
                      accumulate_grad_batches=accumulate)
    reductions = []
    if distributed:
        finish = wrapped._finish
        wrapped._finish = lambda: (reductions.append(1), finish())
    history = trainer.fit(wrapped, (x, y), (x[:40], y[:40]), epochs=3, batch_size=16, loss="cross_entropy",
                          optimizer=optim.SGD(wrapped.parameters(), lr=0.1, momentum=0.9), metrics=["accuracy"],
                          max_steps=max_steps, resume=resume)
    return trainer, model, history, len(reductions)


def save(out, name, rank, trainer, model, history, reductions, writes):
    np.savez(os.path.join(out, f"{name}_rank{rank}.npz"),
             weights=np.concatenate([p.array.ravel() for p in model.parameters()]),
             global_step=trainer.global_step, batch_idx=trainer.batch_idx, batches=len(trainer.train_loader),
             loss=np.array(history.history["loss"]), writes=writes, reductions=reductions,
             callbacks=np.array([type(cb).__name__ for cb in trainer.callbacks]))


def main(out, mode):
    if mode == "alone":
        trainer, model, history, _ = fit(os.path.join(out, "b1"), False,
                                         resume=os.path.join(out, "b1", "checkpoints", "last"))
        save(out, "alone", 0, trainer, model, history, 0, 0)
        return
    import somanet.distributed as dist
    import somanet.train.trainer as trainer_module
    dist.init_process_group()
    r = dist.get_rank()
    writes = []
    real_save = trainer_module.save_checkpoint
    trainer_module.save_checkpoint = lambda *a, **k: (writes.append(a[0]), real_save(*a, **k))[1]
    runs = {"first": [("a", {}), ("b", {"max_steps": 10}), ("c", {"accumulate": 2})],
            "resume": [("b", {"resume": os.path.join(out, "b")})]}[mode]
    for name, kwargs in runs:
        before = len(writes)
        trainer, model, history, reductions = fit(os.path.join(out, name), True, **kwargs)
        save(out, f"{mode}_{name}", r, trainer, model, history, reductions, len(writes) - before)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
