import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from papernotes_core import elu as E
from papernotes_core import results

torch.set_default_dtype(torch.float32)


@settings(max_examples=60, deadline=None)
@given(alpha=st.floats(0.0, 5.0), seed=st.integers(0, 10_000))
def test_elu_matches_torch(alpha, seed):
    x = torch.randn(257, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 5
    torch.testing.assert_close(E.elu(x, alpha), torch.nn.functional.elu(x, alpha), rtol=1e-12, atol=1e-12)


def test_elu_formula_pointwise():
    x = torch.tensor([-3.0, -1e-8, 0.0, 1e-8, 2.0], dtype=torch.float64)
    expected = torch.tensor([0.5 * (math.exp(-3) - 1), 0.5 * math.expm1(-1e-8), 0.0, 1e-8, 2.0], dtype=torch.float64)
    torch.testing.assert_close(E.elu(x, 0.5), expected, rtol=1e-14, atol=0)
    # saturates to -alpha, never overflows for large inputs
    assert E.elu(torch.tensor([-1e4]), 2.0).item() == pytest.approx(-2.0)
    assert torch.isfinite(E.elu(torch.tensor([1e4]))).all()


@settings(max_examples=40, deadline=None)
@given(alpha=st.floats(0.01, 3.0), seed=st.integers(0, 10_000))
def test_elu_grad_matches_finite_differences_and_autograd(alpha, seed):
    x = torch.randn(64, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3
    x = x[x.abs() > 1e-3]  # away from the kink at 0, where the one-sided slopes are 1 and alpha
    h = 1e-6
    fd = (E.elu(x + h, alpha) - E.elu(x - h, alpha)) / (2 * h)
    torch.testing.assert_close(E.elu_grad(x, alpha), fd, rtol=1e-6, atol=1e-8)
    xr = x.clone().requires_grad_(True)
    E.elu(xr, alpha).sum().backward()
    torch.testing.assert_close(xr.grad, E.elu_grad(x, alpha), rtol=1e-12, atol=1e-12)
    # f'(x) = f(x) + alpha for x <= 0
    neg = x[x < 0]
    torch.testing.assert_close(E.elu_grad(neg, alpha), E.elu(neg, alpha) + alpha)


def test_gradcheck():
    x = torch.randn(20, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: E.elu(t, 1.3), (x,))


@pytest.mark.parametrize("bad", [-0.1, -1, float("nan"), float("inf")])
def test_negative_or_nonfinite_alpha_is_an_error(bad):
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        E.elu(torch.zeros(3), bad)
    with pytest.raises(ValueError):
        E.elu_grad(torch.zeros(3), bad)
    with pytest.raises(ValueError):
        E.ELU(bad)


def test_bad_types():
    with pytest.raises(TypeError):
        E.elu([1.0, 2.0])
    with pytest.raises(TypeError):
        E.elu(torch.zeros(2), "1")
    with pytest.raises(TypeError):
        E.elu_grad(np.zeros(2))


def test_module_matches_function_and_gradient():
    x = torch.randn(500, 7, dtype=torch.float64, requires_grad=True) * 3
    y = E.ELU(0.7)(x)
    torch.testing.assert_close(y, E.elu(x, 0.7), rtol=1e-12, atol=1e-12)
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, E.elu_grad(x.detach(), 0.7), rtol=1e-12, atol=1e-12)
    assert "alpha=0.7" in repr(E.ELU(0.7))
    with pytest.raises(ValueError):
        E.ELU(-1.0)


@pytest.mark.parametrize("act", ["elu", "relu", "lrelu"])
@pytest.mark.parametrize("m, s", [(0.0, 1.0), (0.5, 2.0), (-1.0, 0.5), (2.0, 1.0)])
def test_gaussian_mean_activation_matches_monte_carlo(act, m, s):
    g = torch.Generator().manual_seed(0)
    z = m + s * torch.randn(2_000_000, generator=g, dtype=torch.float64)
    f = {"elu": lambda t: E.elu(t, 1.0), "relu": torch.relu,
         "lrelu": lambda t: torch.nn.functional.leaky_relu(t, 0.1)}[act]
    mc = f(z)
    se = mc.std().item() / math.sqrt(len(z))
    assert abs(E.gaussian_mean_activation(act, m, s) - mc.mean().item()) < 5 * se


def test_gaussian_mean_activation_orders_elu_below_relu():
    # standard-normal pre-activations: ReLU 1/sqrt(2 pi), LReLU 0.9 of that, ELU much closer to 0
    relu = E.gaussian_mean_activation("relu", 0, 1)
    assert relu == pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-12)
    assert E.gaussian_mean_activation("lrelu", 0, 1) == pytest.approx(0.9 * relu, rel=1e-12)
    assert abs(E.gaussian_mean_activation("elu", 0, 1)) < 0.5 * relu
    with pytest.raises(ValueError):
        E.gaussian_mean_activation("tanh", 0, 1)
    with pytest.raises(ValueError):
        E.gaussian_mean_activation("elu", 0, 0)


