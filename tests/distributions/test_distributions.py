"""somanet.distributions against torch.distributions on identical parameters: log_prob, entropy, the
moments, cdf/icdf (values and gradients with respect to every parameter and the value), sample shapes
and dtypes, sampling moments under a fixed seed, and the parameter and support validation."""
import importlib

import numpy as np
import pytest

import somanet
import somanet.distributions as D
from reference import assert_close, compare, torch_or_skip

torch = torch_or_skip()
TD = torch.distributions

DTYPES = [np.float32, np.float64]
# float64 comparisons are limited by the reference (the C library's lgamma, PyTorch's digamma).
TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}
# Gradients through digamma meet PyTorch's trigamma, which is good to about 5e-10 relative; cancellation in
# the entropies and KL divergences of these families amplifies that to about 1e-8.
DIGAMMA_FAMILIES = ("gamma", "beta", "dirichlet", "independent_beta")


def _rng(seed=0):
    return np.random.default_rng(seed)


def _real(shape, seed=0):
    return _rng(seed).uniform(-2, 2, shape)


def _pos(shape, seed=0, low=0.5, high=3.0):
    return _rng(seed).uniform(low, high, shape)


def _spd(n, batch=(), seed=0):
    a = _rng(seed).normal(size=batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def _onehot(idx, k):
    return np.eye(k)[idx]


class Case:
    """A distribution built the same way from ``somanet.distributions`` and ``torch.distributions``.

    ``make(d, *params)`` gets either module; ``params`` are float64 arrays (cast per test);
    ``value`` is an array to score (float, or int for class labels); ``value_grad`` says whether the
    log-density's gradient with respect to the value is compared too.
    """

    def __init__(self, name, make, params, value, value_grad=True, mode=True, cdf=False, entropy=True,
                 moments=True):
        self.name, self.make, self.params, self.value = name, make, params, value
        self.value_grad, self.mode, self.cdf, self.entropy, self.moments = value_grad, mode, cdf, entropy, moments

    def __repr__(self):
        return self.name


_TANH = lambda d: d.transforms.TanhTransform()  # noqa: E731

CASES = [
    Case("normal", lambda d, loc, scale: d.Normal(loc, scale), [_real((3, 4)), _pos((3, 4), 1)], _real((3, 4), 2),
         cdf=True),
    Case("normal_broadcast", lambda d, loc, scale: d.Normal(loc, scale), [_real((4,)), _pos((3, 1), 1)],
         _real((2, 3, 4), 2)),
    Case("laplace", lambda d, loc, scale: d.Laplace(loc, scale), [_real((3, 4)), _pos((3, 4), 1)], _real((3, 4), 2),
         cdf=True),
    Case("uniform", lambda d, low, high: d.Uniform(low, high), [_pos((3, 4), 0, -2, -1), _pos((3, 4), 1, 1, 2)],
         _real((3, 4), 2) * 0.45, mode=False, cdf=True),
    Case("bernoulli_probs", lambda d, p: d.Bernoulli(p), [_pos((3, 4), 0, 0.05, 0.95)],
         (_rng(2).random((3, 4)) < 0.5).astype(float), value_grad=False),
    Case("bernoulli_logits", lambda d, l: d.Bernoulli(logits=l), [_real((3, 4)) * 2],
         (_rng(2).random((3, 4)) < 0.5).astype(float), value_grad=False),
    Case("categorical_probs", lambda d, p: d.Categorical(p), [_pos((3, 5))], np.array([[0, 4, 2], [1, 1, 3]]),
         value_grad=False, moments=False),
    Case("categorical_logits", lambda d, l: d.Categorical(logits=l), [_real((3, 5))], np.array([0, 4, 2]),
         value_grad=False, moments=False),
    Case("onehot_probs", lambda d, p: d.OneHotCategorical(p), [_pos((3, 5))], _onehot([0, 4, 2], 5),
         value_grad=False),
    Case("onehot_logits", lambda d, l: d.OneHotCategorical(logits=l), [_real((3, 5))], _onehot([1, 1, 3], 5),
         value_grad=False),
    Case("gamma", lambda d, c, r: d.Gamma(c, r), [_pos((3, 4)), _pos((3, 4), 1)], _pos((3, 4), 2, 0.1, 4)),
    Case("beta", lambda d, a, b: d.Beta(a, b), [_pos((3, 4)), _pos((3, 4), 1)], _pos((3, 4), 2, 0.05, 0.95)),
    Case("dirichlet", lambda d, c: d.Dirichlet(c), [_pos((3, 4), 0, 1.1, 3)], _rng(2).dirichlet(np.ones(4), 3)),
    Case("mvn_covariance", lambda d, loc, m: d.MultivariateNormal(loc, covariance_matrix=m),
         [_real((2, 3)), _spd(3)], _real((4, 2, 3), 2)),
    Case("mvn_precision", lambda d, loc, m: d.MultivariateNormal(loc, precision_matrix=m),
         [_real((3,)), _spd(3, (2,))], _real((2, 3), 2)),
    Case("mvn_scale_tril", lambda d, loc, m: d.MultivariateNormal(loc, scale_tril=m),
         [_real((2, 3)), np.linalg.cholesky(_spd(3, (2,)))], _real((2, 3), 2)),
    Case("independent_normal", lambda d, loc, scale: d.Independent(d.Normal(loc, scale), 1),
         [_real((3, 4)), _pos((3, 4), 1)], _real((5, 3, 4), 2)),
    Case("independent_beta", lambda d, a, b: d.Independent(d.Beta(a, b), 2), [_pos((3, 4)), _pos((3, 4), 1)],
         _pos((3, 4), 2, 0.05, 0.95)),
    Case("tanh_normal", lambda d, loc, scale: d.TransformedDistribution(d.Normal(loc, scale), [_TANH(d)]),
         [_real((3, 4)) * 0.5, _pos((3, 4), 1)], _real((3, 4), 2) * 0.45, entropy=False, moments=False),
    Case("log_normal_affine", lambda d, loc, scale: d.TransformedDistribution(
        d.Normal(loc, scale), [d.transforms.ExpTransform(), d.transforms.AffineTransform(1.0, 2.0)]),
         [_real((3, 4)) * 0.5, _pos((3, 4), 1)], _pos((3, 4), 2, 1.2, 5), entropy=False, moments=False, cdf=True),
    Case("logit_normal_tensor_affine", lambda d, loc, scale, a, b: d.TransformedDistribution(
        d.Normal(loc, scale), [d.transforms.SigmoidTransform(), d.transforms.AffineTransform(a, b)]),
         [_real((3, 4)) * 0.5, _pos((3, 4), 1), _real((4,), 3), _pos((4,), 4)], None, entropy=False, moments=False),
]
# The last case's values must lie between a and a + b, which depend on its parameters.
CASES[-1].value = CASES[-1].params[2] + CASES[-1].params[3] * _pos((3, 4), 5, 0.1, 0.9)
CASE_IDS = [c.name for c in CASES]


def _compare(case, dtype, fn, with_value=False, value=None, **tol):
    arrays = [p.astype(dtype) for p in case.params]
    grads = [True] * len(arrays)
    if with_value:
        v = case.value if value is None else value
        v = v.astype(dtype) if v.dtype.kind == "f" else v
        arrays.append(v)
        grads.append(v.dtype.kind == "f" and case.value_grad)

    def run(module):
        def f(*ts):
            params = ts[:len(case.params)]
            dist = case.make(module, *params)
            return fn(dist, ts[-1]) if with_value else fn(dist)
        return f

    kw = dict(TOL[dtype])
    if dtype == np.float64 and case.name in DIGAMMA_FAMILIES:
        kw["grad_rtol"] = 1e-7
    kw.update(tol)
    return compare(run(D), run(TD), *arrays, requires_grad=grads, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_log_prob_matches_torch(case, dtype):
    _compare(case, dtype, lambda d, v: d.log_prob(v), with_value=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [c for c in CASES if c.entropy], ids=[c.name for c in CASES if c.entropy])
def test_entropy_matches_torch(case, dtype):
    _compare(case, dtype, lambda d: d.entropy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [c for c in CASES if c.moments], ids=[c.name for c in CASES if c.moments])
def test_moments_match_torch(case, dtype):
    _compare(case, dtype, lambda d: (d.mean, d.variance, d.stddev))
    if case.mode:
        _compare(case, dtype, lambda d: d.mode)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [c for c in CASES if c.cdf], ids=[c.name for c in CASES if c.cdf])
def test_cdf_and_icdf_match_torch(case, dtype):
    _compare(case, dtype, lambda d, v: d.cdf(v), with_value=True)
    probs = _pos(case.value.shape, 7, 0.02, 0.98)
    _compare(case, dtype, lambda d, v: d.icdf(v), with_value=True, value=probs)


def test_categorical_normalises_probs_and_logits():
    p = _pos((2, 4))
    for kw in ({"probs": p}, {"logits": np.log(p) + 3.0}):
        s = D.Categorical(**{k: somanet.tensor(v) for k, v in kw.items()})
        t = TD.Categorical(**{k: torch.tensor(v) for k, v in kw.items()})
        assert_close(s.probs, t.probs, rtol=1e-6, atol=1e-7)
        assert_close(s.logits, t.logits, rtol=1e-6, atol=1e-6)
        assert_close(s.mode, t.mode)
        assert_close(s.enumerate_support(), t.enumerate_support())
    s = D.Bernoulli(somanet.tensor(p[0] / 4))
    assert_close(s.logits, TD.Bernoulli(torch.tensor(p[0] / 4)).logits, rtol=1e-6, atol=1e-6)
    assert_close(s.enumerate_support(), TD.Bernoulli(torch.tensor(p[0] / 4)).enumerate_support())
    s1 = D.OneHotCategorical(somanet.tensor(p))
    assert_close(s1.enumerate_support(), TD.OneHotCategorical(torch.tensor(p)).enumerate_support())


def test_python_numbers_as_parameters_give_float32_scalars():
    for s, t in ((D.Normal(0.0, 2.0), TD.Normal(0.0, 2.0)), (D.Gamma(2.0, 3.0), TD.Gamma(2.0, 3.0)),
                 (D.Beta(2.0, 3.0), TD.Beta(2.0, 3.0)), (D.Bernoulli(0.3), TD.Bernoulli(0.3)),
                 (D.Uniform(0.0, 2.0), TD.Uniform(0.0, 2.0)), (D.Laplace(1.0, 2.0), TD.Laplace(1.0, 2.0))):
        assert s.batch_shape == tuple(t.batch_shape) == ()
        v = np.float32(1.0 if isinstance(s, D.Bernoulli) else 0.5)
        assert_close(s.log_prob(somanet.tensor(v)), t.log_prob(torch.tensor(v)), rtol=1e-6)
        assert s.sample().dtype == np.float32 and s.sample((3,)).shape == (3,)


# --------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_sample_shapes_and_dtypes(case, dtype):
    params = [p.astype(dtype) for p in case.params]
    s = case.make(D, *[somanet.tensor(p) for p in params])
    t = case.make(TD, *[torch.tensor(p) for p in params])
    assert s.batch_shape == tuple(t.batch_shape)
    assert s.event_shape == tuple(t.event_shape)
    assert s.has_rsample == t.has_rsample
    for shape in ((), (5,), (2, 3)):
        x = s.sample(shape)
        y = t.sample(shape)
        assert x.shape == tuple(y.shape)
        assert x.dtype == y.numpy().dtype
        assert not x.requires_grad
        if s.has_rsample:
            assert s.rsample(shape).shape == tuple(y.shape)
    # Draws score without complaint from the support check, and are finite.
    lp = s.log_prob(s.sample((4,)))
    assert lp.shape == (4,) + s.batch_shape and np.all(np.isfinite(lp.array))


def test_sampling_is_reproducible_under_manual_seed():
    dists = [D.Normal(somanet.zeros(3), somanet.ones(3)), D.Gamma(somanet.ones(3), somanet.ones(3)),
             D.Dirichlet(somanet.ones(3)), D.Categorical(somanet.ones(4)), D.Bernoulli(somanet.full((3,), 0.3)),
             D.MultivariateNormal(somanet.zeros(2), somanet.eye(2)), D.Laplace(0.0, 1.0), D.Uniform(0.0, 1.0),
             D.Beta(somanet.ones(2), somanet.ones(2))]
    for d in dists:
        somanet.manual_seed(7)
        a = d.sample((5,)).array.copy()
        somanet.manual_seed(7)
        b = d.sample((5,)).array
        np.testing.assert_array_equal(a, b)


N_MOMENTS = 40000

MOMENT_CASES = [
    ("normal", lambda: D.Normal(somanet.tensor([0.5, -1.0]), somanet.tensor([2.0, 0.3]))),
    ("laplace", lambda: D.Laplace(somanet.tensor([0.5, -1.0]), somanet.tensor([2.0, 0.3]))),
    ("uniform", lambda: D.Uniform(somanet.tensor([0.5, -1.0]), somanet.tensor([2.0, 0.3]))),
    ("gamma", lambda: D.Gamma(somanet.tensor([0.3, 2.0, 40.0]), somanet.tensor([2.0, 0.5, 3.0]))),
    ("beta", lambda: D.Beta(somanet.tensor([0.3, 2.0, 5.0]), somanet.tensor([0.7, 0.5, 5.0]))),
    ("dirichlet", lambda: D.Dirichlet(somanet.tensor([0.4, 1.0, 3.0]))),
    ("bernoulli", lambda: D.Bernoulli(somanet.tensor([0.1, 0.5, 0.9]))),
    ("onehot", lambda: D.OneHotCategorical(somanet.tensor([0.2, 0.5, 0.3]))),
    ("mvn", lambda: D.MultivariateNormal(somanet.tensor([1.0, -1.0]),
                                         covariance_matrix=somanet.tensor([[2.0, 0.6], [0.6, 0.5]]))),
    ("tanh_normal", lambda: D.TransformedDistribution(D.Normal(0.3, 0.8), [D.TanhTransform()])),
]


@pytest.mark.parametrize("name,make", MOMENT_CASES, ids=[m[0] for m in MOMENT_CASES])
def test_sample_moments_match_the_analytic_ones(name, make):
    somanet.manual_seed(0)
    d = make()
    x = d.sample((N_MOMENTS,)).array.astype(np.float64)
    if name == "tanh_normal":  # E[tanh(Z)] by quadrature on a fine grid
        z = np.linspace(-8, 8, 20001)
        w = np.exp(-0.5 * ((z - 0.3) / 0.8) ** 2)
        mean = np.sum(np.tanh(z) * w) / w.sum()
        var = np.sum((np.tanh(z) - mean) ** 2 * w) / w.sum()
    else:
        mean, var = d.mean.array, d.variance.array
    se = np.sqrt(var / N_MOMENTS)
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * se + 1e-12)
    np.testing.assert_allclose(x.var(0), var, rtol=0.06)
    if name == "mvn":
        np.testing.assert_allclose(np.cov(x.T), d.covariance_matrix.array, rtol=0.05, atol=0.02)


