"""CIFAR-10 and CIFAR-100: 45,000 training, 5,000 validation and 10,000 test colour images.

Both data sets are 32x32 RGB images (Krizhevsky, 2009): CIFAR-10 in 10 classes, CIFAR-100 in 100
fine classes grouped into 20 coarse ones. :func:`load_cifar10` and :func:`load_cifar100` return
the same :class:`~papernotes_core.data.mnist.Split` / :class:`~papernotes_core.data.mnist.Splits`
as the MNIST loaders:

* ``train`` = the first 45,000 images of the official 50,000-image training set (CIFAR-10: the
  five files ``data_batch_1`` .. ``data_batch_5`` concatenated in that order), ``valid`` = the
  last 5,000 of them, ``test`` = the 10,000 official test images, all in the official order;
* images are float32 of shape ``(n, 3, 32, 32)`` (channels R, G, B; rows top to bottom), equal to
  the ``uint8`` pixels divided by 255 (rounded to float32), so in ``[0, 1]`` with both ends
  reached; labels are int64 of shape ``(n,)``.

**No offline source.** No pip or Debian package ships CIFAR, so the data come from:

1. the cache, ``<data_dir>/cifar-10/cifar-10-python.tar.gz`` (or ``cifar-100/...``): the official
   tarball itself, checked against its pinned SHA-256 every time it is read;
2. a download of that tarball from the CIFAR page of the University of Toronto
   (https://www.cs.toronto.edu/~kriz/cifar.html), streamed to a temporary file, checked (length,
   then SHA-256) and only then moved into the cache (see :mod:`~papernotes_core.data.fetch`).

Without internet (this repository's CI, a laptop offline) the loaders raise
:class:`~papernotes_core.data.fetch.DataUnavailableError` naming the URL: CIFAR runs are meant for
Google Colab or any machine with internet. A download is 163 MiB (CIFAR-10) or 161 MiB
(CIFAR-100).

**Pickles, read safely.** The tarballs hold Python 2 pickles (dicts with ``bytes`` keys such as
``b"data"``, a uint8 array of shape ``(n, 3072)``, and ``b"labels"`` / ``b"fine_labels"`` /
``b"coarse_labels"``, lists of ints). Nothing is extracted or unpickled before the tarball's
SHA-256 has been checked, and it is checked on the very bytes that are then read (so the file
cannot change in between). The members are read from that verified tarball in memory (nothing is
written to disk) and unpickled by :class:`RestrictedUnpickler`, which can build NumPy arrays and
the builtin containers and nothing else: a second line of defence behind the checksum.

Pins. ``cifar-10-python.tar.gz``: 170,498,071 bytes, SHA-256
``6d958be0...5c001ce`` (MD5 ``c58f3010...e74349a``, as published on the CIFAR page);
``cifar-100-python.tar.gz``: 169,001,437 bytes, SHA-256 ``85cd44d0...ba677a7`` (MD5
``eb9058c3...c42a8d85``). The SHA-256 values are those pinned by Keras
(``keras/src/datasets/cifar10.py``, ``cifar100.py``) and by torchvision's prototype datasets
(``torchvision/prototype/datasets/_builtin/cifar.py``); the sizes are those the Toronto server
sends (``Content-Length``).

Loading takes a few seconds after the first call (hashing and decompressing the tarball, about
170 MB); the float32 arrays of all three splits take 737 MB.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Literal, overload

import numpy as np

from .fetch import ChecksumError, Remote, fetch, sha256_bytes
from .mnist import SPLITS, Split, Splits, _check_options

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_TARBALL",
    "CIFAR100_TARBALL",
    "CIFAR_PAGE",
    "LABEL_MODES",
    "RestrictedUnpickler",
    "load_cifar10",
    "load_cifar100",
]

#: The CIFAR page of the University of Toronto, which links the tarballs.
CIFAR_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"
_KRIZ = "https://www.cs.toronto.edu/~kriz/"

#: The split sizes. The official training set is ``N_TRAIN + N_VALID`` images; ``valid`` is its
#: last ``N_VALID``. Read at call time (the tests shrink them to load a tiny fake tarball).
N_TRAIN, N_VALID, N_TEST = 45_000, 5_000, 10_000
IMAGE_SHAPE = (3, 32, 32)
_PIXELS = 3 * 32 * 32

#: The CIFAR-10 class names, indexed by label (as in ``batches.meta``).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

#: The values of ``load_cifar100(label_mode=...)``: 100 fine classes or 20 coarse superclasses.
LABEL_MODES = ("fine", "coarse")

_HINT = ("CIFAR has no offline source (no pip or Debian package ships it): it needs internet "
         "access, so run this in Google Colab or on a machine online")

#: ``cifar-10-python.tar.gz``, the "CIFAR-10 python version" of the CIFAR page.
CIFAR10_TARBALL = Remote(
    "cifar-10", "cifar-10-python.tar.gz",
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    urls=(f"{_KRIZ}cifar-10-python.tar.gz",), size=170_498_071, hint=_HINT)

#: ``cifar-100-python.tar.gz``, the "CIFAR-100 python version" of the CIFAR page.
CIFAR100_TARBALL = Remote(
    "cifar-100", "cifar-100-python.tar.gz",
    "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
    urls=(f"{_KRIZ}cifar-100-python.tar.gz",), size=169_001_437, hint=_HINT)

#: The members read from each tarball (the folder names are those of the official tarballs).
_CIFAR10_TRAIN = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
_CIFAR10_TEST = ("cifar-10-batches-py/test_batch",)
_CIFAR100_TRAIN = ("cifar-100-python/train",)
_CIFAR100_TEST = ("cifar-100-python/test",)


# ---------------------------------------------------------------------------------------------
# Reading the verified tarball


def _numpy_reconstruct():
    """NumPy's ``_reconstruct`` (what ``ndarray.__reduce__`` names), whatever NumPy's version."""
    return np.empty(0).__reduce__()[0]


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles what the CIFAR batches hold, and nothing else.

    The batches are Python 2 pickles of dicts of ``bytes`` keys to NumPy arrays, lists of ints
    and byte strings. The builtin types (dict, list, tuple, bytes, str, int, float, bool, None)
    need no global; a NumPy array needs exactly three: ``numpy.core.multiarray._reconstruct``
    (``numpy._core`` in NumPy >= 2), ``numpy.ndarray`` and ``numpy.dtype``. Any other global
    (``os.system``, ``builtins.eval``, ...) raises ``pickle.UnpicklingError``, so a pickle made
    to run code on loading cannot. The three are resolved here rather than imported by name, so
    that NumPy 2 does not warn about the old ``numpy.core`` path.
    """

    def find_class(self, module: str, name: str):
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
            ("numpy", "ndarray"): lambda: np.ndarray,
            ("numpy", "dtype"): lambda: np.dtype,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR batch holds only NumPy arrays, "
                "lists, numbers and strings (the file is damaged or not what it claims to be)")
        return allowed[module, name]()


