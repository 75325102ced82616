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

How the complex parameters are differentiated
---------------------------------------------

Every parameter is a real tensor: the phases :math:`\theta_j`, the reflection vectors as
``(2, N)`` (real parts, imaginary parts), the input matrix :math:`V` as ``(2, N, n_in)``, the
initial state as ``(2, N)``. The complex quantities are built from them with differentiable
operations (:math:`e^{i\theta}` from ``cos`` and ``sin``, ``torch.complex``, complex
multiplication, the FFT, :math:`|z|` in modReLU), and the loss is real (the read-out takes
:math:`\operatorname{Re} h` and :math:`\operatorname{Im} h`). Autograd therefore returns, for each
real parameter, the ordinary real gradient :math:`\partial L / \partial \theta`: PyTorch
propagates through the complex intermediates with Wirtinger calculus (for a real :math:`L` the
gradient it holds for a complex :math:`z` is :math:`\partial L/\partial \operatorname{Re} z + i\,
\partial L/\partial \operatorname{Im} z`, twice the conjugate Wirtinger derivative), and for a
real leaf that reduces to the real derivative, so any real optimiser (here RMSProp) applies
unchanged. The tests check a phase and a reflection-vector gradient against central finite
differences.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Config", "MODELS", "PAPER", "SLUG", "make_model", "main", "run", "FACTOR_ORDER", "URNN", "UnitaryRNNCell", "count_parameters", "dense_factors",
           "dense_unitary_parameter_count", "gradient_norms_vs_time", "hidden_state_norms", "modrelu",
           "recurrent_parameter_count", "select_by_validation", "unitary_apply", "unitary_dense"]

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

import hashlib as _hashlib  # noqa: E402
import json as _json  # noqa: E402
import statistics as _statistics  # noqa: E402
import sys as _sys  # noqa: E402
import time as _time  # noqa: E402
from dataclasses import dataclass as _dataclass  # noqa: E402

import numpy as _np  # noqa: E402
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


# ----------------------------------------------------------------------------------------------
# Diagnostics: the norms of the hidden states and of their gradients against time (Fig. 4)
# ----------------------------------------------------------------------------------------------

