r"""Synthetic sequence tasks shared by the recurrent chapters (IRNN, uRNN).

All tensors are batch-first, ``(batch, T, features)``, on the CPU (move them with ``.to``).
Every random draw goes through the ``generator`` passed in (a ``torch.Generator``; ``None``
uses torch's global generator), so equal seeds give equal batches.

* :func:`adding_problem` (Arjovsky, Shah & Bengio 2016, *Unitary Evolution Recurrent Neural
  Networks*, Sec. 4.2, after Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015 use the
  same task in Sec. 4.1; the marker placement here is the uRNN paper's). Each step carries two
  numbers: a value :math:`u_t \sim U[0, 1)` and a marker :math:`m_t \in \{0, 1\}` that is
  1 at exactly two steps, the first uniform in the first half
  :math:`[0, \lfloor T/2 \rfloor)`, the second uniform in the second half
  :math:`[\lfloor T/2 \rfloor, T)`. The target is :math:`y = \sum_t m_t u_t`. Baseline: always
  predicting :math:`1 = \mathbb E[y]` has mean squared error :math:`\operatorname{Var}(y) =
  2 \cdot \tfrac1{12} = \tfrac16 \approx 0.167` (:data:`ADDING_BASELINE_MSE`).
* :func:`copying_problem` (Arjovsky et al. 2016, Sec. 4.1, after Hochreiter & Schmidhuber).
  Categories :math:`0` (blank), :math:`1..K` (data, :math:`K = 8`) and :math:`K + 1` (delimiter,
  9). With :math:`L = 10` symbols to copy, the input, of length :math:`T + 2L`, is :math:`L`
  data symbols drawn uniformly with replacement, :math:`T - 1` blanks, the delimiter, then
  :math:`L` blanks; so the delimiter sits at (0-based) index :math:`L + (T - 1) = T + L - 1`.
  The target is :math:`T + L` blanks followed by the :math:`L` data symbols, in order: the
  model must reproduce them on the :math:`L` steps after the delimiter. Baseline: the
  memoryless strategy (blank for :math:`T + L` steps, then uniform over the :math:`K` data
  symbols) has mean cross-entropy :math:`\frac{L \log K}{T + 2L}` per step
  (:func:`copying_baseline_xent`).
* :func:`pixel_mnist` (Le et al. 2015, Sec. 4.2; Arjovsky et al. 2016, Sec. 4.3): each MNIST
  image read one pixel per step in row-major scan order, a ``(n, 784, 1)`` sequence, the label
  predicted after the last pixel. The *permuted* variant applies one fixed random permutation
  (:func:`fixed_permutation`) to the pixels of every image, which destroys the local structure
  and spreads dependencies over the whole sequence. Baseline: chance, 10% accuracy.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["ADDING_BASELINE_MSE", "adding_baseline_mse", "adding_problem", "as_sequences",
           "copying_baseline_xent", "copying_problem", "fixed_permutation", "pixel_mnist"]

#: MSE of always predicting 1 on the adding problem: the variance of a sum of two U(0, 1).
ADDING_BASELINE_MSE = 1.0 / 6.0

_SPLITS = ("train", "valid", "test")


def _check_int(name: str, value, minimum: int = 1) -> int:
    expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {expected}, got {value}")
    return int(value)


def _check_generator(generator) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def adding_problem(batch: int, T: int, *, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A batch of the adding problem: ``(inputs, target)``.

    ``inputs`` is float32 ``(batch, T, 2)``: channel 0 the values :math:`u_t \sim U[0, 1)`,
    channel 1 the marker, 1 at one step :math:`i \in [0, \lfloor T/2 \rfloor)` and one step
    :math:`j \in [\lfloor T/2 \rfloor, T)` (each uniform) and 0 elsewhere. ``target`` is float32
    ``(batch, 1)``, :math:`u_i + u_j`. For odd ``T`` the second half is one step longer.

    Raises:
        TypeError / ValueError: ``batch`` or ``T`` is not a positive int, ``T < 2`` (each half
            needs a step), or ``generator`` is not a ``torch.Generator``.
    """
    batch = _check_int("batch (number of sequences)", batch)
    T = _check_int("T (sequence length)", T)
    if T < 2:
        raise ValueError(f"T (sequence length) must be >= 2 for the adding problem (one marker in "
                         f"each half), got {T}")
    generator = _check_generator(generator)
    half = T // 2
    values = torch.rand(batch, T, generator=generator)
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, T, (batch,), generator=generator)
    rows = torch.arange(batch)
    markers = torch.zeros(batch, T)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = (values[rows, first] + values[rows, second]).unsqueeze(1)
    return torch.stack([values, markers], dim=2), target


def adding_baseline_mse() -> float:
    r"""The MSE of predicting the constant 1 on the adding problem: :math:`\operatorname{Var}(u_i +
    u_j) = \tfrac1{12} + \tfrac1{12} = \tfrac16` (Arjovsky et al. 2016, Sec. 4.2: "0.167")."""
    return ADDING_BASELINE_MSE


