r"""IRNN (Le, Jaitly & Hinton, 2015): a ReLU RNN whose recurrent matrix starts as the identity,
and the baselines the recurrent chapters compare it with (a tanh RNN and an LSTM).

The recurrence of a plain RNN is :math:`h_t = f(W h_{t-1} + U x_t + b)`. The IRNN takes
:math:`f = \operatorname{ReLU}`, :math:`W = \alpha I` (the identity, or a scaled identity) and
:math:`b = 0` at initialisation (:class:`RecurrentNet` with ``kind="irnn"``). With non-negative
states and no input the map is then the identity, so a state is carried unchanged for any
number of steps; backwards, the Jacobian :math:`\partial h_t / \partial h_{t-1} =
\operatorname{diag}(\mathbb 1[a_t > 0])\,W` is a 0/1 diagonal times :math:`\alpha I`: gradients
neither shrink nor grow with the time lag where units are active (for :math:`\alpha = 1`). A tanh
RNN multiplies the gradient by :math:`\operatorname{diag}(1 - h_t^2)\,W` at every step, whose
norm is below 1 unless :math:`W` is large, and an LSTM carries its cell state additively, gated.
:func:`input_gradient_norms` measures this: the norm of :math:`\partial y_T / \partial x_t`
against the lag :math:`T - t`.

Gradient clipping (rescale the whole gradient to norm at most ``clip`` when it is larger) keeps
the rare exploding steps of a ReLU recurrence from wrecking training (:func:`train`).

Paper settings we rely on (Sec. 4; the values marked [U] are our reading, unverified against
the paper's text): 100 hidden units on the adding problem, recurrent weights :math:`I` and biases
0, the other weights drawn from :math:`\mathcal N(0, 0.001^2)` [U]; SGD with gradient clipping
and minibatches of 16 [U]; the LSTM's forget-gate bias set to 1 [U]. Where a scale departs,
:class:`Config` says so.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import results, runtime, tasks, training

__all__ = ["ABLATIONS", "Config", "KINDS", "PAPER", "SLUG", "RecurrentNet", "evaluate_adding", "evaluate_classifier",
           "input_gradient_norms", "main", "run", "train"]

KINDS = ("irnn", "tanh", "lstm")
ABLATIONS = ("sgd", "no_clip")
OPTIMIZERS = ("sgd", "rmsprop", "adam")


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class RecurrentNet(nn.Module):
    r"""One recurrent layer and a linear read-out: ``kind`` is ``"irnn"`` (ReLU, :math:`W =
    \alpha I`, zero biases, other weights :math:`\mathcal N(0, \text{init\_std}^2)`), ``"tanh"``
    (PyTorch's default initialisation, uniform :math:`\pm 1/\sqrt{N}`) or ``"lstm"`` (PyTorch's
    default, forget-gate bias ``forget_bias``).

    ``forward(x)`` takes real inputs ``(batch, T, input_size)`` and returns the read-out
    ``(batch, output_size)`` after the last step, or ``(batch, T, output_size)`` with
    ``all_steps=True`` (the copying task). Uses PyTorch's fused ``nn.RNN`` / ``nn.LSTM``.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, output_size: int, *,
                 identity_scale: float = 1.0, init_std: float = 0.001, forget_bias: float = 1.0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size), ("output_size", output_size)):
            _check_positive_int(name, v)
        self.kind, self.hidden_size = kind, hidden_size
        if kind == "lstm":
            self.rnn = nn.LSTM(input_size, hidden_size, batch_first=True)
            with torch.no_grad():   # gate order in PyTorch: input, forget, cell, output
                self.rnn.bias_ih_l0[hidden_size:2 * hidden_size].fill_(forget_bias)
                self.rnn.bias_hh_l0[hidden_size:2 * hidden_size].zero_()
        else:
            self.rnn = nn.RNN(input_size, hidden_size, nonlinearity="relu" if kind == "irnn" else "tanh",
                              batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)
        if kind == "irnn":
            with torch.no_grad():
                self.rnn.weight_hh_l0.copy_(identity_scale * torch.eye(hidden_size))
                self.rnn.bias_hh_l0.zero_()
                self.rnn.bias_ih_l0.zero_()
                self.rnn.weight_ih_l0.normal_(0.0, init_std)
                self.out.weight.normal_(0.0, init_std)
                self.out.bias.zero_()

    def forward(self, x: torch.Tensor, *, all_steps: bool = False) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] == 0:
            raise ValueError(f"x must be (batch, T, features) with T >= 1, got shape {tuple(x.shape)}")
        states, _ = self.rnn(x)
        return self.out(states) if all_steps else self.out(states[:, -1])


