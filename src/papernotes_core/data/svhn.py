"""SVHN (cropped digits, "format 2"): 32x32 colour house-number digits, split as pylearn2 did.

The Street View House Numbers data set (Netzer et al., 2011) comes as three MATLAB files from
http://ufldl.stanford.edu/housenumbers/ : ``train_32x32.mat`` (73,257 images),
``test_32x32.mat`` (26,032) and ``extra_32x32.mat`` (531,131 easier images). Each holds ``X``,
uint8 of shape 32x32x3xN (rows, columns, R/G/B, image), and ``y``, N x 1 labels 1..10 where 10
is the digit 0. :func:`load_svhn` returns the :class:`~papernotes_core.data.mnist.Split` /
:class:`~papernotes_core.data.mnist.Splits` of the other loaders:

* images float32 of shape ``(n, 3, 32, 32)`` (channels R, G, B; rows top to bottom), the uint8
  pixels divided by 255 (as :mod:`~papernotes_core.data.cifar` does), so in ``[0, 1]``;
* labels int64 of shape ``(n,)``, the digit shown: 0..9 (the files' label 10 becomes 0; pylearn2
  instead subtracts 1, so that its class 9 is the digit 0: the same partition, renamed).

**The splits are pylearn2's** (``pylearn2/datasets/svhn.py``, ``SVHN.make_data`` and its
``split_train_valid``), which the authors of "Neural Networks with Few Multiplications" use
(hantek/BinaryConnect ``svhn.py``: ``SVHN('splitted_train')``, ``SVHN('valid')``,
``SVHN('test')``). pylearn2 builds each set with a fresh ``numpy.random.RandomState(322)``:

1. for each file label ``i = 1, ..., 10`` in turn, it takes the ascending positions of the
   training images with label ``i``, shuffles them with that generator and keeps the first 400
   for validation; then the same with the ``extra`` file, 200 per label;
2. ``splitted_train`` = the other training images in ascending order, then the other extra
   images in ascending order (598,388); ``valid`` = the 4,000 + 2,000 picked images (6,000);
3. the set is permuted by the generator's next draws (``index = range(n); rng.shuffle(index)``;
   ``test``, 26,032 images, is permuted likewise by a fresh ``RandomState(322)``).

``RandomState``'s stream and ``shuffle`` are frozen for compatibility, so steps 1-3 are
reproduced exactly: the same 6,000 validation images, and ``train`` and ``test`` in pylearn2's
order. One thing is not: pylearn2 puts its picks in a Python 2 ``set`` and orders ``valid`` as
``list(set(...))``, which is CPython 2's hash-table order; here the picks are in ascending
order before step 3. So ``valid`` holds pylearn2's examples, permuted differently (which changes
no validation score). (For ``splitted_train`` the set order is ascending: in CPython 2 an int
hashes to itself, and these sets' tables outgrow the largest index.)

With ``extra=False`` (the default, for machines without 8 GB to spare) the same rule is used on
the training file alone: ``valid`` = the 4,000 images of step 1 (400 per label), ``train`` = the
other 69,257, each permuted as in step 3 after the 10 class shuffles; ``test`` as above.

Memory (float32, 12,288 bytes an image):

===============  ================  ============  =============  ========
``extra``        train             valid         test           total
===============  ================  ============  =============  ========
``False``        69,257 (851 MB)   4,000 (49 MB) 26,032 (320 MB) 1.2 GB
``True``         598,388 (7.35 GB) 6,000 (74 MB) 26,032 (320 MB) 7.75 GB
===============  ================  ============  =============  ========

While loading with ``extra=True`` the uint8 pixels of ``extra_32x32.mat`` (1.63 GB) and, while it
is parsed, the file itself (1.33 GB) are held too: about 9.7 GB at the peak.

**No offline source.** No pip or Debian package ships SVHN, so the files come from the cache
(``<data_dir>/svhn/<name>.mat``, the official files, checked against their pinned SHA-256 and
size every time they are read) or a verified download (see :mod:`~papernotes_core.data.fetch`):
174 MiB (train), 61 MiB (test) and 1.24 GiB (extra). Without internet the loader raises
:class:`~papernotes_core.data.fetch.DataUnavailableError` naming the URL: run it in Google Colab
or on any machine online. The pins are those of TensorFlow Datasets
(``tensorflow_datasets/url_checksums/svhn_cropped.txt``); torchvision's SVHN pins the same
SHA-256 sums.

**MAT files, read strictly.** scipy is not needed: :func:`read_mat5` parses the level-5 MAT
format (MATLAB 5 to 7; not the HDF5-based v7.3) for numeric arrays, and refuses anything else
with a ``ValueError`` saying what it expected. It reads the very bytes whose SHA-256 was checked.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path
from typing import Literal, overload

import numpy as np

from .cifar import _check_timeout
from .fetch import ChecksumError, Remote, fetch, sha256_bytes
from .mnist import SPLITS, Split, Splits, _check_options

__all__ = ["SVHN_FILES", "SVHN_PAGE", "load_svhn", "read_mat5"]

#: The SVHN page of Stanford's UFLDL, which serves the files.
SVHN_PAGE = "http://ufldl.stanford.edu/housenumbers/"

#: Images in each official file; validation images per label (pylearn2's ``num_valid_train``,
#: ``num_valid_extra``); pylearn2's seed. Read at call time (the tests shrink them).
N_TRAIN, N_TEST, N_EXTRA = 73_257, 26_032, 531_131
VALID_PER_LABEL = {"train": 400, "extra": 200}
SEED = 322
IMAGE_SHAPE = (3, 32, 32)

_HINT = ("SVHN has no offline source (no pip or Debian package ships it): it needs internet "
         "access, so run this in Google Colab or on a machine online")


def _svhn_remote(name: str, sha256: str, size: int) -> Remote:
    return Remote("svhn", name, sha256, urls=(f"{SVHN_PAGE}{name}",), size=size, hint=_HINT)


#: The three official files (pins: TensorFlow Datasets' url_checksums/svhn_cropped.txt).
SVHN_FILES: dict[str, Remote] = {
    "train": _svhn_remote("train_32x32.mat",
                          "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8",
                          182_040_794),
    "test": _svhn_remote("test_32x32.mat",
                         "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b",
                         64_275_384),
    "extra": _svhn_remote("extra_32x32.mat",
                          "a133a4beb38a00fcdda90c9489e0c04f900b660ce8a316a5e854838379a71eb3",
                          1_329_278_602),
}

# ---------------------------------------------------------------------------------------------
# Level-5 MAT files

_CHUNK = 1 << 20
_MI_MATRIX, _MI_COMPRESSED, _MI_INT8, _MI_INT32, _MI_UINT32 = 14, 15, 1, 5, 6
#: Data types of numeric data elements (the storage, which may be narrower than the class).
_MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8",
              12: "i8", 13: "u8"}
_MI_NAMES = {1: "miINT8", 2: "miUINT8", 3: "miINT16", 4: "miUINT16", 5: "miINT32",
             6: "miUINT32", 7: "miSINGLE", 9: "miDOUBLE", 12: "miINT64", 13: "miUINT64",
             14: "miMATRIX", 15: "miCOMPRESSED", 16: "miUTF8", 17: "miUTF16", 18: "miUTF32"}
#: Numeric array classes and the dtype each becomes.
_MX_DTYPES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4",
              14: "i8", 15: "u8"}
_MX_OTHER = {1: "a cell array (mxCELL_CLASS)", 2: "a struct (mxSTRUCT_CLASS)",
             3: "an object (mxOBJECT_CLASS)", 4: "a char array (mxCHAR_CLASS)",
             5: "a sparse matrix (mxSPARSE_CLASS)"}
_FLAG_COMPLEX, _FLAG_LOGICAL = 0x08, 0x02


def _mi(t: int) -> str:
    return f"{_MI_NAMES.get(t, 'unknown type')} ({t})"


def _tag(buf, pos: int, end: int, order: str, where: str) -> tuple[int, int, int, int]:
    """``(type, nbytes, data start, next element)`` of the data element at ``pos``.

    Handles the 8-byte tag and the small data element form (type and size packed in 4 bytes,
    up to 4 bytes of data in the next 4); the next element is at the 8-byte boundary.
    """
    if end - pos < 8:
        raise ValueError(f"{where}: truncated: a data element tag needs 8 bytes at offset {pos}, "
                         f"{max(end - pos, 0)} left")
    first = struct.unpack_from(order + "I", buf, pos)[0]
    if first >> 16:  # small data element: size in the upper, type in the lower 16 bits
        t, n = first & 0xFFFF, first >> 16
        if n > 4:
            raise ValueError(f"{where}: small data element at offset {pos} claims {n} bytes; "
                             "expected at most 4")
        return t, n, pos + 4, pos + 8
    t, n = struct.unpack_from(order + "II", buf, pos)
    start = pos + 8
    if n > end - start:
        raise ValueError(f"{where}: truncated: the {_mi(t)} element at offset {pos} needs {n} "
                         f"bytes, {end - start} left")
    return t, n, start, min(start + n + (-n % 8), end)


def _inflate(comp: memoryview, order: str, where: str) -> np.ndarray:
    """Decompress an miCOMPRESSED element into a new writable uint8 array (tag included).

    Its first 8 bytes must be an miMATRIX tag; the array is allocated from the size it states,
    so that a 1.6 GB variable is decompressed once, with no second copy.
    """
    d = zlib.decompressobj()
    head = b""
    out: np.ndarray | None = None
    filled = 0

    def take(piece: bytes) -> None:
        nonlocal head, out, filled
        if out is None:
            head += piece
            if len(head) < 8:
                return
            t, n = struct.unpack_from(order + "II", head)
            if t != _MI_MATRIX:
                raise ValueError(f"{where}: an miCOMPRESSED element must hold an miMATRIX, it "
                                 f"holds {_mi(t)}")
            out = np.empty(8 + n, np.uint8)
            piece = head
        if filled + len(piece) > len(out):
            raise ValueError(f"{where}: miCOMPRESSED data decompress to more than the "
                             f"{len(out)} bytes its miMATRIX tag states")
        out[filled:filled + len(piece)] = np.frombuffer(piece, np.uint8)
        filled += len(piece)

    trailing = b""
    try:
        for off in range(0, len(comp), _CHUNK):
            data = comp[off:off + _CHUNK]
            if d.eof:
                trailing += bytes(data)
                continue
            while data and not d.eof:
                take(d.decompress(data, _CHUNK))
                data = d.unconsumed_tail
            trailing += d.unused_data if d.eof else b""
        if not d.eof:
            take(d.flush())
    except zlib.error as e:
        raise ValueError(f"{where}: miCOMPRESSED data are not a valid zlib stream ({e})") from None
    if not d.eof:
        raise ValueError(f"{where}: miCOMPRESSED data are cut short (no end of zlib stream)")
    if len(trailing) >= 8 or trailing.strip(b"\0"):  # tolerate zero padding to 8 bytes only
        raise ValueError(f"{where}: {len(trailing)} bytes follow the zlib stream inside its "
                         "miCOMPRESSED element")
    if out is None or filled != len(out):
        got = filled if out is not None else len(head)
        raise ValueError(f"{where}: miCOMPRESSED data decompress to {got} bytes, expected "
                         f"{len(out) if out is not None else 'an 8-byte miMATRIX tag and more'}")
    return out


def _matrix(buf, start: int, end: int, order: str, where: str) -> tuple[str, np.ndarray]:
    """``(name, array)`` of the miMATRIX whose sub-elements lie in ``buf[start:end]``."""
    t, n, s, pos = _tag(buf, start, end, order, where)
    if t != _MI_UINT32 or n != 8:
        raise ValueError(f"{where}: array flags must be an miUINT32 of 8 bytes, found {_mi(t)} "
                         f"of {n} bytes")
    word = struct.unpack_from(order + "I", buf, s)[0]
    cls, flags = word & 0xFF, (word >> 8) & 0xFF
    t, n, s, pos = _tag(buf, pos, end, order, where)
    if t != _MI_INT32 or n < 8 or n % 4:
        raise ValueError(f"{where}: dimensions must be an miINT32 of 2 or more values, found "
                         f"{_mi(t)} of {n} bytes")
    dims = struct.unpack_from(f"{order}{n // 4}i", buf, s)
    t, n, s, pos = _tag(buf, pos, end, order, where)
    if t != _MI_INT8:
        raise ValueError(f"{where}: the array name must be an miINT8, found {_mi(t)}")
    try:
        name = bytes(buf[s:s + n]).decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{where}: the array name is not ASCII: {bytes(buf[s:s + n])!r}") from None
    where = f"{where}, variable {name!r}"
    if not name:
        raise ValueError(f"{where}: a top-level variable must have a name, this one is empty")
    if cls in _MX_OTHER:
        raise ValueError(f"{where}: is {_MX_OTHER[cls]}; only numeric arrays are read")
    if cls not in _MX_DTYPES:
        raise ValueError(f"{where}: unknown array class {cls}; expected a numeric class (6..15)")
    if flags & _FLAG_COMPLEX:
        raise ValueError(f"{where}: is complex; only real arrays are read")
    if any(d < 0 for d in dims):
        raise ValueError(f"{where}: negative dimension in {dims}")
    t, n, s, pos = _tag(buf, pos, end, order, where)
    if t not in _MI_DTYPES:
        raise ValueError(f"{where}: the real part must be a numeric data element, found {_mi(t)}")
    stored = np.dtype(_MI_DTYPES[t]).newbyteorder(order)
    count = math.prod(dims)
    if n != count * stored.itemsize:
        raise ValueError(f"{where}: dimensions {dims} need {count * stored.itemsize} bytes of "
                         f"{_mi(t)}, the real part has {n}")
    if pos < end:
        raise ValueError(f"{where}: {end - pos} unexpected bytes after the real part")
    if isinstance(buf, np.ndarray):  # our own decompressed buffer: a writable view, no copy
        data = buf[s:s + n].view(stored)
    else:
        data = np.frombuffer(buf, stored, count, s)
    dtype = np.dtype(_MX_DTYPES[cls])
    with np.errstate(invalid="ignore", over="ignore"):
        array = data.astype(dtype, copy=not data.flags.writeable)
    if data.dtype.newbyteorder("=") != dtype and not np.array_equal(array, data):
        raise ValueError(f"{where}: values stored as {_mi(t)} do not fit its class {dtype.name}")
    if flags & _FLAG_LOGICAL:
        array = array != 0
    return name, array.reshape(dims, order="F")


def read_mat5(raw: bytes | bytearray | memoryview) -> dict[str, np.ndarray]:
    """The numeric variables of a level-5 MAT file (MATLAB 5 to 7, not v7.3), by name.

    The format (MathWorks, "MAT-File Format", level 5): a 128-byte header (descriptive text
    starting ``MATLAB 5.0 MAT-file``, subsystem offset, version ``0x0100``, endian indicator
    ``IM`` for a little-endian file or ``MI`` for a big-endian one), then data elements, each an
    8-byte tag (type, size) or a 4-byte "small data element" tag, padded to 8 bytes. Top-level
    elements are ``miMATRIX`` or ``miCOMPRESSED`` (a zlib stream holding one ``miMATRIX``). A
    matrix holds its array flags (class, complex/logical bits), dimensions, name and real part;
    the real part may be stored in a narrower type than its class (a double array of small
    integers as ``miUINT8``) and is converted to the class's dtype.

    Returns a dict from variable name to a new, writable, native-endian array of the class's
    dtype (uint8, int8, int16, uint16, int32, uint32, int64, uint64, float32 or float64; bool for
    a logical array) and of the MATLAB shape: ``a[i, j, ...]`` is MATLAB's ``A(i+1, j+1, ...)``
    (the column-major data are viewed in Fortran order, not copied).

    Raises ``ValueError`` saying what was expected for anything else: a v7.3 (HDF5) or v4 file,
    a bad header, truncated or oversized elements, a broken zlib stream, complex, sparse, char,
    cell, struct or object arrays, a repeated name. ``TypeError`` if ``raw`` is not bytes-like.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TypeError(f"read_mat5 expects the file's bytes, got {type(raw).__name__}")
    mv = memoryview(raw).cast("B")
    size = len(mv)
    if size < 128:
        raise ValueError(f"MAT file: {size} bytes, too short for the 128-byte header of a "
                         "level-5 MAT file")
    text, endian = bytes(mv[:116]), bytes(mv[126:128])
    if text.startswith(b"MATLAB 7.3") or (endian in (b"IM", b"MI") and struct.unpack_from(
            "<H" if endian == b"IM" else ">H", mv, 124)[0] == 0x0200):
        raise ValueError("MAT file: this is a v7.3 (HDF5-based) MAT file; only level-5 files "
                         "(MATLAB 5 to 7, `save -v7`) are read")
    if endian not in (b"IM", b"MI"):
        raise ValueError(f"MAT file: endian indicator {endian!r} at byte 126; expected b'IM' "
                         "(little-endian) or b'MI' (big-endian)")
    order = "<" if endian == b"IM" else ">"
    version = struct.unpack_from(order + "H", mv, 124)[0]
    if version != 0x0100:
        raise ValueError(f"MAT file: version 0x{version:04x}; expected 0x0100 (level 5)")
    if not text.startswith(b"MATLAB 5.0 MAT-file"):
        raise ValueError(f"MAT file: the header text starts {text[:24]!r}; expected "
                         "b'MATLAB 5.0 MAT-file' (a level-5 MAT file)")
    out: dict[str, np.ndarray] = {}
    pos = 128
    while pos < size:
        where = f"MAT file, element at byte {pos}"
        if size - pos < 8:
            raise ValueError(f"{where}: truncated: {size - pos} bytes left, a tag needs 8")
        t, n = struct.unpack_from(order + "II", mv, pos)
        start, stop = pos + 8, pos + 8 + n
        if stop > size:
            raise ValueError(f"{where}: truncated: the {_mi(t)} element needs {n} bytes, "
                             f"{size - start} left")
        if t == _MI_COMPRESSED:
            buf = _inflate(mv[start:stop], order, where)
            name, array = _matrix(buf, 8, len(buf), order, where)
        elif t == _MI_MATRIX:
            name, array = _matrix(mv, start, stop, order, where)
        else:
            raise ValueError(f"{where}: a top-level element must be miMATRIX (14) or "
                             f"miCOMPRESSED (15), found {_mi(t)}")
        if name in out:
            raise ValueError(f"{where}: a second variable named {name!r}")
        out[name] = array
        pos = stop
    return out


