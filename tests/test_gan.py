"""Tests for papernotes_core.gan: the game's quantities against independent computations, the
1-D optimal discriminator, the networks, training (resume included) and the results file."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from papernotes_core import gan as G
from papernotes_core import results


def _normal_pdf(x, mu, s):
    return np.exp(-0.5 * ((x - mu) / s) ** 2) / (s * math.sqrt(2 * math.pi))


# ----------------------------------------------------------------------------------------------
# The game's quantities
# ----------------------------------------------------------------------------------------------

def test_value_function_and_losses_match_the_formulas_with_probabilities():
    torch.manual_seed(0)
    a_real, a_fake = torch.randn(50, dtype=torch.float64) * 3, torch.randn(40, dtype=torch.float64) * 3
    d_real, d_fake = torch.sigmoid(a_real), torch.sigmoid(a_fake)
    v = torch.log(d_real).mean() + torch.log(1 - d_fake).mean()
    torch.testing.assert_close(G.value_function(a_real, a_fake), v)
    torch.testing.assert_close(G.discriminator_loss(a_real, a_fake), -v)
    torch.testing.assert_close(G.generator_loss(a_fake, "saturating"), torch.log(1 - d_fake).mean())
    torch.testing.assert_close(G.generator_loss(a_fake, "non_saturating"), -torch.log(d_fake).mean())
    # exact where the probability form underflows: a logit of -800 (D = 0 in float64)
    far = torch.tensor([-800.0], dtype=torch.float64)
    assert G.generator_loss(far, "non_saturating").item() == pytest.approx(800.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        G.generator_loss(a_fake, "wasserstein")
    with pytest.raises(TypeError, match="logits"):
        G.value_function([0.1], a_fake)


def test_non_saturating_gradient_is_larger_where_the_discriminator_rejects_samples():
    d = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    sat = G.generator_logit_gradient(d, "saturating")
    ns = G.generator_logit_gradient(d, "non_saturating")
    torch.testing.assert_close(sat, -d)                 # d/da log(1 - sigmoid(a)) = -D
    torch.testing.assert_close(ns, -(1 - d))            # d/da [-log sigmoid(a)] = -(1 - D)
    low = d < 0.5
    assert bool((ns[low].abs() > sat[low].abs()).all())
    assert sat[0].abs().item() < 0.02 and ns[0].abs().item() > 0.98   # saturation at D(G(z)) = 0.01
    with pytest.raises(ValueError, match="strictly inside"):
        G.generator_logit_gradient(torch.tensor([0.0, 0.5]), "saturating")


def test_optimal_discriminator_and_theorem_1_on_a_grid():
    x = np.linspace(-12, 12, 48001)
    dx = float(x[1] - x[0])
    p, q = _normal_pdf(x, 0, 1), _normal_pdf(x, 1.5, 0.7)
    d = G.optimal_discriminator(p, q)
    np.testing.assert_allclose(d, p / (p + q))
    # V(D, G) at D* is the largest over perturbed discriminators (Prop. 1)
    def v(dd):
        return float(np.sum(p * np.log(dd) + q * np.log1p(-dd)) * dx)
    best = G.value_at_optimal_discriminator(p, q, dx)
    assert best == pytest.approx(v(np.clip(d, 1e-300, 1 - 1e-16)), abs=1e-9)
    for eps in (0.05, -0.05):
        assert v(np.clip(d + eps, 1e-6, 1 - 1e-6)) < best
    # Thm. 1 against an independent JSD: the entropy form H(m) - (H(p) + H(q)) / 2
    m = (p + q) / 2
    ent = lambda f: float(-np.sum(np.where(f > 0, f * np.log(np.where(f > 0, f, 1)), 0)) * dx)  # noqa: E731
    jsd = ent(m) - (ent(p) + ent(q)) / 2
    assert G.jensen_shannon(p, q, dx) == pytest.approx(jsd, abs=1e-9)
    assert best == pytest.approx(-math.log(4) + 2 * jsd, abs=1e-8)
    # the minimum: p_g = p_data gives D* = 1/2 and C(G) = -log 4
    np.testing.assert_allclose(G.optimal_discriminator(p, p), 0.5)
    assert G.value_at_optimal_discriminator(p, p, dx) == pytest.approx(-math.log(4), abs=1e-9)
    with pytest.raises(ValueError, match="same points"):
        G.optimal_discriminator(p, q[:-1])
    with pytest.raises(ValueError, match="not both 0"):
        G.optimal_discriminator([0.0], [0.0])
    with pytest.raises(ValueError, match="grid spacing"):
        G.jensen_shannon(p, q, 0)


def test_a_trained_discriminator_matches_the_optimal_one():
    """Bar: mean absolute error < 0.05 under (p_data + p_g) / 2."""
    def data(n, gen):
        return torch.randn(n, 1, generator=gen)

    def fake(n, gen):
        return 1.5 + 0.7 * torch.randn(n, 1, generator=gen)

    d = G.train_discriminator(data, fake, steps=1500, seed=0)
    gen = torch.Generator().manual_seed(123)
    xs = torch.cat([data(5000, gen), fake(5000, gen)])          # draws from the mixture
    with torch.no_grad():
        got = torch.sigmoid(d(xs))[:, 0].numpy()
    x = xs[:, 0].numpy()
    want = G.optimal_discriminator(_normal_pdf(x, 0, 1), _normal_pdf(x, 1.5, 0.7))
    assert np.abs(got - want).mean() < 0.05


def test_toy_gan_moves_the_generator_onto_the_data():
    def data(n, gen):
        return 2.0 + 0.5 * torch.randn(n, 1, generator=gen)

    out = G.train_toy_gan(data, steps=600, snapshots=(0, 600), seed=0)
    first, last = out["snapshots"][0], out["snapshots"][-1]
    grid = out["grid"]
    dx = grid[1] - grid[0]
    mean = lambda p: float(np.sum(grid * p) * dx / (np.sum(p) * dx))  # noqa: E731
    assert abs(mean(last["p_g"]) - 2.0) < abs(mean(first["p_g"]) - 2.0)
    assert abs(mean(last["p_g"]) - 2.0) < 0.4
    assert np.sum(last["p_g"]) * dx == pytest.approx(1.0, abs=0.02)     # a density
    assert last["d"].min() > 0 and last["d"].max() < 1
    with pytest.raises(ValueError, match="k must be a positive int"):
        G.train_toy_gan(data, k=0)


# ----------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------

def test_maxout_is_the_max_over_pieces():
    torch.manual_seed(0)
    m = G.Maxout(6, units=4, pieces=3)
    x = torch.randn(5, 6)
    lin = x @ m.linear.weight.T + m.linear.bias
    want = torch.stack([lin[:, 3 * u:3 * u + 3].max(1).values for u in range(4)], 1)
    torch.testing.assert_close(m(x), want)


def test_networks_follow_the_authors_configuration():
    x_train = torch.rand(200, 784) * 0.5
    cfg = G.Config.paper()
    g, d = G.build(cfg, x_train, device="cpu")
    assert [m.out_features for m in g.net if isinstance(m, torch.nn.Linear)] == [1200, 1200, 784]
    assert all(m.weight.abs().max() <= 0.05 for m in g.net if isinstance(m, torch.nn.Linear))
    # G starts at the mean image: its output bias is the logit of the mean pixel
    torch.testing.assert_close(torch.sigmoid(g.net[-1].bias), x_train.mean(0).clamp(1e-3, 1 - 1e-3))
    maxouts = [m for m in d.net if isinstance(m, G.Maxout)]
    assert [(m.units, m.pieces) for m in maxouts] == [(240, 5), (240, 5)]
    drops = [m.p for m in d.net if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.2, 0.5, 0.5]
    z = torch.randn(7, 100)
    out = g(z)
    assert out.shape == (7, 784) and bool(((out > 0) & (out < 1)).all())
    assert d.eval()(out).shape == (7,)
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 100\)"):
        g(torch.randn(7, 50))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 784\)"):
        d(torch.rand(3, 100))


def test_sample_is_reproducible_whatever_the_batch_size():
    g = G.Generator(z_dim=8, hidden=16, x_dim=784)
    a = G.sample(g, 25, noise=torch.Generator().manual_seed(1), batch_size=10)
    b = G.sample(g, 25, noise=torch.Generator().manual_seed(1))
    assert a.shape == (25, 784)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)   # the same noise; only rounding differs
    with pytest.raises(TypeError, match="gan.Generator"):
        G.sample(torch.nn.Linear(8, 784), 3)
    with pytest.raises(ValueError, match="n must be a positive int"):
        G.sample(g, 0)


def test_blur_and_class_histogram():
    flat = torch.full((2, 784), 0.5)
    blurred = G.blur(flat).reshape(2, 28, 28)
    torch.testing.assert_close(blurred[:, 1:-1, 1:-1], torch.full((2, 26, 26), 0.5))
    assert G.blur(torch.rand(3, 784)).shape == (3, 784)

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot((x[:, 0] * 10).long().clamp(0, 9), 10).float()

    x = torch.zeros(10, 784)
    x[:, 0] = torch.tensor([0.05, 0.05, 0.15, 0.95, 0.95, 0.95, 0.95, 0.55, 0.55, 0.55])
    h = G.class_histogram(Fixed(), x)
    np.testing.assert_allclose(h, [0.2, 0.1, 0, 0, 0, 0.3, 0, 0, 0, 0.4])


# ----------------------------------------------------------------------------------------------
# Configs, training, results
# ----------------------------------------------------------------------------------------------

def test_paper_config_has_the_authors_settings():
    p = G.Config.paper()
    assert (p.z_dim, p.g_hidden, p.d_units, p.d_pieces) == (100, 1200, 240, 5)
    assert (p.dropout_in, p.dropout_hidden, p.batch_size, p.k) == (0.2, 0.5, 100, 1)
    assert p.optimizer == "sgd" and p.lr == 0.1 and p.lr_decay == 1.000004 and p.min_lr == 1e-6
    assert (p.momentum, p.final_momentum, p.momentum_saturate) == (0.5, 0.7, 250)
    assert p.generator_loss == "non_saturating" and p.parzen_samples == 10_000 and p.parzen_test_images is None
    assert p.parzen_valid_images == 1000 and len(G.PAPER_SIGMAS) == 10
    assert G.PAPER_SIGMAS[0] == pytest.approx(0.1) and G.PAPER_SIGMAS[-1] == pytest.approx(1.0)
    c = G.Config.cpu()
    assert c.parzen_samples == 10_000 and c.parzen_test_images is None and c.train_limit is None


def test_sgd_schedule_follows_the_authors_decay_and_momentum():
    cfg = G.Config.paper()
    g, d = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    opts = G._optimizers(cfg, g, d)
    G._schedule(cfg, opts, step=100_000, epoch=125)
    group = opts[0].param_groups[0]
    assert group["lr"] == pytest.approx(0.1 / 1.000004 ** 100_000)
    assert group["momentum"] == pytest.approx(0.5 + 0.2 * 124 / 249)
    G._schedule(cfg, opts, step=10 ** 8, epoch=400)
    assert opts[1].param_groups[0]["lr"] == 1e-6 and opts[1].param_groups[0]["momentum"] == pytest.approx(0.7)


@pytest.mark.parametrize("field, value, message", [
    ("k", 0, "k must be a positive int"),
    ("generator_loss", "minimax", "generator_loss must be one of"),
    ("optimizer", "rmsprop", "optimizer must be one of"),
    ("lr", 0.0, "lr must be a number > 0"),
    ("momentum", 1.0, r"momentum must be in \[0, 1\)"),
    ("snapshot_epochs", (0, 999), "snapshot_epochs must be a tuple of epochs"),
    ("train_limit", 10, r"train_limit \(10\) must be at least batch_size"),
])
def test_bad_configs_raise(field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(G.Config.paper(), **{field: value})


def _fake_data(n=300):
    gen = torch.Generator().manual_seed(0)
    protos = torch.rand(10, 784, generator=gen).round()
    y = torch.arange(n) % 10
    x = (protos[y] * 0.8 + 0.1 * torch.rand(n, 784, generator=gen)).clamp(0, 0.99)
    return {"train": x, "y_train": y, "valid": x[:100].clone(), "test": x[100:200].clone(), "y_test": y[100:200]}


def _tiny(**kw):
    base = dict(z_dim=8, g_hidden=32, d_units=16, d_pieces=2, batch_size=50, optimizer="adam", lr=1e-3, epochs=2,
                snapshot_epochs=(0, 2), parzen_samples=100, parzen_valid_images=50, classifier_epochs=1,
                checkpoint=False)
    base.update(kw)
    return G.Config(**base)


def test_run_writes_a_valid_results_file_and_the_samples(tmp_path, monkeypatch):
    data = _fake_data()
    monkeypatch.setattr(G, "load_data", lambda limit=None: {k: (v[:limit] if k in ("train", "y_train") else v)
                                                            for k, v in data.items()})
    models = {}
    out = G.run(_tiny(), scale="quick", results_dir=tmp_path, command="test", models=models)
    back = results.read("gan", "quick", tmp_path)
    m = back["metrics"]
    for name in ("test_parzen_ll", "test_parzen_ll_se", "parzen_sigma", "train_set_parzen_ll",
                 "blurred_train_set_parzen_ll", "sample_class_entropy", "sample_class_min_fraction",
                 "classifier_test_accuracy", "final_d_real", "final_d_fake", "train_s", "compute_s"):
        assert name in m and math.isfinite(m[name]), name
    assert min(abs(m["parzen_sigma"] - s) for s in G.PAPER_SIGMAS) < 1e-12
    assert 0 <= m["sample_class_entropy"] <= math.log(10) + 1e-9 and 0 < m["train_s"] < m["compute_s"]
    assert [p[0] for p in back["curves"]["d_real"]] == [1, 2]
    assert sum(v for _, v in back["curves"]["sample_class_histogram"]) == pytest.approx(1.0)
    assert back["paper"]["test_parzen_ll"]["value"] == 225.0 and back["paper"]["test_parzen_ll_se"]["value"] == 2.0
    snaps = G.read_snapshots("quick", tmp_path)
    assert sorted(snaps) == [0, 2] and snaps[2].shape == (36, 28, 28) and snaps[2].dtype == np.uint8
    assert set(models) >= {"G", "D", "classifier", "samples"} and models["samples"].shape == (100, 784)
    assert out["metrics"] == m
    json.dumps(back)
    with pytest.raises(TypeError, match="models must be a dict"):
        G.run(_tiny(), scale="quick", write=False, models=[])


def test_training_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERNOTES_CHECKPOINTS", str(tmp_path))
    data = _fake_data(200)
    cfg = _tiny(epochs=3, snapshot_epochs=(1, 3), checkpoint=True)
    full = G.train(cfg, data["train"], data["valid"], device="cpu", checkpoint=True, progress=False)
    G.checkpoint_path(cfg).unlink()
    real = G.discriminator_loss
    calls = {"n": 0}

    def dying(*args):
        calls["n"] += 1
        if calls["n"] == 2 * 4 + 2:   # 4 discriminator steps per epoch: dies during epoch 3
            raise KeyboardInterrupt("killed")
        return real(*args)

    monkeypatch.setattr(G, "discriminator_loss", dying)
    with pytest.raises(KeyboardInterrupt):
        G.train(cfg, data["train"], data["valid"], device="cpu", checkpoint=True, progress=False)
    assert torch.load(G.checkpoint_path(cfg), weights_only=True)["epoch"] == 2
    monkeypatch.setattr(G, "discriminator_loss", real)
    resumed = G.train(cfg, data["train"], data["valid"], device="cpu", checkpoint=True, progress=False)
    assert resumed["curves"] == full["curves"]
    for a, b in zip(full["G"].parameters(), resumed["G"].parameters()):
        assert torch.equal(a, b)
    assert all(np.array_equal(full["snapshots"][e], resumed["snapshots"][e]) for e in (1, 3))


def test_k_discriminator_steps_per_generator_step(monkeypatch):
    data = _fake_data(200)
    counts = {"d": 0, "g": 0}
    real_d, real_g = G.discriminator_loss, G.generator_loss
    monkeypatch.setattr(G, "discriminator_loss", lambda *a: counts.__setitem__("d", counts["d"] + 1) or real_d(*a))
    monkeypatch.setattr(G, "generator_loss", lambda *a: counts.__setitem__("g", counts["g"] + 1) or real_g(*a))
    G.train(_tiny(epochs=1, k=2, update="alternating", snapshot_epochs=()), data["train"], data["valid"],
            device="cpu", progress=False)
    assert counts == {"d": 4, "g": 2}    # 200 images / 50 = 4 discriminator steps, 2 generator steps


def test_paper_config_runs_a_step(tmp_path, monkeypatch):
    """The paper-scale cell runs this same code: the paper config for one short epoch."""
    data = _fake_data(200)
    monkeypatch.setattr(G, "load_data", lambda limit=None: {k: (v[:limit] if k in ("train", "y_train") else v)
                                                            for k, v in data.items()})
    cfg = dataclasses.replace(G.Config.paper(), epochs=1, train_limit=200, snapshot_epochs=(1,), parzen_samples=50,
                              parzen_valid_images=20, classifier_epochs=1, checkpoint=False)
    out = G.run(cfg, scale="paper", results_dir=tmp_path)
    assert math.isfinite(out["metrics"]["test_parzen_ll"]) and out["provenance"]["config"]["optimizer"] == "sgd"
    assert (tmp_path / "paper" / "gan.json").is_file() and (tmp_path / "paper" / "gan_samples.npz").is_file()


def test_main_prints_the_metrics(tmp_path, monkeypatch, capsys):
    data = _fake_data(200)
    monkeypatch.setattr(G, "load_data", lambda limit=None: data)
    monkeypatch.setattr(G.Config, "quick", classmethod(lambda cls: _tiny(epochs=1, snapshot_epochs=())))
    monkeypatch.setenv("PAPERNOTES_SCALE", "quick")
    monkeypatch.setenv("PAPERNOTES_RESULTS_OUT", str(tmp_path))
    assert G.main([]) == 0
    assert "test_parzen_ll" in capsys.readouterr().out
    assert results.read("gan", "quick", tmp_path)["provenance"]["command"] == "PAPERNOTES_SCALE=quick python -m papernotes_core.gan"


def test_simultaneous_step_is_the_authors_update():
    """Both players' gradients at the same parameters, from one batch of samples: D's from half the
    cross-entropy, G's from -log D(G(z)); checked against gradients computed independently."""
    torch.manual_seed(0)
    g = G.Generator(z_dim=4, hidden=8, x_dim=6)
    d = G.Discriminator(x_dim=6, units=5, pieces=2, dropout_in=0.0, dropout_hidden=0.0, irange=0.5)
    x, z = torch.rand(7, 6), torch.randn(7, 4)
    g0, d0 = [p.detach().clone() for p in g.parameters()], [p.detach().clone() for p in d.parameters()]

    # independent reference: D's gradient of 0.5 * mean BCE, G's of mean -log sigmoid(a_fake)
    gr, dr = G.Generator(z_dim=4, hidden=8, x_dim=6), G.Discriminator(x_dim=6, units=5, pieces=2, dropout_in=0.0,
                                                                       dropout_hidden=0.0)
    gr.load_state_dict(g.state_dict()), dr.load_state_dict(d.state_dict())
    fake = gr(z)
    bce = F.binary_cross_entropy_with_logits
    a_real, a_fake_detached = dr(x), dr(fake.detach())
    ld = 0.5 * (bce(a_real, torch.ones(7)) + bce(a_fake_detached, torch.zeros(7)))
    want_d = torch.autograd.grad(ld, list(dr.parameters()))
    lg = bce(dr(fake), torch.ones(7))
    want_g = torch.autograd.grad(lg, list(gr.parameters()))

    opt_g, opt_d = torch.optim.SGD(g.parameters(), lr=1.0), torch.optim.SGD(d.parameters(), lr=1.0)
    loss_d, loss_g = G.simultaneous_step(g, d, x, z, opt_g, opt_d)
    assert loss_d == pytest.approx(float(ld.detach()), rel=1e-6) and loss_g == pytest.approx(float(lg.detach()), rel=1e-6)
    for p, p0, w in zip(d.parameters(), d0, want_d):
        torch.testing.assert_close(p0 - p.detach(), w, rtol=1e-5, atol=1e-6)
    for p, p0, w in zip(g.parameters(), g0, want_g):
        torch.testing.assert_close(p0 - p.detach(), w, rtol=1e-5, atol=1e-6)


