"""The ELU paper's CIFAR-100 comparison (Sec. 4.2), for Colab: CIFAR has no offline source.

CIFAR needs internet (see ``papernotes_core.data.cifar``), so ``train_cifar`` runs in Colab or
wherever the data can be downloaded; ``tests/test_elu_cifar.py`` runs it on small random data.

What it holds:

* :class:`CifarCNN`: the 11-layer CNN of Sec. 4.2, with ELU / ReLU / LReLU / SReLU units and the
  batch-norm variant;
* GCN + ZCA preprocessing as in Goodfellow et al. (2013) and the pad-4 / random-crop / flip
  augmentation;
* :class:`CifarConfig`, :func:`cifar100_paper`, :func:`cifar100_colab`, :func:`train_one_cifar`
  and :func:`train_cifar` built on ``training.fit`` and ``training.EpochSampler``.

=================================================================================================
What the paper says (Clevert, Unterthiner & Hochreiter, arXiv:1511.07289, ICLR 2016), Sec. 4.2
"Comparison of Activation Functions", quoted from the paper's text as stored in the code search
index (an embedding-ready rendering of the paper, chunks body-0017 .. body-0032; LaTeX and the
multiplication signs are written here as plain text, the words are the paper's):

  [S1] "ELUs with alpha = 1.0 are compared to (i) Rectified Linear Units (ReLUs) with activation
       f(x) = max(0, x), (ii) Leaky ReLUs (LReLUs) with activation f(x) = max(alpha x, x)
       (0 < alpha < 1), and (iii) Shifted ReLUs (SReLUs) with activation f(x) = max(-1, x).
       Comparisons are done with and without batch normalization."  (Sec. 4 intro)
  [S2] "The CNN for these CIFAR-100 experiments consists of 11 convolutional layers arranged in
       stacks of ([1x192x5], [1x192x1, 1x240x3], [1x240x1, 1x260x2], [1x260x1, 1x280x2],
       [1x280x1, 1x300x2], [1x300x1], [1x100x1]) layers x units x receptive fields. 2x2
       max-pooling with a stride of 2 was applied after each stack."
  [S3] "For network regularization we used the following drop-out rate for the last layer of
       each stack (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.0). The L2-weight decay regularization term
       was set to 0.0005."
  [S4] "The following learning rate schedule was applied (0-35k [0.01], 35k-85k [0.005],
       85k-135k [0.0005], 135k-165k [0.00005]) (iterations [learning rate]). For fair
       comparisons, we used this learning rate schedule for all networks. During previous
       experiments, this schedule was optimized for ReLU networks, however as ELUs converge
       faster they would benefit from an adjusted schedule."
  [S5] "The momentum term learning rate was fixed to 0.9. The dataset was preprocessed as
       described in Goodfellow et al. with global contrast normalization and ZCA whitening.
       Additionally, the images were padded with four zero pixels at all borders. The model was
       trained on 32 x 32 random crops with random horizontal flipping. Besides that, we no
       further augmented the dataset during training. Each network was run 10 times with
       different weight initialization. Across networks with different activation functions the
       same run number had the same initial weights."
  [S6] "ELUs yield on average a test error of 28.75(+-0.24)%, while SReLUs, ReLUs and LReLUs
       yield 29.35(+-0.29)%, 31.56(+-0.37)% and 30.59(+-0.29)%, respectively." ... "Batch
       normalization improved ReLU and LReLU networks, but did not improve ELU and SReLU
       networks (see Fig. 5). ELU networks significantly outperform ReLU networks with batch
       normalization (Wilcoxon signed-rank test with p-value < 0.001)."
  [S7] Sec. 4.3 (the *18-layer* CIFAR network, not this one): "The mini-batch size was 100."
       Sec. 4.2 states no mini-batch size.

Cross-checks. The stack layout [S2] agrees with an independent rendering of this network, an
example script of the SMAUG accelerator simulator ("Example for creating the CIFAR100-ELU
network", ``import smaug as sg``; the API of harvard-acc/smaug, exact path not located): conv
192x5x5x3; 192x1x1, 240x3x3; 240x1x1, 260x2x2; 260x1x1, 280x2x2; 280x1x1, 300x2x2; 300x1x1;
100x1x1; "same" padding; 2x2/2 max-pooling after the first five stacks. "As described in Goodfellow et al." is pylearn2's make_cifar100_gcn_whitened.py
(the Maxout paper's pipeline): ``CIFAR100(gcn=55.)`` then ``preprocessing.ZCA()``, whose source
gives GCN = subtract each image's mean, scale its L2 norm to 55 (``use_std=False``,
``sqrt_bias=0``), and ZCA = centre with the training mean, covariance X^T X / n + 0.1 I
(``filter_bias=0.1``), P = V diag(1/sqrt(eig)) V^T, fitted on the training set only.

NOT in the paper (our choices, each marked "unverified" where it is used):
  * mini-batch size 100 (taken from Sec. 4.3 [S7]); then 165k iterations = 330 epochs of 50k;
  * convolution padding: "same" (SMAUG's reading; a 2x2 kernel is padded one pixel on the right
    and bottom), giving maps 32, 16, 8, 4, 2, 1 after the stacks. "Pooling after each stack"
    cannot halve a 1x1 map: we pool with ceil_mode (Caffe's rule), which leaves 1x1 as it is.
    The alternative ``padding="caffe"`` (odd kernels padded symmetrically, 2x2 unpadded: maps
    32, 16, 7->4, 3->2, 1, 1, 1) also ends at 1x1 with the same parameters;
  * dropout placement: on the output of each stack's last layer, after its activation and
    before the pooling; element-wise (``nn.Dropout``);
  * the last layer [1x100x1] is the classifier: no activation, no dropout, no batch norm; its
    1x1 output map is the 100 logits (softmax cross-entropy loss);
  * batch norm: conv (no bias) -> BatchNorm2d -> activation, on the 10 hidden layers;
  * LReLU slope 0.1 (only "0 < alpha < 1" is stated; 0.1 is the paper's MNIST value);
  * initialisation: He et al. normal, std = sqrt(2 / fan_in), biases 0 (the paper's MNIST
    choice; nothing is said for CIFAR), drawn from a generator seeded by the run number so that
    "the same run number had the same initial weights" [S5] for every activation, BN or not;
  * weight decay 5e-4 on the convolution weights only (not biases or BN parameters);
  * PyTorch's momentum form (v = 0.9 v + g; w -= lr v) rather than Caffe's (v = 0.9 v + lr g),
    which differ only right after each learning-rate drop;
  * training on all 50,000 training images (train + valid of ``load_cifar100``), testing on the
    10,000 test images, as the paper reports test error with no validation set.
=================================================================================================
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from papernotes_core import results, runtime, training
from papernotes_core.elu import ELU

CIFAR_ACTIVATIONS = ("elu", "relu", "lrelu", "srelu")

#: (out_channels, kernel) of each layer, by stack: [S2]. The last layer is the classifier.
PAPER_STACKS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((192, 5),),
    ((192, 1), (240, 3)),
    ((240, 1), (260, 2)),
    ((260, 1), (280, 2)),
    ((280, 1), (300, 2)),
    ((300, 1),),
    ((100, 1),),
)
#: Dropout on the last layer of each stack: [S3].
PAPER_DROPOUT = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.0)
#: (first iteration, learning rate): [S4]; 165,000 iterations in all.
PAPER_LR_SCHEDULE = ((0, 0.01), (35_000, 0.005), (85_000, 0.0005), (135_000, 0.00005))
PAPER_STEPS = 165_000
#: Mean (sd) test error in % over 10 runs, no batch norm: [S6].
PAPER_TEST_ERROR = {"elu": (28.75, 0.24), "srelu": (29.35, 0.29), "relu": (31.56, 0.37),
                    "lrelu": (30.59, 0.29)}


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------

class SReLU(nn.Module):
    """The shifted ReLU of the paper [S1]: ``f(x) = max(-1, x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, min=-1.0)


