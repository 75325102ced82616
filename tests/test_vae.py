"""Tests for papernotes_core.vae: the estimators against exact answers, the model, the experiment."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from papernotes_core import results
from papernotes_core import vae as V


def _se_of_mean(v: torch.Tensor) -> float:
    return float(v.std()) / math.sqrt(v.numel())


def _tiny_model(seed=0, *, x_dim=6, z_dim=2, hidden=5, init_std=0.5, likelihood="bernoulli"):
    torch.manual_seed(seed)
    return V.VAE(x_dim, z_dim, hidden, likelihood=likelihood, init_std=init_std).double()


# --------------------------------------------------------------------------------------------
# Densities and the KL term
# --------------------------------------------------------------------------------------------

def test_gaussian_kl_matches_monte_carlo_and_torch():
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[-1.0, 0.7, 0.1], [0.0, 0.0, 0.0]], dtype=torch.float64)
    kl = V.gaussian_kl(mu, logvar)
    assert kl.shape == (2,) and kl[1].item() == 0.0  # q = p
    # Monte Carlo: KL = E_q[log q(z) - log p(z)], with its standard error
    n = 400_000
    eps = torch.randn(n, 2, 3, generator=g, dtype=torch.float64)
    z = V.reparameterize(mu, logvar, eps)
    samples = V.gaussian_log_density(z, mu, logvar) - V.standard_normal_log_density(z)
    mc, se = samples[:, 0].mean().item(), _se_of_mean(samples[:, 0])
    assert abs(kl[0].item() - mc) < 4 * se
    # and exactly torch.distributions' closed form
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(kl, torch.distributions.kl_divergence(q, p).sum(-1), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        V.gaussian_kl(mu, logvar[:, :2])


def test_log_densities_match_torch_distributions():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 4, generator=g, dtype=torch.float64)
    mean = torch.randn(5, 4, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 4, generator=g, dtype=torch.float64)
    ref = torch.distributions.Normal(mean, torch.exp(0.5 * logvar)).log_prob(x).sum(-1)
    torch.testing.assert_close(V.gaussian_log_density(x, mean, logvar), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(V.standard_normal_log_density(x),
                               torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(-1), rtol=1e-12, atol=1e-12)
    xb = (torch.rand(5, 4, generator=g) < 0.5).double()
    logits = torch.randn(3, 5, 4, generator=g, dtype=torch.float64) * 30  # saturated units too
    ref = torch.distributions.Bernoulli(logits=logits).log_prob(xb.expand_as(logits)).sum(-1)
    torch.testing.assert_close(V.bernoulli_log_likelihood(xb, logits), ref, rtol=1e-12, atol=1e-12)
    assert torch.isfinite(V.bernoulli_log_likelihood(xb, logits)).all()


@pytest.mark.parametrize("bad, found", [(1.5, r"\[0.5, 1.5\]"), (-0.25, r"\[-0.25, 0.5\]")])
def test_bernoulli_likelihood_rejects_images_outside_the_unit_interval(bad, found):
    x = torch.full((2, 3), 0.5)
    x[0, 0] = bad
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*got values in " + found):
        V.bernoulli_log_likelihood(x, torch.zeros(2, 3))
    model = V.VAE(3, 2, 4)
    with pytest.raises(ValueError, match="got values in"):
        model.elbo(x)
    with pytest.raises(ValueError, match="got values in"):
        V.binarize(x * 255, seed=0)
    nan = torch.full((1, 3), math.nan)
    with pytest.raises(ValueError, match="got values in"):
        V.bernoulli_log_likelihood(nan, torch.zeros(1, 3))


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

def test_model_shapes_init_and_bad_arguments():
    torch.manual_seed(0)
    m = V.VAE(784, 20, 500)
    w = torch.cat([p.flatten() for p in m.parameters()])
    assert w.numel() == (784 * 500 + 500 + 2 * (500 * 20 + 20)) + (20 * 500 + 500 + 500 * 784 + 784)
    assert abs(w.std().item() - 0.01) < 0.0005 and abs(w.mean().item()) < 0.0005  # N(0, 0.01^2), biases too
    assert (m.encoder.hidden.bias != 0).all()
    x = (torch.rand(7, 784) < 0.3).float()
    mu, logvar = m.encode(x)
    assert mu.shape == logvar.shape == (7, 20)
    assert m.decode(mu).shape == (7, 784)
    assert m.elbo(x, 3).shape == (7,) and m(x).shape == (7,)
    assert m.reconstruct(x).shape == (7, 784)
    for bad in (0, -2):
        with pytest.raises(ValueError, match=r"z_dim must be a positive int \(the latent size N_z\), got"):
            V.VAE(784, bad)
    with pytest.raises(ValueError, match="likelihood must be one of"):
        V.VAE(likelihood="poisson")
    with pytest.raises(ValueError, match="init_std"):
        V.VAE(init_std=0.0)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 784\), got \(7, 10\)"):
        m.elbo(x[:, :10])
    with pytest.raises(ValueError, match="samples must be a positive int"):
        m.elbo(x, 0)
    with pytest.raises(ValueError, match="eps must have shape"):
        m.elbo(x, eps=torch.zeros(1, 7, 3))
    for bad in (0, -1):
        with pytest.raises(ValueError, match=r"k must be a positive int \(the number of importance samples\), got"):
            m.log_likelihood_iw(x, bad)
        with pytest.raises(ValueError, match="k must be a positive int"):
            V.evaluate_log_likelihood_iw(m, x, k=bad)


def test_sample_never_calls_the_encoder():
    model = V.VAE(12, 3, 8)

    def forbidden(*args, **kwargs):
        raise AssertionError("sample() called the encoder")

    model.encoder.forward = forbidden
    g = torch.Generator().manual_seed(0)
    means = model.sample(5, generator=g)
    assert means.shape == (5, 12) and ((means > 0) & (means < 1)).all()
    draws = model.sample(4, generator=g, binary=True)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(AssertionError, match="called the encoder"):  # the patch is live
        model.reconstruct(torch.zeros(2, 12))
    with pytest.raises(ValueError, match="n must be a positive int"):
        model.sample(0)


def test_gaussian_decoder():
    m = _tiny_model(likelihood="gaussian", init_std=0.3)
    x = torch.rand(4, 6, dtype=torch.float64)
    mean, logvar = m.decode(torch.zeros(4, 2, dtype=torch.float64))
    assert ((mean > 0) & (mean < 1)).all()  # sigmoid means, as the paper's Frey Face decoder
    z = torch.randn(4, 2, dtype=torch.float64)
    mean, logvar = m.decode(z)
    torch.testing.assert_close(m.log_likelihood(x, z), V.gaussian_log_density(x, mean, logvar))
    assert torch.isfinite(m.elbo(x, 2)).all() and m.sample(3).shape == (3, 6)
    with pytest.raises(ValueError, match="needs the Bernoulli decoder"):
        m.sample(3, binary=True)


def test_reparameterized_gradient_matches_finite_differences_with_common_random_numbers():
    """d/dθ of the L-sample ELBO estimate with ε held fixed, by autograd and by central differences."""
    m = _tiny_model(3)
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(4, 6, generator=g) < 0.5).double()
    eps = torch.randn(5, 4, 2, generator=g, dtype=torch.float64)  # L = 5, fixed: common random numbers

    def objective():
        return m.elbo(x, eps=eps).mean()

    params = list(m.parameters())
    grads = torch.autograd.grad(objective(), params)
    h = 1e-6
    checked = 0
    with torch.no_grad():
        for p, gp in zip(params, grads):
            flat, gflat = p.view(-1), gp.view(-1)
            for i in range(0, flat.numel(), max(1, flat.numel() // 4)):
                old = flat[i].item()
                flat[i] = old + h
                up = objective().item()
                flat[i] = old - h
                down = objective().item()
                flat[i] = old
                assert (up - down) / (2 * h) == pytest.approx(gflat[i].item(), rel=1e-6, abs=1e-8)
                checked += 1
    assert checked > 20  # encoder parameters included: they reach the loss only through z = mu + sigma*eps


def test_score_function_and_reparameterized_estimators_are_unbiased_and_differ_in_variance():
    mu = torch.tensor([0.5, -1.0], dtype=torch.float64)
    log_sigma = torch.tensor([0.2, -0.5], dtype=torch.float64)
    target = torch.tensor([1.0, 1.0], dtype=torch.float64)
    f = lambda z: V.quadratic_objective(z, target)  # noqa: E731
    exact_mu, exact_ls = V.quadratic_objective_gradient(mu, log_sigma, target)
    n = 200_000
    sf = V.score_function_gradient(f, mu, log_sigma, n, generator=torch.Generator().manual_seed(0))
    rp = V.reparameterized_gradient(f, mu, log_sigma, n, generator=torch.Generator().manual_seed(1))
    for est in (sf, rp):
        for got, exact in zip(est, (exact_mu, exact_ls)):
            assert got.shape == (n, 2)
            se = got.std(0) / math.sqrt(n)
            assert ((got.mean(0) - exact).abs() < 4 * se).all()
    # the point of Sec. 2.4: the reparameterised estimator's variance is far lower here
    assert (rp[0].var(0) * 10 < sf[0].var(0)).all()
    assert (rp[1].var(0) * 10 < sf[1].var(0)).all()


# --------------------------------------------------------------------------------------------
# ELBO <= IW bound <= log p(x), exactly, in probabilistic PCA
# --------------------------------------------------------------------------------------------

def test_linear_gaussian_exact_quantities():
    lg = V.linear_gaussian_model(5, 2, noise_std=0.5, seed=0)
    g = torch.Generator().manual_seed(0)
    x = lg.sample(3, generator=g)
    ref = torch.distributions.MultivariateNormal(lg.bias, lg.marginal_cov()).log_prob(x)
    torch.testing.assert_close(lg.log_marginal(x), ref, rtol=1e-12, atol=1e-12)
    # Bayes: log p(z|x) = log p(x, z) - log p(x) for any z, with the exact posterior N(m, S)
    m, s = lg.posterior(x)
    z = torch.randn(3, 2, generator=g, dtype=torch.float64)
    post = torch.distributions.MultivariateNormal(m, s).log_prob(z)
    torch.testing.assert_close(post, lg.log_joint(x, z) - lg.log_marginal(x), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="noise_var"):
        V.LinearGaussianModel(lg.weight, lg.bias, 0.0)
    with pytest.raises(ValueError, match="expected x"):
        lg.elbo(x[0], m[0, :1], s)


def test_linear_gaussian_closed_form_elbo_matches_monte_carlo():
    lg = V.linear_gaussian_model(4, 3, noise_std=0.7, seed=1)
    g = torch.Generator().manual_seed(1)
    x = lg.sample(1, generator=g)[0]
    q_mean = torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    q_cov = a @ a.T / 3 + 0.2 * torch.eye(3, dtype=torch.float64)
    est = lg.iw_bound_estimates(x, q_mean, q_cov, 1, 200_000, generator=g)  # K = 1: the ELBO estimator
    assert abs(est.mean().item() - lg.elbo(x, q_mean, q_cov).item()) < 4 * _se_of_mean(est)


def test_elbo_le_iw_bound_le_log_marginal_and_the_gap_closes():
    lg = V.linear_gaussian_model(5, 2, noise_std=0.5, seed=2)
    g = torch.Generator().manual_seed(2)
    x = lg.sample(1, generator=g)[0]
    log_px = lg.log_marginal(x).item()
    m, s = lg.posterior(x)
    # q = the exact posterior: the ELBO is log p(x), and every importance weight is p(x)
    assert lg.elbo(x, m, s).item() == pytest.approx(log_px, abs=1e-10)
    torch.testing.assert_close(lg.iw_bound_estimates(x, m, s, 7, 5, generator=g),
                               torch.full((5,), log_px, dtype=torch.float64), rtol=0, atol=1e-10)
    # a poor q: ELBO < L_1 = ELBO < L_10 < L_100 < log p(x), each gap many standard errors wide
    qm, qs = m + torch.tensor([0.5, -0.4], dtype=torch.float64), 2.0 * s
    elbo = lg.elbo(x, qm, qs).item()
    bounds = {}
    for k in (1, 10, 100):
        est = lg.iw_bound_estimates(x, qm, qs, k, 4000, generator=g)
        bounds[k] = (est.mean().item(), _se_of_mean(est))
    assert abs(bounds[1][0] - elbo) < 4 * bounds[1][1]
    for lo, hi in ((1, 10), (10, 100)):
        (a, sa), (b, sb) = bounds[lo], bounds[hi]
        assert b - a > 5 * math.hypot(sa, sb), (lo, hi, bounds)
    assert elbo < bounds[10][0] - 5 * bounds[10][1]
    assert bounds[100][0] < log_px - 5 * bounds[100][1]
    # the gap log p(x) - ELBO = KL(q || posterior) shrinks to 0 as q moves to the posterior
    gaps = []
    for t in (0.0, 0.5, 0.9, 1.0):
        q_mean = qm + t * (m - qm)
        q_cov = qs + t * (s - qs)
        gaps.append(log_px - lg.elbo(x, q_mean, q_cov).item())
    assert all(a > b for a, b in zip(gaps, gaps[1:])) and gaps[-1] == pytest.approx(0.0, abs=1e-10)


# --------------------------------------------------------------------------------------------
# The importance-weighted estimate on the VAE
# --------------------------------------------------------------------------------------------

def test_iw_with_one_sample_is_the_single_sample_elbo_estimator():
    m = _tiny_model(4)
    x = (torch.rand(3, 6, generator=torch.Generator().manual_seed(4)) < 0.5).double()
    with torch.no_grad():
        # same noise: K = 1 is exactly the estimator with a Monte Carlo KL, log p(x, z) - log q(z|x)
        a = m.log_likelihood_iw(x, 1, generator=torch.Generator().manual_seed(7))
        b = m.elbo(x, 1, analytic_kl=False, generator=torch.Generator().manual_seed(7))
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        # in expectation it is the ELBO (here with the analytic KL, eq. 10)
        g = torch.Generator().manual_seed(8)
        n = 40_000
        reps = m.log_likelihood_iw(x.repeat(n, 1), 1, generator=g).view(n, 3)  # n independent K=1 estimates
        exact = m.elbo(x, 200_000, generator=g)
        se = reps.std(0) / math.sqrt(len(reps))
        assert ((reps.mean(0) - exact).abs() < 4 * se).all()


def test_iw_estimate_is_chunk_independent_in_distribution_and_bounded():
    m = _tiny_model(5)
    x = (torch.rand(3, 6, generator=torch.Generator().manual_seed(5)) < 0.5).double()
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        one = torch.stack([m.log_likelihood_iw(x, 50, chunk=50, generator=g) for _ in range(300)])
        many = torch.stack([m.log_likelihood_iw(x, 50, chunk=7, generator=g) for _ in range(300)])
        diff = one.mean(0) - many.mean(0)
        assert (diff.abs() < 4 * torch.sqrt(one.var(0) / 300 + many.var(0) / 300)).all()
        # with 6 binary pixels, log p(x) is a sum over 64 images' probabilities: each is < 0
        assert (one < 0).all()


def _prototype_images(n, *, x_dim=784, seed=0):
    """Grey-level images near one of four random prototypes: structure a tiny VAE can learn."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(4, x_dim, generator=g) * 0.9 + 0.05
    idx = torch.randint(0, 4, (n,), generator=g)
    noise = 0.05 * torch.randn(n, x_dim, generator=g)
    return (protos[idx] + noise).clamp(0.0, 255 / 256)


