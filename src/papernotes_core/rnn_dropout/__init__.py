r"""The chapter *Recurrent Neural Network Regularization* (Zaremba, Sutskever & Vinyals, 2014).

The model, its dropout and its training are in :mod:`~papernotes_core.rnn_dropout.model`
(re-exported here); this module holds the study: :class:`Config` at three scales and
:func:`run`, which

1. **reproduces** the paper's language models on the Penn Treebank (:func:`paper_models`:
   ``small`` and ``large`` as in ``main.lua``, ``medium`` as in Sec. 4.1), each trained for its
   epochs and reported as the perplexity on the whole test split after the last epoch, as
   ``main.lua`` does (``test_ppl.<model>``; ``val_ppl_last.<model>`` beside it);
2. **tests the paper's two claims** at one width: (a) without dropout the network over-fits
   (its validation perplexity turns up after a few epochs) while with the paper's dropout it keeps
   improving; (b) dropping the recurrent connections as well learns worse than the paper's
   placement. Every placement is trained with the same schedule (a constant step, so that a
   decay cannot hide over-fitting) for ``claim_seeds``; the dropout rate of each dropout
   placement is chosen on validation from ``claim_dropouts`` with the first seed. Reported: the
   best validation perplexity of each run, mean and sd over seeds (``val_ppl.<placement>``,
   ``val_ppl_sd.<placement>``), and Welch's test of each difference.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import results, runtime, training
from ..data.ptb import batchify, load_ptb
from ..evaluation import welch_t_test
from .model import (PLACEMENTS, LMConfig, LSTMLM, evaluate, lr_at_epoch, paper_models, perplexity,
                    sequence_loss, train_epoch)

__all__ = ["PAPER", "PARTS", "PLACEMENTS", "SLUG", "Config", "LMConfig", "LSTMLM", "evaluate", "lr_at_epoch",
           "main", "paper_models", "perplexity", "run", "sequence_loss", "train_epoch", "train_model"]

SLUG = "rnn_dropout"
#: The parts of the study, for splitting it over processes (``--parts``).
PARTS = ("reproduce", "no_dropout", "selection", "context")


def _opt_tokens(name: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 100):
        raise ValueError(f"{name} must be None (the whole split) or an int >= 100 tokens, got {value!r}")


@dataclass(frozen=True)
class Config:
    """The chapter's experiments at one scale.

    Reproduction: ``models`` (names of :func:`paper_models`), trained on the first
    ``train_tokens`` training tokens (``None``: all 929,589) for ``epochs`` epochs (``None``: the
    paper's), evaluated on the first ``valid_tokens`` / ``test_tokens`` of those splits.

    Claims: an LSTM of ``claim_hidden`` units per layer (init ``claim_init``, step
    ``claim_lr`` held constant, clipping ``claim_clip``, ``claim_seq_len`` steps, batch 20)
    trained on the first ``claim_train_tokens`` training tokens for ``claim_epochs`` epochs,
    validated after each on the first ``valid_tokens`` validation tokens; for each placement of
    :data:`PLACEMENTS` over ``claim_seeds``, the two dropout placements at the rate from
    ``claim_dropouts`` that gives the best validation perplexity with ``claim_seeds[0]``.

    ``context_probe``: context lengths at which the first seed's model of each placement (at its
    chosen rate, trained again, so that the model is at hand) is also validated with its state
    zeroed every that many tokens (:func:`evaluate` with ``context``): how much each placement
    uses what it remembers (one seed; part ``"context"``).

    ``parts``: which of :data:`PARTS` to run; ``cache``: keep each trained run's numbers beside
    the checkpoints, so a study split over processes (``--parts``) is gathered by one more run
    that trains nothing.
    """

    models: tuple[str, ...] = ("small", "medium", "large")
    epochs: int | None = None
    train_tokens: int | None = None
    valid_tokens: int | None = None
    test_tokens: int | None = None
    claim_hidden: int = 650
    claim_init: float = 0.05
    claim_lr: float = 1.0
    claim_clip: float = 5.0
    claim_seq_len: int = 35
    claim_epochs: int = 15
    claim_train_tokens: int | None = None
    claim_dropouts: tuple[float, ...] = (0.3, 0.5, 0.65)
    claim_seeds: tuple[int, ...] = (0, 1, 2)
    context_probe: tuple[int, ...] = ()
    parts: tuple[str, ...] = PARTS
    seed: int = 0
    threads: int | None = None
    cache: bool = False

    def __post_init__(self):
        known = tuple(paper_models())
        if not isinstance(self.models, tuple) or not set(self.models) <= set(known):
            raise ValueError(f"models must be a tuple drawn from {known}, got {self.models!r}")
        if self.epochs is not None and (isinstance(self.epochs, bool) or not isinstance(self.epochs, int)
                                        or self.epochs < 1):
            raise ValueError(f"epochs must be None (the paper's) or an int >= 1, got {self.epochs!r}")
        for name in ("train_tokens", "valid_tokens", "test_tokens", "claim_train_tokens"):
            _opt_tokens(name, getattr(self, name))
        for name in ("claim_hidden", "claim_seq_len", "claim_epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        for name in ("claim_init", "claim_lr", "claim_clip"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a number > 0, got {v!r}")
        if (not isinstance(self.claim_dropouts, tuple) or not self.claim_dropouts
                or not all(isinstance(p, float) and 0 < p < 1 for p in self.claim_dropouts)):
            raise ValueError(f"claim_dropouts must be a non-empty tuple of rates in (0, 1), got {self.claim_dropouts!r}")
        if (not isinstance(self.claim_seeds, tuple) or not self.claim_seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.claim_seeds)
                or len(set(self.claim_seeds)) != len(self.claim_seeds)):
            raise ValueError(f"claim_seeds must be a non-empty tuple of distinct ints >= 0, got {self.claim_seeds!r}")
        if not isinstance(self.context_probe, tuple) or not all(
                isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in self.context_probe):
            raise ValueError(f"context_probe must be a tuple of context lengths (ints >= 1), got {self.context_probe!r}")
        if not isinstance(self.parts, tuple) or not set(self.parts) <= set(PARTS):
            raise ValueError(f"parts must be a tuple drawn from {PARTS}, got {self.parts!r}")

    def model(self, name: str) -> LMConfig:
        """The ``LMConfig`` trained for paper model ``name`` at this scale."""
        cfg = paper_models()[name]
        return cfg if self.epochs is None else dataclasses.replace(cfg, epochs=self.epochs)

    def claim_model(self, placement: str, dropout: float) -> LMConfig:
        """The ``LMConfig`` of the claims' runs for ``placement`` at rate ``dropout``."""
        return LMConfig(hidden=self.claim_hidden, dropout=0.0 if placement == "no_dropout" else dropout,
                        placement=placement, init=self.claim_init, lr=self.claim_lr, decay=1.0,
                        max_epoch=0, epochs=self.claim_epochs, max_grad_norm=self.claim_clip,
                        seq_len=self.claim_seq_len)

    @classmethod
    def quick(cls) -> "Config":
        """CI scale (under a minute on two cores), on *slices* of the corpus: the small model for
        2 epochs on the first 24,000 training tokens; the claims at 64 units, 2 epochs on the
        first 10,000 training tokens, one seed, one dropout rate; validation and test on their
        first 10,000 tokens. It shows the code paths work; its perplexities (hundreds) say nothing about
        the paper's. The notebook draws the claims from the committed ``cpu`` results."""
        return cls(models=("small",), epochs=2, train_tokens=24_000, valid_tokens=10_000, test_tokens=10_000,
                   claim_hidden=64, claim_init=0.1, claim_seq_len=20, claim_epochs=2, claim_train_tokens=10_000,
                   claim_dropouts=(0.3,), claim_seeds=(0,), threads=1)

    @classmethod
    def cpu(cls) -> "Config":
        """Two CPU cores: the small model on the full corpus for its 13 epochs (about an hour on one
        core); the claims at 200 units (init 0.1, 20 steps, step 1, clip 5) for 8 epochs on the
        first quarter of the training tokens (232,397: a slice, so that a network of this width
        over-fits within the budget), validated on the whole validation split, seeds 0, 1, 2,
        dropout rate chosen from 0.3 and 0.5; and the context probe at 1, 2, 5, 10, 20 and 50
        tokens (seed 0)."""
        return cls(models=("small",), claim_hidden=200, claim_init=0.1, claim_seq_len=20, claim_epochs=8,
                   claim_train_tokens=929_589 // 4, claim_dropouts=(0.3, 0.5), context_probe=(1, 2, 5, 10, 20, 50),
                   threads=1, cache=True)

    @classmethod
    def paper(cls) -> "Config":
        """The paper's three models on the full corpus (for a GPU), and the claims at the medium
        model's width (650 units, 35 steps, init 0.05) on the full corpus for 15 epochs, with the
        context probe."""
        return cls(context_probe=(1, 2, 5, 10, 20, 50), cache=True)


