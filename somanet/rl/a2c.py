"""Advantage Actor-Critic, the synchronous form of A3C (Mnih et al., 2016, "Asynchronous Methods for
Deep Reinforcement Learning").

Each iteration collects ``n_steps`` steps from ``n_envs`` environments and takes one gradient step on
all of them at once:

    L = -mean(A * log pi(a|s)) + vf_coef * mean((V(s) - R)^2) - ent_coef * mean(H[pi(.|s)])

where ``R`` are the n-step (or GAE, with ``gae_lambda < 1``) returns and ``A = R - V``. The optimizer
is RMSprop (``alpha=0.99``, ``eps=1e-5``) as in the paper, or Adam with ``optimizer="adam"``;
gradients are clipped to a total norm of ``max_grad_norm``.
"""
import dataclasses

import numpy as np

from .. import optim
from ..autograd.tensor import Tensor
from ..nn.utils import clip_grad_norm_
from .onpolicy import OnPolicyAgent, OnPolicyConfig
from .ppo import normalize_advantages

__all__ = ["A2C", "A2CConfig", "a2c_loss"]


def a2c_loss(log_prob, advantages, values, returns, entropy, ent_coef=0.0, vf_coef=0.5):
    """A2C's loss; returns ``(loss, info)`` (``advantages`` and ``returns`` are constants)."""
    adv = advantages if isinstance(advantages, Tensor) else Tensor(np.asarray(advantages, dtype=np.float32))
    ret = returns if isinstance(returns, Tensor) else Tensor(np.asarray(returns, dtype=np.float32))
    policy_loss = -(adv * log_prob).mean()
    value_loss = ((ret - values) ** 2).mean()
    entropy_loss = -entropy.mean()
    loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
    return loss, {"policy_loss": float(policy_loss.array), "value_loss": float(value_loss.array),
                  "entropy_loss": float(entropy_loss.array)}


@dataclasses.dataclass
class A2CConfig(OnPolicyConfig):
    n_steps: int = 5
    learning_rate: float = 7e-4
    gae_lambda: float = 1.0
    normalize_advantage: bool = False
    #: "rmsprop" (alpha 0.99, eps 1e-5) or "adam"
    optimizer: str = "rmsprop"


class A2C(OnPolicyAgent):
    """A2C; ``A2C("CartPole-v1", seed=0, n_envs=8)``. Settings: ``A2CConfig``."""

    Config = A2CConfig
    algorithm = "a2c"

    def _build_optimizer(self):
        cfg = self.config
        if cfg.optimizer == "rmsprop":
            opt = optim.RMSprop(self.policy.parameters(), lr=cfg.learning_rate, alpha=0.99, eps=1e-5)
        elif cfg.optimizer == "adam":
            opt = optim.Adam(self.policy.parameters(), lr=cfg.learning_rate, eps=1e-5)
        else:
            raise ValueError(f"A2C: optimizer must be 'rmsprop' or 'adam', got {cfg.optimizer!r}")
        self.optimizers["policy"] = opt

    def train(self):
        cfg = self.config
        opt = self.optimizers["policy"]
        self._set_lr(opt, self._lr())
        b = self.buffer.get()
        adv = normalize_advantages(b["advantages"]) if cfg.normalize_advantage else b["advantages"]
        log_prob, entropy, values = self.policy.evaluate_actions(b["obs"], b["actions"])
        loss, info = a2c_loss(log_prob, adv, values, b["returns"], entropy, cfg.ent_coef, cfg.vf_coef)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(list(self.policy.parameters()), cfg.max_grad_norm)
        opt.step()
        self.n_updates += 1
        self.logs = info