def test_draw_noise_uniform_and_gaussian():
    gen = torch.Generator().manual_seed(0)
    u = G.draw_noise("uniform", 20_000, 5, generator=gen)
    assert u.shape == (20_000, 5) and u.abs().max() <= math.sqrt(3) + 1e-6
    assert abs(float(u.mean())) < 0.02 and abs(float(u.var()) - 1) < 0.03 and float(u.abs().max()) > 1.7
    n = G.draw_noise("gaussian", 20_000, 5, generator=gen)
    assert abs(float(n.var()) - 1) < 0.03 and float(n.abs().max()) > 3
    again = G.draw_noise("uniform", 20_000, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(u, again)
    with pytest.raises(ValueError, match="noise must be one of"):
        G.draw_noise("normal", 3, 2)


def test_config_update_and_noise_are_checked():
    assert G.Config().update == "simultaneous" and G.Config().noise == "uniform"
    assert G.Config.paper().update == "simultaneous" and G.Config.cpu().update == "simultaneous"
    with pytest.raises(ValueError, match="update must be one of"):
        G.Config(update="both")
    with pytest.raises(ValueError, match="must be 1 with update='simultaneous'"):
        G.Config(k=2)
    with pytest.raises(ValueError, match="noise must be one of"):
        G.Config(noise="normal")
    G.Config(k=2, update="alternating")


def test_simultaneous_training_counts_one_loss_of_each_per_step(monkeypatch):
    data = _fake_data(200)
    counts = {"d": 0, "g": 0}
    real_d, real_g = G.discriminator_loss, G.generator_loss
    monkeypatch.setattr(G, "discriminator_loss", lambda *a: counts.__setitem__("d", counts["d"] + 1) or real_d(*a))
    monkeypatch.setattr(G, "generator_loss", lambda *a: counts.__setitem__("g", counts["g"] + 1) or real_g(*a))
    out = G.train(_tiny(epochs=1, snapshot_epochs=()), data["train"], data["valid"], device="cpu", progress=False)
    assert counts == {"d": 4, "g": 4}
    assert out["curves"]["loss_d"][0][1] > 0