def test_unit_fisher_is_the_second_moment_of_augmented_inputs():
    rng = np.random.default_rng(0)
    d = 4
    mu = rng.normal(size=d)
    a_ = rng.normal(size=(d, d))
    cov = a_ @ a_.T + np.eye(d)
    x = rng.multivariate_normal(mu, cov, size=400_000)
    xt = np.hstack([x, np.ones((len(x), 1))])
    empirical = xt.T @ xt / len(x)
    np.testing.assert_allclose(E.unit_fisher(mu, cov), empirical, atol=0.05)
    with pytest.raises(ValueError):
        E.unit_fisher(mu, cov[:2, :2])


@pytest.mark.parametrize("seed", range(5))
def test_natural_gradient_block_formula_equals_dense_solve(seed):
    rng = np.random.default_rng(seed)
    d = 6
    mu = rng.normal(size=d) * 2
    a_ = rng.normal(size=(d, d))
    cov = a_ @ a_.T + 0.5 * np.eye(d)
    gw, gb = rng.normal(size=d), rng.normal()
    dw, db = E.natural_gradient(gw, gb, mu, cov)
    dense = np.linalg.solve(E.unit_fisher(mu, cov), np.append(gw, gb))
    np.testing.assert_allclose(np.append(dw, db), dense, rtol=1e-10, atol=1e-10)
    # centred, whitened inputs: the natural gradient IS the plain gradient
    dw0, db0 = E.natural_gradient(gw, gb, np.zeros(d), np.eye(d))
    np.testing.assert_allclose(dw0, gw)
    assert db0 == pytest.approx(gb)
    with pytest.raises(ValueError):
        E.natural_gradient(gw[:3], gb, mu, cov)


def test_gradient_descent_needs_more_steps_as_the_mean_grows():
    steps = [E.gradient_descent_steps(m) for m in (0.0, 0.5, 1.0, 2.0)]
    assert steps == sorted(steps) and steps[0] < steps[-1] / 5
    # centred whitened inputs: F = I, one step of size 1 solves it exactly
    assert steps[0] == 1
    # the count matches the contraction factor (kappa-1)/(kappa+1) of the error's slowest mode
    eig = np.linalg.eigvalsh(E.unit_fisher(np.full(10, 2.0), np.eye(10)))
    rate = (eig[-1] - eig[0]) / (eig[-1] + eig[0])
    predicted = math.log(1e-6) / math.log(rate)
    assert abs(steps[-1] - predicted) / predicted < 0.2
    with pytest.raises(ValueError):
        E.gradient_descent_steps(1.0, dim=0)


