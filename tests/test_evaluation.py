"""Tests for papernotes_core.evaluation: log-mean-exp, its chunked form, mean and standard error,
the Parzen estimator, and Welch's t-test (against closed forms of Student's t)."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

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


# --- Welch's t-test -------------------------------------------------------------------------
# Independent references: closed forms of the two-sided tail P(|T| >= |t|) of Student's t for
# small integer df, and the normal limit. A summary with sd_b = 0 has Welch df = n_a - 1 exactly.

def _p_df1(t):  # Cauchy
    return 1 - (2 / math.pi) * math.atan(abs(t))


def _p_df2(t):
    return 1 - abs(t) / math.sqrt(2 + t * t)


def _p_df3(t):
    u = abs(t) / math.sqrt(3)
    return 1 - (2 / math.pi) * (math.atan(u) + u / (1 + u * u))


T_VALUES = [0.0, 1e-6, 0.3, 1.0, 2.0, 4.3, 12.7, 100.0, 1e4]


@pytest.mark.parametrize("t", T_VALUES)
def test_student_t_p_value_matches_closed_forms(t):
    for df, closed in ((1, _p_df1), (2, _p_df2), (3, _p_df3)):
        for sign in (1, -1):
            got = E._student_t_two_sided_p(sign * t, float(df))
            assert got == pytest.approx(closed(t), rel=1e-9, abs=1e-14), (df, t)
    # large df: the normal tail, erfc(|t| / sqrt 2)
    if t <= 4.3:
        assert E._student_t_two_sided_p(t, 1e6) == pytest.approx(math.erfc(t / math.sqrt(2)), abs=1e-3)


def test_student_t_p_value_at_a_table_quantile_and_between_integer_dfs():
    assert E._student_t_two_sided_p(2.2281388519649385, 10.0) == pytest.approx(0.05, abs=1e-9)  # t_.975,10
    assert E._student_t_two_sided_p(1.959963984540054, 1e9) == pytest.approx(0.05, abs=1e-6)    # z_.975
    # a non-integer df lies between its neighbours (heavier tails, larger p, at smaller df)
    for t in (0.5, 2.0, 5.0):
        p2, p25, p3 = (E._student_t_two_sided_p(t, df) for df in (2.0, 2.5, 3.0))
        assert p2 > p25 > p3


@pytest.mark.parametrize("t", [0.4, 2.0, 7.5])
def test_welch_from_summary_reduces_to_student_t_when_one_arm_has_no_spread(t):
    # sd_b = 0: se = sd_a / sqrt(n_a), df = n_a - 1 exactly
    for n_a, closed in ((2, _p_df1), (3, _p_df2), (4, _p_df3)):
        sd_a = 0.7
        mean_a = 5.0 + t * sd_a / math.sqrt(n_a)
        r = E.welch_t_test_from_summary(mean_a, sd_a, n_a, 5.0, 0.0, 7)
        assert r.df == pytest.approx(n_a - 1, rel=1e-12)
        assert r.t == pytest.approx(t, rel=1e-12)
        assert r.se == pytest.approx(sd_a / math.sqrt(n_a), rel=1e-12)
        assert r.p == pytest.approx(closed(t), rel=1e-9)
    # df = 1e6: the normal limit
    r = E.welch_t_test_from_summary(2.0, 1.0, 1_000_001, 2.0 - t / 1000.0005, 0.0, 2)
    assert r.df == pytest.approx(1e6, rel=1e-12)
    assert r.p == pytest.approx(math.erfc(abs(r.t) / math.sqrt(2)), abs=1e-3)


def test_welch_df_of_a_hand_computed_unequal_variance_example():
    # a = 1, 2, 3, 4: mean 5/2, variance 5/3, so v_a = (5/3)/4 = 5/12
    # b = 0, 10, 20:  mean 10,  variance 100, so v_b = 100/3 = 400/12
    # v_a + v_b = 405/12 = 135/4; df = (135/4)^2 / ((5/12)^2/3 + (100/3)^2/2)
    #   = (18225/16) / (25/432 + 5000/9) = (18225/16) / (240025/432) = 19683/9601
    va, vb = Fraction(5, 12), Fraction(100, 3)
    df_exact = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2)
    assert df_exact == Fraction(19683, 9601)
    r = E.welch_t_test([1.0, 2.0, 3.0, 4.0], [0.0, 10.0, 20.0])
    assert r.df == pytest.approx(19683 / 9601, rel=1e-12)
    assert r.diff == pytest.approx(-7.5, rel=1e-12)
    assert r.se == pytest.approx(math.sqrt(135 / 4), rel=1e-12)
    assert r.t == pytest.approx(-7.5 / math.sqrt(135 / 4), rel=1e-12)
    # df ~ 2.05: p between the df = 2 and df = 3 closed forms, nearer df = 2
    assert _p_df3(r.t) < r.p < _p_df2(r.t)
    assert r.p - _p_df2(r.t) > -0.1 * (_p_df2(r.t) - _p_df3(r.t))
    assert 0 < r.p <= 1
    # the pooled (equal-variance) test would use df = 5; Welch's is much smaller here
    assert r.df < 5


def test_welch_is_symmetric_and_agrees_with_the_summary_form():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.3, 1.0, size=5), rng.normal(0.0, 2.5, size=8)
    ab, ba = E.welch_t_test(a.tolist(), b.tolist()), E.welch_t_test(b.tolist(), a.tolist())
    assert ab.t == pytest.approx(-ba.t, rel=1e-12) and ab.diff == pytest.approx(-ba.diff, rel=1e-12)
    assert ab.p == pytest.approx(ba.p, rel=1e-12) and ab.df == pytest.approx(ba.df, rel=1e-12)
    assert ab.se == pytest.approx(ba.se, rel=1e-12)
    summary = E.welch_t_test_from_summary(a.mean(), a.std(ddof=1), 5, b.mean(), b.std(ddof=1), 8)
    for field in ("diff", "se", "t", "df", "p"):
        assert getattr(ab, field) == pytest.approx(getattr(summary, field), rel=1e-10)
    # tensors, tuples and numpy arrays give the same answer as lists
    assert E.welch_t_test(torch.tensor(a), tuple(b)).p == pytest.approx(ab.p, rel=1e-12)
    assert E.welch_t_test(a, b).p == pytest.approx(ab.p, rel=1e-12)
    # identical means: t = 0, p = 1
    same = E.welch_t_test([1.0, 2.0, 3.0], [0.0, 2.0, 4.0])
    assert same.t == 0 and same.p == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        ab.p = 0.5


def test_welch_with_three_seeds_two_standard_errors_is_not_significant():
    # the chapters' rule of thumb: 3 seeds per arm, equal spread (df = 4), t = 2 -> p ~ 0.12
    r = E.welch_t_test_from_summary(2.0, 1.0, 3, 0.0, 1.0, 3)
    assert r.se == pytest.approx(math.sqrt(2 / 3)) and r.df == pytest.approx(4.0)
    r2 = E.welch_t_test_from_summary(2 * r.se, 1.0, 3, 0.0, 1.0, 3)
    assert r2.t == pytest.approx(2.0)
    # df = 4 closed form: P(|T| >= t) = 1 - t (t^2 + 6) / (t^2 + 4)^(3/2)
    assert r2.p == pytest.approx(1 - 2 * 10 / 8 ** 1.5, rel=1e-9)
    assert 0.1 < r2.p < 0.2
    # unequal spread, df -> 2: p ~ 0.18
    r3 = E.welch_t_test_from_summary(2 * math.sqrt(1 / 3), 1.0, 3, 0.0, 1e-9, 3)
    assert r3.p == pytest.approx(_p_df2(2.0), rel=1e-6)


def test_welch_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        E.welch_t_test([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least 2"):
        E.welch_t_test([1.0, 2.0], torch.tensor([3.0]))
    with pytest.raises(TypeError, match="1-d floating-point tensor"):
        E.welch_t_test(torch.ones(2, 2), [1.0, 2.0])
    with pytest.raises(TypeError, match="1-d floating-point tensor"):
        E.welch_t_test(torch.tensor([1, 2]), [1.0, 2.0])
    with pytest.raises(TypeError, match="sequence of real numbers"):
        E.welch_t_test("12", [1.0, 2.0])
    with pytest.raises(TypeError, match="sequence of real numbers"):
        E.welch_t_test(3.0, [1.0, 2.0])
    with pytest.raises(TypeError, match=r"b\[1\] must be a real number"):
        E.welch_t_test([1.0, 2.0], [1.0, "x"])
    with pytest.raises(TypeError, match="real number"):
        E.welch_t_test([1.0, 2.0], [True, False])
    with pytest.raises(ValueError, match="finite"):
        E.welch_t_test([1.0, math.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="zero spread"):
        E.welch_t_test([1.0, 1.0], [2.0, 2.0])
    with pytest.raises(ValueError, match="n_a must be an int >= 2"):
        E.welch_t_test_from_summary(0.0, 1.0, 1, 0.0, 1.0, 3)
    with pytest.raises(TypeError, match="n_b must be an int"):
        E.welch_t_test_from_summary(0.0, 1.0, 3, 0.0, 1.0, 3.0)
    with pytest.raises(ValueError, match="sd_b must be a standard deviation >= 0"):
        E.welch_t_test_from_summary(0.0, 1.0, 3, 0.0, -1.0, 3)
    with pytest.raises(ValueError, match="mean_a must be finite"):
        E.welch_t_test_from_summary(math.inf, 1.0, 3, 0.0, 1.0, 3)
    with pytest.raises(TypeError, match="sd_a must be a real number"):
        E.welch_t_test_from_summary(0.0, None, 3, 0.0, 1.0, 3)


def test_welch_is_exported():
    assert {"welch_t_test", "welch_t_test_from_summary", "WelchResult"} <= set(E.__all__)
