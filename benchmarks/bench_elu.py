"""ELU forward + backward: `papernotes_core.elu.elu` (plain tensor ops) against PyTorch's fused
`torch.nn.functional.elu`, on a 1M-element tensor. Shows what writing the formula out costs."""

import torch

from benchmarks.harness import ratio_benchmark
from papernotes_core import elu, runtime

NAME = "elu"


def run(write: bool = True, n: int = 1_000_000) -> dict:
    dev = runtime.device()
    runtime.seed_everything(0)
    x = torch.randn(n, device=dev, requires_grad=True)
    grad = torch.ones(n, device=dev)

    def step(fn):
        def go():
            x.grad = None
            fn(x, 1.0).backward(grad)
        return go

    return ratio_benchmark(NAME, step(elu.elu), step(torch.nn.functional.elu),
                           peer_name="torch.nn.functional.elu", config={"n": n, "what": "forward+backward"},
                           device=str(dev), write=write)
