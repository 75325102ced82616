r"""The paper's CIFAR-10 and SVHN conv nets (Sec. 5), for a GPU: no offline source for the data.

As the authors' ``cifar10.py`` / ``svhn.py`` and ``layer.py`` (hantek/BinaryConnect) build them:

* **Architecture** (both data sets): ``128C3 - 128C3 - P2 - 256C2 - 256C2 - P2 - 512C2 -
  512C2 - P2 - 1024C2 - FC1024 - 10``: "valid" convolutions without bias (maps 32 → 30 → 28 →
  14 → 13 → 12 → 6 → 5 → 4 → 2 → 1), 2×2 max-pooling with stride 2 *before* batch
  normalisation, then ReLU; a fully connected ReLU layer of 1024 units; a linear output of 10
  with batch norm, scored by the squared hinge loss. Batch norm everywhere with
  :math:`\epsilon = 10^{-4}`, one mean and variance per feature map.
* **Binary / ternary connect** in every layer, with :math:`H` half the Glorot range of the layer
  computed as ``conv_layer`` does it: fan-in :math:`c_\text{in} k^2`, fan-out :math:`c_\text{out}
  k^2 / p^2` for a :math:`p \times p` pooling (:func:`conv_h`).
* **Quantized back-propagation** in the convolutional layers clips the lower exponent to
  :math:`[-4, 3]`, so the inputs round to powers of two from :math:`2^{-4}` to :math:`2^{4}`
  (``min_exp=-4, max_exp=4`` here; below :math:`2^{-4}` ours rounds unbiasedly to 0 or
  :math:`2^{-4}`, where ``layer.py`` always takes :math:`2^{-4}`).
* **Training**: batch 100, plain SGD, the step decaying geometrically from 0.3 to 0.001 over the
  run (300 epochs on CIFAR-10, 60 on SVHN), evaluation with the real weights, the test error at
  the epoch of best validation error (:func:`~papernotes_core.few_multiplications.fit_epochs`).
* **Data**: CIFAR-10 45,000 / 5,000 / 10,000 after global contrast normalisation (scale 55)
  and ZCA whitening (pylearn2's ``pylearn2_gcn_whitened``), :func:`load_data`. The authors'
  SVHN is pylearn2's split (train + extra less 6,000 validation images: 598,388 / 6,000 /
  26,032, :func:`~papernotes_core.data.svhn.load_svhn`) after global and LeCun's local contrast
  normalisation (``svhn_preprocessing.py``; :mod:`~papernotes_core.data.preprocess`), the local
  one on the red channel only, as pylearn2's ``LeCunLCN`` has done since 2014 (see
  :func:`~papernotes_core.data.preprocess.lecun_lcn`).

The authors report (README) CIFAR-10 test errors of 15.64 % (full resolution), 12.08 % (binary)
and 12.01 % (ternary), SVHN 2.85 / 2.48 / 2.42 %, after about 5 and 15 hours on a Titan X.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .layers import MODES, SampledWeights, _check_exponents, quantize_pow2

__all__ = ["ARCH", "CNNConfig", "FewMultCNN", "FewMultConv2d", "PAPER_CNN", "conv_h", "load_data", "run_cnn", "train_cnn"]

#: ``(out channels, kernel, pool)`` per convolutional layer, then the hidden FC width.
ARCH = ((128, 3, 1), (128, 3, 2), (256, 2, 1), (256, 2, 2), (512, 2, 1), (512, 2, 2), (1024, 2, 1))
FC_UNITS = 1024

#: The authors' README (hantek/BinaryConnect), test error as a fraction.
PAPER_CNN = {"cifar10": {"full": 0.1564, "binary_qb": 0.1208, "ternary_qb": 0.1201},
             "svhn": {"full": 0.0285, "binary_qb": 0.0248, "ternary_qb": 0.0242}}


def conv_h(in_channels: int, out_channels: int, kernel: int, pool: int = 1) -> float:
    r""":math:`H = \tfrac12 \sqrt{6 / (n_\text{in} + n_\text{out})}` with ``conv_layer``'s fans:
    :math:`n_\text{in} = c_\text{in} k^2`, :math:`n_\text{out} = c_\text{out} k^2 / p^2`."""
    for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("kernel", kernel),
                    ("pool", pool)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    return 0.5 * math.sqrt(6.0 / (in_channels * kernel ** 2 + out_channels * kernel ** 2 / pool ** 2))


class _QuantizedConv(torch.autograd.Function):
    """``F.conv2d(x, w)`` ("valid", stride 1) whose weight gradient uses power-of-two inputs."""

    @staticmethod
    def forward(ctx, x, w, min_exp, max_exp):
        ctx.save_for_backward(x, w)
        ctx.exps = (min_exp, max_exp)
        return F.conv2d(x, w)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        grad_x = torch.nn.grad.conv2d_input(x.shape, w, g) if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            xq = quantize_pow2(x, min_exp=ctx.exps[0], max_exp=ctx.exps[1])
            grad_w = torch.nn.grad.conv2d_weight(xq, w.shape, g)
        return grad_x, grad_w, None, None


class FewMultConv2d(SampledWeights):
    """A "valid" convolution (no bias) with binary connect, ternary connect or real weights, and
    optionally quantized back-propagation; the conv counterpart of
    :class:`~papernotes_core.few_multiplications.FewMultLinear` (same initialisation
    :math:`U[-2H, 2H]`, clipping to :math:`[-H, H]`, evaluation with the real weights)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, *, pool: int = 1, mode: str = "binary",
                 stochastic: bool = True, quantized_backprop: bool = False, min_exp: int | None = -4,
                 max_exp: int | None = 4):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.H = conv_h(in_channels, out_channels, kernel, pool)
        self.mode, self.stochastic, self.quantized_backprop = mode, bool(stochastic), bool(quantized_backprop)
        self.min_exp, self.max_exp = _check_exponents(min_exp, max_exp)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel, kernel)
                                   .uniform_(-2 * self.H, 2 * self.H))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.effective_weight()
        if self.quantized_backprop and self.training and torch.is_grad_enabled():
            return _QuantizedConv.apply(x, w, self.min_exp, self.max_exp)
        return F.conv2d(x, w)


