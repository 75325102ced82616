r"""Training throughput of the chapter's language model against a bare PyTorch peer.

For the paper's ``small`` and ``medium`` models (:func:`papernotes_core.rnn_dropout.paper_models`:
200 and 650 units, 20 and 35 unrolled steps, batch 20), the same random token stream is trained on
for ``windows`` windows per timing by

* **ours**: :func:`papernotes_core.rnn_dropout.train_epoch` with :class:`~papernotes_core.rnn_dropout.LSTMLM`
  as the paper configures it (dropout 0 for small, 0.5 on the non-recurrent connections for
  medium; the state carried and detached, ``main.lua``'s summed loss, clipping, SGD);
* **peer**: the same parts with nothing of ours around them: ``nn.Embedding`` +
  ``nn.LSTM(num_layers=2)`` + ``nn.Linear`` + ``F.cross_entropy``, no dropout, the state carried
  and detached, ``clip_grad_norm_`` and ``torch.optim.SGD`` (the step every trainer needs),

timed interleaved (:func:`benchmarks.harness.interleaved_medians`). What the ratio measures is the
overhead of our code (per-layer ``nn.LSTM`` modules so that masks can go between them, the masks
themselves, the loss scaling, the loop) at the sizes the paper trains.

Writes ``results/bench/rnn_dropout.json``: ``metrics.tokens_per_s_ratio_vs_peer.<size>`` (ours /
peer tokens per second; 1 means no overhead), ``metrics.ours_tokens_per_s.<size>``,
``metrics.peer_tokens_per_s.<size>`` and the ratio's 25th-75th percentiles over the repeats.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.harness import interleaved_medians
from papernotes_core import results, runtime
from papernotes_core.data.ptb import batchify, windows
from papernotes_core.rnn_dropout import LSTMLM, paper_models, train_epoch

NAME = "rnn_dropout"


class PeerLM(nn.Module):
    """Embedding, a two-layer ``nn.LSTM``, a linear read-out: the textbook PyTorch language model."""

    def __init__(self, vocab: int, hidden: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        out, state = self.lstm(self.embed(x), state)
        return self.decoder(out), state


def _candidates(size: str, n_windows: int, dev: torch.device) -> tuple[dict, int]:
    cfg = paper_models()[size]
    stream = np.random.default_rng(0).integers(0, cfg.vocab_size, n_windows * cfg.seq_len * cfg.batch_size + 100)
    data = batchify(stream, cfg.batch_size).to(dev)
    data = data[: n_windows * cfg.seq_len + 1]
    torch.manual_seed(0)
    ours = LSTMLM(cfg).to(dev)
    ours_opt = torch.optim.SGD(ours.parameters(), lr=cfg.lr, foreach=True)
    torch.manual_seed(0)
    peer = PeerLM(cfg.vocab_size, cfg.hidden, cfg.layers).to(dev)
    peer_opt = torch.optim.SGD(peer.parameters(), lr=cfg.lr, foreach=True)

    def run_ours():
        train_epoch(ours, data, ours_opt, cfg.lr)

    def run_peer():
        peer.train()
        state = None
        for x, y in windows(data, cfg.seq_len):
            logits, state = peer(x, state)
            state = tuple(s.detach() for s in state)
            loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), y.reshape(-1))
            peer_opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(peer.parameters(), cfg.max_grad_norm, foreach=True)
            peer_opt.step()

    return {"ours": run_ours, "peer": run_peer}, n_windows * cfg.seq_len * cfg.batch_size


def run(write: bool = True, sizes: tuple[str, ...] = ("small", "medium"), windows_per_call: int = 3,
        repeats: int = 9, threads: int | None = 1) -> dict:
    """Time ours against the peer at each size on ``threads`` torch threads (``None``: as set);
    return (and with ``write``, write) the results."""
    known = tuple(paper_models())
    if not sizes or not set(sizes) <= set(known):
        raise ValueError(f"sizes must be drawn from {known}, got {sizes!r}")
    if isinstance(windows_per_call, bool) or not isinstance(windows_per_call, int) or windows_per_call < 1:
        raise ValueError(f"windows_per_call must be an int >= 1, got {windows_per_call!r}")
    if threads is not None:
        runtime.set_threads(threads)
    start = time.perf_counter()
    dev = runtime.device()
    metrics, curves = {}, {}
    for size in sizes:
        cands, tokens = _candidates(size, windows_per_call, dev)
        times = interleaved_medians(cands, repeats=repeats, inner=1, warmup=1)
        ours_s, peer_s = statistics.median(times["ours"]), statistics.median(times["peer"])
        per_repeat = [p / o for o, p in zip(times["ours"], times["peer"])]  # tokens/s ratio = peer_s / ours_s
        q = statistics.quantiles(per_repeat, n=4)
        metrics[f"tokens_per_s_ratio_vs_peer.{size}"] = peer_s / ours_s
        metrics[f"tokens_per_s_ratio_q25.{size}"] = q[0]
        metrics[f"tokens_per_s_ratio_q75.{size}"] = q[2]
        metrics[f"ours_tokens_per_s.{size}"] = tokens / ours_s
        metrics[f"peer_tokens_per_s.{size}"] = tokens / peer_s
        curves[f"ours_s.{size}"] = [[i, t] for i, t in enumerate(times["ours"])]
        curves[f"peer_s.{size}"] = [[i, t] for i, t in enumerate(times["peer"])]
    data = {
        "slug": NAME, "scale": "bench", "metrics": metrics, "curves": curves, "paper": {},
        "provenance": results.provenance(
            {"sizes": list(sizes), "windows_per_call": windows_per_call, "repeats": repeats,
             "ours": "rnn_dropout.train_epoch on LSTMLM (the paper's config: dropout 0 small, 0.5 medium)",
             "peer": "nn.Embedding + nn.LSTM(num_layers=2) + nn.Linear + F.cross_entropy, no dropout, "
                     "clip_grad_norm_ + SGD", "threads": torch.get_num_threads()},
            [0], wall_s=time.perf_counter() - start, device=str(dev), command=f"python -m benchmarks {NAME}"),
    }
    data = results.validate(data)
    if write:
        results.write(data)
    return data
