r"""Searching the whole target vocabulary for the translations of :math:`Wx`.

Mikolov, Le & Sutskever (2013) translate a source word :math:`x` by mapping it to :math:`z = Wx`
and returning the target words whose vectors have the highest cosine similarity with :math:`z`.
With the rows of the target embedding matrix :math:`T` (``m`` words) and of the mapped queries
:math:`Q` (``n`` words) scaled to unit length (:func:`normalize_rows`), all the cosines are one
matrix product :math:`S = QT^\top`, and the translations are the top-``k`` entries of each row.

This module holds:

* :func:`topk_batched` -- the exact search as one batched float32 matrix product, in query
  chunks, followed by a per-row selection. The default selection (``method="auto"``) makes ``k``
  passes of a row-wise ``argmax`` for small ``k`` (``"argmax"``), and ``np.argpartition`` over
  each row otherwise (``"argpartition"``); ``method="blockmax"`` prunes each row with block maxima
  and orders only the few entries of the surviving blocks that can reach the top ``k``, and ``method="torch"`` selects with
  :func:`torch.topk` on a zero-copy view of the score block. All are exact;
* :func:`topk_loop` -- the per-word baseline: one matrix-vector product and one
  ``np.argpartition`` per query;
* :func:`topk_reference` -- brute force with a full stable sort, for tests;
* :class:`AnnIndex` / :func:`build_ann` -- approximate search with a faiss HNSW graph on inner
  products (exact brute force with ``kind="flat"``), imported lazily;
* :func:`recall_at_k` and :func:`benchmark_retrieval`, which times all of the above against a
  bare matrix product of the same shape;
* :func:`synthetic_embeddings` -- unit vectors drawn around Gaussian centres, a stand-in for
  word embeddings in tests and benchmarks.

**Output contract** (every search function): ``(indices, scores)``, ``indices`` int64 of shape
``(n_queries, k)``, ``scores`` float32 of the same shape, ``scores[i, j]`` the inner product of
query ``i`` with target ``indices[i, j]``. Each row is ordered by decreasing score, and **ties are
broken by the lower target index** -- both inside the ``k`` and at the boundary (when several
targets tie for the ``k``-th place, the lowest indices are kept). This is exactly the first ``k``
columns of ``np.argsort(-S, kind="stable")``. (The ANN keeps faiss's choice at the boundary; see
:meth:`AnnIndex.search`.)

**Inputs.** Queries and targets are 2-D ``numpy.ndarray`` of dtype **float32**, finite, with the
same number of columns. They are assumed to be normalised already (call :func:`normalize_rows`
once, which returns float32), so that the scores are cosines; the search functions do not check
norms, they rank inner products. Nothing is cast silently: a float64 (or any non-float32) array is
refused with a ``TypeError``, so a hidden copy never enters a timing.

**Threads.** The figures in the notes are single-threaded. numpy's BLAS reads its thread count
when numpy is first imported, and ``threadpoolctl`` is not a dependency, so the *caller* sets
``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1`` in the environment before
Python starts; :func:`benchmark_retrieval` records those variables in its result (and warns
when they are not all ``"1"``), pins faiss to one thread with ``faiss.omp_set_num_threads(1)``
and torch with ``torch.set_num_threads(1)`` for the measurement, restoring both afterwards.

Only numpy is imported at module import time; faiss and torch are imported when first needed.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
import warnings

import numpy as np

__all__ = ["ANN_DEFAULTS", "DEFAULT_CHUNK", "METHODS", "THREAD_ENV_VARS", "AnnIndex", "benchmark_retrieval",
           "build_ann", "normalize_rows", "recall_at_k", "synthetic_embeddings", "topk_batched", "topk_loop",
           "topk_reference"]

#: Selection methods of :func:`topk_batched`; the first is the default.
METHODS = ("auto", "argpartition", "argmax", "blockmax", "torch")
#: ``method="auto"`` selects by ``k`` argmax passes up to this ``k``, by argpartition above it.
ARGMAX_MAX_K = 16
#: Queries per matrix-product block in :func:`topk_batched` when ``chunk=None``. Measured on one
#: core (AMD EPYC, 1 MiB L2/core, 32 MiB L3) for 1,000 queries x 7,545 Spanish words x 100
#: dimensions: 256 rows (a 7.7 MB float32 score block) were as fast as or faster than 64, 128 and
#: 1,000 for every selection method (``python -m benchmarks translation_matrix`` records them).
DEFAULT_CHUNK = 256
#: The environment variables that fix the BLAS / OpenMP thread counts (read at import time).
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: HNSW defaults: ``m`` links per node, ``ef_construction`` and ``ef_search`` candidate lists.
#: Chosen so that recall@5 >= 0.9 on clustered unit vectors (see the tests and the benchmark).
ANN_DEFAULTS = {"kind": "hnsw", "m": 32, "ef_construction": 200, "ef_search": 128}


# --------------------------------------------------------------------------------------------
# validation


def _check_array(x, name: str, *, float32: bool = True) -> None:
    """``x`` must be a finite 2-D ndarray (float32 when ``float32``, else any float dtype)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray (rows are vectors), got {type(x).__name__}")
    if float32:
        if x.dtype != np.float32:
            raise TypeError(f"{name} must have dtype float32, got {x.dtype}; it is not cast silently -- "
                            f"normalise it with normalize_rows (which returns float32) or call .astype(np.float32)")
    elif x.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array (float16/32/64), got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (one vector per row), got {x.ndim}-D array of shape {x.shape}")
    _check_finite(x, name)


