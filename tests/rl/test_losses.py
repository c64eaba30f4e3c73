"""The PPO, A2C, REINFORCE, DQN and SAC losses against PyTorch-written references on fixed tensors.

Each somanet network gets a PyTorch twin holding a copy of its weights; the loss is written out in
PyTorch as the published algorithm states it, and the loss values and every parameter's gradient are
compared."""
import math

import numpy as np
import pytest

import somanet
from somanet import nn
from somanet.rl.a2c import a2c_loss
from somanet.rl.dqn import dqn_loss, polyak_update
from somanet.rl.nets import ActorCritic, QNetwork, SquashedGaussianActor, TwinQ
from somanet.rl.ppo import normalize_advantages, ppo_loss
from somanet.rl.reinforce import reinforce_loss
from somanet.rl.sac import EntropyCoefficient, sac_actor_loss, sac_alpha_loss, sac_critic_loss

from reference import torch_or_skip

torch = None


@pytest.fixture(autouse=True)
def _torch():
    global torch
    torch = torch_or_skip()
    torch.manual_seed(0)


def twin(module):
    """A PyTorch copy of a somanet ``Sequential`` of Linear / Tanh / ReLU layers (or a single Linear)."""
    if isinstance(module, nn.Linear):
        lin = torch.nn.Linear(module.in_features, module.out_features)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(module.weight.array.copy()))
            lin.bias.copy_(torch.from_numpy(module.bias.array.copy()))
        return lin
    layers = []
    for m in module:
        if isinstance(m, nn.Linear):
            layers.append(twin(m))
        elif isinstance(m, nn.Tanh):
            layers.append(torch.nn.Tanh())
        elif isinstance(m, nn.ReLU):
            layers.append(torch.nn.ReLU())
        else:  # pragma: no cover
            raise TypeError(type(m))
    return torch.nn.Sequential(*layers)


def check_grads(pairs, rtol=1e-4, atol=1e-5):
    """``pairs``: (somanet module, torch module) with the same parameter names."""
    for sm, tm in pairs:
        tgrads = dict(tm.named_parameters())
        for name, p in sm.named_parameters():
            tg = tgrads[name].grad
            if tg is None:
                assert p.grad is None or not np.any(p.grad.array), name
                continue
            np.testing.assert_allclose(p.grad.array, tg.numpy(), rtol=rtol, atol=atol, err_msg=name)


def t32(a):
    return torch.tensor(np.asarray(a), dtype=torch.float32)


# ----------------------------------------------------------------------------- PPO / A2C / REINFORCE
def _rollout_batch(rng, n, obs_dim, discrete, n_actions=3, act_dim=2):
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    actions = rng.integers(0, n_actions, size=n) if discrete else rng.normal(size=(n, act_dim)).astype(np.float32)
    return (obs, actions, rng.normal(scale=0.3, size=n).astype(np.float32),       # old log-probs offset
            rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32),  # advantages, returns
            rng.normal(size=n).astype(np.float32))                                  # old values


def _torch_policy(ac):
    pi, vf = twin(ac.pi), twin(ac.vf)
    log_std = torch.nn.Parameter(torch.from_numpy(ac.log_std.array.copy())) if not ac.discrete else None
    return pi, vf, log_std