def test_mlp_structure_and_init():
    torch.manual_seed(0)
    m = E.MLP("elu", depth=8, width=128)
    assert len(m.linears) == 8 and m.readout.out_features == 10
    w = m.linears[3].weight
    assert abs(w.var().item() - 2 / 128) < 0.2 * 2 / 128  # He init: variance 2/fan_in
    assert all((l.bias == 0).all() for l in m.linears)
    logits, hidden = m(torch.rand(5, 784), return_hidden=True)
    assert logits.shape == (5, 10) and len(hidden) == 8 and hidden[0].shape == (5, 128)
    assert (hidden[2] > -1).all()  # ELU alpha=1 is bounded below by -1
    bn = E.MLP("relu_bn", depth=2)
    assert isinstance(bn.norms[0], torch.nn.BatchNorm1d)
    with pytest.raises(ValueError, match="unknown activation"):
        E.MLP("swish")
    with pytest.raises(ValueError):
        E.MLP("elu", depth=0)


def test_evaluate_statistics_against_a_direct_computation():
    torch.manual_seed(0)
    m = E.MLP("relu", depth=3, width=16)
    x, y = torch.rand(300, 784), torch.randint(0, 10, (300,))
    stats = E.evaluate(m, x, y, batch_size=64)
    with torch.no_grad():
        logits, hidden = m(x, return_hidden=True)
    assert stats["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert stats["error"] == pytest.approx((logits.argmax(1) != y).float().mean().item())
    H = torch.stack(hidden)  # (layers, n, width)
    np.testing.assert_allclose(stats["layer_mean"], H.mean((1, 2)).numpy(), rtol=1e-5)
    assert stats["mean_abs"] == pytest.approx(H.abs().mean().item(), rel=1e-5)
    assert stats["median_unit_mean"] == pytest.approx(H.mean(1).flatten().median().item(), rel=1e-5)


def test_config_scales_and_validation():
    q, c, p = E.Config.quick(), E.Config.cpu(), E.Config.paper()
    assert p.epochs == 300 and p.lr == 0.01 and p.batch_size == 64 and p.depth == 8 and p.width == 128
    assert p.alpha == 1.0 and p.leak == 0.1
    assert len(c.seeds) >= 3 and len(q.seeds) == 1
    with pytest.raises(ValueError):
        E.Config(activations=("tanh",))
    with pytest.raises(ValueError):
        E.Config(alpha=-1.0)
    with pytest.raises(ValueError):
        E.Config(train_limit=10)


def _fake_splits(n=512):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 784, generator=g)
    y = (x[:, :392].sum(1) > x[:, 392:].sum(1)).long()  # a learnable rule
    return (x, y, x[:128], y[:128], x[:128], y[:128])


def test_train_one_learns_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERNOTES_CHECKPOINTS", str(tmp_path))
    cfg = E.Config(epochs=3, batch_size=32, track_limit=256, seeds=(0,), lr=0.05, depth=3, width=32)
    splits = _fake_splits()
    full = E.train_one(cfg, "mnist", "elu", 0, splits, checkpoint=True)
    h = full["history"]
    assert h["epoch"] == [0, 1, 2, 3]
    assert h["track_loss"][-1] < h["track_loss"][0]
    # a run stopped after 2 epochs and resumed gives the same history and final loss
    for f in tmp_path.rglob("*.pt"):
        f.unlink()
    short = E.Config(**{**cfg.__dict__, "epochs": 2})
    E.train_one(short, "mnist", "elu", 0, splits, checkpoint=True)
    [ck] = list(tmp_path.rglob("*.pt"))
    ck.rename(E._checkpoint_path(cfg, "mnist", "elu", 0))
    resumed = E.train_one(cfg, "mnist", "elu", 0, splits, checkpoint=True)
    assert resumed["history"] == h
    assert resumed["final"]["loss"] == full["final"]["loss"]