def _unpickle(raw: bytes, where: str):
    """Unpickle ``raw`` (bytes of a verified tarball) with :class:`RestrictedUnpickler`."""
    try:
        return RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(f"{where}: {e}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise ValueError(f"{where}: not a readable CIFAR pickle ({type(e).__name__}: {e})") from None


def _read_tarball(remote: Remote, names: tuple[str, ...], *, cache_dir, download: bool,
                  timeout: float) -> dict[str, object]:
    """Fetch ``remote`` (verified), then unpickle its members ``names``; return name -> object.

    The SHA-256 is checked once more on the bytes read here, which are the ones unpickled.
    """
    path = Path(fetch(remote, cache_dir=cache_dir, download=download, timeout=timeout))
    raw = path.read_bytes()
    actual = sha256_bytes(raw)
    if actual != remote.sha256:
        raise ChecksumError(f"{path}: SHA-256 is {actual}, expected {remote.sha256} (the file "
                            "changed after it was verified?); nothing was unpickled")
    wanted = set(names)
    found: dict[str, bytes] = {}
    try:
        # One forward pass over the gzip stream; members are read into memory, never extracted.
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    f = tar.extractfile(member)
                    if f is not None:
                        found[member.name] = f.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise ValueError(f"{path}: not a readable .tar.gz ({type(e).__name__}: {e})") from None
    del raw
    missing = [name for name in names if name not in found]
    if missing:
        raise ValueError(f"{path}: no member {', '.join(missing)}; expected the layout of the "
                         f"official {remote.filename}")
    return {name: _unpickle(found.pop(name), f"{remote.filename}:{name}") for name in names}


def _batch(obj, where: str, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (n, 3072), labels int64 (n,))`` from one unpickled batch, checked."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a dict (a CIFAR batch), got {type(obj).__name__}")
    keys = sorted(k.decode("latin1") if isinstance(k, bytes) else repr(k) for k in obj)
    for key in (b"data", label_key):
        if key not in obj:
            raise ValueError(f"{where}: no key {key!r}; the batch has {', '.join(keys)}")
    data = obj[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != _PIXELS:
        got = (f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray)
               else type(data).__name__)
        raise ValueError(f"{where}: b'data' must be uint8 of shape (n, {_PIXELS}), got {got}")
    labels = np.asarray(obj[label_key])
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(data):
        raise ValueError(f"{where}: {label_key!r} must be {len(data)} ints, got "
                         f"{labels.dtype} {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{where}: {label_key!r} must be in 0..{num_classes - 1}, found "
                         f"{labels.min()}..{labels.max()}")
    return data, labels.astype(np.int64)