def _latent_images(n, *, x_dim=30, seed=0):
    """Grey levels from a 2-d latent through a non-linear map: a posterior with some width."""
    g = torch.Generator().manual_seed(seed)
    a = 2 * torch.randn(2, x_dim, generator=g)
    return torch.sigmoid(3 * torch.tanh(torch.randn(n, 2, generator=g) @ a))


def test_iw_estimate_exceeds_the_elbo_on_a_trained_model():
    torch.manual_seed(0)
    x_train = V.binarize(_latent_images(512), seed=0)
    model = V.VAE(30, 2, 16, init_std=None)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for step in range(300):
        idx = torch.randint(0, 512, (64,))
        loss = -model.elbo(x_train[idx]).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = x_train[:200]
    g = torch.Generator().manual_seed(1)
    elbo = V.evaluate_elbo(model, x, samples=100, generator=g)
    assert -elbo.mean().item() < first - 3  # it did learn
    iw = V.evaluate_log_likelihood_iw(model, x, k=100, generator=g, chunk=30)
    d = iw - elbo  # paired over images
    assert d.mean().item() > 4 * _se_of_mean(d), (elbo.mean(), iw.mean())


# --------------------------------------------------------------------------------------------
# Training pieces
# --------------------------------------------------------------------------------------------

def test_binarize_is_deterministic_given_seed_and_epoch():
    x = _prototype_images(200, x_dim=50)
    a, b, c = V.binarize(x, 3, 1), V.binarize(x, 3, 1), V.binarize(x, 3, 2)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, V.binarize(x, 4, 1))
    assert set(a.unique().tolist()) == {0.0, 1.0} and a.dtype == x.dtype
    # x_bin ~ Bernoulli(x): the mean over many draws is x
    draws = torch.stack([V.binarize(x[:5], 0, e) for e in range(2000)]).mean(0)
    assert (draws - x[:5]).abs().max() < 0.06


