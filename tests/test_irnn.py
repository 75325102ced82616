"""Tests for papernotes_core.irnn: the initialisations, the gradient-against-lag measurement,
clipping, training on the shared tasks and the results file."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from papernotes_core import irnn as I
from papernotes_core import results, tasks, training


pytestmark = pytest.mark.usefixtures("one_thread")


def test_irnn_starts_with_the_identity_and_zero_biases():
    torch.manual_seed(0)
    m = I.RecurrentNet("irnn", 2, 20, 1)
    assert torch.equal(m.rnn.weight_hh_l0, torch.eye(20))
    assert torch.equal(m.rnn.bias_hh_l0, torch.zeros(20)) and torch.equal(m.rnn.bias_ih_l0, torch.zeros(20))
    assert 0.0005 < float(m.rnn.weight_ih_l0.detach().std()) < 0.002        # N(0, 0.001^2)
    scaled = I.RecurrentNet("irnn", 2, 20, 1, identity_scale=0.5)
    assert torch.equal(scaled.rnn.weight_hh_l0, 0.5 * torch.eye(20))
    assert scaled.rnn.nonlinearity == "relu" and I.RecurrentNet("tanh", 2, 20, 1).rnn.nonlinearity == "tanh"


def test_identity_recurrence_carries_a_state_unchanged():
    """With W = I, zero biases and no input after the first step, a non-negative state is copied
    exactly for any number of steps: h_t = relu(h_{t-1}) = h_{t-1}."""
    m = I.RecurrentNet("irnn", 1, 5, 1)
    with torch.no_grad():
        m.rnn.weight_ih_l0.copy_(torch.arange(1.0, 6.0)[:, None])
    x = torch.zeros(1, 500, 1)
    x[0, 0, 0] = 1.0
    states, _ = m.rnn(x)
    torch.testing.assert_close(states[0, -1], torch.arange(1.0, 6.0))


def test_lstm_forget_gate_bias():
    m = I.RecurrentNet("lstm", 2, 8, 1, forget_bias=1.0)
    b = m.rnn.bias_ih_l0 + m.rnn.bias_hh_l0
    torch.testing.assert_close(b[8:16], torch.ones(8))


def test_input_gradient_norms_match_finite_differences():
    torch.manual_seed(0)
    m = I.RecurrentNet("tanh", 2, 6, 1).double()
    x = torch.randn(3, 12, 2, dtype=torch.float64)
    g = I.input_gradient_norms(m, x)
    assert g.shape == (12,)
    # finite differences of the summed output with respect to each input entry
    eps, fd = 1e-6, torch.zeros(3, 12, 2, dtype=torch.float64)
    with torch.no_grad():
        for b in range(3):
            for t in range(12):
                for k in range(2):
                    xp, xm = x.clone(), x.clone()
                    xp[b, t, k] += eps
                    xm[b, t, k] -= eps
                    fd[b, t, k] = (m(xp).sum() - m(xm).sum()) / (2 * eps)
    np.testing.assert_allclose(g, fd.norm(dim=2).mean(0).numpy(), rtol=1e-6, atol=1e-9)


def test_gradients_vanish_with_lag_for_a_small_tanh_rnn_but_not_for_the_irnn():
    torch.manual_seed(0)
    x, _ = tasks.adding_problem(16, 100, generator=torch.Generator().manual_seed(0))
    tanh = I.RecurrentNet("tanh", 2, 50, 1)
    with torch.no_grad():
        tanh.rnn.weight_hh_l0.mul_(0.5)
    g_tanh = I.input_gradient_norms(tanh, x)
    g_irnn = I.input_gradient_norms(I.RecurrentNet("irnn", 2, 50, 1), x)
    assert g_tanh[0] / g_tanh[-1] < 1e-6                    # lag 99 against lag 0
    assert 0.2 < g_irnn[0] / g_irnn[-1] < 5                   # the identity carries it


def test_training_clips_and_learns_the_adding_problem_at_a_short_length():
    torch.manual_seed(0)
    m = I.RecurrentNet("lstm", 2, 32, 1)
    gen = torch.Generator().manual_seed(0)
    x_test, y_test = tasks.adding_problem(500, 10, generator=torch.Generator().manual_seed(1))
    before = I.evaluate_adding(m, x_test, y_test)
    out = I.train(m, lambda s: tasks.adding_problem(50, 10, generator=gen), torch.nn.functional.mse_loss,
                  steps=400, optimizer="adam", lr=1e-2, clip=1.0, evaluate=lambda mm: I.evaluate_adding(mm, x_test, y_test),
                  eval_every=200, progress=False)
    assert [p[0] for p in out["curve"]] == [200, 400]
    assert out["final"] < 0.02 < before and 0 <= out["clipped"] <= 1
    # the mean predictor: about 1/6
    assert abs(float(((y_test - 1.0) ** 2).mean()) - tasks.ADDING_BASELINE_MSE) < 0.03


def test_clipping_bounds_the_update():
    m = I.RecurrentNet("tanh", 1, 4, 1)
    w0 = [p.detach().clone() for p in m.parameters()]
    huge = lambda s: (torch.full((2, 3, 1), 1e3), torch.full((2, 1), 1e6))   # noqa: E731
    out = I.train(m, huge, torch.nn.functional.mse_loss, steps=1, optimizer="sgd", lr=0.1, clip=1.0, progress=False)
    step = torch.cat([(p.detach() - w).reshape(-1) for p, w in zip(m.parameters(), w0)])
    assert out["clipped"] == 1.0 and float(step.norm()) == pytest.approx(0.1, rel=1e-4)


def test_bad_input():
    with pytest.raises(ValueError, match="hidden_size must be a positive int, got 0"):
        I.RecurrentNet("irnn", 2, 0, 1)
    with pytest.raises(ValueError, match="kind must be one of"):
        I.RecurrentNet("gru", 2, 4, 1)
    with pytest.raises(ValueError, match="T >= 1"):
        I.RecurrentNet("irnn", 2, 4, 1)(torch.zeros(3, 0, 2))
    with pytest.raises(ValueError, match="optimizer must be one of"):
        dataclasses.replace(I.Config.quick(), optimizer="lbfgs")
    with pytest.raises(ValueError, match="each adding_T must be an int >= 2"):
        dataclasses.replace(I.Config.quick(), adding_T=(0,))
    with pytest.raises(ValueError, match="pixel_variants must be a tuple"):
        dataclasses.replace(I.Config.quick(), pixel_variants=("shuffled",))
    with pytest.raises(ValueError, match="pixel_size must divide 28"):
        dataclasses.replace(I.Config.quick(), pixel_size=5)


def test_run_writes_a_valid_results_file(tmp_path, monkeypatch):
    def fake_pixel(split="train", *, permutation=None, limit=None):
        gen = torch.Generator().manual_seed(0 if split == "train" else 1)
        y = torch.arange(200) % 10
        x = (y[:, None].float() / 10 + 0.05 * torch.rand(200, 784, generator=gen))
        return tasks.as_sequences(x[:limit] if limit else x), (y[:limit] if limit else y)

    monkeypatch.setattr(tasks, "pixel_mnist", fake_pixel)
    cfg = dataclasses.replace(I.Config.quick(), hidden=8, adding_T=(8,), adding_steps=20, pixel_steps=10,
                              pixel_batch=20, pixel_size=4, pixel_variants=("plain", "permuted"), pixel_test_images=100,
                              test_sequences=50, eval_every=10, grad_T=12)
    models = {}
    out = I.run(cfg, scale="quick", results_dir=tmp_path, command="test", models=models)
    back = results.read("irnn", "quick", tmp_path)
    m = back["metrics"]
    for kind in I.KINDS:
        assert math.isfinite(m[f"adding_t8_test_mse.{kind}"]) and 0 <= m[f"pixel_mnist_test_acc.{kind}"] <= 1
        assert 0 <= m[f"permuted_pixel_mnist_test_acc.{kind}"] <= 1
        assert len(back["curves"][f"grad_vs_lag.{kind}.init"]) == 12
        assert [p[0] for p in back["curves"][f"adding_t8_test_mse_vs_step.{kind}"]] == [10, 20]
    assert m["adding_t8_test_mse"] == m["adding_t8_test_mse.irnn"] and m["adding_baseline_mse"] == pytest.approx(1 / 6)
    assert back["curves"]["grad_vs_lag.irnn.init"][0][0] == 11      # lags run from T - 1 down to 0
    assert set(models) >= {"adding_t8.irnn", "pixel_mnist.lstm"} and out["metrics"] == m
    json.dumps(back)


def test_paper_config_runs_a_step(tmp_path):
    cfg = dataclasses.replace(I.Config.paper(), adding_T=(150,), adding_steps=1, pixel_steps=0, test_sequences=20,
                              eval_every=1, grad_T=20)
    out = I.run(cfg, scale="paper", write=False)
    assert math.isfinite(out["metrics"]["adding_t150_test_mse"]) and out["provenance"]["config"]["optimizer"] == "sgd"


def test_a_study_split_over_processes_is_gathered_from_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PAPERNOTES_CHECKPOINTS", str(tmp_path / "ck"))
    monkeypatch.setenv("PAPERNOTES_RESULTS_OUT", str(tmp_path / "res"))
    monkeypatch.setenv("PAPERNOTES_SCALE", "quick")

    def fake_pixel(split="train", *, permutation=None, limit=None):
        y = torch.arange(100) % 10
        x = y[:, None].float() / 10 + 0.05 * torch.rand(100, 784, generator=torch.Generator().manual_seed(0))
        return tasks.as_sequences(x[:limit] if limit else x), (y[:limit] if limit else y)

    monkeypatch.setattr(tasks, "pixel_mnist", fake_pixel)
    small = dataclasses.replace(I.Config.quick(), hidden=6, adding_T=(8, 5), adding_steps=6, pixel_steps=4,
                                pixel_batch=20, pixel_size=4, pixel_test_images=50, test_sequences=20, eval_every=3,
                                grad_T=10, cache=True)
    monkeypatch.setattr(I.Config, "quick", classmethod(lambda cls: small))
    assert I.main(["--tasks", "adding", "--no-write"]) == 0
    assert I.main(["--tasks", "pixel", "--no-write"]) == 0
    calls = {"n": 0}
    real = I.train
    monkeypatch.setattr(I, "train", lambda *a, **k: calls.__setitem__("n", calls["n"] + 1) or real(*a, **k))
    assert I.main([]) == 0                     # gathers: nothing is trained again
    assert calls["n"] == 0
    m = results.read("irnn", "quick", tmp_path / "res")["metrics"]
    assert {"adding_t8_test_mse.lstm", "adding_t5_test_mse.irnn", "pixel_mnist_test_acc.tanh"} <= set(m)
    assert m["compute_s"] == pytest.approx(sum(v for k, v in m.items() if k.startswith("seconds.")))
    c = results.read("irnn", "quick", tmp_path / "res")["curves"]
    assert "grad_vs_lag.irnn.trained" in c and len(c["grad_vs_lag.irnn.trained"]) == 10
    with pytest.raises(ValueError, match="--tasks takes"):
        I.main(["--tasks", "copying"])


def test_seeds_and_ablations_at_the_headline_length(tmp_path, monkeypatch):
    """Every model once per seed at adding_T[0] (mean, sd and each seed reported), the IRNN also with
    the paper's SGD and without clipping; the other length once; carry takes a task from a file."""
    monkeypatch.setenv("PAPERNOTES_CHECKPOINTS", str(tmp_path / "ck"))
    cfg = dataclasses.replace(I.Config.quick(), hidden=6, adding_T=(8, 5), adding_steps=6, pixel_steps=0,
                              test_sequences=20, eval_every=3, grad_T=10, seeds=(0, 1, 2),
                              ablations=("sgd", "no_clip"), cache=True)
    out = I.run(cfg, scale="cpu", results_dir=tmp_path / "res", command="test")
    m = out["metrics"]
    assert out["provenance"]["seeds"] == [0, 1, 2]
    for kind in I.KINDS:
        per = [m[f"adding_t8_test_mse.{kind}.seed{s}"] for s in (0, 1, 2)]
        assert m[f"adding_t8_test_mse.{kind}"] == pytest.approx(np.mean(per))
        assert m[f"adding_t8_test_mse_sd.{kind}"] == pytest.approx(np.std(per, ddof=1))
        assert m[f"adding_t8_seeds.{kind}"] == 3 and f"adding_t5_test_mse.{kind}.seed1" not in m
        assert m[f"adding_t5_seeds.{kind}"] == 1 and m[f"adding_t5_test_mse_sd.{kind}"] == 0
    for suffix in ("_sgd", "_noclip"):
        per = [m[f"adding_t8_test_mse{suffix}.irnn.seed{s}"] for s in (0, 1, 2)]
        assert m[f"adding_t8_test_mse{suffix}.irnn"] == pytest.approx(np.mean(per))
        assert f"adding_t8_test_mse{suffix}_sd.irnn" in m and f"adding_t8_test_mse{suffix}.lstm" not in m
    assert m["adding_t8_clipped_fraction_noclip.irnn"] == 0
    # the SGD runs differ from the Adam ones (another optimizer), seed by seed
    assert m["adding_t8_test_mse_sgd.irnn.seed0"] != m["adding_t8_test_mse.irnn.seed0"]
    assert out["provenance"]["config"]["sgd_lr"] == 1e-2
    c = out["curves"]
    assert "adding_t8_test_mse_vs_step.irnn" in c and "adding_t8_test_mse_vs_step.irnn.seed2" in c
    assert "adding_t8_test_mse_sgd_vs_step.irnn.seed0" in c
    # a seed's unit does not depend on the other seeds of the tuple: seed 1 alone is read from the cache
    calls = {"n": 0}
    real = I.train
    monkeypatch.setattr(I, "train", lambda *a, **k: calls.__setitem__("n", calls["n"] + 1) or real(*a, **k))
    alone = I.run(dataclasses.replace(cfg, seeds=(1,), ablations=()), scale="cpu", write=False)
    assert calls["n"] == 0
    assert alone["metrics"]["adding_t8_test_mse.irnn"] == m["adding_t8_test_mse.irnn.seed1"]
    # carry: T = 5 taken from the results file written above, not trained
    carried = I.run(dataclasses.replace(cfg, carry=("adding_t5",)), scale="cpu", write=False,
                    results_dir=tmp_path / "res")
    assert carried["metrics"]["adding_t5_test_mse.tanh"] == m["adding_t5_test_mse.tanh"]
    assert "adding_t5_test_mse.tanh" in carried["provenance"]["carried_over"]["metrics"]
    with pytest.raises(ValueError, match="ablations must be"):
        dataclasses.replace(cfg, ablations=("adam",))
    with pytest.raises(ValueError, match="headline task"):
        dataclasses.replace(cfg, carry=("adding_t8",))
    with pytest.raises(ValueError, match="seeds must be"):
        dataclasses.replace(cfg, seeds=(1, 1))


