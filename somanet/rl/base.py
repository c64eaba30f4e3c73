"""What every agent shares: its vector of environments, seeding, the training loop, logging, prediction,
evaluation and checkpoints with exact resume.

An agent owns everything a run depends on, so that ``save`` / ``load`` continue it exactly:

* its networks (one ``ModuleDict``, saved as the checkpoint's model) and optimizers;
* its buffer (replay or rollout);
* every random state: somanet's default generator (initialisation, action sampling), NumPy's and
  Python's global generators, and the agent's own NumPy generator (exploration, minibatch order,
  replay sampling);
* its environments (see ``VecEnv.state_dict``): counters, episode statistics, normalisers, the last
  observations, each environment's generator and, where it is plain data, its simulator state;
* its counters (environment steps, updates) and its log.
"""
import dataclasses
import math
import time

import numpy as np

from .. import nn
from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from .envs import VecNormalize, make_vec_env

__all__ = ["Agent", "AgentConfig", "linear_schedule"]


def linear_schedule(start, end, fraction, progress):
    """``start`` moving linearly to ``end`` over the first ``fraction`` of training, then ``end``.

    ``progress`` is the fraction of training done, in [0, 1].
    """
    if fraction <= 0:
        return end
    return start + (end - start) * min(1.0, progress / fraction)


@dataclasses.dataclass
class AgentConfig:
    """Settings every agent has. ``total_timesteps`` is the run's length in environment steps (summed
    over the copies), which ``learn()`` trains for and the schedules anneal over."""

    total_timesteps: int = 100_000
    n_envs: int = 1
    gamma: float = 0.99
    learning_rate: float = 3e-4
    #: "constant", or "linear" (annealed to 0 over ``total_timesteps``)
    lr_schedule: str = "constant"
    hidden_sizes: tuple = (64, 64)
    activation: str = "tanh"
    normalize_obs: bool = False
    normalize_reward: bool = False
    asynchronous: bool = False
    env_kwargs: dict = None


