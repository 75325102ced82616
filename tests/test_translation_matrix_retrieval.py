"""Searching the target vocabulary: every exact search equals a full stable sort; the ANN."""

from __future__ import annotations

import numpy as np
import pytest

from papernotes_core.translation_matrix import retrieval as R

EXACT = [m for m in R.METHODS]


def _data(n=60, m=500, d=16, seed=0):
    q, t = R.synthetic_embeddings(n, m, d, n_centres=20, seed=seed)
    return q, t


def _with_ties(seed=1):
    rng = np.random.default_rng(seed)
    # few distinct values, so that many scores tie, also at the k-th place
    t = rng.integers(-2, 3, size=(300, 4)).astype(np.float32)
    q = rng.integers(-2, 3, size=(40, 4)).astype(np.float32)
    return q, t


@pytest.mark.parametrize("method", EXACT)
@pytest.mark.parametrize("k", [1, 5, 37])
def test_batched_methods_equal_the_stable_sort(method, k):
    for q, t in (_data(), _with_ties()):
        ref_i, ref_s = R.topk_reference(q, t, k)
        for chunk in (None, 7, len(q)):
            i, s = R.topk_batched(q, t, k, chunk=chunk, method=method)
            np.testing.assert_array_equal(i, ref_i)
            np.testing.assert_allclose(s, ref_s, rtol=1e-6, atol=1e-6)


def test_k_equal_to_the_vocabulary_is_a_full_ranking():
    q, t = _with_ties()
    for method in EXACT:
        i, _ = R.topk_batched(q, t, len(t), method=method)
        np.testing.assert_array_equal(i, np.argsort(-(q @ t.T), axis=1, kind="stable"))


def test_the_loop_equals_the_reference_and_scores_are_cosines():
    q, t = _data()
    i, s = R.topk_loop(q, t, 5)
    ref_i, _ = R.topk_reference(q, t, 5)
    np.testing.assert_array_equal(i, ref_i)
    for r in range(len(q)):
        for col in range(5):
            cos = float(np.dot(q[r].astype(np.float64), t[i[r, col]].astype(np.float64)))
            assert s[r, col] == pytest.approx(cos, abs=1e-5)
    qt, tt = _with_ties()
    np.testing.assert_array_equal(R.topk_loop(qt, tt, 5)[0], R.topk_reference(qt, tt, 5)[0])


def test_scores_equal_independent_float64_cosines():
    rng = np.random.default_rng(3)
    q = R.normalize_rows(rng.standard_normal((10, 8)))
    t = R.normalize_rows(rng.standard_normal((50, 8)) * rng.uniform(0.1, 10, (50, 1)))
    i, s = R.topk_batched(q, t, 3)
    for r in range(10):
        for col in range(3):
            a, b = q[r].astype(np.float64), t[i[r, col]].astype(np.float64)
            assert s[r, col] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-6)


def test_normalize_rows_against_numpy_and_its_errors():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((20, 5)) * 1e30
    np.testing.assert_allclose(R.normalize_rows(x), x / np.linalg.norm(x, axis=1, keepdims=True), rtol=1e-6)
    assert R.normalize_rows(x).dtype == np.float32
    bad = rng.standard_normal((4, 3))
    bad[2] = 0
    with pytest.raises(ValueError, match="row 2 of x is all zeros"):
        R.normalize_rows(bad)
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="must be finite"):
        R.normalize_rows(bad)
    with pytest.raises(TypeError, match="floating-point"):
        R.normalize_rows(np.ones((2, 2), dtype=int))
    with pytest.raises(ValueError, match="2-D"):
        R.normalize_rows(np.ones(3))


def test_bad_input_is_a_clear_error():
    q, t = _data()
    with pytest.raises(ValueError, match="dimension mismatch"):
        R.topk_batched(q, t[:, :8].copy(), 5)
    with pytest.raises(ValueError, match="1 <= k <= number of targets"):
        R.topk_batched(q, t, len(t) + 1)
    with pytest.raises(TypeError, match="dtype float32"):
        R.topk_batched(q.astype(np.float64), t, 5)
    with pytest.raises(ValueError, match="method must be one of"):
        R.topk_batched(q, t, 5, method="heap")
    with pytest.raises(TypeError, match="k must be an int"):
        R.topk_loop(q, t, 2.0)


def test_recall_at_k_on_hand_made_cases():
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    assert R.recall_at_k(np.array([[3, 2, 1], [4, 9, 8]]), exact) == pytest.approx(4 / 6)
    assert R.recall_at_k(np.array([[-1, -1, -1], [-1, 5, 6]]), exact) == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="repeats an index"):
        R.recall_at_k(exact, np.array([[1, 1, 2], [4, 5, 6]]))


def test_the_flat_index_is_exact_and_hnsw_reaches_the_recall_bar():
    pytest.importorskip("faiss")
    q, t = R.synthetic_embeddings(300, 8000, 100, n_centres=200, seed=5)
    exact, _ = R.topk_batched(q, t, 5)
    flat = R.build_ann(t, kind="flat")
    np.testing.assert_array_equal(flat.search(q, 5)[0], exact)
    hnsw = R.build_ann(t)
    assert R.recall_at_k(hnsw.search(q, 5)[0], exact) >= 0.9
    with pytest.raises(ValueError, match="dimension mismatch"):
        hnsw.search(q[:, :50].copy(), 5)