def _to_split(images: np.ndarray, labels: np.ndarray, start: int, stop: int, limit) -> Split:
    if limit is not None:
        stop = min(stop, start + int(limit))
    x = images[start:stop].reshape(stop - start, *IMAGE_SHAPE).astype(np.float32)
    x /= np.float32(255)
    return Split(x, labels[start:stop].copy())


def _load(name: str, remote: Remote, train_members: tuple[str, ...],
          test_members: tuple[str, ...], label_key: bytes, num_classes: int, split, limit, *,
          cache_dir, download: bool, timeout: float) -> Split | Splits:
    """Read the members a split needs, check them, and cut the 45k/5k/10k splits."""
    _check_options(split, limit)
    n_train, n_valid, n_test = N_TRAIN, N_VALID, N_TEST
    need_train = split in (None, "train", "valid")
    need_test = split in (None, "test")
    names = (train_members if need_train else ()) + (test_members if need_test else ())
    objects = _read_tarball(remote, names, cache_dir=cache_dir, download=download,
                            timeout=timeout)
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for part, members, expected in (("train", train_members, n_train + n_valid),
                                    ("test", test_members, n_test)):
        if not (need_train if part == "train" else need_test):
            continue
        batches = [_batch(objects[m], f"{remote.filename}:{m}", label_key, num_classes)
                   for m in members]
        images = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches])
        if len(images) != expected:
            raise ValueError(f"{name} {part}: expected {expected} images in "
                             f"{', '.join(members)}, found {len(images)}")
        parts[part] = (images, labels)
    ranges = {"train": ("train", 0, n_train), "valid": ("train", n_train, n_train + n_valid),
              "test": ("test", 0, n_test)}

    def make(which: str) -> Split:
        part, start, stop = ranges[which]
        return _to_split(*parts[part], start, stop, limit)

    if split is not None:
        return make(split)
    return Splits(**{which: make(which) for which in SPLITS})


# ---------------------------------------------------------------------------------------------
# The loaders


def _check_timeout(timeout) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a positive number of seconds, got {type(timeout).__name__}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


@overload
def load_cifar10(split: None = None, *, limit: int | None = None,
                 cache_dir: Path | str | None = None, download: bool = True,
                 timeout: float = 60.0) -> Splits: ...
@overload
def load_cifar10(split: Literal["train", "valid", "test"], *, limit: int | None = None,
                 cache_dir: Path | str | None = None, download: bool = True,
                 timeout: float = 60.0) -> Split: ...


