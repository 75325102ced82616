"""Byte-to-Span's input and output sequences: segments, the output vocabulary, repair, merging.

The model reads a segment of at most ``k`` UTF-8 bytes and writes its annotations as a sequence
of output symbols, three per span and a STOP at the end (Gillick et al., 2016, Sec. 2):

.. math::

    y = (s_1, \\ell_1, c_1,\\; s_2, \\ell_2, c_2,\\; \\dots,\\; \\mathrm{STOP}),
    \\qquad s_i \\in \\{0, \\dots, k-1\\},\\; \\ell_i \\in \\{1, \\dots, k\\},\\; c_i \\in \\mathcal{C},

with start offsets *relative to the segment*, spans sorted by start. The output vocabulary is
therefore ``k`` starts, ``k`` lengths, the labels and STOP: ``2k + |C| + 1`` symbols whatever
the language.

Documents longer than ``k`` bytes are cut into segments of ``k`` bytes every ``stride`` bytes
(the paper: ``k = 60`` with 50 % overlap, ``stride = 30``). A segment is trained on the spans
that lie wholly inside it. **Merging** (:func:`merge`): a predicted span is kept only from the
segment that *owns its start*: the last segment that begins at or before it. With
``stride = k/2`` that segment is also the one with the most room after the start, so a span of
length ``ℓ`` that starts ``r`` bytes into its owner is recoverable exactly when ``r + ℓ ≤ k``:
always when ``ℓ ≤ k − stride`` (30 bytes: ten CJK characters), sometimes up to ``k``, never
beyond. No span is counted twice.

**Ill-formed outputs** (:meth:`OutputVocab.decode`): the decoder is free to emit any symbol at
any step. The stated repair rule: read symbols three at a time until STOP; a triple that is not
(start, length, label) in that order, or whose span runs past the segment's end, is dropped; a
sequence that reaches the step limit without STOP keeps its complete valid triples. A sequence
needing any such repair counts as ill-formed (the chapter reports the rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..training import check_int

__all__ = [
    "BYTE_VOCAB",
    "DROP",
    "GO",
    "PAD",
    "OutputVocab",
    "byte_dropout",
    "encode_bytes",
    "merge",
    "segment",
    "segment_spans",
]

PAD, DROP, GO = 256, 257, 258
"""Input symbols after the 256 byte values: padding, a dropped byte, and GO (start writing)."""
BYTE_VOCAB = 259


def encode_bytes(text) -> bytes:
    """UTF-8 bytes of ``text`` (a ``str``), or ``text`` itself if it is bytes that decode as
    UTF-8. Raises ``ValueError`` naming the offset of invalid UTF-8 (no replacement policy: the
    spans would point into bytes the reader never wrote)."""
    if isinstance(text, str):
        return text.encode("utf-8")
    if isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"input is not valid UTF-8: byte {e.start} ({data[e.start]:#04x}) "
                             f"{e.reason}") from None
        return data
    raise TypeError(f"expected str or UTF-8 bytes, got {type(text).__name__}")


def segment(data: bytes, k: int, stride: int) -> list[int]:
    """Offsets of the segments that cover ``data``: ``0, stride, 2·stride, …`` until one
    reaches the end (a text of at most ``k`` bytes is one segment). ``k >= 1`` and
    ``1 <= stride <= k``, else ``ValueError``."""
    k = check_int("k", k, 1)
    stride = check_int("stride", stride, 1)
    if stride > k:
        raise ValueError(f"stride must be <= k (segments must cover the text), got {stride} > {k}")
    offsets = [0]
    while offsets[-1] + k < len(data):
        offsets.append(offsets[-1] + stride)
    return offsets


def segment_spans(spans, offset: int, k: int) -> list[tuple[int, int, str]]:
    """The spans lying wholly inside the segment ``[offset, offset + k)``, start made relative."""
    return [(s - offset, n, c) for s, n, c in spans if s >= offset and s + n <= offset + k]


def merge(predicted, offsets, k: int, stride: int, n_bytes: int) -> list[tuple[int, int, str]]:
    """A document's spans from its segments' predictions, by the owner-of-the-start rule.

    ``predicted[j]`` holds segment ``j``'s spans (relative starts); ``offsets[j]`` its offset.
    Segment ``j`` keeps a span whose relative start is below ``stride`` (the last segment keeps
    every span), so each document position is owned once. Spans running past ``n_bytes`` are
    dropped. Returns absolute spans sorted by (start, length, label).
    """
    if len(predicted) != len(offsets):
        raise ValueError(f"{len(predicted)} segment predictions for {len(offsets)} segments")
    out = set()
    last = len(offsets) - 1
    for j, (spans, off) in enumerate(zip(predicted, offsets)):
        for s, n, c in spans:
            if j < last and s >= stride:
                continue
            if off + s + n <= n_bytes:
                out.add((off + s, n, c))
    return sorted(out)


@dataclass(frozen=True)
class OutputVocab:
    """The output symbols for segments of ``k`` bytes and the given labels.

    Ids: ``0`` STOP; ``1 … k`` starts 0 … k−1; ``k+1 … 2k`` lengths 1 … k; then the labels.
    """

    k: int
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        check_int("k", self.k, 1)
        labels = tuple(self.labels)
        if not labels or len(set(labels)) != len(labels):
            raise ValueError(f"labels must be non-empty and distinct, got {labels!r}")
        object.__setattr__(self, "labels", labels)

    STOP = 0

    @property
    def size(self) -> int:
        return 1 + 2 * self.k + len(self.labels)

    def start_id(self, s: int) -> int:
        return 1 + s

    def length_id(self, n: int) -> int:
        return 1 + self.k + (n - 1)

    def label_id(self, c: str) -> int:
        return 1 + 2 * self.k + self.labels.index(c)

    def kind(self, i: int) -> str:
        """``"stop"``, ``"start"``, ``"length"`` or ``"label"``."""
        if i == 0:
            return "stop"
        if i <= self.k:
            return "start"
        if i <= 2 * self.k:
            return "length"
        if i < self.size:
            return "label"
        raise ValueError(f"output id {i} is outside the vocabulary of {self.size}")

    def encode(self, spans) -> list[int]:
        """Symbols for ``spans`` (relative to the segment, each inside ``k`` bytes), sorted by
        start then length, then STOP. Raises ``ValueError`` for a span outside the segment or an
        unknown label."""
        out = []
        for s, n, c in sorted(spans, key=lambda t: (t[0], t[1])):
            if s < 0 or n < 1 or s + n > self.k:
                raise ValueError(f"span {(s, n, c)!r} does not fit a segment of {self.k} bytes")
            if c not in self.labels:
                raise ValueError(f"label {c!r} is not one of {self.labels}")
            out += [self.start_id(s), self.length_id(n), self.label_id(c)]
        return out + [self.STOP]

    def decode(self, ids, n_bytes: int | None = None) -> tuple[list[tuple[int, int, str]], bool]:
        """Spans from output symbols by the module's repair rule; returns (spans, ill_formed).

        ``n_bytes``: the segment's real length (a span past it is dropped); default ``k``.
        """
        n_bytes = self.k if n_bytes is None else n_bytes
        ids = [int(i) for i in ids]
        spans, bad, i, stopped = [], False, 0, False
        while i < len(ids):
            if ids[i] == self.STOP:
                stopped = True
                break
            triple = ids[i:i + 3]
            i += 3
            if len(triple) < 3 or self.STOP in triple:
                bad = True
                if self.STOP in triple:
                    stopped = True
                break
            kinds = [self.kind(t) for t in triple]
            if kinds != ["start", "length", "label"]:
                bad = True
                continue
            s, n = triple[0] - 1, triple[1] - self.k
            c = self.labels[triple[2] - 1 - 2 * self.k]
            if s + n > n_bytes:
                bad = True
                continue
            spans.append((s, n, c))
        if not stopped:
            bad = True
        return spans, bad


def byte_dropout(x: torch.Tensor, p: float, *, generator: torch.Generator | None = None,
                 pad: int = PAD) -> torch.Tensor:
    """Replace each input byte, independently with probability ``p``, by the DROP symbol.

    Byte dropout (Gillick et al., Sec. 2.3) acts on the *input*: the model must label a span
    whose bytes it partly cannot see. Padding is never dropped. ``p = 0`` returns ``x``
    unchanged; ``0 <= p < 1`` else ``ValueError``.
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"byte dropout rate must be in [0, 1), got {p!r}")
    if p == 0:
        return x
    mask = torch.rand(x.shape, generator=generator, device=x.device) < p
    mask &= x != pad
    return torch.where(mask, torch.full_like(x, DROP), x)
