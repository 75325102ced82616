"""Mikolov, Le & Sutskever 2013, "Exploiting Similarities among Languages for Machine
Translation", on the King James Bible, the Reina-Valera 1909 and FreeDict's English-Spanish
dictionary.

The method (Sec. 3): train word vectors separately on monolingual text in each language; learn
a linear map ``W`` from source to target vectors on a seed dictionary by minimising
``Σ_i ‖W x_i − z_i‖²``; translate a new source word ``x`` to the target words whose vectors
are closest in cosine to ``W x``. The two word2vec models here never see that the Bibles are
translations of each other: each is trained on its own language's verses, shuffled
independently, and the verse alignment is never used (not even for the corpus-size curve, which
draws verses for each language independently).

The evaluation follows the paper's protocol at our data's size: the paper trains on the 5,000
most frequent source words and tests on the next 1,000; FreeDict and the Bibles share about a
thousand usable English words, so the words are split by frequency rank: every fifth rank
(ranks 2, 7, 12, ...) is a development set used only to choose settings (the word2vec
settings at ``cpu`` scale, the weight of the edit distance in the combination), and the rest
are split into ``folds`` folds, again round-robin by rank (stratified by frequency). Each fold
is tested with ``W`` trained on the other folds and the development words. A test word counts
as translated at ``k`` when one of its dictionary translations is among the top ``k``.

Methods (``METHODS``): ``matrix`` (the paper's ``W`` in closed form), ``procrustes`` (``W``
orthogonal, on unit-length vectors: the later improvement of Xing et al. 2015),
``edit_distance`` (the spelling baseline), ``cooccurrence`` (context counts over the seed
dictionary), ``combined`` (matrix cosine minus ``λ`` × normalised edit distance, ``λ`` chosen on
the development words).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .. import results, runtime
from .mapping import (cooccurrence_vectors, edit_distance_matrix, fit_lstsq, fit_procrustes, fit_sgd, levenshtein,
                      objective, precision_at_k, topk_from_scores, translate)
from .retrieval import normalize_rows

__all__ = [
    "METHODS", "PAPER", "SLUG", "Config", "Embeddings", "bible_sentences", "cooccurrence_vectors",
    "dictionary_entries", "edit_distance_matrix", "evaluate_fold", "fit_lstsq", "fit_procrustes", "fit_sgd",
    "frequency_splits", "levenshtein", "main", "objective", "precision_at_k", "run", "seed_dictionary",
    "select_lambda", "topk_from_scores", "train_word2vec", "translate",
]

SLUG = "translation_matrix"
METHODS = ("matrix", "procrustes", "edit_distance", "cooccurrence", "combined")
MODULES = {"en": "engKJV2006eb", "es": "spaRV1909eb"}
LAMBDAS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)

_T2 = "Table 2, WMT11 En→Es (575M English / 84M Spanish tokens; 5K seed words, the next 1K tested)"
PAPER = {
    "p_at_1.edit_distance": {"value": 0.13, "status": "V", "source": _T2 + ", edit distance P@1"},
    "p_at_5.edit_distance": {"value": 0.24, "status": "V", "source": _T2 + ", edit distance P@5"},
    "p_at_1.cooccurrence": {"value": 0.19, "status": "V", "source": _T2 + ", word co-occurrence P@1"},
    "p_at_5.cooccurrence": {"value": 0.30, "status": "V", "source": _T2 + ", word co-occurrence P@5"},
    "p_at_1.matrix": {"value": 0.33, "status": "V", "source": _T2 + ", translation matrix P@1"},
    "p_at_5.matrix": {"value": 0.51, "status": "V", "source": _T2 + ", translation matrix P@5"},
    "p_at_1.combined": {"value": 0.43, "status": "V", "source": _T2 + ", ED + TM P@1"},
    "p_at_5.combined": {"value": 0.60, "status": "V", "source": _T2 + ", ED + TM P@5"},
    "p_at_5.matrix_google_news": {"value": 0.75, "status": "V",
                                  "source": "Table 3, En→Es on Google News data (billions of words), threshold 0, "
                                            "coverage 92.5%, P@5"},
}


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Config:
    """One study. Word2vec (gensim, ``workers=1`` so that a seed repeats): ``sg`` 0 = CBOW, 1 =
    skip-gram; ``dim_src``/``dim_tgt`` the English/Spanish dimensions; ``window``, ``epochs``,
    ``negative`` samples, ``sample`` (frequent-word subsampling), ``min_count`` (rarer words
    have no vector). ``seeds``: word2vec seeds, each evaluated on every fold. ``candidates``:
    ``(sg, dim_src, dim_tgt)`` settings compared on the development words with ``seeds[0]`` before the main
    run, the best (P@5 of ``matrix``) replacing ``sg``/``dim_src``/``dim_tgt`` (empty: no
    selection). ``cooc_window``: the co-occurrence baseline's window (the paper: up to 10).
    ``halves_probe``: a test of why co-occurrence counts do well on two Bibles. For each seed,
    a random half of the verses is drawn; the models are trained on the English of that half
    and on the Spanish of (a) the same half, a parallel corpus, and (b) the other half, two
    texts of the same kind that are not translations of each other; P@5 of the map, the
    orthogonal map and co-occurrence are reported for both (``probe_p_at_5.<same|other>.<m>``). ``fractions``: corpus fractions (< 1) for the curve of P@5 against the amount of
    text, each trained with every seed. ``sgd_epochs``/``sgd_batch``: the SGD fit compared with
    the closed form on fold 0 of each seed.
    """

    sg: int = 0
    dim_src: int = 100
    dim_tgt: int = 100
    window: int = 5
    epochs: int = 30
    negative: int = 10
    sample: float = 1e-4
    min_count: int = 5
    seeds: tuple[int, ...] = (0, 1, 2)
    folds: int = 5
    dev_every: int = 5
    candidates: tuple[tuple[int, int, int], ...] = ()
    fractions: tuple[float, ...] = ()
    sgd_epochs: int = 200
    sgd_batch: int = 16
    cooc_window: int = 10
    halves_probe: bool = False
    threads: int | None = 1

    def __post_init__(self):
        if self.sg not in (0, 1):
            raise ValueError(f"sg must be 0 (CBOW) or 1 (skip-gram), got {self.sg!r}")
        for name, minimum in (("dim_src", 1), ("dim_tgt", 1), ("window", 1), ("epochs", 1), ("negative", 1),
                              ("min_count", 1), ("folds", 2), ("dev_every", 2), ("sgd_epochs", 1), ("sgd_batch", 1),
                              ("cooc_window", 1)):
            _check_int(name, getattr(self, name), minimum)
        if not (isinstance(self.sample, float) and 0 <= self.sample < 1):
            raise ValueError(f"sample must be a float in [0, 1), got {self.sample!r}")
        if (not isinstance(self.seeds, tuple) or not self.seeds or len(set(self.seeds)) != len(self.seeds)
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.seeds)):
            raise ValueError(f"seeds must be a non-empty tuple of distinct ints >= 0, got {self.seeds!r}")
        if not isinstance(self.candidates, tuple) or not all(
                isinstance(c, tuple) and len(c) == 3 and c[0] in (0, 1)
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in c[1:])
                for c in self.candidates):
            raise ValueError(f"candidates must be a tuple of (sg in {{0, 1}}, dim_src >= 1, dim_tgt >= 1), "
                             f"got {self.candidates!r}")
        if not isinstance(self.fractions, tuple) or not all(
                isinstance(f, float) and 0 < f < 1 for f in self.fractions):
            raise ValueError(f"fractions must be a tuple of floats in (0, 1), got {self.fractions!r}")

    def word2vec(self, seed: int) -> dict:
        """The gensim settings for one language model except its dimension."""
        return dict(sg=self.sg, window=self.window, epochs=self.epochs, negative=self.negative,
                    sample=self.sample, min_count=self.min_count, seed=seed)

    @classmethod
    def quick(cls) -> "Config":
        """CI scale: CBOW with 50 dimensions for 10 epochs on the whole of each Bible, one seed,
        all five folds; no setting selection and no corpus-size curve (the notebook shows the
        committed ``cpu`` ones)."""
        return cls(sg=0, dim_src=50, dim_tgt=50, epochs=10, seeds=(0,), sgd_epochs=50)

    @classmethod
    def cpu(cls) -> "Config":
        """Two cores: CBOW or skip-gram and the dimension chosen on the development words among
        ``candidates`` (CBOW at 50, 100 and 300 dimensions, skip-gram at 100; equal sizes on
        both sides, so that the orthogonal map applies; 30 epochs, window 5, 10 negative
        samples), three seeds × five folds, the curve over 1/8, 1/4 and 1/2 of each Bible, and
        the halves probe."""
        return cls(sg=0, dim_src=100, dim_tgt=100, epochs=30, seeds=(0, 1, 2),
                   candidates=((0, 50, 50), (0, 100, 100), (0, 300, 300), (1, 100, 100)),
                   fractions=(0.125, 0.25, 0.5), halves_probe=True)

    @classmethod
    def paper(cls) -> "Config":
        """The paper's model sizes on our corpus: CBOW, 800-dimensional English and
        200-dimensional Spanish vectors (its best En→Es setting, Sec. 5.2), window 10, otherwise
        as ``cpu`` without the selection. The paper's own data (575M English / 84M Spanish tokens
        of WMT11, billions of Google News words) is not available offline: see the chapter."""
        return cls(sg=0, dim_src=800, dim_tgt=200, window=10, epochs=30, seeds=(0, 1, 2),
                   fractions=(0.125, 0.25, 0.5))


# --------------------------------------------------------------------------------------------
# Data: two Bibles and one dictionary
# --------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _all_verse_tokens(lang: str) -> tuple[tuple[str, ...], ...]:
    """Every verse of the KJV versification, in canonical order, tokenised (empty where the
    module has no text), so that index ``i`` is the same verse in both languages."""
    from ..data.sword import load_bible

    if lang not in MODULES:
        raise ValueError(f"lang must be one of {sorted(MODULES)}, got {lang!r}")
    return tuple(tuple(t) for t in load_bible(MODULES[lang]).tokens())


def _verse_tokens(lang: str) -> tuple[tuple[str, ...], ...]:
    return tuple(t for t in _all_verse_tokens(lang) if t)


def bible_sentences(lang: str, fraction: float = 1.0, seed: int = 0) -> list[list[str]]:
    """The tokenised verses of one Bible (``"en"``: King James, ``"es"``: Reina-Valera 1909),
    one list per non-empty verse, in canonical order; with ``fraction`` < 1 a random subset of
    that share of the verses, drawn with ``seed`` separately for each language (so the two
    subsets are not translations of each other)."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    verses = _verse_tokens(lang)
    if fraction == 1:
        return [list(v) for v in verses]
    rng = np.random.default_rng([seed, 1 + sorted(MODULES).index(lang)])
    keep = np.sort(rng.choice(len(verses), size=max(1, round(fraction * len(verses))), replace=False))
    return [list(verses[i]) for i in keep]


