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
* :func:`welch_t_test`, :func:`welch_t_test_from_summary`: Welch's two-sample t-test (unequal
  variances) with its two-sided p-value, for comparing two training set-ups over a few seeds,
  from the per-seed values or from each arm's mean, standard deviation and count (what the
  results files store).
* :func:`gam_battle`, :func:`gam_ratios`, :func:`gam_decide`, :func:`discriminator_errors`:
  the generative adversarial metric of Im et al. (2016), where two GANs judge each other's
  samples with their discriminators.

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

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping

import torch

__all__ = ["GAMResult", "GAM_CONVENTIONS", "WelchResult", "discriminator_errors", "gam_battle", "gam_decide",
           "gam_ratios", "chunked_log_mean_exp", "log_mean_exp", "mean_and_standard_error",
           "parzen_log_likelihood", "parzen_sigma_search", "welch_t_test", "welch_t_test_from_summary"]


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


# --- Welch's t-test ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class WelchResult:
    r"""The outcome of Welch's two-sample t-test of arm ``a`` against arm ``b``.

    ``diff``: :math:`\bar a - \bar b`; ``se``: its standard error
    :math:`\sqrt{s_a^2/n_a + s_b^2/n_b}`; ``t = diff / se``; ``df``: the Welch–Satterthwaite
    degrees of freedom (not an integer in general); ``p``: the two-sided p-value
    :math:`P(|T_{df}| \ge |t|)` under Student's t with ``df`` degrees of freedom.
    """

    diff: float
    se: float
    t: float
    df: float
    p: float


def _check_real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 2 (a sample size), got {type(value).__name__} {value!r}")
    if value < 2:
        raise ValueError(f"{name} must be an int >= 2: a standard deviation needs at least 2 values, got {value}")
    return int(value)


def _regularized_incomplete_beta(a: float, b: float, x: float, y: float | None = None) -> float:
    r""":math:`I_x(a, b) = B(x; a, b) / B(a, b)` for :math:`a, b > 0`, :math:`0 \le x \le 1`.

    ``y`` is :math:`1 - x`, passed separately when the caller knows it more accurately than
    ``1 - x`` (e.g. :math:`t^2/(\nu + t^2)` for a large :math:`\nu`). The continued fraction
    (Numerical Recipes' ``betacf``, evaluated by the modified Lentz method) converges fast for
    :math:`x < (a + 1)/(a + b + 2)`; above that we use the symmetry
    :math:`I_x(a, b) = 1 - I_{1-x}(b, a)`. The prefactor
    :math:`x^a (1-x)^b / B(a, b)` is computed in logs (:func:`math.lgamma`).
    """
    if y is None:
        y = 1.0 - x
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = (a * math.log(x) + b * math.log(y)
                 + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, y) / b


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function, by the modified Lentz method."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    max_iter = 10_000 + int(10 * math.sqrt(max(a, b)))  # needs O(sqrt(max(a, b))) terms
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),                # even step
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):      # odd step
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            delta = d * c
            h *= delta
        if abs(delta - 1.0) < eps:
            return h
    raise RuntimeError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def _student_t_two_sided_p(t: float, df: float) -> float:
    r""":math:`P(|T| \ge |t|)` for Student's t with ``df`` > 0 degrees of freedom (any real ``df``):
    :math:`I_{\nu/(\nu + t^2)}(\nu/2, 1/2)`."""
    if not df > 0:
        raise ValueError(f"df must be > 0, got {df}")
    if math.isinf(t):
        return 0.0
    t2 = t * t
    return min(1.0, _regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2)))


