"""somanet.rl against Stable-Baselines3 on the same environments, algorithms, settings and step budgets.

    python benchmarks/rl_compare.py run --algo ppo --framework somanet --seed 0 --out results/rl
    python benchmarks/rl_compare.py all --seeds 0 1 2 --algos ppo dqn sac --out results/rl
    python benchmarks/rl_compare.py table results/rl

Stable-Baselines3 is needed only here (``pip install stable-baselines3``); it is never a dependency of
somanet. Each (algorithm, framework, seed) trains in its own process, with one thread for somanet,
NumPy's BLAS and PyTorch alike (small networks: more threads only cost on two shared cores), and the
settings of the somanet recipe (``cartpole-ppo``, ``cartpole-dqn``, ``pendulum-sac``) given to both
frameworks. The time of ``learn`` alone is measured, as wall time and as the process's CPU time (the
second is less inflated by other processes on a shared machine). Both trained policies then play the
same 100 evaluation episodes (episode k reset with seed 10000 + k) deterministically, through the
same evaluation loop. ``all`` alternates the frameworks' order from seed to seed so that changes in
the machine's load affect both alike.
"""
import argparse
import json
import os
import subprocess
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

RECIPES = {"ppo": "cartpole-ppo", "dqn": "cartpole-dqn", "sac": "pendulum-sac"}
EVAL_EPISODES = 100
EVAL_SEED = 10_000


def _linear(start):
    return lambda progress_remaining: progress_remaining * start


def _sb3_model(algo, settings, env_id, seed):
    import stable_baselines3 as sb3
    from stable_baselines3.common.env_util import make_vec_env
    s = dict(settings)
    total = s.pop("total_timesteps")
    if algo == "ppo":
        env = make_vec_env(env_id, n_envs=s.pop("n_envs"), seed=seed)
        lr = s.pop("learning_rate")
        clip = s.pop("clip_range")
        hidden = s.pop("hidden_sizes")
        model = sb3.PPO("MlpPolicy", env, n_steps=s.pop("n_steps"), batch_size=s.pop("batch_size"),
                        n_epochs=s.pop("n_epochs"), gamma=s.pop("gamma"), gae_lambda=s.pop("gae_lambda"),
                        ent_coef=s.pop("ent_coef"),
                        learning_rate=_linear(lr) if s.pop("lr_schedule") == "linear" else lr,
                        clip_range=_linear(clip) if s.pop("clip_schedule") == "linear" else clip,
                        policy_kwargs=dict(net_arch=dict(pi=list(hidden), vf=list(hidden))),
                        seed=seed, device="cpu")
    elif algo == "dqn":
        env = make_vec_env(env_id, n_envs=1, seed=seed)
        model = sb3.DQN("MlpPolicy", env, learning_rate=s.pop("learning_rate"), batch_size=s.pop("batch_size"),
                        buffer_size=s.pop("buffer_size"), learning_starts=s.pop("learning_starts"),
                        gamma=s.pop("gamma"), target_update_interval=s.pop("target_update_interval"),
                        train_freq=s.pop("train_freq"), gradient_steps=s.pop("gradient_steps"),
                        exploration_fraction=s.pop("exploration_fraction"),
                        exploration_final_eps=s.pop("exploration_final_eps"),
                        policy_kwargs=dict(net_arch=list(s.pop("hidden_sizes"))), seed=seed, device="cpu")
    elif algo == "sac":
        env = make_vec_env(env_id, n_envs=1, seed=seed)
        model = sb3.SAC("MlpPolicy", env, learning_rate=s.pop("learning_rate"), batch_size=s.pop("batch_size"),
                        buffer_size=s.pop("buffer_size"), learning_starts=s.pop("learning_starts"),
                        tau=s.pop("tau"), gamma=s.pop("gamma"),
                        policy_kwargs=dict(net_arch=list(s.pop("hidden_sizes"))), seed=seed, device="cpu")
    else:
        raise ValueError(algo)
    if s:
        raise ValueError(f"settings not passed to Stable-Baselines3: {sorted(s)}")
    return model, total


