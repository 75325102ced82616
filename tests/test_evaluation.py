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


# ----------------------------------------------------------------------------------------------
# Parzen windows
# ----------------------------------------------------------------------------------------------

def _direct_parzen(x: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    """log (1/N) sum_j N(x; mu_j, sigma^2 I), written out with explicit differences (no matrix
    product, no shift) in float64 on inputs small enough that exp() does not underflow."""
    d = x.shape[1]
    diff = x[:, None, :] - centres[None, :, :]
    dens = np.exp(-0.5 * (diff ** 2).sum(-1) / sigma ** 2) / (sigma * math.sqrt(2 * math.pi)) ** d
    return np.log(dens.mean(1))


@pytest.mark.parametrize("batch_size", [1, 3, 7, 100])
def test_parzen_in_chunks_equals_the_direct_computation(batch_size):
    rng = np.random.default_rng(0)
    centres, x = rng.uniform(0, 1, (13, 4)), rng.uniform(0, 1, (9, 4))
    for sigma in (0.3, 1.0):
        got = E.parzen_log_likelihood(torch.tensor(x), torch.tensor(centres), sigma, batch_size=batch_size)
        assert got.dtype == torch.float64 and got.shape == (9,)
        np.testing.assert_allclose(got.numpy(), _direct_parzen(x, centres, sigma), rtol=1e-10, atol=1e-10)
    # float32 inputs, float32 arithmetic: close to the float64 answer
    got32 = E.parzen_log_likelihood(torch.tensor(x, dtype=torch.float32), torch.tensor(centres, dtype=torch.float32),
                                    0.3, dtype=torch.float32)
    np.testing.assert_allclose(got32.numpy(), _direct_parzen(x, centres, 0.3), atol=1e-4)


def test_parzen_is_the_exact_density_of_a_gaussian_mixture_when_sigma_matches():
    torch.manual_seed(0)
    means, sigma = torch.randn(50, 784, dtype=torch.float64) * 0.3 + 0.5, 0.2
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.ones(50, dtype=torch.float64)),
        torch.distributions.Independent(torch.distributions.Normal(means, sigma), 1))
    x = mixture.sample((64,))
    got = E.parzen_log_likelihood(x, means, sigma, batch_size=10)
    torch.testing.assert_close(got, mixture.log_prob(x), rtol=1e-10, atol=1e-8)
    # MNIST-sized distances: hundreds of nats below any single density's peak, still exact
    assert float(got.mean()) > -1e4 and bool(torch.isfinite(got).all())


def test_parzen_sigma_search_picks_the_width_with_the_best_validation_likelihood():
    torch.manual_seed(1)
    centres = torch.randn(2000, 3, dtype=torch.float64) * 0.5
    valid = torch.randn(400, 3, dtype=torch.float64) * 0.5
    sigmas = np.logspace(-1, 0, 10)
    best, mean_ll = E.parzen_sigma_search(valid, centres, sigmas, batch_size=64)
    direct = [E.parzen_log_likelihood(valid, centres, float(s)).mean().item() for s in sigmas]
    np.testing.assert_allclose(mean_ll.numpy(), direct, rtol=1e-12)
    assert best == pytest.approx(sigmas[int(np.argmax(direct))])
    # the kernel density of N(0, 0.25 I) with 2000 centres: the best width is neither extreme
    assert sigmas[0] < best < sigmas[-1]


def test_parzen_rejects_bad_input():
    c, x = torch.rand(5, 3), torch.rand(4, 3)
    for bad in (0.0, -0.1, math.inf, math.nan):
        with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
            E.parzen_log_likelihood(x, c, bad)
    with pytest.raises(TypeError, match="sigma must be a number"):
        E.parzen_log_likelihood(x, c, "0.2")
    with pytest.raises(ValueError, match="x has 4 features but the Parzen centres have 3"):
        E.parzen_log_likelihood(torch.rand(4, 4), c, 0.2)
    with pytest.raises(ValueError, match="2-d tensor"):
        E.parzen_log_likelihood(torch.rand(3), c, 0.2)
    with pytest.raises(TypeError, match="floating-point"):
        E.parzen_log_likelihood(x, torch.ones(5, 3, dtype=torch.long), 0.2)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        E.parzen_log_likelihood(x, c, 0.2, batch_size=0)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        E.parzen_sigma_search(x, c, [0.1, 0.0])
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        E.parzen_sigma_search(x, c, [])
