"""Deep Q-Networks (Mnih et al., 2015, "Human-level control through deep reinforcement learning"), with
double DQN (van Hasselt et al., 2016), the dueling head (Wang et al., 2016) and optionally prioritised
replay (Schaul et al., 2016).

The agent acts epsilon-greedily (epsilon falls linearly from ``exploration_initial_eps`` to
``exploration_final_eps`` over the first ``exploration_fraction`` of training; the first
``learning_starts`` steps are uniformly random), stores transitions in a replay buffer and, every
``train_freq`` vector steps, takes ``gradient_steps`` gradient steps on minibatches of ``batch_size``,
minimising the Huber loss (or the squared error) between ``Q(s, a)`` and the target

    y = r + gamma * (1 - terminated) * Q_target(s', argmax_a' Q(s', a'))     (double DQN)
    y = r + gamma * (1 - terminated) * max_a' Q_target(s', a')               (DQN)

The target network is copied from the online one (or Polyak-averaged, ``tau < 1``) every
``target_update_interval`` environment steps. Gradients are clipped to a total norm of ``max_grad_norm``.
"""
import dataclasses

import numpy as np

from .. import optim
from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..nn import functional as F
from ..nn.utils import clip_grad_norm_
from .base import Agent, AgentConfig, linear_schedule
from .buffers import PrioritizedReplayBuffer, ReplayBuffer
from .nets import QNetwork

__all__ = ["DQN", "DQNConfig", "dqn_loss", "dqn_targets", "polyak_update", "polyak_pairs"]


def polyak_update(source, target, tau, pairs=None):
    """``target <- tau * source + (1 - tau) * target`` for every parameter and buffer (in place).

    ``pairs``, a list of ``(source array, target array)`` from ``polyak_pairs``, saves walking the
    modules at every call.
    """
    if pairs is None:
        pairs = polyak_pairs(source, target)
    for s, t in pairs:
        if tau >= 1.0:
            np.copyto(t, s)
        else:
            t *= 1.0 - tau
            t += tau * s


def polyak_pairs(source, target):
    """The ``(source, target)`` arrays of two modules of the same structure, in state-dict order."""
    src, tgt = source.state_dict(), target.state_dict()
    if list(src) != list(tgt):
        raise ValueError("polyak_update(): the two modules do not have the same parameters and buffers")
    return [(src[k].array, tgt[k].array) for k in src]


def dqn_targets(q_net, target_net, next_obs, rewards, dones, gamma, double=False):
    """The TD targets ``y`` (a NumPy array), computed without gradients."""
    with no_grad():
        next_q = target_net(next_obs).array
        if double:
            best = q_net(next_obs).array.argmax(axis=1)
        else:
            best = next_q.argmax(axis=1)
        next_v = next_q[np.arange(len(best)), best]
    return (np.asarray(rewards, dtype=np.float32)
            + np.float32(gamma) * (1.0 - np.asarray(dones, dtype=np.float32)) * next_v).astype(np.float32)


def dqn_loss(q_net, target_net, obs, actions, rewards, next_obs, dones, gamma=0.99, double=False, loss="huber",
             weights=None):
    """The DQN loss on one minibatch; returns ``(loss, td_errors)`` (``td_errors`` as a NumPy array).

    ``loss`` is "huber" (smooth L1 with delta 1) or "mse"; ``weights`` are importance-sampling weights
    of a prioritised buffer (then the loss is the weighted mean of the elementwise losses).
    """
    target = dqn_targets(q_net, target_net, next_obs, rewards, dones, gamma, double)
    q_all = q_net(obs)
    idx = Tensor(np.asarray(actions, dtype=np.int64).reshape(-1, 1))
    q = q_all.gather(1, idx).squeeze(1)
    y = Tensor(target)
    reduction = "mean" if weights is None else "none"
    if loss == "huber":
        value = F.smooth_l1_loss(q, y, reduction=reduction)
    elif loss == "mse":
        value = F.mse_loss(q, y, reduction=reduction)
    else:
        raise ValueError(f"dqn_loss(): loss must be 'huber' or 'mse', got {loss!r}")
    if weights is not None:
        value = (value * Tensor(np.asarray(weights, dtype=np.float32))).mean()
    return value, q.array - target


@dataclasses.dataclass
class DQNConfig(AgentConfig):
    learning_rate: float = 1e-4
    buffer_size: int = 1_000_000
    learning_starts: int = 100
    batch_size: int = 32
    tau: float = 1.0
    train_freq: int = 4
    gradient_steps: int = 1
    target_update_interval: int = 10_000
    exploration_fraction: float = 0.1
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    max_grad_norm: float = 10.0
    double_dqn: bool = False
    dueling: bool = False
    #: "huber" or "mse"
    loss: str = "huber"
    prioritized: bool = False
    per_alpha: float = 0.6
    per_beta: float = 0.4
    activation: str = "relu"


