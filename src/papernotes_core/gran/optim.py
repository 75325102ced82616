r"""The authors' Adam (``optimize_gan.py``, ``Optimize.ADAM``), which is not PyTorch's.

Their code (from a DRAW implementation) keeps the first moment with a coefficient that is
meant to decay slowly towards 1 but, with :math:`\lambda = 10^{-8}`, jumps there after one
step. In their notation (:math:`\beta_1 = 0.1`, :math:`\beta_2 = 0.001`, the weights of the
*new* gradient), at step :math:`t = 1, 2, \dots`:

.. math::

    b_t &= 1 - (1 - \beta_1)\,\lambda^{t-1}, \\
    m_t &= b_t\, g_t + (1 - b_t)\, m_{t-1}, \qquad
    v_t = \beta_2\, g_t^2 + (1 - \beta_2)\, v_{t-1}, \\
    \hat m_t &= m_t / (1 - (1 - \beta_1)^t), \qquad \hat v_t = v_t / (1 - (1 - \beta_2)^t), \\
    \theta_t &= \theta_{t-1} - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon).

So :math:`b_1 = 0.1` and :math:`b_t \approx 1` for :math:`t \ge 2`: there is no momentum
(:math:`m_t \approx g_t`), the second moment is PyTorch's with :math:`\beta_2 = 0.999`, and the
first moment's bias "correction" multiplies the early steps by :math:`1/(1 - 0.9^t)`: 5.3 at
step 2, 3.7 at step 3, below 1.01 after step 44. :class:`AuthorsAdam` does exactly this.
"""

from __future__ import annotations

import torch

__all__ = ["AuthorsAdam"]


class AuthorsAdam(torch.optim.Optimizer):
    """The update in the module docstring; ``beta1``, ``beta2`` are the authors' (weights of the
    new gradient), ``lam`` their :math:`\\lambda`."""

    def __init__(self, params, lr: float, beta1: float = 0.1, beta2: float = 0.001, eps: float = 1e-8,
                 lam: float = 1e-8):
        for name, v in (("lr", lr), ("eps", eps)):
            if not (isinstance(v, (int, float)) and v > 0):
                raise ValueError(f"{name} must be a number > 0, got {v!r}")
        for name, v in (("beta1", beta1), ("beta2", beta2), ("lam", lam)):
            if not (isinstance(v, (int, float)) and 0 < v <= 1):
                raise ValueError(f"{name} must be in (0, 1], got {v!r}")
        super().__init__(params, {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "lam": lam})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2, lam, lr, eps = group["beta1"], group["beta2"], group["lam"], group["lr"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["t"] = 0
                    st["m"] = torch.zeros_like(p)
                    st["v"] = torch.zeros_like(p)
                st["t"] += 1
                t = st["t"]
                g = p.grad
                b1_t = 1.0 - (1.0 - b1) * lam ** (t - 1)
                st["m"].mul_(1.0 - b1_t).add_(g, alpha=b1_t)
                st["v"].mul_(1.0 - b2).addcmul_(g, g, value=b2)
                m_hat = st["m"] / (1.0 - (1.0 - b1) ** t)
                v_hat = st["v"] / (1.0 - (1.0 - b2) ** t)
                p.sub_(lr * m_hat / (v_hat.sqrt() + eps))
        return loss
