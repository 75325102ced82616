r"""pylearn2's image preprocessing, in NumPy: global contrast normalisation, ZCA, LeCun's LCN.

The conv nets of "Neural Networks with Few Multiplications" (hantek/BinaryConnect) read data that
pylearn2 preprocessed; these functions redo it on arrays of shape ``(n, d)`` or ``(n, c, h, w)``
(one example a row). What the authors' scripts ran:

* **SVHN** (``svhn_preprocessing.py``, a copy of pylearn2's
  ``scripts/papers/maxout/svhn_preprocessing.py``): ``GlobalContrastNormalization(batch_size=5000)``
  (all defaults: ``scale=1``, ``subtract_mean=True``, ``use_std=False``, ``sqrt_bias=0``,
  ``min_divisor=1e-8``), then ``LeCunLCN((32, 32))`` (defaults ``kernel_size=7``,
  ``threshold=1e-4``; the Gaussian's ``sigma=2`` is fixed in ``gaussian_filter``), applied to the
  raw pixels 0..255 of ``splitted_train``, ``valid`` and ``test`` alike (both steps work example by
  example; nothing is fitted). So: ``lecun_lcn(global_contrast_normalize(x), channels=(0,))``,
  see the warning in :func:`lecun_lcn` about ``channels``. (GCN makes the pixel scale irrelevant:
  ``x / 255`` gives the same result as 0..255.)
* **CIFAR-10** (``cifar10.py`` loads ``pylearn2_gcn_whitened``, made by pylearn2's
  ``scripts/datasets/make_cifar10_gcn_whitened.py``): ``CIFAR10(which_set='train', gcn=55.)``,
  i.e. ``global_contrast_normalize(X, scale=55.)`` on the pixels 0..255, then ``ZCA()`` (default
  ``filter_bias=0.1``) fitted on all 50,000 training images *before* ``cifar10.py`` cuts them
  into 45,000 train and 5,000 valid; the test images get the same GCN and the fitted ZCA. So:
  ``zca = ZCA().fit(global_contrast_normalize(x_train_all, scale=55.0))``, then
  ``zca(global_contrast_normalize(x, scale=55.0))`` for every split.

Sources (lisa-lab/pylearn2): ``pylearn2/expr/preprocessing.py`` (``global_contrast_normalize``),
``pylearn2/datasets/preprocessing.py`` (``GlobalContrastNormalization``, ``ZCA``, ``LeCunLCN``,
``lecun_lcn``, ``gaussian_filter``). pylearn2 computes in float32 (Theano's ``floatX``); these
functions compute in float64 and return float32 (or float64 for float64 input), so they agree
with pylearn2 to float32 rounding.

Every function checks its input (real numbers, finite, the right number of dimensions) and
raises a ``ValueError`` / ``TypeError`` saying what was expected. Large arrays are processed in
chunks of examples; ``copy=False`` writes the result into ``x`` itself (a float array), which
halves the memory for the 7.4 GB of SVHN with ``extra``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ZCA", "global_contrast_normalize", "lecun_lcn"]

_ROWS = 2048  # examples per chunk


def _check(x, name: str = "x", ndims: tuple[int, ...] = (2, 4), copy: bool = True) -> np.ndarray:
    """``x`` as an array of real numbers, of an allowed rank, finite, with at least one example."""
    if not isinstance(copy, bool):
        raise TypeError(f"copy must be a bool, got {type(copy).__name__}")
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers (a float or int array), got {a.dtype}")
    shapes = " or ".join({2: "(n, d)", 4: "(n, c, h, w)"}[k] for k in ndims)
    if a.ndim not in ndims:
        raise ValueError(f"{name} must have shape {shapes}, got {a.ndim} dimensions {a.shape}")
    if a.shape[0] == 0 or a[0].size == 0:
        raise ValueError(f"{name} must hold at least one example of at least one value, got "
                         f"shape {a.shape}")
    if not copy and (a is not x or a.dtype.kind != "f" or not a.flags.writeable):
        raise ValueError(f"copy=False writes the result into {name}, which must then be a writable "
                         f"float32 or float64 NumPy array; got {type(x).__name__} "
                         f"{getattr(x, 'dtype', '')}")
    if a.dtype.kind == "f":
        for start in range(0, len(a), _ROWS):
            if not np.isfinite(a[start:start + _ROWS]).all():
                bad = start + int(np.argmin(np.isfinite(a[start:start + _ROWS]).reshape(
                    len(a[start:start + _ROWS]), -1).all(axis=1)))
                raise ValueError(f"{name} must be finite; example {bad} holds NaN or inf")
    return a


def _output(a: np.ndarray, copy: bool) -> np.ndarray:
    if not copy:
        return a
    return np.empty(a.shape, np.float64 if a.dtype == np.float64 else np.float32)


def global_contrast_normalize(x, *, scale: float = 1.0, subtract_mean: bool = True,
                              use_std: bool = False, sqrt_bias: float = 0.0,
                              min_divisor: float = 1e-8, copy: bool = True) -> np.ndarray:
    r"""Global contrast normalisation of each example (row), as pylearn2 defines it.

    For an example :math:`x \in \mathbb{R}^d` (an image flattened: all channels and pixels),
    with :math:`\bar x` its mean:

    .. math::

        x' = x - \bar x \ (\text{if subtract\_mean, else } x' = x), \qquad
        s = \frac{1}{\text{scale}} \sqrt{\text{sqrt\_bias} + \textstyle\sum_i x_i'^2}
        \ \ \text{or, with use\_std,}\ \
        s = \frac{1}{\text{scale}} \sqrt{\text{sqrt\_bias} + \operatorname{var}(x)},

    where :math:`\operatorname{var}` has ``ddof=1`` (MATLAB's ``var``; ``ddof=0`` when
    :math:`d = 1`); the result is :math:`x' / s`, or :math:`x'` itself when
    :math:`s <` ``min_divisor`` (a constant image is only centred). So with the defaults each
    example gets mean 0 and L2 norm ``scale``; with ``use_std`` and ``sqrt_bias=0``, standard
    deviation ``scale``.

    pylearn2 (``pylearn2/expr/preprocessing.py``) has the same arguments and defaults; the
    authors use the defaults for SVHN and ``scale=55.`` for CIFAR-10 (see the module docstring).

    ``x``: ``(n, d)`` or ``(n, c, h, w)``, real and finite. Returns an array of ``x``'s shape,
    float32 (float64 for float64 input); ``copy=False`` writes it into ``x`` (a float array).
    Raises ``ValueError`` for a bad shape, non-finite values, ``scale < min_divisor`` (pylearn2
    asserts it) or a negative ``sqrt_bias``/``min_divisor``; ``TypeError`` for a non-numeric ``x``.
    """
    for name, v in (("scale", scale), ("sqrt_bias", sqrt_bias), ("min_divisor", min_divisor)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
                or not np.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if scale < min_divisor:
        raise ValueError(f"scale must be >= min_divisor ({min_divisor}), got {scale}")
    a = _check(x, copy=copy)
    out = _output(a, copy)
    d = a[0].size
    for start in range(0, len(a), _ROWS):
        block = a[start:start + _ROWS].reshape(-1, d).astype(np.float64)
        if subtract_mean:
            block -= block.mean(axis=1, keepdims=True)
        if use_std:
            spread = block.var(axis=1, ddof=1 if d > 1 else 0)
        else:
            spread = (block ** 2).sum(axis=1)
        norm = np.sqrt(sqrt_bias + spread) / scale
        norm[norm < min_divisor] = 1.0
        block /= norm[:, None]
        out[start:start + _ROWS] = block.reshape(out[start:start + _ROWS].shape)
    return out


class ZCA:
    r"""ZCA whitening fitted on training data, as pylearn2's ``preprocessing.ZCA()``.

    :meth:`fit` on the rows :math:`x_1..x_n \in \mathbb{R}^d` of the training set (images
    flattened) computes the mean :math:`\mu`, the biased covariance plus a ridge

    .. math::

        C = \frac{1}{n} \sum_k (x_k - \mu)(x_k - \mu)^\top + \text{filter\_bias}\, I
          = V \operatorname{diag}(e) V^\top,
        \qquad P = V \operatorname{diag}(e^{-1/2}) V^\top = C^{-1/2},

    and :meth:`transform` (or calling the object) maps :math:`x \mapsto (x - \mu) P`. With a
    small ``filter_bias`` the output covariance on the training set is
    :math:`I - \text{filter\_bias}\, C^{-1} \approx I`. pylearn2's default, used by the
    authors, is ``filter_bias=0.1`` (pylearn2 stores it as float32; its ``n_components`` /
    ``n_drop_components`` options, unused by them, are not offered). Fitted attributes:
    ``mean_`` (``(d,)``) and ``P_`` (``(d, d)``), float64.

    ``fit`` raises ``ValueError`` for fewer than 2 examples, non-finite values, or a
    covariance that is not positive definite (pylearn2 asserts ``min(e) > 0``: use a
    ``filter_bias > 0``); ``transform`` raises ``RuntimeError`` before ``fit`` and ``ValueError``
    for examples of another size than the fitted ones.
    """

    def __init__(self, filter_bias: float = 0.1):
        if isinstance(filter_bias, bool) or not isinstance(filter_bias, (int, float, np.floating)) \
                or not np.isfinite(filter_bias) or filter_bias < 0:
            raise ValueError(f"filter_bias must be a finite number >= 0, got {filter_bias!r}")
        self.filter_bias = float(filter_bias)
        self.mean_: np.ndarray | None = None
        self.P_: np.ndarray | None = None

    def __repr__(self) -> str:
        state = f"fitted on d={len(self.mean_)}" if self.mean_ is not None else "not fitted"
        return f"ZCA(filter_bias={self.filter_bias}, {state})"

    def fit(self, x) -> "ZCA":
        """Fit ``mean_`` and ``P_`` on ``x`` ((n, d) or (n, c, h, w), n >= 2); return self."""
        a = _check(x)
        if len(a) < 2:
            raise ValueError(f"ZCA.fit needs at least 2 examples, got {len(a)}")
        d = a[0].size
        mean = np.zeros(d)
        for start in range(0, len(a), _ROWS):
            mean += a[start:start + _ROWS].reshape(-1, d).sum(axis=0, dtype=np.float64)
        mean /= len(a)
        cov = np.zeros((d, d))
        for start in range(0, len(a), _ROWS):
            block = a[start:start + _ROWS].reshape(-1, d) - mean
            cov += block.T @ block
        cov /= len(a)
        cov[np.diag_indices(d)] += self.filter_bias
        eigs, vecs = np.linalg.eigh(cov)
        if not eigs.min() > 0:
            raise ValueError(f"ZCA.fit: the covariance + filter_bias * I is not positive definite "
                             f"(smallest eigenvalue {eigs.min():.3g}); use filter_bias > 0")
        self.mean_, self.P_ = mean, (vecs / np.sqrt(eigs)) @ vecs.T
        return self

    def transform(self, x, *, copy: bool = True) -> np.ndarray:
        """``(x - mean_) @ P_`` for each example, in ``x``'s shape (float32, or float64 for
        float64 input; ``copy=False`` writes into ``x``)."""
        if self.P_ is None:
            raise RuntimeError("this ZCA is not fitted: call fit(train_x) before transforming")
        a = _check(x, copy=copy)
        d = len(self.mean_)
        if a[0].size != d:
            raise ValueError(f"x has examples of {a[0].size} values (shape {a.shape}); this ZCA "
                             f"was fitted on examples of {d}")
        out = _output(a, copy)
        for start in range(0, len(a), _ROWS):
            block = (a[start:start + _ROWS].reshape(-1, d) - self.mean_) @ self.P_
            out[start:start + _ROWS] = block.reshape(out[start:start + _ROWS].shape)
        return out

    __call__ = transform


def _gaussian_1d(kernel_size: int, sigma: float) -> np.ndarray:
    """The normalised 1-D factor ``g`` of pylearn2's ``gaussian_filter``: its 2-D kernel
    ``exp(-(i^2 + j^2) / (2 sigma^2)) / sum`` (i, j = -mid..mid) is ``outer(g, g)``."""
    offsets = np.arange(kernel_size) - kernel_size // 2
    g = np.exp(-offsets ** 2 / (2.0 * sigma ** 2))
    return g / g.sum()


def _blur(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``a`` (m, h, w) convolved with ``outer(g, g)``, zeros outside the image, same size."""
    mid = len(g) // 2
    h, w = a.shape[1:]
    p = np.pad(a, ((0, 0), (mid, mid), (0, 0)))
    rows = sum(g[i] * p[:, i:i + h] for i in range(len(g)))
    p = np.pad(rows, ((0, 0), (0, 0), (mid, mid)))
    return sum(g[j] * p[:, :, j:j + w] for j in range(len(g)))


