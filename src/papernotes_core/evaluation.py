r"""Estimators used by more than one chapter, or independent of any model.

* :func:`log_mean_exp`: :math:`\log \frac1n \sum_i e^{x_i}` along one dimension, exact and
  stable (the largest term is factored out before anything is exponentiated).
* :func:`chunked_log_mean_exp`: the same over ``total`` terms produced ``chunk`` at a time by a
  function, combining a running log-sum-exp, so that estimators with thousands of samples per
  data point (an importance-weighted log-likelihood with :math:`K = 5000`) fit in memory.
* :func:`mean_and_standard_error`: a Monte Carlo mean and its standard error.
* :func:`parzen_log_likelihood`, :func:`parzen_sigma_search`: the Gaussian Parzen-window
  log-likelihood that the GAN paper (and its successors) report for sample-only models, and the
  choice of its width :math:`\sigma` on validation data.

Why the shift. With :math:`m = \max_i x_i`,

.. math::

    \log \frac1n \sum_{i=1}^n e^{x_i} = m + \log \frac1n \sum_{i=1}^n e^{x_i - m},

and every :math:`e^{x_i - m}` lies in :math:`(0, 1]` with at least one equal to 1, so the sum
neither overflows nor underflows to 0 however large or small the :math:`x_i` are (log-likelihood
terms of images are in the hundreds of nats, whose plain exponentials are 0 in float32).

Chunks combine exactly: if :math:`S_A = \log\sum_{i \in A} e^{x_i}` and likewise :math:`S_B`
for disjoint sets, then :math:`\log\sum_{i \in A \cup B} e^{x_i} = \operatorname{logaddexp}(S_A,
S_B) = M + \log(e^{S_A - M} + e^{S_B - M})` with :math:`M = \max(S_A, S_B)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["chunked_log_mean_exp", "log_mean_exp", "mean_and_standard_error", "parzen_log_likelihood",
           "parzen_sigma_search"]


def _check_tensor(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= 1, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value}")
    return value


def _log_sum_exp(x: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    r""":math:`m + \log\sum_i e^{x_i - m}` with :math:`m = \max_i x_i` (and :math:`m` replaced by
    0 where it is infinite, so that all :math:`-\infty` gives :math:`-\infty` and any
    :math:`+\infty` gives :math:`+\infty`, never ``nan``)."""
    m = torch.amax(x, dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    out = m + torch.log(torch.sum(torch.exp(x - m), dim=dim, keepdim=True))
    return out if keepdim else out.squeeze(dim)


def log_mean_exp(x: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    r""":math:`\log \frac1n \sum_{i=1}^n e^{x_i}` along ``dim`` (``n = x.shape[dim]``), stably.

    Computed as :math:`m + \log\sum_i e^{x_i - m} - \log n` with :math:`m = \max_i x_i`: exact
    up to rounding for any finite inputs, :math:`-\infty` where all inputs are :math:`-\infty`
    (weights of zero), :math:`+\infty` where any is :math:`+\infty`; ``nan`` only from a ``nan``
    input. The result has ``x``'s dtype.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``dim`` is out of range, or ``x`` has no element along it.
    """
    x = _check_tensor("x", x)
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension to average over, got a 0-d tensor")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim must be in [{-x.dim()}, {x.dim() - 1}] for a {x.dim()}-d tensor, got {dim}")
    n = x.shape[dim]
    if n == 0:
        raise ValueError(f"cannot average over an empty dimension: x has shape {tuple(x.shape)}, dim={dim}")
    return _log_sum_exp(x, dim, keepdim) - math.log(n)


def chunked_log_mean_exp(fn: Callable[[int, int], torch.Tensor], total: int, chunk: int) -> torch.Tensor:
    r""":math:`\log \frac1T \sum_{t=0}^{T-1} e^{x_t}` where the :math:`x_t` arrive ``chunk`` at a time.

    ``fn(start, size)`` returns the terms :math:`x_{start}, \dots, x_{start+size-1}` stacked
    along dimension 0: a tensor of shape ``(size, *rest)``, the same ``rest`` every call (e.g.
    ``(size, batch)``: ``size`` importance samples for each of ``batch`` data points). It is
    called for ``start = 0, chunk, 2 chunk, ...`` with ``size = min(chunk, total - start)``.
    The log-sum-exp of each chunk is folded into a running one,

    .. math:: S \leftarrow \operatorname{logaddexp}\Big(S,\ \log\sum_{t \in \text{chunk}} e^{x_t}\Big),

    so only one chunk is ever in memory, and the result, :math:`S - \log T` of shape ``rest``,
    equals :func:`log_mean_exp` of all terms at once up to rounding.

    Raises:
        TypeError / ValueError: ``total`` or ``chunk`` is not an int >= 1, ``fn`` is not
            callable, or ``fn`` returns something other than a floating-point tensor of
            ``size`` rows with the same trailing shape every time.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable as fn(start, size), got {type(fn).__name__}")
    total = _check_positive_int("total", total)
    chunk = _check_positive_int("chunk", chunk)
    running: torch.Tensor | None = None
    for start in range(0, total, chunk):
        size = min(chunk, total - start)
        values = _check_tensor(f"fn({start}, {size})", fn(start, size))
        if values.dim() == 0 or values.shape[0] != size:
            raise ValueError(
                f"fn({start}, {size}) must return a tensor with {size} rows along dimension 0, "
                f"got shape {tuple(values.shape)}"
            )
        part = _log_sum_exp(values, 0)
        if running is None:
            running = part
        elif part.shape != running.shape:
            raise ValueError(
                f"fn({start}, {size}) returned trailing shape {tuple(part.shape)}, but earlier "
                f"chunks had {tuple(running.shape)}"
            )
        else:
            running = _log_sum_exp(torch.stack([running, part.to(running.dtype)]), 0)
    assert running is not None  # total >= 1
    return running - math.log(total)


