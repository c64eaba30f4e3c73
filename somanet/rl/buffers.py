"""Experience buffers: replay buffers for off-policy learning, a rollout buffer with GAE for on-policy.

Everything is stored in preallocated NumPy arrays; sampling draws from a NumPy ``Generator`` passed in,
so a seeded run samples the same batches every time, and ``state_dict`` / ``load_state_dict`` save
and restore a buffer exactly (contents, write position and, for the prioritised buffer, priorities).
"""
import numpy as np

__all__ = ["ReplayBuffer", "PrioritizedReplayBuffer", "RolloutBuffer", "compute_gae", "discounted_returns"]


def compute_gae(rewards, values, dones, last_values, gamma=0.99, gae_lambda=0.95):
    """Generalised advantage estimates (Schulman et al., 2016) and the returns they imply.

    Args:
        rewards, values, dones: arrays of shape ``(T, N)`` (T steps of N environments); ``dones[t]``
            is 1 where the episode ended with step ``t`` (the value after it is not bootstrapped).
            A time-limit truncation counts as an end here; bootstrap it by adding
            ``gamma * V(final observation)`` to its reward.
        last_values: ``(N,)``, the values of the observations after the last step.
        gamma: the discount; gae_lambda: the bias/variance trade-off (1 gives Monte-Carlo returns
            minus the baseline, 0 the one-step TD error).

    Returns:
        ``(advantages, returns)``, both ``(T, N)`` float32, with ``returns = advantages + values``:

        ``delta_t = r_t + gamma * (1 - done_t) * V_{t+1} - V_t``,
        ``A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}``.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    not_done = 1.0 - np.asarray(dones, dtype=np.float64)
    next_values = np.asarray(last_values, dtype=np.float64)
    advantages = np.zeros_like(rewards)
    last = np.zeros_like(next_values)
    for t in range(rewards.shape[0] - 1, -1, -1):
        delta = rewards[t] + gamma * next_values * not_done[t] - values[t]
        last = delta + gamma * gae_lambda * not_done[t] * last
        advantages[t] = last
        next_values = values[t]
    return advantages.astype(np.float32), (advantages + values).astype(np.float32)


def discounted_returns(rewards, gamma, bootstrap=0.0):
    """``G_t = r_t + gamma * G_{t+1}`` over one episode's rewards, with ``G_T = bootstrap``."""
    out = np.empty(len(rewards), dtype=np.float64)
    g = float(bootstrap)
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


def _shape(space_shape):
    return tuple(int(s) for s in space_shape)