def welch_t_test_from_summary(mean_a, sd_a, n_a, mean_b, sd_b, n_b) -> WelchResult:
    r"""Welch's t-test from each arm's mean, sample standard deviation (ddof = 1) and size.

    With :math:`v_a = s_a^2 / n_a` and :math:`v_b = s_b^2 / n_b`:
    ``diff`` :math:`= \bar a - \bar b`, ``se`` :math:`= \sqrt{v_a + v_b}`, ``t = diff / se``,
    ``df`` :math:`= (v_a + v_b)^2 / \big(v_a^2/(n_a - 1) + v_b^2/(n_b - 1)\big)`
    (Welch–Satterthwaite), and ``p`` the two-sided p-value of Student's t with that (non-integer)
    ``df``, through the regularized incomplete beta function. No equal-variance assumption.

    With three seeds per arm ``df`` is at most 4, so a difference of two standard errors gives
    :math:`p \approx 0.12`–:math:`0.18`, not 0.05: a few seeds rarely settle a comparison.

    Raises:
        TypeError: a mean or sd that is not a real number, a size that is not an int.
        ValueError: a non-finite mean or sd, a negative sd, a size below 2, or both sds 0
            (the t statistic is then undefined).
    """
    mean_a, mean_b = _check_real("mean_a", mean_a), _check_real("mean_b", mean_b)
    sd_a, sd_b = _check_real("sd_a", sd_a), _check_real("sd_b", sd_b)
    for name, sd in (("sd_a", sd_a), ("sd_b", sd_b)):
        if sd < 0:
            raise ValueError(f"{name} must be a standard deviation >= 0, got {sd}")
    n_a, n_b = _check_count("n_a", n_a), _check_count("n_b", n_b)
    va, vb = sd_a * sd_a / n_a, sd_b * sd_b / n_b
    if va + vb == 0.0:
        raise ValueError("both samples have zero spread (sd_a = sd_b = 0): the t statistic is undefined")
    diff = mean_a - mean_b
    se = math.sqrt(va + vb)
    t = diff / se
    df = (va + vb) ** 2 / (va * va / (n_a - 1) + vb * vb / (n_b - 1))
    return WelchResult(diff=diff, se=se, t=t, df=df, p=_student_t_two_sided_p(t, df))


def _sample(name: str, values) -> list[float]:
    """The values of one arm as Python floats: a 1-d floating-point tensor or a sequence of reals."""
    if isinstance(values, torch.Tensor):
        if values.dim() != 1 or not values.is_floating_point():
            raise TypeError(f"{name} must be a 1-d floating-point tensor or a sequence of real numbers, "
                            f"got a {values.dim()}-d tensor of dtype {values.dtype}")
        out = [float(v) for v in values.detach().double().cpu().tolist()]
    else:
        if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__iter__"):
            raise TypeError(f"{name} must be a sequence of real numbers or a 1-d tensor, got {type(values).__name__}")
        out = [_check_real(f"{name}[{i}]", v) for i, v in enumerate(values)]
    if len(out) < 2:
        raise ValueError(f"{name} must have at least 2 values (a standard deviation needs 2), got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must contain only finite values")
    return out


def welch_t_test(a, b) -> WelchResult:
    r"""Welch's t-test of two independent samples (e.g. a metric over seeds for two activations).

    ``a`` and ``b``: sequences of real numbers or 1-d floating-point tensors, at least 2 values
    each. Computes each arm's mean and sample standard deviation (ddof = 1) and calls
    :func:`welch_t_test_from_summary`; ``diff`` is ``mean(a) - mean(b)``, so swapping the arms
    flips the signs of ``diff`` and ``t`` and leaves ``df`` and ``p`` unchanged.

    Raises:
        TypeError: an argument that is not a sequence of reals or a 1-d floating-point tensor.
        ValueError: fewer than 2 values, a non-finite value, or no spread in either sample.
    """
    summary = []
    for name, values in (("a", a), ("b", b)):
        xs = _sample(name, values)
        n = len(xs)
        mean = math.fsum(xs) / n
        sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
        summary += [mean, sd, n]
    return welch_t_test_from_summary(*summary)


# --- The generative adversarial metric (GAM) ----------------------------------------------------

GAM_CONVENTIONS = ("paper", "battle_py")


@dataclasses.dataclass(frozen=True)
class GAMResult:
    r"""One battle of two GANs :math:`M_1 = (G_1, D_1)` and :math:`M_2 = (G_2, D_2)`
    (Im et al., 2016, Sec. 4; :func:`gam_battle`).

    ``counts``: the errors each discriminator makes, ``d1_test`` / ``d2_test`` on the ``n_test``
    test images (calling a real image fake) and ``d1_on_g2`` / ``d2_on_g1`` on the
    ``n_samples`` samples of the *other* generator (calling a sample real). ``r_test`` and
    ``r_sample``: the ratios under ``convention``; ``r_test_ci`` and ``r_sample_ci``: bootstrap
    percentile intervals at ``level``; ``test_ok``: whether ``r_test_ci`` contains 1 (the
    paper's :math:`r_{test} \approx 1`); ``winner``: ``"M1"``, ``"M2"``, ``"tie"`` or, by the
    paper's rule when ``test_ok`` is false, ``"void"``.
    """

    r_test: float
    r_sample: float
    r_test_ci: tuple[float, float]
    r_sample_ci: tuple[float, float]
    test_ok: bool
    winner: str
    convention: str
    counts: dict
    n_test: int
    n_samples: int
    level: float


