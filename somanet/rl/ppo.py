"""Proximal Policy Optimization (Schulman et al., 2017, "Proximal Policy Optimization Algorithms").

Each iteration collects ``n_steps`` steps from ``n_envs`` environments, computes GAE(lambda)
advantages, then runs ``n_epochs`` passes over the samples in shuffled minibatches of ``batch_size``,
minimising

    L = L_clip + ent_coef * L_entropy + vf_coef * L_value

with ``r = pi(a|s) / pi_old(a|s)`` and ``A`` the advantages (normalised per minibatch when
``normalize_advantage``):

* ``L_clip = -mean(min(r * A, clip(r, 1 - eps, 1 + eps) * A))``, the clipped surrogate;
* ``L_value = mean((V - R)^2)``, or with ``clip_range_vf`` the pessimistic clipped form
  ``mean(max((V - R)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - R)^2))``; the reference
  implementation halves this term, which here is folded into ``vf_coef``;
* ``L_entropy = -mean(H[pi(.|s)])``, an entropy bonus.

Gradients are clipped to a total norm of ``max_grad_norm``; Adam uses ``eps=1e-5``. The learning
rate and the clip range can be annealed linearly to zero (``lr_schedule``/``clip_schedule="linear"``),
and an epoch loop stops early when the approximate KL divergence passes ``1.5 * target_kl``.
Actions are discrete (Categorical) or continuous (a Normal with a state-independent log standard
deviation).
"""
import dataclasses

import numpy as np

from .. import optim
from ..autograd.tensor import Tensor
from ..nn.utils import clip_grad_norm_
from ..ops.elementwise import maximum, minimum
from .onpolicy import OnPolicyAgent, OnPolicyConfig

__all__ = ["PPO", "PPOConfig", "ppo_loss", "normalize_advantages"]


def normalize_advantages(advantages, eps=1e-8):
    """``(A - mean(A)) / (std(A) + eps)`` with the unbiased standard deviation (a NumPy array)."""
    advantages = np.asarray(advantages, dtype=np.float32)
    if advantages.shape[0] < 2:
        return advantages
    return ((advantages - advantages.mean()) / (advantages.std(ddof=1) + eps)).astype(np.float32)


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float32))


def ppo_loss(log_prob, old_log_prob, advantages, values, old_values, returns, entropy, clip_range=0.2,
             clip_range_vf=None, ent_coef=0.0, vf_coef=0.5):
    """PPO's loss on one minibatch; returns ``(loss, info)``.

    ``log_prob``, ``values`` and ``entropy`` carry gradients; the others are constants from the rollout
    (tensors or arrays). ``advantages`` are used as given (normalise them first if wanted).
    ``info`` holds the three terms, the fraction of clipped ratios and the approximate KL divergence
    ``mean((r - 1) - log r)`` as floats.
    """
    old_log_prob, advantages = _t(old_log_prob), _t(advantages)
    old_values, returns = _t(old_values), _t(returns)
    log_ratio = log_prob - old_log_prob
    ratio = log_ratio.exp()
    surrogate = advantages * ratio
    clipped = advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    policy_loss = -minimum(surrogate, clipped).mean()
    if clip_range_vf is None:
        value_loss = ((returns - values) ** 2).mean()
    else:
        values_clipped = old_values + (values - old_values).clamp(-clip_range_vf, clip_range_vf)
        value_loss = maximum((values - returns) ** 2, (values_clipped - returns) ** 2).mean()
    entropy_loss = -entropy.mean()
    loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
    r = ratio.array
    lr_ = log_ratio.array
    info = {"policy_loss": float(policy_loss.array), "value_loss": float(value_loss.array),
            "entropy_loss": float(entropy_loss.array),
            "clip_fraction": float(np.mean(np.abs(r - 1.0) > clip_range)),
            "approx_kl": float(np.mean((r - 1.0) - lr_))}
    return loss, info


@dataclasses.dataclass
class PPOConfig(OnPolicyConfig):
    n_epochs: int = 10
    batch_size: int = 64
    clip_range: float = 0.2
    #: "constant", or "linear" (annealed to 0 with the progress of training)
    clip_schedule: str = "constant"
    clip_range_vf: float = None
    normalize_advantage: bool = True
    target_kl: float = None


class PPO(OnPolicyAgent):
    """PPO with the clipped surrogate objective; ``PPO("CartPole-v1", seed=0, n_envs=8, ...)``.

    Settings (``PPOConfig``): ``total_timesteps``, ``n_envs``, ``n_steps``, ``batch_size``,
    ``n_epochs``, ``learning_rate``, ``lr_schedule``, ``gamma``, ``gae_lambda``, ``clip_range``,
    ``clip_schedule``, ``clip_range_vf``, ``ent_coef``, ``vf_coef``, ``max_grad_norm``,
    ``normalize_advantage``, ``target_kl``, ``hidden_sizes``, ``activation``, ``ortho_init``,
    ``log_std_init``, ``normalize_obs``, ``normalize_reward``, ``asynchronous``, ``env_kwargs``.
    """

    Config = PPOConfig
    algorithm = "ppo"

    def _check_config(self):
        cfg = self.config
        if cfg.batch_size > cfg.n_steps * cfg.n_envs:
            raise ValueError(f"PPO: batch_size ({cfg.batch_size}) is larger than a rollout (n_steps * n_envs = "
                             f"{cfg.n_steps * cfg.n_envs})")

    def _build_optimizer(self):
        self.optimizers["policy"] = optim.Adam(self.policy.parameters(), lr=self.config.learning_rate, eps=1e-5)

    def train(self):
        cfg = self.config
        opt = self.optimizers["policy"]
        self._set_lr(opt, self._lr())
        clip_range = cfg.clip_range * (1.0 - self.progress) if cfg.clip_schedule == "linear" else cfg.clip_range
        params = list(self.policy.parameters())
        sums, count, stop = {}, 0, False
        for _ in range(cfg.n_epochs):
            for idx in self.buffer.minibatches(cfg.batch_size, self.rng):
                b = self.buffer.get(idx)
                adv = normalize_advantages(b["advantages"]) if cfg.normalize_advantage else b["advantages"]
                log_prob, entropy, values = self.policy.evaluate_actions(b["obs"], b["actions"])
                loss, info = ppo_loss(log_prob, b["log_probs"], adv, values, b["values"], b["returns"], entropy,
                                      clip_range, cfg.clip_range_vf, cfg.ent_coef, cfg.vf_coef)
                if cfg.target_kl is not None and info["approx_kl"] > 1.5 * cfg.target_kl:
                    stop = True
                    break
                opt.zero_grad()
                loss.backward()
                clip_grad_norm_(params, cfg.max_grad_norm)
                opt.step()
                self.n_updates += 1
                for k, v in info.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
            if stop:
                break
        self.logs = {k: v / max(count, 1) for k, v in sums.items()}
        values, returns = self.buffer.values.ravel(), self.buffer.returns.ravel()
        var = np.var(returns)
        self.logs["explained_variance"] = float("nan") if var == 0 else float(1.0 - np.var(returns - values) / var)
