"""Rank script: 50 steps of DistributedDataParallel at any world size.

Every step's combined batch of 16 rows is split evenly over the ranks; each rank writes its trained
weights to ``ddp_world{size}_rank{r}.npz`` in the folder given as the first argument. The test
compares them with one process training on the combined batches (``ddp.reference``).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import somanet  # noqa: E402
from ddp import data, new_net, train  # noqa: E402

COMBINED = 16


def main(out):
    import somanet.distributed as dist
    from somanet.nn.parallel import DistributedDataParallel as DDP
    dist.init_process_group()
    r, world = dist.get_rank(), dist.get_world_size()
    if COMBINED % world:
        raise SystemExit(f"ddp_world: {COMBINED} rows per step do not split over {world} ranks")
    per_rank = COMBINED // world
    ddp = DDP(new_net(seed=r))  # ranks start apart; DDP broadcasts rank 0's weights
    x, y = data()
    train(ddp, ddp.parameters(), x, y, slice(r * per_rank, (r + 1) * per_rank))
    np.savez(os.path.join(out, f"ddp_world{world}_rank{r}.npz"),
             **{k[len("module."):]: v.array for k, v in ddp.state_dict().items()})
    dist.destroy_process_group()


if __name__ == "__main__":
    somanet.manual_seed(0)
    main(sys.argv[1])
