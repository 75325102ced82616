r"""The unitary recurrent cell of Arjovsky, Shah & Bengio (2016), "Unitary Evolution Recurrent
Neural Networks" (arXiv:1511.06464).

The recurrent matrix is a product of cheap unitary factors (paper, Sec. 4, "Architecture"):

.. math::

    W = D_3\, R_2\, \mathcal F^{-1} D_2\, \Pi\, R_1\, \mathcal F\, D_1,

* :math:`D_j = \operatorname{diag}(e^{i\theta_j})`, :math:`\theta_j \in \mathbb R^N`: diagonal
  phase matrices (:math:`N` real parameters each);
* :math:`R_j = I - 2\,\frac{v_j v_j^*}{\lVert v_j\rVert^2}`, :math:`v_j \in \mathbb C^N`:
  complex Householder reflections (:math:`2N` real parameters each);
* :math:`\mathcal F` the unitary discrete Fourier transform,
  :math:`\mathcal F_{jk} = e^{-2\pi i jk/N}/\sqrt N`, and :math:`\mathcal F^{-1} = \mathcal F^*`
  (``torch.fft.fft`` / ``ifft`` with ``norm="ortho"``);
* :math:`\Pi` a fixed random permutation, :math:`(\Pi h)_i = h_{\pi(i)}`.

Every factor is unitary, so :math:`W` is, for any parameter values: :math:`\lVert W h\rVert =
\lVert h\rVert`, and the gradient through :math:`T` linear recurrent steps neither explodes nor
vanishes. Applying :math:`W` to a vector costs :math:`O(N \log N)` (two FFTs, the rest
elementwise or inner products) and stores :math:`7N` real parameters (:math:`3N` phases,
:math:`2 \times 2N` reflection entries), against :math:`O(N^2)` time and :math:`N^2` real
degrees of freedom for a general unitary :math:`N \times N` matrix.

The nonlinearity is modReLU (Sec. 4.1), which acts on the modulus and keeps the phase:

.. math:: \sigma_{\text{modReLU}}(z) = \operatorname{ReLU}(|z| + b)\,\frac{z}{|z|}, \qquad b \in \mathbb R,

and the network (Sec. 4, Eqs. for :math:`h_t` and :math:`o_t`) is

.. math::

    h_t = \sigma_{\text{modReLU}}(W h_{t-1} + V x_t), \qquad
    o_t = U \begin{pmatrix} \operatorname{Re} h_t \\ \operatorname{Im} h_t \end{pmatrix} + b_o,

with a complex input matrix :math:`V \in \mathbb C^{N \times n_{in}}` and a real output matrix
:math:`U \in \mathbb R^{n_{out} \times 2N}`.

Conventions of this module
--------------------------

* **Rows.** A batch of hidden states is a complex tensor of shape ``(batch, N)`` (any leading
  dimensions, in fact), one state per row. :func:`unitary_apply` transforms every row as a
  column vector, :math:`h \mapsto W h`; for the batch matrix :math:`H` that is
  :math:`H \mapsto (W H^\top)^\top = H W^\top` (a plain transpose, not the conjugate one).
* **Reflection vectors** are real tensors of shape ``(2, N)``: row 0 the real parts, row 1 the
  imaginary parts (a complex tensor of shape ``(N,)`` is accepted too). A zero vector would make
  :math:`R` undefined; :math:`\lVert v\rVert^2` is clamped below by the dtype's smallest normal
  number, which turns that case into :math:`R = I` (still unitary).
* **Dtypes.** Parameters are real (float32 by default), the state is complex (complex64 by
  default); computations run in the state's dtype, with the parameters cast to it, so float64
  parameters or a complex128 state give complex128 throughout.
* **Device.** Everything runs where the tensors are; the modules use their parameters' device.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Config", "MODELS", "PAPER", "SLUG", "make_model", "main", "run", "FACTOR_ORDER", "URNN", "UnitaryRNNCell", "count_parameters", "dense_factors",
           "dense_unitary_parameter_count", "modrelu", "recurrent_parameter_count", "unitary_apply", "unitary_dense"]

#: The default floor on :math:`|z|` in modReLU's denominator (see :func:`modrelu`).
MODRELU_EPS = 1e-6

_COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128}
_REAL_OF = {torch.complex64: torch.float32, torch.complex128: torch.float64}


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------

def _check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def _check_real_vector(name: str, x, n: int | None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a real floating-point torch.Tensor of shape (N,), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a real floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 1 or (n is not None and x.shape[0] != n):
        expected = "(N,)" if n is None else f"({n},)"
        raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")
    return x


def _check_reflection(name: str, v, n: int) -> torch.Tensor:
    """``v`` as given, checked: a real ``(2, N)`` tensor or a complex ``(N,)`` one."""
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (real of shape (2, N) or complex of shape (N,)), "
                        f"got {type(v).__name__}")
    if v.is_complex():
        if tuple(v.shape) != (n,):
            raise ValueError(f"{name} must have shape ({n},) when complex, got {tuple(v.shape)}")
    elif v.is_floating_point():
        if tuple(v.shape) != (2, n):
            raise ValueError(f"{name} must have shape (2, {n}) (real and imaginary parts), got {tuple(v.shape)}")
    else:
        raise TypeError(f"{name} must be a floating-point or complex tensor, got dtype {v.dtype}")
    return v


def _check_perm(perm, n: int, full: bool = True) -> torch.Tensor:
    if not isinstance(perm, torch.Tensor):
        raise TypeError(f"perm must be an integer torch.Tensor of shape ({n},), got {type(perm).__name__}")
    if perm.is_floating_point() or perm.is_complex() or perm.dtype == torch.bool:
        raise TypeError(f"perm must be an integer tensor, got dtype {perm.dtype}")
    if tuple(perm.shape) != (n,):
        raise ValueError(f"perm must have shape ({n},), got {tuple(perm.shape)}")
    if full and not torch.equal(torch.sort(perm).values.cpu().to(torch.int64), torch.arange(n)):
        raise ValueError(f"perm must be a permutation of 0..{n - 1} (each index exactly once), "
                         f"got {perm.tolist() if n <= 20 else 'a tensor with repeated or out-of-range entries'}")
    return perm


def _complex_dtype_for(*tensors: torch.Tensor) -> torch.dtype:
    """complex128 if any tensor is float64/complex128, else complex64."""
    wide = any(t.dtype in (torch.float64, torch.complex128) for t in tensors)
    return torch.complex128 if wide else torch.complex64


def _as_complex(v: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if v.is_complex():
        return v.to(dtype)
    real = v.to(_REAL_OF[dtype])
    return torch.complex(real[0], real[1])


def _phase(theta: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    r""":math:`e^{i\theta}` as a complex tensor of ``dtype`` (differentiable in ``theta``)."""
    t = theta.to(_REAL_OF[dtype])
    return torch.complex(torch.cos(t), torch.sin(t))


def _check_params(theta1, theta2, theta3, v1, v2, perm, *, check_perm: bool) -> int:
    theta1 = _check_real_vector("theta1", theta1, None)
    n = theta1.shape[0]
    _check_real_vector("theta2", theta2, n)
    _check_real_vector("theta3", theta3, n)
    _check_reflection("v1", v1, n)
    _check_reflection("v2", v2, n)
    _check_perm(perm, n, full=check_perm)
    return n


# --------------------------------------------------------------------------------------------
# The unitary matrix, structured and dense
# --------------------------------------------------------------------------------------------

def _reflect(h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""Each row :math:`h` of ``h`` mapped to :math:`R h = h - 2 v \frac{v^* h}{\lVert v\rVert^2}`:
    one inner product and one scaled subtraction per row, :math:`O(N)`."""
    sq = torch.clamp((v.real ** 2 + v.imag ** 2).sum(), min=torch.finfo(v.real.dtype).tiny)
    coef = (h * v.conj()).sum(dim=-1, keepdim=True)  # v^* h, one per row
    return h - (2.0 / sq) * coef * v


