"""Fetch, verify, cache: how every data file of the book reaches the disk.

A data file is described by a :class:`Remote`: its name in the cache, the SHA-256 it must have,
and the URLs (mirrors) that serve it. :func:`fetch` tries three sources, in this order, and
returns the path of the first copy that passes its checksum:

1. **the cache**: ``<cache root>/<dataset>/<filename>``, where the cache root is
   :func:`papernotes_core.runtime.data_dir` (``PAPERNOTES_DATA``, default
   ``~/.cache/papernotes/data``). A cached file whose SHA-256 is wrong is never used: it is
   deleted, with a :class:`CorruptCacheWarning`, and the next sources are tried (so a damaged
   cache heals itself when another source works);
2. **a copy an installed package ships** (a pip package's data file, a Debian package's file
   under ``/usr/share``), checked against the same SHA-256 before it is used;
3. **a download** from each URL in turn, streamed to a temporary file *inside the cache folder*,
   checked (length, then SHA-256), and only then moved into place with :func:`os.replace`, which
   is atomic: the cache never holds a half-written or unverified file, and a failed transfer
   leaves nothing behind.

When no source works, :class:`DataUnavailableError` (a :class:`FileNotFoundError`) says what
each source was and why it failed, and what to install or run to get the data.

Compressed sources. Where the URLs serve a gzip of the file (``Remote(gzipped=True)``, as for the
MNIST IDX files), the cache holds the *decompressed* file, so that reading it is fast. The
transfer is checked against ``download_sha256`` (the pinned hash of the ``.gz``), then
decompressed and checked against ``sha256`` (the hash of the content). A packaged copy of a
gzipped remote is checked by its content alone, because a distribution may recompress a file
(Debian's Fashion-MNIST files are the original data in a different gzip stream).

Environment variables:

* ``PAPERNOTES_DATA``: the cache root (see :mod:`papernotes_core.runtime`).
* ``PAPERNOTES_OFFLINE``: ``1`` (or ``true``/``yes``/``on``) turns the download step off, so that
  only the cache and installed packages are used; ``0``/``false``/``no``/``off`` or unset leaves
  it on. Tests set it so that they never reach the network.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

from ..runtime import data_dir

__all__ = [
    "ChecksumError",
    "CorruptCacheWarning",
    "DataUnavailableError",
    "Packaged",
    "Remote",
    "cache_path",
    "fetch",
    "offline",
    "sha256_bytes",
    "sha256_file",
    "store",
    "verify_sha256",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_OFFLINE_TRUE = {"1", "true", "yes", "on"}
_OFFLINE_FALSE = {"", "0", "false", "no", "off"}
_UMASK = os.umask(0o022)  # read the process umask (os.umask is the only way) and put it back
os.umask(_UMASK)

#: What ``packaged`` may be: a path, or a callable returning a path or the file's bytes (and
#: raising ``FileNotFoundError`` with a reason, or returning ``None``, when the package is absent).
Packaged = Union[Path, str, Callable[[], Union[Path, str, bytes, None]]]


class ChecksumError(ValueError):
    """A file's SHA-256 is not the pinned one (raised by :func:`verify_sha256` and :func:`store`)."""


class CorruptCacheWarning(UserWarning):
    """A cached file failed its checksum; it was deleted and the next source tried."""


class DataUnavailableError(FileNotFoundError):
    """No source could give a verified copy of a data file.

    Attributes: ``remote`` (the :class:`Remote` asked for), ``attempts`` (a tuple of
    ``(source, why it failed)`` pairs, in the order tried) and ``hints`` (what gets the data).
    ``str(error)`` lists all of them.
    """

    def __init__(self, remote: "Remote", attempts, hints=()):
        self.remote = remote
        self.attempts = tuple((str(s), str(r)) for s, r in attempts)
        self.hints = tuple(hints)
        lines = [f"no source gave a verified copy of {remote.dataset}/{remote.filename} "
                 f"(SHA-256 {remote.sha256}). Sources tried, in order:"]
        lines += [f"  - {source}: {reason}" for source, reason in self.attempts]
        if self.hints:
            lines.append("To get the data: " + "; or ".join(self.hints) + ".")
        super().__init__("\n".join(lines))

    def __str__(self) -> str:  # OSError's own __str__ would show the args tuple
        return self.args[0]

    def __reduce__(self):
        return (type(self), (self.remote, self.attempts, self.hints))


