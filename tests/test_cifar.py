"""Tests of papernotes_core.data.cifar: CIFAR-10/100 from a verified tarball, safely unpickled.

The real tarballs cannot be downloaded here, so each test builds a tiny fake with the layout of
the official ones (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta``;
``cifar-100-python/train``, ``test``, ``meta``) and the pickle format of their members: Python 2
pickles (protocol 2, strings as ``BINSTRING``, arrays through ``numpy.core.multiarray``), written
by :class:`Py2Pickler` below. The split sizes are shrunk to match (60 training images, 20 test
images), the pinned hash and URL are pointed at the fake, and it is served by a small HTTP
server on 127.0.0.1. PAPERNOTES_OFFLINE=1 and a temporary PAPERNOTES_DATA keep every test off
the network and out of the real cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import struct
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from papernotes_core import data
from papernotes_core.data import cifar
from papernotes_core.data.fetch import ChecksumError, CorruptCacheWarning, DataUnavailableError

N_TRAIN, N_VALID, N_TEST = 50, 10, 20  # 5 CIFAR-10 batches of 12 training images
REAL_SIZES = (cifar.N_TRAIN, cifar.N_VALID, cifar.N_TEST)
_RECONSTRUCT = np.empty(0).__reduce__()[0]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test: its own cache folder, no network, and the split sizes of the tiny fakes."""
    monkeypatch.setenv("PAPERNOTES_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("PAPERNOTES_OFFLINE", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(cifar, "N_TRAIN", N_TRAIN)
    monkeypatch.setattr(cifar, "N_VALID", N_VALID)
    monkeypatch.setattr(cifar, "N_TEST", N_TEST)


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder`` (hidden ones too), as relative paths."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------
# Fake tarballs, pickled as Python 2 did


class Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote it: str and bytes as BINSTRING, numpy.core globals."""

    dispatch = pickle._Pickler.dispatch.copy()
    _GLOBALS = {id(_RECONSTRUCT): b"numpy.core.multiarray\n_reconstruct\n",
                id(np.ndarray): b"numpy\nndarray\n", id(np.dtype): b"numpy\ndtype\n"}

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj, name=None):
        self.write(pickle.GLOBAL + self._GLOBALS[id(obj)])
        self.memoize(obj)


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def tar_gz(members: dict[str, bytes], folder: str) -> bytes:
    """A .tar.gz holding ``folder/`` and ``folder/<name>`` for each member, like the originals."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(folder)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        for name, body in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(body)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


@dataclasses.dataclass
class Fake:
    """A fake tarball and the uint8 images / labels it holds, in the official order."""

    tarball: bytes
    train_x: np.ndarray  # (60, 3072) uint8: all training images (train + valid)
    test_x: np.ndarray
    labels: dict[str, tuple[np.ndarray, np.ndarray]]  # label key -> (train, test)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.tarball).hexdigest()


def fake_cifar10(seed: int = 0) -> Fake:
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VALID
    x = rng.integers(0, 256, (n + N_TEST, 3072), dtype=np.uint8)
    x[0, :] = 0  # both ends of the range appear
    x[1, :] = 255
    y = rng.integers(0, 10, n + N_TEST)
    per = n // 5
    members = {}
    for i in range(5):
        s = slice(i * per, (i + 1) * per)
        members[f"data_batch_{i + 1}"] = py2_pickle({
            b"batch_label": f"training batch {i + 1} of 5".encode(),
            b"labels": [int(v) for v in y[s]], b"data": x[s],
            b"filenames": [f"img_{j}.png".encode() for j in range(s.start, s.stop)]})
    members["test_batch"] = py2_pickle({
        b"batch_label": b"testing batch 1 of 1", b"labels": [int(v) for v in y[n:]],
        b"data": x[n:], b"filenames": [f"t_{j}.png".encode() for j in range(N_TEST)]})
    members["batches.meta"] = py2_pickle({
        b"num_cases_per_batch": per, b"label_names": [c.encode() for c in cifar.CIFAR10_CLASSES],
        b"num_vis": 3072})
    members["readme.html"] = b"<html>fake</html>"
    return Fake(tar_gz(members, "cifar-10-batches-py"), x[:n], x[n:],
                {"labels": (y[:n], y[n:])})


def fake_cifar100(seed: int = 1) -> Fake:
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VALID
    x = rng.integers(0, 256, (n + N_TEST, 3072), dtype=np.uint8)
    fine = rng.integers(0, 100, n + N_TEST)
    coarse = fine // 5
    members = {}
    for name, s in (("train", slice(0, n)), ("test", slice(n, n + N_TEST))):
        members[name] = py2_pickle({
            b"filenames": [f"{name}_{j}.png".encode() for j in range(s.stop - s.start)],
            b"batch_label": f"{name}ing batch 1 of 1".encode(),
            b"fine_labels": [int(v) for v in fine[s]], b"coarse_labels": [int(v) for v in coarse[s]],
            b"data": x[s]})
    members["meta"] = py2_pickle({b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                                  b"coarse_label_names": [f"c{i}".encode() for i in range(20)]})
    members["file.txt~"] = b""
    return Fake(tar_gz(members, "cifar-100-python"), x[:n], x[n:],
                {"fine_labels": (fine[:n], fine[n:]), "coarse_labels": (coarse[:n], coarse[n:])})


@pytest.fixture(scope="module")
def fake10() -> Fake:
    return fake_cifar10()


@pytest.fixture(scope="module")
def fake100() -> Fake:
    return fake_cifar100()


# ---------------------------------------------------------------------------------------------
# A local HTTP server


def pin(monkeypatch, attr: str, fake: Fake, url: str, **changes) -> data.Remote:
    """Point ``cifar.<attr>`` (the pinned Remote) at the fake tarball served at ``url``."""
    remote = dataclasses.replace(getattr(cifar, attr), sha256=fake.sha256, urls=(url,),
                                 size=len(fake.tarball))
    remote = dataclasses.replace(remote, **changes)
    monkeypatch.setattr(cifar, attr, remote)
    return remote


@pytest.fixture
def no_unpickling(monkeypatch):
    """Make any unpickling by the CIFAR module fail the test."""
    calls = []

    def refuse(self):
        calls.append(True)
        raise AssertionError("a CIFAR pickle was unpickled")

    monkeypatch.setattr(cifar.RestrictedUnpickler, "load", refuse)
    return calls


# ---------------------------------------------------------------------------------------------
# The loaders


def test_cifar10_download_splits_shapes_dtypes_and_scaling(server, monkeypatch, fake10, tmp_path):
    remote = pin(monkeypatch, "CIFAR10_TARBALL", fake10,
                 server.serve("/cifar-10-python.tar.gz", fake10.tarball))
    splits = data.load_cifar10()
    assert isinstance(splits, data.Splits)
    assert server.requests == ["/cifar-10-python.tar.gz"]
    y_train, y_test = fake10.labels["labels"]
    expected = {"train": (fake10.train_x[:N_TRAIN], y_train[:N_TRAIN]),
                "valid": (fake10.train_x[N_TRAIN:], y_train[N_TRAIN:]),
                "test": (fake10.test_x, y_test)}
    for name, split in splits.items():
        images, labels = expected[name]
        x, y = split
        assert x.shape == (len(images), 3, 32, 32) and x.dtype == np.float32
        assert y.shape == (len(images),) and y.dtype == np.int64
        assert x.min() >= 0.0 and x.max() <= 1.0
        # uint8 / 255, channels-first (R, G, B planes of 1024 pixels each, as in the files)
        np.testing.assert_array_equal(x, (images.astype(np.float32) / np.float32(255)).reshape(-1, 3, 32, 32))
        np.testing.assert_array_equal(np.rint(x * 255).astype(np.uint8).reshape(len(x), -1), images)
        np.testing.assert_array_equal(y, labels)
    assert splits.train.x[0].max() == 0.0 and splits.train.x[1].min() == 1.0
    # The cache holds the verified tarball itself, and nothing else.
    assert files_under(tmp_path / "cache") == ["cifar-10/cifar-10-python.tar.gz"]
    assert data.sha256_file(data.cache_path(remote)) == fake10.sha256


def test_cifar10_second_call_reads_the_cache_offline(server, monkeypatch, fake10):
    pin(monkeypatch, "CIFAR10_TARBALL", fake10, server.serve("/c10.tgz", fake10.tarball))
    first = data.load_cifar10("test")
    monkeypatch.setenv("PAPERNOTES_OFFLINE", "1")
    second = data.load_cifar10("test", download=False)
    assert server.requests == ["/c10.tgz"]
    np.testing.assert_array_equal(first.x, second.x)
    assert first.x is not second.x  # every call returns new arrays


def test_cifar10_single_split_and_limit(server, monkeypatch, fake10):
    pin(monkeypatch, "CIFAR10_TARBALL", fake10, server.serve("/c10.tgz", fake10.tarball))
    valid = data.load_cifar10("valid", limit=3)
    assert isinstance(valid, data.Split) and len(valid) == 3
    np.testing.assert_array_equal(valid.y, fake10.labels["labels"][0][N_TRAIN:N_TRAIN + 3])
    big = data.load_cifar10("valid", limit=10_000)
    assert len(big) == N_VALID
    splits = data.load_cifar10(limit=7)
    assert [len(s) for _, s in splits.items()] == [7, 7, 7]
    x, y = splits.test.to_torch()
    assert tuple(x.shape) == (7, 3, 32, 32) and str(y.dtype) == "torch.int64"


def test_cifar100_label_modes(server, monkeypatch, fake100):
    pin(monkeypatch, "CIFAR100_TARBALL", fake100, server.serve("/c100.tgz", fake100.tarball))
    fine = data.load_cifar100()
    coarse = data.load_cifar100(label_mode="coarse")
    (fine_train, fine_test), (coarse_train, coarse_test) = (fake100.labels["fine_labels"],
                                                            fake100.labels["coarse_labels"])
    np.testing.assert_array_equal(fine.train.y, fine_train[:N_TRAIN])
    np.testing.assert_array_equal(fine.valid.y, fine_train[N_TRAIN:])
    np.testing.assert_array_equal(fine.test.y, fine_test)
    np.testing.assert_array_equal(coarse.train.y, coarse_train[:N_TRAIN])
    np.testing.assert_array_equal(coarse.test.y, coarse_test)
    assert coarse.train.y.max() < 20 and fine.train.y.dtype == np.int64
    for name in ("train", "valid", "test"):
        np.testing.assert_array_equal(fine[name].x, coarse[name].x)  # same images
        assert fine[name].x.shape[1:] == (3, 32, 32) and fine[name].x.dtype == np.float32
    np.testing.assert_array_equal(
        fine.valid.x, (fake100.train_x[N_TRAIN:] / np.float32(255)).astype(np.float32).reshape(-1, 3, 32, 32))
    assert server.requests == ["/c100.tgz"]  # the second call used the cache


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"split": "validation"}, ValueError, "split must be one of"),
    ({"limit": 0}, ValueError, "positive int"),
    ({"limit": 2.5}, TypeError, "positive int"),
    ({"timeout": 0}, ValueError, "timeout"),
    ({"timeout": "60"}, TypeError, "timeout"),
    ({"label_mode": "medium"}, ValueError, "'fine'.*'coarse'"),
    ({"label_mode": 100}, TypeError, "label_mode must be a str"),
])
def test_loaders_reject_bad_arguments(kwargs, error, match, no_unpickling):
    loaders = [data.load_cifar100] if "label_mode" in kwargs else [data.load_cifar10, data.load_cifar100]
    for loader in loaders:
        with pytest.raises(error, match=match):
            loader(**kwargs)
    assert not no_unpickling


