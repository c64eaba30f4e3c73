"""``somanet train`` with the RL recipes: the run directory, --max-steps then --resume giving the same
run as one go, ``somanet evaluate``, the recipe list and the errors."""
import json
import os

import pytest

pytest.importorskip("gymnasium")

import somanet  # noqa: E402
from somanet.cli.main import main  # noqa: E402

SMALL = ["--set", "total_timesteps=512", "--set", "n_envs=2", "--set", "n_steps=64", "--set", "batch_size=64",
         "--set", "n_epochs=2", "--set", "eval_episodes=3", "--set", "frames=false"]


@pytest.fixture(autouse=True)
def _restore_threads():
    previous = somanet.get_num_threads()
    yield
    somanet.set_num_threads(previous)


def test_train_writes_a_run_directory_and_evaluate_reads_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "cartpole-ppo", *SMALL, "--seed", "4", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Training cartpole-ppo: PPO on CartPole-v1" in text
    assert "return (last 100)" in text and "Evaluation (3 episodes, deterministic policy)" in text
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "rl" and cfg["seed"] == 4 and cfg["settings"]["total_timesteps"] == 512
    result = json.loads((out / "eval.json").read_text())
    assert result["episodes"] == 3 and result["timesteps"] == 512 and result["solved"] is False
    lines = (out / "episodes.csv").read_text().splitlines()
    assert lines[0] == "timestep,return,length,env" and len(lines) > 5
    assert os.path.isdir(out / "checkpoints" / "last")
    try:
        import matplotlib  # noqa: F401
        assert (out / "plots" / "learning_curve.png").stat().st_size > 1000
    except ImportError:
        pass

    assert main(["evaluate", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 episodes, deterministic policy: mean return" in text


def test_max_steps_then_resume_gives_the_same_run_as_one_go(tmp_path, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", "cartpole-ppo", *SMALL, "--out", str(straight), "--no-plots"]) == 0
    assert main(["train", "cartpole-ppo", *SMALL, "--out", str(split), "--no-plots", "--max-steps", "200"]) == 0
    text = capsys.readouterr().out
    assert "Stopped at step 256 of 512" in text and not (split / "eval.json").exists()
    assert main(["train", "--resume", str(split), "--no-plots"]) == 0
    assert "Resuming cartpole-ppo" in capsys.readouterr().out
    assert (split / "episodes.csv").read_text() == (straight / "episodes.csv").read_text()
    split_eval = json.loads((split / "eval.json").read_text())
    assert split_eval["mean"] == json.loads((straight / "eval.json").read_text())["mean"]


def test_recipes_lists_the_rl_recipes(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in ("cartpole-dqn", "cartpole-ppo", "acrobot-ppo", "pendulum-sac", "lunarlander-ppo"):
        assert f"\n{name} " in out


@pytest.mark.parametrize("argv,message", [
    (["--set", "learning_rat=0.1"], "unknown setting(s) learning_rat"),
    (["--set", "n_envs=0"], "'n_envs' must be at least 1"),
    (["--set", "normalize_obs=3"], "must be true or false"),
    (["--epochs", "3"], "count environment steps, not epochs"),
])
def test_bad_settings_fail_before_anything_is_written(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main(["train", "cartpole-ppo", *argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_resume_refuses_new_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "cartpole-dqn", "--set", "total_timesteps=64", "--set", "learning_starts=32",
                 "--set", "eval_episodes=0", "--out", str(out), "--no-plots"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--seed", "3"]) == 2
    assert "--seed cannot be changed when resuming" in capsys.readouterr().err
