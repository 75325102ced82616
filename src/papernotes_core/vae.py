r"""Auto-Encoding Variational Bayes (Kingma & Welling, 2013; arXiv:1312.6114).

A latent-variable model :math:`p_\theta(x, z) = p(z)\,p_\theta(x \mid z)` with
:math:`p(z) = \mathcal N(0, I)` and a decoder MLP, trained together with an encoder MLP
:math:`q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))` by
stochastic gradient ascent on the evidence lower bound (paper, Sec. 2.2-2.4 and eq. 10):

.. math::

    \log p_\theta(x) \;\ge\; \mathcal L(\theta, \phi; x)
    = -D_{KL}\big(q_\phi(z \mid x)\,\Vert\,p(z)\big)
      + \mathbb E_{q_\phi(z \mid x)}\big[\log p_\theta(x \mid z)\big]
    \approx \frac12 \sum_{j=1}^{J}\big(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\big)
      + \frac1L \sum_{l=1}^{L} \log p_\theta(x \mid z^{(l)}),

with :math:`z^{(l)} = \mu + \sigma \odot \epsilon^{(l)}`, :math:`\epsilon^{(l)} \sim \mathcal
N(0, I)` drawn independently of the parameters (the reparameterisation, Sec. 2.4), so the
estimate is differentiable in :math:`\theta` and :math:`\phi`.

What the module holds:

* the closed-form KL (:func:`gaussian_kl`, Appendix B), the likelihoods of Appendix C
  (:func:`bernoulli_log_likelihood`, :func:`gaussian_log_density`), the MLPs
  (:class:`BernoulliMLP`, :class:`GaussianMLP`) and the model :class:`VAE` with
  :meth:`~VAE.elbo`, :meth:`~VAE.sample`, :meth:`~VAE.reconstruct` and the importance-weighted
  log-likelihood :meth:`~VAE.log_likelihood_iw`;
* for the notebook's derivations, probabilistic PCA (:class:`LinearGaussianModel`), where
  :math:`\log p(x)`, the exact posterior, the ELBO of any Gaussian :math:`q` and the IW bound can
  all be compared, and the score-function (REINFORCE) and reparameterised gradient estimators on
  a toy problem (:func:`score_function_gradient`, :func:`reparameterized_gradient`);
* the wake-sleep algorithm (Hinton et al., 1995), the baseline of the paper's Fig. 2, with the
  same networks (:func:`wake_sleep_losses`, :func:`dream`): the wake phase fits the decoder
  :math:`p_\theta(x \mid z)` to :math:`z \sim q_\phi(z \mid x)` drawn for the data, the sleep
  phase fits the encoder to :math:`(z, x)` "dreamed" from :math:`p(z)\,p_\theta(x \mid z)`;
* the latent usage of a trained encoder (:func:`latent_usage`): per latent dimension, the KL
  of :math:`q_\phi(z_u \mid x)` from the prior averaged over images, the activity
  :math:`\operatorname{Cov}_x(\mathbb E_q[z_u])` and the number of active units (Burda et al.,
  2015), to measure whether the unused dimensions of a large :math:`N_z` collapse onto the prior;
* the experiment of Sec. 5 / Fig. 2 (:class:`Config`, :func:`run`), which writes
  ``results/<scale>/vae.json``. Run it from the shell:
  ``PAPERNOTES_SCALE=cpu python -m papernotes_core.vae``.

Evaluation protocol (fixed; every scale follows it)
---------------------------------------------------

* Data: MNIST's 50,000 training and 10,000 test images (``data.load_mnist``), grey levels
  :math:`k/256` in :math:`[0, 1)`. The paper says neither which training split it used nor how
  it binarised the images for its Bernoulli decoder; we binarise **stochastically**:
  :math:`x_{bin} \sim \operatorname{Bernoulli}(x)` pixel by pixel.
* Training images are binarised afresh every epoch, with a generator seeded by
  ``(seed, epoch)``: deterministic given the seed and the epoch, so a resumed run sees the same
  data. Minibatches come from :class:`training.EpochSampler` (whole batches only).
* The full 10,000-image test set is binarised **once**, with the fixed seed
  :data:`TEST_BINARIZE_SEED`, on the CPU, so every scale and device evaluates the same images.
* ``metrics.test_elbo.nz{N}``: the ELBO with the analytic KL (eq. 10), the reconstruction term
  averaged over ``elbo_samples`` (at least 10) draws of :math:`z` per test image, averaged over
  all 10,000 test images (``test_elbo_se.nz{N}`` is its standard error over images).
  ``metrics.test_elbo`` is that of :math:`N_z = 20` (``Config.headline_latent``).
* ``metrics.test_log_likelihood_iw(.nz{N})``: the importance-weighted estimate
  :math:`\log \frac1K \sum_k p(x \mid z_k)\,p(z_k) / q(z_k \mid x)`, :math:`z_k \sim q(z\mid x)`,
  with :math:`K` = ``iw_samples`` (5,000 at ``cpu`` and ``paper`` scale, 100 at ``quick``),
  averaged over the first ``iw_images`` test images (all 10,000 at ``cpu`` and ``paper``
  scale, 1,000 at ``quick``), for the latent sizes in ``iw_latents`` (all, except at ``cpu``
  scale: :math:`N_z = 20` only).
* ``metrics.train_elbo(.nz{N})``: the same ELBO estimate on the first ``train_eval_images``
  training images, binarised once with :data:`TRAIN_EVAL_BINARIZE_SEED` (to see over-fitting).
* Curves, as in the paper's Fig. 2: ``test_elbo_vs_samples.nz{N}`` is ``[training samples
  seen, test ELBO]`` at log-spaced points (``curve_per_decade`` per decade from
  ``curve_start``, :math:`10^5` at ``cpu`` and ``paper`` scale, and always the last step), the
  test ELBO there estimated with ``curve_samples`` draw(s) per image on ``curve_images`` test
  images; ``train_elbo_vs_samples.nz{N}`` is the mean minibatch ELBO of training (:math:`L = 1`,
  without the weight-decay term) over the steps since the previous point (at most the last
  epoch's worth).
* Latent usage, on the same binarised test images, for every latent size trained:
  ``active_units.nz{N}`` (dimensions whose :math:`\operatorname{Var}_x \mu_u(x) > 0.01`) and
  ``latent_kl_total.nz{N}`` (the mean KL term of the test ELBO, the sum of the per-dimension
  KLs); curves ``latent_kl_per_dim.nz{N}`` (``[rank, KL]``, dimensions by decreasing KL) and
  ``latent_activity_per_dim.nz{N}`` (``[rank, activity]``, the same dimensions, same order).
* Wake-sleep (``Config.wake_sleep_latents``): a second model per listed size, with the same
  networks, initial weights, optimizer, step-size choice and weight decay, trained by
  wake-sleep for the same number of steps (each step: one wake update on a data minibatch and
  one sleep update on as many dreams). Its ELBO is measured exactly as AEVB's, with its encoder
  as :math:`q` (the paper plots the lower bound for both): ``test_elbo_wake_sleep.nz{N}``,
  ``test_elbo_wake_sleep_se.nz{N}``, ``train_elbo_wake_sleep.nz{N}``,
  ``train_seconds_wake_sleep.nz{N}``, curves ``test_elbo_vs_samples_wake_sleep.nz{N}`` and
  ``train_elbo_vs_samples_wake_sleep.nz{N}``; no IW estimate.
* ``Config.carry``: a run may take the AEVB numbers of some sizes (``"nz3"``, ...) from the
  existing results file of its scale instead of training them again
  (``provenance.carried_over`` says which and from which commit).

Paper settings (Sec. 5, checked against a transcription of the paper's text) and our departures
-------------------------------------------------------------------------------------------------

* Encoder and decoder MLPs with one hidden layer ("500 hidden units in case of MNIST", Sec. 5)
  of tanh units (Appendix C's equations), :math:`N_z \in \{3, 5, 10, 20, 200\}` (Fig. 2),
  "Minibatches of size M = 100 were used, with L = 1 samples per datapoint".
* "All parameters, both variational and generative, were initialized by random sampling from
  N(0, 0.01)": we read 0.01 as the standard deviation (the notation could also mean the
  variance); biases are drawn too.
* "Stepsizes were adapted with Adagrad; the Adagrad global stepsize parameters were chosen from
  {0.01, 0.02, 0.1} based on performance on the training set in the first few iterations":
  ``paper()`` tries each for ``lr_trial_steps`` steps from the same initial weights and keeps the
  one with the best mean training ELBO over the trial's second half.
* "gradients are computed by differentiating the lower bound estimator [...] plus a small weight
  decay term corresponding to a prior p(θ) = N(0, I)": we maximise
  :math:`\frac1M\sum_i \mathcal L(x_i) + \frac1N \log p(\theta)` (Algorithm 1's
  :math:`\frac NM\sum_i \mathcal L(x_i) + \log p(\theta)` divided by the training-set size
  :math:`N`), applied, as the paper's "all parameters ... jointly optimized using the MAP
  criterion" suggests, to the encoder's parameters too.
* The text gives no training length. ``paper()`` trains for :math:`10^8` training samples
  (2,000 epochs), where we take Fig. 2's logarithmic horizontal axis ("amount of training points
  evaluated") to end: an assumption, not checked against the figure here.
* Departure, ``cpu()`` and ``quick()``: Adam (lr :math:`10^{-3}` and :math:`3\times10^{-3}`)
  instead of Adagrad, because Adagrad's ever-shrinking steps need far more than the 100 epochs
  that two CPU cores allow (see :meth:`Config.cpu`); ``optimizer`` is a config field, and
  ``paper()`` keeps Adagrad. ``quick()`` also starts from PyTorch's default initialisation
  (``init_std=None``), which gets its 1,000 steps further (test ELBO -114.7 against -122.3);
  ``cpu()`` keeps the paper's.
* The paper reports MNIST only as curves (Fig. 2): there is no number to compare with, and the
  results file says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import evaluation, results, runtime, training

SLUG = "vae"
LIKELIHOODS = ("bernoulli", "gaussian")
OPTIMIZERS = ("adagrad", "adam")
#: The training methods: the paper's AEVB and the wake-sleep baseline of its Fig. 2.
METHODS = ("aevb", "wake_sleep")
#: Fig. 2's latent sizes and Sec. 5's Adagrad step sizes.
PAPER_LATENTS = (3, 5, 10, 20, 200)
PAPER_LRS = (0.01, 0.02, 0.1)
#: The seed of the test set's one binarisation (every scale, every device: the same images).
TEST_BINARIZE_SEED = 1312_6114
#: The seed of the one binarisation of the training images on which ``train_elbo`` is measured.
TRAIN_EVAL_BINARIZE_SEED = 6114_1312
_LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

def _check_positive_int(name: str, value, what: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int{what}, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int{what}, got {value}")
    return int(value)


def _check_tensor(name: str, x, ndim: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-d, got shape {tuple(x.shape)}")
    return x


def check_unit_interval(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Return ``x`` if all its values lie in [0, 1]; else a ``ValueError`` naming the range found."""
    _check_tensor(name, x)
    if x.numel():
        lo, hi = torch.aminmax(x.detach())
        lo, hi = float(lo), float(hi)
        if not (lo >= 0.0 and hi <= 1.0):  # also catches nan
            raise ValueError(
                f"the Bernoulli likelihood needs {name} with values in [0, 1] (pixel intensities or "
                f"binarised pixels); got values in [{lo:g}, {hi:g}]"
            )
    return x


