r"""DeepMind's RMSProp, the optimizer of the DQN papers.

The Nature paper (Extended Data Table 1) lists "RMSProp" with squared-gradient momentum 0.95
and "min squared gradient" 0.01. What those mean is in DeepMind's Lua code
(``NeuralQLearner.lua``, ``qLearnMinibatch``): the update is *centred* (it keeps a running mean of
the gradient as well as of its square) and the 0.01 is added *inside* the square root:

.. math::

    g &\leftarrow \alpha\, g + (1 - \alpha)\, \nabla \\
    s &\leftarrow \alpha\, s + (1 - \alpha)\, \nabla^2 \\
    \theta &\leftarrow \theta - \eta\, \frac{\nabla}{\sqrt{s - g^2 + \epsilon}}

with :math:`\alpha = 0.95`, :math:`\epsilon = 0.01`, :math:`\eta = 2.5\times10^{-4}` and g = s = 0
at the start. Since :math:`s - g^2 \ge 0` (a running variance), the denominator is at least
:math:`\sqrt{0.01} = 0.1`. ``torch.optim.RMSprop(alpha=0.95, eps=0.01)`` is a different
optimizer: uncentred (:math:`\sqrt{s}`) and with eps added *outside* the root
(:math:`\sqrt{s} + 0.01`), so its denominator can fall to 0.01 and its steps can be up to 10×
larger. :class:`CentredRMSprop` implements the formula above and nothing else (no momentum, no
weight decay: the Lua code runs with both at 0).
"""

from __future__ import annotations

import math

import torch

__all__ = ["CentredRMSprop"]


class CentredRMSprop(torch.optim.Optimizer):
    r"""DeepMind's centred RMSProp (see the module docstring for the formula).

    Args:
        params: the parameters (or parameter groups) to optimise.
        lr: the step size :math:`\eta` (> 0). The Nature paper's 2.5e-4 is the default.
        alpha: the decay of both running averages, in [0, 1). Default 0.95.
        eps: added to the running variance *inside* the square root (> 0). Default 0.01.

    Raises:
        ValueError: an argument is out of range (the message says which and what was expected).
    """

    def __init__(self, params, lr: float = 2.5e-4, alpha: float = 0.95, eps: float = 0.01) -> None:
        for name, value in (("lr", lr), ("alpha", alpha), ("eps", eps)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must lie in [0, 1), got {alpha}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0 (it keeps the denominator at least sqrt(eps)), got {eps}")
        super().__init__(params, dict(lr=float(lr), alpha=float(alpha), eps=float(eps)))

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss, if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            params, grads, g_avg, s_avg = [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("CentredRMSprop does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                params.append(p)
                grads.append(p.grad)
                g_avg.append(state["grad_avg"])
                s_avg.append(state["square_avg"])
            if not params:
                continue
            # The formula, for all parameters of the group at once (torch's multi-tensor kernels):
            # g <- a g + (1 - a) d;  s <- a s + (1 - a) d^2;  p <- p - lr d / sqrt(s - g^2 + eps).
            torch._foreach_mul_(g_avg, alpha)
            torch._foreach_add_(g_avg, grads, alpha=1.0 - alpha)
            torch._foreach_mul_(s_avg, alpha)
            torch._foreach_addcmul_(s_avg, grads, grads, value=1.0 - alpha)
            denom = torch._foreach_addcmul(s_avg, g_avg, g_avg, value=-1.0)
            torch._foreach_add_(denom, eps)
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(params, grads, denom, value=-lr)
        return loss