def test_run_writes_a_valid_results_file(tmp_path, monkeypatch):
    splits = _fake_splits()
    monkeypatch.setattr(E, "load_data", lambda name, limit=None: splits)
    cfg = E.Config(epochs=1, batch_size=64, track_limit=128, seeds=(0, 1), depth=2, width=16,
                   activations=("elu", "relu"), datasets=("mnist", "fashion_mnist"), checkpoint=False)
    out = E.run(cfg, scale="quick", results_dir=tmp_path)
    back = results.read("elu", "quick", tmp_path)
    assert back["metrics"] == out["metrics"]
    for key in ("train_loss.elu", "train_loss_sd.relu", "mean_abs_activation.elu", "median_unit_mean.relu",
                "test_error.elu", "fashion.train_loss.relu"):
        assert key in back["metrics"]
    assert back["metrics"]["train_loss_sd.elu"] > 0  # two seeds differ
    assert back["provenance"]["seeds"] == [0, 1]
    assert len(back["curves"]["mnist.track_loss.elu"]) == 2
    assert len(back["curves"]["fashion_mnist.layer_mean.relu"]) == 2


def test_paper_config_runs_a_step(tmp_path, monkeypatch):
    """The paper-scale cell runs the same code: one epoch of the paper config on 64 images."""
    import dataclasses

    splits = _fake_splits(n=256)
    cfg = dataclasses.replace(E.Config.paper(), epochs=1, train_limit=64, track_limit=64, seeds=(0,),
                              checkpoint=False, datasets=("mnist",), activations=("elu",))
    monkeypatch.setattr(E, "load_data", lambda name, limit=None: tuple(t[:limit] if i == 0 or i == 1 else t
                                                                       for i, t in enumerate(splits)))
    out = E.run(cfg, scale="paper", results_dir=tmp_path)
    assert out["provenance"]["config"]["lr"] == 0.01 and out["provenance"]["config"]["batch_size"] == 64
    assert math.isfinite(out["metrics"]["train_loss.elu"])


def test_early_loss_and_compute_time_are_reported(tmp_path, monkeypatch):
    splits = _fake_splits()
    monkeypatch.setattr(E, "load_data", lambda name, limit=None: splits)
    cfg = E.Config(epochs=2, batch_size=64, track_limit=128, seeds=(0,), depth=2, width=16, early_epoch=1,
                   activations=("elu",), datasets=("mnist",), checkpoint=False)
    out = E.run(cfg, scale="quick", results_dir=tmp_path, command="x")
    assert out["metrics"]["early_train_loss.elu"] == out["curves"]["mnist.track_loss.elu"][1][1]
    assert out["metrics"]["compute_s"] > 0 and out["provenance"]["command"] == "x"
    with pytest.raises(ValueError):
        E.Config(early_epoch=0)


def test_narrowed_study_reuses_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERNOTES_CHECKPOINTS", str(tmp_path))
    cfg = E.Config(epochs=1, batch_size=64, seeds=(0, 1), depth=2, width=16)
    narrow = E.Config(epochs=1, batch_size=64, seeds=(0,), depth=2, width=16, datasets=("mnist",))
    assert E._checkpoint_path(cfg, "mnist", "elu", 0) == E._checkpoint_path(narrow, "mnist", "elu", 0)
    assert E._checkpoint_path(cfg, "mnist", "elu", 0) != E._checkpoint_path(
        E.Config(epochs=2, batch_size=64, depth=2, width=16), "mnist", "elu", 0)


def test_main_cli(tmp_path, monkeypatch, capsys):
    splits = _fake_splits()
    monkeypatch.setattr(E, "load_data", lambda name, limit=None: splits)
    monkeypatch.setenv("PAPERNOTES_SCALE", "quick")
    monkeypatch.setenv("PAPERNOTES_RESULTS_OUT", str(tmp_path))
    assert E.main(["--datasets", "mnist", "--no-write"]) == 0
    assert not (tmp_path / "quick").exists()
    assert E.main(["--datasets", "mnist"]) == 0
    data = results.read("elu", "quick", tmp_path)
    assert data["provenance"]["config"]["datasets"] == ["mnist"]
    assert data["provenance"]["command"] == "PAPERNOTES_SCALE=quick python -m papernotes_core.elu --datasets mnist"
    assert "train_loss.elu" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        E.main(["--datasets", "cifar"])
