"""A rank that fails ends the whole job within seconds, with its own report, and the checkpoint
written before the failure still loads."""
import numpy as np
import pytest

from somanet.train.checkpoint import load_checkpoint

# Measured: the job ends 0.1-0.2 s after the exception; the limit is generous for a loaded machine and
# start-up, and far below a hang.
LIMIT_S = 20


def test_rank_raising_mid_training_ends_the_job_and_leaves_a_loadable_checkpoint(jobs, tmp_path):
    job = jobs.launch("fail.py", tmp_path, "raise", timeout=120)
    assert job.returncode != 0
    assert job.seconds < LIMIT_S, f"the job took {job.seconds:.1f} s to end"
    assert "rank 1 of 2 failed" in job.stderr
    assert "ValueError: the data of rank 1 is broken at step 5" in job.stderr
    assert "rank 0 finished" not in job.stdout and "rank 1 finished" not in job.stdout
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last")
    assert ckpt.trainer_state["global_step"] == 4  # saved every 2 steps; step 5 never completed
    from somanet import nn
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    ckpt.load_model(model)  # saved unwrapped: it loads into the plain model
    assert np.isfinite(model[0].weight.array).all()


@pytest.mark.parametrize("mode,status", [("exit", 3), ("kill", None)])
def test_rank_exiting_or_dying_ends_the_job(jobs, tmp_path, mode, status):
    job = jobs.launch("fail.py", tmp_path, mode, timeout=120)
    assert job.seconds < LIMIT_S and job.returncode != 0
    assert "rank 0 finished" not in job.stdout
    if status is not None:
        assert job.returncode == status and "rank 1 exited with status 3" in job.stderr
