"""Tests for papernotes_core.evaluation: log-mean-exp, its chunked form, mean and standard error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from papernotes_core import evaluation as E


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(3))
def test_log_mean_exp_matches_a_direct_float64_computation(dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-60, 60, size=(7, 50))  # small enough that exp() is fine in float64
    direct = np.log(np.mean(np.exp(x), axis=1))
    got = E.log_mean_exp(torch.tensor(x, dtype=dtype), dim=1)
    assert got.dtype == dtype and got.shape == (7,)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(got.double().numpy(), direct, rtol=tol, atol=tol)
    # along another dimension, and keepdim
    direct0 = np.log(np.mean(np.exp(x), axis=0, keepdims=True))
    np.testing.assert_allclose(E.log_mean_exp(torch.tensor(x), dim=0, keepdim=True).numpy(), direct0, rtol=1e-12)


def test_log_mean_exp_is_stable_for_huge_and_tiny_values():
    # plain exp() overflows (1000) or underflows to 0 (-1000) here; the shifted form is exact
    x = torch.tensor([[1000.0, 1000.0], [-1000.0, -1000.0], [-1000.0, -1000.0 + math.log(3)]])
    torch.testing.assert_close(E.log_mean_exp(x), torch.tensor([1000.0, -1000.0, -1000.0 + math.log(2)]))
    # log-likelihoods of images: about -100 nats; the mean of two weights e^-100 and e^-102
    y = torch.tensor([-100.0, -102.0], dtype=torch.float64)
    assert E.log_mean_exp(y).item() == pytest.approx(-100 + math.log((1 + math.exp(-2)) / 2), rel=1e-14)
    # weights of zero and an infinite weight: no nan
    inf = math.inf
    z = torch.tensor([[-inf, -inf], [inf, 0.0], [-inf, 3.0]])
    torch.testing.assert_close(E.log_mean_exp(z), torch.tensor([-inf, inf, 3.0 - math.log(2)]))


def test_log_mean_exp_rejects_bad_input():
    with pytest.raises(TypeError, match="torch.Tensor"):
        E.log_mean_exp([1.0, 2.0])
    with pytest.raises(TypeError, match="floating-point"):
        E.log_mean_exp(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="empty dimension"):
        E.log_mean_exp(torch.zeros(3, 0), dim=1)
    with pytest.raises(ValueError, match="dim must be in"):
        E.log_mean_exp(torch.zeros(3), dim=1)
    with pytest.raises(ValueError, match="0-d"):
        E.log_mean_exp(torch.tensor(1.0))


_values = st.one_of(
    st.floats(-1e4, 1e4),
    st.floats(-1e300, 1e300),
    st.sampled_from([-math.inf, -745.0, 709.0, 0.0]),
)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(_values, min_size=1, max_size=60), chunk=st.integers(1, 70), cols=st.integers(1, 3))
def test_chunked_log_mean_exp_equals_the_unchunked(values, chunk, cols):
    x = torch.tensor(values, dtype=torch.float64)
    x = torch.stack([x.roll(i) for i in range(cols)], dim=1)  # (n, cols): each column a permutation
    calls = []

    def fn(start, size):
        calls.append((start, size))
        return x[start:start + size]

    got = E.chunked_log_mean_exp(fn, len(x), chunk)
    torch.testing.assert_close(got, E.log_mean_exp(x, dim=0), rtol=1e-12, atol=1e-9)
    # every term exactly once, in order, at most `chunk` at a time
    assert [s for s, _ in calls] == list(range(0, len(x), chunk))
    assert sum(n for _, n in calls) == len(x) and max(n for _, n in calls) <= chunk


def test_chunked_log_mean_exp_of_a_random_stream():
    # the way an importance-weighted estimate uses it: (size, batch) log-weights drawn per chunk
    g = torch.Generator().manual_seed(0)
    all_terms = torch.randn(5000, 4, generator=g, dtype=torch.float64) * 30 - 500
    got = E.chunked_log_mean_exp(lambda s, n: all_terms[s:s + n], 5000, 333)
    torch.testing.assert_close(got, E.log_mean_exp(all_terms, 0), rtol=1e-13, atol=1e-10)


def test_chunked_log_mean_exp_rejects_bad_input():
    ok = lambda s, n: torch.zeros(n)  # noqa: E731
    for bad in (0, -3):
        with pytest.raises(ValueError, match="total must be an int >= 1"):
            E.chunked_log_mean_exp(ok, bad, 10)
        with pytest.raises(ValueError, match="chunk must be an int >= 1"):
            E.chunked_log_mean_exp(ok, 10, bad)
    with pytest.raises(TypeError, match="chunk must be an int"):
        E.chunked_log_mean_exp(ok, 10, 2.5)
    with pytest.raises(TypeError, match="callable"):
        E.chunked_log_mean_exp(torch.zeros(3), 3, 1)
    with pytest.raises(ValueError, match="must return a tensor with 4 rows"):
        E.chunked_log_mean_exp(lambda s, n: torch.zeros(n + 1), 10, 4)
    with pytest.raises(ValueError, match="trailing shape"):
        E.chunked_log_mean_exp(lambda s, n: torch.zeros(n, 2 if s == 0 else 3), 10, 4)
    with pytest.raises(TypeError, match="floating-point"):
        E.chunked_log_mean_exp(lambda s, n: torch.zeros(n, dtype=torch.long), 10, 4)


def test_mean_and_standard_error():
    rng = np.random.default_rng(0)
    v = rng.normal(3.0, 2.0, size=1000)
    mean, se = E.mean_and_standard_error(torch.tensor(v))
    assert mean == pytest.approx(v.mean(), rel=1e-12)
    assert se == pytest.approx(v.std(ddof=1) / math.sqrt(1000), rel=1e-12)
    assert E.mean_and_standard_error(torch.tensor([2.5])) == (2.5, 0.0)
    with pytest.raises(ValueError, match="non-empty 1-d"):
        E.mean_and_standard_error(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="non-empty 1-d"):
        E.mean_and_standard_error(torch.zeros(0))