class FewMultCNN(nn.Module):
    """The paper's conv net (:data:`ARCH`): per layer convolution → max-pool → batch norm → ReLU,
    then FC 1024 → batch norm → ReLU, FC 10 → batch norm. ``arch``/``fc_units``/``image``
    shrink it for tests."""

    def __init__(self, *, mode: str = "binary", quantized_backprop: bool = False, stochastic: bool = True,
                 arch=ARCH, fc_units: int = FC_UNITS, in_channels: int = 3, image: int = 32, classes: int = 10,
                 min_exp: int | None = -4, max_exp: int | None = 4):
        super().__init__()
        from . import FewMultLinear

        blocks, c, size = [], in_channels, image
        for out, k, p in arch:
            size = size - k + 1
            if size < 1 or size % p:
                raise ValueError(f"arch {arch!r} does not fit a {image}x{image} image: a map of {size} "
                                 f"pixels cannot be pooled by {p}")
            blocks.append(FewMultConv2d(c, out, k, pool=p, mode=mode, stochastic=stochastic,
                                        quantized_backprop=quantized_backprop, min_exp=min_exp, max_exp=max_exp))
            if p > 1:
                blocks.append(nn.MaxPool2d(p, p))
                size //= p
            blocks += [nn.BatchNorm2d(out, eps=1e-4, momentum=None), nn.ReLU()]
            c = out
        blocks.append(nn.Flatten())
        kw = dict(mode=mode, stochastic=stochastic, quantized_backprop=quantized_backprop, bias=False)
        blocks += [FewMultLinear(c * size * size, fc_units, **kw), nn.BatchNorm1d(fc_units, eps=1e-4, momentum=None),
                   nn.ReLU(), FewMultLinear(fc_units, classes, **kw), nn.BatchNorm1d(classes, eps=1e-4, momentum=None)]
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def clip_(self) -> None:
        for m in self.net:
            if hasattr(m, "clip_"):
                m.clip_()


