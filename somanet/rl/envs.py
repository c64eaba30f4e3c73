"""Environments: Gymnasium environments and vectors of them, with episode statistics and saved state.

``make_vec_env("CartPole-v1", num_envs=8, seed=0)`` gives a ``VecEnv``: ``num_envs`` copies stepped
together, each reset automatically in the step that ends its episode (the last observation of the
finished episode is kept in ``info["final_obs"]``, so that a truncated episode can still be
bootstrapped). Copy ``i`` is seeded with ``seed + i`` at its first reset and draws its later resets
from its own generator, so one seed gives the same episodes every run.

``VecEnv`` runs the copies in this process (``asynchronous=False``, the default and the faster choice
for cheap environments) or in one subprocess each (``asynchronous=True``, through Gymnasium's
``AsyncVectorEnv``), with the same results either way.

``VecNormalize`` wraps a ``VecEnv`` to normalise observations by a running mean and standard deviation
and to scale rewards by the running standard deviation of the discounted return.

``state_dict()`` / ``load_state_dict()`` save and restore what a resumed run needs: seeds, episode
counters and statistics, the normalisers, each environment's random generator, and the simulator
state itself where the environment keeps it as plain numbers (the classic-control environments:
CartPole, Acrobot, Pendulum, MountainCar). An environment that keeps objects the saver cannot copy
(Box2D's world in LunarLander, MuJoCo's simulator) is restored with its generator only: its episode in
progress starts over, so the run differs from an uninterrupted one from that point on (see
``docs/rl.md``).
"""
import numbers

import numpy as np

from ._gym import gym

__all__ = ["make_env", "make_vec_env", "VecEnv", "VecNormalize", "EpisodeStats", "RunningMeanStd",
           "get_sim_state", "set_sim_state"]

# Attributes that only drawing uses (pygame surfaces and clocks) or that describe the environment rather
# than its state; they are neither saved nor a reason to call a state incomplete.
_RENDER_ATTRS = frozenset({"screen", "clock", "isopen", "surf", "render_mode", "metadata", "window", "viewer",
                           "_ezpickle_args", "_ezpickle_kwargs", "spec", "_np_random", "np_random",
                           "_cached_spec", "_metadata", "_action_space", "_observation_space", "_reward_range",
                           "env"})


