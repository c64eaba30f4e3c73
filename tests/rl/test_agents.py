"""The agents: determinism, exact resume from a checkpoint, short learning runs that must clearly beat a
random policy, deterministic evaluation, and the settings' checks."""
import os

import numpy as np
import pytest

pytest.importorskip("gymnasium")

import somanet  # noqa: E402
from somanet.rl import A2C, DQN, PPO, REINFORCE, SAC  # noqa: E402
from somanet.rl.evaluation import evaluate_policy  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    # Small networks: one thread is the fastest, and keeps the arithmetic identical from run to run.
    previous = somanet.get_num_threads()
    somanet.set_num_threads(1)
    yield
    somanet.set_num_threads(previous)


def weights(agent):
    return np.concatenate([p.array.ravel() for p in agent.nets.parameters()])


TINY = {
    "ppo": (PPO, "CartPole-v1", dict(total_timesteps=1536, n_envs=4, n_steps=64, batch_size=64, n_epochs=2,
                                     hidden_sizes=(16, 16))),
    "ppo-continuous": (PPO, "Pendulum-v1", dict(total_timesteps=768, n_envs=2, n_steps=64, batch_size=64, n_epochs=2,
                                                hidden_sizes=(16, 16), normalize_obs=True, normalize_reward=True,
                                                lr_schedule="linear", clip_schedule="linear", clip_range_vf=0.5)),
    "a2c": (A2C, "CartPole-v1", dict(total_timesteps=800, n_envs=4, hidden_sizes=(16, 16))),
    "reinforce": (REINFORCE, "CartPole-v1", dict(total_timesteps=800, n_envs=2, hidden_sizes=(16, 16))),
    "dqn": (DQN, "CartPole-v1", dict(total_timesteps=600, learning_starts=200, target_update_interval=100,
                                     hidden_sizes=(16, 16), double_dqn=True, dueling=True, prioritized=True)),
    "sac": (SAC, "Pendulum-v1", dict(total_timesteps=240, learning_starts=80, batch_size=32, hidden_sizes=(16, 16))),
}


