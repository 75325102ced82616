"""DeepMind's centred RMSProp (papernotes_core.dqn.optim) against its formula, computed by hand
and independently in float64; and how it differs from torch.optim.RMSprop."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from papernotes_core import dqn
from papernotes_core.dqn import agent
from papernotes_core.dqn.optim import CentredRMSprop


def _formula(theta0: np.ndarray, grads: list[np.ndarray], lr: float, alpha: float = 0.95, eps: float = 0.01):
    """g <- a g + (1-a) d; s <- a s + (1-a) d^2; theta <- theta - lr d / sqrt(s - g^2 + eps), in numpy."""
    theta, g, s = theta0.copy(), np.zeros_like(theta0), np.zeros_like(theta0)
    for d in grads:
        g = alpha * g + (1 - alpha) * d
        s = alpha * s + (1 - alpha) * d * d
        theta = theta - lr * d / np.sqrt(s - g * g + eps)
    return theta


def test_one_step_by_hand():
    # theta = 1, gradient 2, lr 0.1: g = 0.1, s = 0.2, s - g^2 + 0.01 = 0.2, step = 0.2 / sqrt(0.2).
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = CentredRMSprop([p], lr=0.1)
    p.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step()
    assert abs(p.item() - (1.0 - 0.2 / math.sqrt(0.2))) < 1e-12
    assert abs(p.item() - 0.5527864045000421) < 1e-12
    # A second step with gradient -1: g = 0.095 - 0.05 = 0.045, s = 0.19 + 0.05 = 0.24.
    p.grad = torch.tensor([-1.0], dtype=torch.float64)
    opt.step()
    assert abs(p.item() - (0.5527864045000421 + 0.1 / math.sqrt(0.24 - 0.045 ** 2 + 0.01))) < 1e-12


def test_many_steps_equal_the_formula_in_float64():
    rng = np.random.default_rng(0)
    theta0 = [rng.normal(size=(3, 4)), rng.normal(size=5)]
    grads = [[rng.normal(scale=s, size=t.shape) for t in theta0] for s in (1.0, 0.1, 3.0, 0.01, 1.0, 0.5, 2.0)]
    params = [torch.nn.Parameter(torch.tensor(t)) for t in theta0]
    opt = CentredRMSprop(params, lr=2.5e-4)
    for step in grads:
        for p, d in zip(params, step):
            p.grad = torch.tensor(d)
        opt.step()
    for i, p in enumerate(params):
        expected = _formula(theta0[i], [step[i] for step in grads], lr=2.5e-4)
        assert np.max(np.abs(p.detach().numpy() - expected)) < 1e-12


def test_the_floor_is_inside_the_root_and_torch_rmsprop_differs():
    """With a tiny constant gradient the centred variance is ~0, so the denominator is
    sqrt(0.01) = 0.1; torch's RMSprop adds 0.01 outside sqrt(s) and steps ~10x further."""
    d = 1e-3
    ours = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    theirs = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    o1 = CentredRMSprop([ours], lr=1.0)
    o2 = torch.optim.RMSprop([theirs], lr=1.0, alpha=0.95, eps=0.01)
    for p in (ours, theirs):
        p.grad = torch.full((1,), d, dtype=torch.float64)
    o1.step()
    o2.step()
    g, s = 0.05 * d, 0.05 * d * d
    assert abs(ours.item() + d / math.sqrt(s - g * g + 0.01)) < 1e-15
    assert abs(theirs.item() + d / (math.sqrt(s) + 0.01)) < 1e-15
    assert 9.0 < theirs.item() / ours.item() < 10.0


def test_state_dict_round_trip_and_skipped_parameters():
    a = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    b = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt = CentredRMSprop([a, b], lr=0.1)
    a.grad = torch.tensor([1.0, -2.0], dtype=torch.float64)
    opt.step()
    assert torch.equal(b, torch.ones(2, dtype=torch.float64))       # no gradient: untouched
    c = torch.nn.Parameter(a.detach().clone())
    opt2 = CentredRMSprop([c, torch.nn.Parameter(b.detach().clone())], lr=0.1)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))   # as through a checkpoint file
    for p in (a, c):
        p.grad = torch.tensor([0.5, 0.5], dtype=torch.float64)
    opt.step()
    opt2.step()
    assert torch.equal(a, c)


@pytest.mark.parametrize("kwargs, match", [(dict(lr=0.0), "lr must be > 0"), (dict(lr=-1e-3), "lr must be > 0"),
                                           (dict(alpha=1.0), r"alpha must lie in \[0, 1\)"),
                                           (dict(eps=0.0), "eps must be > 0"),
                                           (dict(lr=float("nan")), "finite"), (dict(alpha=True), "finite")])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CentredRMSprop([torch.nn.Parameter(torch.zeros(1))], **kwargs)


def test_the_configs_name_their_optimizer():
    params = list(agent.AtariQNetwork(6).parameters())
    assert isinstance(agent.make_optimizer(dqn.atari_config("Pong"), params), CentredRMSprop)
    assert isinstance(agent.make_optimizer(dqn.atari_config("Pong", "nature"), params), CentredRMSprop)
    torch_rms = agent.make_optimizer(dqn.atari_config("Pong", optimizer="torch_rmsprop"), params)
    assert type(torch_rms) is torch.optim.RMSprop and torch_rms.defaults["eps"] == 0.01
    assert isinstance(agent.make_optimizer(dqn.pong_cpu_config(), params), torch.optim.Adam)
    # The 2013 preset updates at every step (Algorithm 1); the Nature preset every 4.
    assert dqn.atari_config("Pong").train_every == 1
    cfg = dqn.atari_config("Pong").optimizer, dqn.Config.paper().atari.optimizer
    assert cfg == ("rmsprop", "rmsprop")
    assert dqn.atari_config("Pong", "nature").train_every == 4
