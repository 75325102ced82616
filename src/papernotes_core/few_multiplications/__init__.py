r"""The chapter *Neural Networks with Few Multiplications* (Lin, Courbariaux, Memisevic & Bengio, 2015).

The building blocks (binary and ternary connect, quantized back-propagation, the shift kernel,
the instrumented layer and the multiplication count) are in
:mod:`~papernotes_core.few_multiplications.layers`, re-exported here. This module holds the
study: the paper's MNIST network (:class:`FewMultMLP`), its training as the authors'
``mnist.py`` and ``trainer.py`` do it (:func:`train_one`), and :class:`Config` / :func:`run`,
which train the five variants (:data:`VARIANTS`) over seeds and report the test error at the
epoch of best validation error.

The paper's CIFAR-10 and SVHN conv nets are in :mod:`~papernotes_core.few_multiplications.conv`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import results, runtime, training
from ..data import load_mnist
from ..evaluation import welch_t_test
from .layers import (MODES, AddShiftLinear, FewMultLinear, binarize, count_multiplications, exponent_range, glorot_h,
                     is_power_of_two, quantize_pow2, shift_outer, straight_through, ternarize)

__all__ = ["MNIST_SIZES", "MODES", "PAPER", "SLUG", "VARIANTS", "AddShiftLinear", "Config", "FewMultLinear",
           "FewMultMLP", "binarize", "count_multiplications", "exponent_range", "glorot_h", "is_power_of_two", "main",
           "quantize_pow2", "recompute_bn_statistics", "run", "shift_outer", "squared_hinge", "straight_through",
           "ternarize", "train_one"]

SLUG = "few_multiplications"
#: The paper's MNIST network: 784-1024-1024-1024-10.
MNIST_SIZES = (784, 1024, 1024, 1024, 10)
#: variant -> (weight mode, quantized back-propagation)
VARIANTS = {"full": ("full", False), "binary": ("binary", False), "ternary": ("ternary", False),
            "binary_qb": ("binary", True), "ternary_qb": ("ternary", True)}


class FewMultMLP(nn.Module):
    """The paper's fully connected network: each layer :class:`FewMultLinear` (no bias) then
    batch normalisation (:math:`\\epsilon = 10^{-4}`, learned scale and shift), ReLU on the hidden
    layers, a linear output scored by the squared hinge loss (an L2-SVM), as ``mnist.py``."""

    def __init__(self, sizes=MNIST_SIZES, *, mode: str = "binary", quantized_backprop: bool = False,
                 stochastic: bool = True, min_exp: int | None = None, max_exp: int | None = None):
        super().__init__()
        sizes = tuple(sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes must hold at least an input and an output width, got {sizes!r}")
        blocks = []
        for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            blocks += [FewMultLinear(a, b, mode=mode, stochastic=stochastic, quantized_backprop=quantized_backprop,
                                     min_exp=min_exp, max_exp=max_exp, bias=False),
                       nn.BatchNorm1d(b, eps=1e-4, momentum=None)]
            if l < len(sizes) - 2:
                blocks.append(nn.ReLU())
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def linear_layers(self) -> list[FewMultLinear]:
        return [m for m in self.net if isinstance(m, FewMultLinear)]

    def clip_(self) -> None:
        for layer in self.linear_layers():
            layer.clip_()


def squared_hinge(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r"""The L2-SVM loss of ``model.py``: :math:`\frac1B \sum_b \sum_k \max(0, 1 - t_{bk} y_{bk})^2`
    with :math:`t_{bk} = +1` for the true class and :math:`-1` for the others."""
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f"scores must be (B, K) and labels (B,), got {tuple(scores.shape)} and {tuple(labels.shape)}")
    t = -torch.ones_like(scores)
    t[torch.arange(len(labels)), labels] = 1.0
    return torch.clamp(1 - t * scores, min=0).pow(2).sum(1).mean()


@torch.no_grad()
def recompute_bn_statistics(model: FewMultMLP, x: torch.Tensor, batch_size: int = 200) -> None:
    """Batch-norm statistics for evaluation, as ``trainer.py`` sets them after every epoch: the
    average over minibatches of the batch means and variances of the evaluation-mode network
    (real weights) on ``x`` (the authors pass the training and validation sets)."""
    bns = [m for m in model.net if isinstance(m, nn.BatchNorm1d)]
    was = model.training
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.train()   # accumulate (momentum=None: a cumulative average), weights stay in eval mode
    for a in range(0, len(x), batch_size):
        model(x[a:a + batch_size])
    model.train(was)
    if not was:
        model.eval()


def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000) -> float:
    """Fraction of ``x`` misclassified by ``model`` in evaluation mode."""
    model.eval()
    wrong = 0
    with torch.no_grad():
        for a in range(0, len(x), batch_size):
            wrong += int((model(x[a:a + batch_size]).argmax(1) != y[a:a + batch_size]).sum())
    return wrong / len(x)


@dataclass(frozen=True)
class Config:
    """The chapter's MNIST comparison at one scale: every variant of ``variants`` for every seed
    of ``seeds``, ``epochs`` epochs of ``batch`` examples, plain SGD with the step decaying
    geometrically from ``lr`` to ``lr_final`` over ``schedule_epochs`` epochs (the paper's
    schedule; ``epochs < schedule_epochs`` runs its beginning), evaluated on validation after
    every epoch; the reported test error is the one at the best validation epoch.
    ``train_limit``: use only the first examples of the training split (quick scale)."""

    variants: tuple[str, ...] = tuple(VARIANTS)
    sizes: tuple[int, ...] = MNIST_SIZES
    epochs: int = 1000
    schedule_epochs: int = 1000
    batch: int = 200
    lr: float = 0.3
    lr_final: float = 0.01
    min_exp: int | None = None
    max_exp: int | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    train_limit: int | None = None
    threads: int | None = None
    cache: bool = False

    def __post_init__(self):
        if not isinstance(self.variants, tuple) or not self.variants or not set(self.variants) <= set(VARIANTS):
            raise ValueError(f"variants must be a non-empty tuple drawn from {tuple(VARIANTS)}, got {self.variants!r}")
        for name in ("epochs", "schedule_epochs", "batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not (0 < self.lr_final <= self.lr):
            raise ValueError(f"need 0 < lr_final <= lr, got lr={self.lr}, lr_final={self.lr_final}")
        if self.min_exp is not None and self.max_exp is not None and self.min_exp > self.max_exp:
            raise ValueError(f"the exponent range [{self.min_exp}, {self.max_exp}] is empty")
        if not isinstance(self.seeds, tuple) or not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty tuple of distinct ints, got {self.seeds!r}")

    def lr_at(self, epoch: int) -> float:
        """The step in epoch ``epoch`` (0, 1, ...): ``lr * (lr_final / lr) ** (epoch / schedule_epochs)``."""
        return self.lr * (self.lr_final / self.lr) ** (epoch / self.schedule_epochs)

    @classmethod
    def quick(cls) -> "Config":
        """CI scale: a 784-256-256-10 network, 2 epochs on the first 5,000 training images, one
        seed, all five variants (a slice: it shows the code learns, nothing more)."""
        return cls(sizes=(784, 256, 256, 10), epochs=2, train_limit=5_000, seeds=(0,), threads=1)

    @classmethod
    def cpu(cls) -> "Config":
        """Two CPU cores: the paper's network, 30 epochs (of the paper's 1,000) with the paper's
        step decay from 0.3 to 0.01 compressed into them, seeds 0, 1, 2 (about 2.6 core-hours)."""
        return cls(epochs=30, schedule_epochs=30, threads=1, cache=True)

    @classmethod
    def paper(cls) -> "Config":
        """The paper's MNIST run: 1,000 epochs (a GPU)."""
        return cls(cache=True)


