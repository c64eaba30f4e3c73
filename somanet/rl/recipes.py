"""Reinforcement-learning recipes for ``somanet train NAME``, and the runs they make.

    somanet train cartpole-ppo                      # PPO on CartPole-v1, offline, about a minute
    somanet train pendulum-sac --seed 1 --out runs/sac1
    somanet train cartpole-dqn --set total_timesteps=20000 --set double_dqn=true
    somanet train --resume runs/cartpole-ppo-001    # continue an interrupted run exactly
    somanet evaluate runs/cartpole-ppo-001          # 100 episodes with the deterministic policy

A run directory holds ``config.json`` (what was trained), ``checkpoints/last`` (the whole agent,
written every ``checkpoint_every`` steps and at the end), ``episodes.csv`` (every training episode's
return and length), ``eval.json`` (the final evaluation), and ``plots/learning_curve.png`` and
``plots/frames.png`` (frames of one evaluation episode, where the environment can draw them).

This module imports neither Gymnasium nor the agents until a recipe runs, so the command stays fast.
"""
import dataclasses
import importlib
import json
import os
import sys

__all__ = ["RLRecipe", "RL_RECIPES", "ALGORITHMS", "register_rl_recipe", "is_rl_recipe", "is_rl_run", "handles",
           "cmd_train", "cmd_evaluate", "recipe_lines", "load_agent", "resolve_rl_config"]

#: algorithm name -> (module, class)
ALGORITHMS = {"ppo": ("ppo", "PPO"), "a2c": ("a2c", "A2C"), "reinforce": ("reinforce", "REINFORCE"),
              "dqn": ("dqn", "DQN"), "sac": ("sac", "SAC")}
KIND = "rl"
#: run-config keys besides the agent's settings
_RUN_KEYS = ("seed", "eval_episodes", "eval_seed", "checkpoint_every", "threads", "frames")


def agent_class(algorithm):
    if algorithm not in ALGORITHMS:
        from ..train.recipe import ConfigError
        raise ConfigError(f"unknown algorithm {algorithm!r}; known: {', '.join(sorted(ALGORITHMS))}")
    module, name = ALGORITHMS[algorithm]
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


@dataclasses.dataclass(frozen=True)
class RLRecipe:
    """A named RL run: an algorithm on an environment with its settings (see the agents' configs)."""

    name: str
    description: str
    algorithm: str
    env_id: str
    settings: dict
    seed: int = 0
    eval_episodes: int = 100
    #: the mean evaluation return that counts as solving the task (printed with the result), or None
    solved_at: float = None
    extra: str = None

    def config(self):
        return {"kind": KIND, "recipe": self.name, "description": self.description, "algorithm": self.algorithm,
                "env_id": self.env_id, "seed": self.seed, "eval_episodes": self.eval_episodes, "eval_seed": 10_000,
                "checkpoint_every": None, "threads": 1, "frames": True, "solved_at": self.solved_at,
                "settings": json.loads(json.dumps(self.settings))}


RL_RECIPES = {}


def register_rl_recipe(recipe):
    RL_RECIPES[recipe.name] = recipe
    return recipe


def is_rl_recipe(name):
    return name in RL_RECIPES


def is_rl_run(run_dir):
    """Whether ``run_dir`` holds a run made by an RL recipe."""
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and cfg.get("kind") == KIND


def handles(args):
    """Whether a ``somanet train`` command line is for an RL recipe (or resumes an RL run)."""
    if getattr(args, "resume", None):
        return is_rl_run(args.resume)
    return bool(getattr(args, "recipe", None)) and is_rl_recipe(args.recipe)


def recipe_lines(width=0):
    """``name  description`` lines for ``somanet recipes``."""
    width = max([width] + [len(n) for n in RL_RECIPES])
    return [f"{name.ljust(width)}  {RL_RECIPES[name].description}" for name in sorted(RL_RECIPES)]


