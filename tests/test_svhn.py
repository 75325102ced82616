"""Tests of papernotes_core.data.svhn: the level-5 MAT reader and SVHN in pylearn2's splits.

MAT files are built here by :func:`mat5`, a small writer written from MathWorks' "MAT-File
Format" (level 5) independently of the reader: header, 8-byte tags and the 4-byte small data
element form, padding to 8 bytes, miCOMPRESSED (zlib) wrapping miMATRIX, both byte orders. One
file is also assembled byte by byte, so that reader and writer cannot share a misreading.

The real SVHN files cannot be downloaded here: tiny fakes with their layout (``X`` uint8
32x32x3xN, ``y`` N x 1 labels 1..10) are served by a local HTTP server on 127.0.0.1, with the
split sizes shrunk to match. The splits are compared with a transcription of pylearn2's
``SVHN.make_data`` (``pylearn2/datasets/svhn.py``). PAPERNOTES_OFFLINE=1 and a temporary
PAPERNOTES_DATA keep every test off the network and out of the real cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

from papernotes_core import data
from papernotes_core.data import svhn
from papernotes_core.data.fetch import ChecksumError, CorruptCacheWarning, DataUnavailableError

N_TRAIN, N_TEST, N_EXTRA = 60, 20, 40
PER_LABEL = {"train": 2, "extra": 1}
REAL = (svhn.N_TRAIN, svhn.N_TEST, svhn.N_EXTRA, dict(svhn.VALID_PER_LABEL), svhn.SEED)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test: its own cache folder, no network, and the split sizes of the tiny fakes."""
    monkeypatch.setenv("PAPERNOTES_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("PAPERNOTES_OFFLINE", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(svhn, "N_TRAIN", N_TRAIN)
    monkeypatch.setattr(svhn, "N_TEST", N_TEST)
    monkeypatch.setattr(svhn, "N_EXTRA", N_EXTRA)
    monkeypatch.setattr(svhn, "VALID_PER_LABEL", dict(PER_LABEL))


def files_under(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------
# A level-5 MAT writer, from the format's specification

MI = {"i1": 1, "u1": 2, "i2": 3, "u2": 4, "i4": 5, "u4": 6, "f4": 7, "f8": 9, "i8": 12, "u8": 13}
MX = {"f8": 6, "f4": 7, "i1": 8, "u1": 9, "i2": 10, "u2": 11, "i4": 12, "u4": 13, "i8": 14,
      "u8": 15}


def code(dtype) -> str:
    dtype = np.dtype(dtype)
    return f"{dtype.kind}{dtype.itemsize}"


def element(mtype: int, payload: bytes, bo: str, small: bool = True) -> bytes:
    """A data element: the small form (size and type in 4 bytes, then 4 bytes of data) when the
    payload fits in 4 bytes, else an 8-byte tag; data padded to 8 bytes."""
    if small and len(payload) <= 4:  # the size in the upper, the type in the lower 16 bits
        return struct.pack(bo + "I", len(payload) << 16 | mtype) + payload.ljust(4, b"\0")
    return struct.pack(bo + "II", mtype, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def matrix(name: str, a, bo: str = "<", *, cls=None, storage=None, flags: int = 0,
           small: bool = True) -> bytes:
    """An miMATRIX: array flags, dimensions, name, real part (column-major, in ``storage``)."""
    a = np.asarray(a)
    dims = a.shape if a.ndim >= 2 else (1, a.size)
    stored = np.dtype(storage or a.dtype).newbyteorder(bo)
    body = (element(6, struct.pack(bo + "II", (flags << 8) | MX[code(cls or a.dtype)], 0), bo)
            + element(5, struct.pack(f"{bo}{len(dims)}i", *dims), bo, small)
            + element(1, name.encode(), bo, small)
            + element(MI[code(stored)], a.ravel(order="F").astype(stored).tobytes(), bo, small))
    return struct.pack(bo + "II", 14, len(body)) + body


def header(bo: str = "<", *, text: bytes = b"MATLAB 5.0 MAT-file, Platform: test",
           version: int = 0x0100) -> bytes:
    # The endian indicator is the characters 'M', 'I' written as one 16-bit value.
    return text.ljust(116, b" ") + b"\0" * 8 + struct.pack(bo + "HH", version, 0x4D49)


def compressed(element_bytes: bytes, bo: str = "<") -> bytes:
    z = zlib.compress(element_bytes)
    return struct.pack(bo + "II", 15, len(z)) + z


def mat5(variables: dict, *, bo: str = "<", compress: bool = False, small: bool = True) -> bytes:
    """A MAT file of ``variables`` (name -> array, or name -> (array, matrix() options))."""
    out = header(bo)
    for name, value in variables.items():
        array, options = value if isinstance(value, tuple) else (value, {})
        m = matrix(name, array, bo, small=small, **options)
        out += compressed(m, bo) if compress else m
    return out


# ---------------------------------------------------------------------------------------------
# read_mat5


def test_hand_assembled_file_is_read_column_major():
    """[[1, 2, 3], [4, 5, 6]] as uint8, named 'A', little-endian, bytes laid out by hand."""
    raw = (b"MATLAB 5.0 MAT-file".ljust(116, b" ") + b"\0" * 8 + b"\x00\x01" + b"IM"
           + bytes([14, 0, 0, 0, 56, 0, 0, 0])                     # miMATRIX, 56 bytes
           + bytes([6, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0])  # flags: mxUINT8_CLASS
           + bytes([5, 0, 0, 0, 8, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0])  # dims 2 x 3
           + bytes([1, 0, 1, 0]) + b"A\0\0\0"                       # small element: name 'A'
           + bytes([2, 0, 0, 0, 6, 0, 0, 0, 1, 4, 2, 5, 3, 6, 0, 0]))  # miUINT8, column-major
    got = svhn.read_mat5(raw)
    assert list(got) == ["A"]
    np.testing.assert_array_equal(got["A"], [[1, 2, 3], [4, 5, 6]])
    assert got["A"].dtype == np.uint8
    assert header("<")[126:128] == b"IM" and header(">")[126:128] == b"MI"  # the writer agrees


@pytest.mark.parametrize("bo", ["<", ">"])
@pytest.mark.parametrize("compress", [False, True])
def test_roundtrip_every_numeric_class(bo, compress):
    rng = np.random.default_rng(0)
    variables = {}
    for i, c in enumerate(MX):
        dtype = np.dtype(c)
        if dtype.kind == "f":
            a = rng.normal(size=(2, 3, 4)).astype(dtype)
        else:
            info = np.iinfo(dtype)
            a = rng.integers(info.min, info.max, (3, 5), dtype=dtype, endpoint=True)
        variables[f"v{c}"] = a
    variables["s"] = np.array([[7]], np.uint8)             # 1-byte real part: small element
    variables["i"] = np.array([[-5]], np.int32)            # 4-byte real part: small element
    variables["col"] = np.arange(5.0).reshape(5, 1)         # an N x 1 column, like SVHN's y
    variables["empty"] = np.zeros((0, 3), np.float64)
    got = svhn.read_mat5(mat5(variables, bo=bo, compress=compress))
    assert list(got) == list(variables)
    for name, a in variables.items():
        b = got[name]
        assert b.dtype == a.dtype and b.dtype.isnative and b.shape == a.shape, name
        np.testing.assert_array_equal(b, a)
        assert b.flags.writeable
    b = got["vu1"]
    b[0, 0] = 1  # writable, and not a view of the caller's bytes


def test_large_compressed_variable_spans_several_chunks(monkeypatch):
    """Random bytes do not compress: 3 MiB in, about 3 MiB of zlib stream, 1 MiB at a time."""
    a = np.random.default_rng(3).integers(0, 256, (32, 32, 3, 1024), dtype=np.uint8)
    raw = mat5({"X": a, "y": np.arange(1024.0).reshape(-1, 1)}, compress=True)
    assert len(raw) > 3 * svhn._CHUNK
    got = svhn.read_mat5(raw)
    np.testing.assert_array_equal(got["X"], a)
    assert got["X"].flags.f_contiguous and got["X"].flags.writeable  # a view, not a copy
    monkeypatch.setattr(svhn, "_CHUNK", 1000)  # odd sizes: tags and elements split across reads
    np.testing.assert_array_equal(svhn.read_mat5(raw)["X"], a)


def test_small_element_form_and_its_absence_read_alike():
    a = {"x": np.array([[1, 2]], np.int16), "abc": np.array([[3.5]], np.float32)}
    with_small, without = mat5(a, small=True), mat5(a, small=False)
    assert len(with_small) < len(without)
    for raw in (with_small, without):
        got = svhn.read_mat5(raw)
        np.testing.assert_array_equal(got["x"], a["x"])
        assert got["abc"].dtype == np.float32 and got["abc"][0, 0] == 3.5


def test_narrow_storage_is_converted_to_the_class_and_logical_to_bool():
    labels = np.array([[1], [10], [3]])
    raw = mat5({"y": (labels.astype(np.uint8), {"cls": np.float64}),       # double stored as u1
                "z": (np.array([[-2, 300]], np.int16), {"cls": np.int32}),  # int32 stored as i2
                "m": (np.array([[1, 0, 1]], np.uint8), {"flags": 0x02})},   # logical
               compress=True)
    got = svhn.read_mat5(raw)
    assert got["y"].dtype == np.float64 and got["y"].shape == (3, 1)
    np.testing.assert_array_equal(got["y"], labels)
    assert got["z"].dtype == np.int32
    np.testing.assert_array_equal(got["z"], [[-2, 300]])
    assert got["m"].dtype == bool
    np.testing.assert_array_equal(got["m"], [[True, False, True]])


def test_header_only_file_has_no_variables():
    assert svhn.read_mat5(header()) == {}


def _bad(raw, match):
    with pytest.raises(ValueError, match=match):
        svhn.read_mat5(raw)


def test_bad_headers_are_named():
    good = mat5({"a": np.ones((2, 2))})
    _bad(good[:100], "too short for the 128-byte header")
    _bad(header(text=b"MATLAB 7.3 MAT-file, HDF5 schema 1.00", version=0x0200), "v7.3")
    _bad(header(version=0x0200) + good[128:], "v7.3")
    _bad(good[:126] + b"XX" + good[128:], "endian indicator b'XX'.*b'IM'.*b'MI'")
    _bad(header(version=0x0101) + good[128:], "version 0x0101; expected 0x0100")
    _bad(header(text=b"Some other file") + good[128:], "b'MATLAB 5.0 MAT-file'")
    with pytest.raises(TypeError, match="bytes"):
        svhn.read_mat5("MATLAB 5.0")


def test_truncated_and_malformed_elements_are_named():
    a = np.arange(6.0).reshape(2, 3)
    good = mat5({"a": a})
    _bad(good[:-8], "truncated")
    _bad(good + b"\0\0\0", "truncated")
    _bad(header() + element(1, b"hello", "<"), "must be miMATRIX .14. or miCOMPRESSED .15., "
         r"found miINT8 \(1\)")
    m = bytearray(matrix("a", a))
    m[24:28] = struct.pack("<I", 6 << 16 | 5)  # the dims tag, rewritten as a 6-byte small element
    _bad(header() + bytes(m), "small data element .* claims 6 bytes; expected at most 4")
    bad = bytearray(matrix("a", np.arange(6.0).reshape(1, 6)))
    bad[-52:-48] = struct.pack("<I", 40)  # the real part's tag says 40 bytes for 6 doubles
    _bad(header() + bytes(bad), r"dimensions \(1, 6\) need 48 bytes of miDOUBLE \(9\), the real "
         "part has 40")
    _bad(header() + matrix("a", a) + matrix("a", a), "a second variable named 'a'")


def test_unsupported_arrays_are_refused_by_kind():
    a = np.arange(4.0).reshape(2, 2)
    _bad(mat5({"c": (a, {"flags": 0x08})}), "'c': is complex")
    for cls, what in ((1, "cell array"), (2, "struct"), (3, "object"), (4, "char array"),
                      (5, "sparse matrix")):
        m = bytearray(matrix("v", a))
        m[16] = cls  # the class byte of the array flags
        _bad(header() + bytes(m), f"'v': is a.? {what}")
        _bad(header() + compressed(bytes(m)), f"'v': is a.? {what}")
    m = bytearray(matrix("v", a))
    m[16] = 42
    _bad(header() + bytes(m), "unknown array class 42")
    _bad(mat5({"u": (np.array([[1.5, 2.0]]), {"cls": np.uint8})}),
         "values stored as miDOUBLE .9. do not fit its class uint8")
    _bad(mat5({"u": (np.array([[300.0]]), {"cls": np.uint8})}), "do not fit")


def test_broken_compressed_elements_are_named():
    m = matrix("a", np.arange(6.0).reshape(2, 3))
    z = zlib.compress(m)
    _bad(header() + struct.pack("<II", 15, 11) + b"not zlib!!!", "not a valid zlib stream")
    cut = z[:-6]
    _bad(header() + struct.pack("<II", 15, len(cut)) + cut, "cut short")
    more = z + b"garbage!"
    _bad(header() + struct.pack("<II", 15, len(more)) + more, "8 bytes follow the zlib stream")
    padded = z + b"\0\0\0"
    got = svhn.read_mat5(header() + struct.pack("<II", 15, len(padded)) + padded)
    np.testing.assert_array_equal(got["a"], np.arange(6.0).reshape(2, 3))  # zero padding is ok
    _bad(header() + compressed(element(1, b"hello!!!", "<")), "must hold an miMATRIX, it holds "
         r"miINT8 \(1\)")
    longer = bytearray(m)
    longer[4:8] = struct.pack("<I", len(m) - 8 + 16)  # the tag promises 16 bytes more
    _bad(header() + compressed(bytes(longer)), "decompress to .* bytes, expected")
    shorter = bytearray(m)
    shorter[4:8] = struct.pack("<I", len(m) - 8 - 16)
    _bad(header() + compressed(bytes(shorter)), "decompress to more than")


# ---------------------------------------------------------------------------------------------
# Fake SVHN files and a local HTTP server


@dataclasses.dataclass
class FakeFile:
    raw: bytes
    x: np.ndarray  # (32, 32, 3, n) uint8, as in the file
    y: np.ndarray  # (n, 1), labels 1..10

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def fake_file(n: int, seed: int, label_class=np.float64) -> FakeFile:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    x[..., 0] = 0  # both ends of the range appear
    x[..., 1] = 255
    y = rng.permutation(np.arange(n) % 10 + 1).reshape(n, 1)
    raw = mat5({"X": x, "y": (y.astype(np.uint8), {"cls": label_class})}, compress=True)
    return FakeFile(raw, x, y)


@pytest.fixture(scope="module")
def fakes() -> dict[str, FakeFile]:
    return {"train": fake_file(N_TRAIN, 0), "test": fake_file(N_TEST, 1, np.uint8),
            "extra": fake_file(N_EXTRA, 2)}


def pin(monkeypatch, part: str, raw: bytes, url: str, **changes) -> data.Remote:
    """Point ``SVHN_FILES[part]`` at ``raw`` served at ``url``."""
    fields = {"sha256": hashlib.sha256(raw).hexdigest(), "urls": (url,), "size": len(raw)}
    remote = dataclasses.replace(svhn.SVHN_FILES[part], **(fields | changes))
    monkeypatch.setitem(svhn.SVHN_FILES, part, remote)
    return remote


def serve_all(server, monkeypatch, fakes, parts=("train", "test", "extra")):
    for part in parts:
        pin(monkeypatch, part, fakes[part].raw, server.serve(f"/{part}.mat", fakes[part].raw))


# ---------------------------------------------------------------------------------------------
# pylearn2's SVHN.make_data, transcribed (pylearn2/datasets/svhn.py; Python 2 -> 3 only)


def pylearn2_make_data(which_set, files, num_valid_train, num_valid_extra, use_extra=True):
    """``(design matrix (n, 3072), labels (n, 1) in 0..9)`` as pylearn2 makes ``which_set``.

    Transcribed from ``SVHN.make_data`` / ``split_train_valid``; the two changes: ``xrange`` ->
    ``range``, and ``list(a_set)`` -> ``sorted(a_set)``. CPython 2 lists ``train_index`` in
    ascending order anyway (see svhn.py), but ``valid_index`` in its hash-table order, so for
    ``valid`` this is the loader's documented rule (pylearn2's examples, with the picks in
    ascending order before the final shuffle), not pylearn2's order. ``use_extra=False`` is the
    loader's documented rule for ``extra=False``: the same with the training file alone.
    """
    rng = np.random.RandomState(322)

    def design_matrix_view(data_x):
        data_x = np.transpose(data_x, axes=[3, 2, 0, 1])
        return data_x.reshape((data_x.shape[0], 32 * 32 * 3))

    def split_train_valid():
        d = {"X": files["train"].x, "y": files["train"].y}
        valid_index = []
        for i in range(1, 11):
            index = np.nonzero(d["y"] == i)[0]
            index.flags.writeable = 1
            rng.shuffle(index)
            valid_index.append(index[:num_valid_train])
        valid_index = set(np.concatenate(valid_index))
        train_index = set(np.arange(d["X"].shape[3])) - valid_index
        valid_index, train_index = sorted(valid_index), sorted(train_index)
        train_x, train_y = d["X"][:, :, :, train_index], d["y"][train_index, :]
        valid_x, valid_y = d["X"][:, :, :, valid_index], d["y"][valid_index, :]
        if use_extra:
            d = {"X": files["extra"].x, "y": files["extra"].y}
            valid_index = []
            for i in range(1, 11):
                index = np.nonzero(d["y"] == i)[0]
                index.flags.writeable = 1
                rng.shuffle(index)
                valid_index.append(index[:num_valid_extra])
            valid_index = set(np.concatenate(valid_index))
            train_index = set(np.arange(d["X"].shape[3])) - valid_index
            valid_index, train_index = sorted(valid_index), sorted(train_index)
            train_x = np.concatenate((train_x, d["X"][:, :, :, train_index]), axis=3)
            train_y = np.concatenate((train_y, d["y"][train_index, :]))
            valid_x = np.concatenate((valid_x, d["X"][:, :, :, valid_index]), axis=3)
            valid_y = np.concatenate((valid_y, d["y"][valid_index, :]))
        return (design_matrix_view(train_x), train_y), (design_matrix_view(valid_x), valid_y)

    if which_set == "test":
        data_x, data_y = design_matrix_view(files["test"].x), files["test"].y
    else:
        train_data, valid_data = split_train_valid()
        data_x, data_y = train_data if which_set == "splitted_train" else valid_data
    index = list(range(data_x.shape[0]))
    rng.shuffle(index)
    data_x = data_x[index, :]
    data_y = data_y[index, :]
    return data_x, data_y - 1


def as_uint8_rows(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 255).astype(np.uint8).reshape(len(x), -1)


def digits(y_pylearn2: np.ndarray) -> np.ndarray:
    """pylearn2's labels (file label - 1) as the digits the loader returns."""
    return (y_pylearn2.reshape(-1) + 1) % 10


# ---------------------------------------------------------------------------------------------
# The loader


def test_extra_split_is_pylearn2s(server, monkeypatch, fakes, tmp_path):
    serve_all(server, monkeypatch, fakes)
    splits = svhn.load_svhn(extra=True)
    assert isinstance(splits, data.Splits)
    assert sorted(server.requests) == ["/extra.mat", "/test.mat", "/train.mat"]
    n_valid = 10 * (PER_LABEL["train"] + PER_LABEL["extra"])
    assert [len(s) for _, s in splits.items()] == [N_TRAIN + N_EXTRA - n_valid, n_valid, N_TEST]
    for name, split in splits.items():
        x, y = split
        assert x.dtype == np.float32 and x.shape == (len(y), 3, 32, 32)
        assert y.dtype == np.int64 and y.min() >= 0 and y.max() <= 9
        assert x.min() == 0.0 and x.max() == 1.0
        np.testing.assert_array_equal(x, (np.rint(x * 255) / np.float32(255)).astype(np.float32))
    for name, which in (("train", "splitted_train"), ("test", "test")):
        ref_x, ref_y = pylearn2_make_data(which, fakes, PER_LABEL["train"], PER_LABEL["extra"])
        np.testing.assert_array_equal(as_uint8_rows(splits[name].x), ref_x)  # same order
        np.testing.assert_array_equal(splits[name].y, digits(ref_y))
    # valid: pylearn2's examples; in pylearn2's order but for the set order (see the docstring).
    ref_x, ref_y = pylearn2_make_data("valid", fakes, PER_LABEL["train"], PER_LABEL["extra"])
    np.testing.assert_array_equal(as_uint8_rows(splits.valid.x), ref_x)
    np.testing.assert_array_equal(splits.valid.y, digits(ref_y))
    # Validation: per file label, PER_LABEL images from train and from extra.
    for digit in range(10):
        assert np.count_nonzero(splits.valid.y == digit) == PER_LABEL["train"] + PER_LABEL["extra"]
    # Nothing is lost or duplicated: train + valid = the images of train and extra.
    every = np.concatenate([as_uint8_rows(splits.train.x), as_uint8_rows(splits.valid.x)])
    files = np.concatenate([fakes[p].x.transpose(3, 2, 0, 1).reshape(-1, 3072)
                            for p in ("train", "extra")])
    assert sorted(r.tobytes() for r in every) == sorted(r.tobytes() for r in files)
    assert files_under(tmp_path / "cache") == ["svhn/extra_32x32.mat", "svhn/test_32x32.mat",
                                               "svhn/train_32x32.mat"]


def test_default_split_uses_the_training_file_alone(server, monkeypatch, fakes):
    serve_all(server, monkeypatch, fakes)
    splits = svhn.load_svhn()
    assert "/extra.mat" not in server.requests
    assert [len(s) for _, s in splits.items()] == [N_TRAIN - 10 * PER_LABEL["train"],
                                                   10 * PER_LABEL["train"], N_TEST]
    ref_x, ref_y = pylearn2_make_data("splitted_train", fakes, PER_LABEL["train"], 0,
                                      use_extra=False)
    np.testing.assert_array_equal(as_uint8_rows(splits.train.x), ref_x)
    np.testing.assert_array_equal(splits.train.y, digits(ref_y))
    ref_x, ref_y = pylearn2_make_data("valid", fakes, PER_LABEL["train"], 0, use_extra=False)
    np.testing.assert_array_equal(as_uint8_rows(splits.valid.x), ref_x)
    np.testing.assert_array_equal(splits.valid.y, digits(ref_y))
    # The images are (n, channel, row, column) of X(row, column, channel, n) / 255.
    test_x = fakes["test"].x
    order = np.random.RandomState(322).permutation(N_TEST)
    for k in (0, 7):
        i = order[k]
        assert splits.test.x[k, 2, 5, 9] == np.float32(test_x[5, 9, 2, i]) / np.float32(255)
        assert splits.test.y[k] == fakes["test"].y[i, 0] % 10
    assert set(splits.test.y[fakes["test"].y[order, 0] == 10]) == {0}  # label 10 is the digit 0


def test_single_split_limit_and_cache(server, monkeypatch, fakes):
    serve_all(server, monkeypatch, fakes)
    test = svhn.load_svhn("test", limit=5)
    assert isinstance(test, data.Split) and len(test) == 5
    assert server.requests == ["/test.mat"]  # only the file the split needs
    full = svhn.load_svhn("test")
    np.testing.assert_array_equal(full.x[:5], test.x)
    assert server.requests == ["/test.mat"]  # the second call read the cache
    monkeypatch.setenv("PAPERNOTES_OFFLINE", "1")
    big = svhn.load_svhn("test", limit=1000, download=False)
    assert len(big) == N_TEST and big.x is not full.x
    x, y = big.to_torch()
    assert tuple(x.shape) == (N_TEST, 3, 32, 32) and str(y.dtype) == "torch.int64"


def test_valid_alone_with_limit(server, monkeypatch, fakes):
    serve_all(server, monkeypatch, fakes)
    valid = svhn.load_svhn("valid", extra=True, limit=4)
    assert len(valid) == 4 and "/test.mat" not in server.requests
    whole = svhn.load_svhn("valid", extra=True)
    np.testing.assert_array_equal(valid.x, whole.x[:4])


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"split": "validation"}, ValueError, "split must be one of"),
    ({"limit": 0}, ValueError, "positive int"),
    ({"limit": 2.5}, TypeError, "positive int"),
    ({"extra": 1}, TypeError, "extra must be a bool"),
    ({"timeout": 0}, ValueError, "timeout"),
    ({"timeout": "60"}, TypeError, "timeout"),
])
def test_bad_arguments(kwargs, error, match, tmp_path):
    with pytest.raises(error, match=match):
        svhn.load_svhn(**kwargs)
    assert files_under(tmp_path / "cache") == []


