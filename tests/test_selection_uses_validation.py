"""Rule of evidence 2: hyperparameters are chosen on validation (or training) data, never on the
test split. One test per chapter that selects anything; a chapter that selects nothing says so
here, so a new grid cannot slip in unnoticed."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from papernotes_core import evaluation, gan, irnn, vae
from papernotes_core import elu


class Poison(Exception):
    pass


def test_gan_parzen_width_is_chosen_on_validation_images_only(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    centres, x_valid = torch.rand(60, 12, generator=gen), torch.rand(30, 12, generator=gen)
    x_test_a, x_test_b = torch.rand(40, 12, generator=gen), torch.rand(40, 12, generator=gen) * 0.1
    seen = []
    real = evaluation.parzen_sigma_search

    def spy(x, *a, **k):
        seen.append(x)
        return real(x, *a, **k)

    monkeypatch.setattr(evaluation, "parzen_sigma_search", spy)
    a = gan.parzen_evaluation(centres, x_test_a, x_valid)
    b = gan.parzen_evaluation(centres, x_test_b, x_valid)
    assert all(x is x_valid for x in seen) and len(seen) == 2
    assert a["sigma"] == b["sigma"]                      # the test images do not move the choice
    assert a["mean"] != b["mean"]


def test_vae_step_size_is_chosen_on_training_batches_without_evaluating(monkeypatch):
    """Sec. 5: 'based on performance on the training set in the first few iterations'. The
    selection never calls an evaluation function, and its signature has no test data."""
    import inspect

    assert list(inspect.signature(vae.select_learning_rate).parameters)[:3] == ["config", "nz", "x_train"]

    def poison(*a, **k):
        raise Poison("select_learning_rate evaluated a model")

    monkeypatch.setattr(vae, "evaluate_elbo", poison)
    monkeypatch.setattr(vae, "evaluate_log_likelihood_iw", poison)
    cfg = dataclasses.replace(vae.Config.quick(), hidden=16, lrs=(1e-3, 3e-3), lr_trial_steps=4, batch_size=10)
    x = torch.rand(50, 784, generator=torch.Generator().manual_seed(0))
    lr, scores = vae.select_learning_rate(cfg, 2, x, device="cpu")
    assert lr in (1e-3, 3e-3) and set(scores) == {1e-3, 3e-3}


def test_chapters_without_a_selection_have_one_candidate():
    """ELU and the IRNN train one configuration per model and report its final score: there is
    nothing chosen, on any split. If a grid is added, it needs a validation split and a test here."""
    for scale in ("quick", "cpu", "paper"):
        icfg = getattr(irnn.Config, scale)()
        assert isinstance(icfg.lr, float) and isinstance(icfg.sgd_lr, float)
        ecfg = getattr(elu.Config, scale)()
        assert isinstance(ecfg.lr, float)


def test_urnn_learning_rate_is_chosen_on_validation_sequences():
    """The uRNN study's grid: every learning rate is scored on validation sequences (a generator
    seed of their own), the winner alone on the test set (tests/test_urnn.py follows the calls
    of ``_fit`` one by one)."""
    import inspect

    from papernotes_core import urnn

    assert list(inspect.signature(urnn.select_by_validation).parameters) == ["candidates", "lower_is_better"]
    assert urnn.select_by_validation([(1e-3, 0.5), (1e-2, 0.2)], lower_is_better=True) == (1e-2, 0.2)
    assert urnn.select_by_validation([(1e-3, 0.5), (1e-2, 0.2)], lower_is_better=False) == (1e-3, 0.5)
    assert urnn._VAL_SEED not in urnn._TEST_SEED.values()
    fit = inspect.signature(urnn._fit).parameters
    assert {"validate", "test"} <= set(fit)