class ReplayBuffer:
    """A ring buffer of transitions ``(obs, action, reward, next_obs, done)``, sampled uniformly.

    Args:
        capacity: the most transitions kept; the oldest are overwritten.
        obs_shape, action_shape: shapes of one observation and one action (``()`` for a discrete one).
        obs_dtype, action_dtype: their NumPy dtypes.

    ``add`` takes one row per environment of a vector. ``done`` should be the *termination* flag only:
    at a time-limit truncation ``next_obs`` is the episode's last observation and its value is still
    bootstrapped.
    """

    def __init__(self, capacity, obs_shape, action_shape=(), obs_dtype=np.float32, action_dtype=np.int64):
        if capacity < 1:
            raise ValueError(f"{type(self).__name__}: capacity must be at least 1, got {capacity}")
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity,) + _shape(obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros_like(self.obs)
        self.actions = np.zeros((self.capacity,) + _shape(action_shape), dtype=action_dtype)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.dones = np.zeros(self.capacity, dtype=np.float32)
        self.pos = 0
        self.full = False

    def __len__(self):
        return self.capacity if self.full else self.pos

    def add(self, obs, actions, rewards, next_obs, dones):
        """Store one transition per row (the rows of a vector of environments)."""
        obs = np.asarray(obs)
        n = obs.shape[0]
        idx = (self.pos + np.arange(n)) % self.capacity
        self.obs[idx] = obs
        self.next_obs[idx] = next_obs
        self.actions[idx] = np.asarray(actions).reshape((n,) + self.actions.shape[1:])
        self.rewards[idx] = rewards
        self.dones[idx] = dones
        self._added(idx)
        self.full = self.full or self.pos + n >= self.capacity
        self.pos = (self.pos + n) % self.capacity

    def _added(self, idx):
        pass

    def _batch(self, idx):
        return {"obs": self.obs[idx], "actions": self.actions[idx], "rewards": self.rewards[idx],
                "next_obs": self.next_obs[idx], "dones": self.dones[idx], "indices": idx}

    def sample(self, batch_size, rng):
        """``batch_size`` transitions drawn uniformly with replacement, as a dict of arrays."""
        if len(self) == 0:
            raise ValueError("ReplayBuffer.sample(): the buffer is empty")
        return self._batch(rng.integers(0, len(self), size=batch_size))

    def state_dict(self):
        n = len(self)
        return {"capacity": self.capacity, "pos": self.pos, "full": self.full, "obs": self.obs[:n].copy(),
                "next_obs": self.next_obs[:n].copy(), "actions": self.actions[:n].copy(),
                "rewards": self.rewards[:n].copy(), "dones": self.dones[:n].copy()}

    def load_state_dict(self, state):
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"{type(self).__name__}.load_state_dict(): the state holds a buffer of capacity "
                             f"{state['capacity']}, this one has {self.capacity}")
        n = len(state["rewards"])
        for name in ("obs", "next_obs", "actions", "rewards", "dones"):
            getattr(self, name)[:n] = state[name]
        self.pos, self.full = int(state["pos"]), bool(state["full"])


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritised replay (Schaul et al., 2016).

    Transition ``i`` is drawn with probability ``p_i^alpha / sum_k p_k^alpha`` and weighted by the
    importance-sampling weight ``(N * P(i))^-beta / max_j (N * P(j))^-beta``. New transitions get the
    largest priority seen so far; ``update_priorities(indices, td_errors)`` sets ``p_i = |delta_i| + eps``.
    Sampling uses a sum tree (``O(log N)`` per draw) and one draw per equal slice of the total mass.
    """

    def __init__(self, capacity, obs_shape, action_shape=(), obs_dtype=np.float32, action_dtype=np.int64,
                 alpha=0.6, eps=1e-6):
        super().__init__(capacity, obs_shape, action_shape, obs_dtype, action_dtype)
        self.alpha, self.eps = float(alpha), float(eps)
        self._leaves = 1
        while self._leaves < self.capacity:
            self._leaves *= 2
        self.tree = np.zeros(2 * self._leaves, dtype=np.float64)
        self.max_priority = 1.0

    def _set(self, idx, values):
        pos = np.asarray(idx) + self._leaves
        self.tree[pos] = values
        pos = np.unique(pos // 2)
        while pos[0] >= 1:
            self.tree[pos] = self.tree[2 * pos] + self.tree[2 * pos + 1]
            if pos[0] == 1:
                break
            pos = np.unique(pos // 2)

    def _added(self, idx):
        self._set(idx, self.max_priority ** self.alpha)

    def sample(self, batch_size, rng, beta=0.4):
        """A batch drawn by priority, with ``weights`` (importance sampling, max 1) and ``indices``."""
        n = len(self)
        if n == 0:
            raise ValueError("PrioritizedReplayBuffer.sample(): the buffer is empty")
        total = self.tree[1]
        bounds = np.linspace(0.0, total, batch_size + 1)
        mass = rng.uniform(bounds[:-1], bounds[1:])
        node = np.ones(batch_size, dtype=np.int64)
        while node[0] < self._leaves:
            left = 2 * node
            go_right = mass > self.tree[left]
            mass = np.where(go_right, mass - self.tree[left], mass)
            node = np.where(go_right, left + 1, left)
        idx = np.minimum(node - self._leaves, n - 1)
        probs = self.tree[idx + self._leaves] / total
        min_prob = self.tree[self._leaves:self._leaves + n].min() / total
        weights = (n * probs) ** (-beta) / (n * min_prob) ** (-beta)
        batch = self._batch(idx)
        batch["weights"] = weights.astype(np.float32)
        return batch

    def update_priorities(self, indices, td_errors):
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self._set(np.asarray(indices), priorities ** self.alpha)

    def state_dict(self):
        state = super().state_dict()
        state["priorities"] = self.tree[self._leaves:self._leaves + len(self)].copy()
        state["max_priority"] = self.max_priority
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        n = len(state["priorities"])
        self.tree[:] = 0.0
        if n:
            self._set(np.arange(n), state["priorities"])
        self.max_priority = float(state["max_priority"])


class RolloutBuffer:
    """``n_steps`` steps of ``num_envs`` environments for an on-policy update, with GAE.

    ``add`` one step at a time, then ``compute_returns_and_advantages(last_values, gamma, gae_lambda)``
    (see ``compute_gae``), then iterate ``minibatches(batch_size, rng)``: shuffled index arrays into
    the flattened ``n_steps * num_envs`` samples, ``get(idx)`` giving the arrays of a minibatch.
    """

    def __init__(self, n_steps, num_envs, obs_shape, action_shape=(), obs_dtype=np.float32, action_dtype=np.int64):
        self.n_steps, self.num_envs = int(n_steps), int(num_envs)
        shape = (self.n_steps, self.num_envs)
        self.obs = np.zeros(shape + _shape(obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(shape + _shape(action_shape), dtype=action_dtype)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.dones = np.zeros(shape, dtype=np.float32)
        self.values = np.zeros(shape, dtype=np.float32)
        self.log_probs = np.zeros(shape, dtype=np.float32)
        self.advantages = np.zeros(shape, dtype=np.float32)
        self.returns = np.zeros(shape, dtype=np.float32)
        self.pos = 0

    @property
    def full(self):
        return self.pos == self.n_steps

    def reset(self):
        self.pos = 0

    def add(self, obs, actions, rewards, dones, values, log_probs):
        if self.pos >= self.n_steps:
            raise ValueError("RolloutBuffer.add(): the buffer is full; call reset() first")
        t = self.pos
        self.obs[t] = obs
        self.actions[t] = np.asarray(actions).reshape(self.actions.shape[1:])
        self.rewards[t] = rewards
        self.dones[t] = dones
        self.values[t] = values
        self.log_probs[t] = log_probs
        self.pos += 1

    def compute_returns_and_advantages(self, last_values, gamma, gae_lambda):
        self.advantages[:], self.returns[:] = compute_gae(self.rewards, self.values, self.dones, last_values,
                                                          gamma, gae_lambda)

    def minibatches(self, batch_size, rng):
        """Index arrays covering all samples once, in a random order, ``batch_size`` at a time."""
        total = self.n_steps * self.num_envs
        order = rng.permutation(total)
        for start in range(0, total, batch_size):
            yield order[start:start + batch_size]

    def get(self, idx=None):
        """The flattened samples (all, or those at ``idx``) as a dict of arrays."""
        total = self.n_steps * self.num_envs
        out = {}
        for name in ("obs", "actions", "values", "log_probs", "advantages", "returns"):
            arr = getattr(self, name)
            flat = arr.reshape((total,) + arr.shape[2:])
            out[name] = flat if idx is None else flat[idx]
        return out

    def state_dict(self):
        return {name: getattr(self, name).copy() for name in
                ("obs", "actions", "rewards", "dones", "values", "log_probs", "advantages", "returns")} | \
            {"pos": self.pos}

    def load_state_dict(self, state):
        for name in ("obs", "actions", "rewards", "dones", "values", "log_probs", "advantages", "returns"):
            getattr(self, name)[:] = state[name]
        self.pos = int(state["pos"])