def _check_sha256(value, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str of 64 hex digits, got {type(value).__name__}")
    if not _HEX64.fullmatch(value):
        raise ValueError(f"{what} must be 64 lowercase hex digits (a SHA-256), got {value!r}")
    return value


def _check_size(value, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int or None, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return value


def _check_name(value, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not value or value in (".", "..") or "/" in value or "\\" in value or value.startswith("."):
        raise ValueError(f"{what} must be a plain file or folder name (no '/', not hidden), "
                         f"got {value!r}")
    return value


@dataclass(frozen=True)
class Remote:
    """One data file: where it goes in the cache, what it must hash to, where to download it.

    Fields:

    * ``dataset``: the cache sub-folder (``"mnist"``); ``filename``: the file's name there.
    * ``sha256``: the pinned SHA-256 (64 lowercase hex digits) of the file *as cached*.
    * ``urls``: mirrors (``http``/``https``), tried in order; a list is stored as a tuple.
    * ``size``: the cached file's length in bytes, or ``None`` if not pinned.
    * ``gzipped``: the URLs serve a gzip of the file; it is decompressed into the cache.
    * ``download_sha256``, ``download_size``: the pins of what the URLs serve, when ``gzipped``
      (the ``.gz`` itself); checked before decompressing.
    * ``hint``: how to get the file besides downloading (``"pip install ..."``), for error
      messages.

    Raises ``TypeError``/``ValueError`` on a malformed field (a hash that is not 64 hex digits, a
    name with a slash, a URL that is not http(s), download pins without ``gzipped``).
    """

    dataset: str
    filename: str
    sha256: str
    urls: tuple[str, ...] = ()
    size: int | None = None
    gzipped: bool = False
    download_sha256: str | None = None
    download_size: int | None = None
    hint: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_name(self.dataset, "Remote.dataset")
        _check_name(self.filename, "Remote.filename")
        _check_sha256(self.sha256, "Remote.sha256")
        urls = self.urls
        if isinstance(urls, str):
            raise TypeError("Remote.urls must be a tuple of URLs, got a single str "
                            "(write urls=(url,))")
        urls = tuple(urls)
        for url in urls:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError(f"Remote.urls must hold http:// or https:// URLs, got {url!r}")
        object.__setattr__(self, "urls", urls)
        _check_size(self.size, "Remote.size")
        if not isinstance(self.gzipped, bool):
            raise TypeError(f"Remote.gzipped must be a bool, got {type(self.gzipped).__name__}")
        if self.download_sha256 is not None:
            _check_sha256(self.download_sha256, "Remote.download_sha256")
        _check_size(self.download_size, "Remote.download_size")
        if not self.gzipped and (self.download_sha256 is not None or self.download_size is not None):
            raise ValueError("Remote.download_sha256/download_size pin the .gz the URLs serve; "
                             "they need gzipped=True (otherwise sha256/size pin the download)")
        if not isinstance(self.hint, str):
            raise TypeError(f"Remote.hint must be a str, got {type(self.hint).__name__}")


def offline() -> bool:
    """Whether ``PAPERNOTES_OFFLINE`` turns downloads off.

    Returns ``True`` for ``1``, ``true``, ``yes``, ``on`` and ``False`` for unset, empty, ``0``,
    ``false``, ``no``, ``off`` (any case, surrounding blanks ignored). Any other value raises a
    ``ValueError`` naming the accepted ones rather than guessing.
    """
    value = os.environ.get("PAPERNOTES_OFFLINE", "").strip().lower()
    if value in _OFFLINE_TRUE:
        return True
    if value in _OFFLINE_FALSE:
        return False
    raise ValueError(f"PAPERNOTES_OFFLINE={value!r} is not understood: use 1/true/yes/on to "
                     "turn downloads off, or 0/false/no/off (or unset) to allow them")


def cache_path(remote: Remote, cache_dir: Path | str | None = None) -> Path:
    """Where ``remote`` is cached: ``<cache_dir or data_dir()>/<dataset>/<filename>``."""
    if not isinstance(remote, Remote):
        raise TypeError(f"remote must be a Remote, got {type(remote).__name__}")
    root = data_dir() if cache_dir is None else Path(cache_dir).expanduser()
    return root / remote.dataset / remote.filename


def sha256_bytes(data: bytes | bytearray | memoryview) -> str:
    """The SHA-256 of ``data`` as 64 lowercase hex digits."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str) -> str:
    """The SHA-256 of the file at ``path`` as 64 lowercase hex digits (read in 1 MiB chunks).

    Raises ``FileNotFoundError`` if there is no such file.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(path: Path | str, expected: str) -> Path:
    """Check that the file at ``path`` has SHA-256 ``expected``; return its path.

    Raises :class:`ChecksumError` (a ``ValueError``) naming the file, the expected and the actual
    hash when they differ, ``FileNotFoundError`` when there is no file, and ``TypeError`` /
    ``ValueError`` when ``expected`` is not 64 lowercase hex digits.
    """
    _check_sha256(expected, "expected")
    path = Path(path)
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(f"{path}: SHA-256 is {actual}, expected {expected}")
    return path


def _atomic_write(target: Path, write: Callable) -> None:
    """Run ``write(file)`` on a temporary file beside ``target``, then ``os.replace`` it there.

    Whatever ``write`` raises, the temporary file is removed and nothing appears at ``target``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it 0600; a cache file is as any other
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def store(remote: Remote, data: bytes | bytearray | memoryview, *,
          cache_dir: Path | str | None = None) -> Path:
    """Put ``data`` into the cache as ``remote``'s file, after checking it; return the path.

    The bytes must hash to ``remote.sha256`` (and have ``remote.size`` bytes, if pinned), or a
    :class:`ChecksumError` is raised and the cache is left untouched. The write is atomic
    (temporary file, then :func:`os.replace`).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    target = cache_path(remote, cache_dir)
    actual = sha256_bytes(data)
    if actual != remote.sha256:
        raise ChecksumError(f"bytes for {remote.dataset}/{remote.filename}: SHA-256 is {actual}, "
                            f"expected {remote.sha256}")
    _atomic_write(target, lambda f: f.write(data))
    return target


class _SourceFailed(Exception):
    """One source did not give a verified file; the message says why."""


def _from_cache(remote: Remote, target: Path) -> tuple[Path | None, str]:
    if not target.is_file():
        return None, "not there"
    try:
        size = target.stat().st_size
        actual = sha256_file(target) if remote.size in (None, size) else None
    except OSError as e:
        return None, f"unreadable ({e})"
    if actual == remote.sha256:
        return target, ""
    why = (f"{size} bytes, expected {remote.size}" if actual is None
           else f"SHA-256 is {actual}, expected {remote.sha256}")
    try:
        target.unlink()
        done = "deleted it"
    except OSError as e:
        done = f"could not delete it ({e}); it is not used"
    warnings.warn(f"cached file {target} is corrupt or tampered with ({why}); {done} and "
                  "trying the other sources", CorruptCacheWarning, stacklevel=3)
    return None, f"corrupt: {why}; {done}"


def _gunzip_into(src, out, remote: Remote) -> None:
    """Decompress the gzip stream ``src`` into ``out``, checking the result against ``remote``.

    Stops as soon as the output outgrows ``remote.size`` (so a wrong file cannot fill the disk).
    """
    h = hashlib.sha256()
    n = 0
    d = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
    limit = remote.size
    try:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            while chunk:
                piece = d.decompress(chunk, _CHUNK)
                chunk = d.unconsumed_tail
                if piece:
                    n += len(piece)
                    if limit is not None and n > limit:
                        raise _SourceFailed(f"decompresses to more than the pinned {limit} bytes")
                    h.update(piece)
                    out.write(piece)
                if d.eof:
                    break
            if d.eof:
                break
        tail = d.flush()
    except zlib.error as e:
        raise _SourceFailed(f"not a valid gzip stream ({e})") from None
    if tail:
        n += len(tail)
        h.update(tail)
        out.write(tail)
    if not d.eof:
        raise _SourceFailed("the gzip stream is cut short (no end-of-stream marker)")
    if limit is not None and n != limit:
        raise _SourceFailed(f"decompresses to {n} bytes, expected {limit}")
    if h.hexdigest() != remote.sha256:
        raise _SourceFailed(f"decompressed SHA-256 is {h.hexdigest()}, expected {remote.sha256}")


def _from_packaged(remote: Remote, packaged: Packaged, target: Path) -> tuple[Path, str]:
    """Return (path, description) of a verified packaged copy; raise _SourceFailed if none."""
    if callable(packaged):
        name = getattr(packaged, "__qualname__", repr(packaged))
        try:
            found = packaged()
        except FileNotFoundError as e:
            raise _SourceFailed(str(e) or "not installed") from None
        if found is None:
            raise _SourceFailed(f"{name}() found no installed copy")
        if isinstance(found, (bytes, bytearray, memoryview)):
            try:
                return store(remote, found, cache_dir=target.parent.parent), f"bytes from {name}()"
            except ChecksumError as e:
                raise _SourceFailed(str(e)) from None
        path = Path(found)
    elif isinstance(packaged, (str, os.PathLike)):
        path = Path(packaged)
    else:
        raise TypeError("packaged must be a Path, a str or a callable returning a Path/bytes/None, "
                        f"got {type(packaged).__name__}")
    if not path.is_file():
        raise _SourceFailed(f"{path} is not there")
    if remote.gzipped:
        with open(path, "rb") as f:
            is_gzip = f.read(2) == _GZIP_MAGIC
    if remote.gzipped and is_gzip:
        def write(out):
            with open(path, "rb") as src:
                _gunzip_into(src, out, remote)
        try:
            _atomic_write(target, write)
        except _SourceFailed as e:
            raise _SourceFailed(f"{path}: {e}") from None
        return target, str(path)
    actual = sha256_file(path)
    if actual != remote.sha256:
        raise _SourceFailed(f"{path}: SHA-256 is {actual}, expected {remote.sha256}")
    return path, str(path)


def _describe_url_error(e: urllib.error.URLError, timeout: float) -> str:
    reason = e.reason
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"timed out after {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the server gone?)"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host (no network, or no DNS?): {reason}"
    return f"cannot connect: {reason}"


def _download(remote: Remote, url: str, target: Path, timeout: float) -> None:
    """Download ``url`` into ``target``, verified; raise _SourceFailed (leaving nothing) if not."""
    want_sha = remote.download_sha256 if remote.gzipped else remote.sha256
    want_size = remote.download_size if remote.gzipped else remote.size

    def write(out):
        request = urllib.request.Request(url, headers={"User-Agent": "papernotes-data/1"})
        h = hashlib.sha256()
        n = 0
        with urllib.request.urlopen(request, timeout=timeout) as response:
            header = response.headers.get("Content-Length")
            promised = int(header) if header is not None and header.strip().isdigit() else None
            if promised is not None and want_size is not None and promised != want_size:
                raise _SourceFailed(f"the server offers {promised} bytes, expected {want_size}")
            with tempfile.TemporaryFile(dir=target.parent) as raw:
                dest = raw if remote.gzipped else out
                while chunk := response.read(_CHUNK):
                    n += len(chunk)
                    if want_size is not None and n > want_size:
                        raise _SourceFailed(f"sent more than the pinned {want_size} bytes")
                    h.update(chunk)
                    dest.write(chunk)
                if promised is not None and n != promised:
                    raise _SourceFailed(f"transfer cut short: got {n} of the {promised} bytes "
                                        "promised (Content-Length)")
                if want_size is not None and n != want_size:
                    raise _SourceFailed(f"got {n} bytes, expected {want_size}")
                if want_sha is not None and h.hexdigest() != want_sha:
                    raise _SourceFailed(f"checksum mismatch: SHA-256 is {h.hexdigest()}, "
                                        f"expected {want_sha}")
                if remote.gzipped:
                    raw.seek(0)
                    _gunzip_into(raw, out, remote)

    try:
        _atomic_write(target, write)
    except _SourceFailed:
        raise
    except urllib.error.HTTPError as e:
        raise _SourceFailed(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise _SourceFailed(_describe_url_error(e, timeout)) from None
    except (socket.timeout, TimeoutError):
        raise _SourceFailed(f"timed out after {timeout:g} s during the transfer") from None
    except http.client.IncompleteRead as e:
        raise _SourceFailed(f"transfer cut short: got {len(e.partial)} bytes, "
                            f"{e.expected} more were promised") from None
    except (ConnectionError, http.client.HTTPException) as e:
        raise _SourceFailed(f"connection failed during the transfer: "
                            f"{type(e).__name__}: {e}") from None


def fetch(remote: Remote, *, packaged: Packaged | None = None,
          cache_dir: Path | str | None = None, download: bool = True,
          timeout: float = 60.0) -> Path:
    """A verified local copy of ``remote``: from the cache, an installed package, or a download.

    Sources, in order (see the module docstring for the details):

    1. ``<cache_dir or data_dir()>/<dataset>/<filename>``, if its SHA-256 is ``remote.sha256``
       (a cached file that fails is deleted, with a :class:`CorruptCacheWarning`);
    2. ``packaged``: a ``Path`` (or str) to a copy an installed package ships, or a callable
       returning such a path, or the file's bytes, or ``None`` (or raising ``FileNotFoundError``
       with a reason) when the package is absent. A path is used where it lies when it holds
       the file as cached; a gzip of a ``gzipped`` remote is decompressed into the cache; bytes
       are stored into the cache. All are checked against ``remote.sha256`` first;
    3. each of ``remote.urls`` in turn, unless ``download`` is false or ``PAPERNOTES_OFFLINE``
       is set: streamed to a temporary file in the cache folder, checked, then moved into
       place. ``timeout`` (seconds) bounds the connection and each read.

    Returns the path of the verified file (in the cache, or the package's own copy).

    Raises :class:`DataUnavailableError` (a ``FileNotFoundError``) when no source works; its
    message lists every source tried and why it failed, and how to get the data. Bad arguments
    raise ``TypeError``/``ValueError``.
    """
    if not isinstance(remote, Remote):
        raise TypeError(f"remote must be a Remote, got {type(remote).__name__}")
    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool, got {type(download).__name__}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    target = cache_path(remote, cache_dir)
    attempts: list[tuple[str, str]] = []

    found, why = _from_cache(remote, target)
    if found is not None:
        return found
    attempts.append((f"cache {target}", why))

    if packaged is not None:
        try:
            found, _ = _from_packaged(remote, packaged, target)
            return found
        except _SourceFailed as e:
            attempts.append(("installed package", str(e)))

    if not remote.urls:
        attempts.append(("download", "no URL is known for this file"))
    elif not download:
        attempts.append(("download", "not tried (download=False)"))
    elif offline():
        attempts.append(("download", "not tried (PAPERNOTES_OFFLINE is set)"))
    else:
        for url in remote.urls:
            try:
                _download(remote, url, target, float(timeout))
                return target
            except _SourceFailed as e:
                attempts.append((f"download {url}", str(e)))

    hints = [remote.hint] if remote.hint else []
    if remote.urls:
        hints.append(f"run with internet access (and PAPERNOTES_OFFLINE unset) to download it "
                     f"from {remote.urls[0]}")
    raise DataUnavailableError(remote, attempts, hints)