@dataclass(frozen=True)
class CNNConfig:
    """One conv-net study: ``dataset`` ("cifar10" or "svhn"), the variants and seeds, the
    epochs, batch 100 and the step decaying from ``lr`` to ``lr_final`` over ``epochs``."""

    dataset: str = "cifar10"
    variants: tuple[str, ...] = ("full", "binary_qb", "ternary_qb")
    epochs: int = 300
    batch: int = 100
    lr: float = 0.3
    lr_final: float = 0.001
    seeds: tuple[int, ...] = (0, 1, 2)
    train_limit: int | None = None

    def __post_init__(self):
        from . import VARIANTS

        if self.dataset not in PAPER_CNN:
            raise ValueError(f"dataset must be one of {tuple(PAPER_CNN)}, got {self.dataset!r}")
        if not isinstance(self.variants, tuple) or not self.variants or not set(self.variants) <= set(VARIANTS):
            raise ValueError(f"variants must be a non-empty tuple drawn from {tuple(VARIANTS)}, got {self.variants!r}")
        for name in ("epochs", "batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not (0 < self.lr_final <= self.lr):
            raise ValueError(f"need 0 < lr_final <= lr, got lr={self.lr}, lr_final={self.lr_final}")
        if not isinstance(self.seeds, tuple) or not self.seeds:
            raise ValueError(f"seeds must be a non-empty tuple, got {self.seeds!r}")

    def lr_at(self, epoch: int) -> float:
        """``cifar10.py``: ``LR_decay = (LR_fin / LR) ** (1 / n_epoch)``, applied every epoch."""
        return self.lr * (self.lr_final / self.lr) ** (epoch / self.epochs)

    @classmethod
    def paper(cls, dataset: str = "cifar10") -> "CNNConfig":
        """The authors' run: CIFAR-10 300 epochs, SVHN 60 epochs, 3 seeds (a GPU: about 5 and
        15 hours per run on the authors' Titan X)."""
        return cls(dataset=dataset, epochs=300 if dataset == "cifar10" else 60)


def load_data(dataset: str, *, train_limit: int | None = None, device=None, extra: bool = True):
    """The preprocessed ``((x, y) train, valid, test)`` tensors of ``dataset``. CIFAR-10 (a
    163 MiB download): GCN (scale 55) + ZCA (bias 0.1) fitted on the training split. SVHN (1.5 GiB
    of downloads with ``extra``, the authors' split; about 10 GB of memory at the peak): GCN
    (scale 1) then LeCun's LCN (7 x 7, on channel 0, as pylearn2 did), example by example;
    ``extra=False`` uses the training file alone (69,257 / 4,000 / 26,032)."""
    from .. import data as datasets

    if dataset == "cifar10":
        from ..elu.cifar import preprocess   # pylearn2's GCN (scale 55) + ZCA (bias 0.1), as for CIFAR-100

        s = datasets.load_cifar10()
        arrays = preprocess(*(s[k].x for k in ("train", "valid", "test")))
    elif dataset == "svhn":
        from ..data.preprocess import global_contrast_normalize, lecun_lcn
        from ..data.svhn import load_svhn

        s = load_svhn(extra=extra)
        arrays = [lecun_lcn(global_contrast_normalize(s[k].x, copy=False), channels=(0,), copy=False)
                  for k in ("train", "valid", "test")]
    else:
        raise ValueError(f"dataset must be one of {tuple(PAPER_CNN)}, got {dataset!r}")
    ys = [s[k].y for k in ("train", "valid", "test")]
    if train_limit is not None:
        arrays[0], ys[0] = arrays[0][:train_limit], ys[0][:train_limit]
    return tuple((torch.as_tensor(np.asarray(a, dtype=np.float32)).to(device), torch.as_tensor(y).to(device))
                 for a, y in zip(arrays, ys))


def train_cnn(config: CNNConfig, variant: str, seed: int, data=None, *, device=None, checkpoint: str | None = None,
              model_kw: dict | None = None) -> dict:
    """Train one variant of the conv net with one seed; per-epoch ``checkpoint`` to resume.
    ``data`` defaults to :func:`load_data`; ``model_kw`` is passed to :class:`FewMultCNN`."""
    from . import VARIANTS, fit_epochs
    from .. import runtime

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got {variant!r}")
    device = device or runtime.device()
    if data is None:
        data = load_data(config.dataset, train_limit=config.train_limit, device=device)
    mode, qb = VARIANTS[variant]
    runtime.seed_everything(seed)
    model = FewMultCNN(mode=mode, quantized_backprop=qb, **(model_kw or {})).to(device)
    return fit_epochs(model, data, epochs=config.epochs, batch=config.batch, lr_at=config.lr_at, seed=seed,
                      device=device, checkpoint=checkpoint)


def run_cnn(config: CNNConfig | None = None, *, data=None, device=None, write: bool = True, results_dir=None,
            model_kw: dict | None = None) -> dict:
    """Every variant and seed of ``config`` (default ``CNNConfig.paper("cifar10")``), each run
    checkpointed per epoch under ``PAPERNOTES_CHECKPOINTS/few_multiplications/`` (a killed run
    resumes); returns and, with ``write``, writes ``results/paper/few_multiplications_<dataset>.json``:
    ``metrics.test_error.<variant>`` (mean over seeds, at the best validation epoch, a fraction),
    ``test_error_sd.<variant>``, per-seed values, and the validation curves."""
    import hashlib
    import json
    import time

    from .. import results, runtime

    config = config or CNNConfig.paper("cifar10")
    device = device or runtime.device()
    data = data if data is not None else load_data(config.dataset, train_limit=config.train_limit, device=device)
    t0, code = time.perf_counter(), results.code_state()
    key = hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True).encode()).hexdigest()[:10]
    metrics, curves = {}, {}
    for variant in config.variants:
        errs = []
        for seed in config.seeds:
            path = runtime.checkpoints_dir() / "few_multiplications" / f"{config.dataset}-{variant}-seed{seed}-{key}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            out = train_cnn(config, variant, seed, data, device=device, checkpoint=str(path), model_kw=model_kw)
            errs.append(out["test_error_at_best"])
            metrics[f"test_error.{variant}.seed{seed}"] = out["test_error_at_best"]
            metrics[f"best_epoch.{variant}.seed{seed}"] = float(out["best_epoch"])
            metrics[f"seconds.{variant}.seed{seed}"] = out["seconds"]
            curves[f"val_error_vs_epoch.{variant}.seed{seed}"] = [[e + 1, v] for e, v in enumerate(out["val_error"])]
        metrics[f"test_error.{variant}"] = float(np.mean(errs))
        metrics[f"test_error_sd.{variant}"] = float(np.std(errs, ddof=1)) if len(errs) > 1 else 0.0
    paper = {f"test_error.{v}": {"value": e, "status": "V", "source": f"authors' README (hantek/BinaryConnect): "
                                 f"{config.dataset}, {v}"}
             for v, e in PAPER_CNN[config.dataset].items() if f"test_error.{v}" in metrics}
    out = results.validate({"slug": f"few_multiplications_{config.dataset}", "scale": "paper", "metrics": metrics,
                            "curves": curves, "paper": paper,
                            "provenance": results.provenance(config, list(config.seeds),
                                                             wall_s=time.perf_counter() - t0, device=device,
                                                             code=code)})
    if write:
        results.write(out, results_dir)
    return out