def fit_epochs(model: nn.Module, data, *, epochs: int, batch: int, lr_at, seed: int, device=None,
               checkpoint: str | None = None) -> dict:
    """The authors' training loop (``trainer.py``), for the MLP and the conv nets alike: plain
    SGD on the squared hinge loss in minibatches of ``batch`` (the epoch's last partial batch
    dropped), step ``lr_at(epoch)``, the weights clipped after every update, the batch-norm
    statistics recomputed on training + validation data after every epoch, then the validation
    and test errors. ``data``: ``((x_train, y_train), (x_valid, y_valid), (x_test, y_test))``.
    ``checkpoint``: a file saved after every epoch (model, optimizer, curves, random state), from
    which a killed run resumes. Returns the curves, ``best_epoch`` (1-based, best validation
    error, the first on ties) and ``test_error_at_best``."""
    device = device or runtime.device()
    opt = torch.optim.SGD(model.parameters(), lr=lr_at(0))
    (xtr, ytr), (xva, yva), (xte, yte) = data
    bn_x = torch.cat([xtr, xva])
    sampler = training.EpochSampler(len(xtr), batch, seed=seed, drop_last=True)
    steps = len(xtr) // batch
    hist = {"val_error": [], "test_error": [], "train_loss": []}
    seconds, first = 0.0, 0
    if checkpoint is not None and os.path.exists(checkpoint):
        state = training.load_checkpoint(checkpoint)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        hist = {k: list(v) for k, v in state["hist"].items()}
        seconds, first = float(state["seconds"]), len(hist["val_error"])
        training._set_rng_state(state["rng"])
    for epoch in range(first, epochs):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(epoch)
        model.train()
        total = 0.0
        for s in range(steps):
            idx = torch.as_tensor(sampler.indices(epoch * steps + s), device=device)
            loss = squared_hinge(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            model.clip_()
            total += training.check_finite(loss.detach(), epoch * steps + s)
        recompute_bn_statistics(model, bn_x, batch)
        hist["train_loss"].append(total / steps)
        hist["val_error"].append(error_rate(model, xva, yva))
        hist["test_error"].append(error_rate(model, xte, yte))
        seconds += time.perf_counter() - t0
        if checkpoint is not None:
            training.save_checkpoint(checkpoint, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                                  "hist": hist, "seconds": seconds, "rng": training._rng_state()})
    best = int(np.argmin(hist["val_error"]))
    return {**hist, "best_epoch": best + 1, "test_error_at_best": hist["test_error"][best], "seconds": seconds}


