"""The networks of the agents: MLPs, actor-critics, Q-networks and the squashed Gaussian actor of SAC."""
import math

import numpy as np

from .. import nn
from ..autograd.tensor import Tensor
from ..distributions import Categorical, Independent, Normal
from ..ops.elementwise import minimum

__all__ = ["mlp", "orthogonal_init", "ActorCritic", "QNetwork", "SquashedGaussianActor", "TwinQ",
           "tanh_log_abs_det_jacobian"]

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
_LOG2 = math.log(2.0)


def _activation(name):
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


def mlp(in_features, hidden_sizes, out_features=None, activation="tanh"):
    """``Linear -> activation`` for each hidden size, then a last ``Linear`` if ``out_features`` is given."""
    layers, size = [], in_features
    for h in hidden_sizes:
        layers += [nn.Linear(size, h), _activation(activation)()]
        size = h
    if out_features is not None:
        layers.append(nn.Linear(size, out_features))
    return nn.Sequential(*layers)


def orthogonal_init(module, gain=math.sqrt(2.0)):
    """Orthogonal weights scaled by ``gain`` and zero biases for every ``Linear`` in ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float32))


class ActorCritic(nn.Module):
    """A policy and a value function as two separate MLPs (the usual choice for PPO, A2C, REINFORCE).

    Discrete actions (``action_dim=None``, ``n_actions`` given) use a ``Categorical`` over the policy's
    logits; continuous ones a diagonal ``Normal`` whose mean is the policy's output and whose log
    standard deviation is a learned vector independent of the state (``log_std``, initialised to
    ``log_std_init``). With ``ortho_init`` the hidden layers get orthogonal weights of gain sqrt(2), the
    policy head gain 0.01 and the value head gain 1.
    """

    def __init__(self, obs_dim, n_actions=None, action_dim=None, hidden_sizes=(64, 64), activation="tanh",
                 ortho_init=True, log_std_init=0.0):
        super().__init__()
        if (n_actions is None) == (action_dim is None):
            raise ValueError("ActorCritic: give n_actions (discrete) or action_dim (continuous)")
        self.discrete = n_actions is not None
        out = n_actions if self.discrete else action_dim
        self.pi = mlp(obs_dim, hidden_sizes, out, activation)
        self.vf = mlp(obs_dim, hidden_sizes, 1, activation)
        if not self.discrete:
            self.log_std = nn.Parameter(Tensor(np.full(action_dim, log_std_init, dtype=np.float32)))
        if ortho_init:
            orthogonal_init(self.pi, math.sqrt(2.0))
            orthogonal_init(self.vf, math.sqrt(2.0))
            orthogonal_init(self.pi[-1], 0.01)
            orthogonal_init(self.vf[-1], 1.0)

    def distribution(self, obs):
        """The action distribution at ``obs`` (a Categorical, or an Independent Normal)."""
        out = self.pi(_as_tensor(obs))
        if self.discrete:
            return Categorical(logits=out, validate_args=False)
        std = self.log_std.exp().expand(out.shape)
        return Independent(Normal(out, std, validate_args=False), 1, validate_args=False)

    def value(self, obs):
        return self.vf(_as_tensor(obs)).squeeze(-1)

    def evaluate_actions(self, obs, actions):
        """``(log_prob, entropy, value)`` of the given actions at ``obs``, with gradients."""
        obs = _as_tensor(obs)
        dist = self.distribution(obs)
        actions = actions if isinstance(actions, Tensor) else Tensor(np.asarray(actions))
        return dist.log_prob(actions), dist.entropy(), self.value(obs)

    def act(self, obs, deterministic=False):
        """Actions, their log-probabilities and the values at ``obs``, as NumPy arrays (call under no_grad)."""
        obs = _as_tensor(obs)
        dist = self.distribution(obs)
        if deterministic:
            actions = dist.base_dist.mean if not self.discrete else dist.probs.argmax(-1)
        else:
            actions = dist.sample()
        return actions.array, dist.log_prob(actions).array, self.value(obs).array


class QNetwork(nn.Module):
    """Action values ``Q(s, .)`` for discrete actions: an MLP, or a dueling one.

    The dueling form (Wang et al., 2016) shares the hidden layers and splits into a state value ``V(s)``
    and advantages ``A(s, a)``, combined as ``Q = V + A - mean_a A``.
    """

    def __init__(self, obs_dim, n_actions, hidden_sizes=(64, 64), activation="relu", dueling=False):
        super().__init__()
        self.dueling = bool(dueling)
        if self.dueling:
            self.body = mlp(obs_dim, hidden_sizes, None, activation)
            size = hidden_sizes[-1] if hidden_sizes else obs_dim
            self.value_head = nn.Linear(size, 1)
            self.advantage_head = nn.Linear(size, n_actions)
        else:
            self.q = mlp(obs_dim, hidden_sizes, n_actions, activation)

    def forward(self, obs):
        obs = _as_tensor(obs)
        if not self.dueling:
            return self.q(obs)
        h = self.body(obs)
        adv = self.advantage_head(h)
        return self.value_head(h) + adv - adv.mean(-1, keepdim=True)


def tanh_log_abs_det_jacobian(u):
    """``log(1 - tanh(u)^2)`` computed stably as ``2 * (log 2 - u - softplus(-2u))``."""
    return 2.0 * (_LOG2 - u - nn.functional.softplus(-2.0 * u))


class SquashedGaussianActor(nn.Module):
    """SAC's policy: ``a = tanh(u)``, ``u ~ Normal(mu(s), sigma(s))``, both from one MLP.

    ``log_std`` is clamped to [-20, 2]. The log-density of ``a`` includes the change of variables:
    ``log pi(a|s) = sum_i [log N(u_i; mu_i, sigma_i) - log(1 - tanh(u_i)^2)]``.
    Actions are in [-1, 1]; the agent rescales them to the action space.
    """

    def __init__(self, obs_dim, action_dim, hidden_sizes=(256, 256), activation="relu"):
        super().__init__()
        self.body = mlp(obs_dim, hidden_sizes, None, activation)
        size = hidden_sizes[-1] if hidden_sizes else obs_dim
        self.mu = nn.Linear(size, action_dim)
        self.log_std = nn.Linear(size, action_dim)

    def forward(self, obs):
        h = self.body(_as_tensor(obs))
        return self.mu(h), self.log_std(h).clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs, deterministic=False, noise=None):
        """``(action, log_prob)``: a reparameterised draw (or ``tanh(mu)`` if deterministic) and its log-density.

        ``noise``, a standard normal array of the actions' shape, replaces the draw from somanet's
        generator (``u = mu + sigma * noise``).
        """
        mu, log_std = self(obs)
        std = log_std.exp()
        dist = Normal(mu, std, validate_args=False)
        if deterministic:
            u = mu
        elif noise is not None:
            u = mu + std * Tensor(np.asarray(noise, dtype=np.float32))
        else:
            u = dist.rsample()
        log_prob = (dist.log_prob(u) - tanh_log_abs_det_jacobian(u)).sum(-1)
        return u.tanh(), log_prob


class TwinQ(nn.Module):
    """Two independent Q-functions ``Q1(s, a)``, ``Q2(s, a)`` on the concatenated state and action."""

    def __init__(self, obs_dim, action_dim, hidden_sizes=(256, 256), activation="relu"):
        super().__init__()
        self.q1 = mlp(obs_dim + action_dim, hidden_sizes, 1, activation)
        self.q2 = mlp(obs_dim + action_dim, hidden_sizes, 1, activation)

    def forward(self, obs, actions):
        from ..ops.shape import cat
        x = cat([_as_tensor(obs), _as_tensor(actions)], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def min_q(self, obs, actions):
        q1, q2 = self(obs, actions)
        return minimum(q1, q2)