def mean_and_standard_error(values: torch.Tensor) -> tuple[float, float]:
    r"""The mean :math:`\bar v` of a 1-d tensor of i.i.d. estimates and its standard error
    :math:`s / \sqrt{n}` (:math:`s` the sample standard deviation; 0 for a single value).

    Raises:
        TypeError / ValueError: ``values`` is not a non-empty 1-d floating-point tensor.
    """
    values = _check_tensor("values", values)
    if values.dim() != 1 or values.numel() == 0:
        raise ValueError(f"values must be a non-empty 1-d tensor, got shape {tuple(values.shape)}")
    v = values.detach().double()
    n = v.numel()
    se = float(v.std(unbiased=True)) / math.sqrt(n) if n > 1 else 0.0
    return float(v.mean()), se


def _check_points(name: str, x, dim: int | None = None) -> torch.Tensor:
    x = _check_tensor(name, x)
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-d tensor (points, features), got shape {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has {x.shape[1]} features but the Parzen centres have {dim}: "
                         "the samples and the evaluated points must have the same dimension")
    return x


def _check_sigmas(sigmas) -> torch.Tensor:
    values = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)
    if values.numel() == 0 or not bool(torch.all(torch.isfinite(values) & (values > 0))):
        raise ValueError(f"sigma must be a finite number > 0 (each of them), got {sigmas!r}")
    return values


def _parzen_many(x: torch.Tensor, centres: torch.Tensor, sigmas: torch.Tensor, batch_size: int,
                 dtype: torch.dtype) -> torch.Tensor:
    """Parzen log-densities of every row of ``x`` for every width: shape ``(len(x), len(sigmas))``.
    The squared distances of one batch are computed once and shared by all widths."""
    device = centres.device
    c = centres.to(dtype)
    c_sq = (c * c).sum(1)
    n_c, d = c.shape
    sig = sigmas.to(device=device, dtype=dtype)
    log_norm = d * torch.log(sig * math.sqrt(2 * math.pi))            # (S,)
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size].to(device=device, dtype=dtype)
        # ||x - c||^2 = ||x||^2 + ||c||^2 - 2 x.c  (one matrix product; clamped at 0 against rounding)
        sq = ((xb * xb).sum(1, keepdim=True) + c_sq - 2.0 * (xb @ c.T)).clamp_min_(0.0)   # (B, N)
        cols = []
        for j in range(sig.numel()):
            cols.append(_log_sum_exp(sq * (-0.5 / sig[j] ** 2), dim=1) - math.log(n_c) - log_norm[j])
        out.append(torch.stack(cols, 1))
    return torch.cat(out)


def parzen_log_likelihood(x: torch.Tensor, centres: torch.Tensor, sigma: float, *, batch_size: int = 1000,
                          dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""The Gaussian Parzen-window log-density of each row of ``x`` (GAN paper, Sec. 5):

    .. math::

        \log \hat p(x) = \log \frac1N \sum_{j=1}^N \mathcal N(x;\ \mu_j,\ \sigma^2 I)
        = \log \frac1N \sum_{j=1}^N \exp\Big(-\frac{\lVert x - \mu_j \rVert^2}{2\sigma^2}\Big)
          - d \log\big(\sigma\sqrt{2\pi}\big),

    with the centres :math:`\mu_j` the model's ``N`` samples (rows of ``centres``) and :math:`d`
    the dimension. Computed ``batch_size`` rows of ``x`` at a time: the squared distances of a
    batch to all centres come from one matrix product, :math:`\lVert x\rVert^2 + \lVert\mu\rVert^2
    - 2 x\cdot\mu`, in ``dtype`` (float64 by default: the terms are hundreds of nats and their
    differences matter), and the sum is a log-sum-exp (:func:`log_mean_exp`). Memory: the
    centres plus one ``batch_size × N`` matrix. Runs on ``centres``' device. Returns float64.

    Raises:
        TypeError / ValueError: tensors not floating-point 2-d, a feature-count mismatch, a
            ``sigma`` that is not a finite number > 0, or ``batch_size`` < 1.
    """
    centres = _check_points("centres", centres)
    x = _check_points("x", x, centres.shape[1])
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
        raise TypeError(f"sigma must be a number > 0, got {type(sigma).__name__} {sigma!r}")
    sig = _check_sigmas(float(sigma))
    batch_size = _check_positive_int("batch_size", batch_size)
    return _parzen_many(x, centres, sig, batch_size, dtype)[:, 0].double()


def parzen_sigma_search(x_valid: torch.Tensor, centres: torch.Tensor, sigmas, *, batch_size: int = 1000,
                        dtype: torch.dtype = torch.float64) -> tuple[float, torch.Tensor]:
    r"""Choose the Parzen width by the mean log-density of validation points.

    Returns ``(best_sigma, mean_ll)``: ``mean_ll[i]`` is the mean of
    :func:`parzen_log_likelihood` over ``x_valid`` with width ``sigmas[i]``, and ``best_sigma``
    the width that maximises it. The GAN paper's protocol (its authors' ``parzen_ll.py``) searches
    ten widths spaced evenly in :math:`\log\sigma` over :math:`[0.1, 1]` with the first 1,000
    validation images. Each batch's distances are computed once for all widths.
    """
    centres = _check_points("centres", centres)
    x_valid = _check_points("x_valid", x_valid, centres.shape[1])
    sig = _check_sigmas(sigmas)
    batch_size = _check_positive_int("batch_size", batch_size)
    mean_ll = _parzen_many(x_valid, centres, sig, batch_size, dtype).double().mean(0).cpu()
    return float(sig[int(torch.argmax(mean_ll))]), mean_ll