# ---------------------------------------------------------------------------------------------
# Failures


def test_offline_with_nothing_cached_says_it_needs_internet(tmp_path):
    for kwargs, remote in (({}, svhn.SVHN_FILES["train"]),
                           ({"split": "test", "download": False}, svhn.SVHN_FILES["test"]),
                           ({"extra": True, "split": "valid"}, svhn.SVHN_FILES["train"])):
        with pytest.raises(DataUnavailableError) as info:
            svhn.load_svhn(**kwargs)
        message = str(info.value)
        assert remote.urls[0] in message and "internet" in message and "Colab" in message
    assert files_under(tmp_path / "cache") == []


def test_bad_checksum_is_an_error_and_leaves_nothing(server, monkeypatch, fakes, tmp_path):
    url = server.serve("/test.mat", fakes["test"].raw)
    pin(monkeypatch, "test", fakes["test"].raw, url, sha256="0" * 64)
    with pytest.raises(DataUnavailableError, match="checksum mismatch") as info:
        svhn.load_svhn("test")
    assert url in str(info.value)
    assert files_under(tmp_path / "cache") == []


def test_corrupt_cache_is_deleted_and_downloaded_again(server, monkeypatch, fakes):
    remote = pin(monkeypatch, "test", fakes["test"].raw,
                 server.serve("/test.mat", fakes["test"].raw))
    target = data.cache_path(remote)
    target.parent.mkdir(parents=True)
    tampered = bytearray(fakes["test"].raw)
    tampered[len(tampered) // 2] ^= 0xFF
    target.write_bytes(bytes(tampered))
    with pytest.warns(CorruptCacheWarning, match="corrupt or tampered"):
        test = svhn.load_svhn("test")
    assert len(test) == N_TEST and server.requests == ["/test.mat"]
    assert data.sha256_file(target) == fakes["test"].sha256


def test_bytes_are_verified_again_right_before_parsing(monkeypatch, fakes, tmp_path):
    pin(monkeypatch, "test", fakes["test"].raw, "http://127.0.0.1:9/unused.mat")
    swapped = tmp_path / "swapped.mat"
    swapped.write_bytes(fakes["train"].raw)
    monkeypatch.setattr(svhn, "fetch", lambda remote, **kw: swapped)
    parsed = []
    monkeypatch.setattr(svhn, "read_mat5", lambda raw: parsed.append(1))
    with pytest.raises(ChecksumError, match="nothing was parsed"):
        svhn.load_svhn("test")
    assert not parsed


@pytest.mark.parametrize(("variables", "match"), [
    ({"y": np.ones((N_TEST, 1))}, "no variable 'X'; the file has y"),
    ({"X": np.zeros((32, 32, 3, N_TEST), np.uint8)}, "no variable 'y'"),
    ({"X": np.zeros((32, 32, 3, N_TEST - 1), np.uint8), "y": np.ones((N_TEST, 1))},
     r"X must be uint8 of shape \(32, 32, 3, 20\)"),
    ({"X": np.zeros((32, 32, 3, N_TEST)), "y": np.ones((N_TEST, 1))}, "X must be uint8"),
    ({"X": np.zeros((32, 32, 3, N_TEST), np.uint8), "y": np.ones((N_TEST, 2))},
     "y must be 20 x 1 numbers"),
    ({"X": np.zeros((32, 32, 3, N_TEST), np.uint8), "y": np.zeros((N_TEST, 1))},
     r"labels 1\.\.10 .*found 0\.0\.\.0\.0"),
    ({"X": np.zeros((32, 32, 3, N_TEST), np.uint8), "y": np.full((N_TEST, 1), 1.5)},
     "non-integers"),
    ({"X": np.zeros((32, 32, 3, N_TEST), np.uint8), "y": (np.ones((N_TEST, 1)), {"flags": 8})},
     "is complex"),
])
def test_malformed_files_are_named(server, monkeypatch, variables, match):
    raw = mat5(variables, compress=True)
    pin(monkeypatch, "test", raw, server.serve("/bad.mat", raw))
    with pytest.raises(ValueError, match=match) as info:
        svhn.load_svhn("test")
    assert "test_32x32.mat" in str(info.value)


def test_too_few_images_of_a_label_for_the_validation_set(server, monkeypatch, fakes):
    x = np.zeros((32, 32, 3, N_TRAIN), np.uint8)
    y = np.ones((N_TRAIN, 1))
    y[:10, 0] = np.arange(1, 11)  # one image of each label but 1
    raw = mat5({"X": x, "y": y}, compress=True)
    pin(monkeypatch, "train", raw, server.serve("/train.mat", raw))
    with pytest.raises(ValueError, match="1 images of label 2, fewer than the 2"):
        svhn.load_svhn("train")


def test_real_pins_and_sizes():
    files = svhn.SVHN_FILES
    assert files["train"].urls == ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",)
    assert files["train"].sha256 == "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8"
    assert files["train"].size == 182_040_794
    assert files["test"].urls == ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",)
    assert files["test"].sha256 == "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b"
    assert files["test"].size == 64_275_384
    assert files["extra"].urls == ("http://ufldl.stanford.edu/housenumbers/extra_32x32.mat",)
    assert files["extra"].sha256 == "a133a4beb38a00fcdda90c9489e0c04f900b660ce8a316a5e854838379a71eb3"
    assert files["extra"].size == 1_329_278_602
    assert all(r.dataset == "svhn" and not r.gzipped for r in files.values())
    # pylearn2's sizes: 73,257 + 531,131 - 6,000 = 598,388 (splitted_train), 26,032 test.
    n_train, n_test, n_extra, per_label, seed = REAL
    assert (n_train, n_test, n_extra, seed) == (73_257, 26_032, 531_131, 322)
    assert per_label == {"train": 400, "extra": 200}
    assert n_train + n_extra - 10 * (per_label["train"] + per_label["extra"]) == 598_388


def test_no_warnings_on_a_clean_load(server, monkeypatch, fakes):
    serve_all(server, monkeypatch, fakes, parts=("test",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        svhn.load_svhn("test")