# --------------------------------------------------------------------------- the recipes
# Settings follow the tuned hyperparameters commonly used for these environments (the RL Baselines3 Zoo's).
register_rl_recipe(RLRecipe(
    "cartpole-ppo", "PPO on CartPole-v1 (8 envs, 100k steps); solves it (mean return 500), about 25 s of CPU time",
    "ppo", "CartPole-v1",
    {"total_timesteps": 100_000, "n_envs": 8, "n_steps": 32, "batch_size": 256, "n_epochs": 20, "gamma": 0.98,
     "gae_lambda": 0.8, "learning_rate": 1e-3, "lr_schedule": "linear", "clip_range": 0.2, "clip_schedule": "linear",
     "ent_coef": 0.0, "hidden_sizes": [64, 64]},
    solved_at=475.0))

register_rl_recipe(RLRecipe(
    "cartpole-dqn", "DQN on CartPole-v1 (50k steps, target network, Huber loss, epsilon schedule)",
    "dqn", "CartPole-v1",
    {"total_timesteps": 50_000, "learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000,
     "learning_starts": 1000, "gamma": 0.99, "target_update_interval": 10, "train_freq": 256,
     "gradient_steps": 128, "exploration_fraction": 0.16, "exploration_final_eps": 0.04, "hidden_sizes": [256, 256]},
    solved_at=475.0))

register_rl_recipe(RLRecipe(
    "acrobot-ppo", "PPO on Acrobot-v1 (16 envs, 200k steps, normalised observations and rewards)",
    "ppo", "Acrobot-v1",
    {"total_timesteps": 200_000, "n_envs": 16, "n_steps": 256, "batch_size": 64, "n_epochs": 4, "gamma": 0.99,
     "gae_lambda": 0.94, "ent_coef": 0.0, "learning_rate": 3e-4, "normalize_obs": True, "normalize_reward": True},
    solved_at=-100.0))

register_rl_recipe(RLRecipe(
    "pendulum-sac", "SAC on Pendulum-v1 (20k steps, twin Q, automatic entropy tuning)",
    "sac", "Pendulum-v1",
    {"total_timesteps": 20_000, "learning_rate": 1e-3, "batch_size": 256, "buffer_size": 1_000_000,
     "learning_starts": 100, "tau": 0.005, "gamma": 0.99, "hidden_sizes": [256, 256]},
    solved_at=-200.0))

register_rl_recipe(RLRecipe(
    "lunarlander-ppo", "PPO on LunarLander-v3 (16 envs, 1M steps; needs pip install 'gymnasium[box2d]')",
    "ppo", "LunarLander-v3",
    {"total_timesteps": 1_000_000, "n_envs": 16, "n_steps": 1024, "batch_size": 64, "n_epochs": 4,
     "gamma": 0.999, "gae_lambda": 0.98, "ent_coef": 0.01, "learning_rate": 3e-4},
    solved_at=200.0, extra="box2d"))


# --------------------------------------------------------------------------- configs
def _config_error(msg):
    from ..train.recipe import ConfigError
    return ConfigError(msg)


def resolve_rl_config(name, *overrides):
    """The run config of recipe ``name`` with override dicts merged in turn (settings may be given
    at the top level or under ``settings``), checked against the agent's settings."""
    if name not in RL_RECIPES:
        raise _config_error(f"unknown RL recipe {name!r}; known: {', '.join(sorted(RL_RECIPES))}")
    cfg = RL_RECIPES[name].config()
    for o in overrides:
        for key, value in (o or {}).items():
            if key == "settings" and isinstance(value, dict):
                cfg["settings"].update(value)
            elif key in _RUN_KEYS:
                cfg[key] = value
            elif key in ("recipe", "kind", "algorithm", "env_id"):
                if value != cfg[key]:
                    raise _config_error(f"config '{key}' cannot be changed for recipe {name!r} (it is {cfg[key]!r})")
            else:
                cfg["settings"][key] = value
    validate_rl_config(cfg)
    return cfg


