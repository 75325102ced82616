"""Tests of papernotes_core.data.preprocess: pylearn2's GCN, ZCA and LeCun LCN, in NumPy.

Each is checked against an independent computation: GCN against its defining properties and a
plain per-example loop of pylearn2's formula; ZCA against whitening itself (output covariance
I - filter_bias C^-1, about I for a small bias) and a reference C^-1/2 built from an SVD; LCN
against a pixel-by-pixel loop of pylearn2's ``lecun_lcn`` (a "full" convolution with its
``gaussian_filter``, cropped) on tiny images. Plus the errors for bad input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from papernotes_core import data
from papernotes_core.data import preprocess


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------
# Global contrast normalisation


def gcn_loop(x2d, scale, subtract_mean, use_std, sqrt_bias, min_divisor):
    """pylearn2's global_contrast_normalize, one example at a time in plain Python."""
    out = []
    for row in x2d.tolist():
        d = len(row)
        mean = sum(row) / d
        v = [r - mean for r in row] if subtract_mean else list(row)
        if use_std:
            m = sum(v) / d
            ddof = 1 if d > 1 else 0
            spread = sum((e - m) ** 2 for e in v) / (d - ddof)
        else:
            spread = sum(e * e for e in v)
        norm = math.sqrt(sqrt_bias + spread) / scale
        if norm < min_divisor:
            norm = 1.0
        out.append([e / norm for e in v])
    return np.array(out)


def test_gcn_defaults_give_mean_zero_and_norm_scale():
    x = rng().uniform(0, 255, (6, 3, 4, 5)).astype(np.float32)
    for scale in (1.0, 55.0):
        y = preprocess.global_contrast_normalize(x, scale=scale)
        assert y.shape == x.shape and y.dtype == np.float32
        flat = y.reshape(6, -1).astype(np.float64)
        np.testing.assert_allclose(flat.mean(axis=1), 0, atol=1e-5 * scale)
        np.testing.assert_allclose(np.linalg.norm(flat, axis=1), scale, rtol=1e-5)
    # with use_std: standard deviation (ddof=1) equal to scale
    y = preprocess.global_contrast_normalize(x, scale=3.0, use_std=True).reshape(6, -1)
    np.testing.assert_allclose(y.astype(np.float64).std(axis=1, ddof=1), 3.0, rtol=1e-5)


@pytest.mark.parametrize("subtract_mean", [True, False])
@pytest.mark.parametrize("use_std", [True, False])
@pytest.mark.parametrize("sqrt_bias", [0.0, 10.0])
def test_gcn_matches_a_per_example_loop(subtract_mean, use_std, sqrt_bias):
    x = rng(1).normal(3.0, 2.0, (5, 12))
    kw = dict(scale=2.5, subtract_mean=subtract_mean, use_std=use_std, sqrt_bias=sqrt_bias,
              min_divisor=1e-8)
    got = preprocess.global_contrast_normalize(x, **kw)
    assert got.dtype == np.float64  # float64 in, float64 out
    np.testing.assert_allclose(got, gcn_loop(x, **kw), rtol=1e-12, atol=1e-12)


def test_gcn_small_divisors_are_not_applied():
    x = np.array([[5.0, 5.0, 5.0, 5.0],          # constant: centred to 0, not divided by 0
                  [1.0, 1.0 + 1e-9, 1.0, 1.0],   # norm ~1e-9 < min_divisor: only centred
                  [0.0, 3.0, 0.0, 4.0]])
    y = preprocess.global_contrast_normalize(x)
    assert np.isfinite(y).all()
    np.testing.assert_array_equal(y[0], 0.0)
    np.testing.assert_allclose(y[1], x[1] - x[1].mean(), atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(y[2]), 1.0)
    one = preprocess.global_contrast_normalize(np.array([[2.0], [-3.0]]), use_std=True,
                                         subtract_mean=False)  # d = 1: ddof 0, variance 0
    np.testing.assert_array_equal(one, [[2.0], [-3.0]])