# ---------------------------------------------------------------------------------------------
# The data set


def _read_file(part: str, *, cache_dir, download: bool, timeout: float):
    """``(images uint8 (n, 3, 32, 32) view, labels int64 (n,) in 1..10)`` of one file, checked.

    The SHA-256 is checked once more on the bytes read here, which are the ones parsed.
    """
    remote = SVHN_FILES[part]
    path = Path(fetch(remote, cache_dir=cache_dir, download=download, timeout=timeout))
    raw = path.read_bytes()
    actual = sha256_bytes(raw)
    if actual != remote.sha256:
        raise ChecksumError(f"{path}: SHA-256 is {actual}, expected {remote.sha256} (the file "
                            "changed after it was verified?); nothing was parsed")
    try:
        arrays = read_mat5(raw)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    del raw
    n = {"train": N_TRAIN, "test": N_TEST, "extra": N_EXTRA}[part]
    for key in ("X", "y"):
        if key not in arrays:
            raise ValueError(f"{path}: no variable {key!r}; the file has "
                             f"{', '.join(sorted(arrays)) or 'none'}")
    x, y = arrays["X"], arrays["y"]
    if x.dtype != np.uint8 or x.shape != (32, 32, 3, n):
        raise ValueError(f"{path}: X must be uint8 of shape (32, 32, 3, {n}), got {x.dtype} "
                         f"{x.shape}")
    if y.shape not in ((n, 1), (n,)) or y.dtype.kind not in "fiu":
        raise ValueError(f"{path}: y must be {n} x 1 numbers, got {y.dtype} {y.shape}")
    y = y.reshape(n)
    if n and (not np.array_equal(y, np.round(y)) or y.min() < 1 or y.max() > 10):
        raise ValueError(f"{path}: y must hold the labels 1..10 (10 for the digit 0), found "
                         f"{y.min()}..{y.max()}" + ("" if np.array_equal(y, np.round(y))
                                                    else " and non-integers"))
    return x.transpose(3, 2, 0, 1), y.astype(np.int64)