def test_categorical_sample_frequencies():
    somanet.manual_seed(1)
    p = np.array([[0.1, 0.0, 0.6, 0.3], [0.25, 0.25, 0.25, 0.25]])
    x = D.Categorical(somanet.tensor(p)).sample((N_MOMENTS,)).array
    assert x.dtype == np.int64 and x.shape == (N_MOMENTS, 2)
    freq = np.stack([np.bincount(x[:, i], minlength=4) / N_MOMENTS for i in range(2)])
    np.testing.assert_allclose(freq, p, atol=0.01)
    assert freq[0, 1] == 0  # a zero-probability class is never drawn


# --------------------------------------------------------------------------- reparameterised sampling
def _same_noise(monkeypatch, module_name, eps):
    """Make somanet's and PyTorch's samplers in the module ``module_name`` draw the standard normal noise
    ``eps``."""
    monkeypatch.setattr(importlib.import_module(f"somanet.distributions.{module_name}"), "standard_normal",
                        lambda shape, dtype: somanet.tensor(eps))
    monkeypatch.setattr(importlib.import_module(f"torch.distributions.{module_name}"), "_standard_normal",
                        lambda shape, dtype, device: torch.tensor(eps))


@pytest.mark.parametrize("dtype", DTYPES)
def test_normal_rsample_gradient_with_the_same_noise(monkeypatch, dtype):
    eps = _rng(3).normal(size=(5, 3, 4)).astype(dtype)
    _same_noise(monkeypatch, "normal", eps)
    loc, scale = _real((3, 4)).astype(dtype), _pos((3, 4), 1).astype(dtype)
    compare(lambda m, s: (D.Normal(m, s).rsample((5,)) ** 2).sum(0),
            lambda m, s: (TD.Normal(m, s).rsample((5,)) ** 2).sum(0), loc, scale, **TOL[dtype])
    # The tanh-squashed policy of soft actor-critic: sample, score the sample, differentiate both.
    compare(lambda m, s: _squashed(D, m, s), lambda m, s: _squashed(TD, m, s), loc, scale, **TOL[dtype])