def _check_finite(x: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming the first row of ``x`` holding NaN or an infinity.

    One reduction (a sum, which NaN and infinities propagate through) decides the common case;
    only a non-finite sum (a bad entry, or an overflow of finite entries) pays for the full check.
    """
    if x.size == 0:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        total = x.sum()
    if np.isfinite(total):
        return
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        col = int(np.flatnonzero(bad[row])[0])
        raise ValueError(f"{name} must be finite, but {name}[{row}, {col}] = {x[row, col]!r}")


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _check_k(k, n_targets: int) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__} ({k!r})")
    if not 1 <= k <= n_targets:
        raise ValueError(f"k must satisfy 1 <= k <= number of targets ({n_targets}), got k={k}")
    return int(k)


def _check_pair(queries, targets, k) -> int:
    _check_array(queries, "queries")
    _check_array(targets, "targets")
    if queries.shape[1] != targets.shape[1]:
        raise ValueError(f"dimension mismatch: queries have shape {queries.shape} and targets have shape "
                         f"{targets.shape}; both need the same number of columns")
    return _check_k(k, targets.shape[0])


# --------------------------------------------------------------------------------------------
# normalisation and synthetic data


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Scale every row of ``x`` to unit Euclidean length; returns a new float32 array.

    ``x`` is a finite 2-D floating-point array (float16, float32 or float64; integers are refused
    rather than guessed at). The norms are computed in float64 after dividing each row by its
    largest absolute entry, so rows with huge or tiny entries neither overflow nor underflow; the
    result is rounded to float32 once, at the end. A row of zeros has no direction: ``ValueError``
    naming its index.
    """
    _check_array(x, "x", float32=False)
    n, d = x.shape
    if d == 0:
        raise ValueError(f"x has shape {x.shape}: rows with no columns cannot be normalised")
    if n == 0:
        return np.zeros((0, d), np.float32)
    a = x.astype(np.float64)
    scale = np.abs(a).max(axis=1)
    zero = np.flatnonzero(scale == 0)
    if zero.size:
        raise ValueError(f"row {int(zero[0])} of x is all zeros and cannot be normalised "
                         f"({zero.size} zero row{'s' if zero.size > 1 else ''} in all)")
    a /= scale[:, None]
    a /= np.sqrt(np.einsum("ij,ij->i", a, a))[:, None]
    return a.astype(np.float32)


def synthetic_embeddings(n_queries: int, n_targets: int, dim: int, *, n_centres: int = 200, spread: float = 0.5,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embedding-like test data: unit vectors drawn around ``n_centres`` Gaussian centres.

    Centres are standard normal in ``dim`` dimensions; each point is a random centre plus
    isotropic Gaussian noise of relative size ``spread`` (noise norm about ``spread`` times the
    centre's norm), then normalised. Queries are drawn the same way from the same centres, like
    mapped words :math:`Wx` landing near, but not on, target words. Returns ``(queries, targets)``,
    float32, each row of unit length.
    """
    n_queries = _check_int(n_queries, "n_queries", 0)
    n_targets = _check_int(n_targets, "n_targets", 1)
    dim = _check_int(dim, "dim", 1)
    n_centres = _check_int(n_centres, "n_centres", 1)
    if not (isinstance(spread, (int, float, np.floating)) and math.isfinite(spread) and spread >= 0):
        raise ValueError(f"spread must be a finite number >= 0, got {spread!r}")
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, dim))

    def draw(count):
        points = centres[rng.integers(0, n_centres, size=count)]
        points = points + spread * rng.standard_normal((count, dim))
        return normalize_rows(points)

    targets = draw(n_targets)
    queries = draw(n_queries)
    return queries, targets


# --------------------------------------------------------------------------------------------
# exact selection


def _order_topk(idx: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order each row of a (rows, k) candidate set by decreasing value, ties by lower index."""
    order = np.lexsort((idx, -vals), axis=-1)
    return np.take_along_axis(idx, order, -1), np.take_along_axis(vals, order, -1)


def _resolve_tie(row: np.ndarray, vk, k: int, cols_row: np.ndarray | None):
    """Top-``k`` of one row when several entries tie for the k-th place: every entry >= ``vk``,
    ordered by (value desc, index asc), the first ``k`` kept."""
    pos = np.flatnonzero(row >= vk)
    ids = pos if cols_row is None else cols_row[pos]
    v = row[pos]
    keep = np.lexsort((ids, -v))[:k]
    return ids[keep], v[keep]


def _select_argpartition(S: np.ndarray, k: int, cols: np.ndarray | None = None):
    """Exact top-``k`` of each row of the score block ``S`` (rows, p).

    The index of ``S[r, j]`` is ``cols[r, j]`` (``j`` when ``cols`` is None). When ``cols`` is given,
    every entry of the full row whose value is >= the row's k-th largest value must be present in
    ``S`` (true for full rows).

    One ``np.argpartition`` per row with two order statistics, the k-th and (k+1)-th largest
    (``kth=(p-k-1, p-k)``), gives the unordered top ``k`` -- the same as
    ``np.argpartition(-S, k-1)[:, :k]`` without negating the block -- and detects a tie at the
    boundary for free: only rows where the two are equal are redone exactly (:func:`_resolve_tie`).
    """
    rows, p = S.shape
    if k < p:
        part = np.argpartition(S, (p - k - 1, p - k), axis=1)
        top = part[:, p - k:]
        vals = np.take_along_axis(S, top, 1)
        vk = vals[:, 0]  # position p-k holds the k-th largest value
        vnext = np.take_along_axis(S, part[:, p - k - 1:p - k], 1)[:, 0]
        ties = np.flatnonzero(vnext == vk)
    else:  # k == p: everything is selected, no boundary
        top = np.broadcast_to(np.arange(p), (rows, p))
        vals = S
        ties = ()
    idx = top if cols is None else np.take_along_axis(cols, top, 1)
    if len(ties):
        idx = np.array(idx)
        vals = np.array(vals)
        for r in ties:
            idx[r], vals[r] = _resolve_tie(S[r], vk[r], k, None if cols is None else cols[r])
    return _order_topk(idx, vals)


def _n_blocks(m: int, k: int) -> int:
    """Number of interleaved blocks for :func:`_select_blockmax` (0: do not prune).

    The selection costs about ``n_blocks`` (ranking the block maxima) plus ``k * m / n_blocks``
    (the candidates) per row, least near ``sqrt(k * m)``; at least 128 blocks keep the block-max
    reduction vectorised, and pruning only pays when the candidates are a small part of the row.
    """
    blocks = max(128, int(math.sqrt(k * m)))
    if 4 * k * math.ceil(m / blocks) > m or blocks > m // 4:
        return 0
    return blocks


def _select_blockmax(S: np.ndarray, k: int, n_blocks: int):
    """Exact top-``k`` of each row of the C-contiguous score block ``S`` (rows, m), pruned by
    block maxima.

    Column ``j`` belongs to block ``j % B`` (interleaved blocks of ``b = ceil(m / B)`` columns, so
    the block maxima are one vectorised ``max`` over a (rows, b-1, B) view plus the partial last
    interleaved row). Let ``t`` be the k-th largest block maximum of a row (``np.partition``). The k
    largest block maxima are k distinct entries >= ``t``, so the row's k-th largest value ``v_k`` is
    >= ``t``, and every entry >= ``v_k`` lies in a block whose maximum is >= ``t``. The entries >= ``t``
    of those blocks (typically a few more than ``k``) are gathered, and one ``np.lexsort`` by
    (row, score desc, index asc) orders them; the first ``k`` of each row are the answer. Ties,
    at the k-th place or among the block maxima, only add candidates: the result is exact.
    """
    rows, m = S.shape
    B = n_blocks
    b = -(-m // B)
    full = (b - 1) * B
    tail = m - full  # 1..B columns in the last, partial, interleaved row
    bm = np.empty((rows, B), np.float32)
    np.max(S[:, :full].reshape(rows, b - 1, B), axis=1, out=bm)
    np.maximum(bm[:, :tail], S[:, full:], out=bm[:, :tail])
    t = np.partition(bm, B - k, axis=1)[:, B - k]
    r, j = np.nonzero(bm >= t[:, None])  # candidate blocks, (row, block) pairs
    cols = j[:, None] + B * np.arange(b)
    G = np.take(S.reshape(-1), cols + (r * m)[:, None], mode="clip")
    if tail < B:  # blocks j >= tail have only b-1 columns
        G[j >= tail, b - 1] = -np.inf
    p, c = np.nonzero(G >= t[r][:, None])
    cand_row, cand_col, cand_val = r[p], cols[p, c], G[p, c]
    order = np.lexsort((cand_col, -cand_val, cand_row))
    counts = np.bincount(cand_row, minlength=rows)  # >= k per row: the k block maxima >= t
    pick = order[(np.cumsum(counts) - counts)[:, None] + np.arange(k)]
    return cand_col[pick], cand_val[pick]


def _select_torch(S: np.ndarray, k: int):
    """Exact top-``k`` of each row with :func:`torch.topk` on a zero-copy view of ``S``.

    ``torch.topk`` keeps an unspecified element among equals, so it is asked for ``k + 1``
    values: rows where the k-th and (k+1)-th are equal are redone exactly.
    """
    import torch

    rows, p = S.shape
    kk = min(k + 1, p)
    vals_t, idx_t = torch.topk(torch.from_numpy(S), kk, dim=1, largest=True, sorted=True)
    vals_all, idx_all = vals_t.numpy(), idx_t.numpy()
    idx, vals = idx_all[:, :k], vals_all[:, :k]
    if kk > k:
        ties = np.flatnonzero(vals_all[:, k] == vals_all[:, k - 1])
        if len(ties):
            idx, vals = np.array(idx), np.array(vals)
            for r in ties:
                idx[r], vals[r] = _resolve_tie(S[r], vals_all[r, k - 1], k, None)
    return _order_topk(idx.astype(np.int64, copy=False), vals)


def _select_argmax(S: np.ndarray, k: int):
    """Exact top-``k`` of each row of ``S`` by ``k`` passes of a row-wise ``argmax``: each pass
    records every row's largest remaining entry and overwrites it with ``-inf`` (``S`` is the
    caller's scratch block and is destroyed). ``argmax`` returns the first of equal maxima, so
    the order is (value descending, index ascending), ties at the k-th place included. Each pass
    is one streaming read of the block: for small ``k`` this is the cheapest exact selection."""
    rows = np.arange(S.shape[0])
    idx = np.empty((S.shape[0], k), np.int64)
    vals = np.empty((S.shape[0], k), np.float32)
    for i in range(k):
        j = S.argmax(axis=1)
        idx[:, i] = j
        vals[:, i] = S[rows, j]
        S[rows, j] = -np.inf
    return idx, vals


def topk_batched(queries: np.ndarray, targets: np.ndarray, k: int, *, chunk: int | None = None,
                 method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` targets of every query by one batched float32 matrix product.

    ``queries`` (n, d) and ``targets`` (m, d) are float32 and assumed normalised (the scores are
    then cosines). Queries are processed ``chunk`` rows at a time (default :data:`DEFAULT_CHUNK`;
    ``chunk=len(queries)`` is a single product): ``queries[i:j] @ targets.T`` is written into one
    preallocated (chunk, m) float32 buffer (``np.matmul(..., out=)``) while it is still in cache,
    the top ``k`` of each row are selected, and the ``k`` are ordered.

    Selection ``method``:

    * ``"auto"`` (default): ``"argmax"`` for ``k <=`` :data:`ARGMAX_MAX_K`, else
      ``"argpartition"``.
    * ``"argmax"``: ``k`` passes of a row-wise ``argmax``, each overwriting the maximum it found
      (:func:`_select_argmax`): ``k`` streaming reads of the block, the fastest for small ``k``.
    * ``"argpartition"``: ``np.argpartition`` over each whole row, as
      ``np.argpartition(-S, k-1, axis=1)[:, :k]`` (computed as the equivalent
      ``kth=(m-k-1, m-k)`` on ``S`` itself, which avoids negating the block and also reveals a tie
      for the k-th place).
    * ``"blockmax"``: one vectorised pass of block maxima, ``np.partition`` of those, then one
      ``np.lexsort`` of the few entries that can reach the top ``k`` (exact, ties included; see
      :func:`_select_blockmax`). Falls back to
      ``"argpartition"`` when ``k`` is too large a fraction of ``m`` for pruning to pay.
    * ``"torch"``: :func:`torch.topk` on ``torch.from_numpy`` of the score block (uses torch's
      current thread setting).

    All of them return the same result: ``(indices int64 (n, k), scores float32 (n, k))``, rows by
    decreasing score, ties broken by the lower target index (also at the k-th place), i.e. the
    first ``k`` columns of ``np.argsort(-S, kind="stable")``.
    """
    k = _check_pair(queries, targets, k)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    n, m = queries.shape[0], targets.shape[0]
    c = DEFAULT_CHUNK if chunk is None else _check_int(chunk, "chunk", 1)
    out_idx = np.empty((n, k), np.int64)
    out_val = np.empty((n, k), np.float32)
    if n == 0:
        return out_idx, out_val
    c = min(c, n)
    if method == "auto":
        method = "argmax" if k <= ARGMAX_MAX_K else "argpartition"
    if method == "blockmax":
        blocks = _n_blocks(m, k)
        select = (lambda S: _select_blockmax(S, k, blocks)) if blocks else (lambda S: _select_argpartition(S, k))
    elif method == "torch":
        select = lambda S: _select_torch(S, k)  # noqa: E731
    elif method == "argmax":
        select = lambda S: _select_argmax(S, k)  # noqa: E731
    else:
        select = lambda S: _select_argpartition(S, k)  # noqa: E731
    buf = np.empty((c, m), np.float32)
    targets_t = targets.T
    for i in range(0, n, c):
        j = min(i + c, n)
        S = buf[:j - i]
        np.matmul(queries[i:j], targets_t, out=S)
        out_idx[i:j], out_val[i:j] = select(S)
    return out_idx, out_val


def topk_loop(queries: np.ndarray, targets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The per-word baseline: for each query ``q``, one matrix-vector product ``targets @ q`` and
    one ``np.argpartition`` of the m scores (with the same two order statistics as
    :func:`topk_batched`, so a tie for the k-th place is detected and resolved), then the ``k``
    are ordered. Same inputs and output contract as :func:`topk_batched`."""
    k = _check_pair(queries, targets, k)
    n, m = queries.shape[0], targets.shape[0]
    out_idx = np.empty((n, k), np.int64)
    out_val = np.empty((n, k), np.float32)
    kth = (m - k - 1, m - k)
    for i in range(n):
        s = targets @ queries[i]
        if k < m:
            part = np.argpartition(s, kth)
            top = part[m - k:]
            vk = s[top[0]]
            if s[part[m - k - 1]] == vk:
                top, v = _resolve_tie(s, vk, k, None)
            else:
                v = s[top]
        else:
            top, v = np.arange(m), s
        order = np.lexsort((top, -v))
        out_idx[i] = top[order]
        out_val[i] = v[order]
    return out_idx, out_val


def topk_reference(queries: np.ndarray, targets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force for tests: ``S = queries @ targets.T`` and a full stable sort of every row,
    ``np.argsort(-S, kind="stable")[:, :k]``. Same inputs and output contract as
    :func:`topk_batched`."""
    k = _check_pair(queries, targets, k)
    S = queries @ targets.T
    order = np.argsort(-S, axis=1, kind="stable")[:, :k].astype(np.int64, copy=False)
    return np.ascontiguousarray(order), np.ascontiguousarray(np.take_along_axis(S, order, 1))


# --------------------------------------------------------------------------------------------
# approximate search (faiss)


def _import_faiss():
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("approximate search needs faiss, which is not installed: "
                          "pip install faiss-cpu") from err
    return faiss


@contextlib.contextmanager
def _faiss_threads(faiss, threads: int | None):
    if threads is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class AnnIndex:
    """A faiss index over the (normalised, float32) ``targets``, searched by inner product.

    ``kind="hnsw"`` (default) builds ``faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)``
    with ``efConstruction = ef_construction`` and searches with ``efSearch = max(ef_search, k)``;
    on unit vectors the inner product is the cosine, so this is approximate cosine search.
    ``kind="flat"`` is ``faiss.IndexFlatIP``: exact brute force, for checks.

    ``threads`` (default 1) is the faiss OpenMP thread count used while building and searching
    (``faiss.omp_set_num_threads``; the previous setting is restored after each call; ``None``
    leaves faiss's setting alone). With one thread the HNSW build is deterministic: faiss draws
    the node levels from a fixed seed and inserts in order. ``build_seconds`` is the wall time of
    the build.
    """

    def __init__(self, targets: np.ndarray, *, kind: str = "hnsw", m: int = ANN_DEFAULTS["m"],
                 ef_construction: int = ANN_DEFAULTS["ef_construction"],
                 ef_search: int = ANN_DEFAULTS["ef_search"], threads: int | None = 1):
        _check_array(targets, "targets")
        if targets.shape[0] < 1 or targets.shape[1] < 1:
            raise ValueError(f"targets must hold at least one vector of at least one dimension, got shape "
                             f"{targets.shape}")
        if kind not in ("hnsw", "flat"):
            raise ValueError(f"kind must be 'hnsw' or 'flat', got {kind!r}")
        self.kind = kind
        self.m = _check_int(m, "m", 2)
        self.ef_construction = _check_int(ef_construction, "ef_construction", 1)
        self.ef_search = _check_int(ef_search, "ef_search", 1)
        self.threads = None if threads is None else _check_int(threads, "threads", 1)
        self.n_targets, self.dim = targets.shape
        faiss = self._faiss = _import_faiss()
        data = np.ascontiguousarray(targets)
        with _faiss_threads(faiss, self.threads):
            start = time.perf_counter()
            if kind == "hnsw":
                index = faiss.IndexHNSWFlat(self.dim, self.m, faiss.METRIC_INNER_PRODUCT)
                index.hnsw.efConstruction = self.ef_construction
            else:
                index = faiss.IndexFlatIP(self.dim)
            index.add(data)
            self.build_seconds = time.perf_counter() - start
        self.index = index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k``: ``(indices int64 (n, k), scores float32 (n, k))``, each row by
        decreasing score, ties by lower index among the ``k`` returned. Which of several targets
        tied for the k-th place is returned is faiss's choice (not necessarily the lowest index).
        Scores are faiss's float32 inner products (they may differ from numpy's in the last bit)."""
        _check_array(queries, "queries")
        if queries.shape[1] != self.dim:
            raise ValueError(f"dimension mismatch: queries have shape {queries.shape} and the index holds targets "
                             f"of shape {(self.n_targets, self.dim)}; both need the same number of columns")
        k = _check_k(k, self.n_targets)
        n = queries.shape[0]
        if n == 0:
            return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
        data = np.ascontiguousarray(queries)
        with _faiss_threads(self._faiss, self.threads):
            if self.kind == "hnsw":
                self.index.hnsw.efSearch = max(self.ef_search, k)
            scores, idx = self.index.search(data, k)
        if (idx < 0).any():
            rows = int(np.count_nonzero((idx < 0).any(axis=1)))
            raise RuntimeError(f"faiss returned fewer than k={k} neighbours for {rows} of {n} queries; "
                               f"raise ef_search (now {self.ef_search})")
        return _order_topk(idx.astype(np.int64, copy=False), scores.astype(np.float32, copy=False))

    def __repr__(self) -> str:
        extra = f", m={self.m}, ef_construction={self.ef_construction}, ef_search={self.ef_search}" \
            if self.kind == "hnsw" else ""
        return f"AnnIndex(kind={self.kind!r}, n_targets={self.n_targets}, dim={self.dim}{extra})"


def build_ann(targets: np.ndarray, *, kind: str = "hnsw", m: int = ANN_DEFAULTS["m"],
              ef_construction: int = ANN_DEFAULTS["ef_construction"], ef_search: int = ANN_DEFAULTS["ef_search"],
              threads: int | None = 1) -> AnnIndex:
    """Build an :class:`AnnIndex` (faiss HNSW on inner products by default) over ``targets``."""
    return AnnIndex(targets, kind=kind, m=m, ef_construction=ef_construction, ef_search=ef_search,
                    threads=threads)


def recall_at_k(approx_idx: np.ndarray, exact_idx: np.ndarray) -> float:
    """Mean over queries of the fraction of the exact top-k that the approximate search found.

    Both are integer arrays with one row per query; ``exact_idx`` (n, k) holds distinct,
    non-negative indices per row; ``approx_idx`` (n, k') may have any number of columns (``-1``
    entries, faiss's "not found", match nothing). Row ``r`` scores
    ``|set(approx_idx[r]) & set(exact_idx[r])| / k``.
    """
    for name, a in (("approx_idx", approx_idx), ("exact_idx", exact_idx)):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
        if a.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer indices, got dtype {a.dtype}")
        if a.ndim != 2:
            raise ValueError(f"{name} must be 2-D (one row per query), got shape {a.shape}")
    if approx_idx.shape[0] != exact_idx.shape[0]:
        raise ValueError(f"approx_idx has shape {approx_idx.shape} and exact_idx {exact_idx.shape}: "
                         f"they need the same number of rows (queries)")
    n, k = exact_idx.shape
    if n == 0 or k == 0:
        raise ValueError(f"exact_idx has shape {exact_idx.shape}: need at least one query and one neighbour")
    if (exact_idx < 0).any():
        raise ValueError("exact_idx must hold non-negative indices")
    srt = np.sort(exact_idx, axis=1)
    if (srt[:, 1:] == srt[:, :-1]).any():
        row = int(np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))[0])
        raise ValueError(f"exact_idx row {row} repeats an index: {exact_idx[row].tolist()}")
    found = (exact_idx[:, :, None] == approx_idx[:, None, :]).any(axis=2)
    return float(found.mean())


# --------------------------------------------------------------------------------------------
# benchmark


def _thread_env() -> dict:
    return {name: os.environ.get(name) for name in THREAD_ENV_VARS}


def benchmark_retrieval(queries: np.ndarray, targets: np.ndarray, k: int = 5, *, repeats: int = 5,
                        ann_params: dict | None = None, chunk: int | None = None, method: str = "auto",
                        alternatives: tuple = ("argpartition", "blockmax", "torch"), ann: bool = True) -> dict:
    """Time the exact and approximate searches of ``queries`` against ``targets``, single-threaded.

    Timed, each as the median wall time over ``repeats`` rounds, after one warm-up round, with the
    candidates interleaved within each round (matmul, batched, loop, ANN search, alternatives,
    matmul, batched, ...):

    * ``seconds_matmul``: a bare ``np.matmul(queries, targets.T, out=S)`` into a preallocated
      (n, m) float32 ``S`` -- the floor for any exact method;
    * ``seconds_topk_batched``: :func:`topk_batched` with ``method`` and ``chunk``;
    * ``seconds_topk_loop``: :func:`topk_loop`;
    * ``seconds_ann_search``: :meth:`AnnIndex.search` (query time only) and
      ``seconds_ann_build``: the median of ``repeats`` index builds (timed separately, before the
      rounds), with ``ann_params`` over :data:`ANN_DEFAULTS`;
    * each of ``alternatives`` (other :data:`METHODS`), in ``by_method``.

    Ratios: ``retrieval_speedup_vs_loop`` = loop / batched, ``topk_time_vs_matmul`` = batched /
    matmul, ``ann_speedup_vs_exact`` = batched / ANN search, ``ann_recall_at_k`` (also under
    ``f"ann_recall_at_{k}"``) = :func:`recall_at_k` of the ANN against the exact top-k.
    ``exact_methods_agree`` is the fraction of queries on which the loop and every alternative
    return the same indices as ``topk_batched`` (below 1 only through last-bit differences between
    BLAS kernels on near-equal scores).

    Threads: numpy's BLAS cannot be re-pinned after import without ``threadpoolctl`` (not a
    dependency), so set ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1`` before
    starting Python; their values are returned under ``threads`` (with ``single_threaded``), and a
    ``RuntimeWarning`` is issued when they are not all ``"1"``. faiss is pinned with
    ``faiss.omp_set_num_threads(1)`` and torch with ``torch.set_num_threads(1)`` for the
    measurement; both are restored afterwards.
    """
    k = _check_pair(queries, targets, k)
    repeats = _check_int(repeats, "repeats", 1)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    alternatives = tuple(a for a in alternatives if a != method)
    for a in alternatives:
        if a not in METHODS:
            raise ValueError(f"alternatives must be among {METHODS}, got {a!r}")
    params = dict(ANN_DEFAULTS)
    if ann_params:
        unknown = set(ann_params) - set(ANN_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown ann_params {sorted(unknown)}; expected keys among {sorted(ANN_DEFAULTS)}")
        params.update(ann_params)
    n, m = queries.shape[0], targets.shape[0]
    if n == 0:
        raise ValueError("benchmark_retrieval needs at least one query")
    env = _thread_env()
    single = all(v == "1" for v in env.values())
    if not single:
        warnings.warn(f"benchmark_retrieval is meant to run single-threaded, but the thread variables are {env}; "
                      f"set OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 before starting Python",
                      RuntimeWarning, stacklevel=2)

    torch_threads_before = None
    torch = None
    if "torch" in (method, *alternatives):
        import torch
        torch_threads_before = torch.get_num_threads()
        torch.set_num_threads(1)
    try:
        S = np.empty((n, m), np.float32)
        targets_t = targets.T
        results: dict[str, tuple] = {}

        def run_matmul():
            np.matmul(queries, targets_t, out=S)

        def run_method(name, key):
            def f():
                results[key] = topk_batched(queries, targets, k, chunk=chunk, method=name)
            return f

        def run_loop():
            results["loop"] = topk_loop(queries, targets, k)

        tasks = {"matmul": run_matmul, "batched": run_method(method, "batched"), "loop": run_loop}
        index = None
        build_times = []
        if ann:
            for _ in range(repeats):
                index = build_ann(targets, threads=1, **params)
                build_times.append(index.build_seconds)

            def run_ann():
                results["ann"] = index.search(queries, k)
            tasks["ann_search"] = run_ann
        for a in alternatives:
            tasks[a] = run_method(a, a)

        times: dict[str, list] = {name: [] for name in tasks}
        for f in tasks.values():  # warm-up round
            f()
        for _ in range(repeats):
            for name, f in tasks.items():
                start = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - start)
    finally:
        if torch is not None:
            torch.set_num_threads(torch_threads_before)

    med = {name: statistics.median(ts) for name, ts in times.items()}
    exact_idx = results["batched"][0]
    others = [results["loop"][0]] + [results[a][0] for a in alternatives]
    agree = np.ones(n, bool)
    for o in others:
        agree &= (o == exact_idx).all(axis=1)
    out = {
        "n_queries": n, "n_targets": m, "dim": queries.shape[1], "k": k, "repeats": repeats,
        "method": method, "chunk": DEFAULT_CHUNK if chunk is None else chunk,
        "threads": {**env, "faiss": 1 if ann else None,
                    "torch": 1 if torch is not None else None},
        "single_threaded": single,
        "seconds_matmul": med["matmul"],
        "seconds_topk_batched": med["batched"],
        "seconds_topk_loop": med["loop"],
        "retrieval_speedup_vs_loop": med["loop"] / med["batched"],
        "topk_time_vs_matmul": med["batched"] / med["matmul"],
        "exact_methods_agree": float(agree.mean()),
        "by_method": {name: {"seconds": med[name if name != method else "batched"],
                             "topk_time_vs_matmul": med[name if name != method else "batched"] / med["matmul"],
                             "retrieval_speedup_vs_loop": med["loop"] / med[name if name != method else "batched"]}
                      for name in (method, *alternatives)},
    }
    if ann:
        recall = recall_at_k(results["ann"][0], exact_idx)
        out.update({
            "ann_params": params,
            "seconds_ann_build": statistics.median(build_times),
            "seconds_ann_search": med["ann_search"],
            "ann_speedup_vs_exact": med["batched"] / med["ann_search"],
            "ann_recall_at_k": recall,
            f"ann_recall_at_{k}": recall,
        })
    return out