def copying_problem(batch: int, T: int, *, n_symbols: int = 8, length: int = 10,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A batch of the copying memory problem: ``(inputs, targets)``, both int64 ``(batch, T + 2L)``.

    Category indices (the model one-hot encodes them, ``n_symbols + 2`` classes): 0 blank,
    ``1..n_symbols`` data, ``n_symbols + 1`` delimiter (9 by default). With ``L = length``:

    * ``inputs[:, :L]`` data symbols, uniform with replacement; ``inputs[:, L:T + L - 1]`` blank
      (:math:`T - 1` steps); ``inputs[:, T + L - 1]`` the delimiter; ``inputs[:, T + L:]`` blank;
    * ``targets[:, :T + L]`` blank; ``targets[:, T + L:]`` equal to ``inputs[:, :L]``.

    ``T`` is the delay: the first output symbol is due :math:`T + L` steps after its input.

    Raises:
        TypeError / ValueError: ``batch``, ``T``, ``n_symbols`` or ``length`` is not a positive
            int, or ``generator`` is not a ``torch.Generator``.
    """
    batch = _check_int("batch (number of sequences)", batch)
    T = _check_int("T (sequence length)", T)
    n_symbols = _check_int("n_symbols (number of data symbols)", n_symbols)
    length = _check_int("length (number of symbols to copy)", length)
    generator = _check_generator(generator)
    data = torch.randint(1, n_symbols + 1, (batch, length), generator=generator)
    inputs = torch.zeros(batch, T + 2 * length, dtype=torch.int64)
    inputs[:, :length] = data
    inputs[:, T + length - 1] = n_symbols + 1
    targets = torch.zeros_like(inputs)
    targets[:, T + length:] = data
    return inputs, targets


def copying_baseline_xent(T: int, n_symbols: int = 8, length: int = 10) -> float:
    r"""Mean cross-entropy per step (nats) of the memoryless strategy on the copying problem.

    It predicts blank with probability 1 for the first :math:`T + L` steps (loss 0) and the
    uniform distribution over the :math:`K` data symbols for the last :math:`L` (loss
    :math:`\log K` each), so the mean over the :math:`T + 2L` steps is
    :math:`\frac{L \log K}{T + 2L}`: ``10 log 8 / (T + 20)`` in the paper (Sec. 4.1).
    """
    T = _check_int("T (sequence length)", T)
    n_symbols = _check_int("n_symbols (number of data symbols)", n_symbols)
    length = _check_int("length (number of symbols to copy)", length)
    return length * math.log(n_symbols) / (T + 2 * length)


def fixed_permutation(seed: int = 0, n: int = 784) -> torch.Tensor:
    """A random permutation of ``0..n-1`` (int64 ``(n,)``), the same for the same ``seed``:
    ``torch.randperm(n)`` drawn from a ``torch.Generator`` seeded with ``seed``."""
    seed = _check_int("seed", seed, minimum=0)
    n = _check_int("n (number of pixels)", n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def _check_permutation(permutation, n: int) -> torch.Tensor:
    expected = f"permutation must be a rearrangement of 0..{n - 1} (a 1-D integer tensor holding each once)"
    if not isinstance(permutation, torch.Tensor):
        raise TypeError(f"{expected}, got {type(permutation).__name__}")
    if permutation.dtype == torch.bool or permutation.is_floating_point() or permutation.is_complex():
        raise ValueError(f"{expected}, got dtype {permutation.dtype}")
    if permutation.dim() != 1 or permutation.numel() != n:
        raise ValueError(f"{expected}, got shape {tuple(permutation.shape)}")
    p = permutation.detach().to("cpu", torch.int64)
    if not torch.equal(torch.sort(p).values, torch.arange(n)):
        counts = torch.bincount(p.clamp(0, n), minlength=n + 1)[:n]
        missing = torch.nonzero(counts == 0).flatten()[:5].tolist()
        raise ValueError(f"{expected}, got values in [{int(p.min())}, {int(p.max())}] with "
                         f"{int((counts == 0).sum())} missing (first: {missing})")
    return p


def as_sequences(x: torch.Tensor, permutation: torch.Tensor | None = None) -> torch.Tensor:
    """Images ``x`` of shape ``(n, d)`` (flattened row-major, ``d = 784`` for MNIST) as pixel
    sequences ``(n, d, 1)``: step ``t`` is pixel ``t``, or pixel ``permutation[t]`` if a
    permutation is given (``x[:, permutation]``). Keeps ``x``'s dtype and device.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``x`` is not 2-d, or ``permutation`` is not a rearrangement of ``0..d-1``.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        what = f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x must be a floating-point torch.Tensor (n, pixels), got {what}")
    if x.dim() != 2:
        raise ValueError(f"x must be 2-d (n, pixels), got shape {tuple(x.shape)}")
    if permutation is not None:
        x = x[:, _check_permutation(permutation, x.shape[1]).to(x.device)]
    return x.unsqueeze(-1)


def pixel_mnist(split: str = "train", *, permutation: torch.Tensor | None = None,
                limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One MNIST split as pixel sequences: ``(x, y)`` with ``x`` float32 ``(n, 784, 1)`` (values
    ``k/256``, row-major scan order, or reordered by ``permutation``, see :func:`as_sequences`)
    and ``y`` int64 ``(n,)``. The data come from :func:`papernotes_core.data.load_mnist`
    (``split`` one of train/valid/test, 50k/10k/10k; ``limit`` keeps the first ``limit``).

    Raises:
        ValueError / TypeError: an unknown ``split``, a bad ``limit``, or a ``permutation`` that
            is not a rearrangement of ``0..783``; the loader's errors when MNIST is unavailable.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {', '.join(_SPLITS)}, got {split!r}")
    if limit is not None:
        limit = _check_int("limit", limit)
    if permutation is not None:
        _check_permutation(permutation, 784)
    from . import data  # looked up at call time (and patchable in tests)

    part = data.load_mnist(split, limit=limit)
    x = torch.as_tensor(np.asarray(part.x), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(part.y), dtype=torch.int64)
    if x.dim() != 2 or x.shape[1] != 784 or y.shape != (x.shape[0],):
        raise ValueError(f"load_mnist returned x {tuple(x.shape)} and y {tuple(y.shape)}; "
                         "expected (n, 784) and (n,)")
    return as_sequences(x, permutation), y
