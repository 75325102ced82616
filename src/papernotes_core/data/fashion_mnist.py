"""Fashion-MNIST, split and scaled exactly as :mod:`~papernotes_core.data.mnist` does MNIST.

Zalando's drop-in replacement for MNIST: 28x28 grey images of ten kinds of clothing. So that a
chapter can swap one for the other, :func:`load_fashion_mnist` returns the same structure:
``train`` = the first 50,000 of the 60,000 official training images, ``valid`` = the last
10,000, ``test`` = the 10,000 official test images; images ``uint8 / 256`` as float32
``(n, 784)``, labels int64 ``(n,)``; class ``k`` is named :data:`FASHION_MNIST_CLASSES` ``[k]``.

The cache holds the four official IDX files, decompressed (``<data_dir>/fashion-mnist/``),
each verified by its pinned SHA-256 whenever it is read. They come from, in order:

1. the cache;
2. the Debian package ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``),
   whose ``/usr/share/datasets/fashion-mnist/*-ubyte.gz`` hold the original data. Debian
   recompressed them (its ``.gz`` files differ from Zalando's), so they are checked by the
   SHA-256 of their decompressed content, which is the same as the original's;
3. a download of the original ``.gz`` files from Zalando's GitHub repository, then from its S3
   bucket, checked against the pinned SHA-256 of the ``.gz`` and of its content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal, overload

from .fetch import Remote
from .mnist import Split, Splits, _load_idx_dataset

__all__ = [
    "DEBIAN_DIR",
    "DEBIAN_PACKAGE",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_FILES",
    "load_fashion_mnist",
]

#: The class names, indexed by label.
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

#: The Debian package that ships the data, and where it puts the files.
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_HINT = f"apt-get install {DEBIAN_PACKAGE} (as root; it installs the files in {DEBIAN_DIR})"

_GITHUB = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
_S3 = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def _fashion_remote(name: str, sha256: str, size: int, gz_sha256: str, gz_size: int) -> Remote:
    return Remote("fashion-mnist", name, sha256, urls=(f"{_GITHUB}{name}.gz", f"{_S3}{name}.gz"),
                  size=size, gzipped=True, download_sha256=gz_sha256, download_size=gz_size,
                  hint=_HINT)


#: The four official IDX files. ``sha256``/``size``: the decompressed file (as cached, and as
#: in the Debian package); ``download_sha256``/``download_size``: Zalando's ``.gz`` files
#: (TensorFlow Datasets' url_checksums/fashion_mnist.txt).
FASHION_MNIST_FILES: dict[str, Remote] = {
    "train_images": _fashion_remote(
        "train-images-idx3-ubyte",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47_040_016,
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26_421_880),
    "train_labels": _fashion_remote(
        "train-labels-idx1-ubyte",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60_008,
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29_515),
    "test_images": _fashion_remote(
        "t10k-images-idx3-ubyte",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7_840_016,
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4_422_102),
    "test_labels": _fashion_remote(
        "t10k-labels-idx1-ubyte",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10_008,
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5_148),
}


def _debian_source(name: str) -> Callable[[], Path]:
    def from_debian_package() -> Path:
        path = DEBIAN_DIR / f"{name}.gz"  # read at call time, so tests can point it elsewhere
        if not path.is_file():
            raise FileNotFoundError(f"the Debian package {DEBIAN_PACKAGE} is not installed "
                                    f"({path} is not there)")
        return path
    return from_debian_package


@overload
def load_fashion_mnist(split: None = None, *, limit: int | None = None,
                       cache_dir: Path | str | None = None, download: bool = True,
                       timeout: float = 60.0) -> Splits: ...
@overload
def load_fashion_mnist(split: Literal["train", "valid", "test"], *, limit: int | None = None,
                       cache_dir: Path | str | None = None, download: bool = True,
                       timeout: float = 60.0) -> Split: ...


def load_fashion_mnist(split: str | None = None, *, limit: int | None = None,
                       cache_dir: Path | str | None = None, download: bool = True,
                       timeout: float = 60.0) -> Split | Splits:
    """Fashion-MNIST, split and scaled as :func:`~papernotes_core.data.mnist.load_mnist`.

    ``split``: ``None`` for a :class:`~papernotes_core.data.mnist.Splits` of all three, or
    ``"train"``, ``"valid"``, ``"test"`` for that :class:`~papernotes_core.data.mnist.Split`.
    ``limit``: keep only the first ``limit`` examples of each split returned. ``cache_dir``,
    ``download`` and ``timeout`` as for :func:`~papernotes_core.data.fetch.fetch`.

    Each split's ``x`` is float32 of shape ``(n, 784)`` with values ``k/256`` (``k`` in
    0..255), ``y`` int64 of shape ``(n,)`` in 0..9 (names in :data:`FASHION_MNIST_CLASSES`);
    ``n`` is 50,000 / 10,000 / 10,000 for train (the first 50,000 official training images) /
    valid (the last 10,000) / test. Every call returns new arrays.

    Sources: the cache, the Debian package ``dataset-fashion-mnist``, a verified download.
    Raises :class:`~papernotes_core.data.fetch.DataUnavailableError` (a ``FileNotFoundError``)
    listing every source tried when none works, naming ``apt-get install
    dataset-fashion-mnist``; ``ValueError``/``TypeError`` for a bad ``split`` or ``limit``.
    """
    packaged = {key: _debian_source(remote.filename) for key, remote in FASHION_MNIST_FILES.items()}
    return _load_idx_dataset("Fashion-MNIST", FASHION_MNIST_FILES, packaged, split, limit,
                             cache_dir=cache_dir, download=download, timeout=timeout)