def _picks(labels: np.ndarray, per_label: int, rng: np.random.RandomState,
           where: str) -> np.ndarray:
    """pylearn2's validation picks: per label 1..10, shuffle its positions, keep ``per_label``."""
    picks = []
    for label in range(1, 11):
        index = np.nonzero(labels == label)[0]
        if len(index) < per_label:
            raise ValueError(f"{where}: {len(index)} images of label {label}, fewer than the "
                             f"{per_label} a validation set takes")
        rng.shuffle(index)
        picks.append(index[:per_label])
    return np.sort(np.concatenate(picks))


def _plan(split, extra: bool, labels: dict[str, np.ndarray]) -> dict[str, tuple]:
    """For each split wanted: ``(files, file code, position)``, one code/position per image in
    the split's final order (the rule of the module docstring)."""
    wanted = SPLITS if split is None else (split,)
    plans = {}
    if "test" in wanted:
        order = np.random.RandomState(SEED).permutation(N_TEST)
        plans["test"] = (("test",), np.zeros(N_TEST, np.int8), order)
    if "train" in wanted or "valid" in wanted:
        rng = np.random.RandomState(SEED)
        parts = ("train", "extra") if extra else ("train",)
        picked = {p: _picks(labels[p], VALID_PER_LABEL[p], rng, SVHN_FILES[p].filename)
                  for p in parts}
        rest = {p: np.setdiff1d(np.arange(len(labels[p])), picked[p]) for p in parts}
        state = rng.get_state()
        for name, chosen in (("train", rest), ("valid", picked)):
            if name in wanted:
                codes = np.concatenate([np.full(len(chosen[p]), i, np.int8)
                                        for i, p in enumerate(parts)])
                index = np.concatenate([chosen[p] for p in parts])
                rng.set_state(state)  # pylearn2 makes each set with its own RandomState(322)
                order = rng.permutation(len(index))
                plans[name] = (parts, codes[order], index[order])
    return plans


