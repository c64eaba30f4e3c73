"""Deep reinforcement learning on somanet: environments, buffers and agents.

>>> from somanet.rl import PPO
>>> agent = PPO("CartPole-v1", seed=0, n_envs=8, n_steps=32, batch_size=256, total_timesteps=100_000)
>>> agent.learn()                                    # doctest: +SKIP
>>> agent.evaluate(n_episodes=100).mean()            # doctest: +SKIP

Agents: ``DQN`` (target network, double DQN, dueling head, epsilon schedule, Huber loss, optional
prioritised replay), ``REINFORCE`` (with a learned baseline), ``A2C``, ``PPO`` (discrete and
continuous actions) and ``SAC`` (twin Q, Polyak-averaged targets, automatic entropy tuning, tanh-squashed
Gaussian policy). Each learns with ``learn()``, acts with ``predict()``, is measured with
``evaluate()`` and is saved and resumed exactly with ``save()`` / ``load()``.

Environments come from Gymnasium (``pip install 'somanet[rl]'``), imported only when an environment is
made: buffers, networks and losses work without it. See ``docs/rl.md``.
"""
import importlib

_EXPORTS = {
    "make_env": "envs", "make_vec_env": "envs", "VecEnv": "envs", "VecNormalize": "envs", "EpisodeStats": "envs",
    "RunningMeanStd": "envs", "get_sim_state": "envs", "set_sim_state": "envs",
    "ReplayBuffer": "buffers", "PrioritizedReplayBuffer": "buffers", "RolloutBuffer": "buffers",
    "compute_gae": "buffers", "discounted_returns": "buffers",
    "ActorCritic": "nets", "QNetwork": "nets", "SquashedGaussianActor": "nets", "TwinQ": "nets", "mlp": "nets",
    "Agent": "base", "AgentConfig": "base", "linear_schedule": "base",
    "PPO": "ppo", "PPOConfig": "ppo", "ppo_loss": "ppo",
    "A2C": "a2c", "A2CConfig": "a2c", "a2c_loss": "a2c",
    "REINFORCE": "reinforce", "REINFORCEConfig": "reinforce", "reinforce_loss": "reinforce",
    "DQN": "dqn", "DQNConfig": "dqn", "dqn_loss": "dqn",
    "SAC": "sac", "SACConfig": "sac", "sac_critic_loss": "sac", "sac_actor_loss": "sac", "sac_alpha_loss": "sac",
    "evaluate_policy": "evaluation", "record_frames": "evaluation", "save_frame_grid": "evaluation",
    "write_png": "evaluation", "plot_learning_curve": "evaluation",
    "ALGORITHMS": "recipes", "load_agent": "recipes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