def _unroll(model: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    r"""Run ``model`` one step at a time: ``(states, outputs)``, ``states[t-1]`` the tensor
    :math:`h_t` (``(batch, N)``) that both the read-out at step :math:`t` and step :math:`t + 1`
    use, so that a gradient with respect to it is the total derivative :math:`dL/dh_t`;
    ``outputs`` what ``model(x)`` returns.

    PyTorch's fused ``nn.RNN`` / ``nn.LSTM`` return the states of all steps as one output tensor
    that the recurrence itself does not read, so a gradient with respect to that tensor would be
    only the read-out's part; here the fused layer is called once per step with the previous
    step's state passed in (the LSTM's :math:`h_t`, not its cell :math:`c_t`)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x must be a real floating-point tensor of shape (batch, T, input_size), got {got}")
    if x.dim() != 3 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x must have shape (batch >= 1, T >= 1, input_size), got {tuple(x.shape)}")
    net = model.net if isinstance(model, _AllSteps) else model
    if isinstance(net, URNN):
        if x.shape[2] != net.input_size:
            raise ValueError(f"x must have shape (batch, T, {net.input_size}), got {tuple(x.shape)}")
        x = x.to(net.readout.weight.device)
        h, states = net.initial_state(x.shape[0]), []
        for t in range(x.shape[1]):
            h = net.cell(x[:, t], h)
            states.append(h)
        hs = torch.stack(states, dim=1)
        return states, net.readout(torch.cat([hs.real, hs.imag], dim=-1))
    if isinstance(net, _irnn.RecurrentNet):
        if x.shape[2] != net.rnn.input_size:
            raise ValueError(f"x must have shape (batch, T, {net.rnn.input_size}), got {tuple(x.shape)}")
        x = x.to(device=net.out.weight.device, dtype=net.out.weight.dtype)
        lstm = net.kind == "lstm"
        hx, states = None, []
        for t in range(x.shape[1]):
            _, hn = net.rnn(x[:, t:t + 1], hx)
            h = hn[0][0] if lstm else hn[0]                        # (batch, N)
            states.append(h)
            hx = (h.unsqueeze(0), hn[1]) if lstm else h.unsqueeze(0)
        out = net.out(torch.stack(states, dim=1))
        return states, (out if isinstance(model, _AllSteps) else out[:, -1])
    raise TypeError(f"model must be a URNN, an irnn.RecurrentNet or a make_model(...) model, "
                    f"got {type(model).__name__}")


def hidden_state_norms(model: nn.Module, x: torch.Tensor) -> _np.ndarray:
    r""":math:`\frac1B \sum_b \lVert h_t^{(b)}\rVert` for :math:`t = 1..T`: the mean over the batch
    of the norm of the hidden state after each step of the real inputs ``x`` ``(batch, T,
    input_size)``; a float64 array of length :math:`T`.

    For the uRNN the norm of the complex state, :math:`\sqrt{\sum_i |h_{t,i}|^2}`; for the
    baselines (:class:`irnn.RecurrentNet`, bare or from :func:`make_model`) the recurrent layer's
    hidden state, for the LSTM :math:`h_t` (not the cell :math:`c_t`)."""
    with torch.no_grad():
        states, _ = _unroll(model, x)
        norms = torch.stack([torch.linalg.vector_norm(h, dim=-1).mean() for h in states])
    return norms.double().cpu().numpy()


def gradient_norms_vs_time(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn) -> _np.ndarray:
    r"""How much the loss depends on each hidden state (paper, Fig. 4):
    :math:`\frac1B \sum_b \lVert \partial L / \partial h_t^{(b)}\rVert` for :math:`t = 1..T`, with
    :math:`L` = ``loss_fn(model(x), y)``; a float64 array of length :math:`T`.

    :math:`\partial L / \partial h_t` is the total derivative, through the read-out at step
    :math:`t` and every later step (the states are the tensors the recurrence passes on, see
    :func:`hidden_state_norms`), from ``torch.autograd.grad`` with respect to those intermediate
    tensors (the model's parameter gradients are left alone). For the uRNN's complex state the
    gradient is PyTorch's :math:`\partial L/\partial \operatorname{Re} h + i\,\partial L/\partial
    \operatorname{Im} h`, whose norm is that of the real gradient with respect to
    :math:`(\operatorname{Re} h_t, \operatorname{Im} h_t)`. ``loss_fn`` receives what
    ``model(x)`` returns (every step for the uRNN and :func:`make_model`'s models, the last step
    for a bare :class:`irnn.RecurrentNet`)."""
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a callable loss_fn(outputs, y) -> scalar tensor, "
                        f"got {type(loss_fn).__name__}")
    with torch.enable_grad():
        states, out = _unroll(model, x)
        loss = loss_fn(out, y.to(out.device) if isinstance(y, torch.Tensor) else y)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("loss_fn must return a scalar tensor")
        grads = torch.autograd.grad(loss, states, allow_unused=True)
    norms = [torch.zeros((), dtype=torch.float64) if g is None else torch.linalg.vector_norm(g, dim=-1).mean()
             for g in grads]
    return torch.stack([n.double().cpu() for n in norms]).numpy()


def _curve(values) -> list[list[float]]:
    """``[[t, value], ...]`` for ``t = 1..T``."""
    return [[t, float(v)] for t, v in enumerate(values, start=1)]


# ----------------------------------------------------------------------------------------------
# The study
# ----------------------------------------------------------------------------------------------

def _check_hidden(name: str, value, models) -> None:
    ok = (isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 and p[0] in MODELS
                                           and isinstance(p[1], int) and not isinstance(p[1], bool) and p[1] >= 1
                                           for p in value))
    if not ok or not set(models) <= {p[0] for p in value}:
        raise ValueError(f"{name} must be a tuple of (model, hidden units >= 1) pairs naming every model of "
                         f"{tuple(models)}, got {value!r}")


#: Generator seeds of the held-out sequences (copying and adding): test and validation sets are
#: drawn once per sequence length, with seeds distinct from each other and from training's.
_TEST_SEED = {"copy": 20_000, "adding": 10_000}
_VAL_SEED = 30_000


def _data_seeds(task: str, seed: int, T: int) -> dict[str, int]:
    """The ``torch.Generator`` seeds of the training batches, validation and test sequences of
    ``task`` (``"copy"`` or ``"adding"``) at length ``T`` for the run seeded ``seed``."""
    return {"train": seed * 1000 + T + (1 if task == "adding" else 0), "val": _VAL_SEED + T,
            "test": _TEST_SEED[task] + T}


@_dataclass(frozen=True)
class Config:
    """The uRNN chapter's experiments at one scale.

    Every model gets the same optimizer (RMSProp, decay 0.9), the same learning-rate grid
    ``lrs`` and the same number of updates per task; the baselines are clipped at ``clip`` and
    the uRNN is not (Sec. 4). Of the grid, the learning rate with the best final score on
    held-out *validation* data is kept (:func:`select_by_validation`), and only that model is
    scored on the test data: copying and adding draw ``val_sequences`` validation sequences with
    their own generator seed (30,000 + T; test: 20,000 + T for copying, 10,000 + T for adding;
    training: 1,000·seed + T, + 1 for adding), pixel MNIST uses the ``valid`` split (the last
    10k of MNIST's 60k training images; training uses the other 50k), ``pixel_val_images`` of it.

    Hidden sizes follow the authors' setups, per task:

    * copying (``small_hidden``): uRNN 128, LSTM 40, tanh RNN and IRNN 80 (about 6.5k
      parameters each); minibatches of ``batch`` = 20;
    * adding (``adding_hidden``): uRNN 512, LSTM, tanh RNN and IRNN 128; minibatches of
      ``adding_batch`` = 50 (the paper tried 20 and 50 and reports the better; we use 50, the
      cheaper of the two to evaluate [our choice]);
    * pixel MNIST (``pixel_hidden``): uRNN 512, the others 128; minibatches of ``batch``.

    Seeds: ``seeds`` (empty: just ``seed``) are the seeds of the copying and adding runs (the
    initialisation and the training batches), every model trained once per seed; pixel MNIST
    runs with ``seed`` only (one seed, for cost). ``cache``: keep each trained (task, model,
    seed) result under ``runtime.checkpoints_dir()/urnn/``, keyed on the settings that shape it
    (not on the other seeds), so seeds or tasks run in separate processes are gathered by one
    more run that trains nothing. ``norm_sequences``: validation sequences of the first copying
    length on which :func:`hidden_state_norms` and :func:`gradient_norms_vs_time` are measured.
    """

    copy_T: tuple[int, ...] = (100, 200, 300, 500)
    adding_T: tuple[int, ...] = (100, 200, 400, 750)
    pixel_variants: tuple[str, ...] = ("plain", "permuted")
    pixel_size: int = 28
    copy_steps: int = 20_000
    adding_steps: int = 20_000
    pixel_steps: int = 100_000
    batch: int = 20
    adding_batch: int = 50
    lrs: tuple[float, ...] = (1e-3,)
    clip: float = 1.0
    small_hidden: tuple[tuple[str, int], ...] = (("urnn", 128), ("lstm", 40), ("irnn", 80), ("tanh", 80))
    adding_hidden: tuple[tuple[str, int], ...] = (("urnn", 512), ("lstm", 128), ("irnn", 128), ("tanh", 128))
    pixel_hidden: tuple[tuple[str, int], ...] = (("urnn", 512), ("lstm", 128), ("irnn", 128), ("tanh", 128))
    models: tuple[str, ...] = MODELS
    test_sequences: int = 1000
    val_sequences: int = 1000
    pixel_test_images: int | None = None
    pixel_val_images: int | None = None
    eval_every: int = 500
    norm_sequences: int = 64
    seed: int = 0
    seeds: tuple[int, ...] = ()
    threads: int | None = None
    cache: bool = False

    def __post_init__(self):
        if not isinstance(self.models, tuple) or not self.models or not set(self.models) <= set(MODELS):
            raise ValueError(f"models must be a non-empty tuple drawn from {MODELS}, got {self.models!r}")
        for name in ("copy_T", "adding_T"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 2 for t in v):
                raise ValueError(f"{name} must be a tuple of sequence lengths (ints >= 2), got {v!r}")
        for name in ("batch", "adding_batch", "test_sequences", "val_sequences", "eval_every", "pixel_size",
                     "norm_sequences"):
            _check_size(name, getattr(self, name))
        for name in ("pixel_test_images", "pixel_val_images"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive int or None (the whole split), got {v!r}")
        for name in ("copy_steps", "adding_steps", "pixel_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0 (0 skips the task), got {v!r}")
        if not set(self.pixel_variants) <= {"plain", "permuted"}:
            raise ValueError(f"pixel_variants must be drawn from ('plain', 'permuted'), got {self.pixel_variants!r}")
        if 28 % self.pixel_size:
            raise ValueError(f"pixel_size must divide 28, got {self.pixel_size}")
        if (not isinstance(self.lrs, tuple) or not self.lrs
                or not all(isinstance(lr, float) and lr > 0 for lr in self.lrs) or len(set(self.lrs)) != len(self.lrs)):
            raise ValueError(f"lrs must be a non-empty tuple of distinct learning rates > 0, got {self.lrs!r}")
        for name in ("small_hidden", "adding_hidden", "pixel_hidden"):
            _check_hidden(name, getattr(self, name), self.models)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        if (not isinstance(self.seeds, tuple) or len(set(self.seeds)) != len(self.seeds)
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.seeds)):
            raise ValueError(f"seeds must be a tuple of distinct ints >= 0 (empty: just seed), got {self.seeds!r}")
        if not isinstance(self.cache, bool):
            raise ValueError(f"cache must be True or False, got {self.cache!r}")
        for task, lengths in (("copy", self.copy_T if self.copy_steps else ()),
                              ("adding", self.adding_T if self.adding_steps else ())):
            for T in lengths:
                for s in self.run_seeds:
                    d = _data_seeds(task, s, T)
                    for held_out in ("val", "test"):
                        if d["train"] == d[held_out]:
                            raise ValueError(f"seed {s} would train the {task} problem at T = {T} on its {held_out} "
                                             f"sequences (generator seed {d['train']}); choose another seed")

    @property
    def run_seeds(self) -> tuple[int, ...]:
        """The seeds of the copying and adding runs: ``seeds``, or ``(seed,)`` when it is empty."""
        return self.seeds or (self.seed,)

    @classmethod
    def quick(cls) -> "Config":
        """CI scale, within a minute per notebook on CI's two cores: copying at T = 20 for 120
        updates, adding at T = 30 for 80 (with the copying sizes, not the authors' 512-unit uRNN
        and 128-unit baselines, for time), pixel MNIST on 7×7 images (49 steps) for 40 updates
        (500 validation and 500 test images); one learning rate, one seed."""
        return cls(copy_T=(20,), adding_T=(30,), pixel_variants=("plain",), pixel_size=7, copy_steps=120,
                   adding_steps=80, pixel_steps=40, pixel_test_images=500, pixel_val_images=500, eval_every=40,
                   adding_hidden=(("urnn", 128), ("lstm", 40), ("irnn", 80), ("tanh", 80)), threads=1)

    @classmethod
    def cpu(cls) -> "Config":
        """Two CPU cores: copying at T = 100 and adding at T = 100 for 2,000 updates each, three
        seeds (0, 1, 2), the authors' sizes for each task; pixel MNIST (plain and permuted) on 7×7
        images for 1,000 updates, one seed; learning rate 1e-3; results cached per (task, model,
        seed), so the seeds can run in separate processes. Departures: one sequence length per
        task, far fewer updates than the paper, and pixel MNIST at 7×7 (a Python loop over 784
        steps of a 512-unit complex cell is too slow here)."""
        return cls(copy_T=(100,), adding_T=(100,), pixel_size=7, copy_steps=2000, adding_steps=2000,
                   pixel_steps=1000, eval_every=250, seeds=(0, 1, 2), threads=1, cache=True)

    @classmethod
    def paper(cls) -> "Config":
        """The paper's tasks and sizes (Sec. 4), RMSProp with learning rate 1e-3 and decay 0.9,
        minibatches of 20 for copying and 50 for adding [U: batch size]; for a GPU."""
        return cls()


def _pixel(config: Config, split: str, variant: str, limit=None):
    x, y = _tasks.pixel_mnist(split, limit=limit)
    if config.pixel_size != 28:
        k = 28 // config.pixel_size
        x = _F.avg_pool2d(x.reshape(-1, 1, 28, 28), k).reshape(len(x), -1, 1)
    if variant == "permuted":
        x = x[:, _tasks.fixed_permutation(config.seed, x.shape[1])]
    return x, y


def select_by_validation(candidates, lower_is_better: bool) -> tuple[float, float]:
    """The ``(lr, validation score)`` pair of ``candidates`` with the best score: the lowest
    with ``lower_is_better``, else the highest. Ties go to the earlier candidate; a NaN score
    counts as worse than any number (all NaN: the first candidate).

    It sees nothing but these pairs, so the test data cannot enter the choice; the chosen model
    is scored on the test data afterwards (:func:`run`).

    Raises:
        TypeError / ValueError: ``lower_is_better`` is not a bool, or ``candidates`` is not a
            non-empty sequence of ``(lr, score)`` pairs of real numbers.
    """
    if not isinstance(lower_is_better, bool):
        raise TypeError(f"lower_is_better must be True or False, got {lower_is_better!r}")
    pairs = list(candidates)
    if not pairs:
        raise ValueError("candidates must be a non-empty sequence of (lr, validation score) pairs, got none")
    checked = []
    for pair in pairs:
        if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)):
            raise TypeError(f"candidates must be (lr, validation score) pairs of real numbers, got {pair!r}")
        checked.append((float(pair[0]), float(pair[1])))
    best = None
    for lr, score in checked:
        if math.isnan(score):
            continue
        if best is None or (score < best[1] if lower_is_better else score > best[1]):
            best = (lr, score)
    return best if best is not None else checked[0]


def _fit(*, lrs, seed, make, next_batch, loss_fn, validate, test, steps, eval_every, clip, device,
         lower_is_better, desc="train") -> dict:
    """Train a fresh model (``make()``, initialised from ``torch.manual_seed(seed)``) at every
    learning rate of ``lrs``, scoring it on validation data along the way (``validate(model)``,
    every ``eval_every`` updates and at the end); choose the learning rate by the final
    validation score (:func:`select_by_validation`, which receives only the ``(lr, score)``
    pairs); then, once every run is trained, score the chosen model, and only it, on the test
    data (``test(model)``).

    Returns ``{"lr", "val", "test", "curve" (the chosen run's validation score against updates),
    "seconds" (its training time), "model"}``."""
    runs = []
    for lr in lrs:
        torch.manual_seed(seed)
        model = make().to(device)
        out = _irnn.train(model, next_batch(), loss_fn, steps=steps, optimizer="rmsprop", lr=lr, clip=clip,
                          evaluate=validate, eval_every=eval_every, desc=f"{desc} lr={lr:g}")
        runs.append((lr, out, model))
    lr, val = select_by_validation([(lr, out["final"]) for lr, out, _ in runs], lower_is_better)
    _, out, model = runs[[r[0] for r in runs].index(lr)]
    return {"lr": lr, "val": val, "test": float(test(model)), "curve": out["curve"], "seconds": out["seconds"],
            "model": model}


def _copy_xent(model, x, y, n_classes, batch_size=250):
    with torch.no_grad():
        device = next(model.parameters()).device
        total = 0.0
        for i in range(0, len(x), batch_size):
            out = model(_F.one_hot(x[i:i + batch_size], n_classes + 1).float().to(device))
            total += float(_F.cross_entropy(out.reshape(-1, n_classes), y[i:i + batch_size].reshape(-1).to(device),
                                            reduction="sum"))
    return total / y.numel()


def _adding_mse(model, x, y, batch_size=250):
    with torch.no_grad():
        dev = next(model.parameters()).device
        return float(sum(((model(x[i:i + batch_size].to(dev))[:, -1] - y[i:i + batch_size].to(dev)) ** 2).sum()
                         for i in range(0, len(x), batch_size))) / len(x)


def _pixel_acc(model, x, y, batch_size=500):
    with torch.no_grad():
        dev = next(model.parameters()).device
        right = sum(int((model(x[i:i + batch_size].to(dev))[:, -1].argmax(1).cpu() == y[i:i + batch_size]).sum())
                    for i in range(0, len(x), batch_size))
    return right / len(x)


#: Bump when a unit's computation changes, so that older cached results are not reused.
_CACHE_VERSION = 1


def _unit(config: Config, key: dict, label: str, compute) -> dict:
    """``compute()`` (one trained task, model and seed: ``{"metrics", "curves", "wall_s"}``, and
    ``"model"`` when trained here), or its cached result when ``config.cache`` and an earlier run
    with the same ``key`` stored it (under ``runtime.checkpoints_dir()/urnn/``)."""
    if not config.cache:
        return compute()
    text = _json.dumps({**key, "unit": label, "version": _CACHE_VERSION}, sort_keys=True)
    path = _runtime.checkpoints_dir() / SLUG / f"{label}-{_hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
    if path.is_file():
        return _json.loads(path.read_text())
    out = compute()
    stored = {k: out[k] for k in ("metrics", "curves", "wall_s")}
    _training.write_atomic(path, lambda f: f.write(_json.dumps(stored).encode()))
    return out


def run(config: Config | None = None, *, scale: str | None = None, write: bool = True, results_dir=None,
        device=None, command: str | None = None, models: dict | None = None) -> dict:
    """Run the copying, adding and pixel-MNIST experiments for every model; write the results.

    ``metrics`` (``<task>`` is ``copy_t{T}_test_xent``, ``adding_t{T}_test_mse``,
    ``pixel_mnist_test_acc`` or ``permuted_pixel_mnist_test_acc``):

    * ``<task>.{kind}``: the test score (cross-entropy per step or MSE on ``test_sequences``
      held-out sequences, accuracy on the test images) of the model whose learning rate won on
      the validation data; for copying and adding the mean over the seeds
      (:attr:`Config.run_seeds`), with ``<task>_sd.{kind}`` (sample standard deviation, ddof 1;
      0 with one seed) and ``<task>.{kind}.seed{s}``; without suffix, the uRNN's;
    * ``val.<task>.{kind}`` (the winner's validation score, mean over seeds; per seed
      ``.seed{s}``), ``lr.<task>.{kind}`` (the grid's winner, first seed; per seed ``.seed{s}``),
      ``params.<task>.{kind}`` (trainable real parameters), ``seconds.<task>.{kind}`` (training
      time of the winning run, mean over seeds);
    * ``copy_t{T}_baseline_xent``, ``adding_baseline_mse``, ``compute_s`` (training and
      evaluation time of every run, cached ones included).

    ``curves``: ``<task>_vs_step.{kind}`` the *validation* score against updates (first seed;
    ``.seed{s}`` per seed); for the first copying length, first seed,
    ``hidden_norm_vs_t.copy.{kind}`` and ``grad_norm_vs_t.copy.{kind}`` (:func:`hidden_state_norms`
    and :func:`gradient_norms_vs_time` on ``norm_sequences`` validation sequences, against the
    step t), trained and, with ``.init``, at initialisation.

    ``models``, when given, receives the trained models, ``"<task>.{kind}"`` (first seed) and
    ``"<task>.{kind}.seed{s}"``; results taken from the cache come without a model.
    """
    study = _results.start_study(Config, config, scale, device, models)
    config, device = study.config, study.device
    seeds = config.run_seeds
    hidden = {"copy": dict(config.small_hidden), "adding": dict(config.adding_hidden),
              "pixel": dict(config.pixel_hidden)}
    metrics = {"adding_baseline_mse": _tasks.ADDING_BASELINE_MSE}
    curves = {}
    wall = []

    def clip_for(kind):
        return None if kind == "urnn" else config.clip

    def fit(kind, seed, **kw):
        t0 = _time.perf_counter()
        res = _fit(lrs=config.lrs, seed=seed, eval_every=config.eval_every, clip=clip_for(kind), device=device, **kw)
        unit = {"metrics": {"test": res["test"], "val": res["val"], "lr": res["lr"], "seconds": res["seconds"],
                            "params": count_parameters(res["model"])},
                "curves": {"vs_step": res["curve"]}, "model": res["model"]}
        return unit, t0

    def keep_model(task, kind, seed, unit):
        if models is not None and "model" in unit:
            models[f"{task}.{kind}.seed{seed}"] = unit["model"]
            if seed == seeds[0]:
                models[f"{task}.{kind}"] = unit["model"]

    def record_seeds(task, kind, units):
        per = {s: units[s]["metrics"] for s in seeds}
        tests = [per[s]["test"] for s in seeds]
        metrics[f"{task}.{kind}"] = _statistics.fmean(tests)
        metrics[f"{task}_sd.{kind}"] = _statistics.stdev(tests) if len(tests) > 1 else 0.0
        metrics[f"val.{task}.{kind}"] = _statistics.fmean(per[s]["val"] for s in seeds)
        metrics[f"lr.{task}.{kind}"] = per[seeds[0]]["lr"]
        metrics[f"params.{task}.{kind}"] = per[seeds[0]]["params"]
        metrics[f"seconds.{task}.{kind}"] = _statistics.fmean(per[s]["seconds"] for s in seeds)
        curves[f"{task}_vs_step.{kind}"] = units[seeds[0]]["curves"]["vs_step"]
        for s in seeds:
            metrics[f"{task}.{kind}.seed{s}"] = per[s]["test"]
            metrics[f"val.{task}.{kind}.seed{s}"] = per[s]["val"]
            metrics[f"lr.{task}.{kind}.seed{s}"] = per[s]["lr"]
            curves[f"{task}_vs_step.{kind}.seed{s}"] = units[s]["curves"]["vs_step"]

    def common_key(task, T, kind, seed, steps, batch):
        return {"task": task, "T": T, "kind": kind, "seed": seed, "hidden": hidden[task][kind], "steps": steps,
                "batch": batch, "lrs": list(config.lrs), "clip": clip_for(kind), "eval_every": config.eval_every,
                "test_sequences": config.test_sequences, "val_sequences": config.val_sequences}

    n_cls = 9  # copying: blank + 8 symbols are the outputs; the delimiter (9) is input only

    def copy_loss(out, y):
        return _F.cross_entropy(out.reshape(-1, n_cls), y.reshape(-1))

    for T in (config.copy_T if config.copy_steps else ()):
        task = f"copy_t{T}_test_xent"
        d = _data_seeds("copy", 0, T)
        xt, yt = _tasks.copying_problem(config.test_sequences, T, generator=torch.Generator().manual_seed(d["test"]))
        xv, yv = _tasks.copying_problem(config.val_sequences, T, generator=torch.Generator().manual_seed(d["val"]))
        x_norm = _F.one_hot(xv[:config.norm_sequences], 10).float()
        y_norm = yv[:config.norm_sequences]
        metrics[f"copy_t{T}_baseline_xent"] = _tasks.copying_baseline_xent(T)
        for kind in config.models:
            units = {}
            for seed in seeds:
                def compute(T=T, kind=kind, seed=seed, xt=xt, yt=yt, xv=xv, yv=yv, x_norm=x_norm, y_norm=y_norm):
                    def make():
                        return make_model(kind, 10, n_cls, hidden["copy"])

                    def next_batch():
                        gen = torch.Generator().manual_seed(_data_seeds("copy", seed, T)["train"])

                        def f(step):
                            x, y = _tasks.copying_problem(config.batch, T, generator=gen)
                            return _F.one_hot(x, 10).float(), y
                        return f

                    t0 = _time.perf_counter()
                    torch.manual_seed(seed)
                    init = make().to(device)
                    norms = {"hidden_norm_vs_t.init": _curve(hidden_state_norms(init, x_norm)),
                             "grad_norm_vs_t.init": _curve(gradient_norms_vs_time(init, x_norm, y_norm, copy_loss))}
                    unit, _ = fit(kind, seed, make=make, next_batch=next_batch, loss_fn=copy_loss,
                                  validate=lambda m: _copy_xent(m, xv, yv, n_cls),
                                  test=lambda m: _copy_xent(m, xt, yt, n_cls), steps=config.copy_steps,
                                  lower_is_better=True, desc=f"copy T={T} {kind} seed {seed}")
                    trained = unit["model"]
                    norms["hidden_norm_vs_t"] = _curve(hidden_state_norms(trained, x_norm))
                    norms["grad_norm_vs_t"] = _curve(gradient_norms_vs_time(trained, x_norm, y_norm, copy_loss))
                    unit["curves"].update(norms)
                    unit["wall_s"] = _time.perf_counter() - t0
                    return unit

                key = {**common_key("copy", T, kind, seed, config.copy_steps, config.batch),
                       "norm_sequences": config.norm_sequences}
                units[seed] = _unit(config, key, f"copy_t{T}_{kind}_seed{seed}", compute)
                wall.append(units[seed]["wall_s"])
                keep_model(task, kind, seed, units[seed])
            record_seeds(task, kind, units)
            if T == config.copy_T[0]:
                first = units[seeds[0]]["curves"]
                for name in ("hidden_norm_vs_t", "grad_norm_vs_t"):
                    curves[f"{name}.copy.{kind}"] = first[name]
                    curves[f"{name}.copy.{kind}.init"] = first[f"{name}.init"]
        if "urnn" in config.models:
            metrics[task] = metrics[f"{task}.urnn"]

    def adding_loss(out, y):
        return _F.mse_loss(out[:, -1], y)

    for T in (config.adding_T if config.adding_steps else ()):
        task = f"adding_t{T}_test_mse"
        d = _data_seeds("adding", 0, T)
        xt, yt = _tasks.adding_problem(config.test_sequences, T, generator=torch.Generator().manual_seed(d["test"]))
        xv, yv = _tasks.adding_problem(config.val_sequences, T, generator=torch.Generator().manual_seed(d["val"]))
        for kind in config.models:
            units = {}
            for seed in seeds:
                def compute(T=T, kind=kind, seed=seed, xt=xt, yt=yt, xv=xv, yv=yv):
                    def next_batch():
                        gen = torch.Generator().manual_seed(_data_seeds("adding", seed, T)["train"])
                        return lambda step: _tasks.adding_problem(config.adding_batch, T, generator=gen)

                    unit, t0 = fit(kind, seed, make=lambda: make_model(kind, 2, 1, hidden["adding"]),
                                   next_batch=next_batch, loss_fn=adding_loss,
                                   validate=lambda m: _adding_mse(m, xv, yv), test=lambda m: _adding_mse(m, xt, yt),
                                   steps=config.adding_steps, lower_is_better=True,
                                   desc=f"adding T={T} {kind} seed {seed}")
                    unit["wall_s"] = _time.perf_counter() - t0
                    return unit

                key = common_key("adding", T, kind, seed, config.adding_steps, config.adding_batch)
                units[seed] = _unit(config, key, f"adding_t{T}_{kind}_seed{seed}", compute)
                wall.append(units[seed]["wall_s"])
                keep_model(task, kind, seed, units[seed])
            record_seeds(task, kind, units)
        if "urnn" in config.models:
            metrics[task] = metrics[f"{task}.urnn"]

    for variant in (config.pixel_variants if config.pixel_steps else ()):
        task = "pixel_mnist_test_acc" if variant == "plain" else "permuted_pixel_mnist_test_acc"
        data = {}

        def load(data=data, variant=variant):   # only when some model is not cached
            if not data:
                data["train"] = _pixel(config, "train", variant)
                data["val"] = _pixel(config, "valid", variant, config.pixel_val_images)
                data["test"] = _pixel(config, "test", variant, config.pixel_test_images)
            return data

        for kind in config.models:
            def compute(kind=kind, load=load):
                (x_train, y_train), (x_val, y_val), (x_test, y_test) = load()["train"], load()["val"], load()["test"]

                def next_batch():
                    sampler = _training.EpochSampler(len(x_train), config.batch, seed=config.seed)

                    def f(step):
                        idx = torch.as_tensor(sampler.indices(step - 1))
                        return x_train[idx], y_train[idx]
                    return f

                unit, t0 = fit(kind, config.seed, make=lambda: make_model(kind, 1, 10, hidden["pixel"]),
                               next_batch=next_batch, loss_fn=lambda out, y: _F.cross_entropy(out[:, -1], y),
                               validate=lambda m: _pixel_acc(m, x_val, y_val),
                               test=lambda m: _pixel_acc(m, x_test, y_test), steps=config.pixel_steps,
                               lower_is_better=False, desc=f"{task} {kind}")
                unit["wall_s"] = _time.perf_counter() - t0
                return unit

            key = {"task": variant, "kind": kind, "seed": config.seed, "hidden": hidden["pixel"][kind],
                   "steps": config.pixel_steps, "batch": config.batch, "pixel_size": config.pixel_size,
                   "pixel_test_images": config.pixel_test_images, "pixel_val_images": config.pixel_val_images,
                   "lrs": list(config.lrs), "clip": clip_for(kind), "eval_every": config.eval_every}
            unit = _unit(config, key, f"{variant}_pixel_{kind}_seed{config.seed}", compute)
            wall.append(unit["wall_s"])
            m = unit["metrics"]
            metrics[f"{task}.{kind}"] = m["test"]
            metrics[f"val.{task}.{kind}"] = m["val"]
            metrics[f"lr.{task}.{kind}"] = m["lr"]
            metrics[f"params.{task}.{kind}"] = m["params"]
            metrics[f"seconds.{task}.{kind}"] = m["seconds"]
            curves[f"{task}_vs_step.{kind}"] = unit["curves"]["vs_step"]
            if models is not None and "model" in unit:
                models[f"{task}.{kind}"] = unit["model"]
        if "urnn" in config.models:
            metrics[task] = metrics[f"{task}.urnn"]

    metrics["compute_s"] = float(sum(wall))
    pixel_ran = bool(config.pixel_steps and config.pixel_variants)
    used = list(seeds) + ([config.seed] if pixel_ran and config.seed not in seeds else [])
    return study.finish(SLUG, metrics, curves, PAPER, seeds=used, command=command, write=write,
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
