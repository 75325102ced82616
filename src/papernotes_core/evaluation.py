r"""Estimators used by more than one chapter, or independent of any model.

* :func:`log_mean_exp`: :math:`\log \frac1n \sum_i e^{x_i}` along one dimension, exact and
  stable (the largest term is factored out before anything is exponentiated).
* :func:`chunked_log_mean_exp`: the same over ``total`` terms produced ``chunk`` at a time by a
  function, combining a running log-sum-exp, so that estimators with thousands of samples per
  data point (an importance-weighted log-likelihood with :math:`K = 5000`) fit in memory.
* :func:`mean_and_standard_error`: a Monte Carlo mean and its standard error.

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

__all__ = ["chunked_log_mean_exp", "log_mean_exp", "mean_and_standard_error"]


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