def train_model(config: LMConfig, train_tokens, valid_tokens, *, seed: int, device=None, desc: str = "",
                on_epoch=None, checkpoint=None) -> tuple[LSTMLM, dict]:
    """Train one :class:`LSTMLM` as ``main.lua`` does (:func:`train_epoch` for ``config.epochs``
    epochs, the step from :func:`lr_at_epoch`), validating after each epoch on the whole
    ``valid_tokens`` stream. Returns the model and ``{"val_ppl": [...], "train_ppl": [...], "lr":
    [...], "seconds": s, "tokens_per_s": ...}`` (one entry per epoch).

    ``checkpoint``: a file to which the model, optimizer, history and torch's RNG state are
    written (atomically) after every epoch, and from which a new call with the same arguments
    resumes (a recycled Colab VM, a killed job); on the CPU the resumed run is bit-for-bit the
    uninterrupted one."""
    device = device or runtime.device()
    torch.manual_seed(seed)
    model = LSTMLM(config).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, foreach=True)
    data = batchify(train_tokens, config.batch_size, config.vocab_size).to(device)
    hist = {"val_ppl": [], "train_ppl": [], "lr": []}
    t0, train_s, tokens, start = time.perf_counter(), 0.0, 0, 1
    if checkpoint is not None and Path(checkpoint).is_file():
        state = training.load_checkpoint(checkpoint, map_location="cpu")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        hist = {k: list(v) for k, v in state["hist"].items()}
        train_s, tokens, start = state["train_s"], state["tokens"], state["epoch"] + 1
        torch.set_rng_state(state["rng"])
        if torch.cuda.is_available() and "cuda_rng" in state:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
    n_per_epoch = ((data.shape[0] - 1) // config.seq_len) * config.seq_len * config.batch_size
    with training.progress(total=n_per_epoch * config.epochs, initial=n_per_epoch * (start - 1),
                           desc=desc or f"LSTM {config.hidden}", unit="tok") as bar:
        for epoch in range(start, config.epochs + 1):
            lr = lr_at_epoch(config, epoch)
            out = train_epoch(model, data, optimizer, lr, progress=bar)
            train_s += out["seconds"]
            tokens += out["tokens"]
            val = evaluate(model, valid_tokens)
            hist["val_ppl"].append(val)
            hist["train_ppl"].append(out["train_ppl"])
            hist["lr"].append(lr)
            bar.set_postfix(epoch=epoch, val_ppl=f"{val:.1f}")
            if checkpoint is not None:
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "hist": hist,
                         "train_s": train_s, "tokens": tokens, "epoch": epoch, "rng": torch.get_rng_state()}
                if torch.cuda.is_available():
                    state["cuda_rng"] = torch.cuda.get_rng_state_all()
                training.save_checkpoint(checkpoint, state)
            if on_epoch is not None:
                on_epoch(epoch, hist)
    hist["seconds"] = time.perf_counter() - t0
    hist["tokens_per_s"] = tokens / train_s
    return model, hist