def test_benchmark_reports_the_ratios_it_is_asked_for(monkeypatch):
    pytest.importorskip("faiss")
    q, t = _data(n=50, m=2000, d=16)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    with pytest.warns(RuntimeWarning, match="single-threaded"):
        out = R.benchmark_retrieval(q, t, 5, repeats=1)
    for key in ("retrieval_speedup_vs_loop", "topk_time_vs_matmul", "ann_recall_at_5", "ann_speedup_vs_exact"):
        assert out[key] > 0
    assert out["retrieval_speedup_vs_loop"] == pytest.approx(out["seconds_topk_loop"] / out["seconds_topk_batched"])
    assert out["exact_methods_agree"] == 1.0 and set(out["by_method"]) == {"auto", "argpartition", "blockmax", "torch"}
    assert out["threads"]["OMP_NUM_THREADS"] == "4" and not out["single_threaded"]


# --- block-max pruning path (m large enough not to fall back), exact ties on exactly-representable
# data, and the flat faiss index on ties
def _sparse_units(n, d=16, seed=0):
    """Unit vectors with four entries of +-1/2: every inner product is an exact multiple of 1/4,
    so every BLAS kernel gives the same bits and many scores tie exactly."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, d), np.float32)
    for row in x:
        row[rng.choice(d, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return x


def _dyadic(n, d=16, seed=0):
    """Rows of norm about 1 whose entries are multiples of 1/64: every product and partial sum is a
    multiple of 2**-12 below ~1 in size, exact in float32, so all kernels agree to the bit."""
    g = np.random.default_rng(seed).standard_normal((n, d))
    return (np.round(64 * g / np.linalg.norm(g, axis=1, keepdims=True)) / 64).astype(np.float32)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_block_pruning_is_exact_with_ties_and_a_partial_last_block(k):
    # 3001 targets: large enough for the block-max path to prune (not fall back), and not a
    # multiple of the block count, so the partial last interleaved row is exercised.
    q, t = _sparse_units(64, seed=1), _sparse_units(3001, seed=2)
    t[2000:2010] = t[5]  # deliberate duplicates
    assert R._n_blocks(len(t), k) > 0 and len(t) % R._n_blocks(len(t), k) != 0
    ref_i, ref_s = R.topk_reference(q, t, k)
    for method in R.METHODS:
        for chunk in (None, 5):
            i, s = R.topk_batched(q, t, k, chunk=chunk, method=method)
            np.testing.assert_array_equal(i, ref_i, err_msg=f"{method}, chunk={chunk}")
            np.testing.assert_array_equal(s, ref_s, err_msg=f"{method}, chunk={chunk}")
    i, s = R.topk_loop(q, t, k)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(s, ref_s)


def test_block_pruning_on_gaussian_data_equals_the_reference():
    q, t = R.synthetic_embeddings(200, 5003, 32, n_centres=50, seed=7)
    assert R._n_blocks(len(t), 5) > 0
    ref_i, ref_s = R.topk_reference(q, t, 5)
    i, s = R.topk_batched(q, t, 5, method="blockmax", chunk=len(q))
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(s, ref_s)  # same matmul, same bits


def test_every_score_tied_keeps_the_lowest_indices():
    t = np.tile(_sparse_units(1, seed=5), (3001, 1))
    q = _sparse_units(7, seed=6)
    q[:3] = t[0]  # score 1 for every target; the others score an exact multiple of 1/4
    expected = np.tile(np.arange(6), (7, 1))
    for method in R.METHODS:
        np.testing.assert_array_equal(R.topk_batched(q, t, 6, method=method)[0], expected, err_msg=method)
    np.testing.assert_array_equal(R.topk_loop(q, t, 6)[0], expected)
    np.testing.assert_array_equal(R.topk_reference(q, t, 6)[0], expected)


def test_the_flat_index_equals_the_reference_up_to_faiss_choice_among_boundary_ties():
    pytest.importorskip("faiss")
    q, t = _dyadic(60, seed=3), _dyadic(400, seed=4)
    t[100:110] = t[7]  # eleven equal targets
    q[:6] = t[7]  # these queries have an eleven-way tie at the top, so at the 5th place
    S = q @ t.T
    ref_i, ref_s = R.topk_reference(q, t, 5)
    i, s = R.build_ann(t, kind="flat").search(q, 5)
    np.testing.assert_array_equal(s, ref_s)  # the top-5 scores are unique even when the indices are not
    np.testing.assert_array_equal(s, np.take_along_axis(S, i, 1))
    full = -np.sort(-S, axis=1)
    unique_boundary = full[:, 4] > full[:, 5]
    assert 40 <= unique_boundary.sum() < len(q)
    np.testing.assert_array_equal(i[unique_boundary], ref_i[unique_boundary])
    assert set(i[:6].ravel()) <= {7, *range(100, 110)}
    assert (np.diff(i[:6], axis=1) > 0).all()  # ties inside the k ordered by index