def discriminator_errors(discriminator: Callable, x: torch.Tensor, *, real: bool,
                         batch_size: int = 1000) -> torch.Tensor:
    r"""Which of the images ``x`` the discriminator gets wrong, as a bool tensor ``(n,)``.

    ``discriminator`` maps a batch to logits :math:`a` with :math:`D = \sigma(a)` (a
    ``torch.nn.Module`` is put in eval mode for the call and restored). It calls an image real
    when :math:`D(x) > \tfrac12` (:math:`a > 0`), so the error on real images (``real=True``) is
    :math:`a \le 0` and on samples (``real=False``) :math:`a > 0`.
    """
    _check_tensor("x", x)
    _check_positive_int("batch_size", batch_size)
    if not isinstance(real, bool):
        raise TypeError(f"real must be a bool (True: x are data, False: x are samples), got {real!r}")
    if len(x) == 0:
        raise ValueError("x must hold at least one image, got 0")
    module = discriminator if isinstance(discriminator, torch.nn.Module) else None
    was = module.training if module is not None else None
    if module is not None:
        module.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                logits = discriminator(x[start:start + batch_size])
                if not isinstance(logits, torch.Tensor) or logits.shape != (len(x[start:start + batch_size]),):
                    raise ValueError("the discriminator must return one logit per image, shape (batch,), got "
                                     f"{getattr(logits, 'shape', type(logits).__name__)}")
                out.append((logits <= 0) if real else (logits > 0))
    finally:
        if module is not None:
            module.train(was)
    return torch.cat(out).cpu()


def _gam_rate(errors: torch.Tensor, convention: str) -> torch.Tensor:
    """Error rates (paper) or accuracies (battle.py) along the last dimension, with the zero rule:
    a count of 0 is taken as 1/2 (see :func:`gam_ratios`)."""
    n = errors.shape[-1]
    k = errors.sum(-1).double()
    if convention == "battle_py":
        k = n - k
    return torch.where(k == 0, torch.full_like(k, 0.5), k) / n


def gam_ratios(d1_test, d2_test, d1_on_g2, d2_on_g1, convention: str = "paper") -> tuple[float, float]:
    r"""The GAM's two ratios from per-example error indicators (bool tensors).

    ``convention="paper"`` (eq. 10–11 of the paper):

    .. math::

        r_{test} = \frac{\epsilon(D_1; x_{test})}{\epsilon(D_2; x_{test})}, \qquad
        r_{sample} = \frac{\epsilon(D_1; G_2(z))}{\epsilon(D_2; G_1(z))},

    with :math:`\epsilon` the classification error rate. ``"battle_py"``: the authors'
    ``battle.py`` divides *accuracies* :math:`1 - \epsilon` instead, in the same order.

    The zero rule: a count of 0 (no errors, or with ``battle_py`` no correct answers) enters
    the ratio as 1/2, i.e. :math:`\epsilon = 1/(2n)`. Then no ratio is 0/0 or infinite, two
    perfect discriminators tie at exactly 1, and one perfect against one with :math:`k` errors
    gives :math:`1/(2k)`, the most extreme ratio the sample can support.
    """
    if convention not in GAM_CONVENTIONS:
        raise ValueError(f"convention must be one of {GAM_CONVENTIONS}, got {convention!r}")
    t = [_check_errors(n, e) for n, e in (("d1_test", d1_test), ("d2_test", d2_test),
                                           ("d1_on_g2", d1_on_g2), ("d2_on_g1", d2_on_g1))]
    if t[0].shape != t[1].shape:
        raise ValueError(f"d1_test and d2_test must judge the same test images, got {tuple(t[0].shape)} "
                         f"and {tuple(t[1].shape)}")
    r_test = float(_gam_rate(t[0], convention) / _gam_rate(t[1], convention))
    r_sample = float(_gam_rate(t[2], convention) / _gam_rate(t[3], convention))
    return r_test, r_sample


def _check_errors(name: str, e) -> torch.Tensor:
    if not isinstance(e, torch.Tensor) or e.dtype != torch.bool or e.dim() != 1:
        raise TypeError(f"{name} must be a 1-d bool tensor of per-example errors, got "
                        f"{type(e).__name__}{'' if not isinstance(e, torch.Tensor) else f' {e.dtype} {tuple(e.shape)}'}")
    if len(e) == 0:
        raise ValueError(f"{name} must hold at least one example, got 0")
    return e