# ---------------------------------------------------------------------------------------------
# Failures: nothing unverified is kept, nothing unverified is unpickled


def test_bad_checksum_is_an_error_and_leaves_nothing(server, monkeypatch, fake10, tmp_path,
                                                     no_unpickling):
    url = server.serve("/c10.tgz", fake10.tarball)
    pin(monkeypatch, "CIFAR10_TARBALL", fake10, url, sha256="0" * 64)
    with pytest.raises(DataUnavailableError, match="checksum mismatch") as info:
        data.load_cifar10()
    assert url in str(info.value)
    assert files_under(tmp_path / "cache") == []  # no tarball, no temporary file
    assert not no_unpickling


def test_offline_with_nothing_cached_says_it_needs_internet(monkeypatch, tmp_path, no_unpickling):
    for loader, remote in ((data.load_cifar10, cifar.CIFAR10_TARBALL),
                           (data.load_cifar100, cifar.CIFAR100_TARBALL)):
        for kwargs in ({}, {"download": False}):
            with pytest.raises(DataUnavailableError) as info:
                loader(**kwargs)
            message = str(info.value)
            assert remote.urls[0] in message
            assert "internet" in message and "Colab" in message
            assert isinstance(info.value, FileNotFoundError)
    assert files_under(tmp_path / "cache") == []
    assert not no_unpickling