def lecun_lcn(x, *, kernel_size: int = 7, sigma: float = 2.0, threshold: float = 1e-4,
              channels=None, copy: bool = True) -> np.ndarray:
    r"""LeCun's local contrast normalisation, pylearn2's ``LeCunLCN`` / ``lecun_lcn``.

    Each channel of each image :math:`x` (``h x w``) is normalised alone. With :math:`G` the
    ``kernel_size`` x ``kernel_size`` Gaussian of standard deviation ``sigma`` normalised to sum
    1 (pylearn2's ``gaussian_filter``: weights :math:`\exp(-(i^2+j^2)/2\sigma^2)` for offsets
    :math:`i, j = -m..m`, :math:`m` = ``kernel_size // 2``) and :math:`*` a convolution that
    treats pixels outside the image as 0 and keeps the image size (pylearn2: a "full"
    convolution cropped by :math:`m` on each side):

    .. math::

        v = x - G * x, \qquad \sigma_{ij} = \sqrt{(G * x^2)_{ij}}, \qquad
        y_{ij} = \frac{v_{ij}}{\max\bigl(\overline{\sigma},\ \sigma_{ij},\ \text{threshold}\bigr)},

    where :math:`\overline{\sigma}` is the mean of :math:`\sigma` over the image. Note that the
    divisor uses :math:`G * x^2`, the local mean square of the input, not of :math:`v` (as
    pylearn2 does), and that near the border the zeros outside pull the local mean to 0.
    pylearn2's defaults, used by the authors for SVHN: ``kernel_size=7``, ``sigma=2``
    (hard-coded there), ``threshold=1e-4``.

    ``channels``: the channels to normalise (the others are returned unchanged); ``None`` for
    all, which is what ``LeCunLCN(channels=None)`` means. **But** pylearn2's ``LeCunLCN.transform``
    returns from inside its loop over channels (an indentation slip of 2014-01-17, commit
    c71be4bc0, still in its last version), so pylearn2 since then, and the authors' 2015 runs,
    normalise **channel 0 only** (R) and leave G and B as GCN made them: pass ``channels=(0,)``
    to reproduce that.

    ``x``: ``(n, c, h, w)``, real and finite. Returns an array of ``x``'s shape, float32 (float64
    for float64 input); ``copy=False`` writes into ``x``. Raises ``ValueError`` for another shape,
    non-finite values, an even or < 3 ``kernel_size`` (pylearn2's crop needs an odd one), a
    non-positive ``sigma``/``threshold`` or a channel out of range.
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)) \
            or kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd int >= 3, got {kernel_size!r}")
    for name, v in (("sigma", sigma), ("threshold", threshold)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) \
                or not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    a = _check(x, ndims=(4,), copy=copy)
    c = a.shape[1]
    if channels is None:
        chosen = list(range(c))
    else:
        chosen = [channels] if isinstance(channels, (int, np.integer)) else list(channels)
        for ch in chosen:
            if isinstance(ch, bool) or not isinstance(ch, (int, np.integer)) or not 0 <= ch < c:
                raise ValueError(f"channels must be ints in 0..{c - 1} (x has {c} channels), "
                                 f"got {channels!r}")
    g = _gaussian_1d(int(kernel_size), float(sigma))
    out = _output(a, copy)
    for start in range(0, len(a), _ROWS):
        stop = min(len(a), start + _ROWS)
        if copy:
            out[start:stop] = a[start:stop]
        for ch in chosen:
            img = a[start:stop, ch].astype(np.float64)
            centred = img - _blur(img, g)
            local = np.sqrt(_blur(img ** 2, g))
            divisor = np.maximum(local, local.mean(axis=(1, 2), keepdims=True))
            out[start:stop, ch] = centred / np.maximum(divisor, threshold)
    return out
