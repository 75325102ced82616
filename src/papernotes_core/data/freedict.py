"""FreeDict bilingual dictionaries in the dictd format: English to Spanish.

The FreeDict English-Spanish dictionary (edition 0.3.1, 5,907 headwords, GPL-2.0-or-later) as
Debian packages it: ``dict-freedict-eng-spa`` 2022.04.21-1, whose
``/usr/share/dictd/freedict-eng-spa.index`` and ``.dict.dz`` are read by
:func:`read_dictd`. The two files come, each verified by its pinned SHA-256, from the installed
package or else from the pinned ``.deb`` (the cache, then a download from Debian's pool or
snapshot.debian.org); see :mod:`~papernotes_core.data.debian`.

The dictd format: the ``.index`` has one line per entry, ``headword<TAB>offset<TAB>length``,
sorted, the numbers written in dictd's base 64 (digits ``A-Z a-z 0-9 + /`` for 0..63, most
significant first: ``"BG"`` is 70); they locate the entry's UTF-8 text in the ``.dict`` file,
which the ``.dict.dz`` holds compressed with dictzip, a gzip that any gzip reader decompresses.
Entries whose headword starts with ``00database`` (``00databaseinfo``, ``00databaseurl``...) are
metadata. An entry reads::

    light /lait/
    1. encender
    2. claro
    ...

or ``dog /dɔg/\\nperro\\n``: the headword and its pronunciation between slashes, then the
translations, comma-separated, one numbered line per sense when there are several.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path

from .debian import DebianSource, deb_remote, read_debian_files

__all__ = [
    "FREEDICT_PAIRS",
    "DictEntry",
    "DictFormatError",
    "FreeDictSource",
    "load_freedict",
    "read_dictd",
    "translation_pairs",
]

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(_B64)}
_METADATA = ("00database", "00-database")
_FIRST_LINE = re.compile(r"(?P<head>.*?)(?:\s*/(?P<pron>[^/]*)/)?\s*")
_SENSE = re.compile(r"\d+\.\s*")
_ONE_WORD = re.compile(r"[^\W\d_]+")


class DictFormatError(ValueError):
    """A dictd ``.index`` or ``.dict`` file is malformed: the message says where and how."""


@dataclass(frozen=True)
class DictEntry:
    """One dictionary entry.

    ``headword`` as the entry writes it (``"dog"``, ``"African woman"``); ``pronunciation``:
    the IPA between slashes on its first line, or ``None``; ``translations``: every translation
    of every sense, in order, without duplicates (``("encender", "claro", "alumbrar", ...)``);
    ``raw``: the entry's whole text.
    """

    headword: str
    pronunciation: str | None
    translations: tuple[str, ...]
    raw: str


def _b64(digits: str, line_no: int, what: str) -> int:
    if not digits:
        raise DictFormatError(f"index line {line_no}: empty {what}")
    value = 0
    for c in digits:
        if c not in _B64_VALUE:
            raise DictFormatError(f"index line {line_no}: {what} {digits!r} has {c!r}, not a "
                                  "dictd base-64 digit (A-Z a-z 0-9 + /)")
        value = value * 64 + _B64_VALUE[c]
    return value


def _parse_entry(index_headword: str, text: str) -> DictEntry:
    lines = text.split("\n")
    first = _FIRST_LINE.fullmatch(lines[0].strip())
    headword = first.group("head").strip() if first else ""
    pronunciation = first.group("pron") if first else None
    translations: list[str] = []
    for line in lines[1:]:
        line = line.strip()
        sense = _SENSE.match(line)
        if sense:
            line = line[sense.end():]
        for item in line.split(","):
            item = " ".join(item.split())
            if item and item not in translations:
                translations.append(item)
    return DictEntry(headword or index_headword, pronunciation, tuple(translations), text)


def read_dictd(index: bytes, data: bytes) -> list[DictEntry]:
    """The entries of a dictd dictionary, in index order, metadata (``00database...``) left out.

    ``index``: the ``.index`` file's bytes (UTF-8 lines ``headword<TAB>offset<TAB>length``, the
    numbers in dictd's base 64). ``data``: the ``.dict.dz`` (dictzip, read as gzip) or the
    uncompressed ``.dict``, told apart by the gzip magic number.

    Raises :class:`DictFormatError` (a ``ValueError``) for data that starts like a gzip but is
    not a valid one, an index that is not UTF-8, a line without exactly three tab-separated
    fields or with an empty headword, a bad base-64 digit, an entry outside the data, and an
    entry that is not valid UTF-8.
    """
    for name, value in (("index", index), ("data", data)):
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
    data = bytes(data)
    if data[:2] == b"\x1f\x8b":
        try:
            d = zlib.decompressobj(wbits=31)
            text = d.decompress(data)
            if not d.eof:
                raise DictFormatError("the .dict.dz is a truncated gzip stream")
            data = text
        except zlib.error as e:
            raise DictFormatError(f"the .dict.dz is not a valid gzip stream: {e}") from None
    try:
        index_text = bytes(index).decode("utf-8")
    except UnicodeDecodeError as e:
        raise DictFormatError(f"the index is not valid UTF-8: {e}") from None
    entries = []
    for line_no, line in enumerate(index_text.split("\n"), 1):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not fields[0]:
            raise DictFormatError(f"index line {line_no}: expected 'headword<TAB>offset<TAB>"
                                  f"length', got {line[:80]!r}")
        headword = fields[0]
        offset = _b64(fields[1], line_no, "offset")
        length = _b64(fields[2], line_no, "length")
        if offset + length > len(data):
            raise DictFormatError(f"index line {line_no} ({headword!r}): bytes "
                                  f"{offset}..{offset + length} lie outside the data "
                                  f"({len(data)} bytes)")
        if headword.startswith(_METADATA):
            continue
        try:
            text = data[offset:offset + length].decode("utf-8")
        except UnicodeDecodeError as e:
            raise DictFormatError(f"index line {line_no} ({headword!r}): the entry at bytes "
                                  f"{offset}..{offset + length} is not valid UTF-8: "
                                  f"{e}") from None
        entries.append(_parse_entry(headword, text))
    return entries


@dataclass(frozen=True)
class FreeDictSource:
    """A FreeDict dictionary: its language pair, the ``.index``/``.dict.dz`` paths inside the
    Debian package, and the :class:`~papernotes_core.data.debian.DebianSource` that pins them."""

    pair: str
    index_path: str
    data_path: str
    source: DebianSource

    def __post_init__(self) -> None:
        for path in (self.index_path, self.data_path):
            if path not in self.source.files:
                raise ValueError(f"FreeDictSource {self.pair}: source.files has no pin for "
                                 f"{path}")


def _freedict(pair: str, deb_url: str, deb_sha256: str, deb_sha1: str, deb_size: int,
              index_sha256: str, data_sha256: str) -> FreeDictSource:
    package = f"dict-freedict-{pair}"
    index_path = f"usr/share/dictd/freedict-{pair}.index"
    data_path = f"usr/share/dictd/freedict-{pair}.dict.dz"
    deb = deb_remote(deb_url, package=package, sha256=deb_sha256, sha1=deb_sha1, size=deb_size)
    return FreeDictSource(pair, index_path, data_path,
                          DebianSource(package, deb, {index_path: index_sha256,
                                                      data_path: data_sha256}))


#: The dictionaries :func:`load_freedict` knows, by language pair. Pins: the installed files
#: (the same as the ``.deb``'s members) and the ``.deb``.
FREEDICT_PAIRS: dict[str, FreeDictSource] = {
    "eng-spa": _freedict(
        "eng-spa",
        "http://deb.debian.org/debian/pool/main/f/freedict/"
        "dict-freedict-eng-spa_2022.04.21-1_all.deb",
        "1b6a624048eddad805dcf0473a74e53420fbe391e7f2638090bddf625e9ad2b6",
        "10e2bf262d451b633dd0944d0a8096255372c924", 136_204,
        index_sha256="1a74493522ebcfa3ff93e4e0d4f16ffed3afc4a64a8192f419b77d14789ac718",
        data_sha256="1e33c230e4c1ba56a3ad48e50d0d52ea0ffd41b2e6d51880457cb6d1fcb6f2e3"),
}


def load_freedict(pair: str | FreeDictSource = "eng-spa", *,
                  cache_dir: Path | str | None = None, download: bool = True,
                  timeout: float = 60.0) -> list[DictEntry]:
    """The entries of a FreeDict dictionary (``"eng-spa"``: English to Spanish, 5,907 entries).

    ``pair``: a key of :data:`FREEDICT_PAIRS` (or a :class:`FreeDictSource`). The ``.index`` and
    ``.dict.dz`` come, each verified by its SHA-256, from the installed Debian package
    (``dict-freedict-eng-spa``) or else from the pinned ``.deb``: the cache (``cache_dir``,
    default :func:`~papernotes_core.runtime.data_dir`), then a download from Debian's pool or
    snapshot.debian.org unless ``download`` is false or ``PAPERNOTES_OFFLINE`` is set
    (``timeout`` in seconds).

    Returns :func:`read_dictd`'s entries. Raises ``KeyError`` for an unknown pair (listing the
    known ones), :class:`~papernotes_core.data.fetch.DataUnavailableError` when no source works
    (listing what was tried and the ``apt-get install`` line), :class:`DictFormatError` for
    malformed files.
    """
    if isinstance(pair, str):
        if pair not in FREEDICT_PAIRS:
            raise KeyError(f"unknown FreeDict pair {pair!r}: known pairs are "
                           f"{', '.join(FREEDICT_PAIRS)}")
        pair = FREEDICT_PAIRS[pair]
    elif not isinstance(pair, FreeDictSource):
        raise TypeError(f"pair must be a language pair or a FreeDictSource, got "
                        f"{type(pair).__name__}")
    files = read_debian_files(pair.source, cache_dir=cache_dir, download=download,
                              timeout=timeout)
    return read_dictd(files[pair.index_path], files[pair.data_path])


def _norm(text: str) -> str:
    return unicodedata.normalize("NFC", text.lower())


def translation_pairs(entries, *, single_words: bool = True) -> list[tuple[str, str]]:
    """``(source word, translation)`` pairs from dictionary entries: lower-cased (NFC),
    deduplicated, sorted.

    With ``single_words`` (the default), only pairs whose headword and translation are each one
    word of letters (``[^\\W\\d_]+``, the words :func:`~papernotes_core.data.sword.tokenize`
    makes) are kept: ``("dog", "perro")``, not ``("african woman", "africana")`` nor
    ``("a", "dentro de")``. With ``single_words=False``, every (headword, translation) pair.

    Known defects of the FreeDict English-Spanish data, kept as they are (a chapter uses a
    translation model to find such dictionary errors), with the pronunciation on each
    :class:`DictEntry` to inspect them:

    * many multi-word headwords were cut to their first word, in the index and in the entry
      text alike: the entry ``"give /givʌp/\\nabandonar, ceder"`` is "give up" (the
      pronunciation shows it), and there are fifteen entries "give"; so ``("give",
      "abandonar")`` is a pair here;
    * some multi-word translations lost their spaces: ``"tocarlacampanilla"`` (tocar la
      campanilla, under "ring" and "give"), ``"aldía"``, ``"unmomento"``; they pass as one
      word.
    """
    if not isinstance(single_words, bool):
        raise TypeError(f"single_words must be a bool, got {type(single_words).__name__}")
    pairs: set[tuple[str, str]] = set()
    for entry in entries:
        if not isinstance(entry, DictEntry):
            raise TypeError(f"entries must hold DictEntry objects, got {type(entry).__name__}")
        source = _norm(entry.headword)
        if single_words and not _ONE_WORD.fullmatch(source):
            continue
        for translation in entry.translations:
            target = _norm(translation)
            if single_words and not _ONE_WORD.fullmatch(target):
                continue
            pairs.add((source, target))
    return sorted(pairs)