def _is_plain(value):
    if value is None or isinstance(value, (bool, str, numbers.Number, np.generic)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype != object
    if isinstance(value, (tuple, list)):
        return all(_is_plain(v) for v in value)
    return False


def _copy_plain(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [_copy_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_copy_plain(v) for v in value)
    return value


def _layers(env):
    layers = [env]
    while hasattr(layers[-1], "env") and layers[-1].env is not layers[-1]:
        layers.append(layers[-1].env)
    return layers


def get_sim_state(env):
    """The state of one Gymnasium environment as plain values: ``{"layers": [...], "rng": ..., "complete": bool}``.

    Every wrapper layer and the environment itself contribute their attributes that are plain data
    (numbers, strings, arrays, tuples of them): the simulator state, the time limit's step count, the
    order-enforcing flags. ``rng`` is the state of the environment's random generator. ``complete`` is
    False when the environment holds other objects (a physics engine's world), which cannot be saved:
    restoring such a state restores the generator only.
    """
    from gymnasium.spaces import Space
    layers = []
    complete = True
    base = env.unwrapped
    for layer in _layers(env):
        attrs = {}
        for name, value in vars(layer).items():
            if name in _RENDER_ATTRS:
                continue
            if _is_plain(value):
                attrs[name] = _copy_plain(value)
            elif layer is base and not isinstance(value, (Space, gym().Env)) and not callable(value) \
                    and not type(value).__module__.startswith("gymnasium"):
                # Wrappers keep bookkeeping (constructor arguments, checker data) beside their plain
                # counters; the environment itself keeping an object means part of its state is in it.
                complete = False
        layers.append(attrs)
    rng = getattr(base, "_np_random", None)
    return {"layers": layers, "rng": None if rng is None else rng.bit_generator.state, "complete": complete}


def set_sim_state(env, state):
    """Restore what ``get_sim_state`` saved into an environment of the same id (already reset once).

    Returns whether the simulator state was restored too (``state["complete"]``); when it was not, only
    the generator is, and the caller should reset the environment to start a fresh episode from it.
    """
    layers = _layers(env)
    if len(layers) != len(state["layers"]):
        raise ValueError(f"set_sim_state(): the saved state has {len(state['layers'])} wrapper layers but the "
                         f"environment has {len(layers)}")
    if state["rng"] is not None:
        base = env.unwrapped
        if getattr(base, "_np_random", None) is None:
            base._np_random = np.random.Generator(np.random.PCG64())
        base._np_random.bit_generator.state = state["rng"]
    if not state["complete"]:
        return False
    for layer, attrs in zip(layers, state["layers"]):
        for name, value in attrs.items():
            if isinstance(value, list) and isinstance(getattr(layer, name, None), tuple):
                value = tuple(value)
            setattr(layer, name, _copy_plain(value))
    return True


def _wrapper_class():
    gymnasium = gym()

    class SimStateWrapper(gymnasium.Wrapper):
        """Gives an environment ``get_sim_state`` / ``set_sim_state`` methods (callable across processes)."""

        def __init__(self, env, index=0):
            super().__init__(env)
            self.index = index

        def get_sim_state(self):
            return get_sim_state(self.env)

        def set_sim_state_from(self, states):
            return set_sim_state(self.env, states[self.index])

    return SimStateWrapper


def make_env(env_id, render_mode=None, index=0, **kwargs):
    """``gymnasium.make(env_id, ...)`` wrapped so that its state can be saved (see ``get_sim_state``)."""
    gymnasium = gym()
    if callable(env_id):
        env = env_id(render_mode=render_mode, **kwargs) if render_mode else env_id(**kwargs)
    else:
        env = gymnasium.make(env_id, render_mode=render_mode, **kwargs)
    return _wrapper_class()(env, index=index)


class _EnvFn:
    """A picklable ``() -> env`` for the subprocesses of an asynchronous vector."""

    def __init__(self, env_id, index, render_mode, kwargs):
        self.env_id, self.index, self.render_mode, self.kwargs = env_id, index, render_mode, kwargs

    def __call__(self):
        return make_env(self.env_id, render_mode=self.render_mode, index=self.index, **self.kwargs)


class EpisodeStats:
    """Return and length of every finished episode, in the environment's own (unscaled) rewards.

    ``returns``, ``lengths``, ``timesteps`` (the vector's step count when each ended) and ``env_index``
    are lists, one entry per episode, in the order they finished.
    """

    def __init__(self, num_envs):
        self.num_envs = num_envs
        self.current_return = np.zeros(num_envs, dtype=np.float64)
        self.current_length = np.zeros(num_envs, dtype=np.int64)
        self.returns, self.lengths, self.timesteps, self.env_index = [], [], [], []

    def update(self, rewards, dones, timestep):
        self.current_return += rewards
        self.current_length += 1
        finished = []
        for i in np.flatnonzero(dones):
            self.returns.append(float(self.current_return[i]))
            self.lengths.append(int(self.current_length[i]))
            self.timesteps.append(int(timestep))
            self.env_index.append(int(i))
            finished.append((int(i), float(self.current_return[i]), int(self.current_length[i])))
            self.current_return[i] = 0.0
            self.current_length[i] = 0
        return finished

    def __len__(self):
        return len(self.returns)

    def recent(self, n=100):
        """Mean and standard deviation of the last ``n`` returns (NaN when none finished yet)."""
        if not self.returns:
            return float("nan"), float("nan")
        r = np.asarray(self.returns[-n:])
        return float(r.mean()), float(r.std())

    def state_dict(self):
        return {"current_return": self.current_return.copy(), "current_length": self.current_length.copy(),
                "returns": np.asarray(self.returns, dtype=np.float64),
                "lengths": np.asarray(self.lengths, dtype=np.int64),
                "timesteps": np.asarray(self.timesteps, dtype=np.int64),
                "env_index": np.asarray(self.env_index, dtype=np.int64)}

    def load_state_dict(self, state):
        self.current_return = np.array(state["current_return"], dtype=np.float64)
        self.current_length = np.array(state["current_length"], dtype=np.int64)
        self.returns = [float(v) for v in state["returns"]]
        self.lengths = [int(v) for v in state["lengths"]]
        self.timesteps = [int(v) for v in state["timesteps"]]
        self.env_index = [int(v) for v in state["env_index"]]


class VecEnv:
    """``num_envs`` copies of one environment, stepped together, each reset in the step that ends it.

    Args:
        env_id: a Gymnasium id (``"CartPole-v1"``) or a callable returning a ``gymnasium.Env``.
        num_envs: how many copies.
        seed: copy ``i`` is reset with ``seed + i`` the first time; None leaves them unseeded.
        asynchronous: run each copy in a subprocess (Gymnasium's ``AsyncVectorEnv``).
        render_mode: passed to each copy (``"rgb_array"`` to draw frames).
        env_kwargs: more keyword arguments for ``gymnasium.make``.

    ``step(actions)`` returns ``(obs, rewards, terminated, truncated, info)`` with arrays over the
    copies; ``info["final_obs"]`` holds, in the rows of the copies whose episode just ended, that
    episode's last observation (``obs`` holds the first one of the next episode), and
    ``info["episodes"]`` a ``(index, return, length)`` tuple per episode that ended.
    """

    def __init__(self, env_id, num_envs=1, seed=None, asynchronous=False, render_mode=None, env_kwargs=None):
        if num_envs < 1:
            raise ValueError(f"VecEnv: num_envs must be at least 1, got {num_envs}")
        gymnasium = gym()
        self.env_id = env_id
        self.num_envs = int(num_envs)
        self.seed = None if seed is None else int(seed)
        self.asynchronous = bool(asynchronous)
        kwargs = dict(env_kwargs or {})
        fns = [_EnvFn(env_id, i, render_mode, kwargs) for i in range(self.num_envs)]
        if self.asynchronous:
            from gymnasium.vector import AsyncVectorEnv, AutoresetMode
            self._async = AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
            self.envs = None
            self.single_observation_space = self._async.single_observation_space
            self.single_action_space = self._async.single_action_space
            self.spec = None
        else:
            self._async = None
            self.envs = [fn() for fn in fns]
            self.single_observation_space = self.envs[0].observation_space
            self.single_action_space = self.envs[0].action_space
            self.spec = self.envs[0].spec
        self._discrete = isinstance(self.single_action_space, gymnasium.spaces.Discrete)
        self.resets = np.zeros(self.num_envs, dtype=np.int64)
        self.num_steps = 0
        self.stats = EpisodeStats(self.num_envs)
        self._obs = None
        self.closed = False

    # ------------------------------------------------------------------ stepping
    def _seeds(self):
        return [self.seed + i if (self.seed is not None and self.resets[i] == 0) else None
                for i in range(self.num_envs)]

    def reset(self):
        """Reset every copy (seeded at their first reset); returns the observations."""
        seeds = self._seeds()
        if self._async is not None:
            obs, _ = self._async.reset(seed=seeds)
        else:
            obs = np.stack([env.reset(seed=s)[0] for env, s in zip(self.envs, seeds)])
        self.resets += 1
        self.stats.current_return[:] = 0.0
        self.stats.current_length[:] = 0
        self._obs = np.asarray(obs)
        return self._obs

    def step(self, actions):
        actions = np.asarray(actions)
        n = self.num_envs
        if self._async is not None:
            obs, rewards, terminated, truncated, infos = self._async.step(actions)
            obs = np.asarray(obs)
            rewards = np.asarray(rewards, dtype=np.float64)
            terminated = np.asarray(terminated, dtype=bool)
            truncated = np.asarray(truncated, dtype=bool)
            final_obs = obs.copy()
            mask = infos.get("_final_obs", np.zeros(n, dtype=bool))
            for i in np.flatnonzero(mask):
                final_obs[i] = infos["final_obs"][i]
        else:
            rows, rewards = [], np.empty(n, dtype=np.float64)
            terminated = np.empty(n, dtype=bool)
            truncated = np.empty(n, dtype=bool)
            final_obs = None
            for i, env in enumerate(self.envs):
                a = int(actions[i]) if self._discrete else actions[i]
                o, r, te, tr, _ = env.step(a)
                rewards[i], terminated[i], truncated[i] = r, te, tr
                if te or tr:
                    if final_obs is None:
                        final_obs = [None] * n
                    final_obs[i] = o
                    o, _ = env.reset()
                rows.append(o)
            obs = np.stack(rows)
            if final_obs is not None:
                final_obs = np.stack([obs[i] if f is None else f for i, f in enumerate(final_obs)])
            else:
                final_obs = obs
        dones = terminated | truncated
        self.num_steps += n
        self.resets += dones
        episodes = self.stats.update(rewards, dones, self.num_steps)
        self._obs = obs
        return obs, rewards, terminated, truncated, {"final_obs": final_obs, "episodes": episodes}

    def sample_actions(self, rng):
        """Uniformly random actions for every copy, drawn from ``rng`` (a NumPy Generator)."""
        space = self.single_action_space
        if self._discrete:
            return rng.integers(space.n, size=self.num_envs) + int(space.start)
        low = np.broadcast_to(space.low, space.shape)
        high = np.broadcast_to(space.high, space.shape)
        return rng.uniform(low, high, size=(self.num_envs,) + space.shape).astype(space.dtype)

    def render(self, index=0):
        """The frame of copy ``index`` (needs ``render_mode="rgb_array"``)."""
        if self._async is not None:
            return self._async.call("render")[index]
        return self.envs[index].render()

    def close(self):
        if self.closed:
            return
        if self._async is not None:
            self._async.close()
        else:
            for env in self.envs:
                env.close()
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ state
    def _sim_states(self):
        if self._async is not None:
            return list(self._async.call("get_sim_state"))
        return [env.get_sim_state() for env in self.envs]

    def state_dict(self):
        """Counters, episode statistics, the last observations and each copy's environment state."""
        return {"env_id": self.env_id if isinstance(self.env_id, str) else None, "num_envs": self.num_envs,
                "seed": self.seed, "resets": self.resets.copy(), "num_steps": int(self.num_steps),
                "stats": self.stats.state_dict(), "obs": None if self._obs is None else np.array(self._obs),
                "sims": self._sim_states()}

    def load_state_dict(self, state):
        """Continue from a ``state_dict()``; returns the observations the agent should act on next.

        Copies whose simulator state could not be saved start a new episode here (from their restored
        generator); their unfinished episode is dropped from the statistics.
        """
        if state["num_envs"] != self.num_envs:
            raise ValueError(f"VecEnv.load_state_dict(): the state is for {state['num_envs']} copies, this vector "
                             f"has {self.num_envs}")
        self.seed = state["seed"]
        saved_resets = np.array(state["resets"], dtype=np.int64)
        if state["obs"] is not None:
            # Each copy is reset once (with its first seed) so that its internals exist, then overwritten.
            self.resets[:] = 0
            self.reset()
        self.stats.load_state_dict(state["stats"])
        self.num_steps = int(state["num_steps"])
        if state["obs"] is None:
            self.resets = saved_resets
            self._obs = None
            return None
        sims = state["sims"]
        if self._async is not None:
            restored = list(self._async.call("set_sim_state_from", sims))
        else:
            restored = [set_sim_state(env.env, s) for env, s in zip(self.envs, sims)]
        obs = np.array(state["obs"])
        for i, ok in enumerate(restored):
            if not ok:
                if self._async is not None:
                    o = self._async.call("reset")[i][0]
                else:
                    o = self.envs[i].reset()[0]
                obs[i] = o
                self.stats.current_return[i] = 0.0
                self.stats.current_length[i] = 0
        self.resets = saved_resets
        self._obs = obs
        return obs

    @property
    def fully_restorable(self):
        """Whether every copy's simulator state can be saved (else resume restarts their episodes)."""
        return all(s["complete"] for s in self._sim_states())


class RunningMeanStd:
    """Running mean and variance of batches of arrays (the parallel algorithm of Chan, Golub and LeVeque)."""

    def __init__(self, shape=(), epsilon=1e-4):
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)

    def update(self, batch):
        batch = np.asarray(batch, dtype=np.float64)
        b_mean, b_var, b_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * (b_count / total)
        m2 = self.var * self.count + b_var * b_count + delta * delta * (self.count * b_count / total)
        self.var = m2 / total
        self.count = total

    def state_dict(self):
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": float(self.count)}

    def load_state_dict(self, state):
        self.mean = np.array(state["mean"], dtype=np.float64)
        self.var = np.array(state["var"], dtype=np.float64)
        self.count = float(state["count"])


class VecNormalize:
    """Normalise a ``VecEnv``'s observations and scale its rewards, with running statistics.

    Observations become ``clip((obs - mean) / sqrt(var + eps), -clip_obs, clip_obs)``; rewards are
    divided by the running standard deviation of the discounted return ``R = gamma * R + r`` (reset at
    each episode end) and clipped to ``clip_reward``. The statistics update while ``training`` is True.
    ``info["final_obs"]`` is normalised too; the episode statistics (``stats``) stay in raw rewards.
    """

    def __init__(self, venv, normalize_obs=True, normalize_reward=True, gamma=0.99, clip_obs=10.0,
                 clip_reward=10.0, epsilon=1e-8):
        self.venv = venv
        self.normalize_obs = bool(normalize_obs)
        self.normalize_reward = bool(normalize_reward)
        self.gamma, self.clip_obs, self.clip_reward, self.epsilon = gamma, clip_obs, clip_reward, epsilon
        self.obs_rms = RunningMeanStd(venv.single_observation_space.shape)
        self.ret_rms = RunningMeanStd(())
        self.returns = np.zeros(venv.num_envs, dtype=np.float64)
        self.training = True

    def __getattr__(self, name):
        if name == "venv":
            raise AttributeError(name)
        return getattr(self.venv, name)

    def normalize(self, obs):
        """Normalise observations with the current statistics (no update)."""
        if not self.normalize_obs:
            return obs
        out = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + self.epsilon)
        return np.clip(out, -self.clip_obs, self.clip_obs).astype(np.float32)

    def reset(self):
        obs = self.venv.reset()
        self.returns[:] = 0.0
        if self.training and self.normalize_obs:
            self.obs_rms.update(obs)
        return self.normalize(obs)

    def step(self, actions):
        obs, rewards, terminated, truncated, info = self.venv.step(actions)
        if self.training and self.normalize_obs:
            self.obs_rms.update(obs)
        info = dict(info, final_obs=self.normalize(info["final_obs"]))
        if self.normalize_reward:
            self.returns = self.returns * self.gamma + rewards
            if self.training:
                self.ret_rms.update(self.returns)
            rewards = np.clip(rewards / np.sqrt(self.ret_rms.var + self.epsilon), -self.clip_reward,
                              self.clip_reward)
            self.returns[terminated | truncated] = 0.0
        return self.normalize(obs), rewards, terminated, truncated, info

    def state_dict(self):
        return {"venv": self.venv.state_dict(), "obs_rms": self.obs_rms.state_dict(),
                "ret_rms": self.ret_rms.state_dict(), "returns": self.returns.copy(), "training": self.training}

    def load_state_dict(self, state):
        obs = self.venv.load_state_dict(state["venv"])
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.ret_rms.load_state_dict(state["ret_rms"])
        self.returns = np.array(state["returns"], dtype=np.float64)
        self.training = bool(state["training"])
        return None if obs is None else self.normalize(obs)

    def close(self):
        self.venv.close()


def make_vec_env(env_id, num_envs=1, seed=None, asynchronous=False, normalize_obs=False, normalize_reward=False,
                 gamma=0.99, render_mode=None, env_kwargs=None):
    """A ``VecEnv`` of ``num_envs`` copies of ``env_id``, wrapped in ``VecNormalize`` if either flag is set."""
    venv = VecEnv(env_id, num_envs=num_envs, seed=seed, asynchronous=asynchronous, render_mode=render_mode,
                  env_kwargs=env_kwargs)
    if normalize_obs or normalize_reward:
        venv = VecNormalize(venv, normalize_obs=normalize_obs, normalize_reward=normalize_reward, gamma=gamma)
    return venv
