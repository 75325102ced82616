"""The paper's kind of data: large pretrained vectors and a 5,000 + 1,500 word dictionary.

The paper trains on WMT11 and Google News (hundreds of millions to billions of words) with a
Google Translate dictionary: the 5,000 most frequent English words for the map, the next 1,000
for the test. The nearest public equivalent is fastText's Wikipedia vectors
(``wiki.en.vec``, ``wiki.es.vec``: 300 dimensions, word2vec text format) with the MUSE
dictionaries of Conneau et al. (2018), ``en-es.0-5000.txt`` for training and
``en-es.5000-6500.txt`` for testing, built the same way (frequency-ranked source words).

These files are several gigabytes and have no offline source and no published checksum, so
nothing here downloads them: a reader fetches them (the notebook's full-scale section gives
the addresses) and passes their paths. The readers check the format and fail with a message
naming the line; :func:`evaluate_split` then runs the same map, orthogonal map and edit
distance as the Bible study, on the paper's split.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from . import Embeddings, evaluate_fold, seed_dictionary

__all__ = ["evaluate_split", "read_pairs", "read_text_vectors"]


class VectorFormatError(ValueError):
    """A vectors or dictionary file that does not follow its format."""


def _open_text(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist (see the chapter's full-scale section for where to get it)")
    return open(path, encoding="utf-8", errors="strict")


def read_text_vectors(path, *, limit: int | None = None, name: str = "embeddings") -> Embeddings:
    """Word vectors in word2vec's text format: a header ``"<count> <dim>"``, then one line per
    word, ``word v_1 ... v_dim``, most frequent first (as fastText writes them). ``limit`` keeps
    the first ``limit`` words (MUSE evaluates on the 200,000 most frequent). A word that repeats
    keeps its first vector. Counts are not in the format, so the vocabulary rank stands in for
    frequency (``counts`` decrease with the rank)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be an int >= 1 or None, got {limit!r}")
    words: list[str] = []
    seen: set[str] = set()
    rows: list[np.ndarray] = []
    with _open_text(path) as f:
        header = f.readline().split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise VectorFormatError(f"{path}: line 1 must be '<count> <dim>', got {' '.join(header)!r}")
        dim = int(header[1])
        if dim < 1:
            raise VectorFormatError(f"{path}: line 1 gives dimension {dim}; it must be >= 1")
        for line_no, line in enumerate(f, start=2):
            if limit is not None and len(words) >= limit:
                break
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if len(parts) != dim + 1:
                raise VectorFormatError(f"{path}: line {line_no} has {len(parts) - 1} values after the word, "
                                        f"expected {dim}")
            word = parts[0]
            if word in seen:
                continue
            try:
                vec = np.array(parts[1:], dtype=np.float32)
            except ValueError:
                raise VectorFormatError(f"{path}: line {line_no} ({word!r}) holds a value that is not a number") from None
            if not np.all(np.isfinite(vec)):
                raise VectorFormatError(f"{path}: line {line_no} ({word!r}) holds a non-finite value")
            seen.add(word)
            words.append(word)
            rows.append(vec)
    if not words:
        raise VectorFormatError(f"{path}: no vectors after the header")
    n = len(words)
    return Embeddings(tuple(words), np.stack(rows), np.arange(n, 0, -1, dtype=np.int64), name)


def read_pairs(path) -> list[tuple[str, str]]:
    """A bilingual dictionary in MUSE's format: one ``source target`` pair per line, separated
    by white space (a source word may have several lines). Empty lines are skipped."""
    pairs: list[tuple[str, str]] = []
    with _open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise VectorFormatError(f"{path}: line {line_no} must hold two words, got {line.strip()!r}")
            pairs.append((parts[0], parts[1]))
    if not pairs:
        raise VectorFormatError(f"{path}: no pairs")
    return pairs


def evaluate_split(src: Embeddings, tgt: Embeddings, train_pairs: Iterable[tuple[str, str]],
                   test_pairs: Iterable[tuple[str, str]], *,
                   methods: Sequence[str] = ("matrix", "procrustes", "edit_distance")) -> dict:
    """P@1 and P@5 of ``methods`` on the paper's kind of split: the map fitted on every
    ``train_pairs`` pair with both words in the vocabularies, tested on the ``test_pairs``
    source words with a translation in the vocabularies. As in the paper, test words without
    vectors are left out and reported as ``coverage`` (the share of test source words kept).
    Returns ``{method: (p1, p5), "coverage": float, "train_words": int, "test_words": int}``."""
    train_pairs, test_pairs = list(train_pairs), list(test_pairs)
    gold_train = seed_dictionary(train_pairs, src, tgt)
    gold_test = seed_dictionary(test_pairs, src, tgt)
    test_words = [w for w in dict.fromkeys(a for a, _ in test_pairs) if w in gold_test and w not in gold_train]
    if not test_words:
        raise ValueError("no test word has a translation in the vocabularies that is not also a training word")
    gold = {**gold_train, **{w: gold_test[w] for w in test_words}}
    res = evaluate_fold(src, tgt, gold, list(gold_train), test_words, lam=0.0, methods=methods)
    all_test = {a for a, _ in test_pairs}
    return {**res, "coverage": len(test_words) / len(all_test), "train_words": len(gold_train),
            "test_words": len(test_words)}