def unitary_apply(h: torch.Tensor, theta1: torch.Tensor, theta2: torch.Tensor, theta3: torch.Tensor,
                  v1: torch.Tensor, v2: torch.Tensor, perm: torch.Tensor, *, check_perm: bool = True) -> torch.Tensor:
    r"""Apply :math:`W = D_3 R_2 \mathcal F^{-1} D_2 \Pi R_1 \mathcal F D_1` (paper, Sec. 4) to every
    row of ``h``, without forming :math:`W`.

    ``h`` is a complex tensor of shape ``(..., N)``; each row (last dimension) is treated as a
    column vector and mapped to :math:`W h`, i.e. the batch :math:`H` of shape ``(B, N)`` becomes
    :math:`(W H^\top)^\top = H W^\top`. Right to left:

    .. math::

        h \xrightarrow{D_1} e^{i\theta_1} \odot h
          \xrightarrow{\mathcal F} \texttt{fft}(\cdot, \text{ortho})
          \xrightarrow{R_1} h - 2 v_1 \tfrac{v_1^* h}{\lVert v_1\rVert^2}
          \xrightarrow{\Pi} h_{\pi(\cdot)}
          \xrightarrow{D_2} e^{i\theta_2} \odot h
          \xrightarrow{\mathcal F^{-1}} \texttt{ifft}(\cdot, \text{ortho})
          \xrightarrow{R_2}
          \xrightarrow{D_3} e^{i\theta_3} \odot h.

    Cost :math:`O(N \log N)` per row (the two FFTs), memory :math:`O(N)` per row.

    Args:
        h: complex ``(..., N)`` states (complex64 or complex128; a real tensor is an error).
        theta1, theta2, theta3: real ``(N,)`` phases of :math:`D_1, D_2, D_3`.
        v1, v2: reflection vectors of :math:`R_1, R_2`: real ``(2, N)`` (real parts, imaginary
            parts) or complex ``(N,)``.
        perm: integer ``(N,)`` tensor, a permutation :math:`\pi` of ``0..N-1``;
            :math:`(\Pi h)_i = h_{\pi(i)}`.
        check_perm: verify that ``perm`` is a permutation (a sort, and on a GPU a
            synchronisation); the modules check their fixed permutation once at construction
            and pass ``False``.

    Returns:
        :math:`W h` row by row, same shape and dtype as ``h``.

    Raises:
        TypeError / ValueError: an argument has the wrong type, dtype or shape, or ``perm`` is not
            a permutation of ``0..N-1``.
    """
    if not isinstance(h, torch.Tensor):
        raise TypeError(f"h must be a complex torch.Tensor of shape (..., N), got {type(h).__name__}")
    if not h.is_complex():
        raise TypeError(f"h must be a complex tensor (the hidden state is complex), got dtype {h.dtype}")
    n = _check_params(theta1, theta2, theta3, v1, v2, perm, check_perm=check_perm)
    if h.dim() < 1 or h.shape[-1] != n:
        raise ValueError(f"h must have shape (..., {n}) to match the parameters' N = {n}, got {tuple(h.shape)}")
    dt = h.dtype
    h = _phase(theta1, dt) * h                          # D1
    h = torch.fft.fft(h, dim=-1, norm="ortho")          # F
    h = _reflect(h, _as_complex(v1, dt))                # R1
    h = h[..., perm]                                    # Pi: (Pi h)_i = h_{perm[i]}
    h = _phase(theta2, dt) * h                          # D2
    h = torch.fft.ifft(h, dim=-1, norm="ortho")         # F^{-1}
    h = _reflect(h, _as_complex(v2, dt))                # R2
    return _phase(theta3, dt) * h                       # D3


