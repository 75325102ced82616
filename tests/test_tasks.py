"""Tests for papernotes_core.tasks: the adding and copying problems, pixel-by-pixel MNIST.

Values are checked against the tasks' definitions, not just shapes. Nothing here needs MNIST on
disk: ``pixel_mnist`` is tested with a fake ``load_mnist``.
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from papernotes_core import data as D
from papernotes_core import tasks as K


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# adding problem


@pytest.mark.parametrize("T", [2, 3, 10, 11, 100])
def test_adding_problem_matches_its_definition(T):
    x, y = K.adding_problem(64, T, generator=gen(T))
    assert x.shape == (64, T, 2) and x.dtype == torch.float32
    assert y.shape == (64, 1) and y.dtype == torch.float32
    values, markers = x[..., 0], x[..., 1]
    assert bool(((values >= 0) & (values < 1)).all())
    assert set(markers.unique().tolist()) <= {0.0, 1.0}
    assert markers.sum(1).tolist() == [2.0] * 64           # exactly two markers per sequence
    half = T // 2
    assert markers[:, :half].sum(1).tolist() == [1.0] * 64  # one in [0, T//2) ...
    assert markers[:, half:].sum(1).tolist() == [1.0] * 64  # ... and one in [T//2, T)
    # target = sum of the two marked values (recomputed by the definition, in float64)
    expected = (values.double() * markers.double()).sum(1, keepdim=True)
    torch.testing.assert_close(y.double(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("T", [10, 11])
def test_adding_markers_cover_each_half_uniformly(T):
    x, _ = K.adding_problem(4000, T, generator=gen(1))
    positions = torch.nonzero(x[..., 1])  # (2 * batch, 2) rows (sequence, step), sorted
    first, second = positions[0::2, 1], positions[1::2, 1]
    half = T // 2
    assert sorted(first.unique().tolist()) == list(range(0, half))
    assert sorted(second.unique().tolist()) == list(range(half, T))
    # roughly uniform: each position within 25% of its expected count (about 5 standard errors)
    for pos, n in ((first, half), (second, T - half)):
        counts = torch.bincount(pos, minlength=T)[pos.min():pos.max() + 1].double()
        assert bool(((counts - 4000 / n).abs() < 0.25 * 4000 / n).all()), counts


def test_adding_problem_is_deterministic_given_a_generator():
    a = K.adding_problem(8, 20, generator=gen(0))
    b = K.adding_problem(8, 20, generator=gen(0))
    c = K.adding_problem(8, 20, generator=gen(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    torch.manual_seed(3)
    d = K.adding_problem(8, 20)  # generator=None: the global generator, seeded the same way
    torch.manual_seed(3)
    assert torch.equal(d[0], K.adding_problem(8, 20)[0])


def test_adding_baseline_is_the_mse_of_predicting_one():
    assert K.ADDING_BASELINE_MSE == K.adding_baseline_mse() == pytest.approx(1 / 6, abs=1e-15)
    _, y = K.adding_problem(100_000, 4, generator=gen(2))
    mse = float(((y.double() - 1.0) ** 2).mean())
    assert abs(mse - 1 / 6) < 0.005
    assert abs(float(y.double().mean()) - 1.0) < 0.01  # 1 is the mean: the best constant


# ---------------------------------------------------------------------------------------------
# copying problem


@pytest.mark.parametrize(("T", "n_symbols", "length"), [(1, 8, 10), (5, 8, 10), (100, 8, 10), (7, 3, 4)])
def test_copying_problem_matches_its_definition(T, n_symbols, length):
    x, y = K.copying_problem(32, T, n_symbols=n_symbols, length=length, generator=gen(T))
    total = T + 2 * length
    assert x.shape == y.shape == (32, total) and x.dtype == y.dtype == torch.int64
    data = x[:, :length]
    assert bool(((data >= 1) & (data <= n_symbols)).all())
    # the delimiter: `length` data, then T - 1 blanks (indices length .. T + length - 2), so at T + length - 1
    delimiter = n_symbols + 1
    assert torch.nonzero(x == delimiter)[:, 1].tolist() == [T + length - 1] * 32
    assert bool((x[:, length:T + length - 1] == 0).all())  # the T - 1 blanks
    assert bool((x[:, T + length:] == 0).all())            # the blanks after the delimiter
    # the targets: T + length blanks, then the data symbols in order
    assert bool((y[:, :T + length] == 0).all())
    assert torch.equal(y[:, T + length:], data)
    if T == 5 and n_symbols == 8:  # the paper's alphabet: 10 categories, 9 the delimiter
        assert delimiter == 9 and int(x.max()) == 9


def test_copying_symbols_are_uniform_and_generation_is_deterministic():
    x, _ = K.copying_problem(2000, 3, generator=gen(0))
    counts = torch.bincount(x[:, :10].flatten(), minlength=10)
    assert counts[0] == 0 and counts[9] == 0
    assert bool(((counts[1:9].double() - 2500).abs() < 250).all()), counts  # 20000 draws over 8 symbols
    a = K.copying_problem(4, 10, generator=gen(5))
    b = K.copying_problem(4, 10, generator=gen(5))
    c = K.copying_problem(4, 10, generator=gen(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_copying_baseline_formula():
    assert K.copying_baseline_xent(100) == pytest.approx(10 * math.log(8) / 120, rel=1e-15)
    assert K.copying_baseline_xent(1000) == pytest.approx(10 * math.log(8) / 1020, rel=1e-15)
    assert K.copying_baseline_xent(7, n_symbols=3, length=4) == pytest.approx(4 * math.log(3) / 15, rel=1e-15)


@pytest.mark.parametrize(("T", "n_symbols", "length"), [(100, 8, 10), (7, 3, 4)])
def test_copying_baseline_is_the_memoryless_cross_entropy(T, n_symbols, length):
    _, y = K.copying_problem(16, T, n_symbols=n_symbols, length=length, generator=gen(0))
    n_classes, total = n_symbols + 2, T + 2 * length
    probs = torch.zeros(total, n_classes, dtype=torch.float64)
    probs[:T + length, 0] = 1.0                     # blank for certain on the first T + length steps
    probs[T + length:, 1:n_symbols + 1] = 1.0 / n_symbols  # uniform over the data symbols after
    log_probs = torch.log(probs).expand(16, total, n_classes)
    xent = F.cross_entropy(log_probs.reshape(-1, n_classes), y.reshape(-1))
    assert math.isfinite(float(xent))
    assert float(xent) == pytest.approx(K.copying_baseline_xent(T, n_symbols, length), abs=1e-6)


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: K.adding_problem(0, 10), ValueError,
     r"batch \(number of sequences\) must be a positive int, got 0"),
    (lambda: K.adding_problem(4, 0), ValueError, r"T \(sequence length\) must be a positive int, got 0"),
    (lambda: K.adding_problem(4, 1), ValueError, r"T \(sequence length\) must be >= 2.*got 1"),
    (lambda: K.adding_problem(4, 10.0), TypeError,
     r"T \(sequence length\) must be a positive int, got float 10.0"),
    (lambda: K.adding_problem(True, 10), TypeError, "got bool"),
    (lambda: K.adding_problem(4, 10, generator=0), TypeError, "torch.Generator"),
    (lambda: K.copying_problem(4, 0), ValueError, r"T \(sequence length\) must be a positive int, got 0"),
    (lambda: K.copying_problem(-1, 5), ValueError, "batch"),
    (lambda: K.copying_problem(4, 5, n_symbols=0), ValueError, "n_symbols .* got 0"),
    (lambda: K.copying_problem(4, 5, length=0), ValueError, "length .* got 0"),
    (lambda: K.copying_problem(4, "5"), TypeError, "got str"),
    (lambda: K.copying_problem(4, 5, generator=np.random.default_rng(0)), TypeError, "torch.Generator"),
    (lambda: K.copying_baseline_xent(0), ValueError, "T"),
    (lambda: K.fixed_permutation(-1), ValueError, r"seed must be an int >= 0, got -1"),
    (lambda: K.fixed_permutation(1.5), TypeError, "seed"),
    (lambda: K.fixed_permutation(0, n=0), ValueError, "n "),
])
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_numpy_integers_are_accepted():
    x, _ = K.adding_problem(np.int64(2), np.int32(6), generator=gen(0))
    assert x.shape == (2, 6, 2)


# ---------------------------------------------------------------------------------------------
# pixel-by-pixel MNIST


def test_fixed_permutation_is_seeded():
    p = K.fixed_permutation()
    assert p.dtype == torch.int64 and p.shape == (784,)
    assert torch.equal(torch.sort(p).values, torch.arange(784))
    assert torch.equal(p, K.fixed_permutation(0))
    assert torch.equal(p, torch.randperm(784, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(p, K.fixed_permutation(1))
    assert not torch.equal(p, torch.arange(784))
    assert torch.equal(torch.sort(K.fixed_permutation(3, n=10)).values, torch.arange(10))


def test_as_sequences_scans_row_major_and_permutes():
    x = torch.rand(5, 784, generator=gen(0))
    s = K.as_sequences(x)
    assert s.shape == (5, 784, 1) and s.dtype == torch.float32
    images = x.reshape(5, 28, 28)
    for t in (0, 27, 28, 29, 400, 783):  # step t is row t // 28, column t % 28
        assert torch.equal(s[:, t, 0], images[:, t // 28, t % 28])
    p = K.fixed_permutation(7)
    sp = K.as_sequences(x, p)
    assert torch.equal(sp[..., 0], x[:, p])
    for t in (0, 100, 783):
        assert torch.equal(sp[:, t, 0], x[:, int(p[t])])
    identity = K.as_sequences(x, torch.arange(784, dtype=torch.int32))
    assert torch.equal(identity, s)
    # the inverse permutation undoes it
    assert torch.equal(sp[:, torch.argsort(p), 0], x)


@pytest.mark.parametrize(("bad", "what"), [
    (torch.arange(783), "shape (783,)"),
    (torch.arange(784).reshape(28, 28), "shape (28, 28)"),
    (torch.arange(784).float(), "dtype torch.float32"),
    (torch.ones(784, dtype=torch.bool), "dtype torch.bool"),
    (torch.cat([torch.arange(783), torch.tensor([0])]), "1 missing (first: [783])"),
    (torch.arange(1, 785), "values in [1, 784]"),
])
def test_bad_permutations_are_rejected(bad, what):
    x = torch.rand(2, 784)
    with pytest.raises(ValueError, match=r"permutation must be a rearrangement of 0\.\.783") as info:
        K.as_sequences(x, bad)
    assert what in str(info.value)
    with pytest.raises(TypeError, match="rearrangement of 0..783"):
        K.as_sequences(x, list(range(784)))


def test_as_sequences_rejects_bad_images():
    with pytest.raises(TypeError, match="floating-point torch.Tensor"):
        K.as_sequences(np.zeros((2, 784), dtype=np.float32))
    with pytest.raises(TypeError, match="dtype torch.uint8"):
        K.as_sequences(torch.zeros(2, 784, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"2-d \(n, pixels\), got shape \(2, 28, 28\)"):
        K.as_sequences(torch.zeros(2, 28, 28))


def _fake_split(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 256, size=(n, 784)) / 256).astype(np.float32)
    return D.Split(x, rng.integers(0, 10, size=n).astype(np.int64))


@pytest.fixture
def fake_mnist(monkeypatch):
    """A stand-in for load_mnist with the real contract (Split for a named split), recording calls."""
    splits = types.SimpleNamespace(train=_fake_split(12, 0), valid=_fake_split(6, 1), test=_fake_split(6, 2))
    calls = []

    def load_mnist(split=None, *, limit=None, **kwargs):
        calls.append((split, limit))
        part = getattr(splits, split)
        return part if limit is None else D.Split(part.x[:limit], part.y[:limit])

    monkeypatch.setattr(D, "load_mnist", load_mnist)
    return splits, calls


def test_pixel_mnist_reads_the_split_pixel_by_pixel(fake_mnist):
    splits, calls = fake_mnist
    for name in ("train", "valid", "test"):
        x, y = K.pixel_mnist(name)
        part = getattr(splits, name)
        assert x.shape == (len(part), 784, 1) and x.dtype == torch.float32
        assert y.dtype == torch.int64 and torch.equal(y, torch.from_numpy(part.y))
        assert torch.equal(x[..., 0], torch.from_numpy(part.x))
    x, y = K.pixel_mnist("train", limit=5)
    assert x.shape == (5, 784, 1) and torch.equal(x[..., 0], torch.from_numpy(splits.train.x[:5]))
    assert calls[-1] == ("train", 5)
    p = K.fixed_permutation(0)
    xp, yp = K.pixel_mnist("test", permutation=p)
    assert torch.equal(xp[..., 0], torch.from_numpy(splits.test.x)[:, p])
    assert torch.equal(yp, torch.from_numpy(splits.test.y))


def test_pixel_mnist_rejects_bad_arguments_before_loading(fake_mnist):
    _, calls = fake_mnist
    with pytest.raises(ValueError, match=r"split must be one of train, valid, test, got 'training'"):
        K.pixel_mnist("training")
    with pytest.raises(ValueError, match="rearrangement of 0..783"):
        K.pixel_mnist("train", permutation=torch.arange(10))
    with pytest.raises(ValueError, match="limit must be a positive int, got 0"):
        K.pixel_mnist("train", limit=0)
    with pytest.raises(TypeError, match="limit"):
        K.pixel_mnist("train", limit=2.0)
    assert calls == []
