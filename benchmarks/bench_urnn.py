r"""The uRNN's structured recurrent step against a dense complex one, as the hidden size grows.

For each :math:`N` in ``sizes`` (default 128 ... 4096) and a fixed batch of 20 states (our
choice, a typical RNN mini-batch; not taken from the paper), one forward + backward pass of

* **urnn**: :math:`h \mapsto \sigma_{\text{modReLU}}(W h)` with
  :math:`W = D_3 R_2 \mathcal F^{-1} D_2 \Pi R_1 \mathcal F D_1` applied by
  :func:`papernotes_core.urnn.unitary_apply` (:math:`O(N \log N)` per state, :math:`7N`
  parameters);
* **dense**: :math:`h \mapsto \sigma_{\text{modReLU}}(A h)`, i.e. ``h @ A.T``, with a dense
  learnable complex :math:`A \in \mathbb C^{N \times N}` (:math:`O(N^2)` per state,
  :math:`2N^2` parameters),

both in complex64, both with the state and every parameter requiring a gradient (so the
backward pass computes what backpropagation through time needs: the gradient to the previous
state and to the parameters), the same modReLU with a learnable bias after both, and the
backward pass seeded with a fixed random complex cotangent. The two are timed interleaved
(:func:`benchmarks.harness.interleaved_medians`) on :func:`runtime.device` (the harness
synchronises CUDA around every timing).

Writes ``results/bench/urnn.json``:

* ``curves.urnn_s_vs_n`` / ``curves.dense_s_vs_n``: ``[[N, median seconds per step], ...]``;
* ``metrics.exponent_urnn`` / ``metrics.exponent_dense``: the slope :math:`k` of the least-squares
  line :math:`\log t = a + k \log N` over the sizes :math:`N \ge 512` (over all sizes if fewer
  than two are that large; ``config.fit_min_n`` says which). Theory: about 1 (:math:`N\log N`)
  and 2; at small :math:`N` per-call overheads flatten both;
* ``metrics.speedup_n2048``: dense time / uRNN time at :math:`N = 2048` (present when 2048 is
  among the sizes), and ``metrics.speedup_largest_n`` the same at the largest size.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from benchmarks.harness import interleaved_medians, time_call
from papernotes_core import results, runtime
from papernotes_core.urnn import UnitaryRNNCell, modrelu

NAME = "urnn"
FIT_MIN_N = 512
#: Each timing runs ``inner`` steps back to back, chosen so the faster candidate takes about this long.
TARGET_TIMING_S = 0.02


def _fit_exponent(ns: list[int], ts: list[float]) -> float:
    r"""Least-squares slope of :math:`\log t` against :math:`\log N`."""
    x = [math.log(n) for n in ns]
    y = [math.log(t) for t in ts]
    mx, my = statistics.fmean(x), statistics.fmean(y)
    sxx = sum((a - mx) ** 2 for a in x)
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx


def _candidates(n: int, batch: int, dev: torch.device) -> dict:
    gen = torch.Generator().manual_seed(n)
    cell = UnitaryRNNCell(1, n, perm_seed=n).to(dev)
    h = torch.complex(torch.randn(batch, n, generator=gen), torch.randn(batch, n, generator=gen)).to(dev)
    h.requires_grad_(True)
    cot = torch.complex(torch.randn(batch, n, generator=gen), torch.randn(batch, n, generator=gen)).to(dev)
    a = (torch.complex(torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen))
         / math.sqrt(2 * n)).to(dev).requires_grad_(True)
    bias = torch.zeros(n, device=dev, requires_grad=True)
    params = [*cell.parameters(), a, bias, h]

    def clear():
        for p in params:
            p.grad = None

    def urnn():
        clear()
        modrelu(cell.recurrent(h), cell.bias).backward(cot)

    def dense():
        clear()
        modrelu(h @ a.T, bias).backward(cot)

    return {"urnn": urnn, "dense": dense}


def run(write: bool = True, sizes: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096), batch: int = 20,
        repeats: int = 7) -> dict:
    """Time both steps at every size in ``sizes``; return (and with ``write``, write) the results."""
    sizes = tuple(sizes)
    if len(sizes) < 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
        raise ValueError(f"sizes must be at least two positive ints, got {sizes!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    start = time.perf_counter()
    dev = runtime.device()
    runtime.seed_everything(0)
    sizes = tuple(sorted(set(sizes)))
    med: dict[str, list[float]] = {"urnn": [], "dense": []}
    inners = []
    for n in sizes:
        cands = _candidates(n, batch, dev)
        for fn in cands.values():  # first calls (allocations, FFT plans) before the pilot
            fn()
        pilot = min(time_call(fn, inner=1) for fn in cands.values())
        inner = max(1, min(100, math.ceil(TARGET_TIMING_S / max(pilot, 1e-9))))
        inners.append(inner)
        times = interleaved_medians(cands, repeats=repeats, inner=inner, warmup=1)
        for name in med:
            med[name].append(statistics.median(times[name]))
    fit = [i for i, n in enumerate(sizes) if n >= FIT_MIN_N]
    fit_min_n = FIT_MIN_N if len(fit) >= 2 else sizes[0]
    if len(fit) < 2:
        fit = list(range(len(sizes)))
    metrics = {
        "exponent_urnn": _fit_exponent([sizes[i] for i in fit], [med["urnn"][i] for i in fit]),
        "exponent_dense": _fit_exponent([sizes[i] for i in fit], [med["dense"][i] for i in fit]),
        "speedup_largest_n": med["dense"][-1] / med["urnn"][-1],
    }
    if 2048 in sizes:
        i = sizes.index(2048)
        metrics["speedup_n2048"] = med["dense"][i] / med["urnn"][i]
    data = {
        "slug": NAME, "scale": "bench",
        "metrics": metrics,
        "curves": {"urnn_s_vs_n": [[n, t] for n, t in zip(sizes, med["urnn"])],
                   "dense_s_vs_n": [[n, t] for n, t in zip(sizes, med["dense"])]},
        "paper": {},
        "provenance": results.provenance(
            {"sizes": list(sizes), "batch": batch, "repeats": repeats, "inner": inners, "dtype": "complex64",
             "what": "forward+backward of one recurrent step, modReLU after both, state and parameters "
                     "requiring grad",
             "urnn": "unitary_apply: D3 R2 F^-1 D2 Pi R1 F D1 (torch.fft, ortho)",
             "dense": "h @ A.T, A dense learnable complex N x N", "fit_min_n": fit_min_n,
             "threads": torch.get_num_threads()},
            [0], wall_s=time.perf_counter() - start, device=str(dev), command=f"python -m benchmarks {NAME}"),
    }
    data = results.validate(data)
    if write:
        results.write(data)
    return data
