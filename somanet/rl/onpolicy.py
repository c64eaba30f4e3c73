"""The part PPO and A2C share: an actor-critic, and rollouts of ``n_steps`` steps from every environment
into a ``RolloutBuffer`` with GAE."""
import dataclasses

import numpy as np

from ..autograd.grad_mode import no_grad
from .base import Agent, AgentConfig
from .buffers import RolloutBuffer
from .nets import ActorCritic

__all__ = ["OnPolicyAgent", "OnPolicyConfig"]


@dataclasses.dataclass
class OnPolicyConfig(AgentConfig):
    n_steps: int = 2048
    gae_lambda: float = 0.95
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    ortho_init: bool = True
    log_std_init: float = 0.0


class OnPolicyAgent(Agent):
    """Collects ``n_steps`` from each of ``n_envs`` environments with the current policy, then updates.

    A time-limit truncation is bootstrapped: ``gamma * V(last observation)`` is added to the reward of
    the step that was cut off, so the advantage does not treat it as the end of the task. Continuous
    actions are sampled from the Gaussian, stored as sampled, and clipped to the action space's bounds
    only when sent to the environment.
    """

    Config = OnPolicyConfig

    def _build(self):
        cfg = self.config
        if self.discrete:
            self.nets["policy"] = ActorCritic(self.obs_dim, n_actions=int(self.action_space.n),
                                              hidden_sizes=tuple(cfg.hidden_sizes), activation=cfg.activation,
                                              ortho_init=cfg.ortho_init)
            action_shape, action_dtype = (), np.int64
        else:
            act_dim = int(np.prod(self.action_space.shape))
            self.nets["policy"] = ActorCritic(self.obs_dim, action_dim=act_dim, hidden_sizes=tuple(cfg.hidden_sizes),
                                              activation=cfg.activation, ortho_init=cfg.ortho_init,
                                              log_std_init=cfg.log_std_init)
            action_shape, action_dtype = (act_dim,), np.float32
        self.policy = self.nets["policy"]
        self.buffer = RolloutBuffer(cfg.n_steps, cfg.n_envs, (self.obs_dim,), action_shape, np.float32, action_dtype)
        self._build_optimizer()

    def _build_optimizer(self):
        raise NotImplementedError

    def _env_actions(self, actions):
        if self.discrete:
            return actions
        low, high = self.action_space.low, self.action_space.high
        return np.clip(actions, low, high).reshape((-1,) + self.action_space.shape)

    def _act(self, obs, deterministic):
        actions, _, _ = self.policy.act(obs.reshape(len(obs), -1), deterministic)
        return self._env_actions(actions)

    def collect_rollout(self):
        """Fill the buffer with ``n_steps`` steps of every environment, then compute advantages."""
        cfg = self.config
        buf = self.buffer
        buf.reset()
        n = cfg.n_envs
        obs = self._obs
        with no_grad():
            for _ in range(cfg.n_steps):
                flat = np.asarray(obs, dtype=np.float32).reshape(n, -1)
                actions, log_probs, values = self.policy.act(flat)
                next_obs, rewards, terminated, truncated, info = self.env.step(self._env_actions(actions))
                self.num_timesteps += n
                cut = truncated & ~terminated
                if cut.any():
                    final = np.asarray(info["final_obs"][cut], dtype=np.float32).reshape(int(cut.sum()), -1)
                    rewards = rewards.copy()
                    rewards[cut] += cfg.gamma * self.policy.value(final).array
                buf.add(flat, actions, rewards, terminated | truncated, values, log_probs)
                obs = next_obs
            last_values = self.policy.value(np.asarray(obs, dtype=np.float32).reshape(n, -1)).array
        self._obs = obs
        buf.compute_returns_and_advantages(last_values, cfg.gamma, cfg.gae_lambda)

    def _iteration(self):
        self.collect_rollout()
        self.train()

    def train(self):
        raise NotImplementedError

    def _extra_state(self):
        return {}
