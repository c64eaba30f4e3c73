"""REINFORCE with a learned baseline (Williams, 1992; Sutton and Barto, "Reinforcement Learning: An
Introduction", section 13.4).

The agent plays ``episodes_per_update`` whole episodes with its current policy, computes the
discounted return ``G_t`` of every step, and takes one gradient step on

    L = -mean((G_t - V(s_t)) * log pi(a_t|s_t)) + vf_coef * mean((V(s_t) - G_t)^2) - ent_coef * mean(H)

where the baseline ``V`` is a separate value network (its value is a constant in the first term). An
episode cut off by a time limit is bootstrapped with ``V`` of its last observation, as the other agents
do. With several environments, episodes still running at an update carry on under the new policy.
"""
import dataclasses

import numpy as np

from .. import optim
from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..nn.utils import clip_grad_norm_
from .base import Agent, AgentConfig
from .buffers import discounted_returns
from .nets import ActorCritic
from .ppo import normalize_advantages

__all__ = ["REINFORCE", "REINFORCEConfig", "reinforce_loss"]


def reinforce_loss(log_prob, returns, values, entropy, ent_coef=0.0, vf_coef=0.5, normalize_advantage=False):
    """REINFORCE-with-baseline loss; returns ``(loss, info)`` (``returns`` are constants)."""
    g = np.asarray(returns, dtype=np.float32)
    adv = g - values.array
    if normalize_advantage:
        adv = normalize_advantages(adv)
    policy_loss = -(Tensor(adv.astype(np.float32)) * log_prob).mean()
    value_loss = ((values - Tensor(g)) ** 2).mean()
    entropy_loss = -entropy.mean()
    loss = policy_loss + vf_coef * value_loss + ent_coef * entropy_loss
    return loss, {"policy_loss": float(policy_loss.array), "value_loss": float(value_loss.array),
                  "entropy_loss": float(entropy_loss.array)}


@dataclasses.dataclass
class REINFORCEConfig(AgentConfig):
    learning_rate: float = 1e-3
    episodes_per_update: int = 4
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 1.0
    normalize_advantage: bool = True
    ortho_init: bool = True
    log_std_init: float = 0.0


class REINFORCE(Agent):
    """REINFORCE with baseline; ``REINFORCE("CartPole-v1", seed=0)``. Settings: ``REINFORCEConfig``."""

    Config = REINFORCEConfig
    algorithm = "reinforce"

    def _build(self):
        cfg = self.config
        kw = dict(hidden_sizes=tuple(cfg.hidden_sizes), activation=cfg.activation, ortho_init=cfg.ortho_init)
        if self.discrete:
            self.nets["policy"] = ActorCritic(self.obs_dim, n_actions=int(self.action_space.n), **kw)
        else:
            self.nets["policy"] = ActorCritic(self.obs_dim, action_dim=int(np.prod(self.action_space.shape)),
                                              log_std_init=cfg.log_std_init, **kw)
        self.policy = self.nets["policy"]
        self.optimizers["policy"] = optim.Adam(self.policy.parameters(), lr=cfg.learning_rate)
        self._running = [[] for _ in range(cfg.n_envs)]   # per env: (obs, action, reward) of the episode so far
        self._finished = []                                 # complete episodes: (obs, actions, returns)

    def _env_actions(self, actions):
        if self.discrete:
            return actions
        return np.clip(actions, self.action_space.low, self.action_space.high).reshape((-1,) + self.action_space.shape)

    def _act(self, obs, deterministic):
        actions, _, _ = self.policy.act(obs.reshape(len(obs), -1), deterministic)
        return self._env_actions(actions)

    def _iteration(self):
        cfg = self.config
        n = cfg.n_envs
        while len(self._finished) < cfg.episodes_per_update:
            obs = np.asarray(self._obs, dtype=np.float32).reshape(n, -1)
            with no_grad():
                actions, _, _ = self.policy.act(obs)
            next_obs, rewards, terminated, truncated, info = self.env.step(self._env_actions(actions))
            self.num_timesteps += n
            for i in range(n):
                self._running[i].append((obs[i], actions[i], float(rewards[i])))
                if terminated[i] or truncated[i]:
                    bootstrap = 0.0
                    if truncated[i] and not terminated[i]:
                        final = np.asarray(info["final_obs"][i], dtype=np.float32).reshape(1, -1)
                        with no_grad():
                            bootstrap = float(self.policy.value(final).array[0])
                    ep = self._running[i]
                    g = discounted_returns([r for _, _, r in ep], cfg.gamma, cfg.gamma * bootstrap)
                    self._finished.append((np.stack([o for o, _, _ in ep]), np.stack([a for _, a, _ in ep]), g))
                    self._running[i] = []
            self._obs = next_obs
        self.train()

    def train(self):
        cfg = self.config
        opt = self.optimizers["policy"]
        self._set_lr(opt, self._lr())
        obs = np.concatenate([e[0] for e in self._finished])
        actions = np.concatenate([e[1] for e in self._finished])
        returns = np.concatenate([e[2] for e in self._finished]).astype(np.float32)
        self._finished = []
        log_prob, entropy, values = self.policy.evaluate_actions(obs, actions)
        loss, info = reinforce_loss(log_prob, returns, values, entropy, cfg.ent_coef, cfg.vf_coef,
                                    cfg.normalize_advantage)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(list(self.policy.parameters()), cfg.max_grad_norm)
        opt.step()
        self.n_updates += 1
        self.logs = info

    def _extra_state(self):
        running = [{"obs": np.stack([o for o, _, _ in ep]) if ep else np.zeros((0, self.obs_dim), np.float32),
                    "actions": np.stack([a for _, a, _ in ep]) if ep else np.zeros(0),
                    "rewards": np.asarray([r for _, _, r in ep], dtype=np.float64)} for ep in self._running]
        return {"running": running}

    def _load_extra_state(self, state):
        self._running = [list(zip(list(ep["obs"]), list(ep["actions"]), [float(r) for r in ep["rewards"]]))
                         for ep in state["running"]]
        self._finished = []