def test_gcn_is_blind_to_the_pixel_scale_and_works_in_place():
    x = rng(2).integers(0, 256, (4, 3, 8, 8)).astype(np.float32)
    a = preprocess.global_contrast_normalize(x)
    b = preprocess.global_contrast_normalize(x / np.float32(255))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    ints = preprocess.global_contrast_normalize(x.astype(np.uint8))  # ints are read as numbers
    assert ints.dtype == np.float32
    np.testing.assert_allclose(ints, a, rtol=1e-6, atol=1e-7)
    y = x.copy()
    out = preprocess.global_contrast_normalize(y, copy=False)
    assert out is y
    np.testing.assert_array_equal(out, a)


def test_gcn_chunks_agree_with_one_pass(monkeypatch):
    x = rng(3).normal(size=(11, 7))
    whole = preprocess.global_contrast_normalize(x)
    monkeypatch.setattr(preprocess, "_ROWS", 3)
    np.testing.assert_array_equal(preprocess.global_contrast_normalize(x), whole)


@pytest.mark.parametrize(("x", "kwargs", "error", "match"), [
    (np.ones(5), {}, ValueError, r"shape \(n, d\) or \(n, c, h, w\), got 1 dimensions"),
    (np.ones((2, 3, 4)), {}, ValueError, r"\(n, d\) or \(n, c, h, w\)"),
    (np.ones((0, 3)), {}, ValueError, "at least one example"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), {}, ValueError, "example 0 holds NaN or inf"),
    (np.array([[1.0, 2.0], [0.0, np.inf]]), {}, ValueError, "example 1 holds NaN or inf"),
    (np.array([["a", "b"]]), {}, TypeError, "real numbers"),
    (np.ones((2, 3)), {"scale": 1e-9}, ValueError, "scale must be >= min_divisor"),
    (np.ones((2, 3)), {"sqrt_bias": -1.0}, ValueError, "sqrt_bias must be a finite number >= 0"),
    (np.ones((2, 3)), {"scale": float("nan")}, ValueError, "scale must be a finite number"),
    (np.ones((2, 3), np.int64), {"copy": False}, ValueError, "copy=False .* writable float"),
    ([[1.0, 2.0]], {"copy": False}, ValueError, "copy=False"),
    (np.ones((2, 3)), {"copy": 0}, TypeError, "copy must be a bool"),
])
def test_gcn_rejects_bad_input(x, kwargs, error, match):
    with pytest.raises(error, match=match):
        preprocess.global_contrast_normalize(x, **kwargs)


# ---------------------------------------------------------------------------------------------
# ZCA


def correlated(n, d, seed=0):
    r = rng(seed)
    return r.normal(size=(n, d)) @ r.normal(size=(d, d)) + r.normal(size=d) * 5


def inverse_sqrt_by_svd(c):
    u, s, _ = np.linalg.svd(c)
    return (u / np.sqrt(s)) @ u.T


def test_zca_whitens_with_a_small_bias():
    x = correlated(4000, 6)
    assert np.abs(np.corrcoef(x.T) - np.eye(6)).max() > 0.3  # the data are correlated
    zca = preprocess.ZCA(filter_bias=1e-8).fit(x)
    y = zca(x)
    assert y.shape == x.shape and y.dtype == np.float64
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(np.cov(y.T, bias=True), np.eye(6), atol=1e-6)


