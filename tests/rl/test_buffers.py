"""GAE against a hand computation and a PyTorch-written reference; the replay, prioritised and rollout
buffers; the running statistics."""
import numpy as np
import pytest

from somanet.rl.buffers import (PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer, compute_gae,
                                discounted_returns)
from somanet.rl.envs import RunningMeanStd

from reference import torch_or_skip


# ----------------------------------------------------------------------------- GAE
def test_gae_matches_a_hand_computation():
    # One environment, three steps; the episode ends with step 1, so step 2 starts a new one.
    rewards = np.array([[1.0], [2.0], [3.0]])
    values = np.array([[0.5], [1.0], [1.5]])
    dones = np.array([[0.0], [1.0], [0.0]])
    last = np.array([2.0])
    gamma, lam = 0.9, 0.8
    # delta_2 = 3 + 0.9 * 2 - 1.5 = 3.3;             A_2 = 3.3
    # delta_1 = 2 + 0 - 1.0 = 1.0 (episode end);     A_1 = 1.0
    # delta_0 = 1 + 0.9 * 1.0 - 0.5 = 1.4;           A_0 = 1.4 + 0.9 * 0.8 * 1.0 = 2.12
    adv, ret = compute_gae(rewards, values, dones, last, gamma, lam)
    np.testing.assert_allclose(adv[:, 0], [2.12, 1.0, 3.3], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0], [2.62, 2.0, 4.8], rtol=1e-6)
    assert adv.dtype == np.float32 and ret.dtype == np.float32


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_baseline():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(6, 1))
    values = rng.normal(size=(6, 1))
    dones = np.zeros((6, 1))
    adv, ret = compute_gae(rewards, values, dones, np.array([0.7]), 0.95, 1.0)
    expected = discounted_returns(rewards[:, 0], 0.95, bootstrap=0.7)
    np.testing.assert_allclose(ret[:, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(adv[:, 0], expected - values[:, 0], rtol=1e-5, atol=1e-6)


def _torch_gae(torch, rewards, values, episode_starts, last_values, last_dones, gamma, lam):
    """GAE written the usual PyTorch way: ``episode_starts[t]`` marks an observation that begins an
    episode, and the values of the next step are masked by it."""
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(last_values)
    for t in reversed(range(T)):
        if t == T - 1:
            next_non_terminal = 1.0 - last_dones
            next_values = last_values
        else:
            next_non_terminal = 1.0 - episode_starts[t + 1]
            next_values = values[t + 1]
        delta = rewards[t] + gamma * next_values * next_non_terminal - values[t]
        last_gae = delta + gamma * lam * next_non_terminal * last_gae
        adv[t] = last_gae
    return adv, adv + values


def test_gae_matches_a_pytorch_reference():
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    T, N = 17, 5
    rewards = rng.normal(size=(T, N)).astype(np.float32)
    values = rng.normal(size=(T, N)).astype(np.float32)
    dones = (rng.random((T, N)) < 0.15).astype(np.float32)
    last = rng.normal(size=N).astype(np.float32)
    adv, ret = compute_gae(rewards, values, dones, last, 0.99, 0.95)
    # The same data in the other convention: an episode start follows every done.
    starts = np.zeros_like(dones)
    starts[1:] = dones[:-1]
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    ref_adv, ref_ret = _torch_gae(torch, t(rewards), t(values), t(starts), t(last), t(dones[-1]), 0.99, 0.95)
    np.testing.assert_allclose(adv, ref_adv.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, ref_ret.numpy(), rtol=1e-5, atol=1e-5)


def test_rollout_buffer_computes_gae_and_covers_every_sample_once_per_epoch():
    buf = RolloutBuffer(4, 3, (2,), (), np.float32, np.int64)
    rng = np.random.default_rng(0)
    for t in range(4):
        buf.add(rng.normal(size=(3, 2)), np.array([0, 1, 2]) + t, rng.normal(size=3), [0, t == 1, 0],
                rng.normal(size=3), rng.normal(size=3))
    assert buf.full
    with pytest.raises(ValueError, match="full"):
        buf.add(np.zeros((3, 2)), [0, 0, 0], np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3))
    buf.compute_returns_and_advantages(np.zeros(3), 0.99, 0.95)
    adv, ret = compute_gae(buf.rewards, buf.values, buf.dones, np.zeros(3), 0.99, 0.95)
    np.testing.assert_array_equal(buf.advantages, adv)
    batches = list(buf.minibatches(5, np.random.default_rng(3)))
    assert [len(b) for b in batches] == [5, 5, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(12))
    got = buf.get(batches[0])
    flat_actions = buf.actions.reshape(12)
    np.testing.assert_array_equal(got["actions"], flat_actions[batches[0]])
    assert got["obs"].shape == (5, 2)


# ----------------------------------------------------------------------------- replay
def test_replay_buffer_wraps_around_and_round_trips():
    buf = ReplayBuffer(5, (2,), (), np.float32, np.int64)
    for i in range(3):
        buf.add(np.full((2, 2), i, np.float32), [i, i], [1.0, 2.0], np.full((2, 2), i + 0.5), [0, 1])
    # Six transitions into five slots: the first was overwritten by the last.
    assert len(buf) == 5 and buf.full and buf.pos == 1
    np.testing.assert_array_equal(buf.obs[:, 0], [2, 0, 1, 1, 2])
    np.testing.assert_array_equal(buf.dones, [1, 1, 0, 1, 0])
    batch = buf.sample(64, np.random.default_rng(0))
    assert batch["obs"].shape == (64, 2) and batch["actions"].dtype == np.int64
    np.testing.assert_array_equal(batch["next_obs"], batch["obs"] + 0.5)
    assert set(batch["indices"].tolist()) == set(range(5))
    other = ReplayBuffer(5, (2,), (), np.float32, np.int64)
    other.load_state_dict(buf.state_dict())
    a = buf.sample(8, np.random.default_rng(1))
    b = other.sample(8, np.random.default_rng(1))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(6, (2,)).load_state_dict(buf.state_dict())


def test_replay_buffer_sampling_is_uniform():
    buf = ReplayBuffer(4, (1,))
    buf.add(np.arange(4, dtype=np.float32)[:, None], [0, 0, 0, 0], np.zeros(4), np.zeros((4, 1)), np.zeros(4))
    counts = np.bincount(buf.sample(40_000, np.random.default_rng(0))["indices"], minlength=4)
    np.testing.assert_allclose(counts / 40_000, 0.25, atol=0.01)


def test_prioritized_buffer_draws_in_proportion_to_priority_and_weights_by_importance():
    buf = PrioritizedReplayBuffer(8, (1,), alpha=0.5, eps=0.0)
    buf.add(np.arange(6, dtype=np.float32)[:, None], np.zeros(6), np.zeros(6), np.zeros((6, 1)), np.zeros(6))
    # New transitions all get the largest priority seen so far (1).
    np.testing.assert_allclose(buf.tree[buf._leaves:buf._leaves + 6], 1.0)
    buf.update_priorities(np.arange(6), [1.0, 4.0, 9.0, 16.0, 0.25, 1.0])
    p = np.sqrt([1.0, 4.0, 9.0, 16.0, 0.25, 1.0])
    probs = p / p.sum()
    assert buf.tree[1] == pytest.approx(p.sum())
    batch = buf.sample(60_000, np.random.default_rng(0), beta=0.4)
    freq = np.bincount(batch["indices"], minlength=6) / 60_000
    np.testing.assert_allclose(freq, probs, atol=0.01)
    w = (6 * probs) ** -0.4
    expected = w / w.max()
    np.testing.assert_allclose(batch["weights"], expected[batch["indices"]], rtol=1e-5)
    assert buf.max_priority == 16.0
    # A new transition comes in at the largest priority.
    buf.add(np.ones((1, 1)), [0], [0.0], np.zeros((1, 1)), [0.0])
    assert buf.tree[buf._leaves + 6] == pytest.approx(4.0)
    other = PrioritizedReplayBuffer(8, (1,), alpha=0.5, eps=0.0)
    other.load_state_dict(buf.state_dict())
    np.testing.assert_allclose(other.tree, buf.tree)
    assert other.max_priority == buf.max_priority


# ----------------------------------------------------------------------------- running statistics
def test_running_mean_std_matches_numpy_on_the_concatenated_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 3)) for n in (5, 1, 17, 40)]
    rms = RunningMeanStd((3,), epsilon=0.0)
    rms.count = 0.0
    for b in batches:
        rms.update(b)
    allx = np.concatenate(batches)
    np.testing.assert_allclose(rms.mean, allx.mean(0), rtol=1e-10)
    np.testing.assert_allclose(rms.var, allx.var(0), rtol=1e-10)
    assert rms.count == len(allx)