def _cached(config: Config, key: dict, label: str, compute) -> dict:
    """``compute(checkpoint)`` (one trained run's JSON-able numbers), or its cached copy when
    ``config.cache`` and an earlier run with the same ``key`` stored it; with ``config.cache``
    the run also checkpoints every epoch beside it (``<label>-<digest>.pt``) and resumes from
    there, and the checkpoint is removed once the numbers are stored."""
    if not config.cache:
        return compute(None)
    path = training.unit_cache_path(runtime.checkpoints_dir() / SLUG, label, key)
    ckpt = path.with_suffix(".pt")
    out = training.cached_json(path, lambda: compute(ckpt))
    ckpt.unlink(missing_ok=True)
    return out


def _slice(tokens: np.ndarray, n: int | None) -> np.ndarray:
    return tokens if n is None else tokens[:n]


def run(config: Config | None = None, *, scale: str | None = None, write: bool = True, results_dir=None,
        device=None, command: str | None = None, models: dict | None = None) -> dict:
    """Run the study of ``config`` (see the module doc); write and return the results.

    ``metrics``: ``test_ppl.<model>``, ``val_ppl_last.<model>``, ``tokens_per_s.<model>`` for the
    reproduced models; ``val_ppl.<placement>`` and ``val_ppl_sd.<placement>`` (best validation
    perplexity per run, mean and sd over the seeds), ``val_ppl.<placement>.seed<s>``,
    ``best_epoch.<placement>.seed<s>``, ``val_ppl_rise.<placement>`` (last minus best, mean over
    seeds: how far the curve turned back up), ``dropout_rate.<placement>`` (chosen on validation)
    and ``val_ppl_grid.<placement>.p<rate>`` (the selection), ``welch_p.<a>_vs_<b>``.
    ``curves``: ``val_ppl_vs_epoch.<model or placement>[.seed<s>]`` and ``train_ppl_vs_epoch...``.
    """
    study = results.start_study(Config, config, scale, models=models, device=device)
    config, device = study.config, study.device
    corpus = load_ptb()
    valid = _slice(corpus.valid, config.valid_tokens)
    test = _slice(corpus.test, config.test_tokens)
    metrics, curves = {}, {}

    if "reproduce" in config.parts:
        for name in config.models:
            cfg = config.model(name)
            key = {"unit": "reproduce", "model": cfg.as_dict(), "seed": config.seed,
                   "train_tokens": config.train_tokens, "valid_tokens": config.valid_tokens,
                   "test_tokens": config.test_tokens, "version": 1}

            def compute(ckpt, cfg=cfg, name=name):
                model, hist = train_model(cfg, _slice(corpus.train, config.train_tokens), valid, seed=config.seed,
                                          device=device, desc=f"{name} LSTM", checkpoint=ckpt)
                if models is not None:
                    models[name] = model
                return {**hist, "test_ppl": evaluate(model, test)}

            out = _cached(config, key, f"reproduce_{name}", compute)
            metrics[f"test_ppl.{name}"] = out["test_ppl"]
            metrics[f"val_ppl_last.{name}"] = out["val_ppl"][-1]
            metrics[f"tokens_per_s.{name}"] = out["tokens_per_s"]
            metrics[f"seconds.{name}"] = out["seconds"]
            curves[f"val_ppl_vs_epoch.{name}"] = [[e + 1, v] for e, v in enumerate(out["val_ppl"])]
            curves[f"train_ppl_vs_epoch.{name}"] = [[e + 1, v] for e, v in enumerate(out["train_ppl"])]
            curves[f"lr_vs_epoch.{name}"] = [[e + 1, v] for e, v in enumerate(out["lr"])]

    claim_train = _slice(corpus.train, config.claim_train_tokens)

    def claim_run(placement: str, rate: float, seed: int) -> dict:
        cfg = config.claim_model(placement, rate)
        key = {"unit": "claim", "model": cfg.as_dict(), "seed": seed, "train_tokens": config.claim_train_tokens,
               "valid_tokens": config.valid_tokens, "version": 1}

        def compute(ckpt):
            model, hist = train_model(cfg, claim_train, valid, seed=seed, device=device,
                                      desc=f"{placement} p={cfg.dropout} seed {seed}", checkpoint=ckpt)
            if models is not None:
                models[f"{placement}.p{cfg.dropout}.seed{seed}"] = model
            return hist
        return _cached(config, key, f"claim_{placement}", compute)

    first = config.claim_seeds[0]

    def select(placement: str) -> tuple[float, dict]:
        """The rate of ``placement`` with the best validation perplexity on the first seed."""
        grid = {p: claim_run(placement, p, first) for p in config.claim_dropouts}
        for p, h in grid.items():
            metrics[f"val_ppl_grid.{placement}.p{p}"] = min(h["val_ppl"])
        chosen = min(grid, key=lambda p: min(grid[p]["val_ppl"]))
        metrics[f"dropout_rate.{placement}"] = chosen
        return chosen, grid

    runs: dict[str, dict[int, dict]] = {}
    if "no_dropout" in config.parts:
        runs["no_dropout"] = {s: claim_run("no_dropout", 0.0, s) for s in config.claim_seeds}
    if "selection" in config.parts:
        for placement in ("dropout", "recurrent_dropout"):
            chosen, grid = select(placement)
            runs[placement] = {s: grid[chosen] if s == first else claim_run(placement, chosen, s)
                               for s in config.claim_seeds}
    if "context" in config.parts and config.context_probe:
        for placement in ("dropout", "recurrent_dropout", "no_dropout"):  # the last one's runs come last
            rate = 0.0 if placement == "no_dropout" else select(placement)[0]
            cfg = config.claim_model(placement, rate)
            key = {"unit": "probe", "model": cfg.as_dict(), "seed": first, "train_tokens": config.claim_train_tokens,
                   "valid_tokens": config.valid_tokens, "contexts": list(config.context_probe), "version": 1}

            def probe(ckpt, cfg=cfg, placement=placement):
                model, hist = train_model(cfg, claim_train, valid, seed=first, device=device,
                                          desc=f"probe {placement} p={cfg.dropout}", checkpoint=ckpt)
                return {**hist, "context_ppl": [[k, evaluate(model, valid, context=k)]
                                                for k in config.context_probe]}
            out = _cached(config, key, f"probe_{placement}", probe)
            curve = out["context_ppl"] + [[None, out["val_ppl"][-1]]]
            for k, v in curve:
                metrics[f"context_ppl.{placement}." + ("full" if k is None else f"c{k}")] = v
            curves[f"val_ppl_vs_context.{placement}"] = out["context_ppl"]
            # the probe trains the first seed's run again: it must reproduce that run's curve
            again = claim_run(placement, rate, first)["val_ppl"]
            metrics[f"probe_vs_run_max_diff.{placement}"] = float(np.max(np.abs(np.subtract(out["val_ppl"], again))))
            metrics[f"seconds.probe.{placement}"] = out["seconds"]

    best = {}
    for placement, per_seed in runs.items():
        vals = []
        for s, h in per_seed.items():
            b = int(np.argmin(h["val_ppl"]))
            vals.append(h["val_ppl"][b])
            metrics[f"val_ppl.{placement}.seed{s}"] = h["val_ppl"][b]
            metrics[f"best_epoch.{placement}.seed{s}"] = float(b + 1)
            curves[f"val_ppl_vs_epoch.{placement}.seed{s}"] = [[e + 1, v] for e, v in enumerate(h["val_ppl"])]
            curves[f"train_ppl_vs_epoch.{placement}.seed{s}"] = [[e + 1, v] for e, v in enumerate(h["train_ppl"])]
            metrics[f"seconds.claim.{placement}.seed{s}"] = h["seconds"]
        best[placement] = vals
        metrics[f"val_ppl.{placement}"] = float(np.mean(vals))
        metrics[f"val_ppl_sd.{placement}"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
        metrics[f"val_ppl_rise.{placement}"] = float(np.mean([h["val_ppl"][-1] - min(h["val_ppl"])
                                                              for h in per_seed.values()]))
        metrics[f"seeds.{placement}"] = float(len(vals))
    for a, b in (("dropout", "no_dropout"), ("dropout", "recurrent_dropout")):
        if a in best and b in best and len(best[a]) > 1 and len(best[b]) > 1:
            metrics[f"welch_p.{a}_vs_{b}"] = welch_t_test(best[a], best[b]).p
    metrics["compute_s"] = sum(v for k, v in metrics.items() if k.startswith("seconds."))
    seeds = sorted({config.seed, *config.claim_seeds})
    return study.finish(SLUG, metrics, curves, PAPER, seeds=seeds, command=command, write=write,
                        results_dir=results_dir)


PAPER = {
    "test_ppl.small": {"value": 114.5, "status": "V", "source": "Table 1: non-regularized LSTM, test"},
    "val_ppl_last.small": {"value": 120.7, "status": "V", "source": "Table 1: non-regularized LSTM, validation"},
    "test_ppl.medium": {"value": 82.7, "status": "V", "source": "Table 1: medium regularized LSTM, test"},
    "val_ppl_last.medium": {"value": 86.2, "status": "V", "source": "Table 1: medium regularized LSTM, validation"},
    "test_ppl.large": {"value": 78.4, "status": "V", "source": "Table 1: large regularized LSTM, test"},
    "val_ppl_last.large": {"value": 82.2, "status": "V", "source": "Table 1: large regularized LSTM, validation"},
    "test_ppl.ensemble38": {"value": 68.7, "status": "V", "source": "Table 1: 38 large regularized LSTMs, test"},
}


def main(argv: list[str] | None = None) -> int:
    """``python -m papernotes_core.rnn_dropout [--parts reproduce no_dropout selection] [--no-write]``
    at ``PAPERNOTES_SCALE``. ``--parts`` runs some parts of the study (e.g. in two processes,
    with ``--no-write``); with ``Config.cache`` a final run without it gathers their results
    without training again."""
    return runtime.study_main(SLUG, Config, run, argv, narrow=runtime.narrow_to("parts", PARTS),
                              description=main.__doc__)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
