"""Debian packages as a data source: the installed files, or the verified ``.deb`` itself.

Some corpora of the book (the SWORD Bibles of :mod:`~papernotes_core.data.sword`, the FreeDict
dictionary of :mod:`~papernotes_core.data.freedict`) are packaged by Debian. A
:class:`DebianSource` describes one such package: its name, the files it installs with the
SHA-256 of each, and the pinned ``.deb`` (a :class:`~papernotes_core.data.fetch.Remote`).
:func:`read_debian_files` gets those files, each verified against its pin, from, in order:

1. **the installed files** (``/usr/share/...``, after ``apt-get install <package>``). All of them
   must be there and match their pins; otherwise (missing, or an upgrade changed them) the
   next source is used for every file, and the reasons are kept for the error message;
2. **the .deb**, through :func:`~papernotes_core.data.fetch.fetch`: the cache, then a download
   from Debian's pool or from ``snapshot.debian.org`` (which keeps every version the pool
   drops). ``fetch`` checks its SHA-256 before anything is opened; its members are then
   extracted in memory by :func:`deb_members` (nothing is written besides the ``.deb`` in the
   cache) and each is checked against its own pin.

When neither works, :class:`~papernotes_core.data.fetch.DataUnavailableError` lists every source
tried and why it failed, and names ``apt-get install <package>``.

:func:`deb_members` reads a ``.deb`` with the standard library only: an ``ar`` archive
(``debian-binary``, ``control.tar.*``, ``data.tar.*``) whose ``data.tar`` is compressed with xz
(the default since dpkg 1.15), gzip or bzip2, or not at all. zstd (used by Ubuntu since 21.10)
is not in the standard library and is refused with a clear error.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from .fetch import DataUnavailableError, Remote, fetch, sha256_bytes

__all__ = [
    "DebFormatError",
    "DebianSource",
    "deb_members",
    "deb_remote",
    "read_debian_files",
    "snapshot_url",
]

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
_SNAPSHOT = "https://snapshot.debian.org/file/"


class DebFormatError(ValueError):
    """A ``.deb`` (or the ``ar`` archive or ``data.tar`` inside it) is malformed or incomplete."""


def snapshot_url(sha1: str) -> str:
    """The permanent ``snapshot.debian.org`` URL of the file whose SHA-1 is ``sha1``.

    Debian's pool keeps only the current versions of a package; snapshot.debian.org serves every
    file Debian ever published, by the SHA-1 of its content.
    """
    if not isinstance(sha1, str) or len(sha1) != 40 or any(c not in "0123456789abcdef"
                                                           for c in sha1):
        raise ValueError(f"sha1 must be 40 lowercase hex digits, got {sha1!r}")
    return _SNAPSHOT + sha1


def deb_remote(url: str, *, package: str, sha256: str, sha1: str, size: int) -> Remote:
    """The :class:`~papernotes_core.data.fetch.Remote` of a ``.deb`` in Debian's pool.

    ``url``: the file in the pool (``http://deb.debian.org/debian/pool/main/...``); its last
    path component is the file name in the cache folder ``<data_dir>/debian/``. The second URL
    is the permanent :func:`snapshot_url` of ``sha1``, because the pool drops superseded
    versions. ``sha256``/``size`` pin the ``.deb`` itself; ``package`` names it in the hint.
    """
    filename = url.rstrip("/").rsplit("/", 1)[-1]
    return Remote("debian", filename, sha256, urls=(url, snapshot_url(sha1)), size=size,
                  hint=f"apt-get install {package} (as root)")


def _normalise(name: str) -> str:
    """A member path as compared: no leading ``./`` or ``/``."""
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def _ar_members(raw: memoryview, where: str) -> list[tuple[str, memoryview]]:
    """The ``(name, body)`` members of the ``ar`` archive ``raw``, in order."""
    if bytes(raw[:len(_AR_MAGIC)]) != _AR_MAGIC:
        raise DebFormatError(f"{where}: not a .deb (an ar archive starts with b'!<arch>\\n', "
                             f"this starts with {bytes(raw[:8])!r})")
    members = []
    pos = len(_AR_MAGIC)
    while pos < len(raw):
        if pos == len(raw) - 1 and raw[pos] == 0x0A:  # a stray final padding byte
            break
        header = bytes(raw[pos:pos + _AR_HEADER])
        if len(header) < _AR_HEADER:
            raise DebFormatError(f"{where}: truncated ar header at byte {pos} ({len(header)} of "
                                 f"{_AR_HEADER} bytes)")
        if header[58:60] != b"`\n":
            raise DebFormatError(f"{where}: bad ar header at byte {pos} (no '`\\n' terminator)")
        name = header[:16].decode("ascii", "replace").rstrip(" ").rstrip("/")
        size_field = header[48:58].decode("ascii", "replace").strip()
        if not size_field.isdigit():
            raise DebFormatError(f"{where}: ar member {name!r} at byte {pos} has a bad size "
                                 f"field {header[48:58]!r}")
        size = int(size_field)
        start = pos + _AR_HEADER
        if start + size > len(raw):
            raise DebFormatError(f"{where}: ar member {name!r} is truncated: {size} bytes "
                                 f"declared, {len(raw) - start} left in the file")
        members.append((name, raw[start:start + size]))
        pos = start + size + (size & 1)  # members are padded to an even length
    return members


def _decompress(name: str, body: memoryview, where: str) -> bytes:
    """The uncompressed ``data.tar`` from the member ``name`` (``data.tar[.xz|.gz|.bz2]``)."""
    suffix = name[len("data.tar"):]
    try:
        if suffix == "":
            return bytes(body)
        if suffix == ".xz":
            return lzma.decompress(body, format=lzma.FORMAT_XZ)
        if suffix == ".lzma":
            return lzma.decompress(body, format=lzma.FORMAT_ALONE)
        if suffix == ".gz":
            return zlib.decompress(body, wbits=31)
        if suffix == ".bz2":
            return bz2.decompress(body)
    except (lzma.LZMAError, zlib.error, OSError, EOFError, ValueError) as e:
        raise DebFormatError(f"{where}: {name} is not a valid {suffix[1:]} stream "
                             f"({type(e).__name__}: {e})") from None
    if suffix == ".zst":
        raise DebFormatError(f"{where}: {name} is compressed with zstd, which is not supported "
                             "(Python's standard library has no zstd); repack the .deb with xz, "
                             "or install the package and read its installed files")
    raise DebFormatError(f"{where}: unknown compression of {name!r} (expected data.tar, "
                         "data.tar.xz, data.tar.gz or data.tar.bz2)")


def deb_members(deb: bytes | bytearray | memoryview | str | os.PathLike,
                wanted: Iterable[str]) -> dict[str, bytes]:
    """The files ``wanted`` from the ``data.tar`` of a Debian package, read in memory.

    ``deb``: the ``.deb``'s bytes, or the path of the file. ``wanted``: paths inside the package
    as its ``data.tar`` lists them, with or without a leading ``./`` or ``/``
    (``"usr/share/dictd/freedict-eng-spa.index"``). Returns ``{name as given: content}``.

    The ``ar`` archive is parsed (magic ``!<arch>\\n``, 60-byte headers, members padded to even
    lengths); its ``data.tar`` member may be uncompressed or xz, gzip or bzip2 compressed.

    Raises :class:`DebFormatError` (a ``ValueError``) for a file that is not an ``ar`` archive,
    a truncated header or member, a bad size field, no (or more than one) ``data.tar`` member,
    a ``data.tar.zst`` (zstd is not supported), a corrupt compressed stream or tar, and a wanted
    file that is missing or not a regular file (naming it).
    """
    if isinstance(deb, (bytes, bytearray, memoryview)):
        raw, where = memoryview(deb).cast("B"), "the .deb"
    elif isinstance(deb, (str, os.PathLike)):
        raw, where = memoryview(Path(deb).read_bytes()), str(deb)
    else:
        raise TypeError(f"deb must be bytes or a path, got {type(deb).__name__}")
    if isinstance(wanted, str):
        raise TypeError("wanted must be an iterable of member names, got a single str "
                        "(write [name])")
    wanted = list(wanted)
    for name in wanted:
        if not isinstance(name, str) or not _normalise(name):
            raise ValueError(f"wanted must hold non-empty member paths, got {name!r}")
    data = [(n, body) for n, body in _ar_members(raw, where) if n.startswith("data.tar")]
    if not data:
        raise DebFormatError(f"{where}: no data.tar member (a .deb holds debian-binary, "
                             "control.tar.* and data.tar.*)")
    if len(data) > 1:
        raise DebFormatError(f"{where}: more than one data.tar member: "
                             f"{', '.join(n for n, _ in data)}")
    name, body = data[0]
    tar_bytes = _decompress(name, body, where)
    paths = {_normalise(w) for w in wanted}
    found: dict[str, bytes] = {}
    not_regular: list[str] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for member in tar:
                path = _normalise(member.name)
                if path not in paths or path in found:
                    continue
                if not member.isfile():
                    not_regular.append(path)
                    continue
                f = tar.extractfile(member)
                content = f.read() if f is not None else b""
                if len(content) != member.size:
                    raise DebFormatError(f"{where}: {name}: member {path} is truncated "
                                         f"({len(content)} of {member.size} bytes)")
                found[path] = content
    except DebFormatError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError, UnicodeError) as e:
        raise DebFormatError(f"{where}: {name} is not a readable tar archive "
                             f"({type(e).__name__}: {e})") from None
    missing = sorted(paths - found.keys())
    if missing:
        detail = "; ".join(m + (" (not a regular file)" if m in not_regular else "")
                           for m in missing)
        raise DebFormatError(f"{where}: {name} has no file {detail}")
    return {w: found[_normalise(w)] for w in wanted}


@dataclass(frozen=True)
class DebianSource:
    """A Debian package holding data files, and the pins to check them against.

    Fields:

    * ``package``: the Debian package name (``"sword-text-kjv"``), for the ``apt-get`` hint;
    * ``deb``: the pinned ``.deb`` (:class:`~papernotes_core.data.fetch.Remote`, its URLs the
      pool and ``snapshot.debian.org``);
    * ``files``: ``{path inside the package, without leading "/": SHA-256}`` for each file used
      (``"usr/share/dictd/freedict-eng-spa.index"``);
    * ``root``: where the installed files are looked up (``/``; tests point it elsewhere).
    """

    package: str
    deb: Remote
    files: Mapping[str, str]
    root: Path = field(default=Path("/"))

    def __post_init__(self) -> None:
        if not isinstance(self.package, str) or not self.package:
            raise ValueError(f"DebianSource.package must be a package name, got {self.package!r}")
        if not isinstance(self.deb, Remote):
            raise TypeError(f"DebianSource.deb must be a Remote, got {type(self.deb).__name__}")
        files = dict(self.files)
        if not files:
            raise ValueError("DebianSource.files must name at least one file")
        for path, sha in files.items():
            if not isinstance(path, str) or path != _normalise(path) or not path:
                raise ValueError(f"DebianSource.files keys must be relative paths inside the "
                                 f"package (no leading '/' or './'), got {path!r}")
            if not isinstance(sha, str) or len(sha) != 64 or any(
                    c not in "0123456789abcdef" for c in sha):
                raise ValueError(f"DebianSource.files[{path!r}] must be a SHA-256 (64 lowercase "
                                 f"hex digits), got {sha!r}")
        object.__setattr__(self, "files", files)
        object.__setattr__(self, "root", Path(self.root))

    @property
    def hint(self) -> str:
        """How to install the package (for error messages)."""
        return f"apt-get install {self.package} (as root)"


def _from_installed(source: DebianSource) -> tuple[dict[str, bytes] | None, list[tuple[str, str]]]:
    """Every file of ``source`` as installed, verified; or ``None`` and why not."""
    found: dict[str, bytes] = {}
    failures: list[tuple[str, str]] = []
    absent = [source.root / path for path in source.files
              if not (source.root / path).exists()]
    if len(absent) == len(source.files):
        where = ", ".join(str(p) for p in absent)
        return None, [(f"installed package {source.package}",
                       f"not installed (none of its files is there: {where})")]
    for path, sha in source.files.items():
        where = source.root / path
        try:
            content = where.read_bytes()
        except FileNotFoundError:
            failures.append((f"installed file {where}", "not there (the package is partly "
                                                        "installed?)"))
            continue
        except OSError as e:
            failures.append((f"installed file {where}", f"unreadable ({e})"))
            continue
        actual = sha256_bytes(content)
        if actual != sha:
            failures.append((f"installed file {where}", f"SHA-256 is {actual}, expected {sha} "
                                                        "(another version of the package?)"))
            continue
        found[path] = content
    return (None if failures else found), failures


def read_debian_files(source: DebianSource, *, cache_dir: Path | str | None = None,
                      download: bool = True, timeout: float = 60.0) -> dict[str, bytes]:
    """The contents of ``source.files``, each verified by its SHA-256: ``{path: bytes}``.

    Sources, in order: the installed files (all present and matching their pins), else the
    ``.deb`` (``source.deb``) through :func:`~papernotes_core.data.fetch.fetch` (the cache under
    ``cache_dir``, then a download unless ``download`` is false or ``PAPERNOTES_OFFLINE`` is
    set; ``timeout`` in seconds), verified by its SHA-256, then its members extracted in memory
    and each checked against its pin.

    Raises :class:`~papernotes_core.data.fetch.DataUnavailableError` (a ``FileNotFoundError``)
    when neither works, listing every source tried and naming ``apt-get install <package>``.
    """
    if not isinstance(source, DebianSource):
        raise TypeError(f"source must be a DebianSource, got {type(source).__name__}")
    found, attempts = _from_installed(source)
    if found is not None:
        return found
    hints = [source.hint]
    try:
        path = Path(fetch(source.deb, cache_dir=cache_dir, download=download, timeout=timeout))
    except DataUnavailableError as e:
        hints += [hint for hint in e.hints if hint not in hints]
        raise DataUnavailableError(source.deb, attempts + list(e.attempts), hints) from None
    raw = path.read_bytes()
    actual = sha256_bytes(raw)
    what = f"the .deb {path}"
    if actual != source.deb.sha256:  # changed between fetch() and now: not opened
        attempts.append((what, f"SHA-256 is {actual}, expected {source.deb.sha256} (it changed "
                               "after it was verified?); not opened"))
        raise DataUnavailableError(source.deb, attempts, hints)
    try:
        members = deb_members(raw, list(source.files))
    except DebFormatError as e:
        attempts.append((what, f"verified, but unreadable: {e}"))
        raise DataUnavailableError(source.deb, attempts, hints) from None
    for member, content in members.items():
        actual = sha256_bytes(content)
        if actual != source.files[member]:
            attempts.append((what, f"verified, but its member {member} has SHA-256 {actual}, "
                                   f"expected {source.files[member]}"))
            raise DataUnavailableError(source.deb, attempts, hints)
    return members
