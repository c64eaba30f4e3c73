"""Rank script: every collective and point-to-point call on two ranks, checked in place."""
import sys

import numpy as np

import somanet
import somanet.distributed as dist
from somanet import Tensor


def check(cond, what):
    if not cond:
        raise AssertionError(f"rank {dist.get_rank()}: {what}")


def main():
    assert "mpi4py" not in sys.modules or sys.modules["mpi4py"] is not None
    check(dist.is_available() and not dist.is_initialized(), "before init")
    dist.init_process_group(backend="mpi", init_method="env://")
    r, n = dist.get_rank(), dist.get_world_size()
    check(n == 2 and dist.is_initialized() and dist.get_backend() == "mpi", "init")
    try:
        dist.init_process_group()
        check(False, "a second init_process_group must raise")
    except RuntimeError as exc:
        check("twice" in str(exc), str(exc))

    # all_reduce: every op, in place, also on a non-contiguous array, half precision and integers
    base = np.arange(6, dtype=np.float32).reshape(2, 3) + 10 * r
    for op, want in ((dist.ReduceOp.SUM, base * 0 + np.arange(6).reshape(2, 3) * 2 + 10),
                     (dist.ReduceOp.MAX, np.arange(6).reshape(2, 3) + 10.0),
                     (dist.ReduceOp.MIN, np.arange(6).reshape(2, 3) + 0.0),
                     (dist.ReduceOp.PRODUCT, np.arange(6).reshape(2, 3) * (np.arange(6).reshape(2, 3) + 10.0)),
                     (dist.ReduceOp.AVG, np.arange(6).reshape(2, 3) + 5.0)):
        t = Tensor(base.copy())
        v = t._version[0]
        check(dist.all_reduce(t, op=op) is None, "all_reduce returns None")
        check(np.allclose(t.array, want) and t.array.dtype == np.float32, f"all_reduce {op}: {t.array}")
        check(t._version[0] == v + 1, "in-place version bump")
    strided = Tensor(np.ones((3, 4), np.float32)[:, ::2])
    dist.all_reduce(strided)
    check(np.all(strided.array == 2), "non-contiguous all_reduce")
    half = Tensor(np.full(4, 0.5 + r, np.float16))
    dist.all_reduce(half)
    check(half.array.dtype == np.float16 and np.all(half.array == 2.0), "float16 all_reduce")
    ints = Tensor(np.array([1, 2, 3], np.int64) * (r + 1))
    dist.all_reduce(ints, op=dist.ReduceOp.BOR)
    check(list(ints.array) == [3, 6, 7], f"int BOR {ints.array}")
    work = dist.all_reduce(Tensor(np.ones(5, np.float64)), async_op=True)
    check(work.wait() and work.is_completed(), "async all_reduce")

    t = Tensor(np.full(3, r, np.int32))
    dist.broadcast(t, src=1)
    check(np.all(t.array == 1), "broadcast from 1")

    out = [somanet.zeros(2, 2) for _ in range(n)]
    dist.all_gather(out, somanet.ones(2, 2) * (r + 1))
    check(all(np.all(o.array == i + 1) for i, o in enumerate(out)), "all_gather")
    flat = somanet.zeros(4)
    dist.all_gather_into_tensor(flat, somanet.tensor([r, r + 0.5]))
    check(np.allclose(flat.array, [0, 0.5, 1, 1.5]), f"all_gather_into_tensor {flat.array}")

    t = somanet.ones(3) * (r + 1)
    dist.reduce(t, dst=1)
    check(np.all(t.array == (3 if r == 1 else 1)), "reduce to rank 1")

    o = somanet.zeros(2)
    dist.reduce_scatter(o, [somanet.ones(2) * (i + 1) * (r + 1) for i in range(n)])
    check(np.all(o.array == 3 * (r + 1)), f"reduce_scatter {o.array}")
    o = somanet.zeros(2)
    dist.reduce_scatter_tensor(o, somanet.tensor(np.arange(4, dtype=np.float32)), op=dist.ReduceOp.AVG)
    check(np.allclose(o.array, np.arange(4)[2 * r:2 * r + 2]), f"reduce_scatter_tensor {o.array}")

    gl = [somanet.zeros(2) for _ in range(n)] if r == 0 else None
    dist.gather(somanet.ones(2) * r, gl, dst=0)
    if r == 0:
        check(np.all(gl[1].array == 1) and np.all(gl[0].array == 0), "gather")
    t = somanet.zeros(3)
    dist.scatter(t, [somanet.ones(3) * 7, somanet.ones(3) * 8] if r == 1 else None, src=1)
    check(np.all(t.array == 7 + r), "scatter")
    outs = [somanet.zeros(2) for _ in range(n)]
    dist.all_to_all(outs, [somanet.ones(2) * (10 * r + j) for j in range(n)])
    check(all(np.all(outs[i].array == 10 * i + r) for i in range(n)), "all_to_all")
    single = somanet.zeros(4)
    dist.all_to_all_single(single, somanet.tensor(np.arange(4, dtype=np.float32) + 10 * r))
    want = np.concatenate([np.arange(4)[2 * r:2 * r + 2], 10 + np.arange(4)[2 * r:2 * r + 2]])
    check(np.allclose(single.array, want), f"all_to_all_single {single.array}")

    # point to point
    if r == 0:
        dist.send(somanet.tensor([1.0, 2.0]), dst=1, tag=5)
        w = dist.isend(somanet.tensor(np.arange(3, dtype=np.int64)), dst=1)
        w.wait()
        back = somanet.zeros(1)
        check(dist.recv(back) == 1 and back.array[0] == 42, "recv from any")
    else:
        x = somanet.zeros(2)
        check(dist.recv(x, src=0, tag=5) == 0 and list(x.array) == [1, 2], "recv")
        y = Tensor(np.zeros(3, np.int64))
        w = dist.irecv(y, src=0)
        w.wait()
        check(list(y.array) == [0, 1, 2] and w.result_value == 0, "irecv")
        dist.send(somanet.tensor([42.0]), dst=0)
    dist.barrier()

    # Python objects (pickled between the ranks of this job)
    objs = [None] * n
    dist.all_gather_object(objs, {"rank": r, "name": f"r{r}"})
    check(objs == [{"rank": 0, "name": "r0"}, {"rank": 1, "name": "r1"}], f"all_gather_object {objs}")
    items = [r, "from", (r,)]
    dist.broadcast_object_list(items, src=1)
    check(items == [1, "from", (1,)], f"broadcast_object_list {items}")
    got = [None, None] if r == 0 else None
    dist.gather_object(r * 10, got, dst=0)
    if r == 0:
        check(got == [0, 10], "gather_object")
    one = [None]
    dist.scatter_object_list(one, ["a", "b"] if r == 0 else None, src=0)
    check(one == ["ab"[r]], "scatter_object_list")

    # groups
    g = dist.new_group([1])
    if r == 1:
        check(dist.get_rank(g) == 0 and dist.get_world_size(g) == 1, "member of new_group")
        check(dist.get_process_group_ranks(g) == [1] and dist.get_global_rank(g, 0) == 1, "group ranks")
        t = somanet.ones(2)
        dist.all_reduce(t, group=g)
        check(np.all(t.array == 1), "all_reduce in a group of one")
    else:
        check(g is dist.GroupMember.NON_GROUP_MEMBER and dist.get_rank(g) == -1, "left out of new_group")
    whole = dist.new_group()
    t = somanet.ones(1)
    dist.all_reduce(t, group=whole)
    check(t.array[0] == 2, "new_group of everyone")

    dist.destroy_process_group()
    check(not dist.is_initialized(), "destroyed")
    dist.init_process_group()
    dist.barrier()
    print(f"collectives ok on rank {r}")


if __name__ == "__main__":
    main()