def _torch_eval(ac, pi, vf, log_std, obs, actions):
    out = pi(t32(obs))
    if ac.discrete:
        dist = torch.distributions.Categorical(logits=out)
        a = torch.tensor(actions, dtype=torch.int64)
        return dist.log_prob(a), dist.entropy(), vf(t32(obs)).squeeze(-1)
    dist = torch.distributions.Normal(out, log_std.exp().expand_as(out))
    a = t32(actions)
    return dist.log_prob(a).sum(-1), dist.entropy().sum(-1), vf(t32(obs)).squeeze(-1)


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("clip_range_vf", [None, 0.2])
def test_ppo_loss_matches_pytorch(discrete, clip_range_vf):
    rng = np.random.default_rng(0)
    somanet.manual_seed(0)
    ac = ActorCritic(5, n_actions=3, hidden_sizes=(16, 16)) if discrete else \
        ActorCritic(5, action_dim=2, hidden_sizes=(16, 16), log_std_init=-0.3)
    obs, actions, offset, adv, returns, old_values = _rollout_batch(rng, 32, 5, discrete)
    with somanet.no_grad():
        old_log_prob = ac.evaluate_actions(obs, actions)[0].array + offset
    norm_adv = normalize_advantages(adv)
    log_prob, entropy, values = ac.evaluate_actions(obs, actions)
    loss, info = ppo_loss(log_prob, old_log_prob, norm_adv, values, old_values, returns, entropy, clip_range=0.2,
                          clip_range_vf=clip_range_vf, ent_coef=0.01, vf_coef=0.5)
    loss.backward()

    pi, vf, log_std = _torch_policy(ac)
    tlp, tent, tval = _torch_eval(ac, pi, vf, log_std, obs, actions)
    a = t32(adv)
    a = (a - a.mean()) / (a.std() + 1e-8)
    ratio = torch.exp(tlp - t32(old_log_prob))
    policy_loss = -torch.min(a * ratio, a * torch.clamp(ratio, 0.8, 1.2)).mean()
    ret, old_v = t32(returns), t32(old_values)
    if clip_range_vf is None:
        value_loss = torch.nn.functional.mse_loss(tval, ret)
    else:
        v_clipped = old_v + torch.clamp(tval - old_v, -clip_range_vf, clip_range_vf)
        value_loss = torch.max((tval - ret) ** 2, (v_clipped - ret) ** 2).mean()
    tloss = policy_loss - 0.01 * tent.mean() + 0.5 * value_loss
    tloss.backward()

    np.testing.assert_allclose(float(loss.array), tloss.item(), rtol=1e-5, atol=1e-6)
    assert info["policy_loss"] == pytest.approx(policy_loss.item(), rel=1e-4, abs=1e-6)
    assert info["value_loss"] == pytest.approx(value_loss.item(), rel=1e-5)
    assert 0.0 < info["clip_fraction"] < 1.0  # the offsets push some ratios out of [0.8, 1.2]
    check_grads([(ac.pi, pi), (ac.vf, vf)])
    if not discrete:
        np.testing.assert_allclose(ac.log_std.grad.array, log_std.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_a2c_and_reinforce_losses_match_pytorch():
    rng = np.random.default_rng(1)
    somanet.manual_seed(1)
    ac = ActorCritic(4, n_actions=2, hidden_sizes=(8,))
    obs, actions, _, adv, returns, _ = _rollout_batch(rng, 20, 4, True, n_actions=2)
    pi, vf, log_std = _torch_policy(ac)

    log_prob, entropy, values = ac.evaluate_actions(obs, actions)
    loss, _ = a2c_loss(log_prob, adv, values, returns, entropy, ent_coef=0.02, vf_coef=0.25)
    loss.backward()
    tlp, tent, tval = _torch_eval(ac, pi, vf, log_std, obs, actions)
    tloss = -(t32(adv) * tlp).mean() + 0.25 * ((t32(returns) - tval) ** 2).mean() - 0.02 * tent.mean()
    tloss.backward()
    np.testing.assert_allclose(float(loss.array), tloss.item(), rtol=1e-5)
    check_grads([(ac.pi, pi), (ac.vf, vf)])

    for p in list(ac.parameters()) + list(pi.parameters()) + list(vf.parameters()):
        p.grad = None
    log_prob, entropy, values = ac.evaluate_actions(obs, actions)
    loss, _ = reinforce_loss(log_prob, returns, values, entropy, ent_coef=0.0, vf_coef=0.5, normalize_advantage=True)
    loss.backward()
    tlp, tent, tval = _torch_eval(ac, pi, vf, log_std, obs, actions)
    g = t32(returns)
    baseline_adv = g - tval.detach()
    baseline_adv = (baseline_adv - baseline_adv.mean()) / (baseline_adv.std() + 1e-8)
    tloss = -(baseline_adv * tlp).mean() + 0.5 * ((tval - g) ** 2).mean()
    tloss.backward()
    np.testing.assert_allclose(float(loss.array), tloss.item(), rtol=1e-5)
    check_grads([(ac.pi, pi), (ac.vf, vf)])


# ----------------------------------------------------------------------------- DQN
def _torch_q(qnet):
    if not qnet.dueling:
        net = twin(qnet.q)
        return torch.nn.ModuleDict({"q": net}), lambda x: net(x)
    body, v, a = twin(qnet.body), twin(qnet.value_head), twin(qnet.advantage_head)
    holder = torch.nn.ModuleDict({"body": body, "value_head": v, "advantage_head": a})

    def forward(x):
        h = body(x)
        adv = a(h)
        return v(h) + adv - adv.mean(-1, keepdim=True)
    return holder, forward


@pytest.mark.parametrize("double,dueling,weighted", [(False, False, False), (True, False, False),
                                                     (True, True, False), (False, True, True)])
def test_dqn_loss_matches_pytorch(double, dueling, weighted):
    rng = np.random.default_rng(2)
    somanet.manual_seed(2)
    q = QNetwork(4, 3, hidden_sizes=(16, 16), dueling=dueling)
    target = QNetwork(4, 3, hidden_sizes=(16, 16), dueling=dueling)
    n = 24
    obs = rng.normal(size=(n, 4)).astype(np.float32)
    next_obs = rng.normal(size=(n, 4)).astype(np.float32)
    actions = rng.integers(0, 3, size=n)
    # Rewards large enough that some TD errors exceed 1, where the Huber loss turns linear.
    rewards = rng.normal(scale=2.0, size=n).astype(np.float32)
    dones = (rng.random(n) < 0.3).astype(np.float32)
    weights = rng.uniform(0.2, 1.0, size=n).astype(np.float32) if weighted else None
    loss, td = dqn_loss(q, target, obs, actions, rewards, next_obs, dones, gamma=0.97, double=double, loss="huber",
                        weights=weights)
    loss.backward()

    tq, tq_fwd = _torch_q(q)
    _, tt_fwd = _torch_q(target)
    with torch.no_grad():
        next_target = tt_fwd(t32(next_obs))
        if double:
            best = tq_fwd(t32(next_obs)).argmax(dim=1, keepdim=True)
            next_v = next_target.gather(1, best).squeeze(1)
        else:
            next_v = next_target.max(dim=1).values
        y = t32(rewards) + 0.97 * (1 - t32(dones)) * next_v
    qa = tq_fwd(t32(obs)).gather(1, torch.tensor(actions).view(-1, 1)).squeeze(1)
    if weighted:
        tloss = (torch.nn.functional.smooth_l1_loss(qa, y, reduction="none") * t32(weights)).mean()
    else:
        tloss = torch.nn.functional.smooth_l1_loss(qa, y)
    tloss.backward()
    assert np.abs(td).max() > 1.0
    np.testing.assert_allclose(float(loss.array), tloss.item(), rtol=1e-5)
    np.testing.assert_allclose(td, (qa - y).detach().numpy(), rtol=1e-5, atol=1e-5)
    check_grads([(q, tq)])


def test_polyak_update_moves_the_target_by_tau():
    somanet.manual_seed(3)
    a, b = QNetwork(3, 2, (4,)), QNetwork(3, 2, (4,))
    before = {k: v.array.copy() for k, v in b.state_dict().items()}
    polyak_update(a, b, 0.1)
    for k, v in b.state_dict().items():
        np.testing.assert_allclose(v.array, 0.9 * before[k] + 0.1 * a.state_dict()[k].array, rtol=1e-6)
    polyak_update(a, b, 1.0)
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v.array, a.state_dict()[k].array)