def input_gradient_norms(model: RecurrentNet, x: torch.Tensor) -> np.ndarray:
    r"""How strongly the output after the last step depends on the input at each step:
    :math:`g_t = \frac1B\sum_b \lVert \partial\, \textstyle\sum_k y_{T,k} / \partial x_t^{(b)} \rVert`
    for :math:`t = 0..T-1` (so :math:`T - 1 - t` is the lag). This is the gradient that reaches
    step :math:`t` through the recurrence: it vanishes with the lag when the recurrent Jacobians
    shrink, and explodes when they grow."""
    x = x.detach().clone().requires_grad_(True)
    was = model.training
    model.eval()
    y = model(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    model.train(was)
    return g.norm(dim=2).mean(0).cpu().numpy()


# ----------------------------------------------------------------------------------------------
# Training on the shared tasks
# ----------------------------------------------------------------------------------------------

def _make_optimizer(name: str, params, lr: float):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def evaluate_adding(model: RecurrentNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Mean squared error of ``model`` on held-out adding-problem sequences ``(x, y)``."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        se = sum(float(((model(x[i:i + batch_size].to(device)) - y[i:i + batch_size].to(device)) ** 2).sum())
                 for i in range(0, len(x), batch_size))
    model.train(was)
    return se / len(x)


def evaluate_classifier(model: RecurrentNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Accuracy of ``model`` (logits after the last step) on sequences ``x`` with labels ``y``."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        right = sum(int((model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum())
                    for i in range(0, len(x), batch_size))
    model.train(was)
    return right / len(x)


def train(model: RecurrentNet, next_batch, loss_fn, *, steps: int, optimizer: str = "adam", lr: float = 1e-3,
          clip: float | None = 1.0, lr_drop_at: float | None = None, evaluate=None, eval_every: int = 500,
          progress: bool = True, desc: str = "train") -> dict:
    r"""Minimise ``loss_fn(model(x), y)`` over ``steps`` minibatches ``(x, y) = next_batch(step)``.

    Each step: gradient, then (with ``clip``) the whole gradient rescaled to norm at most
    ``clip``, :math:`g \leftarrow g \cdot \min(1, \text{clip} / \lVert g \rVert)`, then the
    optimizer's step. With ``lr_drop_at`` (a fraction of ``steps``) the learning rate is divided
    by 10 from that step on. ``evaluate(model) -> float`` is called every ``eval_every`` steps and
    at the end. Returns ``{"curve": [[step, value], ...], "final", "seconds", "clipped"}``
    (``clipped``: the fraction of steps whose gradient norm exceeded ``clip``).
    """
    _check_positive_int("steps", steps)
    device = next(model.parameters()).device
    opt = _make_optimizer(optimizer, model.parameters(), lr)
    drop = int(lr_drop_at * steps) if lr_drop_at is not None else None
    curve, clipped, t0 = [], 0, time.perf_counter()
    bar = training.progress(total=steps, desc=desc, disable=not progress)
    model.train()
    for step in range(1, steps + 1):
        if drop is not None and step == drop:
            for group in opt.param_groups:
                group["lr"] = lr / 10
        x, y = next_batch(step)
        loss = loss_fn(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        training.check_finite(loss.detach(), step=step)
        if clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            clipped += int(float(norm) > clip)
        opt.step()
        bar.update(1)
        if evaluate is not None and (step % eval_every == 0 or step == steps):
            curve.append([step, float(evaluate(model))])
    bar.close()
    return {"curve": curve, "final": curve[-1][1] if curve else None, "seconds": time.perf_counter() - t0,
            "clipped": clipped / steps}


# ----------------------------------------------------------------------------------------------
# The study
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    """The IRNN chapter's experiments at one scale: the adding problem at each ``adding_T`` and
    pixel-by-pixel MNIST, each for every model in ``kinds`` with the same optimizer, learning
    rate, clipping and number of updates (the baselines are reported, not tuned further).

    ``pixel_size``: side of the MNIST images fed pixel by pixel (28: the paper's 784 steps;
    smaller sizes average-pool the image first, a quick-scale shortcut). ``pixel_steps = 0``
    skips pixel MNIST. ``grad_T``: the sequence length of the gradient-against-lag measurement,
    taken on the models trained at ``adding_T[0]``. ``cache``: keep each trained (task, model)
    result beside the checkpoints, so a study split over processes (``--tasks``) is gathered by
    one more run that trains nothing.

    ``seeds``: the seeds of the headline comparison, the adding problem at ``adding_T[0]``, where
    every model is trained once per seed and reported as mean and standard deviation (empty:
    ``(seed,)``); the other lengths and pixel MNIST are one run each, at ``seed``, and are
    labelled as one seed. ``ablations``, run for the IRNN at ``adding_T[0]`` over the same seeds:
    ``"sgd"`` (the paper's optimizer, plain SGD with learning rate ``sgd_lr`` and clipping at
    ``sgd_clip``, the same schedule and number of updates) and ``"no_clip"`` (the main optimizer
    without clipping). ``carry``: task prefixes (``"adding_t50"``, ``"adding_t300"``,
    ``"pixel_mnist"``, ...) whose results are taken from the existing results file of this scale
    (:func:`results.carry_over`, recorded in ``provenance.carried_over``) instead of trained again.
    ``pixel_lr_probe``: extra learning rates at which the IRNN alone is trained on (plain) pixel
    MNIST, one seed, reported as ``pixel_mnist_test_acc_lr{lr:.0e}.irnn``: a test of an
    explanation (is the IRNN's result limited by its step size?), not a selection: the headline
    keeps ``lr``, the same for every model.
    """

    kinds: tuple[str, ...] = KINDS
    hidden: int = 100
    adding_T: tuple[int, ...] = (150, 200, 300, 400)
    adding_steps: int = 100_000
    adding_batch: int = 16
    pixel_steps: int = 1_000_000
    pixel_batch: int = 16
    pixel_size: int = 28
    pixel_variants: tuple[str, ...] = ("plain", "permuted")
    pixel_test_images: int | None = None
    optimizer: str = "sgd"
    lr: float = 1e-2
    clip: float | None = 1.0
    lr_drop_at: float | None = None
    test_sequences: int = 1000
    eval_every: int = 1000
    grad_T: int = 150
    seed: int = 0
    seeds: tuple[int, ...] = ()
    ablations: tuple[str, ...] = ()
    sgd_lr: float = 1e-2
    sgd_clip: float = 1.0
    pixel_lr_probe: tuple[float, ...] = ()
    carry: tuple[str, ...] = ()
    threads: int | None = None
    cache: bool = False

    def __post_init__(self):
        if not isinstance(self.kinds, tuple) or not self.kinds or not set(self.kinds) <= set(KINDS):
            raise ValueError(f"kinds must be a non-empty tuple drawn from {KINDS}, got {self.kinds!r}")
        if not isinstance(self.adding_T, tuple):
            raise ValueError(f"adding_T must be a tuple of sequence lengths, got {self.adding_T!r}")
        for T in self.adding_T:
            if isinstance(T, bool) or not isinstance(T, int) or T < 2:
                raise ValueError(f"each adding_T must be an int >= 2 (sequence length), got {T!r}")
        for name in ("hidden", "adding_steps", "adding_batch", "pixel_batch", "pixel_size", "test_sequences",
                     "eval_every", "grad_T"):
            _check_positive_int(name, getattr(self, name))
        if isinstance(self.pixel_steps, bool) or not isinstance(self.pixel_steps, int) or self.pixel_steps < 0:
            raise ValueError(f"pixel_steps must be an int >= 0 (0 skips pixel MNIST), got {self.pixel_steps!r}")
        if (not isinstance(self.pixel_variants, tuple)
                or not set(self.pixel_variants) <= {"plain", "permuted"}):
            raise ValueError(f"pixel_variants must be a tuple drawn from ('plain', 'permuted'), "
                             f"got {self.pixel_variants!r}")
        if 28 % self.pixel_size:
            raise ValueError(f"pixel_size must divide 28 (28, 14, 7, 4, 2, 1), got {self.pixel_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a number > 0, got {self.lr!r}")
        if self.clip is not None and not (isinstance(self.clip, (int, float)) and self.clip > 0):
            raise ValueError(f"clip must be a gradient norm > 0 or None, got {self.clip!r}")
        if not isinstance(self.seeds, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                        for v in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a tuple of distinct ints >= 0 (empty: just seed), got {self.seeds!r}")
        if not isinstance(self.ablations, tuple) or not set(self.ablations) <= set(ABLATIONS):
            raise ValueError(f"ablations must be a tuple drawn from {ABLATIONS}, got {self.ablations!r}")
        if self.ablations and "irnn" not in self.kinds:
            raise ValueError("ablations are run for the IRNN: kinds must include 'irnn'")
        if self.ablations and not self.adding_T:
            raise ValueError("ablations are run on the adding problem at adding_T[0]: adding_T must not be empty")
        for name in ("sgd_lr", "sgd_clip"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a number > 0, got {v!r}")
        if not isinstance(self.pixel_lr_probe, tuple) or not all(
                isinstance(v, float) and math.isfinite(v) and v > 0 for v in self.pixel_lr_probe):
            raise ValueError(f"pixel_lr_probe must be a tuple of learning rates (floats > 0), got {self.pixel_lr_probe!r}")
        if not isinstance(self.carry, tuple) or not all(isinstance(c, str) and c for c in self.carry):
            raise ValueError(f"carry must be a tuple of task prefixes like 'adding_t50', got {self.carry!r}")
        if self.adding_T and f"adding_t{self.adding_T[0]}" in self.carry:
            raise ValueError(f"carry cannot hold the headline task adding_t{self.adding_T[0]}: it is the one run here")

    @classmethod
    def quick(cls) -> "Config":
        """CI scale, within a minute per notebook on CI's two cores: the adding problem at T = 20
        for 2,000 updates of 50 sequences and pixel MNIST on 7×7 images (49 steps) for 100
        updates (1,000 test images), all three models, Adam (lr 1e-3, divided by 10 after 70% of the updates),
        clipping at 1."""
        return cls(adding_T=(20,), adding_steps=2000, adding_batch=50, pixel_steps=100, pixel_batch=50, pixel_size=7,
                   pixel_variants=("plain",), pixel_test_images=1000, optimizer="adam", lr=1e-3, lr_drop_at=0.7,
                   test_sequences=1000, eval_every=200, grad_T=100, threads=1)

    @classmethod
    def cpu(cls) -> "Config":
        """Two CPU cores: the adding problem at T = 150 (seeds 0, 1, 2), 50 and 300 (seed 0) for
        10,000 updates of 50 sequences, all three models, Adam (lr 1e-3, divided by 10 after 60%
        of the updates), clipping at 1; at T = 150 also the IRNN with the paper's plain SGD (lr
        1e-2 [U], clipping at 1 [U], same schedule and updates) and with Adam unclipped, three
        seeds each; pixel MNIST (not permuted) on 14×14 images (196 steps) for 20,000 updates of
        50 images, seed 0, and the IRNN once more at lr 1e-4 (``pixel_lr_probe``). Departures: Adam instead of the paper's SGD for the main runs (the
        paper's 10^5-10^6 updates do not fit on two cores; the SGD ablation measures what the
        swap does within our budget), shorter runs, and pixel MNIST at half resolution."""
        return cls(adding_T=(150, 50, 300), adding_steps=10_000, adding_batch=50, pixel_steps=20_000,
                   pixel_batch=50, pixel_size=14, pixel_variants=("plain",), optimizer="adam", lr=1e-3,
                   lr_drop_at=0.6, eval_every=500, threads=1, cache=True, seeds=(0, 1, 2),
                   ablations=("sgd", "no_clip"), pixel_lr_probe=(1e-4,))

    @classmethod
    def paper(cls) -> "Config":
        """The paper's experiments as we read them [U]: adding at T = 150, 200, 300, 400 and pixel
        MNIST (and its permuted form) with 100 hidden units, SGD with clipping, minibatches of 16.
        For a GPU."""
        return cls()


def _pixel_data(config: Config, split: str, variant: str, limit: int | None = None):
    x, y = tasks.pixel_mnist(split, limit=limit)
    if config.pixel_size != 28:
        k = 28 // config.pixel_size
        x = F.avg_pool2d(x.reshape(-1, 1, 28, 28), k).reshape(len(x), -1, 1)
    if variant == "permuted":
        perm = tasks.fixed_permutation(config.seed, x.shape[1])
        x = x[:, perm]
    return x, y


_ADDING_FIELDS = ("hidden", "adding_steps", "adding_batch", "optimizer", "lr", "clip", "lr_drop_at",
                  "test_sequences", "eval_every", "grad_T", "seed")
_PIXEL_FIELDS = ("hidden", "pixel_steps", "pixel_batch", "pixel_size", "pixel_test_images", "optimizer", "lr",
                 "clip", "lr_drop_at", "eval_every", "seed")


def _unit(config: Config, fields: tuple[str, ...], label: str, compute) -> dict:
    """``compute()`` (one trained task and model: ``{"metrics", "curves"}``), or its cached
    result when ``config.cache`` and an earlier run with the same settings stored it."""
    if not config.cache:
        return compute()
    key = {**{f: getattr(config, f) for f in fields}, "unit": label}
    path = training.unit_cache_path(runtime.checkpoints_dir() / SLUG, label, key)
    return training.cached_json(path, compute)


def run(config: Config | None = None, *, scale: str | None = None, write: bool = True, results_dir=None,
        device=None, command: str | None = None, models: dict | None = None) -> dict:
    """Train and evaluate every model of ``config`` on each task; write and return the results.

    ``metrics``: ``adding_t{T}_test_mse`` (the IRNN's mean squared error on ``test_sequences``
    held-out sequences) and ``adding_t{T}_test_mse.{kind}`` for every model, with the mean
    predictor's ``adding_baseline_mse`` (1/6); ``pixel_mnist_test_acc(.{kind})`` and
    ``permuted_pixel_mnist_test_acc(.{kind})`` (test accuracy); ``seconds.*``.
    ``curves``: ``adding_t{T}_test_mse_vs_step.{kind}``, ``pixel_mnist_test_acc_vs_step.{kind}``,
    and ``grad_vs_lag.{kind}.init`` / ``.trained`` (:func:`input_gradient_norms` on adding-problem
    inputs of length ``grad_T``, against the lag).
    """
    study = results.start_study(Config, config, scale, device, models)
    config, device = study.config, study.device
    metrics, curves = {"adding_baseline_mse": tasks.ADDING_BASELINE_MSE}, {}
    grad_x, _ = tasks.adding_problem(64, config.grad_T, generator=torch.Generator().manual_seed(7))

    def lag_curve(model):
        g = input_gradient_norms(model, grad_x.to(device))
        return [[config.grad_T - 1 - t, float(v)] for t, v in enumerate(g)]

    seeds = config.seeds or (config.seed,)
    headline = config.adding_T[0] if config.adding_T else None
    carried_metrics, carried_curves, carried = ({}, {}, None)
    if config.carry:
        carried_metrics, carried_curves, carried = results.carry_over(SLUG, study.scale, config.carry, results_dir)
        metrics.update(carried_metrics)
        curves.update(carried_curves)

    def carried_task(name: str) -> bool:
        return any(results.matches_prefix(name, c) or name == c for c in config.carry)

    def adding_unit(T, kind, cfg, label, x_test, y_test, with_lag):
        def compute():
            torch.manual_seed(cfg.seed)
            model = RecurrentNet(kind, 2, cfg.hidden, 1).to(device)
            c = {}
            if with_lag:
                c["init"] = lag_curve(model)
            gen = torch.Generator().manual_seed(cfg.seed * 1000 + T)
            try:
                out = train(model, lambda step: tasks.adding_problem(cfg.adding_batch, T, generator=gen),
                            F.mse_loss, steps=cfg.adding_steps, optimizer=cfg.optimizer, lr=cfg.lr, clip=cfg.clip,
                            lr_drop_at=cfg.lr_drop_at, evaluate=lambda m: evaluate_adding(m, x_test, y_test),
                            eval_every=cfg.eval_every, desc=f"adding T={T} {kind} {label}")
            except training.NonFiniteLossError as err:   # an unclipped ReLU recurrence can blow up
                return {"metrics": {"diverged": 1.0, "diverged_at": float(err.step)}, "curves": c}
            c["curve"] = out["curve"]
            if with_lag:
                c["trained"] = lag_curve(model)
            if models is not None:
                models[f"adding_t{T}.{kind}" + ("" if label == "first" else f".{label}")] = model
            return {"metrics": {"test_mse": out["final"], "clipped_fraction": out["clipped"],
                                "seconds": out["seconds"], "diverged": 0.0}, "curves": c}
        return _unit(cfg, _ADDING_FIELDS, f"adding_t{T}_{kind}_{label}_v2", compute)

    def record(T, kind, suffix, per_seed):
        """Mean, sd and per-seed values of one (task, model, variant) over ``per_seed``: {seed: unit}."""
        task = f"adding_t{T}_test_mse{suffix}"
        done = {s_: u for s_, u in per_seed.items() if not u["metrics"]["diverged"]}
        for s_, u in per_seed.items():
            if len(per_seed) > 1 or suffix:
                if s_ in done:
                    metrics[f"{task}.{kind}.seed{s_}"] = u["metrics"]["test_mse"]
                metrics[f"adding_t{T}_diverged{suffix}.{kind}.seed{s_}"] = u["metrics"]["diverged"]
                if "diverged_at" in u["metrics"]:
                    metrics[f"adding_t{T}_diverged_at{suffix}.{kind}.seed{s_}"] = u["metrics"]["diverged_at"]
            tag = "" if (s_ == seeds[0] and not suffix) else f".seed{s_}"
            if "curve" in u["curves"]:
                curves[f"adding_t{T}_test_mse{suffix}_vs_step.{kind}{tag}"] = u["curves"]["curve"]
            if "seconds" in u["metrics"]:
                metrics[f"seconds.adding_t{T}{suffix}.{kind}{tag}"] = u["metrics"]["seconds"]
        metrics[f"adding_t{T}_diverged{suffix}.{kind}"] = float(len(per_seed) - len(done))
        if done:
            values = np.array([u["metrics"]["test_mse"] for u in done.values()])
            metrics[f"{task}.{kind}"] = float(values.mean())
            metrics[f"{task}_sd.{kind}"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            metrics[f"adding_t{T}_clipped_fraction{suffix}.{kind}"] = float(
                np.mean([u["metrics"]["clipped_fraction"] for u in done.values()]))
        metrics[f"adding_t{T}_seeds{suffix}.{kind}"] = float(len(per_seed))

    variants = {"": {}, "_sgd": {"optimizer": "sgd", "lr": config.sgd_lr, "clip": config.sgd_clip},
                "_noclip": {"clip": None}}
    for T in config.adding_T:
        if T != headline and carried_task(f"adding_t{T}"):
            continue
        x_test, y_test = tasks.adding_problem(config.test_sequences, T,
                                              generator=torch.Generator().manual_seed(10_000 + T))
        for kind in config.kinds:
            run_seeds = seeds if T == headline else (config.seed,)
            wanted = [""] + ([f"_{a.replace('no_clip', 'noclip')}" for a in config.ablations]
                             if (T == headline and kind == "irnn") else [])
            for suffix in wanted:
                per_seed = {}
                for s_ in run_seeds:
                    cfg = dataclasses.replace(config, seed=s_, **variants[suffix])
                    first = "first" if T == headline else "later"
                    label = (first if s_ == 0 else f"{first}_seed{s_}") if not suffix else f"{suffix[1:]}_seed{s_}"
                    with_lag = T == headline and s_ == seeds[0] and not suffix
                    per_seed[s_] = unit = adding_unit(T, kind, cfg, label, x_test, y_test, with_lag)
                    if with_lag and "init" in unit["curves"]:
                        curves[f"grad_vs_lag.{kind}.init"] = unit["curves"]["init"]
                        if "trained" in unit["curves"]:
                            curves[f"grad_vs_lag.{kind}.trained"] = unit["curves"]["trained"]
                record(T, kind, suffix, per_seed)
        if "irnn" in config.kinds and f"adding_t{T}_test_mse.irnn" in metrics:
            metrics[f"adding_t{T}_test_mse"] = metrics[f"adding_t{T}_test_mse.irnn"]

    for variant in (config.pixel_variants if config.pixel_steps else ()):
        name = "pixel_mnist" if variant == "plain" else "permuted_pixel_mnist"
        runs = [] if carried_task(name) else [(kind, "", config) for kind in config.kinds]
        if variant == "plain" and "irnn" in config.kinds:
            runs += [("irnn", f"_lr{lr:.0e}", dataclasses.replace(config, lr=lr)) for lr in config.pixel_lr_probe]
        if not runs:
            continue
        x_train, y_train = _pixel_data(config, "train", variant)
        x_test, y_test = _pixel_data(config, "test", variant, config.pixel_test_images)
        for kind, tag, cfg in runs:
            def compute(kind=kind, name=name, tag=tag, cfg=cfg, x_train=x_train, y_train=y_train, x_test=x_test,
                        y_test=y_test):
                torch.manual_seed(cfg.seed)
                model = RecurrentNet(kind, 1, cfg.hidden, 10).to(device)
                sampler = training.EpochSampler(len(x_train), cfg.pixel_batch, seed=cfg.seed)

                def batch(step):
                    idx = torch.as_tensor(sampler.indices(step - 1))
                    return x_train[idx], y_train[idx]

                out = train(model, batch, F.cross_entropy, steps=cfg.pixel_steps, optimizer=cfg.optimizer,
                            lr=cfg.lr, clip=cfg.clip, lr_drop_at=cfg.lr_drop_at,
                            evaluate=lambda m: evaluate_classifier(m, x_test, y_test),
                            eval_every=max(cfg.eval_every, cfg.pixel_steps // 10), desc=f"{name}{tag} {kind}")
                if models is not None:
                    models[f"{name}{tag}.{kind}"] = model
                return {"metrics": {f"{name}_test_acc{tag}.{kind}": out["final"],
                                    f"seconds.{name}{tag}.{kind}": out["seconds"]},
                        "curves": {f"{name}_test_acc{tag}_vs_step.{kind}": out["curve"]}}

            unit = _unit(cfg, _PIXEL_FIELDS, f"{name}_{kind}", compute)
            metrics.update(unit["metrics"])
            curves.update(unit["curves"])
        if "irnn" in config.kinds and f"{name}_test_acc.irnn" in metrics:
            metrics[f"{name}_test_acc"] = metrics[f"{name}_test_acc.irnn"]
    metrics["compute_s"] = sum(v for k, v in metrics.items() if k.startswith("seconds."))
    return study.finish(SLUG, metrics, curves, PAPER, seeds=sorted({config.seed, *seeds}), command=command,
                        write=write, results_dir=results_dir, carried=carried)


SLUG = "irnn"
PAPER = {
    "pixel_mnist_test_acc": {"value": 0.97, "status": "V2",
                             "source": "Sec. 4.2 / Table: pixel-by-pixel MNIST, IRNN 97% test accuracy"},
    "permuted_pixel_mnist_test_acc": {"value": 0.82, "status": "V2",
                                      "source": "Sec. 4.2: permuted pixel MNIST, IRNN 82% test accuracy"},
    "adding_solved_up_to_T": {"value": 300.0, "status": "V2",
                              "source": "uRNN paper, Sec. 4.2, on Le et al.: IRNN solved the adding problem up "
                                        "to T = 300 (tanh RNNs up to T = 150)"},
}


def main(argv: list[str] | None = None) -> int:
    """``python -m papernotes_core.irnn [--tasks adding|pixel ...] [--no-write]`` at ``PAPERNOTES_SCALE``.

    ``--tasks`` narrows the study to some tasks (e.g. the adding problem in one process and
    pixel MNIST in another, with ``--no-write``); with ``Config.cache`` a final run without it
    gathers their results without training again.
    """
    def only(config: Config, names: list[str]) -> Config:
        unknown = sorted(set(names) - {"adding", "pixel"})
        if unknown:
            raise ValueError(f"--tasks takes 'adding' and/or 'pixel', got {unknown}")
        return dataclasses.replace(config, adding_T=config.adding_T if "adding" in names else (),
                                   pixel_steps=config.pixel_steps if "pixel" in names else 0)

    return runtime.study_main(SLUG, Config, run, argv, narrow=("--tasks", {"nargs": "+"}, only),
                              description=main.__doc__)


if __name__ == "__main__":  # pragma: no cover - the command line entry point
    sys.exit(main())
