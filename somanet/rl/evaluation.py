"""Evaluation of a policy on fresh episodes, frames of an episode as a PNG grid, and the learning curve.

The PNG writer is NumPy plus ``zlib`` (no image library needed); the learning-curve plot needs
matplotlib (``pip install 'somanet[plot]'``).
"""
import os
import struct
import zlib

import numpy as np

__all__ = ["evaluate_policy", "record_frames", "save_frame_grid", "write_png", "plot_learning_curve",
           "write_episodes_csv"]


def evaluate_policy(policy, env_id, n_episodes=100, seed=10_000, n_envs=10, env_kwargs=None, max_steps=None):
    """Run ``n_episodes`` episodes and return their (undiscounted) returns, in episode order.

    Args:
        policy: ``policy(obs_batch) -> actions`` on raw observations (an agent's ``predict``).
        env_id: the Gymnasium id (or a callable making the environment).
        n_episodes: how many episodes; episode ``k`` starts from ``reset(seed=seed + k)``, so the
            episodes do not depend on ``n_envs`` (a network's outputs can differ in the last bits
            between batch sizes, nothing more).
        n_envs: how many environments run side by side (their observations go to ``policy`` together).
        max_steps: stop an episode after this many steps (default: the environment's own time limit).
    """
    from .envs import make_env
    kwargs = dict(env_kwargs or {})
    envs = [make_env(env_id, **kwargs) for _ in range(max(1, min(n_envs, n_episodes)))]
    try:
        discrete = hasattr(envs[0].action_space, "n")
        returns = np.zeros(n_episodes, dtype=np.float64)
        slot_episode = [-1] * len(envs)
        slot_obs = [None] * len(envs)
        slot_steps = [0] * len(envs)
        next_episode = 0
        for i, env in enumerate(envs):
            if next_episode < n_episodes:
                slot_obs[i], _ = env.reset(seed=seed + next_episode)
                slot_episode[i] = next_episode
                next_episode += 1
        while any(e >= 0 for e in slot_episode):
            active = [i for i, e in enumerate(slot_episode) if e >= 0]
            actions = np.asarray(policy(np.stack([slot_obs[i] for i in active])))
            for a, i in zip(actions, active):
                obs, reward, terminated, truncated, _ = envs[i].step(int(a) if discrete else a)
                returns[slot_episode[i]] += reward
                slot_steps[i] += 1
                if terminated or truncated or (max_steps is not None and slot_steps[i] >= max_steps):
                    slot_steps[i] = 0
                    if next_episode < n_episodes:
                        obs, _ = envs[i].reset(seed=seed + next_episode)
                        slot_episode[i] = next_episode
                        next_episode += 1
                    else:
                        slot_episode[i] = -1
                slot_obs[i] = obs
        return returns
    finally:
        for env in envs:
            env.close()


