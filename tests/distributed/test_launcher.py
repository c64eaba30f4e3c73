"""The launchers: ``somanet run -n N`` and ``somanet train --nproc N``."""
import os

from somanet.cli import main
from somanet.cli.launch import job_command, job_environment
from somanet.train.checkpoint import load_checkpoint


def test_run_reports_bad_input(capsys, tmp_path):
    assert main(["run", "-n", "2", str(tmp_path / "missing.py")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["run", "-n", "2"]) == 2
    assert "name the script" in capsys.readouterr().err


def test_job_command_and_environment():
    cmd = job_command(3, ["train.py", "--lr", "0.1"])
    assert cmd[-5:] == ["-m", "somanet.distributed.bootstrap", "train.py", "--lr", "0.1"]
    assert cmd[cmd.index("-n") + 1] == "3"
    env = job_environment(2, base={"RANK": "5", "WORLD_SIZE": "8", "PATH": "/bin"})
    assert "RANK" not in env and "WORLD_SIZE" not in env and env["SOMANET_LAUNCHED"] == "1"
    assert int(env["SOMANET_NUM_THREADS"]) >= 1 and env["OMP_NUM_THREADS"] == env["SOMANET_NUM_THREADS"]
    assert job_environment(2, base={"OMP_NUM_THREADS": "3"})["OMP_NUM_THREADS"] == "3"
    assert job_environment(2, threads=1, base={"OMP_NUM_THREADS": "3"})["SOMANET_NUM_THREADS"] == "1"


def test_run_a_module_on_two_ranks(jobs):
    job = jobs.run_cli(["run", "-n", "2", "-m", "somanet.cli", "--version"]).check()
    assert job.stdout.count("somanet ") == 2


def test_train_nproc_writes_one_run_directory_from_rank_zero(jobs, tmp_path):
    job = jobs.run_cli(["train", "--nproc", "2", "--epochs", "1", "--max-steps", "4", "--out", "run", "--no-plots"],
                       cwd=tmp_path).check()
    assert job.stdout.count("Training digits-mlp") == 1  # rank 1 prints nothing
    assert sorted(os.listdir(tmp_path)) == ["run"]
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last")
    state = ckpt.trainer_state
    assert state["global_step"] == 4 and state["distributed"]["world_size"] == 2
    assert not any(k.startswith("module.") for k in ckpt.model_state)  # loads into the plain model