def test_a_diverging_run_is_counted_not_averaged(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERNOTES_CHECKPOINTS", str(tmp_path / "ck"))
    real = I.train

    def flaky(model, *a, **k):
        if k.get("clip", 1) is None:
            raise training.NonFiniteLossError(step=3, value=float("nan"))
        return real(model, *a, **k)

    monkeypatch.setattr(I, "train", flaky)
    cfg = dataclasses.replace(I.Config.quick(), kinds=("irnn",), hidden=6, adding_T=(8,), adding_steps=6,
                              pixel_steps=0, test_sequences=20, eval_every=3, grad_T=10, seeds=(0, 1),
                              ablations=("no_clip",))
    m = I.run(cfg, scale="quick", write=False)["metrics"]
    assert m["adding_t8_diverged_noclip.irnn"] == 2 and "adding_t8_test_mse_noclip.irnn" not in m
    assert m["adding_t8_diverged_at_noclip.irnn.seed1"] == 3 and m["adding_t8_diverged.irnn"] == 0


def test_pixel_lr_probe_is_reported_beside_not_instead_of_the_headline(monkeypatch):
    def fake_pixel(split="train", *, permutation=None, limit=None):
        y = torch.arange(100) % 10
        x = y[:, None].float() / 10 + 0.05 * torch.rand(100, 784, generator=torch.Generator().manual_seed(0))
        return tasks.as_sequences(x[:limit] if limit else x), (y[:limit] if limit else y)

    monkeypatch.setattr(tasks, "pixel_mnist", fake_pixel)
    lrs = []
    real = I.train
    monkeypatch.setattr(I, "train", lambda *a, **k: lrs.append(k["lr"]) or real(*a, **k))
    cfg = dataclasses.replace(I.Config.quick(), kinds=("irnn", "lstm"), hidden=6, adding_T=(), pixel_steps=4,
                              pixel_batch=20, pixel_size=4, pixel_test_images=50, eval_every=2,
                              pixel_lr_probe=(1e-4,))
    m = I.run(cfg, scale="quick", write=False)["metrics"]
    assert lrs == [cfg.lr, cfg.lr, 1e-4]
    assert m["pixel_mnist_test_acc"] == m["pixel_mnist_test_acc.irnn"]
    assert "pixel_mnist_test_acc_lr1e-04.irnn" in m and "pixel_mnist_test_acc_lr1e-04.lstm" not in m
    with pytest.raises(ValueError, match="pixel_lr_probe"):
        dataclasses.replace(cfg, pixel_lr_probe=(0,))
