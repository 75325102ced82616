r"""Generative Adversarial Nets (Goodfellow et al., 2014): the minimax game, its 1-D pictures,
and the paper's MNIST experiment.

The game (eq. 1). A generator :math:`G` maps noise :math:`z \sim p_z` to data space; a
discriminator :math:`D(x) \in (0, 1)` is the probability that :math:`x` came from the data
rather than from :math:`G`. They play

.. math::

    \min_G \max_D V(D, G) = \mathbb E_{x\sim p_{data}}[\log D(x)]
                           + \mathbb E_{z\sim p_z}[\log(1 - D(G(z)))].

* For a fixed :math:`G` the best discriminator is :math:`D^*_G(x) = p_{data}(x) / (p_{data}(x) +
  p_g(x))` (Prop. 1): a function of :math:`x`, the point being judged
  (:func:`optimal_discriminator`).
* Put back into :math:`V`, :math:`C(G) = \max_D V(D, G) = -\log 4 + 2\,\mathrm{JSD}(p_{data}
  \,\|\, p_g)` (Thm. 1), smallest, :math:`-\log 4`, exactly when :math:`p_g = p_{data}`, where
  :math:`D^* = 1/2` everywhere (:func:`value_at_optimal_discriminator`,
  :func:`jensen_shannon`).
* Early in training :math:`D` rejects samples easily, :math:`\log(1 - D(G(z)))` is flat there
  and gives :math:`G` almost no gradient; the paper trains :math:`G` to maximise
  :math:`\log D(G(z))` instead (:func:`generator_loss` with ``"non_saturating"``). In terms of
  the discriminator's logit :math:`a` (:math:`D = \sigma(a)`):
  :math:`\partial_a \log(1 - \sigma(a)) = -\sigma(a) = -D` but :math:`\partial_a \log\sigma(a) =
  1 - D`.
* Algorithm 1: ``k`` discriminator steps (each on a fresh minibatch of data and of noise), then
  one generator step (:func:`train`).

The MNIST experiment (Sec. 5), as in the authors' configuration (``goodfeli/adversarial``,
``mnist.yaml``): the generator is an MLP 100 → 1200 → 1200 → 784 with ReLU hidden units and a
sigmoid output, noise :math:`z` uniform on :math:`[-\sqrt3, \sqrt3]^{100}` (zero mean, unit
variance: their ``noise: 'uniform'``), weights drawn uniformly from
:math:`[-0.05, 0.05]`, the output bias set to the logit of the mean training pixel; the
discriminator has two maxout layers of 240 units with 5 pieces each and a sigmoid output unit,
weights uniform in :math:`[-0.005, 0.005]`, dropout (keep 0.8 at the input, 0.5 at the hidden
layers); SGD with momentum rising from 0.5 to 0.7 over 250 epochs, learning rate 0.1 divided by
1.000004 every step (at least 1e-6), minibatches of 100. :class:`Config` says where the smaller
scales depart.

How the authors' code updates the two players (their ``AdversaryCost2`` as ``mnist.yaml``
configures it, ``scale_grads: 0``) differs from Algorithm 1 as the paper prints it, and the
paper-faithful default follows the code (``Config.update = "simultaneous"``):

* one minibatch of 100 samples :math:`G(z)` and one forward pass of :math:`D` (one set of
  dropout masks) serve both players;
* :math:`D` descends :math:`\tfrac12(\text{BCE}_{real} + \text{BCE}_{fake})`, half of
  :func:`discriminator_loss`; :math:`G` descends :math:`-\log D(G(z))` on the same samples;
* both gradients are taken at the same parameters and both players step at once
  (:func:`simultaneous_step`), not one after the other.

``update = "alternating"`` is Algorithm 1 as printed: ``k`` discriminator steps on fresh data
and noise, then a generator step on fresh noise, the discriminator's loss not halved.

Evaluation protocol (fixed; every scale follows it)
----------------------------------------------------

* Pixels in :math:`[0, 1]` (MNIST's grey levels :math:`k/256`), as in the paper: the Parzen
  log-likelihood depends on the scale of the space, and the same model measured in
  :math:`[-1, 1]` scores :math:`784 \ln 2 \approx 543` nats less.
* ``metrics.test_parzen_ll``: the mean Gaussian Parzen-window log-likelihood
  (:func:`evaluation.parzen_log_likelihood`) of the 10,000 MNIST test images under a window
  centred on ``parzen_samples`` (10,000) generator samples, with ``metrics.test_parzen_ll_se``
  its standard error over test images; the width ``metrics.parzen_sigma`` is chosen from ten
  values :math:`10^{-1}, \dots, 10^0` (even in :math:`\log\sigma`) by the mean log-likelihood of
  the first 1,000 validation images (the authors' ``parzen_ll.py``).
* ``metrics.train_set_parzen_ll``: the same estimate with 10,000 *training images* in place of
  the samples (σ searched the same way): what a model that memorised the training set would
  score; ``metrics.blurred_train_set_parzen_ll``: with those images blurred (a 3×3 box filter).
* Mode coverage: a small MNIST classifier (:class:`DigitClassifier`) labels the samples;
  ``metrics.sample_class_entropy`` is the entropy (nats) of the labels' histogram, at most
  :math:`\log 10 \approx 2.303`, and ``metrics.sample_class_min_fraction`` the rarest digit's share.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import evaluation, results, runtime, training

__all__ = [
    "Config", "DigitClassifier", "Discriminator", "Generator", "Maxout", "MLP1d", "PAPER", "SLUG",
    "NOISES", "UPDATES", "blur", "class_histogram", "discriminator_loss", "draw_noise", "simultaneous_step", "generator_loss", "generator_logit_gradient",
    "jensen_shannon", "load_data", "main", "optimal_discriminator", "parzen_evaluation", "run", "sample",
    "train", "train_classifier", "train_discriminator", "train_toy_gan", "value_at_optimal_discriminator",
    "value_function",
]

SLUG = "gan"
GENERATOR_LOSSES = ("non_saturating", "saturating")
OPTIMIZERS = ("sgd", "adam")
UPDATES = ("simultaneous", "alternating")
NOISES = ("uniform", "gaussian")
PAPER_SIGMAS = tuple(float(s) for s in np.logspace(-1, 0, 10))


def _check_positive_int(name: str, value, what: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int{what}, got {value!r}")
    return value


def _check_logits(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of discriminator logits, "
                        f"got {type(x).__name__}")
    return x


# ----------------------------------------------------------------------------------------------
# The game
# ----------------------------------------------------------------------------------------------

def value_function(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    r"""A minibatch estimate of eq. 1, :math:`V(D, G) = \mathbb E_x[\log D(x)] + \mathbb E_z[\log(1 -
    D(G(z)))]`, from the discriminator's logits :math:`a` on real and generated points
    (:math:`\log D = \log\sigma(a) = -\operatorname{softplus}(-a)`, :math:`\log(1 - D) =
    -\operatorname{softplus}(a)`; exact for any logit, no :math:`\log 0`)."""
    _check_logits("logits_real", logits_real), _check_logits("logits_fake", logits_fake)
    return -F.softplus(-logits_real).mean() - F.softplus(logits_fake).mean()


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    r"""What :math:`D` minimises: :math:`-V(D, G)`, the binary cross-entropy of telling real (label
    1) from generated (label 0)."""
    return -value_function(logits_real, logits_fake)


def generator_loss(logits_fake: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    r"""What :math:`G` minimises, from :math:`D`'s logits :math:`a` on generated points.

    * ``"saturating"``: :math:`\mathbb E_z[\log(1 - D(G(z)))] = -\mathbb E[\operatorname{softplus}(a)]`,
      the minimax game as written; its gradient vanishes when :math:`D` rejects the samples.
    * ``"non_saturating"``: :math:`-\mathbb E_z[\log D(G(z))] = \mathbb E[\operatorname{softplus}(-a)]`,
      the paper's practical choice (Sec. 3): same fixed point, strong gradients early.
    """
    _check_logits("logits_fake", logits_fake)
    if kind == "saturating":
        return -F.softplus(logits_fake).mean()
    if kind == "non_saturating":
        return F.softplus(-logits_fake).mean()
    raise ValueError(f"kind must be one of {GENERATOR_LOSSES}, got {kind!r}")


def generator_logit_gradient(d_of_g: torch.Tensor, kind: str) -> torch.Tensor:
    r"""The gradient of one sample's generator loss with respect to the discriminator's logit
    :math:`a`, as a function of :math:`D(G(z)) = \sigma(a)`, by autograd through
    :func:`generator_loss`: :math:`-D` (saturating) and :math:`-(1 - D)` (non-saturating). Its
    size is what reaches :math:`G` (times :math:`\partial a / \partial\theta_G`)."""
    if not isinstance(d_of_g, torch.Tensor) or not d_of_g.is_floating_point():
        raise TypeError(f"d_of_g must be a floating-point tensor of probabilities, got {type(d_of_g).__name__}")
    if bool(((d_of_g <= 0) | (d_of_g >= 1)).any()):
        raise ValueError("d_of_g must lie strictly inside (0, 1): it is D's probability that G(z) is real")
    a = torch.logit(d_of_g.detach()).requires_grad_(True)
    grads = []
    for i in range(a.numel()):
        (g,) = torch.autograd.grad(generator_loss(a.reshape(-1)[i:i + 1], kind), a)
        grads.append(g.reshape(-1)[i])
    return torch.stack(grads).reshape(d_of_g.shape)


def optimal_discriminator(p_data, p_g):
    r"""Prop. 1: :math:`D^*_G(x) = p_{data}(x) / (p_{data}(x) + p_g(x))`, evaluated pointwise from
    the two densities at the same points :math:`x` (arrays or tensors of equal shape, values >= 0,
    not both 0 at a point)."""
    p_data, p_g = np.asarray(p_data, dtype=float), np.asarray(p_g, dtype=float)
    if p_data.shape != p_g.shape:
        raise ValueError(f"p_data and p_g must be densities at the same points, got shapes {p_data.shape} "
                         f"and {p_g.shape}")
    if (p_data < 0).any() or (p_g < 0).any() or ((p_data + p_g) <= 0).any():
        raise ValueError("densities must be >= 0 and not both 0 at any point")
    return p_data / (p_data + p_g)


def _check_grid_densities(p, q, dx):
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"p and q must be 1-d densities on the same grid, got shapes {p.shape} and {q.shape}")
    if not (isinstance(dx, (int, float)) and dx > 0):
        raise ValueError(f"dx must be the grid spacing > 0, got {dx!r}")
    return p, q


def jensen_shannon(p, q, dx: float) -> float:
    r""":math:`\mathrm{JSD}(p\,\|\,q) = \tfrac12\mathrm{KL}(p\,\|\,m) + \tfrac12\mathrm{KL}(q\,\|\,m)`,
    :math:`m = (p + q)/2`, in nats, by the rectangle rule for densities tabulated on a 1-d grid of
    spacing ``dx`` (:math:`0 \log 0 = 0`)."""
    p, q = _check_grid_densities(p, q, dx)
    m = (p + q) / 2

    def kl(a):
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / m[mask])) * dx)

    return 0.5 * kl(p) + 0.5 * kl(q)


def value_at_optimal_discriminator(p_data, p_g, dx: float) -> float:
    r""":math:`C(G) = V(D^*_G, G) = \int p_{data}\log D^* + p_g \log(1 - D^*)\,dx` by the rectangle
    rule on a 1-d grid: the quantity Theorem 1 says equals :math:`-\log 4 + 2\,\mathrm{JSD}`."""
    p, q = _check_grid_densities(p_data, p_g, dx)
    if (p < 0).any() or (q < 0).any():
        raise ValueError("densities must be >= 0")
    # log D* = log p - log(p + q) and log(1 - D*) = log q - log(p + q): no 1 - D* rounding to 0
    with np.errstate(divide="ignore", invalid="ignore"):
        total = np.log(p + q)
        a = np.where(p > 0, p * (np.log(p) - total), 0.0)
        b = np.where(q > 0, q * (np.log(q) - total), 0.0)
    return float(np.sum(a + b) * dx)


# ----------------------------------------------------------------------------------------------
# 1-D pictures: a discriminator on two known densities; Fig. 1 with a real GAN
# ----------------------------------------------------------------------------------------------

def draw_noise(kind: str, n: int, dim: int, *, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    r"""``n`` noise vectors :math:`z` of size ``dim``: ``"uniform"`` on :math:`[-\sqrt3, \sqrt3]`
    per coordinate (the authors' MNIST setting; mean 0, variance 1) or ``"gaussian"``
    :math:`\mathcal N(0, 1)`. Drawn from ``generator`` (on its device) when given."""
    if kind not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}, got {kind!r}")
    _check_positive_int("n", n), _check_positive_int("dim", dim)
    if generator is not None:
        device = generator.device
    if kind == "gaussian":
        return torch.randn(n, dim, generator=generator, device=device)
    return (torch.rand(n, dim, generator=generator, device=device) * 2 - 1) * math.sqrt(3.0)


def simultaneous_step(g: nn.Module, d: nn.Module, x_real: torch.Tensor, z: torch.Tensor, opt_g, opt_d,
                      generator_loss_kind: str = "non_saturating") -> tuple[float, float]:
    r"""One update of both players the way the authors' ``AdversaryCost2`` makes it: one batch of
    samples :math:`G(z)` and one forward pass of :math:`D` (one draw of dropout masks) on
    ``x_real`` and on them; the discriminator's objective
    :math:`	frac12(	ext{BCE}_{real} + 	ext{BCE}_{fake})` (half of :func:`discriminator_loss`)
    differentiated with respect to :math:`D`'s parameters only, the generator's
    (:func:`generator_loss`) with respect to :math:`G`'s only, both at the current parameters; then
    both optimizers step. Returns ``(loss_d, loss_g)`` as floats (``loss_d`` the halved one)."""
    a_real, a_fake = d(x_real), d(g(z))
    loss_d = 0.5 * discriminator_loss(a_real, a_fake)
    loss_g = generator_loss(a_fake, generator_loss_kind)
    d_params, g_params = [p for p in d.parameters()], [p for p in g.parameters()]
    grads_d = torch.autograd.grad(loss_d, d_params, retain_graph=True)
    grads_g = torch.autograd.grad(loss_g, g_params)
    for p, gr in zip(d_params, grads_d):
        p.grad = gr
    for p, gr in zip(g_params, grads_g):
        p.grad = gr
    opt_d.step(), opt_g.step()
    return float(loss_d.detach()), float(loss_g.detach())


class MLP1d(nn.Module):
    """A small MLP from R^m to R: ``hidden`` tanh units in ``layers`` layers (for 1-D toys)."""

    def __init__(self, n_in: int = 1, hidden: int = 32, layers: int = 2):
        super().__init__()
        _check_positive_int("hidden", hidden), _check_positive_int("layers", layers)
        mods, width = [], n_in
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        mods.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _check_sampler(name, fn):
    if not callable(fn):
        raise TypeError(f"{name} must be callable as {name}(n, generator) -> tensor of shape (n, 1)")


def train_discriminator(sample_data: Callable, sample_g: Callable, *, steps: int = 2000, batch_size: int = 256,
                        lr: float = 1e-2, hidden: int = 32, seed: int = 0) -> MLP1d:
    r"""Train a 1-D discriminator (logit output) to tell ``sample_data`` from ``sample_g`` by
    minimising :func:`discriminator_loss` with Adam. Each sampler is ``f(n, generator) -> (n, 1)``.
    With enough capacity and steps its :math:`\sigma(\text{logit})` approaches :math:`D^*_G` of
    :func:`optimal_discriminator` wherever either density has mass."""
    _check_sampler("sample_data", sample_data), _check_sampler("sample_g", sample_g)
    _check_positive_int("steps", steps), _check_positive_int("batch_size", batch_size)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    d = MLP1d(1, hidden)
    opt = torch.optim.Adam(d.parameters(), lr=lr)
    for _ in range(steps):
        loss = discriminator_loss(d(sample_data(batch_size, gen)), d(sample_g(batch_size, gen)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return d.eval()


def train_toy_gan(sample_data: Callable, *, steps: int = 3000, k: int = 1, batch_size: int = 256,
                  lr_d: float = 2e-3, lr_g: float = 2e-3, snapshots=(0, 200, 1000, 3000),
                  grid=None, loss: str = "non_saturating", seed: int = 0, n_density: int = 20_000) -> dict:
    r"""A 1-D GAN for Fig. 1: :math:`z \sim U(0, 1)`, :math:`G` and :math:`D` small MLPs, Algorithm 1
    with ``k`` discriminator steps per generator step (Adam).

    Returns ``{"grid", "snapshots": [{"step", "d", "p_g"}], "G", "D"}``: at each step in
    ``snapshots`` the discriminator's probability on ``grid`` and the generator's density there
    (a histogram of ``n_density`` samples, normalised), so one can plot Fig. 1's three curves.
    """
    _check_sampler("sample_data", sample_data)
    _check_positive_int("k", k), _check_positive_int("steps", steps)
    if loss not in GENERATOR_LOSSES:
        raise ValueError(f"loss must be one of {GENERATOR_LOSSES}, got {loss!r}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G, D = MLP1d(1, 32), MLP1d(1, 32)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=lr_g), torch.optim.Adam(D.parameters(), lr=lr_d)
    grid = torch.linspace(-4, 4, 161) if grid is None else torch.as_tensor(grid, dtype=torch.float32)
    edges = torch.cat([grid[:1] - (grid[1] - grid[0]) / 2, (grid[1:] + grid[:-1]) / 2,
                       grid[-1:] + (grid[-1] - grid[-2]) / 2])
    shots, wanted = [], set(int(s) for s in snapshots)

    def snap(step):
        with torch.no_grad():
            d = torch.sigmoid(D(grid[:, None]))[:, 0]
            xs = G(torch.rand(n_density, 1, generator=gen))[:, 0]
            counts = torch.histogram(xs.clamp(edges[0], edges[-1]), bins=edges).hist
            p_g = counts / (n_density * (edges[1:] - edges[:-1]))
        shots.append({"step": step, "d": d.numpy(), "p_g": p_g.numpy()})

    for step in range(steps + 1):
        if step in wanted:
            snap(step)
        if step == steps:
            break
        for _ in range(k):
            with torch.no_grad():
                fake = G(torch.rand(batch_size, 1, generator=gen))
            loss_d = discriminator_loss(D(sample_data(batch_size, gen)), D(fake))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        loss_g = generator_loss(D(G(torch.rand(batch_size, 1, generator=gen))), loss)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    return {"grid": grid.numpy(), "snapshots": shots, "G": G.eval(), "D": D.eval()}


# ----------------------------------------------------------------------------------------------
# The MNIST networks
# ----------------------------------------------------------------------------------------------

class Maxout(nn.Module):
    r"""Maxout units (Goodfellow et al., 2013): :math:`h_i = \max_{j \le p} (W x + b)_{i,j}`,
    ``units`` outputs, each the max of ``pieces`` linear pieces."""

    def __init__(self, n_in: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = _check_positive_int("units", units), _check_positive_int("pieces", pieces)
        self.linear = nn.Linear(n_in, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(*x.shape[:-1], self.units, self.pieces).amax(-1)


def _uniform_init(module: nn.Module, irange: float) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -irange, irange)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    r""":math:`G(z) = \sigma(W_3\,\mathrm{relu}(W_2\,\mathrm{relu}(W_1 z + b_1) + b_2) + b_3)`: 100 → 1200
    → 1200 → 784 (the authors' ``mnist.yaml``). ``output_bias``: the logits of the mean training
    pixels (their ``init_sigmoid_bias_from_marginals``), so that :math:`G` starts at the average
    image."""

    def __init__(self, z_dim: int = 100, hidden: int = 1200, x_dim: int = 784, *, irange: float = 0.05,
                 output_bias: torch.Tensor | None = None):
        super().__init__()
        self.z_dim = _check_positive_int("z_dim", z_dim)
        _check_positive_int("hidden", hidden), _check_positive_int("x_dim", x_dim)
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, x_dim))
        _uniform_init(self, irange)
        if output_bias is not None:
            if output_bias.shape != (x_dim,):
                raise ValueError(f"output_bias must have shape ({x_dim},), got {tuple(output_bias.shape)}")
            with torch.no_grad():
                self.net[-1].bias.copy_(output_bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (batch, {self.z_dim}), got {tuple(z.shape)}")
        return torch.sigmoid(self.net(z))


class Discriminator(nn.Module):
    r"""Two maxout layers (240 units × 5 pieces) and a sigmoid unit, with dropout on the input (keep
    0.8) and on each maxout layer's output (keep 0.5); returns the **logit** :math:`a`,
    :math:`D(x) = \sigma(a)`. Dropout is the inverted kind (survivors scaled by 1/keep), which is
    what the authors' ``input_scales`` (1.25 and 2) do."""

    def __init__(self, x_dim: int = 784, units: int = 240, pieces: int = 5, *, dropout_in: float = 0.2,
                 dropout_hidden: float = 0.5, irange: float = 0.005):
        super().__init__()
        for name, p in (("dropout_in", dropout_in), ("dropout_hidden", dropout_hidden)):
            if not (isinstance(p, (int, float)) and 0 <= p < 1):
                raise ValueError(f"{name} must be a drop probability in [0, 1), got {p!r}")
        self.x_dim = x_dim
        self.net = nn.Sequential(nn.Dropout(dropout_in), Maxout(x_dim, units, pieces), nn.Dropout(dropout_hidden),
                                 Maxout(units, units, pieces), nn.Dropout(dropout_hidden), nn.Linear(units, 1))
        _uniform_init(self, irange)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.x_dim:
            raise ValueError(f"x must have shape (batch, {self.x_dim}), got {tuple(x.shape)}")
        return self.net(x)[:, 0]


def sample(generator: Generator, n: int, *, noise: torch.Generator | None = None, batch_size: int = 1000,
           kind: str = "uniform") -> torch.Tensor:
    """``n`` images :math:`G(z)`, :math:`z` drawn by :func:`draw_noise` (``kind``), as a ``(n, 784)``
    tensor on the CPU (computed in batches without gradients, in eval mode)."""
    _check_positive_int("n", n)
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a gan.Generator, got {type(generator).__name__}")
    was = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    out = []
    # all the noise at once, so the samples do not depend on batch_size
    z_all = draw_noise(kind, n, generator.z_dim, generator=noise, device="cpu")
    with torch.no_grad():
        for start in range(0, n, batch_size):
            out.append(generator(z_all[start:start + batch_size].to(device)).cpu())
    generator.train(was)
    return torch.cat(out)


# ----------------------------------------------------------------------------------------------
# Evaluation pieces
# ----------------------------------------------------------------------------------------------

class DigitClassifier(nn.Module):
    """A small MNIST classifier (784 → 256 → 10, ReLU) used only to label generated samples."""

    def __init__(self, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_classifier(x: torch.Tensor, y: torch.Tensor, *, epochs: int = 2, batch_size: int = 100, lr: float = 1e-3,
                     seed: int = 0) -> DigitClassifier:
    """Train :class:`DigitClassifier` with Adam on images ``x`` (n, 784) in [0, 1] and labels ``y``."""
    if x.dim() != 2 or x.shape[1] != 784 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be (n, 784) and y (n,), got {tuple(x.shape)} and {tuple(y.shape)}")
    torch.manual_seed(seed)
    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sampler = training.EpochSampler(len(x), batch_size, seed=seed)
    for step in range(sampler.steps_per_epoch * epochs):
            idx = torch.as_tensor(sampler.indices(step))
            loss = F.cross_entropy(model(x[idx]), y[idx].long())
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def class_histogram(classifier: nn.Module, images: torch.Tensor) -> np.ndarray:
    """The fraction of ``images`` the classifier assigns to each of the 10 digits."""
    with torch.no_grad():
        labels = torch.cat([classifier(images[i:i + 2000]).argmax(1) for i in range(0, len(images), 2000)])
    return np.bincount(labels.numpy(), minlength=10) / len(images)


def blur(images: torch.Tensor) -> torch.Tensor:
    """A 3×3 box blur of ``(n, 784)`` images (zero padding at the border)."""
    x = images.reshape(-1, 1, 28, 28)
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True).reshape(len(images), 784)


def parzen_evaluation(centres: torch.Tensor, x_test: torch.Tensor, x_valid: torch.Tensor,
                      sigmas=PAPER_SIGMAS) -> dict:
    """The protocol's Parzen estimate: σ searched on ``x_valid``, then the test log-likelihoods.
    Returns ``{"sigma", "ll" (per test image), "mean", "se", "valid_curve"}``."""
    sigma, valid_ll = evaluation.parzen_sigma_search(x_valid, centres, list(sigmas))
    ll = evaluation.parzen_log_likelihood(x_test, centres, sigma)
    mean, se = evaluation.mean_and_standard_error(ll)
    return {"sigma": sigma, "ll": ll, "mean": mean, "se": se,
            "valid_curve": [[float(s), float(v)] for s, v in zip(sigmas, valid_ll)]}


# ----------------------------------------------------------------------------------------------
# The experiment
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    """Every knob of the MNIST experiment; ``quick()``, ``cpu()``, ``paper()`` give the scales.

    The defaults are the authors' settings (module docstring), including their update
    (``update="simultaneous"``: one shared batch of samples, both players stepped at once, the
    discriminator's loss halved) and their uniform noise; ``update="alternating"`` is Algorithm 1
    as printed (``k`` discriminator steps, then a generator step). ``optimizer="adam"`` (with ``lr``
    and ``adam_beta1``) is offered for experiments; every scale uses the authors' SGD. ``train_limit``: train on the
    first n of the 50,000 training images. ``snapshot_epochs``: epochs after which 36 samples
    from fixed noise are kept (0: before training). The evaluation fields follow the protocol.
    """

    z_dim: int = 100
    g_hidden: int = 1200
    d_units: int = 240
    d_pieces: int = 5
    dropout_in: float = 0.2
    dropout_hidden: float = 0.5
    batch_size: int = 100
    k: int = 1
    update: str = "simultaneous"
    noise: str = "uniform"
    generator_loss: str = "non_saturating"
    optimizer: str = "sgd"
    lr: float = 0.1
    lr_decay: float = 1.000004
    min_lr: float = 1e-6
    momentum: float = 0.5
    final_momentum: float = 0.7
    momentum_saturate: int = 250
    adam_beta1: float = 0.5
    epochs: int = 300
    train_limit: int | None = None
    seed: int = 0
    snapshot_epochs: tuple[int, ...] = (0, 1, 5, 25, 100, 300)
    parzen_samples: int = 10_000
    parzen_test_images: int | None = None
    parzen_valid_images: int = 1_000
    classifier_epochs: int = 3
    threads: int | None = None
    checkpoint: bool = True

    def __post_init__(self):
        for name in ("z_dim", "g_hidden", "d_units", "d_pieces", "batch_size", "k", "epochs", "parzen_samples",
                     "parzen_valid_images", "classifier_epochs", "momentum_saturate"):
            _check_positive_int(name, getattr(self, name))
        if self.k < 1:
            raise ValueError(f"k (discriminator steps per generator step) must be >= 1, got {self.k}")
        for name in ("train_limit", "parzen_test_images", "threads"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name), " or None")
        if self.update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {self.update!r}")
        if self.update == "simultaneous" and self.k != 1:
            raise ValueError(f"k (discriminator steps per generator step) must be 1 with update='simultaneous' "
                             f"(both players step together), got k={self.k}; use update='alternating'")
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {NOISES}, got {self.noise!r}")
        if self.generator_loss not in GENERATOR_LOSSES:
            raise ValueError(f"generator_loss must be one of {GENERATOR_LOSSES}, got {self.generator_loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a number > 0, got {self.lr!r}")
        if not (isinstance(self.lr_decay, (int, float)) and self.lr_decay >= 1):
            raise ValueError(f"lr_decay (the divisor applied every step) must be >= 1, got {self.lr_decay!r}")
        for name in ("momentum", "final_momentum", "adam_beta1"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        if (not isinstance(self.snapshot_epochs, tuple)
                or not all(isinstance(e, int) and 0 <= e <= self.epochs for e in self.snapshot_epochs)):
            raise ValueError(f"snapshot_epochs must be a tuple of epochs in [0, epochs={self.epochs}], "
                             f"got {self.snapshot_epochs!r}")
        if self.train_limit is not None and self.train_limit < self.batch_size:
            raise ValueError(f"train_limit ({self.train_limit}) must be at least batch_size ({self.batch_size})")

    @classmethod
    def quick(cls) -> "Config":
        """CI scale: the authors' recipe (SGD schedule, their simultaneous update, uniform noise,
        dropout, maxout) with narrower
        networks (512 generator units, 128 maxout units) for 2 epochs on the first 25,000
        images (500 generator steps); Parzen with 2,000 samples on 2,000 test images, σ on 500
        validation images. Samples after so few steps are rough: this scale checks the code. One
        thread: measured 13 s of training alone (8 s with two threads), but two threads beside
        another busy process slowed the notebook more than tenfold."""
        return cls(g_hidden=512, d_units=128, epochs=2, train_limit=25_000, snapshot_epochs=(0, 1, 2),
                   parzen_samples=2_000, parzen_test_images=2_000, parzen_valid_images=500,
                   classifier_epochs=1, threads=1, checkpoint=False)

    @classmethod
    def cpu(cls) -> "Config":
        """Two CPU cores: the authors' networks and recipe (SGD, lr 0.1 decaying by 1.000004 per
        step, momentum 0.5 → 0.7, their simultaneous update and uniform noise) on all 50,000 images for 50 epochs, with the full
        evaluation protocol (10,000 samples, 10,000 test images). Departure: 50 epochs, where the
        paper gives no stopping point and ``paper()`` assumes 300. One thread (two processes on
        two cores contend badly with more)."""
        return cls(epochs=50, snapshot_epochs=(0, 1, 5, 20, 50), threads=1)

    @classmethod
    def paper(cls) -> "Config":
        """The authors' settings (``mnist.yaml``): SGD, lr 0.1 decaying by 1.000004 per step,
        momentum 0.5 → 0.7 over 250 epochs, ``AdversaryCost2``'s simultaneous update (one shared
        batch of samples, the discriminator's loss halved), uniform noise; 300 epochs (our assumption: the paper and the
        configuration set no stopping point). For a GPU."""
        return cls()


def load_data(train_limit: int | None = None) -> dict:
    """MNIST as float32 ``(n, 784)`` in [0, 1): ``{"train", "valid", "test", "y_train", "y_test"}``."""
    from . import data

    splits = data.load_mnist()
    x_train, y_train = torch.as_tensor(splits.train.x), torch.as_tensor(splits.train.y)
    if train_limit is not None:
        x_train, y_train = x_train[:train_limit], y_train[:train_limit]
    return {"train": x_train, "y_train": y_train, "valid": torch.as_tensor(splits.valid.x),
            "test": torch.as_tensor(splits.test.x), "y_test": torch.as_tensor(splits.test.y)}


_RUN_FIELDS = ("z_dim", "g_hidden", "d_units", "d_pieces", "dropout_in", "dropout_hidden", "batch_size", "k",
               "update", "noise",
               "generator_loss", "optimizer", "lr", "lr_decay", "min_lr", "momentum", "final_momentum",
               "momentum_saturate", "adam_beta1", "epochs", "train_limit", "seed", "snapshot_epochs")


def checkpoint_path(config: Config):
    """The checkpoint of this training run: a hash of the fields that shape it in its name."""
    fields = {k: getattr(config, k) for k in _RUN_FIELDS}
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
    return runtime.checkpoints_dir() / SLUG / f"seed{config.seed}-{key}.pt"


def build(config: Config, x_train: torch.Tensor, device=None) -> tuple[Generator, Discriminator]:
    """The two networks of ``config`` with the authors' initialisation, seeded by ``config.seed``."""
    torch.manual_seed(config.seed)
    mean = x_train.mean(0).clamp(1e-3, 1 - 1e-3)
    g = Generator(config.z_dim, config.g_hidden, x_train.shape[1], output_bias=torch.logit(mean))
    d = Discriminator(x_train.shape[1], config.d_units, config.d_pieces, dropout_in=config.dropout_in,
                      dropout_hidden=config.dropout_hidden)
    device = device or runtime.device()
    return g.to(device), d.to(device)


def _optimizers(config: Config, g: nn.Module, d: nn.Module):
    if config.optimizer == "adam":
        make = lambda p: torch.optim.Adam(p, lr=config.lr, betas=(config.adam_beta1, 0.999))  # noqa: E731
    else:
        make = lambda p: torch.optim.SGD(p, lr=config.lr, momentum=config.momentum)  # noqa: E731
    return make(g.parameters()), make(d.parameters())


def _schedule(config: Config, optimizers, step: int, epoch: int) -> None:
    """The authors' schedule for SGD: lr / 1.000004^step (at least min_lr), momentum linear from
    ``momentum`` at epoch 1 to ``final_momentum`` at ``momentum_saturate``. Torch's SGD keeps
    ``v ← μ v + g; θ ← θ − η v`` where pylearn2 keeps ``v ← μ v − η g; θ ← θ + v``: the same
    steps while η is constant, and nearly so under this slow decay."""
    if config.optimizer != "sgd":
        return
    lr = max(config.lr / config.lr_decay ** step, config.min_lr)
    frac = min(max((epoch - 1) / max(config.momentum_saturate - 1, 1), 0.0), 1.0)
    mom = config.momentum + frac * (config.final_momentum - config.momentum)
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"], group["momentum"] = lr, mom


def train(config: Config, x_train: torch.Tensor, x_valid: torch.Tensor, *, device=None, checkpoint: bool = False,
          progress: bool = True) -> dict:
    r"""The MNIST game. With ``config.update == "simultaneous"`` (the authors' code) every step is
    one :func:`simultaneous_step` on a minibatch of data and one of noise; with
    ``"alternating"`` (Algorithm 1 as printed), per generator step, ``k`` discriminator steps on
    fresh minibatches of data and noise, minimising :func:`discriminator_loss`, then one
    generator step on fresh noise, minimising :func:`generator_loss` (``config.generator_loss``).
    Dropout is on in :math:`D` for both players (as in the authors' cost).

    Returns ``{"G", "D", "curves", "snapshots", "seconds"}``; ``curves`` per epoch: mean ``loss_d`` (:func:`discriminator_loss`, not halved, in both modes),
    ``loss_g`` over the epoch's steps, and :math:`D`'s mean output (eval mode, no dropout) on the
    first 1,000 validation images (``d_real``) and on 1,000 fixed samples (``d_fake``);
    ``snapshots``: ``{epoch: uint8 (36, 28, 28)}`` from fixed noise. With ``checkpoint`` the
    state is saved after every epoch (atomically) and a killed run resumes there.
    """
    device = device or runtime.device()
    g, d = build(config, x_train, device)
    opt_g, opt_d = _optimizers(config, g, d)
    sampler = training.EpochSampler(len(x_train), config.batch_size, seed=config.seed, drop_last=True)
    spe = sampler.steps_per_epoch
    d_steps_per_epoch = spe  # an epoch = one pass of the discriminator over the data
    g_steps_per_epoch = max(d_steps_per_epoch // config.k, 1)
    x_train, x_eval_real = x_train.to(device), x_valid[:1000].to(device)
    noise = torch.Generator(device=device).manual_seed(config.seed + 1)
    fixed = torch.Generator().manual_seed(config.seed + 2)
    z_snap = draw_noise(config.noise, 36, config.z_dim, generator=fixed)
    z_eval = draw_noise(config.noise, 1000, config.z_dim, generator=fixed)
    curves = {"loss_d": [], "loss_g": [], "d_real": [], "d_fake": []}
    snapshots: dict[int, np.ndarray] = {}
    epoch, seconds, d_step = 0, 0.0, 0
    path = checkpoint_path(config) if checkpoint else None
    if path is not None and path.exists():
        saved = training.load_checkpoint(path, map_location="cpu")
        g.load_state_dict(saved["G"]), d.load_state_dict(saved["D"])
        opt_g.load_state_dict(saved["opt_g"]), opt_d.load_state_dict(saved["opt_d"])
        noise.set_state(saved["noise"].cpu())
        torch.set_rng_state(saved["torch_rng"].cpu())       # dropout masks draw from the global generator
        if "cuda_rng" in saved and torch.cuda.is_available():
            torch.cuda.set_rng_state(saved["cuda_rng"].cpu())
        epoch, seconds, d_step = int(saved["epoch"]), float(saved["seconds"]), int(saved["d_step"])
        curves = {k: [list(p) for p in v] for k, v in saved["curves"].items()}
        snapshots = {int(k): np.asarray(v, dtype=np.uint8) for k, v in saved["snapshots"].items()}

    def snapshot(e):
        g.eval()
        with torch.no_grad():
            img = g(z_snap.to(device)).cpu().reshape(36, 28, 28)
        g.train()
        snapshots[e] = (img * 255).round().to(torch.uint8).numpy()

    if 0 in config.snapshot_epochs and 0 not in snapshots:
        snapshot(0)
    bar = training.progress(total=config.epochs * g_steps_per_epoch, initial=epoch * g_steps_per_epoch,
                            desc="GAN", disable=not progress)
    t0 = time.perf_counter()
    for e in range(epoch, config.epochs):
        g.train(), d.train()
        sum_d = sum_g = 0.0
        for _ in range(g_steps_per_epoch):
            _schedule(config, (opt_g, opt_d), d_step, e + 1)
            if config.update == "simultaneous":
                idx = torch.as_tensor(sampler.indices(d_step), device=device)
                z = draw_noise(config.noise, config.batch_size, config.z_dim, generator=noise)
                ld, lg = simultaneous_step(g, d, x_train[idx], z, opt_g, opt_d, config.generator_loss)
                d_step += 1
                sum_d += 2 * training.check_finite(ld, step=d_step)  # the curve: discriminator_loss, unhalved
                sum_g += training.check_finite(lg, step=d_step)
                bar.update(1)
                continue
            for _ in range(config.k):
                idx = torch.as_tensor(sampler.indices(d_step), device=device)
                with torch.no_grad():
                    fake = g(draw_noise(config.noise, config.batch_size, config.z_dim, generator=noise))
                loss_d = discriminator_loss(d(x_train[idx]), d(fake))
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                d_step += 1
            z = draw_noise(config.noise, config.batch_size, config.z_dim, generator=noise)
            loss_g = generator_loss(d(g(z)), config.generator_loss)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            sum_d += training.check_finite(loss_d.detach(), step=d_step)
            sum_g += training.check_finite(loss_g.detach(), step=d_step)
            bar.update(1)
        d.eval(), g.eval()
        with torch.no_grad():
            d_real = float(torch.sigmoid(d(x_eval_real)).mean())
            d_fake = float(torch.sigmoid(d(g(z_eval.to(device)))).mean())
        for name, v in (("loss_d", sum_d / g_steps_per_epoch), ("loss_g", sum_g / g_steps_per_epoch),
                        ("d_real", d_real), ("d_fake", d_fake)):
            curves[name].append([e + 1, v])
        if e + 1 in config.snapshot_epochs:
            snapshot(e + 1)
        if path is not None:
            training.save_checkpoint(path, {
                "G": g.state_dict(), "D": d.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                "noise": noise.get_state(), "torch_rng": torch.get_rng_state(),
                **({"cuda_rng": torch.cuda.get_rng_state()} if torch.cuda.is_available() else {}),
                "epoch": e + 1, "d_step": d_step,
                "seconds": seconds + time.perf_counter() - t0, "curves": curves,
                "snapshots": {str(k): torch.as_tensor(v) for k, v in snapshots.items()}})
    bar.close()
    seconds += time.perf_counter() - t0
    return {"G": g.eval(), "D": d.eval(), "curves": curves, "snapshots": snapshots, "seconds": seconds}


PAPER = {
    "test_parzen_ll": {"value": 225.0, "status": "V2",
                       "source": "Table 1: Parzen window-based log-likelihood estimates, MNIST 225 ± 2"},
    "test_parzen_ll_se": {"value": 2.0, "status": "V2",
                          "source": "Table 1: the ± is the standard error of the mean over test examples"},
}


def _write_snapshots(snapshots: dict, scale: str, results_dir=None):
    folder = Path(results_dir if results_dir is not None else runtime.results_out_dir())
    epochs = sorted(snapshots)
    return training.write_atomic(folder / scale / f"{SLUG}_samples.npz", lambda f: np.savez_compressed(
        f, epochs=np.array(epochs), images=np.stack([snapshots[e] for e in epochs])))


def read_snapshots(scale: str, results_dir=None) -> dict:
    """``{epoch: uint8 (36, 28, 28)}``: the samples a run kept during training
    (``results/<scale>/gan_samples.npz``, written beside ``gan.json``)."""
    folder = results_dir if results_dir is not None else runtime.results_dir()
    with np.load(Path(folder) / runtime.check_scale(scale) / f"{SLUG}_samples.npz") as z:
        return {int(e): img for e, img in zip(z["epochs"], z["images"])}


def run(config: Config | None = None, *, scale: str | None = None, write: bool = True, results_dir=None,
        device=None, command: str | None = None, models: dict | None = None) -> dict:
    """Train the GAN of ``config``, evaluate it by the protocol; write and return the results.

    ``metrics``: ``test_parzen_ll``, ``test_parzen_ll_se``, ``parzen_sigma``,
    ``train_set_parzen_ll`` (+ ``_sigma``), ``blurred_train_set_parzen_ll`` (+ ``_sigma``),
    ``sample_class_entropy``, ``sample_class_min_fraction``, ``test_class_entropy`` (the same
    classifier on the test images), ``classifier_test_accuracy``, ``final_d_real``,
    ``final_d_fake``, ``train_s`` and ``compute_s``. ``curves``: per epoch ``loss_d``, ``loss_g``,
    ``d_real``, ``d_fake``; ``parzen_valid_vs_sigma``; ``sample_class_histogram`` and
    ``test_class_histogram`` as ``[digit, fraction]``. With ``write``, the samples kept during
    training go to ``results/<scale>/gan_samples.npz``. Pass a dict as ``models`` to get ``G``,
    ``D`` and the classifier back.
    """
    study = results.start_study(Config, config, scale, device, models)
    scale, config, device = study.scale, study.config, study.device
    data = load_data(config.train_limit)
    out = train(config, data["train"], data["valid"], device=device, checkpoint=config.checkpoint)
    t_eval = time.perf_counter()
    samples = sample(out["G"], config.parzen_samples, noise=torch.Generator().manual_seed(config.seed + 3),
                     kind=config.noise)
    x_test = data["test"][:config.parzen_test_images] if config.parzen_test_images else data["test"]
    x_valid = data["valid"][:config.parzen_valid_images]
    ours = parzen_evaluation(samples, x_test, x_valid)
    reference = data["train"][:config.parzen_samples]
    if len(reference) < config.parzen_samples:  # a small train_limit: fill up from the full set
        reference = load_data(None)["train"][:config.parzen_samples]
    memorised = parzen_evaluation(reference, x_test, x_valid)
    blurred = parzen_evaluation(blur(reference), x_test, x_valid)
    clf = train_classifier(data["train"], data["y_train"], epochs=config.classifier_epochs, seed=config.seed)
    with torch.no_grad():
        acc = float((clf(data["test"]).argmax(1) == data["y_test"]).float().mean())
    hist_s, hist_t = class_histogram(clf, samples), class_histogram(clf, data["test"])

    def entropy(h):
        h = h[h > 0]
        return float(-(h * np.log(h)).sum())

    metrics = {
        "test_parzen_ll": ours["mean"], "test_parzen_ll_se": ours["se"], "parzen_sigma": ours["sigma"],
        "train_set_parzen_ll": memorised["mean"], "train_set_parzen_sigma": memorised["sigma"],
        "blurred_train_set_parzen_ll": blurred["mean"], "blurred_train_set_parzen_sigma": blurred["sigma"],
        "sample_class_entropy": entropy(hist_s), "sample_class_min_fraction": float(hist_s.min()),
        "test_class_entropy": entropy(hist_t), "classifier_test_accuracy": acc,
        "final_d_real": out["curves"]["d_real"][-1][1], "final_d_fake": out["curves"]["d_fake"][-1][1],
        "train_s": out["seconds"], "compute_s": out["seconds"] + time.perf_counter() - t_eval,
    }
    curves = dict(out["curves"])
    curves["parzen_valid_vs_sigma"] = ours["valid_curve"]
    curves["sample_class_histogram"] = [[i, float(v)] for i, v in enumerate(hist_s)]
    curves["test_class_histogram"] = [[i, float(v)] for i, v in enumerate(hist_t)]
    if models is not None:
        models.update({"G": out["G"], "D": out["D"], "classifier": clf, "samples": samples,
                       "snapshots": out["snapshots"]})
    result = study.finish(SLUG, metrics, curves, PAPER, seeds=[config.seed], command=command, write=write,
                          results_dir=results_dir)
    if write:
        if out["snapshots"]:
            _write_snapshots(out["snapshots"], scale, results_dir)
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m papernotes_core.gan [--no-write]`` at ``PAPERNOTES_SCALE``."""
    return runtime.study_main(SLUG, Config, run, argv, description=main.__doc__)


if __name__ == "__main__":  # pragma: no cover - the command line entry point
    sys.exit(main())