def make_cifar_activation(name: str, *, alpha: float = 1.0, leak: float = 0.1) -> nn.Module:
    """The module for ``name`` in :data:`CIFAR_ACTIVATIONS` (ELU is ``elu.ELU``)."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a str, one of {CIFAR_ACTIVATIONS}; got "
                        f"{type(name).__name__}")
    if name == "elu":
        return ELU(alpha)
    if name == "relu":
        return nn.ReLU()
    if name == "lrelu":
        if not 0 < leak < 1:
            raise ValueError(f"leak must be in (0, 1) (the paper: 0 < alpha < 1), got {leak}")
        return nn.LeakyReLU(leak)
    if name == "srelu":
        return SReLU()
    raise ValueError(f"unknown activation {name!r}: expected one of {', '.join(CIFAR_ACTIVATIONS)}")


class CifarCNN(nn.Module):
    """The CIFAR-100 network of the paper's Sec. 4.2: 11 convolutional layers in 7 stacks.

    Stacks (layers x channels x kernel, [S2]): [1x192x5], [1x192x1, 1x240x3], [1x240x1, 1x260x2],
    [1x260x1, 1x280x2], [1x280x1, 1x300x2], [1x300x1], [1x100x1]; 2x2 max-pooling, stride 2,
    after each stack; dropout ``dropout[i]`` on the last layer of stack ``i`` [S3]. The last
    layer (``num_classes`` 1x1 filters) is the classifier: its 1x1 output map is the logits.

    Args:
        activation: ``"elu"``, ``"relu"``, ``"lrelu"`` or ``"srelu"``.
        num_classes: output channels of the last layer (100 in the paper).
        batch_norm: conv (no bias) -> BatchNorm2d -> activation in the 10 hidden layers.
        alpha: the ELU's alpha (1.0 in the paper); ``leak``: the LReLU slope (unverified: 0.1).
        dropout: one rate per stack, in [0, 1).
        padding: ``"same"`` (default) or ``"caffe"``; see the module docstring (unverified).
        init_seed: if an int, the convolution weights are drawn from a ``torch.Generator`` with
            that seed, so that one seed gives the same initial weights for every activation,
            with or without batch norm [S5]; if ``None``, from torch's global generator.

    ``forward(x)`` takes float32 ``(n, 3, 32, 32)`` and returns ``(n, num_classes)`` logits;
    ``forward(x, return_hidden=True)`` also returns the output of each hidden layer (after its
    activation, before dropout), for the mean-activation statistics of the MNIST study.
    """

    def __init__(self, activation: str, num_classes: int = 100, *, batch_norm: bool = False,
                 alpha: float = 1.0, leak: float = 0.1,
                 dropout: tuple[float, ...] = PAPER_DROPOUT, padding: str = "same",
                 init_seed: int | None = None):
        super().__init__()
        make_cifar_activation(activation, alpha=alpha, leak=leak)  # validates the arguments
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if not isinstance(batch_norm, bool):
            raise TypeError(f"batch_norm must be a bool, got {type(batch_norm).__name__}")
        dropout = tuple(dropout)
        if len(dropout) != len(PAPER_STACKS):
            raise ValueError(f"dropout must give one rate per stack ({len(PAPER_STACKS)}), got "
                             f"{len(dropout)}: {dropout}")
        if not all(isinstance(p, (int, float)) and 0 <= p < 1 for p in dropout):
            raise ValueError(f"dropout rates must be numbers in [0, 1), got {dropout}")
        if padding not in ("same", "caffe"):
            raise ValueError(f"padding must be 'same' or 'caffe', got {padding!r}")
        if init_seed is not None and (isinstance(init_seed, bool) or not isinstance(init_seed, int)):
            raise TypeError(f"init_seed must be an int or None, got {type(init_seed).__name__}")
        self.activation, self.batch_norm, self.padding = activation, batch_norm, padding
        self.num_classes = num_classes
        self.layers = nn.ModuleList()  # one nn.Sequential per hidden layer: pad, conv, [bn], act
        self.stack_of_layer: list[int] = []
        self.drops = nn.ModuleList(nn.Dropout(p) if p > 0 else nn.Identity() for p in dropout)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        stacks = [list(s) for s in PAPER_STACKS]
        stacks[-1] = [(num_classes, 1)]
        channels = 3
        self.convs: list[nn.Conv2d] = []
        for i, stack in enumerate(stacks):
            for j, (out, k) in enumerate(stack):
                is_output = i == len(stacks) - 1
                pad: list[nn.Module] = []
                if padding == "same" and k % 2 == 0:
                    pad.append(nn.ZeroPad2d((0, k - 1, 0, k - 1)))  # right / bottom
                    conv_pad = 0
                else:
                    conv_pad = (k - 1) // 2 if k % 2 == 1 else 0
                conv = nn.Conv2d(channels, out, k, padding=conv_pad,
                                 bias=is_output or not batch_norm)
                self.convs.append(conv)
                if is_output:
                    self.classifier = nn.Sequential(*pad, conv)
                else:
                    norm = [nn.BatchNorm2d(out)] if batch_norm else []
                    act = make_cifar_activation(activation, alpha=alpha, leak=leak)
                    self.layers.append(nn.Sequential(*pad, conv, *norm, act))
                    self.stack_of_layer.append(i)
                channels = out
        self._last_in_stack = {max(j for j, s in enumerate(self.stack_of_layer) if s == i)
                               for i in set(self.stack_of_layer)}
        self.reset_parameters(init_seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int | None = None) -> None:
        """He normal weights (std sqrt(2 / fan_in)), zero biases; BN at weight 1, bias 0."""
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        for conv in self.convs:
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            w = torch.empty(conv.weight.shape).normal_(0.0, math.sqrt(2.0 / fan_in), generator=gen)
            conv.weight.copy_(w)
            if conv.bias is not None:
                conv.bias.zero_()
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, 32, 32):
            raise ValueError(f"x must have shape (n, 3, 32, 32), got {tuple(x.shape)}")
        hidden = []
        for j, layer in enumerate(self.layers):
            x = layer(x)
            if return_hidden:
                hidden.append(x)
            if j in self._last_in_stack:
                x = self.pool(self.drops[self.stack_of_layer[j]](x))
        x = self.pool(self.drops[-1](self.classifier(x)))
        if x.shape[-2:] != (1, 1):  # cannot happen for (3, 32, 32) inputs; a guard for edits
            raise RuntimeError(f"the last map is {tuple(x.shape[-2:])}, expected (1, 1)")
        logits = x.flatten(1)
        return (logits, hidden) if return_hidden else logits


# --------------------------------------------------------------------------------------------
# Preprocessing (Goodfellow et al., 2013, as pylearn2 does it) and augmentation
# --------------------------------------------------------------------------------------------

def global_contrast_normalize(x: np.ndarray, scale: float = 55.0, min_divisor: float = 1e-8) -> np.ndarray:
    """Per image: subtract its mean over all 3072 values, then scale its L2 norm to ``scale``.

    pylearn2's ``global_contrast_normalize(X, scale=55.)`` with ``use_std=False``,
    ``sqrt_bias=0`` (what ``CIFAR100(gcn=55.)`` does). An image whose norm is below
    ``min_divisor`` (a constant image) is only centred. Returns a new float64 ``(n, 3072)``
    array; ``x`` is any ``(n, ...)`` array.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    x = x - x.mean(axis=1, keepdims=True)
    norms = np.sqrt((x ** 2).sum(axis=1)) / scale
    norms[norms < min_divisor] = 1.0
    return x / norms[:, None]