def validate_rl_config(cfg):
    cls = agent_class(cfg["algorithm"])
    fields = {f.name: f for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(cfg["settings"]) - set(fields))
    if unknown:
        raise _config_error(f"unknown setting(s) {', '.join(unknown)} for {cls.__name__}; known: "
                            f"{', '.join(sorted(fields))}")
    defaults = cls.Config()
    for key, value in cfg["settings"].items():
        default = getattr(defaults, key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise _config_error(f"config '{key}' must be true or false, got {value!r}")
        elif isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _config_error(f"config '{key}' must be a non-negative integer, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _config_error(f"config '{key}' must be a number, got {value!r}")
        elif isinstance(default, tuple):
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and v > 0 for v in value):
                raise _config_error(f"config '{key}' must be a list of positive integers, got {value!r}")
    for key in ("total_timesteps", "n_envs"):
        if key in cfg["settings"] and cfg["settings"][key] < 1:
            raise _config_error(f"config '{key}' must be at least 1, got {cfg['settings'][key]}")
    for key, minimum in (("seed", 0), ("eval_episodes", 0), ("eval_seed", 0), ("threads", 1)):
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise _config_error(f"config '{key}' must be an integer >= {minimum}, got {v!r}")
    ce = cfg.get("checkpoint_every")
    if ce is not None and (isinstance(ce, bool) or not isinstance(ce, int) or ce < 1):
        raise _config_error(f"config 'checkpoint_every' must be a positive integer or none, got {ce!r}")
    return cfg


def _agent_settings(cfg):
    cls = agent_class(cfg["algorithm"])
    defaults = cls.Config()
    out = {}
    for key, value in cfg["settings"].items():
        if isinstance(getattr(defaults, key), tuple) and isinstance(value, list):
            value = tuple(value)
        out[key] = value
    return out


def load_agent(path, verbose=0):
    """The agent saved in a checkpoint directory or a run directory (its ``checkpoints/last``)."""
    from ..train.checkpoint import load_checkpoint
    ckpt_path = os.path.join(path, "checkpoints", "last") if os.path.isfile(os.path.join(path, "config.json")) \
        and os.path.isdir(os.path.join(path, "checkpoints")) else path
    ckpt = load_checkpoint(ckpt_path)
    return agent_class(ckpt.config["algorithm"]).load(ckpt_path, verbose=verbose)


# --------------------------------------------------------------------------- the command
def _overrides_from_args(args):
    from ..train.recipe import load_config_file, parse_override
    out = []
    if getattr(args, "config", None):
        file_cfg = load_config_file(args.config)
        if "recipe" in file_cfg and file_cfg["recipe"] != args.recipe:
            raise _config_error(f"the config file {args.config} is for recipe {file_cfg['recipe']!r} but the "
                                f"command names {args.recipe!r}")
        out.append({k: v for k, v in file_cfg.items() if k != "recipe"})
    flags = {}
    if getattr(args, "seed", None) is not None:
        flags["seed"] = args.seed
    if getattr(args, "lr", None) is not None:
        flags["learning_rate"] = args.lr
    if getattr(args, "batch_size", None) is not None:
        flags["batch_size"] = args.batch_size
    out.append(flags)
    for text in getattr(args, "set", None) or []:
        nested = parse_override(text)
        key = next(iter(nested))
        value = nested[key]
        if isinstance(value, dict) and key != "settings":
            raise _config_error(f"--set {text}: RL recipes take flat settings (e.g. --set learning_rate=0.001)")
        out.append(nested)
    return out


def _check_new_dir(path):
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise _config_error(f"{path} already exists and is not empty; nothing was overwritten. Choose another "
                            f"--out, or continue that run with --resume")


def _next_free_dir(base):
    i = 1
    while os.path.exists(f"{base}-{i:03d}"):
        i += 1
    return f"{base}-{i:03d}"


def cmd_train(args):
    """``somanet train`` for an RL recipe (or ``--resume`` of an RL run); returns the exit status."""
    from ..train._io import atomic_write_text
    if getattr(args, "epochs", None) is not None:
        raise _config_error("RL recipes count environment steps, not epochs: use --set total_timesteps=N "
                            "(or --max-steps N to stop early and resume later)")
    if getattr(args, "data_dir", None):
        raise _config_error("RL recipes read no data folder (--data-dir): they make their own environments")
    resume = getattr(args, "resume", None)
    if resume:
        fixed = [flag for flag, value in (("--lr", args.lr), ("--batch-size", args.batch_size), ("--seed", args.seed),
                                          ("--config", args.config), ("--out", args.out)) if value is not None]
        if args.set:
            fixed.append("--set")
        if fixed:
            raise _config_error(f"{', '.join(fixed)} cannot be changed when resuming: the run continues with the "
                                f"settings in {os.path.join(resume, 'config.json')} (only --max-steps may be given)")
        with open(os.path.join(resume, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        if args.recipe and args.recipe != cfg.get("recipe"):
            raise _config_error(f"{resume} is a run of recipe {cfg.get('recipe')!r}, not {args.recipe!r}")
        validate_rl_config(cfg)
        run_dir = resume
        last = os.path.join(run_dir, "checkpoints", "last")
        from ..train.checkpoint import load_checkpoint, recover_checkpoint
        if recover_checkpoint(last) is None:
            raise _config_error(f"{last} is missing: there is no checkpoint to resume in {run_dir}")
        load_checkpoint(last)  # reports a corrupt checkpoint before anything is built
    else:
        cfg = resolve_rl_config(args.recipe, *_overrides_from_args(args))
        run_dir = args.out or _next_free_dir(os.path.join("runs", cfg["recipe"]))
        _check_new_dir(run_dir)

    from .. import set_num_threads
    set_num_threads(cfg["threads"])
    recipe = RL_RECIPES.get(cfg["recipe"])
    if recipe is not None and recipe.extra == "box2d":
        try:
            import Box2D  # noqa: F401
        except ImportError:
            raise _config_error(f"recipe {cfg['recipe']} needs Gymnasium's Box2D environments: pip install "
                                f"'gymnasium[box2d]'") from None
    cls = agent_class(cfg["algorithm"])
    settings = _agent_settings(cfg)
    if resume:
        agent = cls.load(os.path.join(run_dir, "checkpoints", "last"), verbose=1)
        if not agent.env.fully_restorable:
            print(f"note: {cfg['env_id']} keeps part of its simulator state in objects that cannot be saved; the "
                  f"episodes in progress at the checkpoint start over, so from here on the run differs from an "
                  f"uninterrupted one", file=sys.stderr)
    else:
        agent = cls(cfg["env_id"], seed=cfg["seed"], verbose=1, **settings)
        os.makedirs(run_dir, exist_ok=True)
        atomic_write_text(os.path.join(run_dir, "config.json"), json.dumps(cfg, indent=1) + "\n")
    total = agent.config.total_timesteps
    until = min(total, args.max_steps) if getattr(args, "max_steps", None) else total
    every = cfg.get("checkpoint_every") or max(1, total // 10)
    last = os.path.join(run_dir, "checkpoints", "last")
    state = {"next": (agent.num_timesteps // every + 1) * every}

    def checkpoint(a):
        if a.num_timesteps >= state["next"]:
            a.save(last, extra_config={"run": cfg})
            state["next"] = (a.num_timesteps // every + 1) * every

    print(f"{'Resuming' if resume else 'Training'} {cfg['recipe']}: {cls.__name__} on {cfg['env_id']}, "
          f"{agent.config.n_envs} env(s), {total:,} steps (from step {agent.num_timesteps:,}), seed {cfg['seed']}; "
          f"run directory {run_dir}", flush=True)
    try:
        agent.learn(until=until, callback=checkpoint)
    except KeyboardInterrupt:
        agent.save(last, extra_config={"run": cfg})
        print(f"\ninterrupted at step {agent.num_timesteps}. Continue with: somanet train --resume {run_dir}",
              file=sys.stderr)
        return 130
    agent.save(last, extra_config={"run": cfg})
    _write_outputs(agent, cfg, run_dir, plots=not getattr(args, "no_plots", False),
                   evaluate=agent.num_timesteps >= total)
    if agent.num_timesteps < total:
        print(f"Stopped at step {agent.num_timesteps:,} of {total:,} (--max-steps); continue with: "
              f"somanet train --resume {run_dir}")
    print(f"Run directory: {run_dir}")
    agent.close()
    return 0


def _write_outputs(agent, cfg, run_dir, plots=True, evaluate=True):
    from ..train._io import atomic_write_text
    from .evaluation import plot_learning_curve, record_frames, save_frame_grid, write_episodes_csv
    stats = agent.env.stats
    write_episodes_csv(stats, os.path.join(run_dir, "episodes.csv"))
    mean, std = stats.recent(100)
    print(f"Training: {len(stats)} episodes in {agent.num_timesteps:,} steps, {agent.train_time:.1f} s; "
          f"return over the last 100 episodes {mean:.2f} +- {std:.2f}")
    eval_points = None
    if evaluate and cfg["eval_episodes"] > 0:
        returns = agent.evaluate(n_episodes=cfg["eval_episodes"], seed=cfg["eval_seed"])
        result = {"episodes": int(len(returns)), "mean": float(returns.mean()), "std": float(returns.std()),
                  "min": float(returns.min()), "max": float(returns.max()), "timesteps": int(agent.num_timesteps),
                  "train_seconds": float(agent.train_time), "deterministic": True, "seed": cfg["eval_seed"]}
        solved = cfg.get("solved_at")
        if solved is not None:
            result["solved_at"] = solved
            result["solved"] = bool(result["mean"] >= solved)
        atomic_write_text(os.path.join(run_dir, "eval.json"), json.dumps(result, indent=1) + "\n")
        verdict = "" if solved is None else (" (solved)" if result["solved"] else f" (not solved: {solved:g} needed)")
        print(f"Evaluation ({result['episodes']} episodes, deterministic policy): mean return {result['mean']:.2f} "
              f"+- {result['std']:.2f}, min {result['min']:.2f}, max {result['max']:.2f}{verdict}")
        eval_points = [(agent.num_timesteps, result["mean"], result["std"])]
    if not plots:
        return
    folder = os.path.join(run_dir, "plots")
    os.makedirs(folder, exist_ok=True)
    try:
        path = plot_learning_curve(stats.timesteps, stats.returns, os.path.join(folder, "learning_curve.png"),
                                   title=f"{cfg['recipe']} (seed {cfg['seed']})", eval_points=eval_points)
        print(f"Learning curve: {path}")
    except ImportError as exc:
        print(f"learning-curve plot skipped: {exc}", file=sys.stderr)
    if cfg.get("frames", True):
        try:
            frames = record_frames(lambda o: agent.predict(o, True), agent.env_id, seed=cfg["eval_seed"],
                                   max_frames=12, env_kwargs=agent.config.env_kwargs)
            path = save_frame_grid(frames, os.path.join(folder, "frames.png"), ncols=4)
            print(f"Frames: {path}")
        except Exception as exc:  # drawing needs pygame; the environment may not render at all
            print(f"frames skipped: {type(exc).__name__}: {exc}", file=sys.stderr)


def cmd_evaluate(args):
    """``somanet evaluate RUN_DIR`` for an RL run: the deterministic policy over ``eval_episodes``."""
    with open(os.path.join(args.run_dir, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    validate_rl_config(cfg)
    from .. import set_num_threads
    set_num_threads(cfg["threads"])
    agent = load_agent(args.run_dir)
    n = cfg["eval_episodes"] or 100
    returns = agent.evaluate(n_episodes=n, seed=cfg["eval_seed"])
    print(f"Checkpoint: {os.path.join(args.run_dir, 'checkpoints', 'last')} (step {agent.num_timesteps:,})")
    print(f"{n} episodes, deterministic policy: mean return {returns.mean():.2f} +- {returns.std():.2f}, "
          f"min {returns.min():.2f}, max {returns.max():.2f}")
    agent.close()
    return 0
