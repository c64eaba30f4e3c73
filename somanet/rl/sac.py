"""Soft Actor-Critic (Haarnoja et al., 2018, "Soft Actor-Critic Algorithms and Applications").

Off-policy, for continuous actions. The policy is a tanh-squashed Gaussian (``SquashedGaussianActor``),
two Q-functions are learned against Polyak-averaged target copies, and the entropy coefficient
``alpha`` is tuned automatically towards a target entropy (``-dim(A)`` by default). Each gradient step,
on a minibatch ``(s, a, r, s', d)`` from the replay buffer, with ``a~, log pi(a~|s)`` drawn from the
current policy:

* ``L_alpha = -mean(log_alpha * (log pi(a~|s) + H_target))``;
* ``L_Q = 1/2 * sum_i mean((Q_i(s, a) - y)^2)`` with
  ``y = r + gamma * (1 - d) * (min_i Q_target_i(s', a') - alpha * log pi(a'|s'))``, ``a' ~ pi(.|s')``;
* ``L_pi = mean(alpha * log pi(a~|s) - min_i Q_i(s, a~))``;

then ``theta_target <- tau * theta + (1 - tau) * theta_target``. The first ``learning_starts`` steps
take uniformly random actions. Actions are scaled from [-1, 1] to the action space's bounds.
"""
import dataclasses
import math

import numpy as np

from .. import nn, optim
from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from .base import Agent, AgentConfig
from .buffers import ReplayBuffer
from .dqn import polyak_pairs, polyak_update
from .nets import SquashedGaussianActor, TwinQ

__all__ = ["SAC", "SACConfig", "sac_critic_loss", "sac_actor_loss", "sac_alpha_loss", "EntropyCoefficient"]


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float32))