def load_cifar10(split: str | None = None, *, limit: int | None = None,
                 cache_dir: Path | str | None = None, download: bool = True,
                 timeout: float = 60.0) -> Split | Splits:
    """CIFAR-10: 45,000 train, 5,000 valid, 10,000 test images in 10 classes.

    ``split``: ``None`` for a :class:`~papernotes_core.data.mnist.Splits` holding all three, or
    ``"train"``, ``"valid"``, ``"test"`` for that :class:`~papernotes_core.data.mnist.Split`
    alone. ``limit``: keep only the first ``limit`` examples of each split returned.
    ``cache_dir`` replaces :func:`~papernotes_core.runtime.data_dir`; ``download`` (and
    ``PAPERNOTES_OFFLINE``) allow or forbid the download; ``timeout`` (seconds) bounds the
    connection and each read of the download, not the whole transfer.

    Each split's ``x`` is float32 of shape ``(n, 3, 32, 32)`` (channels R, G, B), the uint8
    pixels divided by 255, so in ``[0, 1]``; ``y`` is int64 of shape ``(n,)`` in 0..9 (names in
    :data:`CIFAR10_CLASSES`). ``train`` is the first 45,000 images of ``data_batch_1`` ..
    ``data_batch_5`` concatenated, ``valid`` the last 5,000 (all of ``data_batch_5``'s second
    half), ``test`` is ``test_batch``, in the official order. Every call returns new arrays.

    Sources: the cache, then a verified download of ``cifar-10-python.tar.gz`` (see the module
    docstring). Raises :class:`~papernotes_core.data.fetch.DataUnavailableError` (a
    ``FileNotFoundError``) when neither works, saying that CIFAR needs internet (Colab) and
    naming the URL; ``ValueError``/``TypeError`` for a bad argument.
    """
    _check_timeout(timeout)
    return _load("CIFAR-10", CIFAR10_TARBALL, _CIFAR10_TRAIN, _CIFAR10_TEST, b"labels", 10,
                 split, limit, cache_dir=cache_dir, download=download, timeout=timeout)


@overload
def load_cifar100(split: None = None, *, label_mode: str = "fine", limit: int | None = None,
                  cache_dir: Path | str | None = None, download: bool = True,
                  timeout: float = 60.0) -> Splits: ...
@overload
def load_cifar100(split: Literal["train", "valid", "test"], *, label_mode: str = "fine",
                  limit: int | None = None, cache_dir: Path | str | None = None,
                  download: bool = True, timeout: float = 60.0) -> Split: ...


def load_cifar100(split: str | None = None, *, label_mode: str = "fine",
                  limit: int | None = None, cache_dir: Path | str | None = None,
                  download: bool = True, timeout: float = 60.0) -> Split | Splits:
    """CIFAR-100: 45,000 train, 5,000 valid, 10,000 test images in 100 (or 20) classes.

    As :func:`load_cifar10` (same arguments, splits, shapes and scaling), with ``label_mode``:
    ``"fine"`` (the default) for the 100 classes, labels 0..99 (the file's ``fine_labels``), or
    ``"coarse"`` for the 20 superclasses, labels 0..19 (``coarse_labels``). The images are the
    same in both modes. ``train`` is the first 45,000 images of the official ``train`` file,
    ``valid`` its last 5,000, ``test`` the official ``test`` file.

    Sources: the cache, then a verified download of ``cifar-100-python.tar.gz``. Raises
    :class:`~papernotes_core.data.fetch.DataUnavailableError` when neither works (CIFAR needs
    internet: use Colab), ``ValueError``/``TypeError`` for a bad argument.
    """
    if not isinstance(label_mode, str):
        raise TypeError(f"label_mode must be a str, 'fine' or 'coarse'; got "
                        f"{type(label_mode).__name__}")
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be 'fine' (100 classes) or 'coarse' (20 superclasses), "
                         f"got {label_mode!r}")
    _check_timeout(timeout)
    key, classes = (b"fine_labels", 100) if label_mode == "fine" else (b"coarse_labels", 20)
    return _load("CIFAR-100", CIFAR100_TARBALL, _CIFAR100_TRAIN, _CIFAR100_TEST, key, classes,
                 split, limit, cache_dir=cache_dir, download=download, timeout=timeout)
