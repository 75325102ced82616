"""Timing harness: interleaved repeats, medians, and the ratio of ours to a peer."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from papernotes_core import results


def time_call(fn: Callable[[], object], *, inner: int) -> float:
    """Seconds per call of ``fn``, averaged over ``inner`` back-to-back calls (CUDA-synchronised)."""
    if inner < 1:
        raise ValueError(f"inner must be >= 1, got {inner}")
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    sync()
    return (time.perf_counter() - start) / inner


def interleaved_medians(candidates: dict[str, Callable[[], object]], *, repeats: int = 15, inner: int = 10,
                        warmup: int = 3) -> dict[str, list[float]]:
    """Time every candidate ``repeats`` times, alternating A, B, A, B, ... so drift hits all alike.

    Returns each candidate's list of per-call times (seconds), one entry per repeat; the caller
    takes medians. The order within each round rotates, so none always runs first.
    """
    if repeats < 3:
        raise ValueError(f"repeats must be >= 3 for a median to mean anything, got {repeats}")
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            times[name].append(time_call(candidates[name], inner=inner))
    return times


def ratio_benchmark(name: str, ours: Callable[[], object], peer: Callable[[], object], *, peer_name: str,
                    config: dict, repeats: int = 15, inner: int = 10, device: str = "cpu",
                    write: bool = True) -> dict:
    """Time ``ours`` against ``peer`` interleaved; write ``results/bench/<name>.json``.

    ``metrics``: ``ours_s`` and ``peer_s`` (median seconds per call), ``ratio`` = ours / peer
    (below 1: ours is faster), and the ratio's spread as the 25th-75th percentile of the
    per-repeat ratios.
    """
    start = time.perf_counter()
    times = interleaved_medians({"ours": ours, "peer": peer}, repeats=repeats, inner=inner)
    per_repeat = [a / b for a, b in zip(times["ours"], times["peer"])]
    q = statistics.quantiles(per_repeat, n=4)
    data = {
        "slug": name, "scale": "bench",
        "metrics": {"ours_s": statistics.median(times["ours"]), "peer_s": statistics.median(times["peer"]),
                    "ratio": statistics.median(times["ours"]) / statistics.median(times["peer"]),
                    "ratio_q25": q[0], "ratio_q75": q[2], "repeats": repeats},
        "curves": {"ours_s": [[i, t] for i, t in enumerate(times["ours"])],
                   "peer_s": [[i, t] for i, t in enumerate(times["peer"])]},
        "paper": {},
        "provenance": results.provenance({**config, "peer": peer_name, "inner": inner,
                                          "threads": torch.get_num_threads()},
                                         [0], wall_s=time.perf_counter() - start, device=device,
                                         command=f"python -m benchmarks {name}"),
    }
    data = results.validate(data)
    if write:
        results.write(data)
    return data
