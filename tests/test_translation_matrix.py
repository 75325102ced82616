"""The translation matrix chapter's math: closed form, SGD, Procrustes, retrieval, baselines."""

from __future__ import annotations

import dataclasses
import itertools
import random

import numpy as np
import pytest

from papernotes_core import translation_matrix as tm
from papernotes_core.translation_matrix import mapping


def _rotation(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _pairs(n=300, d1=8, d2=6, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d1))
    W = rng.standard_normal((d2, d1))
    Z = X @ W.T + noise * rng.standard_normal((n, d2))
    return X, Z, W


# --- the closed form and SGD ------------------------------------------------------------------

def test_lstsq_solves_the_normal_equations():
    X, Z, _ = _pairs()
    W = tm.fit_lstsq(X, Z)
    assert W.shape == (6, 8)
    # independent computation: W = ZᵀX (XᵀX)⁻¹
    np.testing.assert_allclose(W, Z.T @ X @ np.linalg.inv(X.T @ X), rtol=1e-9, atol=1e-10)


def test_objective_gradient_matches_finite_differences_and_vanishes_at_the_solution():
    X, Z, _ = _pairs(n=50, d1=4, d2=3)
    rng = np.random.default_rng(1)
    W = rng.standard_normal((3, 4))
    analytic = 2 * (W @ X.T @ X - Z.T @ X)
    eps = 1e-6
    numeric = np.zeros_like(W)
    for i, j in itertools.product(range(3), range(4)):
        E = np.zeros_like(W)
        E[i, j] = eps
        numeric[i, j] = (tm.objective(W + E, X, Z) - tm.objective(W - E, X, Z)) / (2 * eps)
    np.testing.assert_allclose(numeric, analytic, rtol=1e-5, atol=1e-4)
    W_ls = tm.fit_lstsq(X, Z)
    assert np.abs(2 * (W_ls @ X.T @ X - Z.T @ X)).max() < 1e-9


def test_sgd_agrees_with_the_closed_form_to_1e_3():
    X, Z, _ = _pairs(n=400, d1=8, d2=6, noise=0.3)
    W_ls = tm.fit_lstsq(X, Z)
    W_sgd = tm.fit_sgd(X, Z, epochs=300, batch_size=8, seed=0)
    assert np.abs(W_sgd - W_ls).max() < 1e-3
    gap = (tm.objective(W_sgd, X, Z) - tm.objective(W_ls, X, Z)) / tm.objective(W_ls, X, Z)
    assert 0 <= gap < 1e-5


def test_sgd_is_repeatable_and_seeded():
    X, Z, _ = _pairs(n=60)
    a = tm.fit_sgd(X, Z, epochs=3, seed=1)
    np.testing.assert_array_equal(a, tm.fit_sgd(X, Z, epochs=3, seed=1))
    assert not np.array_equal(a, tm.fit_sgd(X, Z, epochs=3, seed=2))


# --- a known rotation -------------------------------------------------------------------------