def sac_critic_loss(critic, critic_target, actor, obs, actions, rewards, next_obs, dones, alpha, gamma=0.99,
                    next_noise=None):
    """``(loss, info)``: the twin soft Q loss, with the target computed without gradients.

    ``next_noise`` (standard normal, optional) fixes the draw of the next actions.
    """
    with no_grad():
        next_actions, next_log_prob = actor.sample(next_obs, noise=next_noise)
        next_q = critic_target.min_q(next_obs, next_actions) - alpha * next_log_prob
        target = _t(rewards) + gamma * (1.0 - _t(dones)) * next_q
    q1, q2 = critic(obs, actions)
    loss = 0.5 * (((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean())
    return loss, {"critic_loss": float(loss.array), "q_mean": float(q1.array.mean())}


def sac_actor_loss(critic, log_prob, actions, obs, alpha):
    """``(loss, info)``: ``mean(alpha * log_prob - min(Q1, Q2)(obs, actions))`` for actions drawn with
    the reparameterisation trick (so the gradient flows into the actor through ``actions``)."""
    q = critic.min_q(obs, actions)
    loss = (alpha * log_prob - q).mean()
    return loss, {"actor_loss": float(loss.array), "entropy": float(-log_prob.array.mean())}


def sac_alpha_loss(log_alpha, log_prob, target_entropy):
    """``-mean(log_alpha * (log_prob + target_entropy))`` with ``log_prob`` treated as a constant."""
    lp = log_prob.array if isinstance(log_prob, Tensor) else np.asarray(log_prob, dtype=np.float32)
    return -(log_alpha * Tensor((lp + np.float32(target_entropy)).astype(np.float32))).mean()


class EntropyCoefficient(nn.Module):
    """Holds ``log_alpha`` (a parameter) so that it is saved with the networks."""

    def __init__(self, initial=1.0):
        super().__init__()
        self.log_alpha = nn.Parameter(Tensor(np.array([math.log(initial)], dtype=np.float32)))

    @property
    def alpha(self):
        return float(np.exp(self.log_alpha.array[0]))


@dataclasses.dataclass
class SACConfig(AgentConfig):
    learning_rate: float = 3e-4
    buffer_size: int = 1_000_000
    learning_starts: int = 100
    batch_size: int = 256
    tau: float = 0.005
    train_freq: int = 1
    gradient_steps: int = 1
    target_update_interval: int = 1
    #: "auto" (tuned, starting at ``init_alpha``) or a fixed number
    ent_coef: object = "auto"
    init_alpha: float = 1.0
    #: "auto" (= -dim(A)) or a number
    target_entropy: object = "auto"
    hidden_sizes: tuple = (256, 256)
    activation: str = "relu"


class SAC(Agent):
    """SAC; ``SAC("Pendulum-v1", seed=0, learning_rate=1e-3)``. Settings: ``SACConfig``."""

    Config = SACConfig
    algorithm = "sac"

    def _build(self):
        cfg = self.config
        if self.discrete:
            raise ValueError(f"SAC needs continuous (Box) actions; {self.env_id} has {self.action_space}")
        self.act_dim = int(np.prod(self.action_space.shape))
        hidden = tuple(cfg.hidden_sizes)
        self.nets["actor"] = SquashedGaussianActor(self.obs_dim, self.act_dim, hidden, cfg.activation)
        self.nets["critic"] = TwinQ(self.obs_dim, self.act_dim, hidden, cfg.activation)
        self.nets["critic_target"] = TwinQ(self.obs_dim, self.act_dim, hidden, cfg.activation)
        self.actor, self.critic = self.nets["actor"], self.nets["critic"]
        self.critic_target = self.nets["critic_target"]
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self._target_pairs = polyak_pairs(self.critic, self.critic_target)
        self._critic_params = list(self.critic.parameters())
        self.auto_alpha = cfg.ent_coef == "auto"
        self.nets["ent_coef"] = EntropyCoefficient(cfg.init_alpha if self.auto_alpha else float(cfg.ent_coef))
        self.ent_coef = self.nets["ent_coef"]
        self.target_entropy = (-float(self.act_dim) if cfg.target_entropy == "auto" else float(cfg.target_entropy))
        self.optimizers["actor"] = optim.Adam(self.actor.parameters(), lr=cfg.learning_rate)
        self.optimizers["critic"] = optim.Adam(self.critic.parameters(), lr=cfg.learning_rate)
        if self.auto_alpha:
            self.optimizers["ent_coef"] = optim.Adam(self.ent_coef.parameters(), lr=cfg.learning_rate)
        else:
            self.ent_coef.requires_grad_(False)
        self.buffer = ReplayBuffer(cfg.buffer_size, (self.obs_dim,), (self.act_dim,), np.float32, np.float32)
        low = np.asarray(self.action_space.low, dtype=np.float64).reshape(-1)
        high = np.asarray(self.action_space.high, dtype=np.float64).reshape(-1)
        self._low, self._scale = low, (high - low) / 2.0
        self._calls = 0

    def _to_env(self, actions):
        """Actions in [-1, 1] -> the action space's bounds."""
        env = self._low + (np.asarray(actions, dtype=np.float64) + 1.0) * self._scale
        return env.astype(self.action_space.dtype).reshape((-1,) + self.action_space.shape)

    def _act(self, obs, deterministic):
        with no_grad():
            actions, _ = self.actor.sample(obs.reshape(len(obs), -1), deterministic=deterministic)
        return self._to_env(actions.array)

    def _iteration(self):
        cfg = self.config
        n = cfg.n_envs
        obs = np.asarray(self._obs, dtype=np.float32).reshape(n, -1)
        if self.num_timesteps < cfg.learning_starts:
            actions = self.rng.uniform(-1.0, 1.0, size=(n, self.act_dim)).astype(np.float32)
        else:
            with no_grad():
                actions = self.actor.sample(obs)[0].array
        next_obs, rewards, terminated, truncated, info = self.env.step(self._to_env(actions))
        self.num_timesteps += n
        self._calls += 1
        real_next = np.asarray(info["final_obs"], dtype=np.float32).reshape(n, -1)
        self.buffer.add(obs, actions, rewards, real_next, terminated)
        self._obs = next_obs
        if self.num_timesteps > cfg.learning_starts and self._calls % cfg.train_freq == 0:
            self.train(cfg.gradient_steps)

    def train(self, gradient_steps):
        cfg = self.config
        for name, opt in self.optimizers.items():
            self._set_lr(opt, self._lr())
        sums = {}
        for _ in range(gradient_steps):
            b = self.buffer.sample(cfg.batch_size, self.rng)
            obs = Tensor(b["obs"])
            actions_pi, log_prob = self.actor.sample(obs)
            info = {}
            if self.auto_alpha:
                alpha_loss = sac_alpha_loss(self.ent_coef.log_alpha, log_prob, self.target_entropy)
                opt = self.optimizers["ent_coef"]
                opt.zero_grad()
                alpha_loss.backward()
                opt.step()
                info["alpha_loss"] = float(alpha_loss.array)
            alpha = self.ent_coef.alpha
            critic_loss, ci = sac_critic_loss(self.critic, self.critic_target, self.actor, obs, b["actions"],
                                              b["rewards"], b["next_obs"], b["dones"], alpha, cfg.gamma)
            opt = self.optimizers["critic"]
            opt.zero_grad()
            critic_loss.backward()
            opt.step()
            # The actor's gradient flows through the critic to the actions; the critic's own weights
            # need no gradient here, so they are frozen for this pass.
            for p in self._critic_params:
                p.requires_grad = False
            try:
                actor_loss, ai = sac_actor_loss(self.critic, log_prob, actions_pi, obs, alpha)
            finally:
                for p in self._critic_params:
                    p.requires_grad = True
            opt = self.optimizers["actor"]
            opt.zero_grad()
            actor_loss.backward()
            opt.step()
            self.n_updates += 1
            if self.n_updates % cfg.target_update_interval == 0:
                polyak_update(self.critic, self.critic_target, cfg.tau, self._target_pairs)
            info.update(ci)
            info.update(ai)
            info["alpha"] = alpha
            for k, v in info.items():
                sums[k] = sums.get(k, 0.0) + v
        self.logs = {k: v / gradient_steps for k, v in sums.items()}

    def _extra_state(self):
        return {"buffer": self.buffer.state_dict(), "calls": int(self._calls)}

    def _load_extra_state(self, state):
        self.buffer.load_state_dict(state["buffer"])
        self._calls = int(state["calls"])