def test_zca_is_pylearn2s_formula():
    x = correlated(300, 5, seed=1)
    zca = preprocess.ZCA().fit(x)  # pylearn2's default filter_bias, 0.1
    assert zca.filter_bias == 0.1
    mean = x.mean(axis=0)
    c = (x - mean).T @ (x - mean) / len(x) + 0.1 * np.eye(5)
    np.testing.assert_allclose(zca.mean_, mean, rtol=1e-12)
    np.testing.assert_allclose(zca.P_, inverse_sqrt_by_svd(c), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(zca.P_, zca.P_.T, atol=1e-12)
    np.testing.assert_allclose(zca.P_ @ c @ zca.P_, np.eye(5), atol=1e-9)
    # the output covariance is I - filter_bias * C^-1; new data use the training mean
    y = zca(x)
    np.testing.assert_allclose(np.cov(y.T, bias=True), np.eye(5) - 0.1 * np.linalg.inv(c),
                               atol=1e-9)
    other = rng(5).normal(size=(4, 5))
    np.testing.assert_allclose(zca.transform(other), (other - mean) @ zca.P_, rtol=1e-12)


def test_zca_on_images_float32_chunks_and_in_place(monkeypatch):
    x = correlated(64, 12, seed=2).astype(np.float32).reshape(64, 3, 2, 2)
    flat = preprocess.ZCA(0.01).fit(x.reshape(64, 12))
    monkeypatch.setattr(preprocess, "_ROWS", 5)
    zca = preprocess.ZCA(0.01).fit(x)
    np.testing.assert_allclose(zca.P_, flat.P_, rtol=1e-9)
    y = zca(x)
    assert y.shape == (64, 3, 2, 2) and y.dtype == np.float32
    np.testing.assert_allclose(y.reshape(64, 12), flat(x.reshape(64, 12)), rtol=1e-5, atol=1e-6)
    z = x.copy()
    assert zca.transform(z, copy=False) is z
    np.testing.assert_array_equal(z, y)
    assert "fitted on d=12" in repr(zca) and "not fitted" in repr(preprocess.ZCA())


def test_zca_errors():
    zca = preprocess.ZCA()
    with pytest.raises(RuntimeError, match="not fitted: call fit"):
        zca(np.ones((2, 3)))
    with pytest.raises(ValueError, match="at least 2 examples"):
        zca.fit(np.ones((1, 3)))
    with pytest.raises(ValueError, match="example 1 holds NaN"):
        zca.fit(np.array([[1.0, 2.0], [np.nan, 0.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\(n, d\) or \(n, c, h, w\)"):
        zca.fit(np.ones(4))
    with pytest.raises(ValueError, match="not positive definite.*filter_bias > 0"):
        preprocess.ZCA(filter_bias=0).fit(np.ones((5, 3)))  # zero covariance, no ridge
    zca.fit(correlated(20, 3))
    with pytest.raises(ValueError, match="examples of 4 values .* fitted on examples of 3"):
        zca(np.ones((2, 4)))
    for bad in (-0.1, float("inf"), "0.1", True):
        with pytest.raises(ValueError, match="filter_bias must be a finite number >= 0"):
            preprocess.ZCA(filter_bias=bad)


# ---------------------------------------------------------------------------------------------
# LeCun local contrast normalisation


def lcn_loop(img, kernel_size=7, sigma=2.0, threshold=1e-4):
    """pylearn2's lecun_lcn on one h x w channel, pixel by pixel: gaussian_filter's kernel,
    a convolution with zeros outside the image, cropped to the image's size."""
    mid = kernel_size // 2
    g = np.zeros((kernel_size, kernel_size))
    for i in range(kernel_size):
        for j in range(kernel_size):
            g[i, j] = math.exp(-((i - mid) ** 2 + (j - mid) ** 2) / (2 * sigma ** 2)) \
                / (2 * math.pi * sigma ** 2)
    g /= g.sum()
    h, w = img.shape
    mean, sq = np.zeros((h, w)), np.zeros((h, w))
    for r in range(h):
        for c in range(w):
            for i in range(kernel_size):
                for j in range(kernel_size):
                    rr, cc = r - (i - mid), c - (j - mid)  # a convolution (kernel flipped)
                    if 0 <= rr < h and 0 <= cc < w:
                        mean[r, c] += g[i, j] * img[rr, cc]
                        sq[r, c] += g[i, j] * img[rr, cc] ** 2
    denom = np.sqrt(sq)
    divisor = np.maximum(np.maximum(denom.mean(), denom), threshold)
    return (img - mean) / divisor


@pytest.mark.parametrize(("kernel_size", "sigma"), [(7, 2.0), (3, 1.0), (5, 0.7)])
def test_lcn_matches_a_pixel_loop(kernel_size, sigma):
    x = rng(4).normal(size=(2, 2, 9, 11))
    x[1, 1] *= 1e-6  # a faint channel: the threshold takes over
    got = preprocess.lecun_lcn(x, kernel_size=kernel_size, sigma=sigma)
    assert got.shape == x.shape and got.dtype == np.float64
    for n in range(2):
        for c in range(2):
            np.testing.assert_allclose(got[n, c], lcn_loop(x[n, c], kernel_size, sigma),
                                       rtol=1e-10, atol=1e-12)


def test_lcn_channels_float32_zero_images_and_in_place(monkeypatch):
    x = rng(5).normal(size=(3, 3, 8, 8)).astype(np.float32)
    x[2] = 0.0
    only_r = preprocess.lecun_lcn(x, channels=(0,))  # what pylearn2's LeCunLCN does, see its docstring
    assert only_r.dtype == np.float32
    np.testing.assert_array_equal(only_r[:, 1:], x[:, 1:])  # G and B untouched
    for n in range(2):
        np.testing.assert_allclose(only_r[n, 0], lcn_loop(x[n, 0].astype(np.float64)),
                                   rtol=2e-5, atol=1e-6)
    np.testing.assert_array_equal(only_r[2], 0.0)  # all zeros: divided by the threshold, no NaN
    every = preprocess.lecun_lcn(x)
    np.testing.assert_array_equal(every[:, 0], only_r[:, 0])
    np.testing.assert_array_equal(preprocess.lecun_lcn(x, channels=2)[:, 2], every[:, 2])
    monkeypatch.setattr(preprocess, "_ROWS", 2)
    y = x.copy()
    assert preprocess.lecun_lcn(y, copy=False) is y
    np.testing.assert_array_equal(y, every)


def test_svhn_recipe_shapes():
    """The authors' SVHN preprocessing: GCN (defaults), then LCN on channel 0."""
    x = rng(6).integers(0, 256, (2, 3, 32, 32)).astype(np.float32)
    y = preprocess.lecun_lcn(preprocess.global_contrast_normalize(x), channels=(0,))
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()


@pytest.mark.parametrize(("x", "kwargs", "match"), [
    (np.ones((2, 64)), {}, r"shape \(n, c, h, w\), got 2 dimensions"),
    (np.ones((2, 1, 4, 4)), {"kernel_size": 6}, "kernel_size must be an odd int >= 3"),
    (np.ones((2, 1, 4, 4)), {"kernel_size": 1}, "kernel_size must be an odd int >= 3"),
    (np.ones((2, 1, 4, 4)), {"kernel_size": 7.0}, "kernel_size must be an odd int"),
    (np.ones((2, 1, 4, 4)), {"sigma": 0}, "sigma must be a finite number > 0"),
    (np.ones((2, 1, 4, 4)), {"threshold": -1e-4}, "threshold must be a finite number > 0"),
    (np.ones((2, 3, 4, 4)), {"channels": (0, 3)}, r"channels must be ints in 0\.\.2"),
    (np.ones((2, 3, 4, 4)), {"channels": -1}, r"channels must be ints in 0\.\.2"),
    (np.full((2, 1, 4, 4), np.nan), {}, "example 0 holds NaN or inf"),
    (np.ones((2, 1, 4, 4), np.uint8), {"copy": False}, "copy=False"),
])
def test_lcn_rejects_bad_input(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        preprocess.lecun_lcn(x, **kwargs)