def gam_decide(r_test_ci: tuple[float, float], r_sample: float, convention: str = "paper") -> tuple[bool, str]:
    r"""The winner of a battle: ``(test_ok, winner)``.

    ``"paper"``: the test ratio must be about 1 (its interval contains 1), else the battle is
    ``"void"`` (one discriminator is simply better at recognising data, which would bias the
    sample ratio); then :math:`M_1` wins when :math:`r_{sample} < 1` (:math:`D_1` is fooled less by
    :math:`G_2` than :math:`D_2` by :math:`G_1`), :math:`M_2` when :math:`r_{sample} > 1`.
    ``"battle_py"``: the sample ratio alone, and since it divides accuracies, :math:`M_1` wins when it
    is *above* 1.
    """
    if convention not in GAM_CONVENTIONS:
        raise ValueError(f"convention must be one of {GAM_CONVENTIONS}, got {convention!r}")
    test_ok = bool(r_test_ci[0] <= 1.0 <= r_test_ci[1])
    if r_sample == 1.0:
        return test_ok, "tie"
    m1 = r_sample < 1.0 if convention == "paper" else r_sample > 1.0
    if convention == "paper" and not test_ok:
        return test_ok, "void"
    return test_ok, "M1" if m1 else "M2"


def gam_battle(d1: Callable, d2: Callable, samples_g1: torch.Tensor, samples_g2: torch.Tensor,
               x_test: torch.Tensor, *, convention: str = "paper", n_boot: int = 1000, level: float = 0.95,
               seed: int = 0, batch_size: int = 1000) -> GAMResult:
    r"""Battle :math:`M_1 = (G_1, D_1)` against :math:`M_2 = (G_2, D_2)` by the generative
    adversarial metric (Im et al., 2016, Sec. 4).

    Each discriminator judges the test images and the *other* model's samples
    (:func:`discriminator_errors`); :func:`gam_ratios` forms :math:`r_{test}` and
    :math:`r_{sample}`; the intervals are percentile bootstraps with ``n_boot`` replicates, the
    test images resampled once per replicate for both discriminators (a paired bootstrap), each
    sample set resampled on its own; :func:`gam_decide` names the winner.

    Raises ``ValueError`` when the two sample sets, or the samples and the test images, differ in
    image shape (the two discriminators must judge the same kind of image), or ``convention``
    is unknown.
    """
    if convention not in GAM_CONVENTIONS:
        raise ValueError(f"convention must be one of {GAM_CONVENTIONS}, got {convention!r}")
    for name, x in (("samples_g1", samples_g1), ("samples_g2", samples_g2), ("x_test", x_test)):
        _check_tensor(name, x)
    if samples_g1.shape[1:] != samples_g2.shape[1:] or samples_g1.shape[1:] != x_test.shape[1:]:
        raise ValueError("the two sides of a battle must judge images of one size: samples_g1 "
                         f"{tuple(samples_g1.shape[1:])}, samples_g2 {tuple(samples_g2.shape[1:])}, x_test "
                         f"{tuple(x_test.shape[1:])}")
    if len(samples_g1) != len(samples_g2):
        raise ValueError(f"the two generators must give as many samples each, got {len(samples_g1)} and "
                         f"{len(samples_g2)}")
    _check_positive_int("n_boot", n_boot)
    if not (isinstance(level, float) and 0 < level < 1):
        raise ValueError(f"level must be a float in (0, 1), got {level!r}")
    e = {"d1_test": discriminator_errors(d1, x_test, real=True, batch_size=batch_size),
         "d2_test": discriminator_errors(d2, x_test, real=True, batch_size=batch_size),
         "d1_on_g2": discriminator_errors(d1, samples_g2, real=False, batch_size=batch_size),
         "d2_on_g1": discriminator_errors(d2, samples_g1, real=False, batch_size=batch_size)}
    r_test, r_sample = gam_ratios(e["d1_test"], e["d2_test"], e["d1_on_g2"], e["d2_on_g1"], convention)
    gen = torch.Generator().manual_seed(seed)
    n_t, n_s = len(x_test), len(samples_g1)
    it = torch.randint(n_t, (n_boot, n_t), generator=gen)
    i1 = torch.randint(n_s, (n_boot, n_s), generator=gen)
    i2 = torch.randint(n_s, (n_boot, n_s), generator=gen)
    bt = _gam_rate(e["d1_test"][it], convention) / _gam_rate(e["d2_test"][it], convention)
    bs = _gam_rate(e["d1_on_g2"][i2], convention) / _gam_rate(e["d2_on_g1"][i1], convention)
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    ci_t = tuple(float(v) for v in torch.quantile(bt, q))
    ci_s = tuple(float(v) for v in torch.quantile(bs, q))
    test_ok, winner = gam_decide(ci_t, r_sample, convention)
    return GAMResult(r_test, r_sample, ci_t, ci_s, test_ok, winner, convention,
                     {k: int(v.sum()) for k, v in e.items()}, n_t, n_s, level)