@pytest.mark.parametrize("name", ["ppo", "dqn", "sac"])
def test_one_seed_gives_identical_runs(name):
    cls, env, kw = TINY[name]
    kw = dict(kw, total_timesteps=max(kw["total_timesteps"] * 2 // 3, 200))
    a = cls(env, seed=1, **kw).learn()
    b = cls(env, seed=1, **kw).learn()
    assert len(a.env.stats) > 0
    assert a.env.stats.returns == b.env.stats.returns
    np.testing.assert_array_equal(weights(a), weights(b))
    if name == "ppo":
        c = cls(env, seed=2, **kw).learn()
        assert a.env.stats.returns != c.env.stats.returns
        assert not np.array_equal(weights(a), weights(c))


@pytest.mark.parametrize("name", sorted(TINY))
def test_resume_mid_training_continues_exactly(name, tmp_path):
    cls, env, kw = TINY[name]
    straight = cls(env, seed=3, **kw).learn()
    first = cls(env, seed=3, **kw).learn(until=kw["total_timesteps"] // 2)
    assert 0 < first.num_timesteps < kw["total_timesteps"]
    first.save(tmp_path / "ck")
    resumed = cls.load(tmp_path / "ck")
    assert resumed.num_timesteps == first.num_timesteps
    np.testing.assert_array_equal(resumed._obs, first._obs)       # mid-episode: the same observation
    resumed.learn()
    assert resumed.env.stats.returns == straight.env.stats.returns
    assert resumed.env.stats.lengths == straight.env.stats.lengths
    np.testing.assert_array_equal(weights(resumed), weights(straight))
    assert resumed.n_updates == straight.n_updates
    obs = np.zeros((3,) + straight.observation_space.shape, np.float32)
    np.testing.assert_array_equal(resumed.predict(obs), straight.predict(obs))


def test_load_refuses_another_algorithm(tmp_path):
    cls, env, kw = TINY["a2c"]
    cls(env, seed=0, **kw).save(tmp_path / "ck")
    with pytest.raises(ValueError, match="a2c agent, not ppo"):
        PPO.load(tmp_path / "ck")


def test_settings_are_checked():
    with pytest.raises(TypeError, match="unknown setting.*learning_rat\\b"):
        PPO("CartPole-v1", learning_rat=1e-3)
    with pytest.raises(ValueError, match="batch_size"):
        PPO("CartPole-v1", n_envs=1, n_steps=16, batch_size=64)
    with pytest.raises(ValueError, match="discrete actions"):
        DQN("Pendulum-v1")
    with pytest.raises(ValueError, match="continuous"):
        SAC("CartPole-v1")


def test_predict_is_deterministic_and_evaluation_repeats():
    cls, env, kw = TINY["ppo-continuous"]
    agent = cls(env, seed=0, **kw)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    a1, a2 = agent.predict(obs), agent.predict(obs)
    np.testing.assert_array_equal(a1, a2)
    assert a1.shape == (5, 1) and np.all(np.abs(a1) <= 2.0)
    assert agent.predict(obs[0]).shape == (1,)
    r1 = agent.evaluate(n_episodes=2, n_envs=2)
    np.testing.assert_array_equal(r1, agent.evaluate(n_episodes=2, n_envs=2))
    # Batches of another size round differently in the last bits, nothing more.
    np.testing.assert_allclose(r1, agent.evaluate(n_episodes=2, n_envs=1), rtol=1e-6)


# ----------------------------------------------------------------------------- learning
def _random_returns(env, n, seed, discrete):
    rng = np.random.default_rng(seed)
    if discrete:
        policy = lambda o: rng.integers(0, 2, size=len(o))  # noqa: E731
    else:
        policy = lambda o: rng.uniform(-2.0, 2.0, size=(len(o), 1)).astype(np.float32)  # noqa: E731
    return evaluate_policy(policy, env, n_episodes=n, seed=500)


def test_ppo_learns_cartpole():
    agent = PPO("CartPole-v1", seed=0, total_timesteps=8192, n_envs=8, n_steps=32, batch_size=128, n_epochs=10,
                gamma=0.98, gae_lambda=0.8, learning_rate=1e-3)
    agent.learn()
    returns = agent.evaluate(n_episodes=10, seed=500)
    random = _random_returns("CartPole-v1", 10, 500, True)
    assert random.mean() < 40
    assert returns.mean() > 200, returns


def test_a2c_learns_cartpole():
    agent = A2C("CartPole-v1", seed=0, total_timesteps=8000, n_envs=8, n_steps=8, learning_rate=2e-3, optimizer="adam",
                gamma=0.98, gae_lambda=0.9, normalize_advantage=True)
    agent.learn()
    assert agent.evaluate(n_episodes=10, seed=500).mean() > 200


def test_reinforce_learns_cartpole():
    agent = REINFORCE("CartPole-v1", seed=0, total_timesteps=6000, learning_rate=5e-3, episodes_per_update=4, n_envs=4)
    agent.learn()
    assert agent.evaluate(n_episodes=10, seed=500).mean() > 80


def test_dqn_learns_cartpole():
    agent = DQN("CartPole-v1", seed=0, total_timesteps=5000, learning_rate=2.3e-3, batch_size=64, learning_starts=500,
                train_freq=16, gradient_steps=8, target_update_interval=100, exploration_fraction=0.25,
                hidden_sizes=(64, 64), double_dqn=True)
    agent.learn()
    assert agent.evaluate(n_episodes=10, seed=500).mean() > 80


def test_sac_learns_pendulum():
    agent = SAC("Pendulum-v1", seed=0, total_timesteps=2000, learning_rate=3e-3, batch_size=64, hidden_sizes=(32, 32),
                learning_starts=100, tau=0.01, gamma=0.98)
    agent.learn()
    returns = agent.evaluate(n_episodes=10, seed=500)
    random = _random_returns("Pendulum-v1", 10, 500, False)
    assert returns.mean() > random.mean() + 300, (returns.mean(), random.mean())


def test_checkpoint_directory_holds_the_whole_agent(tmp_path):
    cls, env, kw = TINY["dqn"]
    agent = cls(env, seed=0, **kw).learn(until=300)
    agent.save(tmp_path / "ck")
    assert sorted(os.listdir(tmp_path / "ck")) == ["checkpoint.json", "config.json", "model.safetensors",
                                                   "state.safetensors"]
    from somanet.train.checkpoint import load_checkpoint
    ckpt = load_checkpoint(tmp_path / "ck")
    assert ckpt.config["algorithm"] == "dqn" and ckpt.config["env_id"] == "CartPole-v1"
    state = ckpt.trainer_state["agent"]
    assert state["num_timesteps"] == 300 and len(state["extra"]["buffer"]["rewards"]) == 300
    assert {"q.body.0.weight", "q_target.body.0.weight"} <= set(ckpt.model_state)
