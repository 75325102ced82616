r"""Neural Networks with Few Multiplications (Lin, Courbariaux, Memisevic & Bengio, 2015).

Most of the arithmetic of training a fully connected network is in two matrix products per
layer: the forward product :math:`z = W x` and the weight gradient :math:`\partial C/\partial W
= \delta\, x^\top`. The paper removes the multiplications from both.

* **Binary connect** (Sec. 3.1, after Courbariaux et al.): keep a real-valued weight
  :math:`W \in [-H, H]`, and in each forward pass use :math:`W_b = +H` with probability
  :math:`p = \operatorname{hard\_sigmoid}(W/H) = \operatorname{clip}((W/H + 1)/2, 0, 1)`, else
  :math:`-H`. Then :math:`\mathbb E[W_b] = H(2p - 1) = W`: the binary weights are an unbiased
  sample of the real ones, and :math:`W_b x` is :math:`H` times a sum of :math:`\pm x_i`: additions
  and subtractions, one multiplication by :math:`H` per output (:func:`binarize`).
* **Ternary connect** (Sec. 3.2): :math:`W_t = \operatorname{sign}(W)\,H` with probability
  :math:`|W|/H`, else 0; again :math:`\mathbb E[W_t] = W` (:func:`ternarize`).
* The gradient with respect to the sampled weights is applied to the real ones unchanged (a
  straight-through estimator, :func:`straight_through`), which are then clipped back to
  :math:`[-H, H]`.
* **Quantized back-propagation** (Sec. 4): in the backward pass each layer input :math:`x_i` is
  replaced by a stochastic power of two, :math:`\operatorname{sign}(x_i)\,2^{k}` with :math:`k =
  \lfloor \log_2 |x_i| \rfloor` or :math:`k + 1`, the upper one with probability
  :math:`|x_i|/2^k - 1`; again unbiased (:func:`quantize_pow2`). Each product
  :math:`\delta_j x_i` in the weight gradient then becomes a shift of :math:`\delta_j` by
  :math:`k` bits (:func:`shift_outer`).

As the authors' ``layer.py`` (hantek/BinaryConnect) does it: :math:`H` is half the Glorot
range of the layer, :math:`H = \tfrac12\sqrt{6/(n_\text{in} + n_\text{out})}`
(:func:`glorot_h`); deterministic binarisation is :math:`H \operatorname{sign}(W)` with
:math:`\operatorname{sign}(0) = +1`. :class:`AddShiftLinear` computes both products with
additions and shifts only and counts the multiplications that are left
(:func:`count_multiplications` gives the analytic count).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["AddShiftLinear", "FewMultLinear", "MODES", "SampledWeights", "binarize", "count_multiplications", "exponent_range", "glorot_h",
           "is_power_of_two", "quantize_pow2", "shift_outer", "straight_through", "ternarize"]

#: Weight modes: real-valued, binary connect, ternary connect.
MODES = ("full", "binary", "ternary")


def _check_h(H) -> float:
    if isinstance(H, torch.Tensor):
        H = float(H)
    if isinstance(H, bool) or not isinstance(H, (int, float)):
        raise TypeError(f"H must be a number, got {type(H).__name__}")
    if not (math.isfinite(H) and H > 0):
        raise ValueError(f"H must be a finite number > 0 (the weights' range is [-H, H]), got {H}")
    return float(H)


def glorot_h(fan_in: int, fan_out: int) -> float:
    r""":math:`H = \tfrac12\sqrt{6/(n_\text{in} + n_\text{out})}`: ``layer.py``'s ``W0 = high/2``,
    half the range of the Glorot-uniform initialisation :math:`U[-\text{high}, \text{high}]`."""
    for name, v in (("fan_in", fan_in), ("fan_out", fan_out)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    return 0.5 * math.sqrt(6.0 / (fan_in + fan_out))


def binarize(W: torch.Tensor, H: float, *, stochastic: bool = True,
             generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Binary connect: :math:`W_b \in \{-H, +H\}`.

    Stochastic: :math:`P(W_b = +H) = \operatorname{clip}((W/H + 1)/2, 0, 1)`, so
    :math:`\mathbb E[W_b] = W` for :math:`W \in [-H, H]`. Deterministic: :math:`H
    \operatorname{sign}(W)`, with :math:`W = 0 \mapsto +H` (``T.ge(W, 0)``)."""
    H = _check_h(H)
    if not stochastic:
        return torch.where(W >= 0, H, -H).to(W.dtype)
    p = ((W / H + 1) / 2).clamp(0, 1)
    u = torch.rand(W.shape, generator=generator, device=W.device, dtype=W.dtype)
    return torch.where(u < p, H, -H).to(W.dtype)


