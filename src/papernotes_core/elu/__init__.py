r"""Exponential Linear Units (Clevert, Unterthiner & Hochreiter, 2015; arXiv:1511.07289).

The activation (paper, Eq. 15; the notes' "x(f)" is a typo for f(x)):

.. math::

    f(x) = \begin{cases} x & x > 0 \\ \alpha\,(e^{x} - 1) & x \le 0 \end{cases}
    \qquad
    f'(x) = \begin{cases} 1 & x > 0 \\ f(x) + \alpha & x \le 0 \end{cases}

This module holds the activation, the paper's MNIST network (Sec. 4.1: eight hidden layers of
128 units, SGD with learning rate 0.01, mini-batches of 64), the pieces of the bias-shift
argument (Sec. 3) the notebook checks numerically, and ``run(config)``, the experiment that
writes ``results/<scale>/elu.json``.

Run from the shell: ``PAPERNOTES_SCALE=cpu python -m papernotes_core.elu``.
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

from .. import results, runtime, training

SLUG = "elu"
ACTIVATIONS = ("elu", "relu", "lrelu", "relu_bn")
LABELS = {"elu": "ELU (α=1)", "relu": "ReLU", "lrelu": "LReLU (α=0.1)", "relu_bn": "ReLU + batch norm"}
DATASETS = ("mnist", "fashion_mnist")


# --------------------------------------------------------------------------------------------
# The activation
# --------------------------------------------------------------------------------------------

def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a number >= 0, got {type(alpha).__name__}")
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0 (the paper uses 1.0), got {alpha}")
    return float(alpha)


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    r"""The ELU, :math:`f(x) = x` for :math:`x > 0` and :math:`\alpha(e^x - 1)` for :math:`x \le 0`.

    Computed with ``expm1`` of :math:`\min(x, 0)`, so large positive inputs never overflow and
    small negative ones keep full precision. ``alpha`` must be >= 0 (a negative alpha would
    make the function non-monotone); ``ValueError`` otherwise.
    """
    alpha = _check_alpha(alpha)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    return torch.where(x > 0, x, alpha * torch.expm1(torch.clamp(x, max=0.0)))


def elu_grad(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    r"""The derivative :math:`f'(x) = 1` for :math:`x > 0` and :math:`\alpha e^x = f(x) + \alpha` for :math:`x \le 0`."""
    alpha = _check_alpha(alpha)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    return torch.where(x > 0, torch.ones_like(x), alpha * torch.exp(torch.clamp(x, max=0.0)))


class ELU(nn.Module):
    """The ELU as a module, for the networks.

    It computes :func:`elu` with PyTorch's fused kernel (``torch.nn.functional.elu``), which
    the tests check equals :func:`elu` and its gradient :func:`elu_grad`: written out as tensor
    operations the formula costs an order of magnitude more per element forward and backward
    (``make bench``, ``results/bench/elu.json``), which doubled the time of a whole training
    run of the MNIST network.
    """

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = _check_alpha(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


# --------------------------------------------------------------------------------------------
# Why the mean moves toward zero: the mean activation under Gaussian pre-activations
# --------------------------------------------------------------------------------------------

def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _Phi(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


def gaussian_mean_activation(activation: str, mean: float, std: float, *, alpha: float = 1.0,
                             leak: float = 0.1) -> float:
    r""":math:`\mathbb{E}[f(z)]` for :math:`z \sim \mathcal{N}(m, s^2)`, in closed form.

    With :math:`\Phi, \varphi` the standard normal CDF and density and :math:`r = m/s`:

    * ReLU: :math:`m\Phi(r) + s\varphi(r)`
    * LReLU: ReLU's mean :math:`+\ \text{leak}\,(m\Phi(-r) - s\varphi(r))`
    * ELU: ReLU's mean :math:`+\ \alpha\big(e^{m + s^2/2}\,\Phi(-(m + s^2)/s) - \Phi(-r)\big)`

    (the last from :math:`\mathbb{E}[e^z; z \le 0] = e^{m+s^2/2}\Phi(-(m+s^2)/s)`).
    """
    if activation not in ("elu", "relu", "lrelu"):
        raise ValueError(f"activation must be 'elu', 'relu' or 'lrelu', got {activation!r}")
    if not std > 0:
        raise ValueError(f"std must be > 0, got {std}")
    alpha = _check_alpha(alpha)
    r = mean / std
    relu_mean = mean * _Phi(r) + std * _phi(r)
    if activation == "relu":
        return relu_mean
    if activation == "lrelu":
        return relu_mean + leak * (mean * _Phi(-r) - std * _phi(r))
    exp_part = math.exp(mean + 0.5 * std * std) * _Phi(-(mean + std * std) / std)
    return relu_mean + alpha * (exp_part - _Phi(-r))


# --------------------------------------------------------------------------------------------
# The bias shift and the natural gradient (paper, Sec. 3)
# --------------------------------------------------------------------------------------------

def unit_fisher(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    r"""Fisher matrix of a linear unit :math:`y = w^\top a + b + \varepsilon` (unit Gaussian noise).

    For inputs :math:`a` with mean :math:`\mu` and covariance :math:`C`, the Fisher matrix of
    :math:`\theta = (w, b)` is :math:`\mathbb{E}[\tilde a \tilde a^\top]` with
    :math:`\tilde a = (a, 1)`:

    .. math:: F = \begin{pmatrix} C + \mu\mu^\top & \mu \\ \mu^\top & 1 \end{pmatrix}

    The off-diagonal block, which couples the weights to the bias, is the mean :math:`\mu`:
    it vanishes exactly when the incoming activations are centred.
    """
    mean = np.asarray(mean, dtype=float)
    cov = np.asarray(cov, dtype=float)
    if mean.ndim != 1 or cov.shape != (mean.size, mean.size):
        raise ValueError(f"mean must be (d,) and cov (d, d); got {mean.shape} and {cov.shape}")
    d = mean.size
    fisher = np.empty((d + 1, d + 1))
    fisher[:d, :d] = cov + np.outer(mean, mean)
    fisher[:d, d] = fisher[d, :d] = mean
    fisher[d, d] = 1.0
    return fisher


def natural_gradient(grad_w: np.ndarray, grad_b: float, mean: np.ndarray, cov: np.ndarray):
    r"""The natural gradient :math:`F^{-1} g` of the unit above, by the block inverse.

    Inverting :math:`F` blockwise (Schur complement of the bias entry, which is :math:`C`):

    .. math::

        \Delta w = C^{-1}(g_w - \mu\, g_b), \qquad \Delta b = g_b - \mu^\top \Delta w .

    The bias update is the plain bias gradient *corrected by the mean times the weight update*:
    that correction is the bias shift. With :math:`\mu = 0` the natural gradient is
    :math:`(C^{-1} g_w,\ g_b)` and, for whitened inputs, equals the plain gradient.
    Returns ``(delta_w, delta_b)``.
    """
    mean = np.asarray(mean, dtype=float)
    cov = np.asarray(cov, dtype=float)
    grad_w = np.asarray(grad_w, dtype=float)
    if grad_w.shape != mean.shape or cov.shape != (mean.size, mean.size):
        raise ValueError(
            f"grad_w and mean must be (d,) and cov (d, d); got {grad_w.shape}, {mean.shape}, {cov.shape}"
        )
    delta_w = np.linalg.solve(cov, grad_w - mean * float(grad_b))
    delta_b = float(grad_b) - float(mean @ delta_w)
    return delta_w, delta_b


def gradient_descent_steps(mean_shift: float, *, dim: int = 10, tol: float = 1e-6,
                           max_steps: int = 1_000_000) -> int:
    r"""Steps of gradient descent to fit a linear unit when its inputs have mean ``mean_shift``.

    The loss :math:`\tfrac12\mathbb{E}[(w^\top a + b - y)^2]` is a quadratic with Hessian
    :math:`F` (:func:`unit_fisher`, here with :math:`C = I` and :math:`\mu = m\mathbf{1}`).
    With the best fixed step :math:`2/(\lambda_{\max} + \lambda_{\min})` the error contracts by
    :math:`(\kappa - 1)/(\kappa + 1)` per step, :math:`\kappa = \lambda_{\max}/\lambda_{\min}`,
    so the step count grows with the mean. Returns the steps until the parameter error, started
    at 1 in every coordinate, falls below ``tol``.
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol}")
    hessian = unit_fisher(np.full(dim, float(mean_shift)), np.eye(dim))
    eig = np.linalg.eigvalsh(hessian)
    lr = 2.0 / (eig[-1] + eig[0])
    err = np.ones(dim + 1)
    for step in range(1, max_steps + 1):
        err = err - lr * (hessian @ err)
        if np.linalg.norm(err) < tol:
            return step
    raise RuntimeError(f"gradient descent did not reach tol={tol} in {max_steps} steps")


