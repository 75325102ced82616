"""A tiny training run for the kill-and-resume test in ``test_training.py``.

Run as a script, it trains (or resumes training of) a small MLP with dropout, SGD with momentum
and a step LR schedule, over a fixed random data set drawn through an ``EpochSampler``, and
prints ``step <step> <loss>`` after every step, so the test can kill it midway. ``build`` is also
imported by the in-process tests, so both use the same setup.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from papernotes_core.runtime import seed_everything
from papernotes_core.training import EpochSampler

N, DIM, CLASSES, BATCH = 96, 8, 3, 20  # 5 steps per epoch, the last batch of each holds 16


def build(
    optimizer: str = "sgd", sleep: float = 0.0
) -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler,
           Callable[[int], torch.Tensor]]:
    """A fresh model, optimizer, scheduler and ``loss_at_step``, the same at every call."""
    torch.set_num_threads(1)
    seed_everything(0)
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(N, DIM, generator=g)
    y = torch.randint(0, CLASSES, (N,), generator=g)
    model = nn.Sequential(nn.Linear(DIM, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, CLASSES))
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.7)
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-2, total_steps=200)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    sampler = EpochSampler(N, BATCH, seed=7)

    def loss_at_step(step: int) -> torch.Tensor:
        if sleep:
            time.sleep(sleep)
        idx = torch.from_numpy(sampler.indices(step))
        return F.cross_entropy(model(x[idx]), y[idx])

    return model, opt, sched, loss_at_step


def main() -> None:
    from papernotes_core.training import fit

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--every", type=int, required=True)
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args()

    model, opt, sched, loss_at_step = build("sgd", sleep=args.sleep)
    fit(
        model,
        opt,
        loss_at_step,
        args.steps,
        checkpoint_path=args.checkpoint,
        checkpoint_every=args.every,
        scheduler=sched,
        on_log=lambda step, loss: print(f"step {step} {loss!r}", flush=True),
    )
    print("done", flush=True)


if __name__ == "__main__":
    main()