# ----------------------------------------------------------------------------- SAC
def _torch_actor(actor):
    body, mu, ls = twin(actor.body), twin(actor.mu), twin(actor.log_std)
    holder = torch.nn.ModuleDict({"body": body, "mu": mu, "log_std": ls})

    def sample(obs, noise):
        h = body(t32(obs))
        m, log_std = mu(h), torch.clamp(ls(h), -20.0, 2.0)
        std = log_std.exp()
        u = m + std * t32(noise)
        # log N(u) minus the tanh correction, the correction written as log(1 - tanh(u)^2) directly.
        log_prob = torch.distributions.Normal(m, std).log_prob(u).sum(-1) \
            - torch.log(1 - torch.tanh(u) ** 2).sum(-1)
        return torch.tanh(u), log_prob
    return holder, sample


def _torch_critic(critic):
    q1, q2 = twin(critic.q1), twin(critic.q2)
    holder = torch.nn.ModuleDict({"q1": q1, "q2": q2})

    def forward(obs, act):
        x = torch.cat([obs, act], dim=-1)
        return q1(x).squeeze(-1), q2(x).squeeze(-1)
    return holder, forward


def test_squashed_gaussian_log_prob_matches_pytorch_and_the_transformed_distribution():
    from somanet.distributions import Independent, Normal, TanhTransform, TransformedDistribution
    rng = np.random.default_rng(4)
    somanet.manual_seed(4)
    actor = SquashedGaussianActor(3, 2, hidden_sizes=(16,))
    obs = rng.normal(size=(10, 3)).astype(np.float32)
    noise = rng.normal(size=(10, 2)).astype(np.float32)
    a, logp = actor.sample(obs, noise=noise)
    _, tsample = _torch_actor(actor)
    ta, tlogp = tsample(obs, noise)
    np.testing.assert_allclose(a.array, ta.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logp.array, tlogp.detach().numpy(), rtol=1e-4, atol=1e-4)
    mu, log_std = actor(obs)
    squashed = Independent(TransformedDistribution(Normal(mu, log_std.exp()), [TanhTransform()]), 1)
    np.testing.assert_allclose(logp.array, squashed.log_prob(a).array, rtol=1e-3, atol=1e-3)
    det, _ = actor.sample(obs, deterministic=True)
    np.testing.assert_allclose(det.array, np.tanh(mu.array), rtol=1e-6)