# --------------------------------------------------------------------------------------------
# The paper's MNIST network
# --------------------------------------------------------------------------------------------

def make_activation(name: str, *, alpha: float = 1.0, leak: float = 0.1) -> nn.Module:
    """The module for ``name`` in :data:`ACTIVATIONS` (``relu_bn`` uses a plain ReLU after BN)."""
    if name == "elu":
        return ELU(alpha)
    if name in ("relu", "relu_bn"):
        return nn.ReLU()
    if name == "lrelu":
        return nn.LeakyReLU(leak)
    raise ValueError(f"unknown activation {name!r}: expected one of {', '.join(ACTIVATIONS)}")


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units, then a linear read-out of ``classes`` logits.

    Weights are initialised as in the paper (He et al., 2015: normal with variance
    2 / fan-in), biases at zero. With ``activation="relu_bn"`` each hidden layer is
    Linear → BatchNorm → ReLU (our addition: the paper's batch-norm comparison is on CIFAR-100).
    ``forward(x, return_hidden=True)`` also returns each hidden layer's output.
    """

    def __init__(self, activation: str, *, inputs: int = 784, depth: int = 8, width: int = 128,
                 classes: int = 10, alpha: float = 1.0, leak: float = 0.1):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: expected one of {', '.join(ACTIVATIONS)}")
        for name, value in (("inputs", inputs), ("depth", depth), ("width", width), ("classes", classes)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.activation = activation
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.acts = nn.ModuleList()
        fan_in = inputs
        for _ in range(depth):
            self.linears.append(nn.Linear(fan_in, width))
            self.norms.append(nn.BatchNorm1d(width) if activation == "relu_bn" else nn.Identity())
            self.acts.append(make_activation(activation, alpha=alpha, leak=leak))
            fan_in = width
        self.readout = nn.Linear(fan_in, classes)
        for layer in [*self.linears, self.readout]:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        hidden = []
        for linear, norm, act in zip(self.linears, self.norms, self.acts):
            x = act(norm(linear(x)))
            hidden.append(x)
        logits = self.readout(x)
        return (logits, hidden) if return_hidden else logits


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    """Every knob of the experiment. ``quick()``, ``cpu()``, ``paper()`` give the three scales.

    ``epochs`` is per data set. ``train_limit`` trains on the first n training images (None:
    all 50,000). ``track_limit`` is the fixed subset of training images on which losses and
    activations are tracked after every epoch (the paper: "a fixed subset of the training
    data"); the final training loss is over the whole training set used.
    """

    datasets: tuple[str, ...] = DATASETS
    activations: tuple[str, ...] = ACTIVATIONS
    depth: int = 8
    width: int = 128
    alpha: float = 1.0
    leak: float = 0.1
    lr: float = 0.01
    batch_size: int = 64
    epochs: int = 300
    train_limit: int | None = None
    track_limit: int = 10_000
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    #: the epoch (or the last, if fewer) at which ``early_train_loss`` is read: the paper's
    #: claim is about *speed*
    early_epoch: int = 10
    # torch threads: these layers are too small for a second thread to pay, and on a busy
    # machine two threads contend badly (measured: 7 ms/step with 1 thread, 16 ms with 2)
    threads: int | None = None
    checkpoint: bool = True

    def __post_init__(self):
        for d in self.datasets:
            if d not in DATASETS:
                raise ValueError(f"unknown data set {d!r}: expected one of {DATASETS}")
        for a in self.activations:
            if a not in ACTIVATIONS:
                raise ValueError(f"unknown activation {a!r}: expected one of {ACTIVATIONS}")
        _check_alpha(self.alpha)
        if self.epochs < 1 or self.batch_size < 1 or self.track_limit < 1 or not self.seeds:
            raise ValueError("epochs, batch_size and track_limit must be >= 1 and seeds non-empty")
        if self.early_epoch < 1:
            raise ValueError(f"early_epoch must be >= 1, got {self.early_epoch}")
        if self.train_limit is not None and self.train_limit < self.batch_size:
            raise ValueError(f"train_limit ({self.train_limit}) must be at least batch_size ({self.batch_size})")

    @classmethod
    def quick(cls) -> "Config":
        """CI scale: 5,000 training images, 4 epochs, one seed; well under 90 s on 2 cores."""
        return cls(epochs=4, train_limit=5_000, track_limit=2_000, seeds=(0,), checkpoint=False, threads=1,
                   early_epoch=2)

    @classmethod
    def cpu(cls) -> "Config":
        """Two CPU cores, about half an hour: all 50,000 images, 40 epochs, 3 seeds."""
        return cls(epochs=40, seeds=(0, 1, 2), threads=1)

    @classmethod
    def paper(cls) -> "Config":
        """The paper's MNIST study: 300 epochs (we keep 5 seeds; the paper averages 5 runs)."""
        return cls(epochs=300, seeds=(0, 1, 2, 3, 4))


def load_data(name: str, train_limit: int | None = None):
    """``(x_train, y_train, x_valid, y_valid, x_test, y_test)`` as float32 / int64 tensors."""
    from .. import data

    if name == "mnist":
        splits = data.load_mnist()
    elif name == "fashion_mnist":
        splits = data.load_fashion_mnist()
    else:
        raise ValueError(f"unknown data set {name!r}: expected one of {DATASETS}")
    out = []
    for split in ("train", "valid", "test"):
        x, y = splits[split]
        if split == "train" and train_limit is not None:
            x, y = x[:train_limit], y[:train_limit]
        out += [torch.as_tensor(np.asarray(x, dtype=np.float32)), torch.as_tensor(np.asarray(y, dtype=np.int64))]
    return tuple(out)


@torch.no_grad()
def evaluate(model: MLP, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048) -> dict:
    """Loss, error and activation statistics of ``model`` on ``(x, y)``, in eval mode.

    Returns ``loss`` (mean cross-entropy, nats), ``error`` (fraction misclassified),
    ``layer_mean`` (each hidden layer's mean activation), ``mean_abs`` (mean |activation| over
    all hidden units and layers) and ``median_unit_mean`` (the median over all hidden units of
    each unit's average activation: the statistic of the paper's Fig. 2a).
    """
    was_training = model.training
    model.eval()
    loss_sum, wrong, n = 0.0, 0, 0
    unit_sums = None
    abs_sum = 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        logits, hidden = model(xb, return_hidden=True)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        wrong += (logits.argmax(1) != yb).sum().item()
        sums = torch.stack([h.sum(0) for h in hidden])  # (depth, width)
        unit_sums = sums if unit_sums is None else unit_sums + sums
        abs_sum += sum(h.abs().sum().item() for h in hidden)
        n += len(xb)
    model.train(was_training)
    unit_means = unit_sums / n
    return {
        "loss": loss_sum / n,
        "error": wrong / n,
        "layer_mean": unit_means.mean(1).tolist(),
        "mean_abs": abs_sum / (n * unit_means.numel()),
        "median_unit_mean": unit_means.flatten().median().item(),
    }


#: The config fields that shape one run's training; the checkpoint name hashes them, so a
#: changed field starts afresh while a study narrowed to fewer data sets or seeds reuses runs.
_RUN_FIELDS = ("depth", "width", "alpha", "leak", "lr", "batch_size", "epochs", "train_limit", "track_limit")


def _checkpoint_path(config: Config, dataset: str, activation: str, seed: int):
    """Per-run checkpoint file: data set, activation, seed, and a hash of :data:`_RUN_FIELDS`."""
    import hashlib
    import json

    fields = {k: getattr(config, k) for k in _RUN_FIELDS}
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
    return runtime.checkpoints_dir() / SLUG / f"{dataset}-{activation}-seed{seed}-{key}.pt"


def train_one(config: Config, dataset: str, activation: str, seed: int, splits, *, device=None,
              checkpoint: bool = False) -> dict:
    """Train one network; return its per-epoch history and final statistics.

    SGD with the paper's learning rate and batch size on the cross-entropy loss; the data order
    comes from :class:`training.EpochSampler` (a pure function of seed and step). With
    ``checkpoint=True`` the model, optimizer and history are saved after every epoch
    (:func:`training.save_checkpoint`, atomic) and a killed run resumes where it stopped.
    The result's ``seconds`` is the run's own training and tracking time, summed over resumes.
    """
    device = device or runtime.device()
    x_train, y_train, x_valid, y_valid, x_test, y_test = (t.to(device) for t in splits)
    runtime.seed_everything(seed)
    model = MLP(activation, depth=config.depth, width=config.width, alpha=config.alpha, leak=config.leak).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr)
    sampler = training.EpochSampler(len(x_train), config.batch_size, seed=seed)
    spe = sampler.steps_per_epoch
    track_x, track_y = x_train[:config.track_limit], y_train[:config.track_limit]
    x_valid, y_valid = x_valid[:config.track_limit], y_valid[:config.track_limit]

    def record(history: dict, epoch: int) -> None:
        stats = evaluate(model, track_x, track_y)
        history["epoch"].append(epoch)
        history["track_loss"].append(stats["loss"])
        history["valid_loss"].append(evaluate(model, x_valid, y_valid)["loss"])
        history["median_unit_mean"].append(stats["median_unit_mean"])

    path = _checkpoint_path(config, dataset, activation, seed) if checkpoint else None
    if path is not None and path.exists():
        saved = training.load_checkpoint(path, map_location=device)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        history = {k: list(v) for k, v in saved["history"].items()}
        seconds = float(saved["seconds"])
    else:
        history = {"epoch": [], "track_loss": [], "valid_loss": [], "median_unit_mean": []}
        record(history, 0)
        seconds = 0.0
    for epoch in range(history["epoch"][-1] + 1, config.epochs + 1):
        start = time.perf_counter()
        offset = (epoch - 1) * spe

        def loss_at_step(step: int) -> torch.Tensor:
            idx = torch.as_tensor(sampler.indices(offset + step), device=device)
            return F.cross_entropy(model(x_train[idx]), y_train[idx])

        training.fit(model, opt, loss_at_step, spe, log_every=spe, show_progress=False)
        record(history, epoch)
        seconds += time.perf_counter() - start
        if path is not None:
            training.save_checkpoint(path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                            "history": history, "seconds": seconds})
    final = evaluate(model, x_train, y_train)
    return {"history": history, "final": final, "test_error": evaluate(model, x_test, y_test)["error"],
            "seconds": seconds}