@functools.lru_cache(maxsize=1)
def dictionary_entries():
    """FreeDict English→Spanish (``data.freedict.load_freedict("eng-spa")``)."""
    from ..data.freedict import load_freedict

    return tuple(load_freedict("eng-spa"))


def dictionary_pairs() -> list[tuple[str, str]]:
    """FreeDict's single-word (English, Spanish) pairs, lower-case."""
    from ..data.freedict import translation_pairs

    return translation_pairs(dictionary_entries(), single_words=True)


# --------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class Embeddings:
    """A vocabulary with one vector per word: ``words`` (most frequent first), ``vectors``
    float32 ``(V, d)``, ``counts`` (corpus frequency), ``name`` (for messages)."""

    words: tuple[str, ...]
    vectors: np.ndarray
    counts: np.ndarray
    name: str = "embeddings"

    def __post_init__(self):
        if not isinstance(self.vectors, np.ndarray) or self.vectors.ndim != 2:
            raise ValueError(f"vectors must be a 2-D array (words, dimension), got "
                             f"{getattr(self.vectors, 'shape', type(self.vectors).__name__)}")
        if len(self.words) != self.vectors.shape[0] or len(self.counts) != len(self.words):
            raise ValueError(f"words ({len(self.words)}), vectors ({self.vectors.shape[0]} rows) and counts "
                             f"({len(self.counts)}) must have one entry per word")
        index = {w: i for i, w in enumerate(self.words)}
        if len(index) != len(self.words):
            raise ValueError("words must be distinct")
        object.__setattr__(self, "index", index)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word) -> bool:
        return word in self.index

    def vectors_for(self, words: Sequence[str], *, skip_missing: bool = False) -> tuple[np.ndarray, list[str], int]:
        """``(vectors, kept_words, n_skipped)`` for ``words``. A word not in the vocabulary is a
        ``KeyError`` naming it, unless ``skip_missing``, which drops it and counts it."""
        if isinstance(words, str):
            raise TypeError("words must be a sequence of str, not one str")
        kept, rows, skipped = [], [], 0
        for w in words:
            i = self.index.get(w)
            if i is None:
                if not skip_missing:
                    raise KeyError(f"{w!r} is not in the {self.name} vocabulary ({len(self)} words); pass "
                                   f"skip_missing=True to drop such words and count them")
                skipped += 1
                continue
            kept.append(w)
            rows.append(i)
        return self.vectors[rows], kept, skipped