def fit_zca(x: np.ndarray, bias: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, P)`` of ZCA whitening fitted to the rows of ``x``, as pylearn2's ``ZCA()``.

    ``mean`` is the per-feature mean; with ``C = (x - mean)^T (x - mean) / n + bias I`` and
    ``C = V diag(e) V^T``, ``P = V diag(1 / sqrt(e)) V^T``. Apply with :func:`apply_zca`.
    Fit on the training set only. For CIFAR (3072 features) this takes some seconds.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be a 2-D array of at least 2 rows, got shape {x.shape}")
    if not bias > 0:
        raise ValueError(f"bias must be > 0 (pylearn2's filter_bias, 0.1), got {bias}")
    mean = x.mean(axis=0)
    centred = x - mean
    cov = centred.T @ centred / len(x) + bias * np.eye(x.shape[1])
    eig, vec = np.linalg.eigh(cov)
    return mean, (vec / np.sqrt(eig)) @ vec.T


def apply_zca(x: np.ndarray, mean: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``(x - mean) @ P`` as float32, rows of ``x`` flattened."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return ((x - mean) @ p).astype(np.float32)


def preprocess(train_x: np.ndarray, *others: np.ndarray, gcn_scale: float = 55.0,
               zca_bias: float | None = 0.1) -> list[np.ndarray]:
    """GCN then ZCA (fitted on ``train_x``) of ``train_x`` and each of ``others``.

    Returns float32 arrays of shape ``(n, 3, 32, 32)``. ``zca_bias=None`` skips the ZCA step
    (for quick runs: the fit costs a few seconds and 3072^2 doubles).
    """
    arrays = [global_contrast_normalize(a, gcn_scale) for a in (train_x, *others)]
    if zca_bias is not None:
        mean, p = fit_zca(arrays[0], zca_bias)
        arrays = [apply_zca(a, mean, p) for a in arrays]
    return [a.astype(np.float32).reshape(len(a), 3, 32, 32) for a in arrays]


def augment(x: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Zero-pad by ``pad`` on every border, take a random 32x32 crop, flip half the images [S5].

    Random numbers come from torch's global generator (on ``x``'s device), which
    ``training.fit`` saves and restores, so a resumed run draws the same crops.
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    ox = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    idx_n = torch.arange(n, device=x.device)[:, None, None, None]
    idx_c = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[idx_n, idx_c, rows, cols]
    flip = torch.rand(n, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


# --------------------------------------------------------------------------------------------
# The experiment: config sketch and training
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CifarConfig:
    """The CIFAR-100 study's knobs (separate from the MNIST study's ``Config``).

    ``steps`` iterations of SGD (momentum, weight decay on conv weights) with the piecewise
    ``lr_schedule`` ((first step, lr), ...), mini-batches of ``batch_size`` drawn by
    ``EpochSampler``; ``eval_every``: steps between test-error evaluations (the paper's Fig. 4
    curves); ``train_limit``: train on the first n images (None: all); ``train_on_valid``:
    train on train + valid (the paper's 50,000 images). ``batch_norm``: the variants run
    (False, True). ``zca_bias=None`` skips ZCA.
    """

    activations: tuple[str, ...] = CIFAR_ACTIVATIONS
    batch_norm: tuple[bool, ...] = (False, True)
    alpha: float = 1.0
    leak: float = 0.1
    dropout: tuple[float, ...] = PAPER_DROPOUT
    padding: str = "same"
    lr_schedule: tuple[tuple[int, float], ...] = PAPER_LR_SCHEDULE
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 100
    steps: int = PAPER_STEPS
    eval_every: int = 5_000
    gcn_scale: float = 55.0
    zca_bias: float | None = 0.1
    crop_pad: int = 4
    train_on_valid: bool = True
    train_limit: int | None = None
    seeds: tuple[int, ...] = tuple(range(10))
    checkpoint: bool = True

    def __post_init__(self):
        for a in self.activations:
            if a not in CIFAR_ACTIVATIONS:
                raise ValueError(f"unknown activation {a!r}: expected one of {CIFAR_ACTIVATIONS}")
        if not self.lr_schedule or self.lr_schedule[0][0] != 0:
            raise ValueError(f"lr_schedule must start at step 0, got {self.lr_schedule}")
        starts = [s for s, _ in self.lr_schedule]
        if starts != sorted(set(starts)) or any(lr <= 0 for _, lr in self.lr_schedule):
            raise ValueError(f"lr_schedule must have increasing steps and positive rates, got "
                             f"{self.lr_schedule}")
        for name in ("batch_size", "steps", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.seeds:
            raise ValueError("seeds must not be empty")
        if self.train_limit is not None and self.train_limit < self.batch_size:
            raise ValueError(f"train_limit ({self.train_limit}) must be at least batch_size "
                             f"({self.batch_size})")

    def lr_at(self, step: int) -> float:
        """The learning rate of (0-based) step ``step``."""
        return [lr for start, lr in self.lr_schedule if start <= step][-1]


def cifar100_paper() -> CifarConfig:
    """Sec. 4.2: 165k iterations, 10 runs of ELU/ReLU/LReLU/SReLU, with and without BN.

    On one Colab GPU this is far beyond one session (80 networks of 165k steps): run one
    (activation, batch_norm, seed) at a time, with checkpoints on Google Drive.
    """
    return CifarConfig()


def cifar100_colab() -> CifarConfig:
    """A shorter study: the four activations without BN, 3 seeds, 30k steps (60 epochs).

    Our own cut (not the paper's schedule): lr 0.01, then 0.001 from step 20k. Not timed: no GPU
    was available when this was written; time one network first.
    """
    return CifarConfig(batch_norm=(False,), seeds=(0, 1, 2), steps=30_000, eval_every=2_500,
                       lr_schedule=((0, 0.01), (20_000, 0.001)))


def load_cifar100_tensors(config: CifarConfig, device=None):
    """``(x_train, y_train, x_test, y_test)``: preprocessed tensors on ``device``.

    Needs the CIFAR-100 tarball (internet, or the cache): see ``data.load_cifar100``.
    """
    from papernotes_core import data

    splits = data.load_cifar100()
    x_train, y_train = splits.train
    if config.train_on_valid:
        x_train = np.concatenate([x_train, splits.valid.x])
        y_train = np.concatenate([y_train, splits.valid.y])
    if config.train_limit is not None:
        x_train, y_train = x_train[:config.train_limit], y_train[:config.train_limit]
    x_train, x_test = preprocess(x_train, splits.test.x, gcn_scale=config.gcn_scale,
                                 zca_bias=config.zca_bias)
    device = device or runtime.device()
    return tuple(torch.as_tensor(a).to(device)
                 for a in (x_train, y_train, x_test, splits.test.y))


@torch.no_grad()
def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``(x, y)`` misclassified by ``model`` in eval mode."""
    was_training = model.training
    model.eval()
    wrong = sum((model(x[i:i + batch_size]).argmax(1) != y[i:i + batch_size]).sum().item()
                for i in range(0, len(x), batch_size))
    model.train(was_training)
    return wrong / len(x)


def train_one_cifar(config: CifarConfig, activation: str, batch_norm: bool, seed: int, tensors,
                    *, device=None, checkpoint_path: Path | None = None) -> dict:
    """Train one network; return ``{"history", "curve", "test_error"}``.

    ``tensors``: ``(x_train, y_train, x_test, y_test)`` as from :func:`load_cifar100_tensors`.
    The run is ``training.fit`` called once per ``eval_every`` steps with the same checkpoint
    file, so a killed run resumes from its last evaluation; ``curve`` is
    ``[(step, test error)]``, saved beside the checkpoint.
    """
    device = device or runtime.device()
    x_train, y_train, x_test, y_test = (t.to(device) for t in tensors)
    runtime.seed_everything(seed)
    model = CifarCNN(activation, num_classes=100, batch_norm=batch_norm, alpha=config.alpha,
                     leak=config.leak, dropout=config.dropout, padding=config.padding,
                     init_seed=seed).to(device)
    decay = [p for n, p in model.named_parameters() if n.endswith("weight") and p.ndim == 4]
    rest = [p for n, p in model.named_parameters() if not (n.endswith("weight") and p.ndim == 4)]
    base_lr = config.lr_schedule[0][1]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": config.weight_decay},
                                 {"params": rest, "weight_decay": 0.0}],
                                lr=base_lr, momentum=config.momentum)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                  lambda step: config.lr_at(step) / base_lr)
    sampler = training.EpochSampler(len(x_train), config.batch_size, seed=seed)

    def loss_at_step(step: int) -> torch.Tensor:
        idx = torch.as_tensor(sampler.indices(step), device=device)
        xb = augment(x_train[idx], config.crop_pad) if config.crop_pad else x_train[idx]
        return F.cross_entropy(model(xb), y_train[idx])

    desc = f"{activation}{'+bn' if batch_norm else ''} seed {seed}"
    curve_path = None if checkpoint_path is None else checkpoint_path.with_suffix(".curve.pt")
    curve: list[tuple[int, float]] = []
    if curve_path is not None and curve_path.exists():
        curve = [(int(s), float(e)) for s, e in training.load_checkpoint(curve_path)["curve"]]
    history: list[tuple[int, float]] = []
    done = 0
    targets = list(range(config.eval_every, config.steps, config.eval_every)) + [config.steps]
    for target in targets:
        if any(s == target for s, _ in curve):
            done = target
            continue  # trained and evaluated before a resume
        if checkpoint_path is not None:  # fit resumes from the checkpoint, up to step `target`
            training.fit(model, optimizer, loss_at_step, target, scheduler=scheduler,
                         checkpoint_path=checkpoint_path, log_every=100, desc=desc)
        else:  # no checkpoint: fit counts from 0, so shift its steps by those done
            part = training.fit(model, optimizer, lambda s, o=done: loss_at_step(o + s),
                                target - done, scheduler=scheduler, log_every=100, desc=desc)
            history += [(done + s, v) for s, v in part]
        done = target
        curve.append((target, error_rate(model, x_test, y_test)))
        if curve_path is not None:
            training.save_checkpoint(curve_path, {"curve": curve})
    if checkpoint_path is not None:  # the run is complete: fit returns its saved history at once
        history = training.fit(model, optimizer, loss_at_step, config.steps, scheduler=scheduler,
                               checkpoint_path=checkpoint_path, desc=desc)
    return {"history": history, "curve": curve, "test_error": curve[-1][1]}


def train_cifar(config: CifarConfig | None = None, *, tensors=None, device=None, write: bool = True,
                results_dir=None) -> dict:
    """Every (activation, batch_norm, seed) of ``config``; test errors in %, mean and sd.

    ``tensors`` defaults to :func:`load_cifar100_tensors` (internet or cache needed). Returns
    (and, with ``write``, writes as ``results/paper/elu_cifar100.json``) a results mapping with
    ``metrics`` ``test_error.<act>[_bn]`` (mean %) and ``test_error_sd.<act>[_bn]`` (sd %), the
    test-error curves, and the paper's Table 1 numbers under ``paper``.
    """
    config = config or cifar100_paper()
    device = device or runtime.device()
    tensors = tensors if tensors is not None else load_cifar100_tensors(config, device)
    t0, code = time.perf_counter(), results.code_state()
    metrics, curves = {}, {}
    key = hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True).encode()).hexdigest()[:10]
    for act in config.activations:
        for bn in config.batch_norm:
            name = f"{act}_bn" if bn else act
            errors, runs = [], []
            for seed in config.seeds:
                path = (runtime.checkpoints_dir() / "elu" / f"cifar100-{name}-seed{seed}-{key}.pt"
                        if config.checkpoint else None)
                run = train_one_cifar(config, act, bn, seed, tensors, device=device,
                                      checkpoint_path=path)
                runs.append(run)
                errors.append(100 * run["test_error"])
            metrics[f"test_error.{name}"] = float(np.mean(errors))
            metrics[f"test_error_sd.{name}"] = float(np.std(errors, ddof=1)) if len(errors) > 1 else 0.0
            steps = [s for s, _ in runs[0]["curve"]]
            mean_curve = np.mean([[e for _, e in r["curve"]] for r in runs], axis=0)
            curves[f"cifar100.test_error.{name}"] = [[s, 100 * float(e)] for s, e in zip(steps, mean_curve)]
    data = {"slug": "elu_cifar100", "scale": "paper", "metrics": metrics, "curves": curves,
            "paper": {f"test_error.{act}": {"value": mean, "source": f"Sec. 4.2, mean of 10 runs (sd {sd})",
                                            "status": "V"}
                      for act, (mean, sd) in PAPER_TEST_ERROR.items() if f"test_error.{act}" in metrics},
            "provenance": results.provenance(config, list(config.seeds), wall_s=time.perf_counter() - t0,
                                             device=device, code=code)}
    data = results.validate(data)
    if write:
        results.write(data, results_dir)
    return data