def _mean_sd(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), (float(arr.std(ddof=1)) if arr.size > 1 else 0.0)


PAPER = {
    # The MNIST study reports curves only (Fig. 2): no number to compare with, stated as such.
    "train_loss.elu": {"value": None, "source": "Fig. 2b (curves only): ELU's training loss falls fastest", "status": "V"},
    "train_loss.relu": {"value": None, "source": "Fig. 2b (curves only)", "status": "V"},
    "train_loss.lrelu": {"value": None, "source": "Fig. 2b (curves only)", "status": "V"},
    "median_unit_mean.elu": {"value": None, "source": "Fig. 2a (curves only): ELU's median stays closest to 0", "status": "V"},
}


def run(config: Config | None = None, *, scale: str | None = None, write: bool = True,
        results_dir=None, device=None, command: str | None = None) -> dict:
    """Train every (data set, activation, seed) of ``config``; write and return the results.

    ``metrics`` (means over seeds; ``*_sd`` the standard deviation across seeds, 0 for one seed):
    ``train_loss.<act>`` final training cross-entropy on MNIST (whole training set),
    ``early_train_loss.<act>`` the tracked training loss after ``early_epoch`` epochs (the
    paper's claim is that ELU's loss falls *faster*), ``mean_abs_activation.<act>``,
    ``median_unit_mean.<act>``, ``test_error.<act>``, and the same under ``fashion.`` for
    Fashion-MNIST; ``compute_s``, the training time of all runs summed (each run's own time,
    kept in its checkpoint, so it survives resumes and runs done by other processes). ``curves``: ``<dataset>.track_loss.<act>``,
    ``<dataset>.valid_loss.<act>``, ``<dataset>.median_unit_mean.<act>`` against epoch (seed
    mean) and ``<dataset>.layer_mean.<act>`` against layer index.
    """
    study = results.start_study(Config, config, scale, device)
    config, device = study.config, study.device
    metrics, curves, compute_s = {}, {}, 0.0
    jobs = [(d, a, s) for d in config.datasets for a in config.activations for s in config.seeds]
    bar = training.progress(total=len(jobs), desc="ELU study")
    for dataset in config.datasets:
        splits = load_data(dataset, config.train_limit)
        prefix = "" if dataset == "mnist" else "fashion."
        for act in config.activations:
            runs = []
            for seed in config.seeds:
                runs.append(train_one(config, dataset, act, seed, splits, device=device,
                                      checkpoint=config.checkpoint))
                bar.update(1)
            for key, values in (
                ("train_loss", [r["final"]["loss"] for r in runs]),
                ("early_train_loss", [r["history"]["track_loss"][min(config.early_epoch, config.epochs)] for r in runs]),
                ("mean_abs_activation", [r["final"]["mean_abs"] for r in runs]),
                ("median_unit_mean", [r["final"]["median_unit_mean"] for r in runs]),
                ("test_error", [r["test_error"] for r in runs]),
            ):
                mean, sd = _mean_sd(values)
                metrics[f"{prefix}{key}.{act}"] = mean
                metrics[f"{prefix}{key}_sd.{act}"] = sd
            epochs = runs[0]["history"]["epoch"]
            for key in ("track_loss", "valid_loss", "median_unit_mean"):
                mean_curve = np.mean([r["history"][key] for r in runs], axis=0)
                curves[f"{dataset}.{key}.{act}"] = [[e, float(v)] for e, v in zip(epochs, mean_curve)]
            compute_s += sum(r["seconds"] for r in runs)
            layer = np.mean([r["final"]["layer_mean"] for r in runs], axis=0)
            curves[f"{dataset}.layer_mean.{act}"] = [[i + 1, float(v)] for i, v in enumerate(layer)]
    bar.close()
    metrics["compute_s"] = compute_s
    return study.finish(SLUG, metrics, curves, PAPER, seeds=list(config.seeds), command=command, write=write,
                        results_dir=results_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m papernotes_core.elu [--datasets mnist ...] [--no-write]`` at ``PAPERNOTES_SCALE``.

    ``--datasets`` narrows the study (e.g. to train MNIST and Fashion-MNIST in two processes at
    once); with ``checkpoint`` on, a final full run then only gathers the finished runs. Use
    ``--no-write`` for such partial runs so they don't overwrite the results file.
    """
    narrow = ("--datasets", {"nargs": "+", "choices": DATASETS},
              lambda config, values: dataclasses.replace(config, datasets=tuple(values)))
    return runtime.study_main(SLUG, Config, run, argv, narrow=narrow, description=main.__doc__)


if __name__ == "__main__":  # pragma: no cover - the command line entry point
    sys.exit(main())