# --------------------------------------------------------------------------------------------
# Densities and the KL term
# --------------------------------------------------------------------------------------------

def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r""":math:`D_{KL}\big(\mathcal N(\mu, \operatorname{diag}\sigma^2)\,\Vert\,\mathcal N(0, I)\big)`
    per row, in closed form (paper, Appendix B):

    .. math:: D_{KL} = -\frac12 \sum_{j=1}^{J}\big(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\big).

    ``mu`` and ``logvar`` (:math:`\log\sigma^2`) have shape ``(..., J)``; the result ``(...)``.
    """
    _check_tensor("mu", mu)
    _check_tensor("logvar", logvar)
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    return 0.5 * torch.sum(mu.pow(2) + logvar.exp() - 1.0 - logvar, dim=-1)


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r""":math:`\log \mathcal N(x; \mu, \operatorname{diag}\sigma^2)` summed over the last dimension
    (Appendix C.2):

    .. math:: -\frac12 \sum_j \Big(\log 2\pi + \log\sigma_j^2 + \frac{(x_j - \mu_j)^2}{\sigma_j^2}\Big).

    Arguments broadcast against each other.
    """
    return -0.5 * torch.sum(_LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar), dim=-1)


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    r""":math:`\log \mathcal N(z; 0, I) = -\frac12\sum_j (\log 2\pi + z_j^2)`, over the last dimension."""
    return -0.5 * torch.sum(_LOG_2PI + z.pow(2), dim=-1)