def _stable_hash(text: str) -> int:
    # gensim seeds each word's initial vector with hashfxn(word + str(seed)); Python's hash() of a
    # str changes with PYTHONHASHSEED from one process to the next, so a seed would not repeat.
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little") & 0x7FFFFFFF


def train_word2vec(sentences: Sequence[Sequence[str]], *, dim: int, sg: int = 0, window: int = 5, epochs: int = 5,
                   negative: int = 10, sample: float = 1e-4, min_count: int = 5, seed: int = 0,
                   name: str = "embeddings") -> Embeddings:
    """Word2vec (gensim) on one language's ``sentences``, one worker thread so that ``seed``
    fixes the result, with a word hash that does not depend on the process."""
    from gensim.models import Word2Vec

    _check_int("dim", dim, 1)
    if not sentences:
        raise ValueError("sentences is empty: nothing to train word vectors on")
    model = Word2Vec(sentences=[list(s) for s in sentences], vector_size=dim, sg=sg, window=window, epochs=epochs,
                     negative=negative, sample=sample, min_count=min_count, seed=seed, workers=1,
                     hashfxn=_stable_hash)
    wv = model.wv
    counts = np.array([wv.get_vecattr(w, "count") for w in wv.index_to_key], dtype=np.int64)
    return Embeddings(tuple(wv.index_to_key), np.asarray(wv.vectors, dtype=np.float32).copy(), counts, name)


