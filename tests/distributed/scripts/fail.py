"""Rank script: rank 1 fails while rank 0 waits for it in a collective.

    fail.py OUT raise   Trainer run checkpointing every 2 steps; rank 1 raises at step 5
    fail.py OUT exit    rank 1 calls sys.exit(3)
    fail.py OUT kill    rank 1 is killed (SIGKILL)
"""
import os
import signal
import sys
import time

import numpy as np


def main(out, mode):
    import somanet.distributed as dist
    dist.init_process_group()
    r = dist.get_rank()
    if mode == "raise":
        import somanet
        from somanet import nn, optim
        from somanet.nn.parallel import DistributedDataParallel
        from somanet.train import Callback, ModelCheckpoint, Trainer

        class Breaks(Callback):
            def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
                if r == 1 and trainer.global_step == 5:
                    raise ValueError("the data of rank 1 is broken at step 5")

        somanet.manual_seed(0)
        model = DistributedDataParallel(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)))
        rng = np.random.default_rng(0)
        x = rng.standard_normal((256, 4)).astype(np.float32)
        trainer = Trainer(run_dir=out, enable_progress_bar=False, plots=False)
        trainer.fit(model, (x, (x[:, 0] > 0).astype(np.int64)), epochs=5, batch_size=8, loss="cross_entropy",
                    optimizer=optim.SGD(model.parameters(), lr=0.1),
                    callbacks=[Breaks(), ModelCheckpoint(monitor=None, every_n_train_steps=2)])
    else:
        if r == 1:
            time.sleep(0.3)
            if mode == "exit":
                sys.exit(3)
            os.kill(os.getpid(), signal.SIGKILL)
        dist.barrier()
    print(f"rank {r} finished", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