def bernoulli_log_likelihood(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    r""":math:`\log p(x \mid z) = \sum_i x_i \log y_i + (1 - x_i)\log(1 - y_i)`,
    :math:`y = \operatorname{sigmoid}(\text{logits})` (Appendix C.1), summed over the last dimension.

    Computed from the logits as :math:`\sum_i x_i\,\ell_i - \operatorname{softplus}(\ell_i)`
    (no :math:`\log 0` for saturated units). ``x`` broadcasts against ``logits`` (e.g. ``x`` of
    shape ``(B, D)`` against ``(L, B, D)`` logits from :math:`L` samples of :math:`z`). Values of
    ``x`` outside [0, 1] are a ``ValueError`` naming the range found; values strictly inside are
    allowed (the cross-entropy of grey levels) but the paper's likelihood is of binary pixels.
    """
    check_unit_interval(x, "x")
    _check_tensor("logits", logits)
    x = x.to(logits.dtype).expand_as(logits) if x.shape != logits.shape else x.to(logits.dtype)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    r""":math:`z = g_\phi(\epsilon, x) = \mu + \sigma \odot \epsilon` with :math:`\sigma = e^{\frac12\log\sigma^2}`
    (Sec. 2.4). ``eps`` (drawn from :math:`\mathcal N(0, I)`, independently of the parameters)
    broadcasts against ``mu``: shape ``(L, B, J)`` gives :math:`L` samples per row."""
    return mu + torch.exp(0.5 * logvar) * eps


# --------------------------------------------------------------------------------------------
# The MLPs (Appendix C) and the model
# --------------------------------------------------------------------------------------------

class BernoulliMLP(nn.Module):
    r"""Appendix C.1: :math:`y = f_\sigma(W_2 \tanh(W_1 z + b_1) + b_2)`; returns the logits
    :math:`W_2 h + b_2` (use :func:`bernoulli_log_likelihood`; :math:`y` is their sigmoid)."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        self.hidden = nn.Linear(n_in, n_hidden)
        self.out = nn.Linear(n_hidden, n_out)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(z)))


class GaussianMLP(nn.Module):
    r"""Appendix C.2: :math:`h = \tanh(W_3 x + b_3)`, :math:`\mu = W_4 h + b_4`,
    :math:`\log\sigma^2 = W_5 h + b_5`; returns ``(mu, logvar)``.

    The encoder :math:`q_\phi(z \mid x)` is this network; as a decoder with
    ``mean_activation="sigmoid"`` the means are squashed into (0, 1), as the paper's Frey Face
    decoder (Sec. 5).
    """

    def __init__(self, n_in: int, n_hidden: int, n_out: int, *, mean_activation: str | None = None):
        super().__init__()
        if mean_activation not in (None, "sigmoid"):
            raise ValueError(f"mean_activation must be None or 'sigmoid', got {mean_activation!r}")
        self.mean_activation = mean_activation
        self.hidden = nn.Linear(n_in, n_hidden)
        self.mean = nn.Linear(n_hidden, n_out)
        self.logvar = nn.Linear(n_hidden, n_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.hidden(x))
        mean = self.mean(h)
        if self.mean_activation == "sigmoid":
            mean = torch.sigmoid(mean)
        return mean, self.logvar(h)


class VAE(nn.Module):
    r"""The paper's variational auto-encoder (Sec. 3, Appendix C).

    Encoder :math:`q_\phi(z \mid x) = \mathcal N(z; \mu, \operatorname{diag}\sigma^2)` with
    :math:`(\mu, \log\sigma^2)` from a :class:`GaussianMLP`; prior :math:`p(z) = \mathcal N(0, I)`;
    decoder :math:`p_\theta(x \mid z)` Bernoulli (:class:`BernoulliMLP`, for binarised MNIST) or
    Gaussian (:class:`GaussianMLP` with sigmoid means). One hidden layer of ``hidden`` tanh
    units in each network. With ``init_std`` every weight and bias is drawn from
    :math:`\mathcal N(0, \text{init\_std}^2)` (the paper: 0.01); ``None`` keeps PyTorch's
    default initialisation.
    """

    def __init__(self, x_dim: int = 784, z_dim: int = 20, hidden: int = 500, *,
                 likelihood: str = "bernoulli", init_std: float | None = 0.01):
        super().__init__()
        self.x_dim = _check_positive_int("x_dim", x_dim)
        self.z_dim = _check_positive_int("z_dim", z_dim, " (the latent size N_z)")
        self.hidden = _check_positive_int("hidden", hidden)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        self.likelihood = likelihood
        self.encoder = GaussianMLP(x_dim, hidden, z_dim)
        if likelihood == "bernoulli":
            self.decoder: nn.Module = BernoulliMLP(z_dim, hidden, x_dim)
        else:
            self.decoder = GaussianMLP(z_dim, hidden, x_dim, mean_activation="sigmoid")
        if init_std is not None:
            if not (isinstance(init_std, (int, float)) and math.isfinite(init_std) and init_std > 0):
                raise ValueError(f"init_std must be a finite number > 0 or None, got {init_std!r}")
            with torch.no_grad():
                for p in self.parameters():
                    p.normal_(0.0, float(init_std))

    def extra_repr(self) -> str:
        return f"x_dim={self.x_dim}, z_dim={self.z_dim}, hidden={self.hidden}, likelihood={self.likelihood!r}"

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        _check_tensor("x", x, 2)
        if x.shape[1] != self.x_dim:
            raise ValueError(f"x must have shape (batch, {self.x_dim}), got {tuple(x.shape)}")
        return x

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`(\mu, \log\sigma^2)` of :math:`q_\phi(z \mid x)`, each ``(B, z_dim)``."""
        return self.encoder(self._check_x(x))

    def decode(self, z: torch.Tensor):
        """Bernoulli logits ``(..., x_dim)``, or the Gaussian's ``(mean, logvar)``."""
        return self.decoder(z)

    def decoder_mean(self, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\mathbb E[x \mid z]`: the pixel probabilities (Bernoulli) or the means (Gaussian)."""
        out = self.decode(z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out[0]

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p_\theta(x \mid z)`; ``z`` of shape ``(..., B, z_dim)`` gives ``(..., B)``."""
        out = self.decode(z)
        if self.likelihood == "bernoulli":
            return bernoulli_log_likelihood(x, out)
        return gaussian_log_density(x, out[0], out[1])

    def _randn(self, shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)

    def _noise(self, mu: torch.Tensor, samples: int, eps: torch.Tensor | None,
               generator: torch.Generator | None) -> torch.Tensor:
        """The reparameterisation noise ``(L, B, z_dim)``: ``eps`` checked against ``mu``'s shape,
        or ``samples`` fresh standard-normal draws from ``generator``."""
        if eps is None:
            samples = _check_positive_int("samples", samples, " (the number L of z samples)")
            return self._randn((samples, *mu.shape), mu, generator)
        if eps.dim() != 3 or eps.shape[1:] != mu.shape:
            raise ValueError(f"eps must have shape (L, {mu.shape[0]}, {mu.shape[1]}), got {tuple(eps.shape)}")
        return eps

    def elbo(self, x: torch.Tensor, samples: int = 1, *, eps: torch.Tensor | None = None,
             analytic_kl: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""The per-datapoint lower bound estimate, shape ``(B,)``.

        With ``analytic_kl`` (the paper's estimator :math:`\tilde{\mathcal L}^B`, eq. 7 and 10):

        .. math:: \tilde{\mathcal L}^B = -D_{KL}(q_\phi(z\mid x)\Vert p(z))
                  + \frac1L \sum_{l=1}^{L}\log p_\theta(x \mid z^{(l)}),

        without it the generic :math:`\tilde{\mathcal L}^A` (eq. 6),
        :math:`\frac1L\sum_l \log p_\theta(x, z^{(l)}) - \log q_\phi(z^{(l)} \mid x)`; both with
        :math:`z^{(l)} = \mu + \sigma\odot\epsilon^{(l)}`. ``eps`` (shape ``(L, B, z_dim)``) fixes
        the noise (common random numbers, e.g. for finite differences); otherwise
        :math:`L` = ``samples`` draws come from ``generator`` (default: torch's global one).
        """
        mu, logvar = self.encode(x)
        eps = self._noise(mu, samples, eps, generator)
        z = reparameterize(mu, logvar, eps)
        rec = self.log_likelihood(x, z).mean(0)
        if analytic_kl:
            return rec - gaussian_kl(mu, logvar)
        log_ratio = standard_normal_log_density(z) - gaussian_log_density(z, mu, logvar)
        return rec + log_ratio.mean(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`elbo` with one sample of :math:`z` per row."""
        return self.elbo(x)

    def log_weights(self, x: torch.Tensor, k: int, *, generator: torch.Generator | None = None,
                    encoded: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        r"""``(k, B)`` log importance weights
        :math:`\log w_k = \log p_\theta(x \mid z_k) + \log p(z_k) - \log q_\phi(z_k \mid x)`,
        :math:`z_k \sim q_\phi(z \mid x)`. ``encoded`` reuses ``encode(x)`` across chunks."""
        k = _check_positive_int("k", k, " (the number of importance samples)")
        mu, logvar = self.encode(x) if encoded is None else encoded
        eps = self._randn((k, *mu.shape), mu, generator)
        z = reparameterize(mu, logvar, eps)
        # log q(z|x) at z = mu + sigma*eps: the squared term is |eps|^2, computed from eps exactly
        log_q = -0.5 * torch.sum(_LOG_2PI + logvar + eps.pow(2), dim=-1)
        return self.log_likelihood(x, z) + standard_normal_log_density(z) - log_q

    def log_likelihood_iw(self, x: torch.Tensor, k: int, *, chunk: int | None = None,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        r"""The importance-weighted estimate of :math:`\log p_\theta(x)`, per row ``(B,)``:

        .. math:: \log p_\theta(x) \approx \log \frac1K \sum_{k=1}^{K}
                  \frac{p_\theta(x \mid z_k)\,p(z_k)}{q_\phi(z_k \mid x)}, \qquad z_k \sim q_\phi(z \mid x).

        Its expectation is a lower bound on :math:`\log p_\theta(x)` that rises with :math:`K`
        (Burda et al., 2015); :math:`K = 1` is the ELBO estimator :math:`\tilde{\mathcal L}^A`.
        The :math:`K` samples are drawn ``chunk`` at a time (default: about 50,000 decoded rows
        per chunk) and combined with :func:`evaluation.chunked_log_mean_exp`.
        """
        k = _check_positive_int("k", k, " (the number of importance samples)")
        self._check_x(x)
        if chunk is None:
            chunk = max(1, 50_000 // max(1, x.shape[0]))
        chunk = _check_positive_int("chunk", chunk)
        encoded = self.encode(x)
        return evaluation.chunked_log_mean_exp(
            lambda start, size: self.log_weights(x, size, generator=generator, encoded=encoded), k, chunk)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, binary: bool = False) -> torch.Tensor:
        r"""``n`` images from the generative model alone: :math:`z \sim p(z) = \mathcal N(0, I)`, then
        :math:`\mathbb E[x \mid z]` (or, with ``binary``, a Bernoulli draw). Never uses the encoder."""
        n = _check_positive_int("n", n)
        ref = next(self.decoder.parameters())
        z = self._randn((n, self.z_dim), ref, generator)
        mean = self.decoder_mean(z)
        if binary:
            if self.likelihood != "bernoulli":
                raise ValueError("binary=True needs the Bernoulli decoder; this model's is Gaussian")
            return torch.bernoulli(mean, generator=generator)
        return mean

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, *, sample: bool = False,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        r""":math:`\mathbb E[x \mid z]` at :math:`z = \mu_\phi(x)` (or at a draw from
        :math:`q_\phi(z \mid x)` with ``sample``): the encoder, then the decoder."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, self._randn(mu.shape, mu, generator)) if sample else mu
        return self.decoder_mean(z)


def parameter_log_prior(model: nn.Module) -> torch.Tensor:
    r""":math:`\log p(\theta) = -\frac12\lVert\theta\rVert^2` (+ const.) for the prior
    :math:`p(\theta) = \mathcal N(0, I)` over all parameters: the paper's "small weight decay"."""
    return -0.5 * sum(p.pow(2).sum() for p in model.parameters())


# --------------------------------------------------------------------------------------------
# Evaluation over a data set
# --------------------------------------------------------------------------------------------

def _seed_from(*parts: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence: distinct tuples give unrelated streams)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def binarize(x: torch.Tensor, seed: int, epoch: int = 0) -> torch.Tensor:
    r"""Stochastic binarisation :math:`x_{bin} \sim \operatorname{Bernoulli}(x)`, pixel by pixel.

    Drawn on ``x``'s device from a generator seeded by ``(seed, epoch)``: the same arguments give
    the same images on every CPU (the test set is binarised on the CPU for that reason), and a
    GPU run does not pay a host round trip every epoch. The result has ``x``'s dtype and device.
    """
    check_unit_interval(x, "x")
    g = torch.Generator(device=x.device).manual_seed(_seed_from(seed, epoch))
    u = torch.rand(x.shape, generator=g, dtype=torch.float32, device=x.device)
    return (u < x.detach().float()).to(x.dtype)


@torch.no_grad()
def evaluate_elbo(model: VAE, x: torch.Tensor, *, samples: int = 10, batch_size: int = 1000,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """:meth:`VAE.elbo` (analytic KL, ``samples`` draws of z per image) for every row of ``x``, ``(n,)``."""
    was_training = model.training
    model.eval()
    out = [model.elbo(x[i:i + batch_size], samples, generator=generator) for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def evaluate_log_likelihood_iw(model: VAE, x: torch.Tensor, *, k: int = 5000, batch_size: int = 100,
                               chunk: int | None = None, generator: torch.Generator | None = None,
                               progress: bool = False) -> torch.Tensor:
    """:meth:`VAE.log_likelihood_iw` with ``k`` importance samples for every row of ``x``, ``(n,)``."""
    k = _check_positive_int("k", k, " (the number of importance samples)")
    was_training = model.training
    model.eval()
    out = []
    starts = range(0, len(x), batch_size)
    for i in training.progress(starts, desc=f"log p(x), K={k}", disable=not progress, leave=False):
        out.append(model.log_likelihood_iw(x[i:i + batch_size], k, chunk=chunk, generator=generator))
    model.train(was_training)
    return torch.cat(out)


# --------------------------------------------------------------------------------------------
# The wake-sleep baseline (Hinton et al., 1995; the paper's Fig. 2)
# --------------------------------------------------------------------------------------------

def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} (the paper's AEVB or the wake-sleep baseline of "
                         f"Fig. 2), got {method!r}")
    return method


@torch.no_grad()
def dream(model: VAE, n: int, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The sleep phase's "dreams": ``n`` pairs :math:`(z, x)` from the generative model alone,
    :math:`z \sim p(z) = \mathcal N(0, I)`, :math:`x \sim p_\theta(x \mid z)` (a binary draw of
    every pixel for the Bernoulli decoder, a Gaussian draw for the Gaussian one). No gradient
    flows through either. Returns ``(z, x)``, shapes ``(n, z_dim)`` and ``(n, x_dim)``."""
    n = _check_positive_int("n", n, " (the number of dreams)")
    ref = next(model.decoder.parameters())
    z = model._randn((n, model.z_dim), ref, generator)
    out = model.decode(z)
    if model.likelihood == "bernoulli":
        return z, torch.bernoulli(torch.sigmoid(out), generator=generator)
    mean, logvar = out
    return z, mean + torch.exp(0.5 * logvar) * model._randn(mean.shape, mean, generator)


def _wake_sleep_terms(model: VAE, x: torch.Tensor, *, samples: int = 1, eps: torch.Tensor | None = None,
                      dreamed: tuple[torch.Tensor, torch.Tensor] | None = None,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(wake_loss, sleep_loss, elbo)``: the two losses of :func:`wake_sleep_losses` and, free of
    charge (no gradient), the minibatch ELBO of ``x`` per row, ``(B,)``, with the analytic KL and
    the wake phase's draws of :math:`z` (the estimator AEVB's training curve records)."""
    model._check_x(x)
    with torch.no_grad():  # wake: z ~ q(z|x), sampled; no gradient into the encoder
        mu, logvar = model.encode(x)
        eps = model._noise(mu, samples, eps, generator)
        z = reparameterize(mu, logvar, eps)
    rec = model.log_likelihood(x, z)  # (L, B): the gradient reaches the decoder only
    wake = -(rec + standard_normal_log_density(z)).mean()
    with torch.no_grad():
        elbo = rec.detach().mean(0) - gaussian_kl(mu, logvar)
    if dreamed is None:
        z_d, x_d = dream(model, x.shape[0], generator=generator)
    else:
        z_d, x_d = dreamed
        _check_tensor("the dreamed z", z_d, 2)
        if z_d.shape[1] != model.z_dim or x_d.shape[0] != z_d.shape[0]:
            raise ValueError(f"dreamed must be (z, x) of shapes (n, {model.z_dim}) and (n, {model.x_dim}), got "
                             f"{tuple(z_d.shape)} and {tuple(x_d.shape)}")
        z_d, x_d = z_d.detach(), x_d.detach()
    mu_d, logvar_d = model.encode(x_d)  # sleep: the gradient reaches the encoder only
    sleep = -gaussian_log_density(z_d, mu_d, logvar_d).mean()
    return wake, sleep, elbo


def wake_sleep_losses(model: VAE, x: torch.Tensor, generator: torch.Generator | None = None, *,
                      samples: int = 1, eps: torch.Tensor | None = None,
                      dreamed: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The two losses of the wake-sleep algorithm (Hinton et al., 1995), the paper's baseline in
    Fig. 2, with this model's networks: the decoder is the generative model
    :math:`p_\theta(x \mid z)` (prior :math:`\mathcal N(0, I)`), the encoder the recognition
    model :math:`q_\phi(z \mid x)`. Returns ``(wake_loss, sleep_loss)``, scalars:

    .. math::

        \text{wake} &= -\frac1{LB}\sum_{i,l}\big(\log p_\theta(x_i \mid z_i^{(l)}) + \log p(z_i^{(l)})\big),
        \quad z_i^{(l)} \sim q_\phi(z \mid x_i) \text{ (sampled, no gradient)},\\
        \text{sleep} &= -\frac1B\sum_{i}\log q_\phi(\tilde z_i \mid \tilde x_i),
        \quad \tilde z_i \sim \mathcal N(0, I),\ \tilde x_i \sim p_\theta(x \mid \tilde z_i)
        \text{ (dreamed, no gradient)}.

    The wake loss's gradient reaches only :math:`\theta` (the decoder) and the sleep loss's only
    :math:`\phi` (the encoder): unlike AEVB, no single objective is optimised, and the sleep
    phase fits :math:`q` by :math:`D_{KL}(p_\theta(z \mid x)\Vert q_\phi)` on dreams rather than by
    the ELBO's :math:`D_{KL}(q_\phi \Vert p_\theta(z \mid x))` on data. ``B`` dreams are drawn,
    ``B`` the rows of ``x``. ``eps`` (``(L, B, z_dim)``) fixes the wake phase's noise (otherwise
    ``samples`` draws), ``dreamed`` = ``(z, x)`` fixes the dreams (otherwise :func:`dream`);
    the rest comes from ``generator``.
    """
    wake, sleep, _ = _wake_sleep_terms(model, x, samples=samples, eps=eps, dreamed=dreamed, generator=generator)
    return wake, sleep


# --------------------------------------------------------------------------------------------
# Latent usage: active units and the KL per dimension
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def latent_usage(model: VAE, x: torch.Tensor, *, threshold: float = 0.01, batch_size: int = 1000) -> dict:
    r"""How much of the latent space the encoder uses on the images ``x``, dimension by dimension.

    Returns ``{"kl": (J,), "activity": (J,), "active": int}`` (float64 tensors):

    * ``kl``: :math:`\frac1n\sum_x D_{KL}\big(q_\phi(z_u \mid x)\Vert\mathcal N(0, 1)\big)
      = \frac1n\sum_x \frac12\big(\mu_u^2 + \sigma_u^2 - \log\sigma_u^2 - 1\big)`, which sums over
      :math:`u` to the mean of the ELBO's analytic KL term (:func:`gaussian_kl`);
    * ``activity``: :math:`A_u = \operatorname{Cov}_x\big(\mathbb E_{q(z_u \mid x)}[z_u]\big)`, the
      variance over ``x`` of :math:`\mu_u(x)` (divided by :math:`n`), Burda et al. (2015)'s measure;
    * ``active``: the number of dimensions with :math:`A_u >` ``threshold`` (theirs: 0.01).

    A dimension whose posterior is the prior for every image (:math:`\mu_u = 0`,
    :math:`\sigma_u = 1`) has ``kl`` 0 and ``activity`` 0.
    """
    _check_tensor("x", x, 2)
    if len(x) == 0:
        raise ValueError("x must hold at least one image")
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    batch_size = _check_positive_int("batch_size", batch_size)
    was_training = model.training
    model.eval()
    encoded = [model.encode(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    model.train(was_training)
    mu = torch.cat([m for m, _ in encoded]).double()
    logvar = torch.cat([v for _, v in encoded]).double()
    kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).mean(0)
    activity = mu.var(0, correction=0)
    return {"kl": kl, "activity": activity, "active": int((activity > threshold).sum())}


# --------------------------------------------------------------------------------------------
# Probabilistic PCA: a model where everything is exact
# --------------------------------------------------------------------------------------------

def _gaussian_full_log_density(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, cov) for a full covariance, over the last dimension (broadcasting x)."""
    chol = torch.linalg.cholesky(cov)
    diff = (x - mean).unsqueeze(-1)
    sol = torch.linalg.solve_triangular(chol, diff.expand(*diff.shape[:-2], *chol.shape[-2:-1], 1), upper=False)
    maha = sol.squeeze(-1).pow(2).sum(-1)
    logdet = 2 * torch.log(torch.diagonal(chol)).sum()
    return -0.5 * (cov.shape[-1] * _LOG_2PI + logdet + maha)


@dataclass(frozen=True)
class LinearGaussianModel:
    r"""Probabilistic PCA: :math:`p(z) = \mathcal N(0, I_d)`,
    :math:`p(x \mid z) = \mathcal N(Wz + b, s^2 I_D)`; everything the VAE estimates is exact here.

    * marginal: :math:`p(x) = \mathcal N(x; b, WW^\top + s^2 I)` (:meth:`log_marginal`);
    * posterior: :math:`p(z \mid x) = \mathcal N(m, S)` with
      :math:`S = (I + W^\top W / s^2)^{-1}`, :math:`m = S W^\top (x - b) / s^2` (:meth:`posterior`);
    * for any Gaussian :math:`q = \mathcal N(m_q, S_q)`, the ELBO in closed form
      (:meth:`elbo`), :math:`\log p(x) - D_{KL}(q \Vert p(z \mid x))`, and Monte Carlo estimates of
      the IW bound :math:`\mathcal L_K = \mathbb E\big[\log\frac1K\sum_k p(x, z_k)/q(z_k)\big]`
      (:meth:`iw_bound_estimates`), so that :math:`\text{ELBO} = \mathcal L_1 \le \mathcal L_K \le
      \log p(x)`, with equality throughout when :math:`q` is the posterior.

    ``weight`` is ``(D, d)``, ``bias`` ``(D,)``, ``noise_var`` is :math:`s^2 > 0`. Build a random
    one with :func:`linear_gaussian_model`.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    noise_var: float

    def __post_init__(self):
        _check_tensor("weight", self.weight, 2)
        _check_tensor("bias", self.bias, 1)
        if self.bias.shape[0] != self.weight.shape[0]:
            raise ValueError(f"bias must have shape ({self.weight.shape[0]},), got {tuple(self.bias.shape)}")
        if not (isinstance(self.noise_var, (int, float)) and self.noise_var > 0 and math.isfinite(self.noise_var)):
            raise ValueError(f"noise_var must be a finite number > 0, got {self.noise_var!r}")

    @property
    def x_dim(self) -> int:
        return self.weight.shape[0]

    @property
    def z_dim(self) -> int:
        return self.weight.shape[1]

    def _eye(self, n: int) -> torch.Tensor:
        return torch.eye(n, dtype=self.weight.dtype, device=self.weight.device)

    def marginal_cov(self) -> torch.Tensor:
        r""":math:`WW^\top + s^2 I`."""
        return self.weight @ self.weight.T + self.noise_var * self._eye(self.x_dim)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact :math:`\log p(x) = \log\mathcal N(x; b, WW^\top + s^2 I)`, over the last dimension."""
        return _gaussian_full_log_density(x, self.bias, self.marginal_cov())

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Exact :math:`p(z \mid x) = \mathcal N(m, S)`: ``(m, S)``, ``m`` of shape ``(..., d)``, ``S`` ``(d, d)``."""
        w, s2 = self.weight, self.noise_var
        cov = torch.linalg.inv(self._eye(self.z_dim) + w.T @ w / s2)
        mean = (x - self.bias) @ w @ cov.T / s2
        return mean, cov

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(z) + \log\mathcal N(x; Wz + b, s^2 I)`; ``x`` and ``z`` broadcast over leading dims."""
        mean = z @ self.weight.T + self.bias
        logvar = torch.full_like(mean, math.log(self.noise_var))
        return standard_normal_log_density(z) + gaussian_log_density(x, mean, logvar)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of :math:`x` from the model, ``(n, D)``."""
        n = _check_positive_int("n", n)
        opts = dict(generator=generator, dtype=self.weight.dtype, device=self.weight.device)
        z = torch.randn(n, self.z_dim, **opts)
        return z @ self.weight.T + self.bias + math.sqrt(self.noise_var) * torch.randn(n, self.x_dim, **opts)

    def _check_q(self, x, q_mean, q_cov):
        _check_tensor("x", x, 1)
        _check_tensor("q_mean", q_mean, 1)
        _check_tensor("q_cov", q_cov, 2)
        d = self.z_dim
        if x.shape[0] != self.x_dim or q_mean.shape[0] != d or q_cov.shape != (d, d):
            raise ValueError(f"expected x ({self.x_dim},), q_mean ({d},), q_cov ({d}, {d}); got "
                             f"{tuple(x.shape)}, {tuple(q_mean.shape)}, {tuple(q_cov.shape)}")

    def elbo(self, x: torch.Tensor, q_mean: torch.Tensor, q_cov: torch.Tensor) -> torch.Tensor:
        r"""The ELBO of :math:`q = \mathcal N(m_q, S_q)` at one ``x`` of shape ``(D,)``, in closed form:

        .. math::

            \mathbb E_q[\log p(x \mid z)] = -\frac D2\log(2\pi s^2)
                - \frac{\lVert x - W m_q - b\rVert^2 + \operatorname{tr}(W S_q W^\top)}{2 s^2},
            \qquad
            D_{KL}(q \Vert p(z)) = \frac12\big(\operatorname{tr} S_q + m_q^\top m_q - d - \log\det S_q\big),

        and ELBO = the first minus the second.
        """
        self._check_q(x, q_mean, q_cov)
        w, s2, n = self.weight, self.noise_var, self.x_dim
        resid = x - w @ q_mean - self.bias
        rec = -0.5 * n * math.log(2 * math.pi * s2) - (resid @ resid + torch.trace(w @ q_cov @ w.T)) / (2 * s2)
        kl = 0.5 * (torch.trace(q_cov) + q_mean @ q_mean - self.z_dim - torch.logdet(q_cov))
        return rec - kl

    def iw_bound_estimates(self, x: torch.Tensor, q_mean: torch.Tensor, q_cov: torch.Tensor, k: int,
                           reps: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""``reps`` independent estimates :math:`\log\frac1K\sum_{k=1}^K p(x, z_k)/q(z_k)`,
        :math:`z_k \sim q = \mathcal N(m_q, S_q)`, at one ``x``: their mean estimates the IW bound
        :math:`\mathcal L_K`, with standard error from their spread."""
        self._check_q(x, q_mean, q_cov)
        k = _check_positive_int("k", k, " (the number of importance samples)")
        reps = _check_positive_int("reps", reps)
        chol = torch.linalg.cholesky(q_cov)
        eps = torch.randn(reps, k, self.z_dim, generator=generator, dtype=q_mean.dtype, device=q_mean.device)
        z = q_mean + eps @ chol.T
        log_q = -0.5 * (self.z_dim * _LOG_2PI + 2 * torch.log(torch.diagonal(chol)).sum() + eps.pow(2).sum(-1))
        return evaluation.log_mean_exp(self.log_joint(x, z) - log_q, dim=1)


def linear_gaussian_model(x_dim: int = 5, z_dim: int = 2, *, noise_std: float = 0.5, seed: int = 0,
                          dtype: torch.dtype = torch.float64) -> LinearGaussianModel:
    """A random :class:`LinearGaussianModel`: ``W`` and ``b`` standard normal, :math:`s` = ``noise_std``."""
    x_dim = _check_positive_int("x_dim", x_dim)
    z_dim = _check_positive_int("z_dim", z_dim, " (the latent size)")
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(x_dim, z_dim, generator=g, dtype=dtype)
    b = torch.randn(x_dim, generator=g, dtype=dtype)
    return LinearGaussianModel(w, b, float(noise_std) ** 2)


# --------------------------------------------------------------------------------------------
# Two gradient estimators on a toy problem
# --------------------------------------------------------------------------------------------

def quadratic_objective(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""The toy :math:`f(z) = \lVert z - c\rVert^2`, over the last dimension."""
    return (z - target).pow(2).sum(-1)


def quadratic_objective_gradient(mu: torch.Tensor, log_sigma: torch.Tensor,
                                 target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact gradient of :math:`\mathbb E_{z\sim\mathcal N(\mu, \sigma^2)}\lVert z - c\rVert^2
    = \lVert\mu - c\rVert^2 + \sum_j\sigma_j^2`: :math:`(2(\mu - c),\ 2\sigma^2)` with respect to
    :math:`(\mu, \log\sigma)`."""
    return 2 * (mu - target), 2 * torch.exp(2 * log_sigma)


def _toy_eps(mu, n, generator):
    n = _check_positive_int("n", n, " (the number of samples)")
    return torch.randn(n, *mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)


def score_function_gradient(f: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor, log_sigma: torch.Tensor,
                            n: int, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``n`` single-sample score-function (REINFORCE) estimates of
    :math:`\nabla_{\mu, \log\sigma}\,\mathbb E_{q}[f(z)]`, :math:`q = \mathcal N(\mu, \operatorname{diag}\sigma^2)`
    (the estimator the paper contrasts with in Sec. 2.2):

    .. math::

        \widehat\nabla = f(z)\,\nabla\log q(z), \qquad
        \nabla_\mu \log q = \frac{z - \mu}{\sigma^2}, \quad
        \nabla_{\log\sigma}\log q = \frac{(z - \mu)^2}{\sigma^2} - 1 .

    ``f`` maps ``(n, d)`` samples to ``(n,)`` values and needs no gradient. Returns two ``(n, d)``
    tensors, one estimate per row; their means are unbiased.
    """
    mu, log_sigma = mu.detach(), log_sigma.detach()
    eps = _toy_eps(mu, n, generator)
    z = mu + torch.exp(log_sigma) * eps
    with torch.no_grad():
        fz = f(z).unsqueeze(-1)
    # (z - mu)/sigma^2 = eps/sigma and (z - mu)^2/sigma^2 = eps^2
    return fz * eps * torch.exp(-log_sigma), fz * (eps.pow(2) - 1)


def reparameterized_gradient(f: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor, log_sigma: torch.Tensor,
                             n: int, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``n`` single-sample reparameterised estimates of the same gradient (Sec. 2.4):

    .. math::

        z = \mu + \sigma\odot\epsilon, \quad
        \widehat\nabla_\mu = f'(z), \quad \widehat\nabla_{\log\sigma} = f'(z)\odot\sigma\odot\epsilon .

    ``f`` must be differentiable (torch operations) and act row by row. Returns two ``(n, d)``
    tensors.
    """
    mu, log_sigma = mu.detach(), log_sigma.detach()
    eps = _toy_eps(mu, n, generator)
    z = (mu + torch.exp(log_sigma) * eps).requires_grad_(True)
    (dz,) = torch.autograd.grad(f(z).sum(), z)  # rows are independent: row i's gradient is f'(z_i)
    return dz, dz * torch.exp(log_sigma) * eps


# --------------------------------------------------------------------------------------------
# The experiment (Sec. 5, Fig. 2)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    """Every knob of the MNIST experiment; ``quick()``, ``cpu()``, ``paper()`` give the three scales.

    One run trains one model per latent size in ``latents`` (Fig. 2's panels); the headline
    metrics are those of ``headline_latent``. ``lrs`` lists step sizes: with more than one, each
    is tried for ``lr_trial_steps`` steps and the best kept (Sec. 5). ``param_prior`` adds the
    paper's weight decay :math:`\\frac1N\\log p(\\theta)`. ``train_limit`` trains on the first n
    training images (None: all 50,000). The evaluation fields are described in the module's
    protocol section. ``threads`` sets torch's intra-op threads.

    ``wake_sleep_latents``: the latent sizes (from ``latents``) for which a second model, with
    the same networks, initial weights, optimizer, step-size choice and weight decay, is trained
    by wake-sleep (:func:`wake_sleep_losses`), the baseline of Fig. 2; ``()``: none.

    ``carry``: latent-size prefixes such as ``"nz3"`` whose AEVB metrics and curves are taken
    from the existing results file of this scale (:func:`results.carry_over`, recorded in
    ``provenance.carried_over``) instead of being trained and evaluated again; those sizes stay
    in ``latents`` but are skipped by the training loop. Wake-sleep models are never carried: a
    size in both ``carry`` and ``wake_sleep_latents`` has its wake-sleep model trained. Neither
    field enters the checkpoint names, so the AEVB checkpoints of a run with them are those of
    the same run without them.
    """

    latents: tuple[int, ...] = PAPER_LATENTS
    headline_latent: int = 20
    hidden: int = 500
    likelihood: str = "bernoulli"
    batch_size: int = 100
    mc_samples: int = 1
    optimizer: str = "adagrad"
    lrs: tuple[float, ...] = PAPER_LRS
    lr_trial_steps: int = 500
    init_std: float | None = 0.01
    param_prior: bool = True
    epochs: int = 2000
    train_limit: int | None = None
    seed: int = 0
    elbo_samples: int = 10
    iw_samples: int = 5000
    iw_images: int | None = None
    iw_latents: tuple[int, ...] | None = None
    train_eval_images: int = 10_000
    curve_start: float = 1e5
    curve_per_decade: int = 4
    curve_images: int | None = None
    curve_samples: int = 1
    threads: int | None = None
    checkpoint: bool = True
    wake_sleep_latents: tuple[int, ...] = ()
    carry: tuple[str, ...] = ()

    def __post_init__(self):
        if not isinstance(self.latents, tuple) or not self.latents:
            raise ValueError(f"latents must be a non-empty tuple of latent sizes, got {self.latents!r}")
        for n in self.latents:
            _check_positive_int("each latent size in latents", n)
        if len(set(self.latents)) != len(self.latents):
            raise ValueError(f"latents must not repeat a size, got {self.latents}")
        if self.headline_latent not in self.latents:
            raise ValueError(f"headline_latent ({self.headline_latent}) must be one of latents {self.latents}")
        if self.iw_latents is not None:
            if not isinstance(self.iw_latents, tuple) or not set(self.iw_latents) <= set(self.latents):
                raise ValueError(f"iw_latents must be None (all latent sizes) or a tuple of sizes from latents "
                                 f"{self.latents}, got {self.iw_latents!r}")
        if (not isinstance(self.wake_sleep_latents, tuple) or not set(self.wake_sleep_latents) <= set(self.latents)
                or len(set(self.wake_sleep_latents)) != len(self.wake_sleep_latents)):
            raise ValueError(f"wake_sleep_latents must be a tuple of distinct sizes from latents {self.latents} "
                             f"(() for no wake-sleep model), got {self.wake_sleep_latents!r}")
        if not isinstance(self.carry, tuple) or len(set(self.carry)) != len(self.carry):
            raise ValueError(f"carry must be a tuple of distinct prefixes like 'nz20', got {self.carry!r}")
        for prefix in self.carry:
            m = re.fullmatch(r"nz([1-9][0-9]*)", prefix) if isinstance(prefix, str) else None
            if m is None or int(m.group(1)) not in self.latents:
                raise ValueError(f"each entry of carry must be 'nz<N>' with N one of latents {self.latents}, "
                                 f"got {prefix!r}")
        for name in ("hidden", "batch_size", "mc_samples", "lr_trial_steps", "epochs", "iw_samples",
                     "train_eval_images", "curve_per_decade", "curve_samples"):
            _check_positive_int(name, getattr(self, name))
        for name in ("train_limit", "iw_images", "curve_images", "threads"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name), " or None")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not isinstance(self.lrs, tuple) or not self.lrs or not all(
                isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0 for lr in self.lrs):
            raise ValueError(f"lrs must be a non-empty tuple of step sizes > 0, got {self.lrs!r}")
        if self.init_std is not None and not (isinstance(self.init_std, (int, float)) and self.init_std > 0):
            raise ValueError(f"init_std must be a number > 0 or None, got {self.init_std!r}")
        if self.elbo_samples < 10:
            raise ValueError(f"elbo_samples must be >= 10 (the protocol averages the test ELBO over at "
                             f"least 10 draws of z per image), got {self.elbo_samples}")
        if self.train_limit is not None and self.train_limit < self.batch_size:
            raise ValueError(f"train_limit ({self.train_limit}) must be at least batch_size ({self.batch_size})")
        if not (isinstance(self.curve_start, (int, float)) and self.curve_start >= 1):
            raise ValueError(f"curve_start must be a number of samples >= 1, got {self.curve_start!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")

    @classmethod
    def quick(cls) -> "Config":
        """CI scale, :math:`N_z = 20` only, one seed: 20,000 training images for 3 epochs (600
        steps) with Adam (lr 3e-3) from PyTorch's default initialisation (at 5 epochs, from the
        paper's N(0, 0.01) start, the test ELBO was -122.3 instead of -114.7 from the default
        one); IW with K = 100 on 1,000 test images."""
        return cls(latents=(20,), optimizer="adam", lrs=(3e-3,), init_std=None, epochs=3, train_limit=20_000,
                   iw_samples=100, iw_images=1_000, train_eval_images=2_000, curve_start=1e4,
                   curve_images=2_000, threads=1, checkpoint=False)

    @classmethod
    def cpu(cls) -> "Config":
        """Two CPU cores, Fig. 2's five latent sizes :math:`N_z \\in \\{3,5,10,20,200\\}`: all
        50,000 images for 100 epochs with Adam (lr 1e-3).

        Departure: Adam instead of the paper's Adagrad. Adagrad divides each step by the root of
        the sum of all past squared gradients, so its steps keep shrinking, and 100 epochs
        (5·10^6 samples) are a twentieth of ``paper()``'s 10^8. Measured over the first 10 epochs
        from the paper's N(0, 0.01) start: test ELBO -107.6 with Adam, -129.9 with Adagrad at
        lr 0.02, and Adagrad at lr 0.1 diverges. The IW estimate uses K = 5,000 on all 10,000
        test images, for :math:`N_z = 20` only (``iw_latents``: it costs 17 min per model). One
        thread: a second helps on an idle machine (quick run: 10 s instead of 14 s) but contends
        badly on a busy one (two quick runs at once: 58 s each with two threads, 16 s with
        one). Measured on two cores: 4.4 s per epoch for :math:`N_z = 20` (about 7.5 min of
        training per model); split the sizes over two processes with ``--latents`` and
        ``--no-write``, then run once more without them to gather (the checkpoints and the
        cached evaluations make that fast). A wake-sleep model for :math:`N_z = 20`
        (``wake_sleep_latents``), Fig. 2's comparison.
        """
        return cls(latents=PAPER_LATENTS, iw_latents=(20,), optimizer="adam", lrs=(1e-3,), epochs=100, threads=1,
                   wake_sleep_latents=(20,))

    @classmethod
    def paper(cls) -> "Config":
        """The paper's settings (Sec. 5): 500 hidden units, :math:`N_z \\in \\{3,5,10,20,200\\}`,
        M = 100, L = 1, Adagrad with the step size chosen from {0.01, 0.02, 0.1}, N(0, 0.01)
        initialisation, weight decay from p(θ) = N(0, I); 10^8 training samples (2,000 epochs, our
        assumption); IW with K = 5,000 on all 10,000 test images; a wake-sleep model beside every
        AEVB one (Fig. 2). For a GPU."""
        # Sec. 5, as checked in a transcription of the paper: "All parameters, both variational
        # and generative, were initialized by random sampling from N(0, 0.01), and were jointly
        # stochastically optimized using the MAP criterion. Stepsizes were adapted with Adagrad;
        # the Adagrad global stepsize parameters were chosen from {0.01, 0.02, 0.1} based on
        # performance on the training set in the first few iterations. Minibatches of size
        # M = 100 were used, with L = 1 samples per datapoint." and "500 hidden units in case of
        # MNIST". The field defaults are these settings.
        return cls(wake_sleep_latents=PAPER_LATENTS)


def load_data(train_limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_train, x_test)``: MNIST's training images (the first ``train_limit``, or all 50,000)
    and its 10,000 test images, float32 ``(n, 784)`` grey levels in [0, 1)."""
    from . import data

    splits = data.load_mnist()
    x_train, _ = splits["train"]
    x_test, _ = splits["test"]
    if train_limit is not None:
        x_train = x_train[:train_limit]
    return (torch.as_tensor(np.asarray(x_train, dtype=np.float32)),
            torch.as_tensor(np.asarray(x_test, dtype=np.float32)))


def curve_steps(config: Config, total_steps: int) -> list[int]:
    """The steps after which the test ELBO is recorded: ``curve_per_decade`` log-spaced points
    per decade of training samples from ``curve_start``, rounded to whole steps, and the last step."""
    points, i = set(), 0
    while True:
        samples = config.curve_start * 10 ** (i / config.curve_per_decade)
        step = int(round(samples / config.batch_size))
        if step >= total_steps:
            break
        points.add(max(step, 1))
        i += 1
    points.add(total_steps)
    return sorted(points)


#: The config fields that shape one model's training; the checkpoint name hashes them.
_RUN_FIELDS = ("hidden", "likelihood", "batch_size", "mc_samples", "optimizer", "lrs", "lr_trial_steps",
               "init_std", "param_prior", "epochs", "train_limit", "seed", "curve_start", "curve_per_decade",
               "curve_images", "curve_samples")


def checkpoint_path(config: Config, nz: int, method: str = "aevb"):
    """The checkpoint file of latent size ``nz`` trained by ``method``: a hash of
    :data:`_RUN_FIELDS` (and, for wake-sleep, of the method) in its name. AEVB's name is the one
    it had before wake-sleep existed, so its earlier checkpoints still resume."""
    method = _check_method(method)
    fields = {k: getattr(config, k) for k in _RUN_FIELDS}
    name = f"nz{nz}"
    if method != "aevb":
        fields["method"] = method
        name = f"nz{nz}-{method}"
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
    return runtime.checkpoints_dir() / SLUG / f"{name}-seed{config.seed}-{key}.pt"


def make_optimizer(config: Config, model: nn.Module, lr: float, n_train: int) -> torch.optim.Optimizer:
    r"""``config.optimizer`` over ``model``'s parameters with step size ``lr``.

    The paper's weight decay (``param_prior``) enters as ``weight_decay`` :math:`= 1/N`: both
    optimizers add ``weight_decay * θ`` to the gradient of the loss, which is exactly the
    gradient of :math:`-\frac1N\log p(\theta) = \frac1{2N}\lVert\theta\rVert^2`
    (:func:`parameter_log_prior`), without differentiating the sum of squares (4 of 12 ms a step, measured).
    The fused kernels are used where available (measured: Adam 12 → 7 ms per step on one core).
    """
    n_train = _check_positive_int("n_train", n_train, " (the number of training images)")
    weight_decay = 1.0 / n_train if config.param_prior else 0.0
    params = list(model.parameters())
    fused = params[0].device.type in ("cpu", "cuda")
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay, fused=fused)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


class _Trainer:
    """One model's training state: the data of the current epoch, the noise, the loss.

    ``method="wake_sleep"`` trains the same networks, from the same initial weights, by
    wake-sleep: each step's loss is ``wake + sleep`` (:func:`wake_sleep_losses`), whose gradient
    is the wake loss's for the decoder and the sleep loss's for the encoder (the two never mix).
    Adam and Adagrad act element by element, so one optimizer over both parameter sets takes
    exactly the steps of two separate ones (one for θ, one for φ) with the same settings. Both
    phases use the parameters from before the step."""

    def __init__(self, config: Config, nz: int, x_train: torch.Tensor, lr: float, device, method: str = "aevb"):
        self.method = _check_method(method)
        self.config, self.device, self.x_train = config, device, x_train
        with torch.random.fork_rng(devices=[]):  # the initial weights, leaving torch's global RNG as it was
            torch.manual_seed(_seed_from(config.seed, nz, 0))
            self.model = VAE(x_train.shape[1], nz, config.hidden, likelihood=config.likelihood,
                             init_std=config.init_std).to(device)
        self.optimizer = make_optimizer(config, self.model, lr, len(x_train))
        self.sampler = training.EpochSampler(len(x_train), config.batch_size, seed=config.seed, drop_last=True)
        self.noise = torch.Generator(device=device).manual_seed(_seed_from(config.seed, nz, 1))
        self._epoch, self._x_bin = -1, None
        self.batch_elbos: list[float] = []

    def data(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            self._x_bin = binarize(self.x_train, self.config.seed, epoch).to(self.device)
            self._epoch = epoch
        return self._x_bin

    def loss_at_step(self, step: int) -> torch.Tensor:
        r"""The negative minibatch ELBO :math:`-\frac1M\sum_i\tilde{\mathcal L}^B(x_i)` (the
        optimizer's weight decay adds the :math:`\frac1N\log p(\theta)` term's gradient)."""
        x = self.data(self.sampler.epoch(step))
        idx = torch.as_tensor(self.sampler.indices(step), device=self.device)
        if self.method == "wake_sleep":
            wake, sleep, elbo = _wake_sleep_terms(self.model, x[idx], samples=self.config.mc_samples,
                                                  generator=self.noise)
            self.batch_elbos.append(float(elbo.mean()))
            return wake + sleep
        elbo = self.model.elbo(x[idx], self.config.mc_samples, generator=self.noise).mean()
        self.batch_elbos.append(float(elbo.detach()))
        return -elbo

    def train(self, start: int, stop: int) -> None:
        training.fit(self.model, self.optimizer, lambda s: self.loss_at_step(start + s), stop - start,
                     log_every=max(1, stop - start), show_progress=False)


def select_learning_rate(config: Config, nz: int, x_train: torch.Tensor, device=None,
                         method: str = "aevb") -> tuple[float, dict]:
    """Sec. 5's choice of step size "based on performance on the training set in the first few
    iterations": each of ``config.lrs`` trains (by ``method``) from the same initial weights on
    the same batches for ``lr_trial_steps`` steps; the one with the highest mean minibatch ELBO
    over the second half of its trial wins. Returns ``(lr, {lr: score})``; with one candidate,
    no trial."""
    method = _check_method(method)
    if len(config.lrs) == 1:
        return float(config.lrs[0]), {}
    device = device or runtime.device()
    scores = {}
    for lr in config.lrs:
        trainer = _Trainer(config, nz, x_train, lr, device, method)
        try:
            trainer.train(0, config.lr_trial_steps)
            tail = trainer.batch_elbos[config.lr_trial_steps // 2:]
            scores[float(lr)] = float(np.mean(tail))
        except training.NonFiniteLossError:
            scores[float(lr)] = -math.inf
    best = max(scores, key=scores.get)
    if not math.isfinite(scores[best]):
        raise training.NonFiniteLossError(
            f"every step size in {config.lrs} diverged within {config.lr_trial_steps} steps")
    return best, scores


def train_one(config: Config, nz: int, x_train: torch.Tensor, x_test_bin: torch.Tensor, *, device=None,
              checkpoint: bool = False, progress=None, method: str = "aevb") -> dict:
    """Train the model of latent size ``nz`` by ``method`` (``"aevb"`` or ``"wake_sleep"``, see
    :class:`_Trainer`); return it with its curves.

    Returns ``{"model", "lr", "lr_scores", "test_curve", "train_curve", "seconds", "steps"}``.
    The test ELBO is recorded at :func:`curve_steps`; with ``checkpoint`` the state is saved
    there and at the end of every epoch (atomically; the noise generator's state included), and
    a killed run resumes where it stopped and ends with the same curves. ``seconds`` is this
    model's own compute time (learning-rate trials included), summed over resumes. Both methods
    record the same curves: the test ELBO with the encoder as :math:`q`, and the mean minibatch
    ELBO of the training batches.
    """
    method = _check_method(method)
    device = device or runtime.device()
    spe = training.EpochSampler(len(x_train), config.batch_size, seed=config.seed, drop_last=True).steps_per_epoch
    total = spe * config.epochs
    evals = curve_steps(config, total)
    stops = sorted(set(evals) | set(range(spe, total + 1, spe)))
    curve_x = x_test_bin[:config.curve_images] if config.curve_images else x_test_bin
    path = checkpoint_path(config, nz, method) if checkpoint else None
    t0 = time.perf_counter()
    if path is not None and path.exists():
        saved = training.load_checkpoint(path, map_location="cpu")
        lr, lr_scores = float(saved["lr"]), {float(k): float(v) for k, v in saved["lr_scores"].items()}
        trainer = _Trainer(config, nz, x_train, lr, device, method)
        trainer.model.load_state_dict(saved["model"])
        trainer.optimizer.load_state_dict(saved["optimizer"])
        trainer.noise.set_state(saved["noise"].cpu())
        step, seconds = int(saved["step"]), float(saved["seconds"])
        test_curve, train_curve = [list(p) for p in saved["test_curve"]], [list(p) for p in saved["train_curve"]]
        trainer.batch_elbos = list(saved["batch_elbos"])
    else:
        lr, lr_scores = select_learning_rate(config, nz, x_train, device, method)
        trainer = _Trainer(config, nz, x_train, lr, device, method)
        step, seconds, test_curve, train_curve = 0, 0.0, [], []
    seconds_before = seconds
    eval_gen = torch.Generator(device=device)
    if progress is not None:
        progress.update(step)
    for stop in stops:
        if stop <= step:
            continue
        trainer.train(step, stop)
        if progress is not None:
            progress.update(stop - step)
        step = stop
        if stop in evals:
            eval_gen.manual_seed(_seed_from(config.seed, nz, 2, stop))
            test = evaluate_elbo(trainer.model, curve_x, samples=config.curve_samples, generator=eval_gen)
            test_curve.append([stop * config.batch_size, float(test.mean())])
            recent = trainer.batch_elbos[-spe:]
            train_curve.append([stop * config.batch_size, float(np.mean(recent))])
            trainer.batch_elbos = []
        trainer.batch_elbos = trainer.batch_elbos[-spe:]
        if path is not None:
            training.save_checkpoint(path, {
                "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                "noise": trainer.noise.get_state(), "step": step, "lr": lr,
                "lr_scores": {str(k): v for k, v in lr_scores.items()},
                "seconds": seconds_before + time.perf_counter() - t0,
                "test_curve": test_curve, "train_curve": train_curve, "batch_elbos": trainer.batch_elbos,
                "total_steps": total})
    seconds = seconds_before + time.perf_counter() - t0
    trainer.model.eval()
    return {"model": trainer.model, "lr": lr, "lr_scores": lr_scores, "test_curve": test_curve,
            "train_curve": train_curve, "seconds": seconds, "steps": total}


def load_trained(config: Config, nz: int, device=None, method: str = "aevb") -> VAE:
    """The finished model of latent size ``nz`` trained by ``method``, from its checkpoint (after a
    run with ``checkpoint=True``), in eval mode; ``FileNotFoundError`` saying which run writes it."""
    path = checkpoint_path(config, nz, method)
    if not path.is_file():
        raise FileNotFoundError(f"no {method} checkpoint for N_z={nz} at {path}: run this config with "
                                f"checkpoint=True (e.g. `PAPERNOTES_SCALE=cpu python -m papernotes_core.vae`)")
    saved = training.load_checkpoint(path, map_location="cpu")
    if int(saved["step"]) < int(saved["total_steps"]):
        raise ValueError(f"the checkpoint {path} is at step {saved['step']} of {saved['total_steps']}: "
                         "the run has not finished; run it again to resume")
    model = VAE(784, nz, config.hidden, likelihood=config.likelihood, init_std=None)
    model.load_state_dict(saved["model"])
    return model.to(device or runtime.device()).eval()


#: The config fields that shape one model's evaluation (with the trained weights).
_EVAL_FIELDS = ("elbo_samples", "iw_samples", "iw_images", "train_eval_images", "seed")
#: The version of what :func:`_evaluate` measures: bumped when it measures more, so that an
#: older cached evaluation (without, e.g., the latent usage) is not reused.
_EVAL_VERSION = 2


def _latent_usage_results(model: VAE, x_test_bin: torch.Tensor) -> tuple[dict, dict]:
    """:func:`latent_usage` on the test images as metrics (``active_units``, ``latent_kl_total``)
    and curves (``latent_kl_per_dim``: ``[rank, kl]``, dimensions by decreasing KL, rank from 1;
    ``latent_activity_per_dim``: ``[rank, activity]`` of the same dimensions in the same order)."""
    usage = latent_usage(model, x_test_bin)
    order = torch.argsort(usage["kl"], descending=True, stable=True).tolist()
    kl, activity = usage["kl"].tolist(), usage["activity"].tolist()
    metrics = {"active_units": usage["active"], "latent_kl_total": float(sum(kl))}
    curves = {"latent_kl_per_dim": [[rank, kl[j]] for rank, j in enumerate(order, 1)],
              "latent_activity_per_dim": [[rank, activity[j]] for rank, j in enumerate(order, 1)]}
    return metrics, curves


def _evaluate(config: Config, nz: int, model: VAE, x_test_bin, x_train_eval, x_iw, device,
              method: str = "aevb") -> dict:
    """The protocol's metrics of one trained model: ``{"metrics": {...}, "curves": {...}, "seconds": s}``.

    Metrics: ``test_elbo``, ``test_elbo_se``, ``train_elbo``, the IW estimate (AEVB only, for
    ``iw_latents``), and the latent usage on the test images (:func:`_latent_usage_results`).
    With ``config.checkpoint`` the result is cached beside the checkpoint, keyed on
    :data:`_EVAL_FIELDS`, :data:`_EVAL_VERSION`, the method, the device and a hash of the
    checkpoint file, so gathering a study whose models were trained and evaluated in other
    processes does not evaluate them again.
    """
    method = _check_method(method)
    with_iw = method == "aevb" and (config.iw_latents is None or nz in config.iw_latents)
    cache, key = None, None
    if config.checkpoint:
        ckpt = checkpoint_path(config, nz, method)
        cache = ckpt.with_suffix(".eval.json")
        key = {**{k: getattr(config, k) for k in _EVAL_FIELDS}, "version": _EVAL_VERSION, "method": method,
               "iw": with_iw, "device": str(device), "weights": hashlib.sha256(ckpt.read_bytes()).hexdigest()}
        if cache.is_file():
            saved = json.loads(cache.read_text())
            if saved.get("key") == key:
                return {"metrics": saved["metrics"], "curves": saved["curves"], "seconds": saved["seconds"]}
    t0 = time.perf_counter()
    gen = torch.Generator(device=device)
    test = evaluate_elbo(model, x_test_bin, samples=config.elbo_samples,
                         generator=gen.manual_seed(_seed_from(config.seed, nz, 3)))
    train = evaluate_elbo(model, x_train_eval, samples=config.elbo_samples,
                          generator=gen.manual_seed(_seed_from(config.seed, nz, 4)))
    mean, se = evaluation.mean_and_standard_error(test)
    out = {"test_elbo": mean, "test_elbo_se": se, "train_elbo": float(train.mean())}
    if with_iw:
        iw = evaluate_log_likelihood_iw(model, x_iw, k=config.iw_samples, progress=config.iw_samples >= 1000,
                                        generator=gen.manual_seed(_seed_from(config.seed, nz, 5)))
        out["test_log_likelihood_iw"] = float(iw.mean())
    usage, curves = _latent_usage_results(model, x_test_bin)
    out.update(usage)
    result = {"metrics": out, "curves": curves, "seconds": time.perf_counter() - t0}
    if cache is not None:
        training.write_atomic(cache, lambda f: f.write(json.dumps({"key": key, **result}).encode()))
    return result


PAPER = {
    # Sec. 5 / Fig. 2 give MNIST results as curves only: there is no number to compare with.
    "test_elbo": {"value": None, "status": "V2",
                  "source": "Fig. 2 (curves only: average lower bound per datapoint against training "
                            "samples evaluated, N_z in {3, 5, 10, 20, 200}); no MNIST number is printed"},
}


def _carried(config: Config, scale: str, results_dir) -> tuple[dict, dict, dict | None]:
    """The AEVB metrics and curves of the sizes in ``config.carry`` from the existing results file
    (:func:`results.carry_over`), without any wake-sleep entry (those are trained afresh); the
    record lists what was taken. ``({}, {}, None)`` without ``carry``."""
    if not config.carry:
        return {}, {}, None
    metrics, curves, record = results.carry_over(SLUG, scale, config.carry, results_dir)
    metrics = {k: v for k, v in metrics.items() if "wake_sleep" not in k}
    curves = {k: v for k, v in curves.items() if "wake_sleep" not in k}
    for nz in (int(p[2:]) for p in config.carry):
        if f"test_elbo.nz{nz}" not in metrics:
            raise ValueError(f"carry: the {scale} results file has no AEVB test_elbo.nz{nz} to carry over")
    record = {**record, "metrics": sorted(metrics), "curves": sorted(curves)}
    return metrics, curves, record


def run(config: Config | None = None, *, scale: str | None = None, write: bool = True, results_dir=None,
        device=None, command: str | None = None, models: dict | None = None,
        wake_sleep_models: dict | None = None) -> dict:
    """Train one model per latent size of ``config``, evaluate them; write and return the results.

    ``metrics``: ``test_elbo``, ``test_elbo_se``, ``test_log_likelihood_iw``, ``train_elbo`` (of
    ``headline_latent``) and the same with ``.nz{N}`` for every latent size (the IW estimate only
    for ``iw_latents``), ``lr.nz{N}`` (the step size used), ``train_seconds.nz{N}`` (training
    time, learning-rate trials included, summed over resumes), ``seconds.nz{N}`` (training and
    evaluation), ``active_units.nz{N}`` and ``latent_kl_total.nz{N}`` (:func:`latent_usage` on
    the test images; the latter equals the mean KL term of ``test_elbo.nz{N}``). ``curves``:
    ``test_elbo_vs_samples.nz{N}``, ``train_elbo_vs_samples.nz{N}``, ``latent_kl_per_dim.nz{N}``
    (``[rank, kl]``, by decreasing KL) and ``latent_activity_per_dim.nz{N}`` (the same dimensions
    in the same order).

    For the sizes in ``wake_sleep_latents``, the wake-sleep model's ``test_elbo_wake_sleep``,
    ``test_elbo_wake_sleep_se``, ``train_elbo_wake_sleep``, ``lr_wake_sleep``,
    ``train_seconds_wake_sleep``, ``seconds_wake_sleep``, ``active_units_wake_sleep``,
    ``latent_kl_total_wake_sleep`` (each ``.nz{N}``; no IW estimate) and the curves
    ``test_elbo_vs_samples_wake_sleep.nz{N}``, ``train_elbo_vs_samples_wake_sleep.nz{N}``,
    ``latent_kl_per_dim_wake_sleep.nz{N}``, ``latent_activity_per_dim_wake_sleep.nz{N}``.

    The sizes in ``carry`` are not trained: their AEVB metrics and curves come from the existing
    results file of this scale (read from ``results_dir`` when given), recorded in
    ``provenance.carried_over``. ``train_s`` and ``compute_s`` sum ``train_seconds*`` and
    ``seconds*`` over every model in the results, carried ones included (``provenance.wall_s``
    is this run's). See the module docstring for the protocol. Pass dicts as ``models`` and
    ``wake_sleep_models`` to get the trained models back, keyed by latent size (the results
    mapping itself holds only numbers).
    """
    if wake_sleep_models is not None and not isinstance(wake_sleep_models, dict):
        raise TypeError(f"wake_sleep_models must be a dict to fill with the wake-sleep models, got "
                        f"{type(wake_sleep_models).__name__}")
    study = results.start_study(Config, config, scale, device, models)
    config, device = study.config, study.device
    metrics, curves, carried = _carried(config, study.scale, results_dir)
    carried_latents = {int(p[2:]) for p in config.carry}
    x_train, x_test = load_data(config.train_limit)
    check_unit_interval(x_train, "the training images")
    x_test_bin = binarize(x_test, TEST_BINARIZE_SEED).to(device)
    x_train_eval = binarize(x_train[:config.train_eval_images], TRAIN_EVAL_BINARIZE_SEED).to(device)
    x_iw = x_test_bin[:config.iw_images] if config.iw_images else x_test_bin
    x_train = x_train.to(device)
    spe = len(x_train) // config.batch_size
    jobs = [(nz, "aevb") for nz in config.latents if nz not in carried_latents]
    jobs += [(nz, "wake_sleep") for nz in config.latents if nz in config.wake_sleep_latents]
    bar = training.progress(total=spe * config.epochs * len(jobs), desc="VAE (all N_z)")
    for nz, method in sorted(jobs, key=lambda job: config.latents.index(job[0])):
        out = train_one(config, nz, x_train, x_test_bin, device=device, checkpoint=config.checkpoint, progress=bar,
                        method=method)
        model = out["model"]
        kept = models if method == "aevb" else wake_sleep_models
        if kept is not None:
            kept[nz] = model
        evaluated = _evaluate(config, nz, model, x_test_bin, x_train_eval, x_iw, device, method)
        tag = "" if method == "aevb" else "_wake_sleep"
        for name, value in evaluated["metrics"].items():
            name = "test_elbo_wake_sleep_se" if tag and name == "test_elbo_se" else name + tag
            metrics[f"{name}.nz{nz}"] = value
        metrics[f"lr{tag}.nz{nz}"] = out["lr"]
        metrics[f"train_seconds{tag}.nz{nz}"] = out["seconds"]
        metrics[f"seconds{tag}.nz{nz}"] = out["seconds"] + evaluated["seconds"]
        curves[f"test_elbo_vs_samples{tag}.nz{nz}"] = out["test_curve"]
        curves[f"train_elbo_vs_samples{tag}.nz{nz}"] = out["train_curve"]
        curves.update({f"{name}{tag}.nz{nz}": points for name, points in evaluated["curves"].items()})
    bar.close()
    h = config.headline_latent
    for name in ("test_elbo", "test_elbo_se", "test_log_likelihood_iw", "train_elbo"):
        if f"{name}.nz{h}" in metrics:
            metrics[name] = metrics[f"{name}.nz{h}"]
    metrics["compute_s"] = sum(v for k, v in metrics.items() if k.split(".")[0] in ("seconds", "seconds_wake_sleep"))
    metrics["train_s"] = sum(v for k, v in metrics.items()
                             if k.split(".")[0] in ("train_seconds", "train_seconds_wake_sleep"))
    return study.finish(SLUG, metrics, curves, PAPER, seeds=[config.seed], command=command, write=write,
                        results_dir=results_dir, carried=carried)


def main(argv: list[str] | None = None) -> int:
    """``python -m papernotes_core.vae [--latents 3 20 ...] [--no-write]`` at ``PAPERNOTES_SCALE``.

    ``--latents`` narrows the run to some latent sizes (e.g. to train them in several processes
    at once with checkpoints on; a final full run then only evaluates the finished models). Use
    ``--no-write`` for such partial runs so they don't overwrite the results file.
    """
    def only(config: Config, latents: list[int]) -> Config:
        headline = config.headline_latent if config.headline_latent in latents else latents[0]
        iw = None if config.iw_latents is None else tuple(n for n in config.iw_latents if n in latents)
        wake_sleep = tuple(n for n in config.wake_sleep_latents if n in latents)
        carry = tuple(p for p in config.carry if int(p[2:]) in latents)
        return dataclasses.replace(config, latents=tuple(latents), headline_latent=headline, iw_latents=iw,
                                   wake_sleep_latents=wake_sleep, carry=carry)

    return runtime.study_main(SLUG, Config, run, argv, narrow=("--latents", {"nargs": "+", "type": int}, only),
                              description=main.__doc__)


if __name__ == "__main__":  # pragma: no cover - the command line entry point
    sys.exit(main())