# --------------------------------------------------------------------------------------------
# Dictionary, splits, evaluation
# --------------------------------------------------------------------------------------------

def seed_dictionary(pairs: Iterable[tuple[str, str]], src: Embeddings, tgt: Embeddings) -> dict[str, tuple[str, ...]]:
    """Source word → its translations, for the pairs whose two words both have vectors. A
    dictionary with no such pair is a ``ValueError``."""
    gold: dict[str, set[str]] = {}
    n = 0
    for a, b in pairs:
        n += 1
        if a in src and b in tgt:
            gold.setdefault(a, set()).add(b)
    if not gold:
        raise ValueError(f"no dictionary pair has both words in the vocabularies ({n} pairs; {src.name} has "
                         f"{len(src)} words, {tgt.name} {len(tgt)})")
    return {a: tuple(sorted(bs)) for a, bs in gold.items()}


def frequency_splits(words: Iterable[str], src: Embeddings, folds: int = 5,
                     dev_every: int = 5) -> tuple[list[str], list[list[str]]]:
    """``(dev_words, [fold_0_words, ...])``: the words ranked by source frequency (ties by the
    word), every ``dev_every``-th rank from rank ``dev_every // 2`` to the development set, the
    rest dealt round-robin into ``folds`` folds (so each fold spans all frequencies)."""
    _check_int("folds", folds, 2)
    _check_int("dev_every", dev_every, 2)
    ranked = sorted(set(words), key=lambda w: (-int(src.counts[src.index[w]]), w))
    dev = [w for r, w in enumerate(ranked) if r % dev_every == dev_every // 2]
    rest = [w for r, w in enumerate(ranked) if r % dev_every != dev_every // 2]
    if len(rest) < folds:
        raise ValueError(f"{len(rest)} words cannot fill {folds} folds")
    return dev, [rest[f::folds] for f in range(folds)]


def _pairs_matrix(words: Sequence[str], gold: Mapping[str, Sequence[str]], src: Embeddings, tgt: Embeddings):
    rows = [(a, b) for a in words for b in gold[a]]
    X, _, _ = src.vectors_for([a for a, _ in rows])
    Z, _, _ = tgt.vectors_for([b for _, b in rows])
    return X, Z


def _cosines(W: np.ndarray, X: np.ndarray, tgt_unit: np.ndarray) -> np.ndarray:
    return normalize_rows((X.astype(np.float64) @ W.T).astype(np.float32)) @ tgt_unit.T


def _precisions(order: np.ndarray, test: Sequence[str], gold, tgt: Embeddings) -> tuple[float, float]:
    ranked = [[tgt.words[j] for j in row] for row in order]
    answers = [gold[w] for w in test]
    return precision_at_k(ranked, answers, 1), precision_at_k(ranked, answers, 5)


def select_lambda(cos: np.ndarray, dist: np.ndarray, words: Sequence[str], gold, tgt: Embeddings,
                  lambdas: Sequence[float] = LAMBDAS) -> tuple[float, dict[float, float]]:
    """The weight ``λ`` of the edit distance in ``cos − λ·dist`` with the best P@1 on ``words``
    (the development words: never the test folds); ties go to the smaller ``λ``. Returns
    ``(λ, {λ: P@1})``."""
    scores = {}
    for lam in lambdas:
        order = topk_from_scores(cos - lam * dist, 1)
        scores[lam] = precision_at_k([[tgt.words[j]] for j in order[:, 0]], [gold[w] for w in words], 1)
    best = max(scores.values())
    return min(lam for lam, s in scores.items() if s == best), scores


def evaluate_fold(src: Embeddings, tgt: Embeddings, gold: Mapping[str, Sequence[str]], train: Sequence[str],
                  test: Sequence[str], *, lam: float, methods: Sequence[str] = METHODS,
                  cooc: tuple[np.ndarray, np.ndarray] | None = None, details: bool = False) -> dict:
    """P@1 and P@5 of each method for the ``test`` words, with ``W`` fitted on the pairs of the
    ``train`` words. ``cooc``: ``(source rows for test, target rows)`` of co-occurrence vectors,
    needed for ``"cooccurrence"``. Returns ``{method: (p1, p5)}`` and, with ``details``, also,
    under the orthogonal map when the dimensions allow it and the matrix otherwise
    (``"details_method"``): ``"top5"`` (the five best words per test word), ``"top1_cos"``
    (the best word's cosine) and ``"gold_rank"`` (the rank, from 1, of the best-placed
    dictionary translation)."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; expected some of {METHODS}")
    X, Z = _pairs_matrix(train, gold, src, tgt)
    Xt, _, _ = src.vectors_for(test)
    tgt_unit = normalize_rows(tgt.vectors)
    out: dict = {}
    cos = None
    if {"matrix", "combined"} & set(methods) or details:
        cos = _cosines(fit_lstsq(X, Z), Xt, tgt_unit)
        out["matrix"] = _precisions(topk_from_scores(cos, 5), test, gold, tgt)
    cos_p = None
    if "procrustes" in methods and src.dim == tgt.dim:
        cos_p = _cosines(fit_procrustes(normalize_rows(X), normalize_rows(Z)), Xt, tgt_unit)
        out["procrustes"] = _precisions(topk_from_scores(cos_p, 5), test, gold, tgt)
    if details:
        sims = cos_p if cos_p is not None else cos
        order = topk_from_scores(sims, 5)
        out["details_method"] = "procrustes" if cos_p is not None else "matrix"
        out["top5"] = [[tgt.words[j] for j in row] for row in order]
        out["top1_cos"] = [float(sims[i, row[0]]) for i, row in enumerate(order)]
        ranks = []
        for i, w in enumerate(test):
            best = max(sims[i, tgt.index[b]] for b in gold[w])
            ranks.append(int(np.sum(sims[i] > best)) + 1)
        out["gold_rank"] = ranks
    dist = None
    if {"edit_distance", "combined"} & set(methods):
        dist = edit_distance_matrix(list(test), list(tgt.words))
        out["edit_distance"] = _precisions(topk_from_scores(-dist, 5), test, gold, tgt)
    if "combined" in methods:
        out["combined"] = _precisions(topk_from_scores(cos - lam * dist, 5), test, gold, tgt)
    if "cooccurrence" in methods:
        if cooc is None:
            raise ValueError("the cooccurrence method needs cooc=(source rows for the test words, target rows)")
        src_rows, tgt_rows = cooc
        sims = _safe_unit(src_rows) @ _safe_unit(tgt_rows).T
        out["cooccurrence"] = _precisions(topk_from_scores(sims, 5), test, gold, tgt)
    if "matrix" in out and "matrix" not in methods:
        del out["matrix"]
    return out


def _safe_unit(a: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(norms > 0, norms, 1.0)


def cooccurrence_for_fold(en: Sequence[Sequence[str]], es: Sequence[Sequence[str]], src: Embeddings,
                          tgt: Embeddings, gold, train: Sequence[str], test: Sequence[str], window: int):
    """The co-occurrence rows for one fold: English test words over English seed-word contexts,
    every Spanish word over the translations of those seed words (a Spanish word translating
    several seed words counts for the first, in frequency order)."""
    context_en = {w: j for j, w in enumerate(train)}
    context_es: dict[str, int] = {}
    for j, w in enumerate(train):
        for b in gold[w]:
            context_es.setdefault(b, j)
    test_rows = {w: i for i, w in enumerate(test)}
    src_rows = cooccurrence_vectors(en, test_rows, context_en, len(train), window=window)
    tgt_rows = cooccurrence_vectors(es, tgt.index, context_es, len(train), window=window)
    return src_rows, tgt_rows


# --------------------------------------------------------------------------------------------
# The study
# --------------------------------------------------------------------------------------------

def _train_pair(config: Config, seed: int, en, es) -> tuple[Embeddings, Embeddings]:
    kw = config.word2vec(seed)
    return (train_word2vec(en, dim=config.dim_src, name="English", **kw),
            train_word2vec(es, dim=config.dim_tgt, name="Spanish", **kw))


def _matrix_precisions(src, tgt, gold, train, test, *, orthogonal: bool = False) -> tuple[float, float]:
    """P@1, P@5 of the matrix (or its orthogonal form) for ``test``, where a test word without
    a vector, or whose translations all lack one, counts as a miss."""
    g = {w: tuple(b for b in gold[w] if b in tgt) for w in set(train) | set(test) if w in src}
    g = {w: bs for w, bs in g.items() if bs}
    tr = [w for w in train if w in g]
    te = [w for w in test if w in g]
    if not te:
        return 0.0, 0.0
    X, Z = _pairs_matrix(tr, g, src, tgt)
    W = fit_procrustes(normalize_rows(X), normalize_rows(Z)) if orthogonal else fit_lstsq(X, Z)
    Xt, _, _ = src.vectors_for(te)
    p1, p5 = _precisions(topk_from_scores(_cosines(W, Xt, normalize_rows(tgt.vectors)), 5), te, g, tgt)
    return p1 * len(te) / len(test), p5 * len(te) / len(test)


def _probe_precisions(src, tgt, en, es, gold, dev, folds, window: int) -> dict[str, float]:
    """Mean P@5 over the folds of the map, the orthogonal map and co-occurrence for models
    trained on other text than the full corpora (``en``, ``es``): the test words and their
    translations are those of ``gold``; a word without a vector counts as a miss."""
    g = {w: tuple(b for b in gold[w] if b in tgt) for w in gold if w in src}
    g = {w: bs for w, bs in g.items() if bs}
    out: dict[str, list[float]] = {"matrix": [], "procrustes": [], "cooccurrence": []}
    for f, test in enumerate(folds):
        train = [w for w in dev + [w for h, fold in enumerate(folds) if h != f for w in fold] if w in g]
        te = [w for w in test if w in g]
        if not te:
            for m in out:
                out[m].append(0.0)
            continue
        cooc = cooccurrence_for_fold(en, es, src, tgt, g, train, te, window)
        res = evaluate_fold(src, tgt, g, train, te, lam=0.0, methods=tuple(out), cooc=cooc)
        for m in out:
            out[m].append(res[m][1] * len(te) / len(test))
    return {m: float(np.mean(v)) for m, v in out.items()}


def run(config: Config | None = None, *, scale: str | None = None, write: bool = True, results_dir=None,
        command: str | None = None, keep: dict | None = None) -> dict:
    """Train the word vectors, evaluate every method on every (seed, fold), and write
    ``results/<scale>/translation_matrix.json``. ``keep``, a dict, receives the first seed's
    embeddings (``"src"``, ``"tgt"``), the dictionary (``"gold"``), the splits (``"dev"``,
    ``"folds"``), ``"lambda"`` and, per test word of every fold, the matrix's top five and the
    rank of the dictionary's translation (``"details"``, see :func:`evaluate_fold`). Outside
    the ``quick`` scale, with ``write``, those details are also written beside the results, to
    ``<results>/<scale>/translation_matrix_details.json``, for the chapter's search for
    dictionary errors."""
    if keep is not None and not isinstance(keep, dict):
        raise TypeError(f"keep must be a dict to fill, got {type(keep).__name__}")
    study = results.start_study(Config, config, scale)
    config = study.config
    en, es = bible_sentences("en"), bible_sentences("es")
    pairs = dictionary_pairs()
    metrics: dict[str, float] = {"tokens.en": float(sum(map(len, en))), "tokens.es": float(sum(map(len, es))),
                                 "dictionary_pairs": float(len(pairs))}
    curves: dict[str, list] = {}
    trained: dict[tuple[int, int, int], tuple[Embeddings, Embeddings]] = {}

    if config.candidates:
        best = None
        for sg, dim, dim_t in config.candidates:
            cand = dataclasses.replace(config, sg=sg, dim_src=dim, dim_tgt=dim_t)
            src, tgt = _train_pair(cand, config.seeds[0], en, es)
            trained[(sg, dim, dim_t, config.seeds[0])] = (src, tgt)
            gold = seed_dictionary(pairs, src, tgt)
            dev, folds = frequency_splits(gold, src, config.folds, config.dev_every)
            _, p5 = _matrix_precisions(src, tgt, gold, [w for f in folds for w in f], dev)
            metrics[f"dev_p_at_5.{'sg' if sg else 'cbow'}{dim}_{dim_t}"] = p5
            if best is None or p5 > best[0]:
                best = (p5, sg, dim, dim_t)
        _, sg, dim, dim_t = best
        config = dataclasses.replace(config, sg=sg, dim_src=dim, dim_tgt=dim_t)
        metrics["selected.sg"], metrics["selected.dim_src"] = float(sg), float(dim)
        metrics["selected.dim_tgt"] = float(dim_t)

    scores: dict[str, dict[int, list[float]]] = {m: {1: [], 5: []} for m in METHODS}
    seed_means: dict[str, list[float]] = {m: [] for m in METHODS}
    sgd_gap, sgd_p5_diff = [], []
    for seed in config.seeds:
        key = (config.sg, config.dim_src, config.dim_tgt, seed)
        if key not in trained:
            trained[key] = _train_pair(config, seed, en, es)
        src, tgt = trained[key]
        gold = seed_dictionary(pairs, src, tgt)
        dev, folds = frequency_splits(gold, src, config.folds, config.dev_every)
        eval_words = [w for f in folds for w in f]
        X, Z = _pairs_matrix(eval_words, gold, src, tgt)
        Xd, _, _ = src.vectors_for(dev)
        lam, _ = select_lambda(_cosines(fit_lstsq(X, Z), Xd, normalize_rows(tgt.vectors)),
                               edit_distance_matrix(dev, list(tgt.words)), dev, gold, tgt)
        metrics[f"lambda.seed{seed}"] = lam
        details = {}
        per_seed = {m: [] for m in METHODS}
        for f, test in enumerate(folds):
            train = dev + [w for g, fold in enumerate(folds) if g != f for w in fold]
            cooc = cooccurrence_for_fold(en, es, src, tgt, gold, train, test, config.cooc_window)
            res = evaluate_fold(src, tgt, gold, train, test, lam=lam, cooc=cooc, details=seed == config.seeds[0])
            for m in METHODS:
                if m in res:
                    scores[m][1].append(res[m][0])
                    scores[m][5].append(res[m][1])
                    per_seed[m].append(res[m][1])
            if "top5" in res:
                details.update({w: {"top5": res["top5"][i], "top1_cos": res["top1_cos"][i],
                                    "gold": list(gold[w]), "gold_rank": res["gold_rank"][i],
                                    "method": res["details_method"]} for i, w in enumerate(test)})
            if f == 0:
                Xf, Zf = _pairs_matrix(train, gold, src, tgt)
                W_ls, W_sgd = fit_lstsq(Xf, Zf), fit_sgd(Xf, Zf, epochs=config.sgd_epochs,
                                                         batch_size=config.sgd_batch, seed=seed)
                l_ls, l_sgd = objective(W_ls, Xf, Zf), objective(W_sgd, Xf, Zf)
                sgd_gap.append((l_sgd - l_ls) / l_ls)
                Xt, _, _ = src.vectors_for(test)
                unit = normalize_rows(tgt.vectors)
                p5_sgd = _precisions(topk_from_scores(_cosines(W_sgd, Xt, unit), 5), test, gold, tgt)[1]
                sgd_p5_diff.append(p5_sgd - res["matrix"][1])
        for m in METHODS:
            if per_seed[m]:
                seed_means[m].append(float(np.mean(per_seed[m])))
        if seed == config.seeds[0]:
            first_details = details
            metrics["source_words"] = float(len(gold))
            metrics["pairs_in_vocab"] = float(sum(len(v) for v in gold.values()))
            metrics["dev_words"] = float(len(dev))
            metrics["vocab.en"], metrics["vocab.es"] = float(len(src)), float(len(tgt))
            if keep is not None:
                keep.update(src=src, tgt=tgt, gold=gold, dev=dev, folds=folds, details=details, config=config,
                            **{"lambda": lam})

    for m in METHODS:
        for k in (1, 5):
            vals = scores[m][k]
            if vals:
                metrics[f"p_at_{k}.{m}"] = float(np.mean(vals))
                metrics[f"p_at_{k}_sd.{m}"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
        if len(seed_means[m]) > 1:
            metrics[f"p_at_5_seed_sd.{m}"] = float(np.std(seed_means[m], ddof=1))
    metrics["sgd_objective_gap"] = float(np.max(sgd_gap))
    metrics["sgd_p_at_5_diff"] = float(np.max(np.abs(sgd_p5_diff)))

    if config.fractions:
        curve_methods = ("matrix", "procrustes") if config.dim_src == config.dim_tgt else ("matrix",)
        for m in curve_methods:
            curves[f"p_at_5_vs_tokens.{m}"] = []
        full = metrics["tokens.en"]
        for frac in (*config.fractions, 1.0):
            vals = {m: [] for m in curve_methods}
            for seed in config.seeds:
                if frac == 1.0:
                    break
                en_f, es_f = bible_sentences("en", frac, seed), bible_sentences("es", frac, seed)
                src_f, tgt_f = _train_pair(config, seed, en_f, es_f)
                # the test words and their translations are those of this seed's full-corpus
                # model, so every point of the curve asks the same questions; a word the smaller
                # corpus has no vector for counts as a miss.
                src_full, tgt_full = trained[(config.sg, config.dim_src, config.dim_tgt, seed)]
                gold = seed_dictionary(pairs, src_full, tgt_full)
                dev, folds = frequency_splits(gold, src_full, config.folds, config.dev_every)
                for f, test in enumerate(folds):
                    train = dev + [w for g, fold in enumerate(folds) if g != f for w in fold]
                    vals["matrix"].append(_matrix_precisions(src_f, tgt_f, gold, train, test)[1])
                    if "procrustes" in vals:
                        vals["procrustes"].append(
                            _matrix_precisions(src_f, tgt_f, gold, train, test, orthogonal=True)[1])
            for m in vals:
                y = metrics[f"p_at_5.{m}"] if frac == 1.0 else float(np.mean(vals[m]))
                curves[f"p_at_5_vs_tokens.{m}"].append([frac * full, y])
                if frac < 1.0:
                    metrics[f"p_at_5_frac{frac:g}.{m}"] = y
    if config.halves_probe and config.dim_src == config.dim_tgt:
        probe: dict[str, dict[str, list[float]]] = {"same": {}, "other": {}}
        for seed in config.seeds:
            rng = np.random.default_rng([seed, 99])
            en_v, es_v = _all_verse_tokens("en"), _all_verse_tokens("es")
            order = rng.permutation(len(en_v))
            half, rest = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])
            en_h = [list(en_v[i]) for i in half if en_v[i]]
            src_h = train_word2vec(en_h, dim=config.dim_src, name="English", **config.word2vec(seed))
            src_full, tgt_full = trained[(config.sg, config.dim_src, config.dim_tgt, seed)]
            gold = seed_dictionary(pairs, src_full, tgt_full)
            dev, folds = frequency_splits(gold, src_full, config.folds, config.dev_every)
            for cond, idx in (("same", half), ("other", rest)):
                es_h = [list(es_v[i]) for i in idx if es_v[i]]
                tgt_h = train_word2vec(es_h, dim=config.dim_tgt, name="Spanish", **config.word2vec(seed))
                for m, v in _probe_precisions(src_h, tgt_h, en_h, es_h, gold, dev, folds,
                                              config.cooc_window).items():
                    probe[cond].setdefault(m, []).append(v)
        for cond, by_method in probe.items():
            for m, vals in by_method.items():
                metrics[f"probe_p_at_5.{cond}.{m}"] = float(np.mean(vals))
                metrics[f"probe_p_at_5_sd.{cond}.{m}"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    metrics["compute_s"] = time.perf_counter() - study.t0
    out = study.finish(SLUG, metrics, curves, PAPER, seeds=list(config.seeds), command=command, write=write,
                       results_dir=results_dir)
    if write and study.scale != "quick":
        base = results_dir if results_dir is not None else runtime.results_out_dir()
        path = results.path_for(SLUG, study.scale, base).with_name(f"{SLUG}_details.json")
        path.write_text(json.dumps({"seed": config.seeds[0], "details": first_details}, indent=1,
                                   ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m papernotes_core.translation_matrix [--no-write]`` at ``PAPERNOTES_SCALE``."""
    return runtime.study_main(SLUG, Config, run, argv, description=main.__doc__)