def test_sac_losses_match_pytorch():
    rng = np.random.default_rng(5)
    somanet.manual_seed(5)
    obs_dim, act_dim, n = 3, 2, 16
    actor = SquashedGaussianActor(obs_dim, act_dim, hidden_sizes=(16, 16))
    critic = TwinQ(obs_dim, act_dim, hidden_sizes=(16, 16))
    target = TwinQ(obs_dim, act_dim, hidden_sizes=(16, 16))
    ent = EntropyCoefficient(0.5)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    next_obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32)
    rewards = rng.normal(size=n).astype(np.float32)
    dones = (rng.random(n) < 0.25).astype(np.float32)
    noise = rng.normal(size=(n, act_dim)).astype(np.float32)
    next_noise = rng.normal(size=(n, act_dim)).astype(np.float32)
    gamma, target_entropy = 0.98, -float(act_dim)

    t_actor, t_sample = _torch_actor(actor)
    t_critic, t_q = _torch_critic(critic)
    _, t_target_q = _torch_critic(target)
    t_log_alpha = torch.nn.Parameter(torch.tensor([math.log(0.5)]))

    # Entropy coefficient.
    actions_pi, log_prob = actor.sample(obs, noise=noise)
    alpha_loss = sac_alpha_loss(ent.log_alpha, log_prob, target_entropy)
    alpha_loss.backward()
    t_actions_pi, t_log_prob = t_sample(obs, noise)
    t_alpha_loss = -(t_log_alpha * (t_log_prob + target_entropy).detach()).mean()
    t_alpha_loss.backward()
    np.testing.assert_allclose(float(alpha_loss.array), t_alpha_loss.item(), rtol=1e-4)
    np.testing.assert_allclose(ent.log_alpha.grad.array, t_log_alpha.grad.numpy(), rtol=1e-4)
    alpha = ent.alpha

    # Twin critics against the soft target.
    critic_loss, _ = sac_critic_loss(critic, target, actor, obs, actions, rewards, next_obs, dones, alpha, gamma,
                                     next_noise=next_noise)
    critic_loss.backward()
    with torch.no_grad():
        next_a, next_lp = t_sample(next_obs, next_noise)
        tq1, tq2 = t_target_q(t32(next_obs), next_a)
        y = t32(rewards) + gamma * (1 - t32(dones)) * (torch.min(tq1, tq2) - alpha * next_lp)
    q1, q2 = t_q(t32(obs), t32(actions))
    t_critic_loss = 0.5 * sum(torch.nn.functional.mse_loss(q, y) for q in (q1, q2))
    t_critic_loss.backward()
    np.testing.assert_allclose(float(critic_loss.array), t_critic_loss.item(), rtol=1e-4)
    check_grads([(critic, t_critic)], rtol=1e-3, atol=1e-5)

    # Actor, through the (frozen) critic.
    critic.requires_grad_(False)
    actor_loss, _ = sac_actor_loss(critic, log_prob, actions_pi, obs, alpha)
    actor_loss.backward()
    t_critic.requires_grad_(False)
    tq1, tq2 = t_q(t32(obs), t_actions_pi)
    t_actor_loss = (alpha * t_log_prob - torch.min(tq1, tq2)).mean()
    t_actor_loss.backward()
    np.testing.assert_allclose(float(actor_loss.array), t_actor_loss.item(), rtol=1e-4)
    check_grads([(actor, t_actor)], rtol=1e-3, atol=1e-5)
