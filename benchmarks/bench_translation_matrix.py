"""Searching the whole target vocabulary: the translation-matrix chapter's retrieval benchmark.

The 1,000 most frequent English words, mapped into the Spanish space by the translation matrix
(fitted on every usable FreeDict pair), are the queries; the targets are the whole Spanish
vocabulary; both are unit-length float32 vectors from word2vec trained on the Bibles with the
setting the committed ``cpu`` run chose (CBOW, 100 dimensions, when there is no such run). In
one fresh process pinned to one thread (``OMP_NUM_THREADS`` = ``OPENBLAS_NUM_THREADS`` =
``MKL_NUM_THREADS`` = 1, set before numpy loads; faiss and torch pinned to one thread too),
:func:`papernotes_core.translation_matrix.retrieval.benchmark_retrieval` times, interleaved:

* a bare float32 product ``queries @ targets.T`` of the same shape;
* the exact top 5 by one batched product, selected by five row-wise ``argmax`` passes
  (``topk_batched``'s default for small ``k``), and the same product followed by
  ``np.argpartition`` over every row, by block-maximum pruning then ``argpartition``, and by
  ``torch.topk`` (``metrics.<figure>.<method>``);
* the per-word loop: one matrix-vector product and one ``argpartition`` per query
  (``topk_loop``);
* an HNSW index (faiss, 32 links per node, efConstruction 200, efSearch 32): build time, query
  time and recall@5 against the exact top 5; then,
  on one index, recall@5 and query time for efSearch 8 to 128 (``curves``).

Writes ``results/bench/translation_matrix.json``: ``metrics.retrieval_speedup_vs_loop`` (loop /
batched), ``metrics.topk_time_vs_matmul`` (batched / bare product),
``metrics.ann_recall_at_5``, ``metrics.ann_speedup_vs_exact`` (batched / ANN search) and the
seconds of each, with the shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from papernotes_core import results

NAME = "translation_matrix"
N_QUERIES = 1000
K = 5

_CHILD = r"""
import json, sys
import numpy as np
from papernotes_core import results
from papernotes_core import translation_matrix as tm
from papernotes_core.translation_matrix import retrieval

sg, dim_src, dim_tgt, epochs, n_queries, k, repeats = (int(a) for a in sys.argv[1:8])
en, es = tm.bible_sentences("en"), tm.bible_sentences("es")
kw = dict(sg=sg, window=5, epochs=epochs, negative=10, sample=1e-4, min_count=5, seed=0)
src = tm.train_word2vec(en, dim=dim_src, name="English", **kw)
tgt = tm.train_word2vec(es, dim=dim_tgt, name="Spanish", **kw)
gold = tm.seed_dictionary(tm.dictionary_pairs(), src, tgt)
X, Z = tm._pairs_matrix(list(gold), gold, src, tgt)
W = tm.fit_lstsq(X, Z)
mapped = (src.vectors[:n_queries].astype(np.float64) @ W.T).astype(np.float32)
queries = retrieval.normalize_rows(mapped)
targets = retrieval.normalize_rows(tgt.vectors)
# efSearch 32: the smallest of the sweep below with recall@5 above 0.95 on these vectors
out = retrieval.benchmark_retrieval(queries, targets, k, repeats=repeats, ann_params={"ef_search": 32})
# the HNSW search's trade-off: recall@k and query time against efSearch, on one index
import statistics, time
exact, _ = retrieval.topk_batched(queries, targets, k)
index = retrieval.build_ann(targets, threads=1, ef_search=32)
sweep = []
for ef in (8, 16, 32, 64, 128):
    index.ef_search = ef
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        idx, _ = index.search(queries, k)
        times.append(time.perf_counter() - t0)
    sweep.append([ef, retrieval.recall_at_k(idx, exact), statistics.median(times)])
out["ef_sweep"] = sweep
print("BENCH " + json.dumps(out))
"""


def run(write: bool = True, repeats: int = 7, epochs: int = 30, n_queries: int = N_QUERIES) -> dict:
    """Run the benchmark in a fresh single-threaded process; ``epochs`` and ``n_queries`` are
    smaller only in the tests."""
    start = time.perf_counter()
    try:
        cpu = results.read(NAME, "cpu")["metrics"]
        sg, dim_src, dim_tgt = (int(cpu["selected.sg"]), int(cpu["selected.dim_src"]), int(cpu["selected.dim_tgt"]))
    except (FileNotFoundError, KeyError):
        sg, dim_src, dim_tgt = 0, 100, 100
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(sg), str(dim_src), str(dim_tgt), str(epochs),
                           str(n_queries), str(K), str(repeats)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the benchmark's child process failed:\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH "))
    raw = json.loads(line[len("BENCH "):])
    metrics = {k: float(v) for k, v in raw.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for method, figures in raw["by_method"].items():
        for name, value in figures.items():
            metrics[f"{name}.{method}"] = float(value)
    data = {
        "slug": NAME, "scale": "bench", "metrics": metrics,
        "curves": {"ann_recall_vs_ef_search": [[ef, r] for ef, r, _ in raw["ef_sweep"]],
                   "ann_seconds_vs_ef_search": [[ef, t] for ef, _, t in raw["ef_sweep"]]},
        "paper": {},
        "provenance": results.provenance(
            {"sg": sg, "dim_src": dim_src, "dim_tgt": dim_tgt, "epochs": epochs, "n_queries": n_queries, "k": K,
             "repeats": repeats, "threads": raw.get("threads"), "ann_params": raw.get("ann_params")},
            [0], wall_s=time.perf_counter() - start, device="cpu", command=f"python -m benchmarks {NAME}"),
    }
    data = results.validate(data)
    if write:
        results.write(data)
    return data
