"""The translation matrix and its rivals (Mikolov, Le & Sutskever 2013, Sec. 3-4).

Conventions: a set of ``n`` word vectors is a row matrix, ``X`` of shape ``(n, d1)`` in the
source language and ``Z`` of shape ``(n, d2)`` in the target language, row ``i`` of each being
the two sides of the ``i``-th dictionary pair. The paper writes the map as ``z ≈ W x`` with
``W`` of shape ``(d2, d1)``; every function here returns ``W`` in that shape, so the mapped
rows are ``X @ W.T``.

* :func:`fit_lstsq`: the minimiser of ``Σ_i ‖W x_i − z_i‖²`` in closed form (the normal
  equations ``W XᵀX = ZᵀX``, solved by ``numpy.linalg.lstsq``).
* :func:`fit_sgd`: the same objective by stochastic gradient descent, as the paper trains it.
* :func:`fit_procrustes`: the orthogonal ``W`` (``WᵀW = I``) minimising the same sum, by one
  SVD (Xing et al. 2015 and later work); it needs ``d1 == d2``.
* :func:`translate`: the ``k`` target words whose vectors have the highest cosine similarity
  with ``W x``.
* :func:`precision_at_k`: the share of queries with a correct translation among the top ``k``.
* :func:`edit_distance_matrix`, :func:`levenshtein`: the paper's spelling baseline.
* :func:`cooccurrence_vectors`: the word co-occurrence baseline (count context words that are
  dictionary words, translate the context through the seed dictionary, compare by cosine).
* :func:`topk_from_scores`: top ``k`` of any score matrix (higher is better), ties to the lower
  index, the order every ranking here uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .retrieval import normalize_rows, topk_batched

__all__ = [
    "cooccurrence_vectors",
    "edit_distance_matrix",
    "fit_lstsq",
    "fit_procrustes",
    "fit_sgd",
    "levenshtein",
    "objective",
    "precision_at_k",
    "topk_from_scores",
    "translate",
]


def _pair_matrices(X, Z) -> tuple[np.ndarray, np.ndarray]:
    for name, a in (("X", X), ("Z", Z)):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a numpy array of word vectors (rows), got {type(a).__name__}")
        if a.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n words, dimension), got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"{name} must hold floats, got dtype {a.dtype}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} holds non-finite values")
    if X.shape[0] != Z.shape[0]:
        raise ValueError(f"X and Z must have one row per dictionary pair each: got {X.shape[0]} rows in X "
                         f"(shape {X.shape}) and {Z.shape[0]} in Z (shape {Z.shape})")
    if X.shape[0] == 0:
        raise ValueError("X and Z hold no dictionary pairs")
    return X.astype(np.float64), Z.astype(np.float64)


def objective(W: np.ndarray, X: np.ndarray, Z: np.ndarray) -> float:
    """The paper's objective ``Σ_i ‖W x_i − z_i‖²`` (a sum, not a mean), in float64."""
    X, Z = _pair_matrices(X, Z)
    W = np.asarray(W, dtype=np.float64)
    if W.shape != (Z.shape[1], X.shape[1]):
        raise ValueError(f"W must have shape (d2, d1) = {(Z.shape[1], X.shape[1])}, got {W.shape}")
    R = X @ W.T - Z
    return float(np.sum(R * R))


