"""The Byte-to-Span network: one LSTM stack reads a segment's bytes, GO, then its own outputs.

Gillick et al. (2016), Fig. 1: the model "reads the input segment one byte at a time …, then a
special Generate Output (GO) symbol, then produces the argmax output of a softmax over all
possible start positions, lengths, and labels (as well as STOP …). The prediction from the
previous time step is fed as an input to the next time step." So there is one recurrent stack
and one input sequence, ``x_1 … x_n, GO, y_1, …, y_{m-1}``, and the loss is

.. math::

    -\\sum_{t=1}^{m} \\log p(y_t \\mid x_{1:n}, \\mathrm{GO}, y_{1:t-1}),

computed with the true previous outputs while training (teacher forcing). Input symbols share
one embedding table: 256 byte values, PAD, DROP (a dropped byte), GO, then the output symbols.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .spans import BYTE_VOCAB, GO, PAD

__all__ = ["ByteToSpan"]


class ByteToSpan(nn.Module):
    """``layers`` LSTM layers of ``hidden`` units over ``embed``-dimensional symbol embeddings,
    a softmax over ``n_out`` output symbols; ``dropout`` between layers and on the embeddings.
    ``reverse_input``: read each segment's bytes last to first, so that the first bytes, which
    the first outputs describe, are read last."""

    def __init__(self, n_out: int, *, embed: int = 320, hidden: int = 320, layers: int = 4,
                 dropout: float = 0.2, reverse_input: bool = False):
        super().__init__()
        for name, v in (("n_out", n_out), ("embed", embed), ("hidden", hidden), ("layers", layers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.n_out = n_out
        self.reverse_input = bool(reverse_input)
        self.embedding = nn.Embedding(BYTE_VOCAB + n_out, embed, padding_idx=PAD)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(embed, hidden, layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.proj = nn.Linear(hidden, n_out)

    def out_symbol(self, y: torch.Tensor) -> torch.Tensor:
        """Output ids as input ids (they follow the byte symbols in the embedding table)."""
        return y + BYTE_VOCAB

    def read(self, x: torch.Tensor, lengths: torch.Tensor):
        """Read each segment's bytes and GO; return the LSTM state after GO and its output.

        ``x``: (B, n) byte ids, right-padded with PAD; ``lengths``: (B,) real lengths (≥ 0).
        The GO symbol is written right after each segment's last byte.
        """
        b = x.shape[0]
        lengths = lengths.to("cpu")
        if self.reverse_input:  # each segment's bytes last-to-first (Sutskever et al.'s trick)
            idx = (lengths.to(x.device).unsqueeze(1) - 1 - torch.arange(x.shape[1], device=x.device)).clamp(min=0)
            x = torch.where(torch.arange(x.shape[1], device=x.device) < lengths.to(x.device).unsqueeze(1),
                            x.gather(1, idx), x)
        seq = torch.cat([x, torch.full((b, 1), PAD, dtype=x.dtype, device=x.device)], dim=1)
        seq[torch.arange(b, device=x.device), lengths.to(x.device)] = GO
        packed = pack_padded_sequence(self.drop(self.embedding(seq)), lengths + 1,
                                      batch_first=True, enforce_sorted=False)
        _, (h, c) = self.lstm(packed)
        return h, c

    def forward(self, x, lengths, y_in):
        """Logits (B, m, n_out) for every output step, given the previous outputs ``y_in``
        (B, m) with the first column ignored (the step after GO has no previous output)."""
        h, c = self.read(x, lengths)
        first = self.proj(h[-1]).unsqueeze(1)
        if y_in.shape[1] <= 1:
            return first
        emb = self.drop(self.embedding(self.out_symbol(y_in[:, 1:])))
        out, _ = self.lstm(emb, (h, c))
        return torch.cat([first, self.proj(self.drop(out))], dim=1)

    @torch.no_grad()
    def greedy(self, x, lengths, max_steps: int) -> torch.Tensor:
        """Greedy decoding of every segment in the batch at once: (B, ≤ max_steps) output ids,
        STOP (0) after a segment has stopped. Steps end when every segment has emitted STOP."""
        h, c = self.read(x, lengths)
        logits = self.proj(h[-1])
        outs = []
        done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(max_steps):
            y = logits.argmax(-1)
            y = torch.where(done, torch.zeros_like(y), y)
            outs.append(y)
            done |= y == 0
            if bool(done.all()):
                break
            out, (h, c) = self.lstm(self.embedding(self.out_symbol(y)).unsqueeze(1), (h, c))
            logits = self.proj(out[:, 0])
        return torch.stack(outs, dim=1)