def test_weight_decay_is_the_gradient_of_the_parameter_prior():
    """make_optimizer's weight_decay = 1/N equals maximising ELBO + log p(θ)/N (Sec. 5)."""
    x = (torch.rand(8, 6, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    eps = torch.randn(1, 8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    n_train = 50
    for name in V.OPTIMIZERS:
        cfg = dataclasses.replace(V.Config.quick(), optimizer=name, lrs=(0.05,))
        a, b = _tiny_model(6), _tiny_model(6)
        opt_a = V.make_optimizer(cfg, a, 0.05, n_train)
        (-a.elbo(x, eps=eps).mean()).backward()
        opt_a.step()
        cls = torch.optim.Adagrad if name == "adagrad" else torch.optim.Adam
        opt_b = cls(b.parameters(), lr=0.05)
        (-(b.elbo(x, eps=eps).mean() + V.parameter_log_prior(b) / n_train)).backward()
        opt_b.step()
        for pa, pb in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(pa, pb, rtol=1e-9, atol=1e-12)


def test_curve_steps_are_log_spaced_and_end_at_the_last_step():
    cfg = V.Config.paper()
    steps = V.curve_steps(cfg, 1_000_000)
    samples = np.array(steps) * cfg.batch_size
    assert samples[0] == 100_000 and samples[-1] == 100_000_000 and list(steps) == sorted(set(steps))
    ratios = samples[1:] / samples[:-1]
    np.testing.assert_allclose(ratios, 10 ** 0.25, rtol=0.01)
    assert V.curve_steps(cfg, 500) == [500]  # shorter than curve_start: only the end


# --------------------------------------------------------------------------------------------
# Configs and the experiment
# --------------------------------------------------------------------------------------------

def test_paper_config_has_the_papers_settings():
    p = V.Config.paper()
    assert p.latents == (3, 5, 10, 20, 200) and p.hidden == 500 and p.batch_size == 100 and p.mc_samples == 1
    assert p.optimizer == "adagrad" and p.lrs == (0.01, 0.02, 0.1) and p.init_std == 0.01 and p.param_prior
    assert p.likelihood == "bernoulli" and p.train_limit is None and p.epochs * 50_000 == 10 ** 8
    assert p.iw_samples == 5000 and p.iw_images is None and p.elbo_samples >= 10
    c, q = V.Config.cpu(), V.Config.quick()
    assert c.epochs >= 100 and c.train_limit is None and c.headline_latent == 20 and 20 in c.latents
    assert c.iw_samples == 5000 and c.optimizer == "adam" and c.checkpoint
    assert c.latents == V.PAPER_LATENTS and c.iw_latents == (20,) and p.iw_latents is None
    assert q.headline_latent == 20 and not q.checkpoint and q.elbo_samples >= 10
    assert p.wake_sleep_latents == V.PAPER_LATENTS and c.wake_sleep_latents == (20,) and q.wake_sleep_latents == ()
    assert p.carry == c.carry == q.carry == ()


@pytest.mark.parametrize("field, value, message", [
    ("latents", (20, 0), "each latent size in latents must be a positive int, got 0"),
    ("latents", (), "latents must be a non-empty tuple"),
    ("headline_latent", 7, "headline_latent .7. must be one of latents"),
    ("iw_samples", 0, "iw_samples must be a positive int, got 0"),
    ("elbo_samples", 3, "elbo_samples must be >= 10"),
    ("optimizer", "sgd", "optimizer must be one of"),
    ("lrs", (0.01, -1.0), "lrs must be a non-empty tuple of step sizes > 0"),
    ("train_limit", 50, r"train_limit \(50\) must be at least batch_size \(100\)"),
    ("likelihood", "poisson", "likelihood must be one of"),
    ("iw_latents", (20, 7), "iw_latents must be None .all latent sizes. or a tuple of sizes from latents"),
    ("iw_latents", [20], "iw_latents must be None"),
    ("wake_sleep_latents", (20, 7), r"wake_sleep_latents must be a tuple of distinct sizes from latents"),
    ("wake_sleep_latents", [20], r"wake_sleep_latents must be a tuple"),
    ("wake_sleep_latents", (20, 20), r"wake_sleep_latents must be a tuple of distinct sizes"),
    ("carry", ("nz7",), r"each entry of carry must be 'nz<N>' with N one of latents"),
    ("carry", ("test_elbo.nz3",), r"each entry of carry must be 'nz<N>'"),
    ("carry", ("nz03",), r"each entry of carry must be 'nz<N>'"),
    ("carry", ("nz3", "nz3"), "carry must be a tuple of distinct prefixes"),
    ("carry", "nz3", "carry must be a tuple of distinct prefixes"),
])
def test_bad_configs_raise(field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(V.Config.paper(), **{field: value})


def _fake_data(n_train=300, n_test=120):
    return _prototype_images(n_train, seed=1), _prototype_images(n_test, seed=1)


def _tiny_config(**kw):
    base = dict(latents=(2, 20), hidden=16, batch_size=50, optimizer="adam", lrs=(3e-3,), init_std=None, epochs=2,
                iw_samples=20, iw_images=40, train_eval_images=100, curve_start=100, curve_images=60,
                checkpoint=False, threads=None)
    base.update(kw)
    return V.Config(**base)


def test_run_writes_a_valid_results_file(tmp_path, monkeypatch):
    data = _fake_data()
    monkeypatch.setattr(V, "load_data", lambda limit=None: (data[0][:limit], data[1]))
    models = {}
    out = V.run(_tiny_config(), scale="quick", results_dir=tmp_path, command="test", models=models)
    assert sorted(models) == [2, 20] and all(isinstance(m, V.VAE) for m in models.values())
    assert models[2].z_dim == 2 if hasattr(models[2], "z_dim") else True
    with pytest.raises(TypeError):
        V.run(_tiny_config(), scale="quick", write=False, models=[])
    back = results.read("vae", "quick", tmp_path)
    assert back["metrics"] == out["metrics"] and back["slug"] == "vae"
    m = back["metrics"]
    for name in ("test_elbo", "test_elbo_se", "test_log_likelihood_iw", "train_elbo", "compute_s"):
        assert name in m
    for nz in (2, 20):
        for name in ("test_elbo", "test_log_likelihood_iw", "train_elbo", "lr", "seconds", "train_seconds"):
            assert f"{name}.nz{nz}" in m
        assert 0 < m[f"train_seconds.nz{nz}"] < m[f"seconds.nz{nz}"]
        assert 0 <= m[f"active_units.nz{nz}"] <= nz and m[f"latent_kl_total.nz{nz}"] > 0
        kl_curve = back["curves"][f"latent_kl_per_dim.nz{nz}"]
        act_curve = back["curves"][f"latent_activity_per_dim.nz{nz}"]
        assert [p[0] for p in kl_curve] == [p[0] for p in act_curve] == list(range(1, nz + 1))
        kls = [p[1] for p in kl_curve]
        assert kls == sorted(kls, reverse=True) and sum(kls) == pytest.approx(m[f"latent_kl_total.nz{nz}"])
        assert m[f"active_units.nz{nz}"] == sum(p[1] > 0.01 for p in act_curve)
    assert not any("wake_sleep" in k for k in (*m, *back["curves"]))  # wake_sleep_latents=(): none
    assert m["train_s"] == pytest.approx(m["train_seconds.nz2"] + m["train_seconds.nz20"])
    assert m["compute_s"] == pytest.approx(m["seconds.nz2"] + m["seconds.nz20"])
    assert m["test_elbo"] == m["test_elbo.nz20"] and m["lr.nz20"] == 3e-3
    assert m["test_elbo"] < 0 and m["test_log_likelihood_iw"] < 0
    # 300 images / 50 = 6 steps an epoch, 2 epochs: points at 100, 200 (rounded 178), 300, 600 samples
    for nz in (2, 20):
        test_curve = back["curves"][f"test_elbo_vs_samples.nz{nz}"]
        train_curve = back["curves"][f"train_elbo_vs_samples.nz{nz}"]
        xs = [p[0] for p in test_curve]
        assert xs == [p[0] for p in train_curve] and xs == sorted(xs) and xs[-1] == 600
        assert xs[0] >= 100
    paper = back["paper"]["test_elbo"]
    assert paper["value"] is None and paper["status"] in results.PAPER_STATUSES and "Fig. 2" in paper["source"]
    assert back["provenance"]["seeds"] == [0] and back["provenance"]["config"]["latents"] == [2, 20]
    json.dumps(back)


def test_training_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERNOTES_CHECKPOINTS", str(tmp_path))
    x_train, x_test = _fake_data(200, 60)
    x_test_bin = V.binarize(x_test, V.TEST_BINARIZE_SEED)
    cfg = _tiny_config(latents=(3,), headline_latent=3, epochs=3, curve_start=60, checkpoint=True, batch_size=40)
    full = V.train_one(cfg, 3, x_train, x_test_bin, checkpoint=True)
    assert full["test_curve"][-1][0] == 600 and len(full["test_curve"]) >= 3
    V.checkpoint_path(cfg, 3).unlink()

    calls = {"n": 0}
    real = V._Trainer.train

    def dying(self, start, stop):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("killed")
        return real(self, start, stop)

    monkeypatch.setattr(V._Trainer, "train", dying)
    with pytest.raises(KeyboardInterrupt):
        V.train_one(cfg, 3, x_train, x_test_bin, checkpoint=True)
    assert V.checkpoint_path(cfg, 3).exists()
    with pytest.raises(ValueError, match="has not finished"):
        V.load_trained(cfg, 3)
    monkeypatch.setattr(V._Trainer, "train", real)
    resumed = V.train_one(cfg, 3, x_train, x_test_bin, checkpoint=True)
    assert resumed["test_curve"] == full["test_curve"] and resumed["train_curve"] == full["train_curve"]
    for a, b in zip(full["model"].parameters(), resumed["model"].parameters()):
        assert torch.equal(a, b)
    loaded = V.load_trained(cfg, 3, device="cpu")
    assert torch.equal(loaded.decoder.out.weight, full["model"].decoder.out.weight)


def test_learning_rate_selection_prefers_the_step_size_that_learns():
    x_train, _ = _fake_data(200, 10)
    cfg = _tiny_config(lrs=(1e-7, 1e-2), lr_trial_steps=12, batch_size=40)
    lr, scores = V.select_learning_rate(cfg, 2, x_train, device="cpu")
    assert lr == 1e-2 and set(scores) == {1e-7, 1e-2} and scores[1e-2] > scores[1e-7]
    assert V.select_learning_rate(_tiny_config(), 2, x_train, device="cpu") == (3e-3, {})


def test_paper_config_runs_a_few_steps(tmp_path, monkeypatch):
    """The paper-scale cell runs this same code: the paper config, two steps per latent size."""
    data = _fake_data(200, 50)
    monkeypatch.setattr(V, "load_data", lambda limit=None: (data[0][:limit], data[1]))
    cfg = dataclasses.replace(V.Config.paper(), epochs=1, train_limit=200, lr_trial_steps=2, iw_samples=3,
                              iw_images=5, train_eval_images=20, checkpoint=False)
    out = V.run(cfg, scale="paper", results_dir=tmp_path)
    m = out["metrics"]
    for nz in V.PAPER_LATENTS:
        assert m[f"lr.nz{nz}"] in V.PAPER_LRS and math.isfinite(m[f"test_elbo.nz{nz}"])
        assert out["curves"][f"test_elbo_vs_samples.nz{nz}"][-1][0] == 200
        assert m[f"lr_wake_sleep.nz{nz}"] in V.PAPER_LRS and math.isfinite(m[f"test_elbo_wake_sleep.nz{nz}"])
        assert out["curves"][f"test_elbo_vs_samples_wake_sleep.nz{nz}"][-1][0] == 200
    assert out["provenance"]["config"]["optimizer"] == "adagrad"
    assert (tmp_path / "paper" / "vae.json").is_file()


def test_main_prints_the_metrics(tmp_path, monkeypatch, capsys):
    data = _fake_data(100, 30)
    monkeypatch.setattr(V, "load_data", lambda limit=None: (data[0][:limit], data[1]))
    # with a wake-sleep model for N_z = 20 (as cpu()): --latents 2 must narrow it away
    monkeypatch.setattr(V.Config, "quick", classmethod(lambda cls: _tiny_config(epochs=1, wake_sleep_latents=(20,))))
    monkeypatch.setenv("PAPERNOTES_SCALE", "quick")
    monkeypatch.setenv("PAPERNOTES_RESULTS_OUT", str(tmp_path))
    assert V.main(["--latents", "20"]) == 0
    printed = capsys.readouterr().out
    assert "test_elbo.nz20" in printed and "test_elbo.nz2 " not in printed and "test_elbo_wake_sleep.nz20" in printed
    back = results.read("vae", "quick", tmp_path)
    assert back["provenance"]["command"] == "PAPERNOTES_SCALE=quick python -m papernotes_core.vae --latents 20"
    assert V.main(["--latents", "2", "--no-write"]) == 0  # headline falls back to the one latent size
    assert "test_elbo " in capsys.readouterr().out


def test_iw_latents_limits_the_iw_estimate_and_evaluations_are_cached(tmp_path, monkeypatch):
    """A gathering run reuses the evaluation that the training process cached beside the
    checkpoint; a changed checkpoint (different weights) or protocol is evaluated afresh."""
    monkeypatch.setenv("PAPERNOTES_CHECKPOINTS", str(tmp_path / "ck"))
    data = _fake_data(100, 30)
    monkeypatch.setattr(V, "load_data", lambda limit=None: (data[0][:limit], data[1]))
    cfg = _tiny_config(epochs=1, checkpoint=True, iw_latents=(20,))
    first = V.run(cfg, scale="quick", write=False)["metrics"]
    assert "test_log_likelihood_iw.nz20" in first and "test_log_likelihood_iw.nz2" not in first
    assert first["test_log_likelihood_iw"] == first["test_log_likelihood_iw.nz20"]
    calls = {"n": 0}
    real = V.evaluate_elbo

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(V, "evaluate_elbo", counting)
    again = V.run(cfg, scale="quick", write=False)["metrics"]
    assert calls["n"] == 0
    for name in first:
        if name.startswith(("test_", "train_elbo", "lr")):
            assert again[name] == first[name], name
    # another protocol (more IW samples): evaluated again, the cached training reused
    V.run(dataclasses.replace(cfg, iw_samples=30), scale="quick", write=False)
    assert calls["n"] == 4
    # a partial run keeps only the IW sizes it trains; the headline falls back
    narrowed = V.run(dataclasses.replace(cfg, latents=(2,), headline_latent=2, iw_latents=()), scale="quick",
                     write=False)["metrics"]
    assert "test_log_likelihood_iw" not in narrowed and narrowed["test_elbo"] == first["test_elbo.nz2"]


# --------------------------------------------------------------------------------------------
# Wake-sleep, latent usage, carry-over
# --------------------------------------------------------------------------------------------

def _grads(model, loss):
    names = [n for n, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    return {n: (torch.zeros(()) if g is None else g.abs().sum()) for n, g in zip(names, grads)}


@pytest.mark.parametrize("likelihood", V.LIKELIHOODS)
def test_wake_loss_trains_only_the_decoder_and_sleep_loss_only_the_encoder(likelihood):
    m = _tiny_model(3, likelihood=likelihood)
    x = (torch.rand(16, 6, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    wake, sleep = V.wake_sleep_losses(m, x, torch.Generator().manual_seed(1))
    assert wake.dim() == 0 and sleep.dim() == 0 and torch.isfinite(wake) and torch.isfinite(sleep)
    for name, g in _grads(m, wake).items():
        assert (g == 0) if name.startswith("encoder.") else (g > 0), ("wake", name)
    for name, g in _grads(m, sleep).items():
        assert (g == 0) if name.startswith("decoder.") else (g > 0), ("sleep", name)
    # the summed loss the trainer steps on: each parameter set gets exactly its own phase's gradient
    wake, sleep = V.wake_sleep_losses(m, x, torch.Generator().manual_seed(1))
    g_sum = torch.autograd.grad(wake + sleep, list(m.parameters()))
    wake, sleep = V.wake_sleep_losses(m, x, torch.Generator().manual_seed(1))
    g_w = torch.autograd.grad(wake, list(m.decoder.parameters()))
    g_s = torch.autograd.grad(sleep, list(m.encoder.parameters()))
    for a, b in zip(g_sum, [*g_s, *g_w]):  # named_parameters: encoder first, then decoder
        torch.testing.assert_close(a, b)


def test_wake_and_sleep_losses_match_independent_computations():
    m = _tiny_model(4, x_dim=6, z_dim=3)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(10, 6, generator=g) < 0.5).double()
    z_d = torch.randn(10, 3, generator=g, dtype=torch.float64)
    x_d = (torch.rand(10, 6, generator=g) < 0.5).double()
    eps = torch.randn(2, 10, 3, generator=g, dtype=torch.float64)
    wake, sleep = V.wake_sleep_losses(m, x, eps=eps, dreamed=(z_d, x_d))
    mu_d, logvar_d = m.encoder(x_d)
    ref = torch.distributions.Normal(mu_d, torch.exp(0.5 * logvar_d)).log_prob(z_d).sum(-1)
    torch.testing.assert_close(sleep, -ref.mean())
    mu, logvar = m.encoder(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    log_px = torch.distributions.Bernoulli(logits=m.decoder(z)).log_prob(x).sum(-1)
    log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(wake, -(log_px + log_pz).mean())
    with pytest.raises(ValueError, match="dreamed must be"):
        V.wake_sleep_losses(m, x, dreamed=(z_d[:, :2], x_d))


def test_dreams_are_draws_from_the_generative_model():
    m = _tiny_model(5, x_dim=4, z_dim=2)
    z, x = V.dream(m, 20_000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (20_000, 2) and x.shape == (20_000, 4) and set(x.unique().tolist()) <= {0.0, 1.0}
    assert not z.requires_grad and not x.requires_grad
    p = torch.sigmoid(m.decoder(z))
    # the pixels are Bernoulli(p(z)) given z: their residuals average to 0 within 4 standard errors
    resid = (x - p).detach()
    assert (resid.mean(0).abs() < 4 * (p * (1 - p)).detach().mean(0).sqrt() / math.sqrt(20_000)).all()
    assert abs(float(z.mean())) < 0.03 and abs(float(z.var()) - 1) < 0.03


def test_wake_sleep_training_raises_the_elbo_and_is_deterministic():
    x_train, x_test = _fake_data(300, 100)
    x_test_bin = V.binarize(x_test, V.TEST_BINARIZE_SEED)
    cfg = _tiny_config(latents=(5,), headline_latent=5, epochs=8, curve_start=600, curve_images=None)
    untrained = V._Trainer(cfg, 5, x_train, 3e-3, "cpu", "wake_sleep").model
    before = V.evaluate_elbo(untrained, x_test_bin, generator=torch.Generator().manual_seed(0))
    a = V.train_one(cfg, 5, x_train, x_test_bin, device="cpu", method="wake_sleep")
    b = V.train_one(cfg, 5, x_train, x_test_bin, device="cpu", method="wake_sleep")
    assert a["test_curve"] == b["test_curve"] and a["train_curve"] == b["train_curve"]
    for pa, pb in zip(a["model"].parameters(), b["model"].parameters()):
        assert torch.equal(pa, pb)
    after = V.evaluate_elbo(a["model"], x_test_bin, generator=torch.Generator().manual_seed(0))
    d = after - before  # paired over images
    assert d.mean() > 20 and d.mean() > 4 * _se_of_mean(d), (before.mean(), after.mean())
    assert a["test_curve"][-1][0] == 48 * 50 and a["train_curve"][-1][1] > a["train_curve"][0][1]
    # the same networks and initial weights as AEVB's model of that size
    aevb = V._Trainer(cfg, 5, x_train, 3e-3, "cpu").model
    for pa, pb in zip(untrained.parameters(), aevb.parameters()):
        assert torch.equal(pa, pb)


def test_bad_method_raises_naming_the_methods():
    x_train, x_test = _fake_data(100, 20)
    cfg = _tiny_config(latents=(2,), headline_latent=2, epochs=1)
    msg = r"method must be one of \('aevb', 'wake_sleep'\).*got 'sleep_wake'"
    with pytest.raises(ValueError, match=msg):
        V.train_one(cfg, 2, x_train, x_test, method="sleep_wake")
    with pytest.raises(ValueError, match=msg):
        V.checkpoint_path(cfg, 2, "sleep_wake")
    with pytest.raises(ValueError, match=msg):
        V._Trainer(cfg, 2, x_train, 1e-3, "cpu", "sleep_wake")
    assert V.checkpoint_path(cfg, 2, "wake_sleep") != V.checkpoint_path(cfg, 2)
    assert "wake_sleep" in V.checkpoint_path(cfg, 2, "wake_sleep").name


def test_latent_usage_finds_the_dimensions_the_encoder_ignores():
    torch.manual_seed(0)
    m = V.VAE(30, 5, 16, init_std=None).double()
    with torch.no_grad():  # dimensions 1 and 3: q(z_u|x) = N(0, 1) for every x
        for layer in (m.encoder.mean, m.encoder.logvar):
            layer.weight[[1, 3]] = 0.0
            layer.bias[[1, 3]] = 0.0
        m.encoder.mean.weight[[0, 2, 4]] *= 10  # the others vary clearly with x
    x = V.binarize(_latent_images(400), seed=0).double()
    usage = V.latent_usage(m, x, batch_size=64)
    kl, activity = usage["kl"], usage["activity"]
    assert kl.shape == activity.shape == (5,)
    assert kl[1] == 0 and kl[3] == 0 and activity[1] == 0 and activity[3] == 0
    assert (kl[[0, 2, 4]] > 0).all() and (activity[[0, 2, 4]] > 0.01).all()
    assert usage["active"] == 3 and V.latent_usage(m, x, threshold=1e9)["active"] == 0
    mu, logvar = m.encode(x)
    torch.testing.assert_close(kl.sum(), V.gaussian_kl(mu, logvar).mean().detach())
    torch.testing.assert_close(activity, mu.detach().var(0, correction=0))
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
        V.latent_usage(m, x, threshold=-1.0)


def test_carry_takes_the_aevb_numbers_and_still_trains_wake_sleep(tmp_path, monkeypatch):
    data = _fake_data(100, 30)
    monkeypatch.setattr(V, "load_data", lambda limit=None: (data[0][:limit], data[1]))
    cfg = _tiny_config(epochs=1, wake_sleep_latents=(20,))
    with pytest.raises(FileNotFoundError):  # nothing to carry from yet
        V.run(dataclasses.replace(cfg, carry=("nz2",)), scale="quick", results_dir=tmp_path)
    first = V.run(cfg, scale="quick", results_dir=tmp_path, command="first")
    fm = first["metrics"]
    for name in ("test_elbo_wake_sleep", "test_elbo_wake_sleep_se", "train_elbo_wake_sleep",
                 "train_seconds_wake_sleep", "active_units_wake_sleep"):
        assert f"{name}.nz20" in fm and f"{name}.nz2" not in fm
    assert "test_log_likelihood_iw_wake_sleep.nz20" not in fm
    assert fm["train_s"] == pytest.approx(sum(fm[f"{n}.nz{z}"] for n, z in
                                              [("train_seconds", 2), ("train_seconds", 20),
                                               ("train_seconds_wake_sleep", 20)]))
    for name in ("test_elbo_vs_samples_wake_sleep.nz20", "train_elbo_vs_samples_wake_sleep.nz20"):
        assert first["curves"][name][-1][0] == 100

    trained = []
    real = V.train_one

    def recording(config, nz, *args, method="aevb", **kwargs):
        trained.append((nz, method))
        return real(config, nz, *args, method=method, **kwargs)

    monkeypatch.setattr(V, "train_one", recording)
    models, ws_models = {}, {}
    again = V.run(dataclasses.replace(cfg, carry=("nz2", "nz20")), scale="quick", results_dir=tmp_path,
                  models=models, wake_sleep_models=ws_models)
    assert trained == [(20, "wake_sleep")] and models == {} and list(ws_models) == [20]
    m = again["metrics"]
    for name, value in fm.items():
        if "wake_sleep" not in name and name not in ("compute_s", "train_s"):
            assert m[name] == value, name  # carried (the headline from the carried nz20)
    assert m["test_elbo"] == fm["test_elbo.nz20"] and m["test_log_likelihood_iw"] == fm["test_log_likelihood_iw"]
    for name, points in first["curves"].items():
        if "wake_sleep" not in name:
            assert again["curves"][name] == points, name
    assert set(m) == set(fm) and set(again["curves"]) == set(first["curves"])
    record = again["provenance"]["carried_over"]
    assert record["prefixes"] == ["nz2", "nz20"] and "test_elbo.nz20" in record["metrics"]
    assert not any("wake_sleep" in k for k in (*record["metrics"], *record["curves"]))
    assert record["config"]["latents"] == [2, 20]
    assert results.read("vae", "quick", tmp_path)["provenance"]["carried_over"] == record

    # carrying only nz2: nz20's AEVB and wake-sleep models are trained, nz2's is not
    trained.clear()
    V.run(dataclasses.replace(cfg, carry=("nz2",)), scale="quick", results_dir=tmp_path, write=False)
    assert trained == [(20, "aevb"), (20, "wake_sleep")]
