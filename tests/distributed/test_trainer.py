"""``Trainer`` in a two-rank job: rank 0 alone writes, the ranks stay identical, resume is exact on the
same number of ranks and works on another."""
import os
import shutil

import numpy as np
import pytest


@pytest.fixture(scope="module")
def runs(jobs, tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    jobs.launch("train.py", out, "first").check()
    shutil.copytree(out / "b", out / "b1")
    jobs.launch("train.py", out, "resume").check()
    jobs.run_python("train.py", out, "alone").check()

    def load(name, rank=0):
        return dict(np.load(out / f"{name}_rank{rank}.npz"))

    load.out = out
    return load


def test_only_rank_zero_writes(runs):
    a0, a1 = runs("first_a", 0), runs("first_a", 1)
    assert int(a0["writes"]) > 0 and int(a1["writes"]) == 0
    assert "ModelCheckpoint" in list(a0["callbacks"]) and "CSVLogger" in list(a0["callbacks"])
    assert "ModelCheckpoint" not in list(a1["callbacks"]) and "CSVLogger" not in list(a1["callbacks"])
    assert sorted(os.listdir(runs.out / "a")) == ["checkpoints", "config.json", "doctor.json", "doctor.md",
                                                  "metrics.csv", "summary.txt"]


def test_ranks_share_the_epoch_and_stay_identical(runs):
    a0, a1 = runs("first_a", 0), runs("first_a", 1)
    assert int(a0["batches"]) == 7  # 200 samples / 2 ranks, 16 per batch
    np.testing.assert_array_equal(a0["weights"], a1["weights"])
    np.testing.assert_array_equal(a0["loss"], a1["loss"])  # the logs are averaged over the ranks
    assert int(a0["reductions"]) == int(a0["global_step"]) == 21


def test_gradient_accumulation_reduces_once_per_step(runs):
    c = runs("first_c")
    assert int(c["global_step"]) == 12 and int(c["reductions"]) == 12  # 7 batches: windows 2, 2, 2, 1


def test_resume_on_the_same_ranks_is_exact(runs):
    a, stopped, resumed = runs("first_a"), runs("first_b"), runs("resume_b")
    assert int(stopped["global_step"]) == 10 and int(stopped["batch_idx"]) == 3  # mid-epoch
    np.testing.assert_array_equal(resumed["weights"], a["weights"])
    np.testing.assert_array_equal(runs("resume_b", 1)["weights"], a["weights"])
    assert int(resumed["global_step"]) == 21


def test_resume_in_one_process_continues_from_the_same_share_of_the_epoch(runs):
    alone = runs("alone")
    # Step 10 was batch 3 of 7 on two ranks; alone, the epoch has 13 batches: it goes on from batch 6.
    assert int(alone["batches"]) == 13
    assert int(alone["global_step"]) == 10 + (13 - 6) + 13
    assert np.isfinite(alone["weights"]).all() and alone["loss"][-1] < alone["loss"][0]


def test_mid_epoch_position_moves_between_world_sizes():
    from somanet.train.trainer import _resumed_batch_idx
    two_ranks = {"distributed": {"world_size": 2}}
    assert _resumed_batch_idx(two_ranks, 3, 1) == 6   # batch 3 of 7 on two ranks: batch 6 of 13 alone
    assert _resumed_batch_idx(two_ranks, 3, 4) == 1   # rounded down: a few samples again, none skipped
    assert _resumed_batch_idx(two_ranks, 3, 2) == 3
    assert _resumed_batch_idx({}, 10, 2) == 5         # a one-process checkpoint resumed on two ranks
    assert _resumed_batch_idx({}, 10, 1) == 10