def _squashed(d, loc, scale):
    dist = d.TransformedDistribution(d.Normal(loc, scale), [d.transforms.TanhTransform(cache_size=1)])
    a = dist.rsample((5,))
    return a, dist.log_prob(a)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mvn_rsample_gradient_with_the_same_noise(monkeypatch, dtype):
    eps = _rng(3).normal(size=(5, 2, 3)).astype(dtype)
    _same_noise(monkeypatch, "multivariate_normal", eps)
    loc, cov = _real((2, 3)).astype(dtype), _spd(3, (2,)).astype(dtype)
    tol = dict(TOL[dtype], rtol=1e-3 if dtype == np.float32 else 1e-9)
    compare(lambda m, c: D.MultivariateNormal(m, c).rsample((5,)),
            lambda m, c: TD.MultivariateNormal(m, c).rsample((5,)), loc, cov, **tol)
    compare(lambda m, c: D.MultivariateNormal(m, precision_matrix=c).rsample((5,)),
            lambda m, c: TD.MultivariateNormal(m, precision_matrix=c).rsample((5,)), loc, cov, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_laplace_and_uniform_rsample_gradients(monkeypatch, dtype):
    import somanet.distributions.laplace as L
    import somanet.distributions.uniform as U
    u = _pos((5, 3, 4), 4, -0.99, 0.99).astype(dtype)
    monkeypatch.setattr(L, "uniform", lambda shape, dtype, low, high: somanet.tensor(u))
    loc, scale = _real((3, 4)).astype(dtype), _pos((3, 4), 1).astype(dtype)
    compare(lambda m, s: D.Laplace(m, s).rsample((5,)),
            lambda m, s: m - s * torch.tensor(u).sign() * torch.log1p(-torch.tensor(u).abs()), loc, scale,
            **TOL[dtype])
    r = np.abs(u)
    monkeypatch.setattr(U, "uniform", lambda shape, dtype: somanet.tensor(r))
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.tensor(r))
    low, high = _pos((3, 4), 0, -2, -1).astype(dtype), _pos((3, 4), 1, 1, 2).astype(dtype)
    compare(lambda a, b: D.Uniform(a, b).rsample((5,)), lambda a, b: TD.Uniform(a, b).rsample((5,)), low, high,
            **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gamma_rsample_gradient_against_torch_and_the_exact_derivative(dtype):
    somanet.manual_seed(2)
    conc = np.array([0.05, 0.3, 1.0, 2.5, 7.0, 30.0, 300.0], dtype=dtype)
    rate = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 0.1, 1.0], dtype=dtype)
    c = somanet.tensor(np.repeat(conc[None], 50, 0), requires_grad=True)
    r = somanet.tensor(np.repeat(rate[None], 50, 0), requires_grad=True)
    x = D.Gamma(c, r).rsample()
    x.sum().backward()
    g = x.array.astype(np.float64) * np.repeat(rate[None], 50, 0)  # the standard gamma draws
    ok = g > 1e-30  # below, float32 draws are floored and carry no gradient information
    ref = torch._standard_gamma_grad(torch.tensor(c.array.astype(np.float64)), torch.tensor(g)).numpy()
    ref = ref / r.array.astype(np.float64)
    # PyTorch's derivative comes from fitted approximations with errors up to about 2e-4.
    np.testing.assert_allclose(c.grad.array[ok], ref[ok], rtol=2e-3)
    np.testing.assert_allclose(r.grad.array, -x.array / r.array, rtol=1e-5 if dtype == np.float32 else 1e-12)
    # The exact implicit derivative -dP/dalpha / dP/dx from the regularised incomplete gamma function P.
    a64, g64 = torch.tensor(c.array.astype(np.float64))[ok], torch.tensor(g)[ok]
    h = 1e-6 * a64
    dp_da = (torch.special.gammainc(a64 + h, g64) - torch.special.gammainc(a64 - h, g64)) / (2 * h)
    pdf = torch.exp((a64 - 1) * torch.log(g64) - g64 - torch.lgamma(a64))
    exact = (-dp_da / pdf / torch.tensor(r.array.astype(np.float64)[ok])).numpy()
    np.testing.assert_allclose(c.grad.array[ok], exact, rtol=1e-5 if dtype == np.float32 else 1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dirichlet_and_beta_rsample_gradients_against_torch(dtype):
    somanet.manual_seed(3)
    conc = np.array([[0.3, 1.0, 4.0], [2.0, 2.0, 9.0], [20.0, 0.7, 1.5]], dtype=dtype)
    c = somanet.tensor(conc, requires_grad=True)
    x = D.Dirichlet(c).rsample((40,))
    w = _rng(5).normal(size=x.shape).astype(dtype)
    (x * somanet.tensor(w)).sum().backward()
    # PyTorch's backward for the same draws: grad_j = g_j (w_j - sum_i x_i w_i).
    xt = torch.tensor(x.array.astype(np.float64))
    ct = torch.tensor(np.broadcast_to(conc, x.shape).astype(np.float64))
    g = torch._dirichlet_grad(xt, ct, ct.sum(-1, keepdim=True).expand_as(ct))
    wt = torch.tensor(w.astype(np.float64))
    ref = (g * (wt - (xt * wt).sum(-1, keepdim=True))).sum(0).numpy()
    np.testing.assert_allclose(c.grad.array, ref, rtol=2e-3, atol=1e-4)
    # Beta is the first coordinate of a two-class Dirichlet.
    a = somanet.tensor(np.array([0.4, 3.0], dtype=dtype), requires_grad=True)
    b = somanet.tensor(np.array([2.0, 0.6], dtype=dtype), requires_grad=True)
    y = D.Beta(a, b).rsample((40,))
    y.sum().backward()
    yt = torch.tensor(y.array.astype(np.float64))
    xt = torch.stack([yt, 1 - yt], -1)
    ct = torch.tensor(np.stack([a.array, b.array], -1).astype(np.float64)).expand_as(xt)
    g = torch._dirichlet_grad(xt, ct, ct.sum(-1, keepdim=True).expand_as(ct))
    gout = torch.stack([torch.ones_like(yt), torch.zeros_like(yt)], -1)
    ref = (g * (gout - (xt * gout).sum(-1, keepdim=True))).sum(0).numpy()
    np.testing.assert_allclose(a.grad.array, ref[:, 0], rtol=2e-3)
    np.testing.assert_allclose(b.grad.array, ref[:, 1], rtol=2e-3)


def test_beta_rsample_gradient_is_the_exact_implicit_derivative():
    special = pytest.importorskip("scipy.special")
    somanet.manual_seed(4)
    a0 = np.array([0.2, 0.9, 3.0, 15.0, 60.0])
    b0 = np.array([0.5, 4.0, 1.0, 25.0, 0.8])
    a = somanet.tensor(np.repeat(a0[None], 20, 0), requires_grad=True)
    b = somanet.tensor(np.repeat(b0[None], 20, 0), requires_grad=True)
    x = D.Beta(a, b).rsample()
    x.sum().backward()
    xv, av, bv = x.array, a.array, b.array
    ok = (xv > 1e-12) & (xv < 1 - 1e-12)
    h = 1e-6
    pdf = np.exp((av - 1) * np.log(xv) + (bv - 1) * np.log1p(-xv) - special.betaln(av, bv))
    for grad, dp in ((a.grad.array, (special.betainc(av * (1 + h), bv, xv) - special.betainc(av * (1 - h), bv, xv))
                      / (2 * h * av)),
                     (b.grad.array, (special.betainc(av, bv * (1 + h), xv) - special.betainc(av, bv * (1 - h), xv))
                      / (2 * h * bv))):
        np.testing.assert_allclose(grad[ok], (-dp / pdf)[ok], rtol=1e-5)


def test_dirichlet_pathwise_gradient_is_unbiased():
    # d/dalpha_j E[x_i] = delta_ij / a0 - alpha_i / a0^2: the mean of the per-draw gradients must agree.
    somanet.manual_seed(6)
    alpha = np.array([0.5, 1.5, 3.0])
    a0 = alpha.sum()
    n = 20000
    for i in range(3):
        c = somanet.tensor(alpha, requires_grad=True)
        x = D.Dirichlet(c).rsample((n,))
        (x[:, i].sum() / n).backward()
        expected = np.where(np.arange(3) == i, 1 / a0, 0) - alpha[i] / a0 ** 2
        np.testing.assert_allclose(c.grad.array, expected, atol=4e-3)


# --------------------------------------------------------------------------- KL divergence
def _kl_pairs():
    p2, q2 = _pos((3, 4)), _pos((3, 4), 1)
    loc, cov = _real((2, 3)), _spd(3, (2,))
    return [
        ("normal", lambda d, a, b, c, e: d.Normal(a, b), lambda d, a, b, c, e: d.Normal(c, e),
         [_real((3, 4)), p2, _real((3, 4), 2), q2]),
        ("bernoulli_probs", lambda d, a, b: d.Bernoulli(a), lambda d, a, b: d.Bernoulli(b),
         [p2 / 3.5, q2 / 3.5]),
        ("bernoulli_logits", lambda d, a, b: d.Bernoulli(logits=a), lambda d, a, b: d.Bernoulli(logits=b),
         [_real((3, 4)), _real((3, 4), 1)]),
        ("categorical", lambda d, a, b: d.Categorical(a), lambda d, a, b: d.Categorical(logits=b),
         [_pos((3, 5)), _real((3, 5), 1)]),
        ("onehot", lambda d, a, b: d.OneHotCategorical(logits=a), lambda d, a, b: d.OneHotCategorical(b),
         [_real((3, 5)), _pos((3, 5), 1)]),
        ("mvn", lambda d, a, b, c, e: d.MultivariateNormal(a, b),
         lambda d, a, b, c, e: d.MultivariateNormal(c, scale_tril=e),
         [loc, cov, _real((3,), 3), np.linalg.cholesky(_spd(3, seed=4))]),
        ("uniform", lambda d, a, b, c, e: d.Uniform(a, b), lambda d, a, b, c, e: d.Uniform(c, e),
         [_pos((3, 4), 0, -1, 0), _pos((3, 4), 1, 0.5, 1), _pos((3, 4), 2, -3, -1.5), _pos((3, 4), 3, 1.5, 3)]),
        ("beta", lambda d, a, b, c, e: d.Beta(a, b), lambda d, a, b, c, e: d.Beta(c, e),
         [p2, q2, _pos((3, 4), 2), _pos((3, 4), 3)]),
        ("gamma", lambda d, a, b, c, e: d.Gamma(a, b), lambda d, a, b, c, e: d.Gamma(c, e),
         [p2, q2, _pos((3, 4), 2), _pos((3, 4), 3)]),
        ("dirichlet", lambda d, a, b: d.Dirichlet(a), lambda d, a, b: d.Dirichlet(b), [p2, q2]),
        ("laplace", lambda d, a, b, c, e: d.Laplace(a, b), lambda d, a, b, c, e: d.Laplace(c, e),
         [_real((3, 4)), p2, _real((3, 4), 2), q2]),
        ("independent", lambda d, a, b, c, e: d.Independent(d.Normal(a, b), 2),
         lambda d, a, b, c, e: d.Independent(d.Normal(c, e), 2), [_real((3, 4)), p2, _real((3, 4), 2), q2]),
    ]


KL_PAIRS = _kl_pairs()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,make_p,make_q,params", KL_PAIRS, ids=[k[0] for k in KL_PAIRS])
def test_kl_divergence_matches_torch(name, make_p, make_q, params, dtype):
    def run(module):
        return lambda *ts: module.kl_divergence(make_p(module, *ts), make_q(module, *ts))

    tol = dict(TOL[dtype])
    if dtype == np.float64 and name in DIGAMMA_FAMILIES:
        tol["grad_rtol"] = 1e-7
    compare(run(D), run(TD), *[p.astype(dtype) for p in params], **tol)


def test_kl_infinite_outside_the_support():
    p = D.Uniform(somanet.tensor([0.0, 0.0]), somanet.tensor([1.0, 1.0]))
    q = D.Uniform(somanet.tensor([0.5, -1.0]), somanet.tensor([2.0, 2.0]))
    kl = D.kl_divergence(p, q).array
    assert kl[0] == np.inf and np.isfinite(kl[1])
    kl = D.kl_divergence(D.Bernoulli(somanet.tensor([0.5, 0.0])), D.Bernoulli(somanet.tensor([0.0, 0.0]))).array
    t = TD.kl_divergence(TD.Bernoulli(torch.tensor([0.5, 0.0])), TD.Bernoulli(torch.tensor([0.0, 0.0]))).numpy()
    np.testing.assert_array_equal(kl, t)
    kl = D.kl_divergence(D.Categorical(somanet.tensor([0.5, 0.5, 0.0])), D.Categorical(somanet.tensor([0.0, 0.5, 0.5])))
    assert kl.item() == np.inf


def test_kl_unregistered_pair_and_register_kl():
    with pytest.raises(NotImplementedError, match=r"Normal.*Gamma"):
        D.kl_divergence(D.Normal(0.0, 1.0), D.Gamma(1.0, 1.0))
    with pytest.raises(NotImplementedError, match="reinterpreted_batch_ndims"):
        base = D.Normal(somanet.zeros(2, 3), somanet.ones(2, 3))
        D.kl_divergence(D.Independent(base, 1), D.Independent(base, 2))

    class MyNormal(D.Normal):
        pass

    p, q = MyNormal(0.0, 1.0), D.Normal(1.0, 2.0)
    assert D.kl_divergence(p, q).item() == pytest.approx(D.kl_divergence(D.Normal(0.0, 1.0), q).item())

    @D.register_kl(MyNormal, D.Normal)
    def _kl(p, q):
        return somanet.tensor(-1.0)

    assert D.kl_divergence(p, q).item() == -1.0  # the more specific pair wins
    assert D.kl_divergence(D.Normal(0.0, 1.0), q).item() != -1.0


# --------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("dtype", DTYPES)
def test_transforms_match_torch(dtype):
    x = _real((3, 4)).astype(dtype)
    loc, scale = _real((4,), 1).astype(dtype), -_pos((4,), 2).astype(dtype)
    pairs = [(D.ExpTransform(), TD.transforms.ExpTransform()),
             (D.SigmoidTransform(), TD.transforms.SigmoidTransform()),
             (D.TanhTransform(), TD.transforms.TanhTransform()),
             (D.AffineTransform(2.0, -3.0), TD.transforms.AffineTransform(2.0, -3.0))]
    for s, t in pairs:
        compare(lambda v: (s(v), s.log_abs_det_jacobian(v, s(v)), s.inv(s(v))),
                lambda v: (t(v), t.log_abs_det_jacobian(v, t(v)), t.inv(t(v))), x, **TOL[dtype])
    compare(lambda v, a, b: D.AffineTransform(a, b, event_dim=1).log_abs_det_jacobian(v, v),
            lambda v, a, b: TD.transforms.AffineTransform(a, b, event_dim=1).log_abs_det_jacobian(v, v),
            x, loc, scale, **TOL[dtype])
    t = D.TanhTransform(cache_size=1)
    xs = somanet.tensor(np.array([20.0, -20.0], dtype=dtype))
    assert t.inv(t(xs)) is xs  # the cache returns the input itself
    assert t.sign == 1 and D.AffineTransform(0.0, -2.0).sign == -1
    assert D.AffineTransform(0.0, -2.0).inv.inv is not None


def test_transformed_distribution_cdf_with_a_decreasing_transform():
    s = D.TransformedDistribution(D.Normal(0.0, 1.0), [D.AffineTransform(1.0, -2.0)])
    t = TD.TransformedDistribution(TD.Normal(0.0, 1.0), [TD.transforms.AffineTransform(1.0, -2.0)])
    v = np.array([-1.0, 0.5, 2.0], dtype=np.float32)
    assert_close(s.cdf(somanet.tensor(v)), t.cdf(torch.tensor(v)), rtol=1e-6, atol=1e-7)
    p = np.array([0.1, 0.5, 0.8], dtype=np.float32)
    assert_close(s.icdf(somanet.tensor(p)), t.icdf(torch.tensor(p)), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- expand
def test_expand():
    cases = [(D.Normal(somanet.zeros(3), somanet.ones(3)), (2, 3)),
             (D.Categorical(somanet.ones(3, 4)), (5, 3)),
             (D.Bernoulli(logits=somanet.zeros(3)), (2, 3)),
             (D.MultivariateNormal(somanet.zeros(3), somanet.eye(3)), (4,)),
             (D.Dirichlet(somanet.ones(3)), (2,)),
             (D.Beta(somanet.ones(3), somanet.ones(3)), (2, 3)),
             (D.Independent(D.Normal(somanet.zeros(3), somanet.ones(3)), 1), (2,)),
             (D.OneHotCategorical(somanet.ones(4)), (3,))]
    for d, shape in cases:
        e = d.expand(shape)
        assert e.batch_shape == shape and e.event_shape == d.event_shape
        x = e.sample()
        assert x.shape == shape + d.event_shape
        assert e.log_prob(x).shape == shape


# --------------------------------------------------------------------------- validation
INVALID = [
    (lambda: D.Normal(somanet.tensor([0.0]), somanet.tensor([-1.0])), r"Normal.*scale.*positive"),
    (lambda: D.Normal(somanet.tensor([np.nan]), somanet.tensor([1.0])), r"Normal.*loc"),
    (lambda: D.Laplace(0.0, 0.0), r"Laplace.*scale"),
    (lambda: D.Uniform(1.0, 0.0), r"Uniform.*low.*high"),
    (lambda: D.Bernoulli(somanet.tensor([1.5])), r"Bernoulli.*probs"),
    (lambda: D.Bernoulli(logits=somanet.tensor([np.nan])), r"Bernoulli.*logits"),
    (lambda: D.Categorical(somanet.tensor([0.5, -0.1, 0.6])), r"Categorical.*probs.*simplex"),
    (lambda: D.OneHotCategorical(somanet.tensor([0.5, -0.1, 0.6])), r"Categorical.*probs"),
    (lambda: D.Gamma(1.0, -2.0), r"Gamma.*rate"),
    (lambda: D.Gamma(0.0, 2.0), r"Gamma.*concentration"),
    (lambda: D.Beta(0.0, 1.0), r"Beta.*concentration1"),
    (lambda: D.Beta(1.0, -1.0), r"Beta.*concentration0"),
    (lambda: D.Dirichlet(somanet.tensor([1.0, 0.0])), r"Dirichlet.*concentration"),
    (lambda: D.MultivariateNormal(somanet.zeros(2), somanet.tensor([[1.0, 2.0], [2.0, 1.0]])),
     r"MultivariateNormal.*covariance_matrix.*positive-definite"),
    (lambda: D.MultivariateNormal(somanet.zeros(2), scale_tril=somanet.tensor([[1.0, 0.0], [2.0, -1.0]])),
     r"MultivariateNormal.*scale_tril"),
    (lambda: D.MultivariateNormal(somanet.zeros(2), somanet.eye(2), scale_tril=somanet.eye(2)), r"exactly one"),
    (lambda: D.MultivariateNormal(somanet.zeros(2), somanet.eye(3)), r"shape"),
    (lambda: D.Bernoulli(), r"exactly one of probs and logits"),
    (lambda: D.Independent(D.Normal(somanet.zeros(3), somanet.ones(3)), 2), r"reinterpreted_batch_ndims"),
]


@pytest.mark.parametrize("make,message", INVALID)
def test_invalid_parameters_raise_value_error_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()


OUTSIDE = [
    (lambda: D.Gamma(1.0, 1.0), -1.0, r"Gamma.log_prob.*non-negative"),
    (lambda: D.Beta(1.0, 1.0), 1.5, r"Beta.log_prob"),
    (lambda: D.Bernoulli(0.3), 0.5, r"Bernoulli.log_prob.*0 or 1"),
    (lambda: D.Categorical(somanet.ones(3)), 3, r"Categorical.log_prob.*integer in \[0, 2\]"),
    (lambda: D.Uniform(0.0, 1.0), 2.0, r"Uniform.log_prob"),
    (lambda: D.Dirichlet(somanet.ones(3)), [0.5, 0.2, 0.2], r"Dirichlet.log_prob.*simplex"),
    (lambda: D.MultivariateNormal(somanet.zeros(3), somanet.eye(3)), [1.0, 2.0], r"event_shape"),
    (lambda: D.Normal(somanet.zeros(3), somanet.ones(3)), [1.0, 2.0], r"broadcast"),
    (lambda: D.TransformedDistribution(D.Normal(0.0, 1.0), [D.TanhTransform()]), 1.5, r"TransformedDistribution"),
]


@pytest.mark.parametrize("make,value,message", OUTSIDE)
def test_values_outside_the_support_raise(make, value, message):
    d = make()
    with pytest.raises(ValueError, match=message):
        d.log_prob(somanet.tensor(value))


def test_validation_can_be_turned_off():
    d = D.Normal(somanet.tensor([0.0]), somanet.tensor([-1.0]), validate_args=False)
    assert np.isnan(d.log_prob(somanet.tensor([0.0])).array[0])
    D.Distribution.set_default_validate_args(False)
    try:
        D.Gamma(1.0, -1.0)
        D.Beta(1.0, 1.0).log_prob(somanet.tensor(2.0))
    finally:
        D.Distribution.set_default_validate_args(True)
    with pytest.raises(ValueError):
        D.Gamma(1.0, -1.0)


def test_rsample_unavailable_for_discrete_distributions():
    for d in (D.Bernoulli(0.3), D.Categorical(somanet.ones(3)), D.OneHotCategorical(somanet.ones(3))):
        assert not d.has_rsample
        with pytest.raises(NotImplementedError, match="rsample"):
            d.rsample()