def _build(parts: tuple[str, ...], codes: np.ndarray, index: np.ndarray,
           images: dict[str, np.ndarray], labels: dict[str, np.ndarray], limit) -> Split:
    """Gather the images (uint8 -> float32 / 255) chunk by chunk; labels 10 -> 0."""
    n = len(index) if limit is None else min(len(index), int(limit))
    x = np.empty((n, *IMAGE_SHAPE), np.float32)
    y = np.empty(n, np.int64)
    for start in range(0, n, 8192):
        stop = min(n, start + 8192)
        block, yblock = x[start:stop], y[start:stop]
        for code, part in enumerate(parts):
            m = codes[start:stop] == code
            idx = index[start:stop][m]
            block[m] = images[part][idx]
            yblock[m] = labels[part][idx]
        np.divide(block, np.float32(255), out=block)
    y %= 10
    return Split(x, y)


@overload
def load_svhn(split: None = None, *, extra: bool = False, limit: int | None = None,
              cache_dir: Path | str | None = None, download: bool = True,
              timeout: float = 60.0) -> Splits: ...
@overload
def load_svhn(split: Literal["train", "valid", "test"], *, extra: bool = False,
              limit: int | None = None, cache_dir: Path | str | None = None,
              download: bool = True, timeout: float = 60.0) -> Split: ...


