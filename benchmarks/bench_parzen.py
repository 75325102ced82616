"""Parzen-window evaluation at MNIST size: 10,000 test vectors against 10,000 samples of 784
dimensions at one fixed width, timed and its peak memory measured in a fresh process (so the
figure is that of the evaluation, not of whatever ran before). The width search (ten widths on
1,000 validation vectors, the GAN paper's protocol) is timed separately. For scale, the authors'
formulation (explicit differences broadcast over batches of 10 points, as in their
``parzen_ll.py``) is timed on the first 100 test vectors and reported per point beside ours.

Writes ``results/bench/parzen.json``: ``metrics.eval_seconds``, ``metrics.peak_gb`` (the
process's peak resident memory, Python and torch included), ``metrics.baseline_gb`` (the same
just before the evaluation: interpreter, torch and the two data matrices),
``metrics.sigma_search_seconds``, ``metrics.ours_s_per_point``, ``metrics.peer_s_per_point`` and
``metrics.ratio`` (ours / peer per point)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import torch

from papernotes_core import results

NAME = "parzen"

_CHILD = r"""
import json, math, resource, sys, time
import numpy as np
import torch
from papernotes_core import evaluation as E

n, m, d, peer_points = (int(a) for a in sys.argv[1:5])
gen = torch.Generator().manual_seed(0)
samples = torch.rand(n, d, generator=gen)
test = torch.rand(m, d, generator=gen)
valid = torch.rand(1000, d, generator=gen)
sigma = 0.2

def rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # Linux: KiB

baseline = rss_gb()
t0 = time.perf_counter()
ll = E.parzen_log_likelihood(test, samples, sigma)
eval_s = time.perf_counter() - t0
peak = rss_gb()
t0 = time.perf_counter()
best, _ = E.parzen_sigma_search(valid, samples, np.logspace(-1, 0, 10))
search_s = time.perf_counter() - t0

# the authors' formulation: (x[:, None, :] - mu[None, :, :]) / sigma over batches of 10 points
def peer(x):
    a = (x[:, None, :].double() - samples[None, :, :].double()) / sigma
    e = -0.5 * (a ** 2).sum(2)
    mx = e.max(1).values
    return mx + torch.log(torch.exp(e - mx[:, None]).mean(1)) - d * math.log(sigma * math.sqrt(2 * math.pi))

t0 = time.perf_counter()
ref = torch.cat([peer(test[i:i + 10]) for i in range(0, peer_points, 10)])
peer_s = time.perf_counter() - t0
err = float((ref - ll[:peer_points]).abs().max())
print(json.dumps({"eval_s": eval_s, "peak_gb": peak, "baseline_gb": baseline, "search_s": search_s,
                  "best_sigma": best, "peer_s": peer_s, "max_abs_diff_vs_peer": err,
                  "threads": torch.get_num_threads(), "mean_ll": float(ll.mean())}))
"""


def run(write: bool = True, n: int = 10_000, m: int = 10_000, d: int = 784, peer_points: int = 100) -> dict:
    """Run the benchmark in a child process; return (and with ``write``, write) the results."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(n), str(m), str(d), str(peer_points)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the Parzen benchmark's child process failed:\n{proc.stderr[-2000:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    ours_pp, peer_pp = child["eval_s"] / m, child["peer_s"] / peer_points
    data = {
        "slug": NAME, "scale": "bench",
        "metrics": {"eval_seconds": child["eval_s"], "peak_gb": child["peak_gb"],
                    "baseline_gb": child["baseline_gb"], "sigma_search_seconds": child["search_s"],
                    "ours_s_per_point": ours_pp, "peer_s_per_point": peer_pp, "ratio": ours_pp / peer_pp,
                    "max_abs_diff_vs_peer": child["max_abs_diff_vs_peer"]},
        "curves": {},
        "paper": {},
        "provenance": results.provenance(
            {"samples": n, "test_points": m, "dim": d, "sigma": 0.2, "dtype": "float64", "batch_size": 1000,
             "sigma_grid": "logspace(-1, 0, 10) on 1000 validation points", "peer": "explicit differences, "
             "batches of 10 (the authors' parzen_ll.py formulation)", "peer_points": peer_points,
             "threads": child["threads"]},
            [0], wall_s=time.perf_counter() - start, device="cpu", command=f"python -m benchmarks {NAME}"),
    }
    data = results.validate(data)
    if write:
        results.write(data)
    return data