def ternarize(W: torch.Tensor, H: float, *, stochastic: bool = True,
              generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Ternary connect: :math:`W_t \in \{-H, 0, +H\}`.

    Stochastic: :math:`W_t = \operatorname{sign}(W)\,H` with probability
    :math:`\operatorname{clip}(|W|/H, 0, 1)`, else 0, so :math:`\mathbb E[W_t] = W`.
    Deterministic (ours): the nearest of :math:`\{-H, 0, H\}`, i.e. :math:`H
    \operatorname{sign}(W)` where :math:`|W| > H/2`, else 0. The authors' ternary branch
    thresholds at :math:`\pm 0.5` in absolute units instead, which weights clipped to
    :math:`[-H, H]` (:math:`H < 0.5`) never reach; their runs use the stochastic form."""
    H = _check_h(H)
    if not stochastic:
        return torch.where(W.abs() > H / 2, torch.sign(W) * H, torch.zeros_like(W))
    p = (W.abs() / H).clamp(0, 1)
    u = torch.rand(W.shape, generator=generator, device=W.device, dtype=W.dtype)
    return torch.where(u < p, torch.sign(W) * H, torch.zeros_like(W))


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, W, W_q):
        return W_q.clone()

    @staticmethod
    def backward(ctx, g):
        return g, None


def straight_through(W: torch.Tensor, W_q: torch.Tensor) -> torch.Tensor:
    r"""A tensor equal to ``W_q`` (exactly) whose gradient flows to ``W`` unchanged:
    :math:`\partial C/\partial W := \partial C/\partial W_q`, the rule binary connect trains
    by. (``W + (W_q - W).detach()`` would do the same up to rounding, which would leave the
    forward weights a few ulps away from :math:`\pm H`.)"""
    if W.shape != W_q.shape:
        raise ValueError(f"W and W_q must have the same shape, got {tuple(W.shape)} and {tuple(W_q.shape)}")
    return _StraightThrough.apply(W, W_q.detach())


def _check_exponents(min_exp, max_exp) -> tuple[int | None, int | None]:
    for name, v in (("min_exp", min_exp), ("max_exp", max_exp)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise TypeError(f"{name} must be an int or None, got {type(v).__name__}")
    if min_exp is not None and max_exp is not None and min_exp > max_exp:
        raise ValueError(f"the exponent range [{min_exp}, {max_exp}] is empty: min_exp must be <= max_exp")
    return min_exp, max_exp


def exponent_range(bits: int, top: int = 3) -> tuple[int, int]:
    r"""The exponents a ``bits``-bit exponent field can hold, ending at ``top``:
    :math:`[\text{top} - 2^{\text{bits}} + 1, \text{top}]`. The authors' convolutional layers
    clip the lower exponent to :math:`[-4, 3]`: ``exponent_range(3)``. Raises ``ValueError``
    for ``bits < 1`` (an empty range)."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"bits must be an int, got {type(bits).__name__}")
    if bits < 1:
        raise ValueError(f"bits must be >= 1: {bits} bits hold no exponent (an empty range)")
    if isinstance(top, bool) or not isinstance(top, int):
        raise TypeError(f"top must be an int, got {type(top).__name__}")
    return top - 2 ** bits + 1, top


def quantize_pow2(x: torch.Tensor, *, min_exp: int | None = None, max_exp: int | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Stochastic rounding of every entry to a signed power of two (quantized back-propagation).

    For :math:`x \ne 0` with :math:`k = \lfloor \log_2 |x| \rfloor`: :math:`\operatorname{sign}(x)
    2^{k+1}` with probability :math:`|x|/2^k - 1`, else :math:`\operatorname{sign}(x) 2^k`;
    :math:`\mathbb E = x`. :math:`x = 0` stays 0 (our rule: ``layer.py`` takes
    :math:`\log_2 0 = -\infty`; after a ReLU most inputs are 0, and 0 needs no shift).
    ``min_exp``/``max_exp`` bound the exponent: below :math:`2^{\text{min\_exp}}` the entry rounds
    stochastically to 0 or :math:`\pm 2^{\text{min\_exp}}` (still unbiased); above
    :math:`2^{\text{max\_exp}}` it is clipped to :math:`\pm 2^{\text{max\_exp}}` (biased, so
    choose ``max_exp`` above the largest input). ``None``: unbounded."""
    min_exp, max_exp = _check_exponents(min_exp, max_exp)
    a = x.abs()
    nz = a > 0
    safe = torch.where(nz, a, torch.ones_like(a))
    k = torch.floor(torch.log2(safe))
    low = torch.exp2(k)
    # log2 in floating point can be off by one ulp near powers of two: repair k so low <= a < 2 low
    k = torch.where(low > safe, k - 1, torch.where(2 * low <= safe, k + 1, k))
    low = torch.exp2(k)
    p_up = (safe / low - 1).clamp(0, 1)
    if min_exp is not None:
        small = safe < 2.0 ** min_exp
        k = torch.where(small, torch.full_like(k, min_exp - 1), k)  # so that "up" is 2**min_exp
        low = torch.where(small, torch.zeros_like(low), low)
        p_up = torch.where(small, safe / 2.0 ** min_exp, p_up)
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    up = u < p_up
    mag = torch.where(up, torch.exp2(k + 1), low)
    if max_exp is not None:
        mag = mag.clamp(max=2.0 ** max_exp)
    return torch.where(nz, torch.sign(x) * mag, torch.zeros_like(x))


def is_power_of_two(x: torch.Tensor) -> torch.Tensor:
    """Elementwise: ``x`` is 0 or :math:`\\pm 2^k` for an integer ``k`` (exactly, in its float type)."""
    mant, _ = torch.frexp(x)
    return (x == 0) | (mant.abs() == 0.5)


def shift_outer(delta: torch.Tensor, x_pow2: torch.Tensor) -> torch.Tensor:
    r"""The weight gradient :math:`\sum_n \delta_n x_n^\top` (shape ``(out, in)``) for
    power-of-two inputs, with shifts instead of multiplications: each :math:`\delta_{nj}
    \cdot (\pm 2^{k_{ni}})` is ``±ldexp(delta[n, j], k[n, i])``, an exponent add on a float
    (a bit shift on a fixed-point number). Exactly equal to ``delta.T @ x_pow2`` up to the order
    of the additions. Raises ``ValueError`` if an entry of ``x_pow2`` is not 0 or a signed power
    of two."""
    if delta.ndim != 2 or x_pow2.ndim != 2 or delta.shape[0] != x_pow2.shape[0]:
        raise ValueError(f"delta must be (n, out) and x_pow2 (n, in), got {tuple(delta.shape)} "
                         f"and {tuple(x_pow2.shape)}")
    ok = is_power_of_two(x_pow2)
    if not bool(ok.all()):
        bad = x_pow2[~ok][0].item()
        raise ValueError(f"shift_outer needs inputs that are 0 or ±2^k; found {bad!r}")
    mant, e = torch.frexp(x_pow2)          # x = mant * 2**e, mant = ±0.5  ->  x = ±2**(e - 1)
    n, n_out = delta.shape
    exps = (e - 1).unsqueeze(1).expand(n, n_out, x_pow2.shape[1])
    shifted = torch.ldexp(delta.unsqueeze(2).expand_as(exps), exps)          # (n, out, in)
    shifted = torch.where((mant < 0).unsqueeze(1), -shifted, shifted)       # the sign: flip a bit
    shifted = torch.where((x_pow2 == 0).unsqueeze(1), torch.zeros(()), shifted)
    return shifted.sum(0)                                                   # additions


class _QuantizedBackprop(torch.autograd.Function):
    """``F.linear(x, w, b)`` whose weight gradient uses power-of-two inputs."""

    @staticmethod
    def forward(ctx, x, w, b, min_exp, max_exp):
        ctx.save_for_backward(x, w)
        ctx.exps = (min_exp, max_exp)
        ctx.has_bias = b is not None
        return F.linear(x, w, b)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        xq = quantize_pow2(x, min_exp=ctx.exps[0], max_exp=ctx.exps[1])
        grad_x = g @ w if ctx.needs_input_grad[0] else None
        grad_w = g.t() @ xq if ctx.needs_input_grad[1] else None
        grad_b = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None


class SampledWeights(nn.Module):
    """What :class:`FewMultLinear` and the conv layer share: the real ``weight``, the weights a
    forward pass uses (:meth:`effective_weight`) and the clipping (:meth:`clip_`). Subclasses
    set ``H``, ``mode``, ``stochastic`` and ``weight``."""

    def effective_weight(self) -> torch.Tensor:
        """The weights this forward pass multiplies by (sampled in training mode), with the
        straight-through gradient to ``weight``."""
        if self.mode == "full" or (self.stochastic and not self.training):
            return self.weight
        fn = binarize if self.mode == "binary" else ternarize
        return straight_through(self.weight, fn(self.weight.detach(), self.H, stochastic=self.stochastic))

    @torch.no_grad()
    def clip_(self) -> None:
        """Clip the real weights to :math:`[-H, H]` (binary and ternary modes; ``layer.py``)."""
        if self.mode != "full":
            self.weight.clamp_(-self.H, self.H)


class FewMultLinear(SampledWeights):
    """A linear layer with binary connect, ternary connect or real weights (``mode``), and
    optionally quantized back-propagation (``quantized_backprop``).

    The real weight ``weight`` is initialised Glorot-uniform in :math:`[-2H, 2H]` (``layer.py``:
    ``uniform(-high, high)``, :math:`H = \\text{high}/2`) and, in the binary and ternary modes,
    clipped to :math:`[-H, H]` after every update (:meth:`clip_`). Training-mode forward passes
    sample the weights (``stochastic``) or round them; evaluation uses the real weights in the
    stochastic modes, as the authors' runs do (``binary_test = False``), and the rounded ones in
    the deterministic modes.
    """

    def __init__(self, in_features: int, out_features: int, *, mode: str = "binary", stochastic: bool = True,
                 quantized_backprop: bool = False, min_exp: int | None = None, max_exp: int | None = None,
                 bias: bool = True):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.H = glorot_h(in_features, out_features)
        self.mode, self.stochastic, self.quantized_backprop = mode, bool(stochastic), bool(quantized_backprop)
        self.min_exp, self.max_exp = _check_exponents(min_exp, max_exp)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-2 * self.H, 2 * self.H))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.effective_weight()
        if self.quantized_backprop and self.training and torch.is_grad_enabled():
            return _QuantizedBackprop.apply(x, w, self.bias, self.min_exp, self.max_exp)
        return F.linear(x, w, self.bias)


class AddShiftLinear:
    """The two products of a binary or ternary layer with additions, subtractions and shifts
    only, counting the multiplications left (for teaching; slow).

    ``W_q``: weights in :math:`\\{-H, 0, +H\\}` (shape ``(out, in)``). :meth:`forward` returns
    :math:`x W_q^\\top` as :math:`H \\cdot (\\sum_{i: +} x_i - \\sum_{i: -} x_i)` per output: one
    multiplication by :math:`H` per output and example. :meth:`weight_grad` returns
    :math:`\\delta^\\top x` for power-of-two ``x`` by :func:`shift_outer`: no multiplication.
    ``multiplications`` holds the running count."""

    def __init__(self, W_q: torch.Tensor, H: float):
        H = _check_h(H)
        if W_q.ndim != 2:
            raise ValueError(f"W_q must be a matrix (out, in), got shape {tuple(W_q.shape)}")
        levels = torch.unique(W_q)
        if not bool(torch.isin(levels, torch.tensor([-H, 0.0, H], dtype=W_q.dtype)).all()):
            raise ValueError(f"W_q must hold only -H, 0 and +H (H = {H}); found {levels.tolist()[:5]}")
        self.pos, self.neg, self.H = W_q > 0, W_q < 0, H
        self.multiplications = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.pos.shape[1]:
            raise ValueError(f"x must be (n, {self.pos.shape[1]}), got {tuple(x.shape)}")
        # masked sums: selecting entries and adding them (the mask is a 0/1 choice, not a product)
        plus = torch.where(self.pos.unsqueeze(0), x.unsqueeze(1), torch.zeros(())).sum(2)
        minus = torch.where(self.neg.unsqueeze(0), x.unsqueeze(1), torch.zeros(())).sum(2)
        self.multiplications += plus.numel()   # one multiplication by H per output and example
        return self.H * (plus - minus)

    def weight_grad(self, delta: torch.Tensor, x_pow2: torch.Tensor) -> torch.Tensor:
        return shift_outer(delta, x_pow2)     # shifts: no multiplication counted


def count_multiplications(sizes: tuple[int, ...] | list[int], batch: int, *, mode: str = "full",
                          quantized_backprop: bool = False) -> dict[str, int]:
    r"""Multiplications in the matrix products of one training step of a fully connected net
    with layer widths ``sizes`` (input first) on ``batch`` examples.

    For a layer :math:`n_\text{in} \to n_\text{out}`, per example: forward :math:`n_\text{in}
    n_\text{out}` (real weights) or :math:`n_\text{out}` (binary/ternary: one scaling by
    :math:`H` per output); the error to the layer below, :math:`W^\top \delta`, :math:`n_\text{in}
    n_\text{out}` (real) or :math:`n_\text{in}` (binary/ternary), not needed for the first layer;
    the weight gradient :math:`\delta x^\top`, :math:`n_\text{in} n_\text{out}`, or 0 with
    quantized back-propagation (shifts). Batch normalisation, the non-linearities and the update
    are not counted (the paper counts the products). Returns ``{"forward", "backward",
    "total"}``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    sizes = list(sizes)
    if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"sizes must be at least two layer widths (ints >= 1), got {sizes!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an int >= 1, got {batch!r}")
    fwd = bwd = 0
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        fwd += n_in * n_out if mode == "full" else n_out
        if l > 0:
            bwd += n_in * n_out if mode == "full" else n_in
        bwd += 0 if quantized_backprop else n_in * n_out
    return {"forward": fwd * batch, "backward": bwd * batch, "total": (fwd + bwd) * batch}