def load_svhn(split: str | None = None, *, extra: bool = False, limit: int | None = None,
              cache_dir: Path | str | None = None, download: bool = True,
              timeout: float = 60.0) -> Split | Splits:
    """SVHN digits in pylearn2's splits: with ``extra=True`` 598,388 / 6,000 / 26,032 images.

    ``split``: ``None`` for a :class:`~papernotes_core.data.mnist.Splits` of all three, or
    ``"train"``, ``"valid"``, ``"test"`` for that :class:`~papernotes_core.data.mnist.Split`
    alone. ``extra``: ``True`` for pylearn2's ``splitted_train`` / ``valid`` (train + extra less
    400 images per label from train and 200 from extra; the paper's split, 7.75 GB as float32),
    ``False`` for the training file alone (69,257 / 4,000, 400 per label; 1.2 GB). ``test`` is
    the official test file in both. See the module docstring for the exact rule and order.
    ``limit``: keep only the first ``limit`` examples of each split returned. ``cache_dir``,
    ``download``, ``timeout``: as for :func:`~papernotes_core.data.load_cifar10`.

    ``x`` is float32 ``(n, 3, 32, 32)``, the uint8 pixels / 255; ``y`` int64 ``(n,)``, the digit
    0..9. Only the files a split needs are read (``"test"``: the test file; ``extra=False``:
    never the 1.3 GB extra file). Every call returns new arrays.

    Raises :class:`~papernotes_core.data.fetch.DataUnavailableError` (a ``FileNotFoundError``)
    when a file is neither cached nor downloadable, saying that SVHN needs internet (Colab);
    ``ValueError`` for a malformed file; ``ValueError``/``TypeError`` for a bad argument.
    """
    _check_options(split, limit)
    if not isinstance(extra, bool):
        raise TypeError(f"extra must be a bool (True: pylearn2's train + extra split), got "
                        f"{type(extra).__name__}")
    _check_timeout(timeout)
    parts = []
    if split in (None, "train", "valid"):
        parts += ["train", "extra"] if extra else ["train"]
    if split in (None, "test"):
        parts.append("test")
    images, labels = {}, {}
    for part in parts:
        images[part], labels[part] = _read_file(part, cache_dir=cache_dir, download=download,
                                                timeout=timeout)
    plans = _plan(split, extra, labels)
    made = {name: _build(*plan, images, labels, limit) for name, plan in plans.items()}
    if split is not None:
        return made[split]
    return Splits(**made)