def record_frames(policy, env_id, seed=0, max_frames=16, every=None, max_steps=None, env_kwargs=None):
    """Frames (``H x W x 3`` uint8 arrays) of one episode played by ``policy``, from ``render()``.

    Needs an environment that renders ``rgb_array`` (the classic-control ones need pygame:
    ``pip install 'gymnasium[classic-control]'``). ``every`` keeps every k-th frame (default: spread
    ``max_frames`` over the episode, which is played twice: once to count its steps).
    """
    from .envs import make_env
    env = make_env(env_id, render_mode="rgb_array", **dict(env_kwargs or {}))
    discrete = hasattr(env.action_space, "n")
    try:
        def play(keep):
            obs, _ = env.reset(seed=seed)
            frames, step = [], 0
            if keep(0):
                frames.append(np.asarray(env.render()))
            while True:
                action = np.asarray(policy(obs[None]))[0]
                obs, _, terminated, truncated, _ = env.step(int(action) if discrete else action)
                step += 1
                done = terminated or truncated or (max_steps is not None and step >= max_steps)
                if keep(step) or (done and every is None):
                    frames.append(np.asarray(env.render()))
                if done:
                    return frames, step
        if every is not None:
            frames, _ = play(lambda s: s % every == 0)
            return frames[:max_frames]
        _, length = play(lambda s: False)
        picks = set(np.linspace(0, length, max_frames).round().astype(int).tolist())
        frames, _ = play(lambda s: s in picks)
        return frames[:max_frames]
    finally:
        env.close()


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(image, path):
    """Write an ``H x W x 3`` (or ``H x W``) uint8 image as an 8-bit RGB (or grey) PNG; returns ``path``."""
    from ..train._io import atomic_write_bytes
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        color = 0
    elif img.ndim == 3 and img.shape[2] in (3, 4):
        color = 2 if img.shape[2] == 3 else 6
    else:
        raise ValueError(f"write_png(): expected an H x W or H x W x 3/4 image, got shape {img.shape}")
    h, w = img.shape[:2]
    rows = img.reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), dtype=np.uint8), rows], axis=1).tobytes()
    data = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(raw, 6)) + _png_chunk(b"IEND", b""))
    atomic_write_bytes(os.fspath(path), data)
    return path


def save_frame_grid(frames, path, ncols=4, pad=4, background=255):
    """Tile frames (equal-sized ``H x W x 3`` uint8 arrays) into one PNG, row by row; returns ``path``."""
    if not frames:
        raise ValueError("save_frame_grid(): no frames")
    frames = [np.asarray(f) for f in frames]
    h, w = frames[0].shape[:2]
    if any(f.shape[:2] != (h, w) for f in frames):
        raise ValueError("save_frame_grid(): the frames differ in size")
    frames = [np.repeat(f[:, :, None], 3, axis=2) if f.ndim == 2 else f[:, :, :3] for f in frames]
    ncols = max(1, min(ncols, len(frames)))
    nrows = -(-len(frames) // ncols)
    grid = np.full((nrows * h + (nrows + 1) * pad, ncols * w + (ncols + 1) * pad, 3), background, dtype=np.uint8)
    for k, f in enumerate(frames):
        r, c = divmod(k, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y:y + h, x:x + w] = f
    return write_png(grid, path)


def write_episodes_csv(stats, path):
    """Every finished episode of an ``EpisodeStats`` as ``timestep,return,length,env`` rows."""
    from ..train._io import atomic_write_text
    lines = ["timestep,return,length,env"] + [f"{t},{r!r},{n},{e}" for t, r, n, e in
                                              zip(stats.timesteps, stats.returns, stats.lengths, stats.env_index)]
    atomic_write_text(os.fspath(path), "\n".join(lines) + "\n")
    return path


def plot_learning_curve(timesteps, returns, path, title=None, window=100, eval_points=None):
    """Episode returns against environment steps (each episode, and a moving mean over ``window``
    episodes), plus optional evaluation points ``[(timestep, mean, std), ...]``; returns ``path``."""
    from ..train.plots import _figure, _save
    t = np.asarray(timesteps, dtype=np.float64)
    r = np.asarray(returns, dtype=np.float64)
    fig = _figure(7, 4)
    ax = fig.add_subplot(1, 1, 1)
    if len(r):
        ax.plot(t, r, ".", ms=2, alpha=0.3, color="tab:blue", label="episode return")
        k = min(window, len(r))
        csum = np.cumsum(np.concatenate([[0.0], r]))
        idx = np.arange(1, len(r) + 1)
        lo = np.maximum(0, idx - k)
        ax.plot(t, (csum[idx] - csum[lo]) / (idx - lo), color="tab:blue", lw=2,
                label=f"mean of the last {window} episodes")
    if eval_points:
        e = np.asarray(eval_points, dtype=np.float64)
        ax.errorbar(e[:, 0], e[:, 1], yerr=e[:, 2], fmt="o", color="tab:red", capsize=3,
                    label="evaluation (deterministic)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)