def run_one(algo, framework, seed, steps=None, eval_episodes=EVAL_EPISODES):
    from somanet.rl.evaluation import evaluate_policy
    from somanet.rl.recipes import RL_RECIPES, _agent_settings, agent_class
    recipe = RL_RECIPES[RECIPES[algo]]
    cfg = recipe.config()
    settings = _agent_settings(cfg)
    if steps:
        settings["total_timesteps"] = steps
    if framework == "somanet":
        import somanet
        somanet.set_num_threads(1)
        agent = agent_class(cfg["algorithm"])(recipe.env_id, seed=seed, **settings)
        wall, cpu = time.perf_counter(), time.process_time()
        agent.learn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        policy = lambda obs: agent.predict(obs, deterministic=True)  # noqa: E731
        steps = agent.num_timesteps
    else:
        import torch
        torch.set_num_threads(1)
        model, total = _sb3_model(algo, settings, recipe.env_id, seed)
        wall, cpu = time.perf_counter(), time.process_time()
        model.learn(total_timesteps=total)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        policy = lambda obs: model.predict(obs, deterministic=True)[0]  # noqa: E731
        steps = int(model.num_timesteps)
    returns = evaluate_policy(policy, recipe.env_id, n_episodes=eval_episodes, seed=EVAL_SEED, n_envs=10)
    return {"algo": algo, "recipe": recipe.name, "env_id": recipe.env_id, "framework": framework, "seed": seed,
            "timesteps": steps, "train_wall_s": wall, "train_cpu_s": cpu, "eval_mean": float(returns.mean()),
            "eval_std": float(returns.std()), "eval_min": float(returns.min()), "eval_episodes": len(returns),
            "solved_at": recipe.solved_at, "load_avg_1min": os.getloadavg()[0]}


def cmd_run(args):
    result = run_one(args.algo, args.framework, args.seed, args.steps, args.eval_episodes)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{args.algo}-{args.framework}-seed{args.seed}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result), flush=True)


def cmd_all(args):
    for i, seed in enumerate(args.seeds):
        for algo in args.algos:
            order = ["sb3", "somanet"] if i % 2 == 0 else ["somanet", "sb3"]
            for fw in order:
                path = os.path.join(args.out, f"{algo}-{fw}-seed{seed}.json")
                if os.path.exists(path):
                    continue
                subprocess.run([sys.executable, os.path.abspath(__file__), "run", "--algo", algo, "--framework", fw,
                                "--seed", str(seed), "--out", args.out], check=True)


def cmd_table(args):
    rows = []
    for name in sorted(os.listdir(args.dir)):
        if name.endswith(".json"):
            with open(os.path.join(args.dir, name)) as f:
                rows.append(json.load(f))
    import numpy as np
    print("| task | framework | seeds | steps | final mean return (100 episodes), per seed | mean over seeds "
          "| train wall time, s (mean) | train CPU time, s (mean) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for algo in RECIPES:
        for fw in ("somanet", "sb3"):
            rs = sorted((r for r in rows if r["algo"] == algo and r["framework"] == fw), key=lambda r: r["seed"])
            if not rs:
                continue
            per = ", ".join(f"{r['eval_mean']:.1f}" for r in rs)
            print(f"| {rs[0]['recipe']} ({rs[0]['env_id']}) | {'somanet' if fw == 'somanet' else 'Stable-Baselines3'} "
                  f"| {len(rs)} | {rs[0]['timesteps']:,} | {per} | {np.mean([r['eval_mean'] for r in rs]):.1f} "
                  f"| {np.mean([r['train_wall_s'] for r in rs]):.0f} | {np.mean([r['train_cpu_s'] for r in rs]):.0f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--algo", choices=sorted(RECIPES), required=True)
    r.add_argument("--framework", choices=["somanet", "sb3"], required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default="results/rl")
    r.add_argument("--steps", type=int, help="a shorter budget than the recipe's (for a quick check only)")
    r.add_argument("--eval-episodes", type=int, default=EVAL_EPISODES)
    r.set_defaults(func=cmd_run)
    a = sub.add_parser("all")
    a.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a.add_argument("--algos", nargs="+", choices=sorted(RECIPES), default=list(RECIPES))
    a.add_argument("--out", default="results/rl")
    a.set_defaults(func=cmd_all)
    t = sub.add_parser("table")
    t.add_argument("dir")
    t.set_defaults(func=cmd_table)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