class DQN(Agent):
    """DQN; ``DQN("CartPole-v1", seed=0, double_dqn=True, dueling=True)``. Settings: ``DQNConfig``."""

    Config = DQNConfig
    algorithm = "dqn"

    def _check_config(self):
        if self.config.loss not in ("huber", "mse"):
            raise ValueError(f"DQN: loss must be 'huber' or 'mse', got {self.config.loss!r}")

    def _build(self):
        cfg = self.config
        if not self.discrete:
            raise ValueError(f"DQN needs discrete actions; {self.env_id} has {self.action_space}")
        n = int(self.action_space.n)
        kw = dict(hidden_sizes=tuple(cfg.hidden_sizes), activation=cfg.activation, dueling=cfg.dueling)
        self.nets["q"] = QNetwork(self.obs_dim, n, **kw)
        self.nets["q_target"] = QNetwork(self.obs_dim, n, **kw)
        self.q, self.q_target = self.nets["q"], self.nets["q_target"]
        self.q_target.load_state_dict(self.q.state_dict())
        self.q_target.requires_grad_(False)
        self._target_pairs = polyak_pairs(self.q, self.q_target)
        self.optimizers["q"] = optim.Adam(self.q.parameters(), lr=cfg.learning_rate)
        cls = PrioritizedReplayBuffer if cfg.prioritized else ReplayBuffer
        kwargs = dict(alpha=cfg.per_alpha) if cfg.prioritized else {}
        self.buffer = cls(cfg.buffer_size, (self.obs_dim,), (), np.float32, np.int64, **kwargs)
        self.exploration_rate = cfg.exploration_initial_eps
        self._calls = 0

    def _epsilon(self):
        cfg = self.config
        return linear_schedule(cfg.exploration_initial_eps, cfg.exploration_final_eps, cfg.exploration_fraction,
                               self.progress)

    def _act(self, obs, deterministic):
        with no_grad():
            return self.q(obs.reshape(len(obs), -1)).array.argmax(axis=1)

    def _iteration(self):
        cfg = self.config
        n = cfg.n_envs
        obs = np.asarray(self._obs, dtype=np.float32).reshape(n, -1)
        self.exploration_rate = self._epsilon()
        if self.num_timesteps < cfg.learning_starts:
            actions = self.env.sample_actions(self.rng)
        else:
            actions = self._act(obs, True)
            explore = self.rng.random(n) < self.exploration_rate
            if explore.any():
                actions = np.where(explore, self.env.sample_actions(self.rng), actions)
        next_obs, rewards, terminated, truncated, info = self.env.step(actions)
        self.num_timesteps += n
        self._calls += 1
        real_next = np.asarray(info["final_obs"], dtype=np.float32).reshape(n, -1)
        self.buffer.add(obs, actions, rewards, real_next, terminated)
        self._obs = next_obs
        if self._calls % max(cfg.target_update_interval // n, 1) == 0:
            polyak_update(self.q, self.q_target, cfg.tau, self._target_pairs)
        if self.num_timesteps > cfg.learning_starts and self._calls % cfg.train_freq == 0:
            self.train(cfg.gradient_steps)

    def train(self, gradient_steps):
        cfg = self.config
        opt = self.optimizers["q"]
        self._set_lr(opt, self._lr())
        params = list(self.q.parameters())
        losses = []
        for _ in range(gradient_steps):
            if cfg.prioritized:
                b = self.buffer.sample(cfg.batch_size, self.rng, beta=linear_schedule(cfg.per_beta, 1.0, 1.0,
                                                                                       self.progress))
            else:
                b = self.buffer.sample(cfg.batch_size, self.rng)
            loss, td = dqn_loss(self.q, self.q_target, b["obs"], b["actions"], b["rewards"], b["next_obs"], b["dones"],
                                cfg.gamma, cfg.double_dqn, cfg.loss, b.get("weights"))
            opt.zero_grad()
            loss.backward()
            clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            if cfg.prioritized:
                self.buffer.update_priorities(b["indices"], td)
            losses.append(float(loss.array))
            self.n_updates += 1
        self.logs = {"loss": float(np.mean(losses)), "epsilon": float(self.exploration_rate)}

    def _extra_state(self):
        return {"buffer": self.buffer.state_dict(), "calls": int(self._calls),
                "exploration_rate": float(self.exploration_rate)}

    def _load_extra_state(self, state):
        self.buffer.load_state_dict(state["buffer"])
        self._calls = int(state["calls"])
        self.exploration_rate = float(state["exploration_rate"])