def fit_lstsq(X: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """The ``W`` (shape ``(d2, d1)``) minimising ``Σ_i ‖W x_i − z_i‖²``, in closed form.

    Setting the gradient ``2 (W XᵀX − ZᵀX)`` to zero gives the normal equations
    ``W XᵀX = ZᵀX``; ``numpy.linalg.lstsq`` solves them stably (through an SVD of ``X``), and
    returns the minimum-norm solution when ``XᵀX`` is singular (fewer pairs than dimensions).
    """
    X, Z = _pair_matrices(X, Z)
    sol, *_ = np.linalg.lstsq(X, Z, rcond=None)
    return sol.T


def fit_sgd(X: np.ndarray, Z: np.ndarray, *, epochs: int = 200, batch_size: int = 16, lr: float | None = None,
            seed: int = 0) -> np.ndarray:
    """``W`` minimising ``Σ_i ‖W x_i − z_i‖²`` by minibatch stochastic gradient descent.

    Each step takes a minibatch ``B`` (the pairs in a fresh random order each epoch) and moves
    ``W`` against the gradient of the minibatch's mean loss, ``(2/|B|) Σ_{i∈B} (W x_i − z_i) x_iᵀ``.
    The step size decays linearly from ``lr`` to 0 over the run (as word2vec's does), so the
    iterate settles on the minimiser instead of wandering around it. ``lr=None`` takes
    ``0.5 / max_i ‖x_i‖²``: for one pair the loss's curvature is ``2‖x_i‖²``, so steps below
    ``1/‖x_i‖²`` are stable. ``W`` starts at zero; float64 throughout. The paper gives no step
    size or schedule [U]: these are ours.
    """
    X, Z = _pair_matrices(X, Z)
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "seed" else 1):
            raise ValueError(f"{name} must be an int >= {0 if name == 'seed' else 1}, got {v!r}")
    if lr is None:
        lr = 0.5 / float(np.max(np.sum(X * X, axis=1)))
    elif isinstance(lr, bool) or not isinstance(lr, (int, float)) or not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a step size > 0 or None, got {lr!r}")
    n = X.shape[0]
    W = np.zeros((Z.shape[1], X.shape[1]))
    rng = np.random.default_rng(seed)
    steps_per_epoch = -(-n // batch_size)
    total = epochs * steps_per_epoch
    t = 0
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb, zb = X[idx], Z[idx]
            grad = (2.0 / len(idx)) * (xb @ W.T - zb).T @ xb
            W -= lr * (1.0 - t / total) * grad
            t += 1
    return W


def fit_procrustes(X: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """The orthogonal ``W`` minimising ``Σ_i ‖W x_i − z_i‖²``: ``W = U Vᵀ`` where
    ``ZᵀX = U Σ Vᵀ`` (the orthogonal Procrustes problem). Needs ``d1 == d2``.

    With ``W`` orthogonal, ``‖W x − z‖² = ‖x‖² + ‖z‖² − 2 zᵀW x``, so the sum is smallest where
    ``Σ_i z_iᵀ W x_i = tr(W Mᵀ)`` is largest, ``M = ZᵀX = U Σ Vᵀ``; ``tr(W V Σ Uᵀ) =
    tr(Uᵀ W V Σ)`` is at most ``tr(Σ)``, reached when ``Uᵀ W V = I``.
    """
    X, Z = _pair_matrices(X, Z)
    if X.shape[1] != Z.shape[1]:
        raise ValueError(f"the orthogonal map needs the same dimension on both sides, got source "
                         f"{X.shape[1]} and target {Z.shape[1]}")
    U, _, Vt = np.linalg.svd(Z.T @ X)
    return U @ Vt


def translate(W: np.ndarray, X: np.ndarray, targets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` target rows for each source row of ``X``: by cosine similarity of ``W x`` with
    each row of ``targets`` (any norms; both sides are normalised here). Returns ``(indices,
    cosines)``, each ``(n, k)``, best first, ties to the lower index."""
    X = np.asarray(X)
    if not isinstance(W, np.ndarray) or W.ndim != 2:
        raise ValueError(f"W must be a 2-D array (d2, d1), got {getattr(W, 'shape', type(W).__name__)}")
    if X.ndim != 2 or X.shape[1] != W.shape[1]:
        raise ValueError(f"X must have shape (n, d1) with d1 = {W.shape[1]} (W is {W.shape}), got {X.shape}")
    if targets.ndim != 2 or targets.shape[1] != W.shape[0]:
        raise ValueError(f"targets must have shape (V, d2) with d2 = {W.shape[0]} (W is {W.shape}), "
                         f"got {targets.shape}")
    mapped = normalize_rows((X.astype(np.float64) @ W.T).astype(np.float32))
    return topk_batched(mapped, normalize_rows(targets.astype(np.float32)), k)


def topk_from_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest entries of each row of ``scores``, best first, ties to the
    lower index (a stable sort of the negated scores)."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (queries, candidates), got shape {scores.shape}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k must be an int in [1, {scores.shape[1]}] (the number of candidates), got {k!r}")
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def precision_at_k(ranked: Sequence[Sequence[str]], gold: Sequence[Iterable[str]], k: int) -> float:
    """Share of queries whose top ``k`` candidates (``ranked[i]``, best first) hold one of the
    correct translations ``gold[i]``: the paper's precision@k."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if len(ranked) != len(gold):
        raise ValueError(f"ranked and gold must have one entry per query, got {len(ranked)} and {len(gold)}")
    if not ranked:
        raise ValueError("precision@k of no queries is undefined")
    hits = 0
    for i, (cands, answers) in enumerate(zip(ranked, gold)):
        if len(cands) < k:
            raise ValueError(f"query {i} has {len(cands)} ranked candidates, fewer than k = {k}")
        answers = set(answers)
        if not answers:
            raise ValueError(f"query {i} has no correct translation to look for")
        hits += any(c in answers for c in list(cands)[:k])
    return hits / len(ranked)


def levenshtein(a: str, b: str) -> int:
    """The edit distance (insertions, deletions, substitutions, each costing 1) between two
    strings, by the textbook dynamic programme: the reference for :func:`edit_distance_matrix`."""
    if not isinstance(a, str) or not isinstance(b, str):
        raise TypeError(f"levenshtein compares two str, got {type(a).__name__} and {type(b).__name__}")
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def edit_distance_matrix(queries: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """Normalised edit distances, ``levenshtein(q, c) / max(len(q), len(c))`` in [0, 1], float32
    of shape ``(len(queries), len(candidates))``, computed by rapidfuzz on one thread."""
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    for name, words in (("queries", queries), ("candidates", candidates)):
        if isinstance(words, str) or not all(isinstance(w, str) and w for w in words):
            raise TypeError(f"{name} must be a sequence of non-empty str words")
        if not len(words):
            raise ValueError(f"{name} is empty")
    return process.cdist(list(queries), list(candidates), scorer=Levenshtein.normalized_distance,
                         dtype=np.float32, workers=1)


def cooccurrence_vectors(sentences: Iterable[Sequence[str]], vocab: Mapping[str, int],
                         context: Mapping[str, int], n_context: int, *, window: int = 5) -> np.ndarray:
    """Co-occurrence counts ``C[v, j]``: how often a context word mapped to column ``j`` occurs
    within ``window`` tokens of vocabulary word ``v`` (``vocab``: word → row). ``context`` maps
    a word to its column; several words may share one (the Spanish translations of one seed
    word). Returns ``log(1 + C)`` as float32 of shape ``(len(vocab), n_context)``.

    The paper's co-occurrence baseline in its simplest form: English words are described by
    their seed-dictionary neighbours, Spanish words by the translations of those neighbours,
    so the two kinds of row live in one space and compare by cosine.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    if isinstance(n_context, bool) or not isinstance(n_context, int) or n_context < 1:
        raise ValueError(f"n_context must be an int >= 1, got {n_context!r}")
    bad = [c for c in context.values() if not 0 <= c < n_context]
    if bad:
        raise ValueError(f"context columns must lie in [0, {n_context}), got {bad[:3]}")
    row_ids: list[int] = []
    col_ids: list[int] = []
    sent_ids: list[int] = []
    for s, sent in enumerate(sentences):
        for w in sent:
            row_ids.append(vocab.get(w, -1))
            col_ids.append(context.get(w, -1))
            sent_ids.append(s)
    r = np.asarray(row_ids, dtype=np.int64)
    c = np.asarray(col_ids, dtype=np.int64)
    s_id = np.asarray(sent_ids, dtype=np.int64)
    C = np.zeros((len(vocab), n_context), dtype=np.float64)
    for off in range(1, window + 1):
        if off >= len(r):
            break
        same = s_id[:-off] == s_id[off:]
        for a, b in ((r[:-off], c[off:]), (r[off:], c[:-off])):
            keep = same & (a >= 0) & (b >= 0)
            np.add.at(C, (a[keep], b[keep]), 1.0)
    return np.log1p(C).astype(np.float32)