def test_real_pins_are_the_published_ones():
    ten, hundred = cifar.CIFAR10_TARBALL, cifar.CIFAR100_TARBALL
    assert ten.urls == ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
    assert ten.sha256 == "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    assert ten.size == 170_498_071
    assert hundred.urls == ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",)
    assert hundred.sha256 == "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"
    assert hundred.size == 169_001_437
    assert not ten.gzipped and not hundred.gzipped  # the tarball itself is cached, as pinned


def test_real_split_sizes():
    assert REAL_SIZES == (45_000, 5_000, 10_000)  # read at import, before the fixture shrinks them


class _Exploit:
    """Unpickling this would create ``path``: the marker of code run by a pickle."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def malicious_cifar10(marker: Path) -> bytes:
    evil = pickle.dumps({b"data": _Exploit(marker), b"labels": [0]}, protocol=4)
    return tar_gz({f"data_batch_{i}": evil for i in range(1, 6)} | {"test_batch": evil},
                  "cifar-10-batches-py")


def test_tampered_cached_tarball_is_never_unpickled(monkeypatch, fake10, tmp_path, no_unpickling):
    remote = pin(monkeypatch, "CIFAR10_TARBALL", fake10, "http://127.0.0.1:9/unused.tgz")
    marker = tmp_path / "pwned"
    target = data.cache_path(remote)
    target.parent.mkdir(parents=True)
    target.write_bytes(malicious_cifar10(marker))
    with pytest.warns(CorruptCacheWarning, match="corrupt or tampered"):
        with pytest.raises(DataUnavailableError, match="corrupt"):
            data.load_cifar10()  # offline: nothing else to try
    assert not target.exists()  # the bad copy was deleted
    assert not marker.exists()
    assert not no_unpickling


def test_tampered_tarball_of_the_right_size_is_refused(monkeypatch, fake10, tmp_path, no_unpickling):
    remote = pin(monkeypatch, "CIFAR10_TARBALL", fake10, "http://127.0.0.1:9/unused.tgz")
    target = data.cache_path(remote)
    target.parent.mkdir(parents=True)
    tampered = bytearray(fake10.tarball)
    tampered[len(tampered) // 2] ^= 0xFF
    target.write_bytes(bytes(tampered))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        with pytest.raises(DataUnavailableError, match="SHA-256 is"):
            data.load_cifar10("test")
    assert not no_unpickling


def test_bytes_are_verified_again_right_before_unpickling(monkeypatch, fake10, tmp_path,
                                                          no_unpickling):
    """Even if the file changed after fetch() verified it, the changed bytes are not unpickled."""
    pin(monkeypatch, "CIFAR10_TARBALL", fake10, "http://127.0.0.1:9/unused.tgz")
    swapped = tmp_path / "swapped.tgz"
    swapped.write_bytes(malicious_cifar10(tmp_path / "pwned"))
    monkeypatch.setattr(cifar, "fetch", lambda remote, **kw: swapped)
    with pytest.raises(ChecksumError, match="nothing was unpickled"):
        data.load_cifar10()
    assert not (tmp_path / "pwned").exists()
    assert not no_unpickling


def test_restricted_unpickler_refuses_code_and_reads_arrays(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Exploit(marker)}, protocol=4)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load io.open"):
        cifar._unpickle(evil, "evil")
    assert not marker.exists()
    for module, name in (("os", "system"), ("builtins", "eval"), ("numpy", "load")):
        raw = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n."
        with pytest.raises(pickle.UnpicklingError, match=f"{module}.{name}"):
            cifar._unpickle(raw, "evil")
    a = np.arange(3072 * 2, dtype=np.uint32).astype(np.uint8).reshape(2, 3072)
    for raw in (py2_pickle({b"data": a, b"labels": [1, 2]}),  # Python 2 style, numpy.core
                pickle.dumps({b"data": a, b"labels": [1, 2]}, protocol=3),  # NumPy 2: numpy._core
                pickle.dumps({b"data": a, b"labels": [1, 2]}, protocol=4)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no NumPy deprecation warning either
            got = cifar._unpickle(raw, "batch")
        np.testing.assert_array_equal(got[b"data"], a)
        assert got[b"labels"] == [1, 2]


def test_malformed_members_are_named(server, monkeypatch):
    good = py2_pickle({b"data": np.zeros((12, 3072), np.uint8), b"labels": [0] * 12})
    cases = {
        "no member": ({f"data_batch_{i}": good for i in range(1, 5)}, "no member .*data_batch_5"),
        "bad labels": ({f"data_batch_{i}": good for i in range(1, 5)}
                       | {"data_batch_5": py2_pickle({b"data": np.zeros((12, 3072), np.uint8),
                                                      b"labels": [10] * 12})},
                       r"b'labels' must be in 0\.\.9"),
        "bad data": ({f"data_batch_{i}": good for i in range(1, 5)}
                     | {"data_batch_5": py2_pickle({b"data": np.zeros((12, 1024), np.uint8),
                                                    b"labels": [0] * 12})},
                     r"must be uint8 of shape \(n, 3072\)"),
        "no labels": ({f"data_batch_{i}": good for i in range(1, 5)}
                      | {"data_batch_5": py2_pickle({b"data": np.zeros((12, 3072), np.uint8)})},
                      "no key b'labels'"),
        "too few": ({f"data_batch_{i}": good for i in range(1, 6)}
                    | {"data_batch_5": py2_pickle({b"data": np.zeros((2, 3072), np.uint8),
                                                   b"labels": [0] * 2})},
                    "expected 60 images"),
    }
    for i, (members, match) in enumerate(cases.values()):
        members = members | {"test_batch": py2_pickle({b"data": np.zeros((20, 3072), np.uint8),
                                                       b"labels": [0] * 20})}
        tarball = tar_gz(members, "cifar-10-batches-py")
        fake = Fake(tarball, np.zeros(0), np.zeros(0), {})
        pin(monkeypatch, "CIFAR10_TARBALL", fake, server.serve(f"/bad{i}.tgz", tarball),
            dataset=f"cifar-10-bad{i}")
        with pytest.raises(ValueError, match=match):
            data.load_cifar10("train")
    not_gzip = Fake(b"plain bytes, not a tarball", np.zeros(0), np.zeros(0), {})
    pin(monkeypatch, "CIFAR10_TARBALL", not_gzip, server.serve("/x.tgz", not_gzip.tarball),
        dataset="cifar-10-x")
    with pytest.raises(ValueError, match="not a readable .tar.gz"):
        data.load_cifar10("test")