class Agent:
    """The base of the agents. ``Agent(env_id, seed=0, **settings)``; see each algorithm for its settings."""

    Config = AgentConfig
    algorithm = "agent"

    def __init__(self, env_id, seed=0, config=None, verbose=0, **settings):
        from ..train.seed import seed_everything
        config = config or self.Config()
        names = {f.name for f in dataclasses.fields(config)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown setting(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(names))}")
        self.config = dataclasses.replace(config, **settings)
        self._check_config()
        self.env_id = env_id
        self.seed = int(seed)
        self.verbose = verbose
        seed_everything(self.seed)
        self.rng = np.random.Generator(np.random.PCG64(self.seed))
        cfg = self.config
        self.env = make_vec_env(env_id, num_envs=cfg.n_envs, seed=self.seed, asynchronous=cfg.asynchronous,
                                normalize_obs=cfg.normalize_obs, normalize_reward=cfg.normalize_reward,
                                gamma=cfg.gamma, env_kwargs=cfg.env_kwargs)
        from gymnasium import spaces
        self.observation_space = self.env.single_observation_space
        self.action_space = self.env.single_action_space
        if not isinstance(self.observation_space, spaces.Box):
            raise ValueError(f"{type(self).__name__}: needs a Box observation space, {env_id} has "
                             f"{self.observation_space}")
        self.discrete = isinstance(self.action_space, spaces.Discrete)
        self.obs_dim = int(np.prod(self.observation_space.shape))
        self.nets = nn.ModuleDict()
        self.optimizers = {}
        self.num_timesteps = 0
        self.n_updates = 0
        self.train_time = 0.0
        self.logs = {}
        self.history = []
        self._obs = None
        self._build()

    # ------------------------------------------------------------------ to be provided by each algorithm
    def _check_config(self):
        pass

    def _build(self):
        raise NotImplementedError

    def _iteration(self):
        """Advance training by one unit (a rollout and its update, or one vector step and its updates)."""
        raise NotImplementedError

    def _act(self, obs, deterministic):
        """Environment actions for a batch of (already normalised) observations, as a NumPy array."""
        raise NotImplementedError

    def _extra_state(self):
        return {}

    def _load_extra_state(self, state):
        pass

    # ------------------------------------------------------------------ training
    @property
    def progress(self):
        """The fraction of ``total_timesteps`` done, in [0, 1]."""
        return min(1.0, self.num_timesteps / max(1, self.config.total_timesteps))

    def _lr(self):
        lr = self.config.learning_rate
        if self.config.lr_schedule == "linear":
            return lr * (1.0 - self.progress)
        return lr

    def _set_lr(self, optimizer, lr):
        for group in optimizer.param_groups:
            group["lr"] = lr

    def learn(self, until=None, callback=None, log_every=None):
        """Train until ``until`` environment steps in all (default: ``config.total_timesteps``).

        Calling it again continues where it stopped, so ``learn(until=5000)`` then ``learn()`` trains
        exactly as one ``learn()`` call does. ``callback(agent)`` runs after each iteration; returning
        False stops. With ``verbose``, a line of statistics is printed every ``log_every`` steps.
        """
        target = self.config.total_timesteps if until is None else int(until)
        log_every = log_every or max(1, self.config.total_timesteps // 20)
        next_log = (self.num_timesteps // log_every + 1) * log_every
        if self._obs is None:
            self._obs = self.env.reset()
        start = time.perf_counter()
        last_time, last_steps = start, self.num_timesteps
        try:
            while self.num_timesteps < target:
                self._iteration()
                if self.num_timesteps >= next_log or self.num_timesteps >= target:
                    now = time.perf_counter()
                    fps = (self.num_timesteps - last_steps) / max(now - last_time, 1e-9)
                    last_time, last_steps = now, self.num_timesteps
                    self._record(fps)
                    next_log = (self.num_timesteps // log_every + 1) * log_every
                if callback is not None and callback(self) is False:
                    break
        finally:
            self.train_time += time.perf_counter() - start
        return self

    def _record(self, fps):
        stats = self.env.stats
        mean, std = stats.recent(100)
        row = {"timesteps": int(self.num_timesteps), "episodes": len(stats), "mean_return": mean,
               "std_return": std, "fps": float(fps), "n_updates": int(self.n_updates)}
        row.update({k: float(v) for k, v in self.logs.items()})
        self.history.append(row)
        if self.verbose:
            ret = "n/a" if math.isnan(mean) else f"{mean:8.2f} +- {std:7.2f}"
            extra = "  ".join(f"{k} {v:.4g}" for k, v in self.logs.items())
            print(f"steps {self.num_timesteps:>8}  episodes {len(stats):>6}  return (last 100) {ret}  "
                  f"fps {fps:7.0f}  {extra}", flush=True)

    # ------------------------------------------------------------------ acting
    def _tensor(self, array):
        return Tensor(np.ascontiguousarray(array, dtype=np.float32))

    def predict(self, obs, deterministic=True):
        """Actions for raw environment observations (one, or a batch), with the observation
        normaliser's current statistics applied and without updating them."""
        obs = np.asarray(obs, dtype=np.float32)
        single = obs.shape == self.observation_space.shape
        batch = obs[None] if single else obs
        if isinstance(self.env, VecNormalize):
            batch = self.env.normalize(batch)
        with no_grad():
            actions = self._act(batch, deterministic)
        return actions[0] if single else actions

    def evaluate(self, n_episodes=100, seed=10_000, deterministic=True, n_envs=10, env_kwargs=None):
        """Returns of ``n_episodes`` fresh episodes (episode ``k`` reset with ``seed + k``), as an array."""
        from .evaluation import evaluate_policy
        kwargs = self.config.env_kwargs if env_kwargs is None else env_kwargs
        return evaluate_policy(lambda o: self.predict(o, deterministic), self.env_id, n_episodes=n_episodes,
                               seed=seed, n_envs=n_envs, env_kwargs=kwargs)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self):
        """Everything but the networks' weights (see ``save``), as nested dicts and arrays."""
        from ..train.seed import get_rng_state
        return {"algorithm": self.algorithm, "num_timesteps": int(self.num_timesteps),
                "n_updates": int(self.n_updates), "train_time": float(self.train_time),
                "optimizer_states": {k: opt.state_dict() for k, opt in self.optimizers.items()},
                "rng": {"global": get_rng_state(), "agent": self.rng.bit_generator.state},
                "env": self.env.state_dict(), "logs": dict(self.logs), "history": list(self.history),
                "started": self._obs is not None, "extra": self._extra_state()}

    def run_config(self):
        """What ``load`` needs to rebuild the agent: algorithm, environment id, seed and settings."""
        cfg = dataclasses.asdict(self.config)
        return {"algorithm": self.algorithm, "env_id": self.env_id, "seed": self.seed, "config": cfg}

    def save(self, path, extra_config=None):
        """Write a checkpoint directory (see ``somanet.train.checkpoint``) holding the whole agent."""
        from ..train.checkpoint import save_checkpoint
        if not isinstance(self.env_id, str):
            raise TypeError(f"{type(self).__name__}.save(): the agent was made from {self.env_id!r}, not a Gymnasium "
                            f"id; register the environment (gymnasium.register) and make the agent from its id so "
                            f"that load() can make it again")
        config = self.run_config()
        if extra_config:
            config.update(extra_config)
        return save_checkpoint(path, self.nets, {"agent": self.state_dict()}, config=config)

    def load_state(self, checkpoint):
        """Put a checkpoint's (a path or a loaded ``Checkpoint``) state into this agent."""
        from ..train.checkpoint import load_checkpoint
        from ..train.seed import set_rng_state
        ckpt = load_checkpoint(checkpoint) if not hasattr(checkpoint, "trainer_state") else checkpoint
        state = ckpt.trainer_state["agent"]
        if state["algorithm"] != self.algorithm:
            raise ValueError(f"the checkpoint holds a {state['algorithm']} agent, not {self.algorithm}")
        ckpt.load_model(self.nets)
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizer_states"][name])
        self.num_timesteps = int(state["num_timesteps"])
        self.n_updates = int(state["n_updates"])
        self.train_time = float(state["train_time"])
        self.logs = dict(state["logs"])
        self.history = list(state["history"])
        obs = self.env.load_state_dict(state["env"])
        self._obs = obs if state["started"] else None
        self._load_extra_state(state["extra"])
        set_rng_state(state["rng"]["global"])
        self.rng.bit_generator.state = state["rng"]["agent"]
        return self

    @classmethod
    def load(cls, path, verbose=0, **overrides):
        """Rebuild an agent from a checkpoint written by ``save`` and restore its whole state."""
        from ..train.checkpoint import load_checkpoint
        ckpt = load_checkpoint(path)
        cfg = ckpt.config
        if cfg.get("algorithm") != cls.algorithm:
            raise ValueError(f"{path} holds a {cfg.get('algorithm')} agent, not {cls.algorithm}")
        settings = _config_from_json(cls.Config, cfg["config"])
        settings.update(overrides)
        agent = cls(cfg["env_id"], seed=cfg["seed"], verbose=verbose, **settings)
        return agent.load_state(ckpt)

    def close(self):
        self.env.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _config_from_json(config_cls, values):
    defaults = config_cls()
    out = {}
    for f in dataclasses.fields(config_cls):
        if f.name not in values:
            continue
        v = values[f.name]
        if isinstance(getattr(defaults, f.name), tuple) and isinstance(v, list):
            v = tuple(v)
        out[f.name] = v
    return out