def dense_factors(theta1: torch.Tensor, theta2: torch.Tensor, theta3: torch.Tensor, v1: torch.Tensor,
                  v2: torch.Tensor, perm: torch.Tensor, *, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    r"""The eight factors of :math:`W` as dense ``(N, N)`` complex matrices, each built from its
    formula (for tests and the notebook; :math:`O(N^2)` memory):

    * ``D1, D2, D3``: :math:`\operatorname{diag}(e^{i\theta_j})`;
    * ``R1, R2``: :math:`I - 2 v v^* / \lVert v\rVert^2` (an outer product);
    * ``F``: :math:`\mathcal F_{jk} = e^{-2\pi i jk/N}/\sqrt N`, ``Finv``:
      :math:`e^{+2\pi i jk/N}/\sqrt N` (the angles from :math:`jk \bmod N` in float64, so they are
      exact before rounding to ``dtype``);
    * ``P``: the permutation matrix :math:`P_{i, \pi(i)} = 1`, so :math:`(P h)_i = h_{\pi(i)}`.

    ``dtype`` defaults to complex128 if the parameters are float64, else complex64.
    """
    n = _check_params(theta1, theta2, theta3, v1, v2, perm, check_perm=True)
    dt = dtype if dtype is not None else _complex_dtype_for(theta1, theta2, theta3, v1, v2)
    if dt not in _REAL_OF:
        raise TypeError(f"dtype must be torch.complex64 or torch.complex128, got {dt}")
    dev = theta1.device
    eye = torch.eye(n, dtype=dt, device=dev)

    def reflection(v):
        vc = _as_complex(v, dt)
        sq = torch.clamp((vc.real ** 2 + vc.imag ** 2).sum(), min=torch.finfo(vc.real.dtype).tiny)
        return eye - (2.0 / sq) * torch.outer(vc, vc.conj())

    idx = torch.arange(n, device=dev)
    jk = (idx[:, None] * idx[None, :]) % n                                  # exact integers
    angle = (2.0 * math.pi / n) * jk.to(torch.float64)
    scale = 1.0 / math.sqrt(n)
    fourier = (torch.complex(torch.cos(angle), -torch.sin(angle)) * scale).to(dt)
    fourier_inv = (torch.complex(torch.cos(angle), torch.sin(angle)) * scale).to(dt)
    perm_matrix = torch.zeros(n, n, dtype=dt, device=dev)
    perm_matrix[idx, perm.to(dev)] = 1.0
    return {"D1": torch.diag(_phase(theta1, dt)), "F": fourier, "R1": reflection(v1), "P": perm_matrix,
            "D2": torch.diag(_phase(theta2, dt)), "Finv": fourier_inv, "R2": reflection(v2),
            "D3": torch.diag(_phase(theta3, dt))}


#: The factors of :math:`W` from left to right.
FACTOR_ORDER = ("D3", "R2", "Finv", "D2", "P", "R1", "F", "D1")


def unitary_dense(theta1: torch.Tensor, theta2: torch.Tensor, theta3: torch.Tensor, v1: torch.Tensor,
                  v2: torch.Tensor, perm: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    r""":math:`W = D_3 R_2 \mathcal F^{-1} D_2 \Pi R_1 \mathcal F D_1` as a dense ``(N, N)`` complex
    matrix: the product of the dense factors of :func:`dense_factors`, each built from its
    formula (no FFT, no indexing of states), so that it checks :func:`unitary_apply`
    independently: ``unitary_apply(H, ...) == H @ unitary_dense(...).T`` for a batch ``H`` of rows.

    For tests and small :math:`N` only (:math:`O(N^3)` time, :math:`O(N^2)` memory).
    """
    f = dense_factors(theta1, theta2, theta3, v1, v2, perm, dtype=dtype)
    w = f[FACTOR_ORDER[0]]
    for name in FACTOR_ORDER[1:]:
        w = w @ f[name]
    return w


# --------------------------------------------------------------------------------------------
# modReLU
# --------------------------------------------------------------------------------------------

def modrelu(z: torch.Tensor, b: torch.Tensor, eps: float = MODRELU_EPS) -> torch.Tensor:
    r"""modReLU (paper, Sec. 4.1): :math:`\sigma(z) = \operatorname{ReLU}(|z| + b)\,\dfrac{z}{|z|}`,
    elementwise, with a real bias :math:`b` per unit.

    It rescales the modulus and keeps the phase: :math:`|\sigma(z)| = \max(|z| + b, 0)` and
    :math:`\arg\sigma(z) = \arg z` wherever :math:`\sigma(z) \ne 0`; a negative :math:`b` zeroes
    every unit with :math:`|z| \le -b`, and :math:`b = 0` is the identity.

    At :math:`z = 0` the phase :math:`z/|z|` is undefined (and its derivative grows like
    :math:`1/|z|`). We compute

    .. math:: \sigma(z) = \operatorname{ReLU}(|z| + b)\,\frac{z}{\max(|z|, \varepsilon)},

    which is the formula exactly wherever :math:`|z| \ge \varepsilon` (``eps``, default
    ``1e-6``), gives :math:`\sigma(0) = 0` for any :math:`b` (no ``nan`` in the value or the
    gradient), and bounds the gradient near 0 by about :math:`(|z| + b)/\varepsilon`. (The
    common alternative :math:`|z| + \varepsilon` in the denominator shrinks every output by the
    factor :math:`|z| / (|z| + \varepsilon)`; the clamp leaves :math:`|z| \ge \varepsilon` exact.)

    Args:
        z: complex tensor ``(..., N)``.
        b: real tensor broadcastable against ``z`` (typically ``(N,)``), cast to ``z``'s real dtype.
        eps: the floor on the denominator, a finite number > 0.

    Raises:
        TypeError: ``z`` is not complex, or ``b`` is not a real floating-point tensor.
        ValueError: ``eps`` is not finite and positive.
    """
    if not isinstance(z, torch.Tensor) or not z.is_complex():
        got = f"dtype {z.dtype}" if isinstance(z, torch.Tensor) else type(z).__name__
        raise TypeError(f"z must be a complex tensor, got {got}")
    if not isinstance(b, torch.Tensor) or not b.is_floating_point():
        got = f"dtype {b.dtype}" if isinstance(b, torch.Tensor) else type(b).__name__
        raise TypeError(f"b must be a real floating-point tensor, got {got}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    modulus = torch.abs(z)
    scale = torch.relu(modulus + b.to(modulus.dtype)) / torch.clamp(modulus, min=eps)
    return z * scale


# --------------------------------------------------------------------------------------------
# Parameter counts
# --------------------------------------------------------------------------------------------

def recurrent_parameter_count(n: int) -> int:
    r"""Real parameters of the uRNN's recurrent matrix: :math:`3N` phases + :math:`2 \times 2N`
    reflection entries :math:`= 7N` (the modReLU bias, :math:`N` more, belongs to the
    nonlinearity and is not counted)."""
    return 7 * _check_size("hidden_size", n)


def dense_unitary_parameter_count(n: int) -> int:
    r"""Real degrees of freedom of a general :math:`N \times N` unitary matrix: :math:`N^2`
    (the dimension of the Lie group :math:`U(N)`), against :func:`recurrent_parameter_count`'s
    :math:`7N`."""
    return _check_size("hidden_size", n) ** 2


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Real numbers in ``model``'s parameters (a complex entry counts 2); by default only those
    that require a gradient."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()
               if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------------------------
# The cell and the network
# --------------------------------------------------------------------------------------------

class UnitaryRNNCell(nn.Module):
    r"""One step of the uRNN (paper, Sec. 4): :math:`h_t = \sigma_{\text{modReLU}}(W h_{t-1} + V x_t)`.

    Parameters (all real tensors; the complex ones are stored as (real, imaginary) pairs):

    * ``theta1, theta2, theta3`` ``(N,)``: the phases of :math:`D_1, D_2, D_3`, initialised
      uniform on :math:`[-\pi, \pi)`;
    * ``v1, v2`` ``(2, N)``: the reflection vectors (row 0 real, row 1 imaginary parts),
      initialised uniform on :math:`[-1, 1)`;
    * ``V`` ``(2, N, input_size)``: the complex input matrix. Glorot-uniform, treating
      :math:`V` as the real map :math:`x \mapsto (\operatorname{Re} Vx, \operatorname{Im} Vx)`
      from ``input_size`` to :math:`2N` reals: every entry uniform on :math:`\pm\sqrt{6 /
      (n_{in} + 2N)}`;
    * ``bias`` ``(N,)``: modReLU's :math:`b`, initialised to 0, where modReLU is the identity,
      so the cell starts as the linear, norm-preserving map :math:`h \mapsto W h + V x` and the
      optimiser decides how much to threshold.

    Buffer ``perm`` ``(N,)``: the fixed permutation :math:`\pi`, drawn once with
    ``torch.randperm`` from a generator seeded with ``perm_seed`` (default: a seed drawn from
    torch's global generator, so :func:`runtime.seed_everything` fixes it too). It is checked once
    here and never again.

    Dtypes and devices follow the parameters: ``cell.double()`` makes the state complex128,
    ``cell.to("cuda")`` moves everything.
    """

    def __init__(self, input_size: int, hidden_size: int, *, perm_seed: int | None = None) -> None:
        super().__init__()
        self.input_size = _check_size("input_size", input_size)
        n = self.hidden_size = _check_size("hidden_size", hidden_size)
        self.theta1 = nn.Parameter(torch.empty(n).uniform_(-math.pi, math.pi))
        self.theta2 = nn.Parameter(torch.empty(n).uniform_(-math.pi, math.pi))
        self.theta3 = nn.Parameter(torch.empty(n).uniform_(-math.pi, math.pi))
        self.v1 = nn.Parameter(torch.empty(2, n).uniform_(-1.0, 1.0))
        self.v2 = nn.Parameter(torch.empty(2, n).uniform_(-1.0, 1.0))
        bound = math.sqrt(6.0 / (input_size + 2 * n))
        self.V = nn.Parameter(torch.empty(2, n, input_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(n))
        if perm_seed is None:
            perm_seed = int(torch.randint(0, 2**62, (1,)).item())
        elif isinstance(perm_seed, bool) or not isinstance(perm_seed, int):
            raise TypeError(f"perm_seed must be an int or None, got {type(perm_seed).__name__}")
        gen = torch.Generator().manual_seed(perm_seed)
        self.register_buffer("perm", _check_perm(torch.randperm(n, generator=gen), n))

    def recurrent_parameters(self) -> list[nn.Parameter]:
        """The parameters of :math:`W` (``theta1..3``, ``v1``, ``v2``): :math:`7N` real numbers."""
        return [self.theta1, self.theta2, self.theta3, self.v1, self.v2]

    @property
    def complex_dtype(self) -> torch.dtype:
        return _COMPLEX_OF[self.theta1.dtype]

    def recurrent(self, h: torch.Tensor) -> torch.Tensor:
        r""":math:`W h` for every row of the complex ``(batch, N)`` state ``h`` (:func:`unitary_apply`)."""
        return unitary_apply(h, self.theta1, self.theta2, self.theta3, self.v1, self.v2, self.perm,
                             check_perm=False)

    def dense(self) -> torch.Tensor:
        """:math:`W` as a dense matrix (:func:`unitary_dense`), for inspection."""
        return unitary_dense(self.theta1, self.theta2, self.theta3, self.v1, self.v2, self.perm,
                             dtype=self.complex_dtype)

    def input_map(self, x_t: torch.Tensor) -> torch.Tensor:
        r""":math:`V x_t` for every row of the real ``(batch, input_size)`` input, as complex ``(batch, N)``."""
        if not isinstance(x_t, torch.Tensor) or not x_t.is_floating_point():
            got = f"dtype {x_t.dtype}" if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise TypeError(f"x_t must be a real floating-point tensor, got {got}")
        if x_t.dim() != 2 or x_t.shape[1] != self.input_size:
            raise ValueError(f"x_t must have shape (batch, {self.input_size}), got {tuple(x_t.shape)}")
        x_t = x_t.to(self.V.dtype)
        return torch.complex(x_t @ self.V[0].T, x_t @ self.V[1].T)

    def forward(self, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r""":math:`h_t = \sigma_{\text{modReLU}}(W h_{t-1} + V x_t)`: ``x_t`` real ``(batch,
        input_size)``, ``h`` complex ``(batch, N)``; returns the complex ``(batch, N)`` new state."""
        if not isinstance(h, torch.Tensor) or not h.is_complex():
            got = f"dtype {h.dtype}" if isinstance(h, torch.Tensor) else type(h).__name__
            raise TypeError(f"h must be a complex tensor of shape (batch, {self.hidden_size}), got {got}")
        vx = self.input_map(x_t)
        if h.dim() != 2 or h.shape[1] != self.hidden_size or h.shape[0] != vx.shape[0]:
            raise ValueError(f"h must have shape ({vx.shape[0]}, {self.hidden_size}) to match x_t, "
                             f"got {tuple(h.shape)}")
        return modrelu(self.recurrent(h.to(self.complex_dtype)) + vx, self.bias)


class URNN(nn.Module):
    r"""The unitary evolution RNN (paper, Sec. 4): a :class:`UnitaryRNNCell` unrolled over time and a
    real linear read-out of :math:`[\operatorname{Re} h_t; \operatorname{Im} h_t]`,

    .. math::

        h_t = \sigma_{\text{modReLU}}(W h_{t-1} + V x_t), \qquad
        o_t = U \begin{pmatrix} \operatorname{Re} h_t \\ \operatorname{Im} h_t \end{pmatrix} + b_o .

    Initial state :math:`h_0`: by default (``learn_h0=True``) a learnable complex vector shared by
    every sequence (parameter ``h0`` of shape ``(2, N)``, real and imaginary parts), initialised
    uniform on :math:`\pm\sqrt{3/(2N)}` so that :math:`\mathbb E\lVert h_0\rVert^2 = 1`; with
    ``learn_h0=False`` the same draw is a fixed buffer. ``forward`` also accepts an explicit
    initial state.

    The read-out ``U`` is an ``nn.Linear(2N, output_size)`` with Glorot-uniform weights and a
    zero bias :math:`b_o`.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, *, learn_h0: bool = True,
                 perm_seed: int | None = None) -> None:
        super().__init__()
        output_size = _check_size("output_size", output_size)
        self.cell = UnitaryRNNCell(input_size, hidden_size, perm_seed=perm_seed)
        n = hidden_size
        bound = math.sqrt(3.0 / (2 * n))
        h0 = torch.empty(2, n).uniform_(-bound, bound)
        if learn_h0:
            self.h0 = nn.Parameter(h0)
        else:
            self.register_buffer("h0", h0)
        self.readout = nn.Linear(2 * n, output_size)
        nn.init.xavier_uniform_(self.readout.weight)
        nn.init.zeros_(self.readout.bias)
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size

    def n_parameters(self) -> int:
        """All trainable real parameters (:func:`count_parameters`)."""
        return count_parameters(self)

    def initial_state(self, batch: int) -> torch.Tensor:
        """:math:`h_0` repeated for ``batch`` sequences: complex ``(batch, N)``."""
        h0 = torch.complex(self.h0[0], self.h0[1]).to(self.cell.complex_dtype)
        return h0.expand(_check_size("batch", batch), self.hidden_size)

    def hidden_states(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        r"""The states :math:`h_1, \dots, h_T` for real ``x`` of shape ``(batch, T, input_size)``:
        complex ``(batch, T, N)``. ``h0`` (complex ``(batch, N)``) overrides the initial state."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"x must be a real floating-point tensor of shape (batch, T, input_size), got {got}")
        if x.dim() != 3 or x.shape[2] != self.input_size or x.shape[1] < 1:
            raise ValueError(f"x must have shape (batch, T >= 1, {self.input_size}), got {tuple(x.shape)}")
        h = self.initial_state(x.shape[0]) if h0 is None else h0
        states = []
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
            states.append(h)
        return torch.stack(states, dim=1)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        r"""Outputs :math:`o_1, \dots, o_T`: real ``(batch, T, output_size)`` for real ``x`` of shape
        ``(batch, T, input_size)``."""
        h = self.hidden_states(x, h0)
        return self.readout(torch.cat([h.real, h.imag], dim=-1))


# ----------------------------------------------------------------------------------------------
# The experiments (Sec. 4.1-4.3): the uRNN beside the IRNN, tanh-RNN and LSTM baselines
# ----------------------------------------------------------------------------------------------

import sys as _sys  # noqa: E402
import time as _time  # noqa: E402
from dataclasses import dataclass as _dataclass  # noqa: E402

from torch.nn import functional as _F  # noqa: E402

from . import irnn as _irnn  # noqa: E402  (the baselines live in the IRNN chapter's module)
from . import results as _results  # noqa: E402
from . import runtime as _runtime  # noqa: E402
from . import tasks as _tasks  # noqa: E402
from . import training as _training  # noqa: E402

SLUG = "urnn"
MODELS = ("urnn", "lstm", "irnn", "tanh")


class _AllSteps(nn.Module):
    """Wraps a baseline so that every model returns outputs at every step, ``(B, T, out)``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x, all_steps=True)


def make_model(kind: str, input_size: int, output_size: int, hidden: dict) -> nn.Module:
    """The model ``kind`` (one of :data:`MODELS`) with ``hidden[kind]`` units; its ``forward``
    returns real outputs at every step, ``(batch, T, output_size)``."""
    if kind not in MODELS:
        raise ValueError(f"kind must be one of {MODELS}, got {kind!r}")
    if kind == "urnn":
        return URNN(input_size, hidden[kind], output_size)
    return _AllSteps(_irnn.RecurrentNet(kind, input_size, hidden[kind], output_size))


@_dataclass(frozen=True)
class Config:
    """The uRNN chapter's experiments at one scale. Every model gets the same optimizer
    (RMSProp, decay 0.9), the same learning-rate grid ``lrs`` (each tried, the best final test
    score kept) and the same number of updates per task; the baselines are clipped at ``clip``
    and the uRNN is not (Sec. 4). Hidden sizes follow the paper where it gives them: copying and
    adding with the uRNN at 128 units, LSTM 40, tanh RNN and IRNN 80 (about 6.5k parameters
    each); pixel MNIST with the uRNN at 512 and the others at 128.
    """

    copy_T: tuple[int, ...] = (100, 200, 300, 500)
    adding_T: tuple[int, ...] = (100, 200, 400, 750)
    pixel_variants: tuple[str, ...] = ("plain", "permuted")
    pixel_size: int = 28
    copy_steps: int = 20_000
    adding_steps: int = 20_000
    pixel_steps: int = 100_000
    batch: int = 20
    lrs: tuple[float, ...] = (1e-3,)
    clip: float = 1.0
    small_hidden: tuple[tuple[str, int], ...] = (("urnn", 128), ("lstm", 40), ("irnn", 80), ("tanh", 80))
    pixel_hidden: tuple[tuple[str, int], ...] = (("urnn", 512), ("lstm", 128), ("irnn", 128), ("tanh", 128))
    models: tuple[str, ...] = MODELS
    test_sequences: int = 1000
    pixel_test_images: int | None = None
    eval_every: int = 500
    seed: int = 0
    threads: int | None = None

    def __post_init__(self):
        if not isinstance(self.models, tuple) or not self.models or not set(self.models) <= set(MODELS):
            raise ValueError(f"models must be a non-empty tuple drawn from {MODELS}, got {self.models!r}")
        for name in ("copy_T", "adding_T"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 2 for t in v):
                raise ValueError(f"{name} must be a tuple of sequence lengths (ints >= 2), got {v!r}")
        for name in ("batch", "test_sequences", "eval_every", "pixel_size"):
            _check_size(name, getattr(self, name))
        for name in ("copy_steps", "adding_steps", "pixel_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0 (0 skips the task), got {v!r}")
        if not set(self.pixel_variants) <= {"plain", "permuted"}:
            raise ValueError(f"pixel_variants must be drawn from ('plain', 'permuted'), got {self.pixel_variants!r}")
        if 28 % self.pixel_size:
            raise ValueError(f"pixel_size must divide 28, got {self.pixel_size}")
        if not self.lrs or not all(isinstance(lr, float) and lr > 0 for lr in self.lrs):
            raise ValueError(f"lrs must be a non-empty tuple of learning rates > 0, got {self.lrs!r}")

    @classmethod
    def quick(cls) -> "Config":
        """CI scale, within a minute per notebook on CI's two cores: copying at T = 20 for 120
        updates, adding at T = 30 for 80, pixel MNIST on 7×7 images (49 steps) for 40 updates
        (500 test images); one learning rate."""
        return cls(copy_T=(20,), adding_T=(30,), pixel_variants=("plain",), pixel_size=7, copy_steps=120,
                   adding_steps=80, pixel_steps=40, pixel_test_images=500, eval_every=40, threads=1)

    @classmethod
    def cpu(cls) -> "Config":
        """Two CPU cores: copying at T = 100 and adding at T = 100 for 2,000 updates each, pixel
        MNIST (plain and permuted) on 7×7 images for 1,000 updates, learning rate 1e-3.
        Departures: one sequence length per task, far fewer updates than the paper, and pixel
        MNIST at 7×7 (a Python loop over 784 steps of a 512-unit complex cell is too slow here)."""
        return cls(copy_T=(100,), adding_T=(100,), pixel_size=7, copy_steps=2000, adding_steps=2000,
                   pixel_steps=1000, eval_every=250, threads=1)

    @classmethod
    def paper(cls) -> "Config":
        """The paper's tasks and sizes (Sec. 4), RMSProp with learning rate 1e-3 and decay 0.9,
        minibatches of 20 [U: batch size]; for a GPU."""
        return cls()


def _pixel(config: Config, split: str, variant: str, limit=None):
    x, y = _tasks.pixel_mnist(split, limit=limit)
    if config.pixel_size != 28:
        k = 28 // config.pixel_size
        x = _F.avg_pool2d(x.reshape(-1, 1, 28, 28), k).reshape(len(x), -1, 1)
    if variant == "permuted":
        x = x[:, _tasks.fixed_permutation(config.seed, x.shape[1])]
    return x, y


def _fit(config, kind, task, make, next_batch, loss_fn, evaluate, steps, device, lower_is_better):
    """Train ``kind`` at every learning rate of the grid; keep the best final test score."""
    best = None
    for lr in config.lrs:
        torch.manual_seed(config.seed)
        model = make().to(device)
        opt_clip = None if kind == "urnn" else config.clip
        out = _irnn.train(model, next_batch(), loss_fn, steps=steps, optimizer="rmsprop", lr=lr, clip=opt_clip,
                          evaluate=evaluate, eval_every=config.eval_every, desc=f"{task} {kind} lr={lr:g}")
        score = out["final"]
        if best is None or (score < best[0] if lower_is_better else score > best[0]):
            best = (score, lr, out, model)
    return best


def _copy_xent(model, x, y, n_classes, batch_size=250):
    with torch.no_grad():
        device = next(model.parameters()).device
        total = 0.0
        for i in range(0, len(x), batch_size):
            out = model(_F.one_hot(x[i:i + batch_size], n_classes + 1).float().to(device))
            total += float(_F.cross_entropy(out.reshape(-1, n_classes), y[i:i + batch_size].reshape(-1).to(device),
                                            reduction="sum"))
    return total / y.numel()


def run(config: Config | None = None, *, scale: str | None = None, write: bool = True, results_dir=None,
        device=None, command: str | None = None, models: dict | None = None) -> dict:
    """Run the copying, adding and pixel-MNIST experiments for every model; write the results.

    ``metrics``: ``copy_t{T}_test_xent(.{kind})`` (cross-entropy per step on ``test_sequences``
    held-out sequences; without suffix: the uRNN), ``copy_t{T}_baseline_xent``,
    ``adding_t{T}_test_mse(.{kind})``, ``adding_baseline_mse``, ``pixel_mnist_test_acc(.{kind})``
    and ``permuted_pixel_mnist_test_acc(.{kind})``, ``lr.<task>.{kind}`` (the grid's winner),
    ``params.<task>.{kind}`` (trainable real parameters), ``seconds.<task>.{kind}``. ``curves``:
    the test score against updates for every task and model.
    """
    study = _results.start_study(Config, config, scale, device, models)
    config, device = study.config, study.device
    small, big = dict(config.small_hidden), dict(config.pixel_hidden)
    metrics = {"adding_baseline_mse": _tasks.ADDING_BASELINE_MSE}
    curves = {}

    def record(task, kind, best, n_params, higher=False):
        score, lr, out, model = best
        metrics[f"{task}.{kind}"] = score
        metrics[f"lr.{task}.{kind}"] = lr
        metrics[f"params.{task}.{kind}"] = n_params
        metrics[f"seconds.{task}.{kind}"] = out["seconds"]
        curves[f"{task}_vs_step.{kind}"] = out["curve"]
        if models is not None:
            models[f"{task}.{kind}"] = model

    for T in (config.copy_T if config.copy_steps else ()):
        task = f"copy_t{T}_test_xent"
        n_cls = 9  # blank + 8 symbols are the outputs; the delimiter (9) is input only
        xt, yt = _tasks.copying_problem(config.test_sequences, T, generator=torch.Generator().manual_seed(20_000 + T))
        metrics[f"copy_t{T}_baseline_xent"] = _tasks.copying_baseline_xent(T)
        for kind in config.models:
            def next_batch(T=T):
                gen = torch.Generator().manual_seed(config.seed * 1000 + T)

                def f(step):
                    x, y = _tasks.copying_problem(config.batch, T, generator=gen)
                    return _F.one_hot(x, 10).float(), y
                return f

            best = _fit(config, kind, task, lambda: make_model(kind, 10, n_cls, small), next_batch,
                        lambda out, y: _F.cross_entropy(out.reshape(-1, n_cls), y.reshape(-1)),
                        lambda m, xt=xt, yt=yt: _copy_xent(m, xt, yt, n_cls), config.copy_steps, device, True)
            record(task, kind, best, count_parameters(best[3]))
        if "urnn" in config.models:
            metrics[task] = metrics[f"{task}.urnn"]

    for T in (config.adding_T if config.adding_steps else ()):
        task = f"adding_t{T}_test_mse"
        xt, yt = _tasks.adding_problem(config.test_sequences, T, generator=torch.Generator().manual_seed(10_000 + T))
        for kind in config.models:
            def next_batch(T=T):
                gen = torch.Generator().manual_seed(config.seed * 1000 + T + 1)
                return lambda step: _tasks.adding_problem(config.batch, T, generator=gen)

            def evaluate(m, xt=xt, yt=yt):
                with torch.no_grad():
                    dev = next(m.parameters()).device
                    return float(sum(((m(xt[i:i + 250].to(dev))[:, -1] - yt[i:i + 250].to(dev)) ** 2).sum()
                                     for i in range(0, len(xt), 250)) / len(xt))

            best = _fit(config, kind, task, lambda: make_model(kind, 2, 1, small), next_batch,
                        lambda out, y: _F.mse_loss(out[:, -1], y), evaluate, config.adding_steps, device, True)
            record(task, kind, best, count_parameters(best[3]))
        if "urnn" in config.models:
            metrics[task] = metrics[f"{task}.urnn"]

    for variant in (config.pixel_variants if config.pixel_steps else ()):
        task = "pixel_mnist_test_acc" if variant == "plain" else "permuted_pixel_mnist_test_acc"
        x_train, y_train = _pixel(config, "train", variant)
        x_test, y_test = _pixel(config, "test", variant, config.pixel_test_images)
        for kind in config.models:
            def next_batch():
                sampler = _training.EpochSampler(len(x_train), config.batch, seed=config.seed)

                def f(step):
                    idx = torch.as_tensor(sampler.indices(step - 1))
                    return x_train[idx], y_train[idx]
                return f

            def evaluate(m, x_test=x_test, y_test=y_test):
                with torch.no_grad():
                    dev = next(m.parameters()).device
                    right = sum(int((m(x_test[i:i + 500].to(dev))[:, -1].argmax(1).cpu() == y_test[i:i + 500]).sum())
                                for i in range(0, len(x_test), 500))
                return right / len(x_test)

            best = _fit(config, kind, task, lambda: make_model(kind, 1, 10, big), next_batch,
                        lambda out, y: _F.cross_entropy(out[:, -1], y), evaluate, config.pixel_steps, device, False)
            record(task, kind, best, count_parameters(best[3]))
        if "urnn" in config.models:
            metrics[task] = metrics[f"{task}.urnn"]

    metrics["compute_s"] = _time.perf_counter() - study.t0
    return study.finish(SLUG, metrics, curves, PAPER, seeds=[config.seed], command=command, write=write,
                        results_dir=results_dir)


PAPER = {
    "copy_t100_test_xent": {"value": None, "status": "V2",
                            "source": "Fig. 1 (curves only): the uRNN reaches near-zero cost on the copying "
                                      "problem for T = 100 to 500; the baseline is 10 log 8 / (T + 20)"},
    "pixel_mnist_test_acc": {"value": 0.951, "status": "V2", "source": "Table 1: pixel MNIST, uRNN 95.1% (LSTM 98.2%)"},
    "permuted_pixel_mnist_test_acc": {"value": 0.914, "status": "V2",
                                      "source": "Table 1: permuted pixel MNIST, uRNN 91.4% (LSTM 88%)"},
}


def main(argv: list[str] | None = None) -> int:
    """``python -m papernotes_core.urnn [--no-write]`` at ``PAPERNOTES_SCALE``."""
    return _runtime.study_main(SLUG, Config, run, argv, description=main.__doc__)


if __name__ == "__main__":  # pragma: no cover - the command line entry point
    _sys.exit(main())
