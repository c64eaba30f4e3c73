"""Vector environments: automatic resets, episode statistics, seeding, sync against async, saved state,
normalisation; the evaluation loop, frame grids and PNG files."""
import os
import zlib

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")

from somanet.rl.envs import VecEnv, VecNormalize, make_env, make_vec_env  # noqa: E402
from somanet.rl.evaluation import evaluate_policy, record_frames, save_frame_grid, write_png  # noqa: E402


class Corridor(gymnasium.Env):
    """A walk on 0..length: action 1 steps right (+1 reward at the end), action 0 left. Draws itself
    as a small RGB image without pygame. ``engine`` stands for state a saver cannot copy."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, length=5, render_mode=None, with_engine=False):
        self.length = length
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(0.0, float(length), (1,), np.float32)
        self.action_space = gymnasium.spaces.Discrete(2)
        self.pos = 0
        self.t = 0
        if with_engine:
            self.engine = object()

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = int(self.np_random.integers(0, 2))
        self.t = 0
        return np.array([self.pos], np.float32), {}

    def step(self, action):
        self.pos = max(0, self.pos + (1 if action == 1 else -1))
        self.t += 1
        done = self.pos >= self.length
        return np.array([self.pos], np.float32), float(done), done, self.t >= 20, {}

    def render(self):
        img = np.zeros((8, 4 * (self.length + 1), 3), np.uint8)
        img[:, 4 * self.pos:4 * self.pos + 4] = (255, 64, 0)
        return img


def _read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        chunks.setdefault(kind, b"")
        chunks[kind] += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    w, h = int.from_bytes(chunks[b"IHDR"][:4], "big"), int.from_bytes(chunks[b"IHDR"][4:8], "big")
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, -1)
    assert (raw[:, 0] == 0).all()  # no filters
    return raw[:, 1:].reshape(h, w, -1)


def test_vec_env_resets_in_the_same_step_and_keeps_the_final_observation():
    venv = VecEnv("CartPole-v1", num_envs=3, seed=7)
    obs = venv.reset()
    assert obs.shape == (3, 4) and obs.dtype == np.float32
    rng = np.random.default_rng(0)
    steps = 0
    ended = 0
    while ended < 5:
        obs, rew, term, trunc, info = venv.step(venv.sample_actions(rng))
        steps += 3
        done = term | trunc
        for i in np.flatnonzero(done):
            ended += 1
            # The final observation is the one that ended the episode, beyond the pole's limit...
            assert abs(info["final_obs"][i][2]) > 0.2 or abs(info["final_obs"][i][0]) > 2.4
            # ...and the observation returned is a fresh start near the origin.
            assert np.all(np.abs(obs[i]) <= 0.05)
        for i in np.flatnonzero(~done):
            np.testing.assert_array_equal(info["final_obs"][i], obs[i])
        assert [e[0] for e in info["episodes"]] == np.flatnonzero(done).tolist()
    stats = venv.stats
    assert len(stats) == ended
    assert stats.returns == [float(n) for n in stats.lengths]       # CartPole pays 1 per step
    assert sum(stats.lengths) + int(stats.current_length.sum()) == steps
    assert venv.resets.sum() == 3 + ended and venv.num_steps == steps
    venv.close()


def test_seeding_makes_episodes_repeatable_and_copies_differ():
    def returns(seed):
        venv = make_vec_env("CartPole-v1", num_envs=2, seed=seed)
        venv.reset()
        rng = np.random.default_rng(1)
        while len(venv.stats) < 6:
            venv.step(venv.sample_actions(rng))
        venv.close()
        return venv.stats.returns, venv.stats.env_index
    assert returns(3) == returns(3)
    assert returns(3) != returns(4)


def test_async_vector_gives_the_same_episodes_as_the_sync_one():
    out = []
    for asynchronous in (False, True):
        venv = VecEnv("CartPole-v1", num_envs=2, seed=11, asynchronous=asynchronous)
        first = venv.reset()
        rng = np.random.default_rng(2)
        trace = [first]
        for _ in range(60):
            obs, rew, term, trunc, info = venv.step(venv.sample_actions(rng))
            trace += [obs, info["final_obs"], rew, term, trunc]
        state = venv.state_dict()
        venv.close()
        out.append((trace, venv.stats.returns, state["sims"][0]["complete"]))
    for a, b in zip(out[0][0], out[1][0]):
        np.testing.assert_array_equal(a, b)
    assert out[0][1] == out[1][1] and out[0][2] and out[1][2]


@pytest.mark.parametrize("normalize", [False, True])
def test_state_round_trip_continues_mid_episode_identically(normalize):
    a = make_vec_env("Pendulum-v1", num_envs=2, seed=5, normalize_obs=normalize, normalize_reward=normalize)
    a.reset()
    rng = np.random.default_rng(0)
    for _ in range(250):  # into the second episode (Pendulum's episodes last 200 steps)
        a.step(a.sample_actions(rng))
    state = a.state_dict()
    b = make_vec_env("Pendulum-v1", num_envs=2, seed=5, normalize_obs=normalize, normalize_reward=normalize)
    obs_b = b.load_state_dict(state)
    assert obs_b is not None
    ra, rb = np.random.default_rng(9), np.random.default_rng(9)
    for _ in range(200):
        xa = a.step(a.sample_actions(ra))
        xb = b.step(b.sample_actions(rb))
        for u, v in zip(xa[:4], xb[:4]):
            np.testing.assert_array_equal(u, v)
    assert a.stats.returns == b.stats.returns and len(a.stats) == 4
    a.close()
    b.close()


def test_an_environment_holding_objects_restarts_its_episode_on_restore():
    venv = VecEnv(lambda **kw: Corridor(with_engine=True, **kw), num_envs=1, seed=0)
    venv.reset()
    venv.step(np.array([1]))
    assert venv.stats.current_length[0] == 1
    assert not venv.fully_restorable
    other = VecEnv(lambda **kw: Corridor(with_engine=True, **kw), num_envs=1, seed=0)
    other.load_state_dict(venv.state_dict())
    assert other.stats.current_length[0] == 0       # the unfinished episode was dropped
    assert other.resets[0] == venv.resets[0]
    assert VecEnv(Corridor, num_envs=1, seed=0).fully_restorable


def test_vec_normalize_normalises_observations_and_scales_rewards():
    venv = VecNormalize(VecEnv("Pendulum-v1", num_envs=4, seed=0), gamma=0.9)
    raw = VecEnv("Pendulum-v1", num_envs=4, seed=0)   # the same episodes, unnormalised
    obs, raw_obs = venv.reset(), raw.reset()
    # The reference: plain running moments over everything seen, and the discounted return.
    seen_obs, seen_ret = [raw_obs], []
    ret = np.zeros(4)
    rng = np.random.default_rng(0)
    for step in range(300):
        actions = venv.sample_actions(rng)
        o, r, te, tr, info = venv.step(actions)
        ro, rr, rte, rtr, rinfo = raw.step(actions)
        seen_obs.append(ro)
        ret = ret * 0.9 + rr
        seen_ret.append(ret.copy())
        allo = np.concatenate(seen_obs)
        allr = np.concatenate(seen_ret)
        if step in (0, 1, 150, 299):
            # The statistics start from a tiny prior count (1e-4), so they match to about 1e-4.
            expected_obs = np.clip((ro - allo.mean(0)) / np.sqrt(allo.var(0) + 1e-8), -10, 10)
            np.testing.assert_allclose(o, expected_obs, rtol=1e-3, atol=1e-3)
            np.testing.assert_allclose(r, np.clip(rr / np.sqrt(allr.var() + 1e-8), -10, 10), rtol=1e-3, atol=1e-3)
            np.testing.assert_allclose(info["final_obs"], venv.normalize(rinfo["final_obs"]), rtol=1e-6)
        ret[rte | rtr] = 0.0
    assert venv.stats.returns == raw.stats.returns   # the statistics stay in raw rewards
    before = venv.obs_rms.mean.copy()
    venv.training = False
    venv.step(venv.sample_actions(rng))
    np.testing.assert_array_equal(venv.obs_rms.mean, before)
    venv.close()
    raw.close()


def test_evaluate_policy_is_independent_of_the_number_of_parallel_envs():
    def policy(obs):
        return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)   # a simple balancing rule
    a = evaluate_policy(policy, "CartPole-v1", n_episodes=7, seed=100, n_envs=3)
    b = evaluate_policy(policy, "CartPole-v1", n_episodes=7, seed=100, n_envs=1)
    np.testing.assert_array_equal(a, b)
    assert a.mean() > 100
    c = evaluate_policy(lambda o: np.ones(len(o), np.int64), Corridor, n_episodes=3, seed=0)
    np.testing.assert_array_equal(c, [1.0, 1.0, 1.0])


def test_frames_and_png_grid(tmp_path):
    frames = record_frames(lambda o: np.ones(len(o), np.int64), Corridor, seed=0, max_frames=4)
    assert 2 <= len(frames) <= 4 and frames[0].shape == (8, 24, 3)
    path = save_frame_grid(frames, tmp_path / "grid.png", ncols=2, pad=1)
    img = _read_png(path)
    rows = -(-len(frames) // 2)
    assert img.shape == (rows * 8 + rows + 1, 2 * 24 + 3, 3)
    np.testing.assert_array_equal(img[1:9, 1:25], frames[0])
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(_read_png(write_png(grey, tmp_path / "g.png"))[..., 0], grey)
    with pytest.raises(ValueError, match="no frames"):
        save_frame_grid([], tmp_path / "x.png")
    assert os.path.exists(path)


def test_make_env_reports_a_missing_gymnasium(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "gymnasium" or name.startswith("gymnasium."):
            raise ImportError("no gymnasium here")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"pip install 'somanet\[rl\]'"):
        make_env("CartPole-v1")