@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_the_map_recovers_a_rotation(noise):
    d, n, V = 20, 500, 500
    rng = np.random.default_rng(3)
    R = _rotation(d, 4)
    tgt = rng.standard_normal((V, d))
    src = tgt @ R + noise * rng.standard_normal((V, d))       # x = Rᵀ z (+ noise), so W = R
    train = np.arange(n // 2)
    for W in (tm.fit_lstsq(src[train], tgt[train]), tm.fit_procrustes(src[train], tgt[train])):
        assert np.abs(W - R).max() < (1e-8 if noise == 0 else 0.01)
    if noise == 0:
        test = np.arange(n // 2, V)
        idx, cos = tm.translate(tm.fit_lstsq(src[train], tgt[train]), src[test], tgt, 1)
        np.testing.assert_array_equal(idx[:, 0], test)       # P@1 = 1.0
        np.testing.assert_allclose(cos[:, 0], 1.0, atol=1e-5)


def test_procrustes_is_orthogonal_and_beats_every_other_rotation():
    X, Z, _ = _pairs(n=100, d1=5, d2=5, noise=1.0)
    W = tm.fit_procrustes(X, Z)
    np.testing.assert_allclose(W.T @ W, np.eye(5), atol=1e-10)
    best = tm.objective(W, X, Z)
    for s in range(50):
        assert tm.objective(_rotation(5, 100 + s), X, Z) >= best - 1e-9


def test_translate_equals_a_brute_force_cosine_ranking():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((7, 4))
    X = rng.standard_normal((30, 4))
    T = rng.standard_normal((200, 7)) * rng.uniform(0.1, 5, (200, 1))   # norms must not matter
    idx, cos = tm.translate(W, X, T, 5)
    for i in range(30):
        y = W @ X[i]
        sims = [float(y @ t / np.linalg.norm(y) / np.linalg.norm(t)) for t in T]
        expect = sorted(range(200), key=lambda j: (-sims[j], j))[:5]
        assert list(idx[i]) == expect
        np.testing.assert_allclose(cos[i], [sims[j] for j in expect], atol=1e-5)


# --- ranking and precision --------------------------------------------------------------------

def test_topk_from_scores_breaks_ties_by_index():
    s = np.array([[1.0, 3.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(tm.topk_from_scores(s, 3), [[1, 2, 3], [0, 1, 2]])
    with pytest.raises(ValueError, match="k must be an int in"):
        tm.topk_from_scores(s, 5)


def test_precision_at_k_counts_any_correct_translation():
    ranked = [["a", "b", "c"], ["x", "y", "z"], ["p", "q", "r"]]
    gold = [{"b"}, {"x", "zz"}, {"none"}]
    assert tm.precision_at_k(ranked, gold, 1) == pytest.approx(1 / 3)
    assert tm.precision_at_k(ranked, gold, 2) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="fewer than k"):
        tm.precision_at_k(ranked, gold, 4)
    with pytest.raises(ValueError, match="no correct translation"):
        tm.precision_at_k([["a"]], [set()], 1)


# --- the baselines ----------------------------------------------------------------------------

def test_levenshtein_known_values():
    assert tm.levenshtein("kitten", "sitting") == 3
    assert tm.levenshtein("", "abc") == 3
    assert tm.levenshtein("corazón", "corazon") == 1
    assert tm.levenshtein("flaw", "lawn") == 2


def test_edit_distance_matrix_equals_the_dynamic_programme():
    rnd = random.Random(0)
    words = ["".join(rnd.choice("abcñé") for _ in range(rnd.randint(1, 7))) for _ in range(40)]
    D = tm.edit_distance_matrix(words[:15], words)
    assert D.shape == (15, 40) and D.dtype == np.float32
    for i, j in itertools.product(range(15), range(40)):
        a, b = words[i], words[j]
        assert D[i, j] == pytest.approx(tm.levenshtein(a, b) / max(len(a), len(b)), abs=1e-6)
    with pytest.raises(TypeError, match="non-empty str"):
        tm.edit_distance_matrix(["a", ""], ["b"])


def test_cooccurrence_counts_equal_a_brute_force_count():
    rnd = random.Random(1)
    alphabet = list("abcdefg")
    sents = [[rnd.choice(alphabet) for _ in range(rnd.randint(1, 12))] for _ in range(30)]
    vocab = {w: i for i, w in enumerate("abcde")}
    context = {"c": 0, "f": 1, "g": 1}                  # two words share one column
    C = tm.cooccurrence_vectors(sents, vocab, context, 2, window=3)
    ref = np.zeros((5, 2))
    for s in sents:
        for i, w in enumerate(s):
            for j, u in enumerate(s):
                if i != j and abs(i - j) <= 3 and w in vocab and u in context:
                    ref[vocab[w], context[u]] += 1
    np.testing.assert_allclose(C, np.log1p(ref), rtol=1e-6)


# --- embeddings, dictionary, splits -----------------------------------------------------------

def _emb(words, d=4, seed=0, name="E"):
    rng = np.random.default_rng(seed)
    return tm.Embeddings(tuple(words), rng.standard_normal((len(words), d)).astype(np.float32),
                         np.arange(len(words), 0, -1), name)


def test_a_missing_word_is_a_clear_error_or_counted():
    e = _emb(["a", "b", "c"], name="English")
    with pytest.raises(KeyError, match="'zz' is not in the English vocabulary"):
        e.vectors_for(["a", "zz"])
    v, kept, skipped = e.vectors_for(["a", "zz", "c", "yy"], skip_missing=True)
    assert kept == ["a", "c"] and skipped == 2 and v.shape == (2, 4)


def test_a_dictionary_without_shared_words_is_an_error():
    src, tgt = _emb(["a", "b"], name="English"), _emb(["x", "y"], name="Spanish")
    with pytest.raises(ValueError, match="no dictionary pair has both words"):
        tm.seed_dictionary([("a", "q"), ("z", "x")], src, tgt)
    assert tm.seed_dictionary([("a", "y"), ("a", "x"), ("b", "q")], src, tgt) == {"a": ("x", "y")}


def test_mismatched_dimensions_are_clear_errors():
    with pytest.raises(ValueError, match="one row per dictionary pair"):
        tm.fit_lstsq(np.zeros((5, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="same dimension on both sides"):
        tm.fit_procrustes(np.ones((5, 3)), np.ones((5, 4)))
    with pytest.raises(ValueError, match="targets must have shape"):
        tm.translate(np.zeros((4, 3)), np.zeros((2, 3)), np.zeros((10, 5)), 1)
    with pytest.raises(TypeError, match="must hold floats"):
        tm.fit_lstsq(np.zeros((5, 3), dtype=int), np.zeros((5, 3)))


def test_frequency_splits_are_disjoint_stratified_and_cover_every_word():
    words = [f"w{i:03d}" for i in range(103)]
    src = _emb(words)
    dev, folds = tm.frequency_splits(words, src, folds=5, dev_every=5)
    ranked = sorted(words, key=lambda w: -int(src.counts[src.index[w]]))
    assert dev == ranked[2::5]
    flat = [w for f in folds for w in f]
    assert sorted(flat + dev) == sorted(words) and len(set(flat) | set(dev)) == 103
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    # every fold holds frequent and rare words alike
    pos = {w: r for r, w in enumerate(ranked)}
    assert all(min(pos[w] for w in f) < 10 and max(pos[w] for w in f) > 90 for f in folds)


def test_select_lambda_uses_the_words_it_is_given():
    tgt = _emb(["casa", "perro", "gato"])
    gold = {"house": ("casa",), "cat": ("gato",)}
    cos = np.array([[0.1, 0.9, 0.0], [0.0, 0.0, 0.2]])     # house -> perro by meaning alone
    dist = np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])    # spelling says casa / gato
    lam, table = tm.select_lambda(cos, dist, ["house", "cat"], gold, tgt, lambdas=(0.0, 0.5, 1.0))
    assert table[0.0] == 0.5 and table[1.0] == 1.0 and lam == 1.0


def test_evaluate_fold_on_rotated_spaces_is_perfect():
    d, V = 16, 300
    rng = np.random.default_rng(7)
    R = _rotation(d, 8)
    tz = rng.standard_normal((V, d)).astype(np.float32)
    words_s = tuple(f"s{i}" for i in range(V))
    words_t = tuple(f"t{i}" for i in range(V))
    src = tm.Embeddings(words_s, (tz @ R).astype(np.float32), np.arange(V, 0, -1), "src")
    tgt = tm.Embeddings(words_t, tz, np.arange(V, 0, -1), "tgt")
    gold = {f"s{i}": (f"t{i}",) for i in range(V)}
    res = tm.evaluate_fold(src, tgt, gold, list(words_s[:200]), list(words_s[200:]), lam=0.0,
                           methods=("matrix", "procrustes", "edit_distance"), details=True)
    assert res["matrix"] == (1.0, 1.0) and res["procrustes"] == (1.0, 1.0)
    assert res["gold_rank"] == [1] * 100
    with pytest.raises(ValueError, match="needs cooc"):
        tm.evaluate_fold(src, tgt, gold, list(words_s[:200]), list(words_s[200:]), lam=0.0, methods=("cooccurrence",))


def test_word2vec_repeats_with_its_seed():
    rnd = random.Random(0)
    sents = [[rnd.choice("abcdefghij") for _ in range(10)] for _ in range(300)]
    a = tm.train_word2vec(sents, dim=8, epochs=2, min_count=1, seed=3)
    b = tm.train_word2vec(sents, dim=8, epochs=2, min_count=1, seed=3)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.words == b.words and a.dim == 8
    # the word hash gensim seeds vectors with does not depend on PYTHONHASHSEED
    assert tm._stable_hash("abc0") == tm._stable_hash("abc0") == 1164533596


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="sg must be 0"):
        tm.Config(sg=2)
    with pytest.raises(ValueError, match="candidates must be"):
        tm.Config(candidates=((0, 100),))
    with pytest.raises(ValueError, match="fractions"):
        tm.Config(fractions=(1.0,))
    for scale in ("quick", "cpu", "paper"):
        assert dataclasses.asdict(getattr(tm.Config, scale)())


@pytest.mark.slow
def test_the_study_runs_end_to_end_on_the_bibles(tmp_path):
    from papernotes_core.data import sword

    pytest.importorskip("gensim")
    if not sword.SWORD_MODULES["engKJV2006eb"].source.root.joinpath(
            "usr/share/sword/modules/texts/ztext/engKJV2006eb/ot.bzz").exists():
        pytest.skip("the Bibles are not installed (apt-get install sword-text-kjv sword-text-sparv)")
    config = tm.Config(dim_src=12, dim_tgt=12, epochs=1, seeds=(0, 1), folds=2, candidates=((0, 10, 10), (0, 12, 12)),
                       fractions=(0.5,), halves_probe=True, sgd_epochs=2)
    keep = {}
    out = tm.run(config, scale="quick", write=False, keep=keep)
    m = out["metrics"]
    for meth in tm.METHODS:
        assert 0 <= m[f"p_at_1.{meth}"] <= m[f"p_at_5.{meth}"] <= 1
    assert m["selected.dim_src"] in (10, 12) and "dev_p_at_5.cbow10_10" in m
    assert {"probe_p_at_5.same.cooccurrence", "probe_p_at_5.other.matrix", "p_at_5_frac0.5.matrix"} <= set(m)
    assert [p[0] for p in out["curves"]["p_at_5_vs_tokens.matrix"]] == [0.5 * m["tokens.en"], m["tokens.en"]]
    assert len(keep["details"]) == sum(map(len, keep["folds"]))
    assert set(keep["dev"]).isdisjoint(w for f in keep["folds"] for w in f)


# --- the paper's kind of data: pretrained vectors and a MUSE-style split ------------------------

def _write_vec(path, words, vectors, header=None):
    lines = [header or f"{len(words)} {vectors.shape[1]}"]
    lines += [w + " " + " ".join(f"{v:.6f}" for v in row) for w, row in zip(words, vectors)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_pretrained_vectors_and_split_on_rotated_spaces(tmp_path):
    from papernotes_core.translation_matrix import pretrained

    d, V = 12, 400
    rng = np.random.default_rng(11)
    R = _rotation(d, 12)
    z = rng.standard_normal((V, d))
    en = [f"en{i}" for i in range(V)]
    es = [f"es{i}ñ" for i in range(V)]
    _write_vec(tmp_path / "en.vec", en, z @ R)
    _write_vec(tmp_path / "es.vec", es, z)
    (tmp_path / "train.txt").write_text("".join(f"en{i} es{i}ñ\n" for i in range(300)), encoding="utf-8")
    (tmp_path / "test.txt").write_text("".join(f"en{i} es{i}ñ\n" for i in range(300, 400))
                                       + "unknown es1ñ\n", encoding="utf-8")
    src = pretrained.read_text_vectors(tmp_path / "en.vec", name="English")
    tgt = pretrained.read_text_vectors(tmp_path / "es.vec", limit=V, name="Spanish")
    np.testing.assert_allclose(src.vectors, (z @ R).astype(np.float32), atol=1e-5)
    out = pretrained.evaluate_split(src, tgt, pretrained.read_pairs(tmp_path / "train.txt"),
                                    pretrained.read_pairs(tmp_path / "test.txt"))
    assert out["matrix"] == (1.0, 1.0) and out["procrustes"] == (1.0, 1.0)
    assert out["test_words"] == 100 and out["coverage"] == pytest.approx(100 / 101)
    assert len(pretrained.read_text_vectors(tmp_path / "en.vec", limit=7)) == 7


def test_pretrained_readers_name_the_bad_line(tmp_path):
    from papernotes_core.translation_matrix import pretrained

    p = tmp_path / "v.vec"
    p.write_text("2 3\na 1 2 3\nb 1 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 3 has 2 values after the word, expected 3"):
        pretrained.read_text_vectors(p)
    p.write_text("two 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1 must be '<count> <dim>'"):
        pretrained.read_text_vectors(p)
    p.write_text("2 2\na 1 x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a number"):
        pretrained.read_text_vectors(p)
    p.write_text("2 2\na 1 2\na 3 4\n", encoding="utf-8")
    e = pretrained.read_text_vectors(p)
    assert e.words == ("a",) and e.vectors.tolist() == [[1.0, 2.0]]      # first vector kept
    q = tmp_path / "d.txt"
    q.write_text("a b\nc\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 must hold two words"):
        pretrained.read_pairs(q)
    with pytest.raises(FileNotFoundError, match="full-scale section"):
        pretrained.read_pairs(tmp_path / "missing.txt")