def train_one(config: Config, variant: str, seed: int, data, *, device=None, checkpoint: str | None = None) -> dict:
    """Train one variant of the MNIST network with one seed (:func:`fit_epochs`); return its
    curves and the test error at the best validation epoch."""
    mode, qb = VARIANTS[variant]
    device = device or runtime.device()
    runtime.seed_everything(seed)
    model = FewMultMLP(config.sizes, mode=mode, quantized_backprop=qb, min_exp=config.min_exp,
                       max_exp=config.max_exp).to(device)
    return fit_epochs(model, data, epochs=config.epochs, batch=config.batch, lr_at=config.lr_at, seed=seed,
                      device=device, checkpoint=checkpoint)


def _data(config: Config, device):
    s = load_mnist()
    mean = torch.as_tensor(s.train.x).mean(0)   # centred by the training mean (pylearn2's center=True)

    def t(split, limit=None):
        x = torch.as_tensor(split.x[:limit]) - mean
        return x.to(device), torch.as_tensor(split.y[:limit]).to(device)
    return t(s.train, config.train_limit), t(s.valid), t(s.test)


def run(config: Config | None = None, *, scale: str | None = None, write: bool = True, results_dir=None,
        device=None, command: str | None = None, models: dict | None = None) -> dict:
    """Train every variant of ``config`` over its seeds; write and return the results:
    ``metrics.test_error.<variant>`` (mean over seeds of the test error at the best validation
    epoch, a fraction), ``test_error_sd.<variant>``, per seed values, ``mults.{forward,backward}.
    <variant>`` (per example, :func:`count_multiplications` on ``config.sizes``) and
    ``curves.{val,test}_error_vs_epoch.<variant>.seed<s>``, and with full precision and more than
    one seed ``welch_p.<variant>_vs_full`` / ``diff.<variant>_vs_full`` (Welch's t-test of the
    per-seed test errors)."""
    study = results.start_study(Config, config, scale, device, models)
    config, device = study.config, study.device
    data = _data(config, device)
    metrics, curves = {}, {}
    for variant in config.variants:
        errs = []
        for seed in config.seeds:
            if config.cache:   # the unit's numbers cached, and a per-epoch checkpoint while it trains
                # the unit's settings: not which other variants and seeds this process runs
                key = {**{k: v for k, v in dataclasses.asdict(config).items() if k not in ("variants", "seeds")},
                       "variant": variant, "seed": seed, "v": 1}
                path = training.unit_cache_path(runtime.checkpoints_dir() / SLUG, f"{variant}-{seed}", key)
                out = training.cached_json(path, lambda variant=variant, seed=seed, path=path: train_one(
                    config, variant, seed, data, device=device, checkpoint=str(path.with_suffix(".pt"))))
            else:
                out = train_one(config, variant, seed, data, device=device)
            errs.append(out["test_error_at_best"])
            metrics[f"test_error.{variant}.seed{seed}"] = out["test_error_at_best"]
            metrics[f"best_epoch.{variant}.seed{seed}"] = float(out["best_epoch"])
            metrics[f"seconds.{variant}.seed{seed}"] = out["seconds"]
            for what in ("val_error", "test_error", "train_loss"):
                curves[f"{what}_vs_epoch.{variant}.seed{seed}"] = [[e + 1, v] for e, v in enumerate(out[what])]
        metrics[f"test_error.{variant}"] = float(np.mean(errs))
        metrics[f"test_error_sd.{variant}"] = float(np.std(errs, ddof=1)) if len(errs) > 1 else 0.0
        mode, qb = VARIANTS[variant]
        counts = count_multiplications(config.sizes, 1, mode=mode, quantized_backprop=qb)
        metrics[f"mults.forward.{variant}"] = float(counts["forward"])
        metrics[f"mults.backward.{variant}"] = float(counts["backward"])
    if "full" in config.variants and len(config.seeds) > 1:
        for v in config.variants:
            if v != "full":
                a = [metrics[f"test_error.{v}.seed{s}"] for s in config.seeds]
                b = [metrics[f"test_error.full.seed{s}"] for s in config.seeds]
                try:
                    w = welch_t_test(a, b)
                except ValueError:   # both arms without spread: no test
                    continue
                metrics[f"welch_p.{v}_vs_full"], metrics[f"diff.{v}_vs_full"] = w.p, w.diff
    metrics["compute_s"] = sum(v for k, v in metrics.items() if k.startswith("seconds."))
    return study.finish(SLUG, metrics, curves, PAPER, seeds=list(config.seeds), command=command, write=write,
                        results_dir=results_dir)


PAPER = {
    "test_error.full": {"value": 0.0133, "status": "V", "source": "authors' README (hantek/BinaryConnect): MNIST, full resolution"},
    "test_error.binary_qb": {"value": 0.0129, "status": "V", "source": "authors' README: MNIST, binary connect + quantized backprop"},
    "test_error.ternary_qb": {"value": 0.0115, "status": "V", "source": "authors' README: MNIST, ternary connect + quantized backprop"},
}


def main(argv: list[str] | None = None) -> int:
    """``python -m papernotes_core.few_multiplications [--variants ...] [--no-write]`` at ``PAPERNOTES_SCALE``."""
    return runtime.study_main(SLUG, Config, run, argv, narrow=runtime.narrow_to("variants", VARIANTS),
                              description=main.__doc__)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
