"""SWORD Bible modules: the King James Version and the Reina-Valera 1909, verse by verse.

Two public-domain Bibles in the SWORD library's ``zText`` format, as Debian packages them:

* ``engKJV2006eb``: the King James Version (1769 text), Debian ``sword-text-kjv`` 14.3-1;
* ``spaRV1909eb``: the Spanish Reina-Valera 1909, Debian ``sword-text-sparv`` 2.60-1.

Both use the KJV versification (their ``.conf`` files say ``Versification=KJV``), so entry
``i`` of one module is the same verse *slot* as entry ``i`` of the other, and
:func:`aligned_verses` pairs them. What the slots hold is not always the same verse, though.
The KJV module has text in all 31,102 slots; the Reina-Valera module leaves 18 empty (Num
12:16, 29:40; 1 Sam 23:29; 2 Sam 20:26; 2 Chr 33:25; Job 35:16, 38:39-41, 40:20-24; Hos 11:12;
Jonah 1:17; Acts 19:41; 2 Cor 13:14), which leaves **31,084 aligned verses**. It follows the
Hebrew chapter and verse divisions in places and squeezes them into the KJV's slots, so whole
chapters are shifted by a verse or more: comparing the Strong's numbers of the two modules, about
170 of the aligned pairs hold neighbouring verses rather than the same one (Num 13 and 30,
1 Sam 24, 1 Kgs 22, 1 Chr 21, 2 Chr 33, Job 39-40, Hos 12, Jonah 2; the slot at the end of
such a chapter holds two verses, e.g. its Job 39:30 holds KJV Job 39:27-40:5). A parallel
corpus made from the slots therefore has a little noise.

The files (``{ot,nt}.{bzs,bzv,bzz}`` under ``/usr/share/sword/modules/texts/ztext/<module>/``)
come, each verified by its pinned SHA-256, from the installed Debian package or else from the
pinned ``.deb`` (the cache, then a download from Debian's pool or snapshot.debian.org); see
:mod:`~papernotes_core.data.debian`.

The text is OSIS XML. :func:`strip_markup` turns a verse entry into plain text;
:func:`tokenize` into lower-case words.
"""

from __future__ import annotations

import html
import re
import struct
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from .debian import DebianSource, deb_remote, read_debian_files

__all__ = [
    "KJV_BOOKS",
    "N_OT_BOOKS",
    "N_VERSES",
    "SWORD_MODULES",
    "Bible",
    "SwordFormatError",
    "SwordModule",
    "TESTAMENT_ENTRIES",
    "VerseKey",
    "aligned_verses",
    "bible_from_files",
    "load_bible",
    "read_ztext",
    "strip_markup",
    "tokenize",
    "verse_index",
]

#: The KJV versification (SWORD's ``canon.h``, as pysword 0.2.8 tabulates it):
#: ``(OSIS book id, English name, verses in each chapter)`` for the 39 Old Testament books,
#: then the 27 of the New Testament; 1,189 chapters, 31,102 verses.
KJV_BOOKS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    # Old Testament
    ('Gen', 'Genesis', (
        31, 25, 24, 26, 32, 22, 24, 22, 29, 32, 32, 20, 18, 24, 21, 16, 27, 33, 38, 18, 34, 24, 20,
        67, 34, 35, 46, 22, 35, 43, 55, 32, 20, 31, 29, 43, 36, 30, 23, 23, 57, 38, 34, 34, 28, 34,
        31, 22, 33, 26
    )),
    ('Exod', 'Exodus', (
        22, 25, 22, 31, 23, 30, 25, 32, 35, 29, 10, 51, 22, 31, 27, 36, 16, 27, 25, 26, 36, 31, 33,
        18, 40, 37, 21, 43, 46, 38, 18, 35, 23, 35, 35, 38, 29, 31, 43, 38
    )),
    ('Lev', 'Leviticus', (
        17, 16, 17, 35, 19, 30, 38, 36, 24, 20, 47, 8, 59, 57, 33, 34, 16, 30, 37, 27, 24, 33, 44,
        23, 55, 46, 34
    )),
    ('Num', 'Numbers', (
        54, 34, 51, 49, 31, 27, 89, 26, 23, 36, 35, 16, 33, 45, 41, 50, 13, 32, 22, 29, 35, 41, 30,
        25, 18, 65, 23, 31, 40, 16, 54, 42, 56, 29, 34, 13
    )),
    ('Deut', 'Deuteronomy', (
        46, 37, 29, 49, 33, 25, 26, 20, 29, 22, 32, 32, 18, 29, 23, 22, 20, 22, 21, 20, 23, 30, 25,
        22, 19, 19, 26, 68, 29, 20, 30, 52, 29, 12
    )),
    ('Josh', 'Joshua', (
        18, 24, 17, 24, 15, 27, 26, 35, 27, 43, 23, 24, 33, 15, 63, 10, 18, 28, 51, 9, 45, 34, 16,
        33
    )),
    ('Judg', 'Judges', (
        36, 23, 31, 24, 31, 40, 25, 35, 57, 18, 40, 15, 25, 20, 20, 31, 13, 31, 30, 48, 25
    )),
    ('Ruth', 'Ruth', (22, 23, 18, 22)),
    ('1Sam', 'I Samuel', (
        28, 36, 21, 22, 12, 21, 17, 22, 27, 27, 15, 25, 23, 52, 35, 23, 58, 30, 24, 42, 15, 23, 29,
        22, 44, 25, 12, 25, 11, 31, 13
    )),
    ('2Sam', 'II Samuel', (
        27, 32, 39, 12, 25, 23, 29, 18, 13, 19, 27, 31, 39, 33, 37, 23, 29, 33, 43, 26, 22, 51, 39,
        25
    )),
    ('1Kgs', 'I Kings', (
        53, 46, 28, 34, 18, 38, 51, 66, 28, 29, 43, 33, 34, 31, 34, 34, 24, 46, 21, 43, 29, 53
    )),
    ('2Kgs', 'II Kings', (
        18, 25, 27, 44, 27, 33, 20, 29, 37, 36, 21, 21, 25, 29, 38, 20, 41, 37, 37, 21, 26, 20, 37,
        20, 30
    )),
    ('1Chr', 'I Chronicles', (
        54, 55, 24, 43, 26, 81, 40, 40, 44, 14, 47, 40, 14, 17, 29, 43, 27, 17, 19, 8, 30, 19, 32,
        31, 31, 32, 34, 21, 30
    )),
    ('2Chr', 'II Chronicles', (
        17, 18, 17, 22, 14, 42, 22, 18, 31, 19, 23, 16, 22, 15, 19, 14, 19, 34, 11, 37, 20, 12, 21,
        27, 28, 23, 9, 27, 36, 27, 21, 33, 25, 33, 27, 23
    )),
    ('Ezra', 'Ezra', (11, 70, 13, 24, 17, 22, 28, 36, 15, 44)),
    ('Neh', 'Nehemiah', (11, 20, 32, 23, 19, 19, 73, 18, 38, 39, 36, 47, 31)),
    ('Esth', 'Esther', (22, 23, 15, 17, 14, 14, 10, 17, 32, 3)),
    ('Job', 'Job', (
        22, 13, 26, 21, 27, 30, 21, 22, 35, 22, 20, 25, 28, 22, 35, 22, 16, 21, 29, 29, 34, 30, 17,
        25, 6, 14, 23, 28, 25, 31, 40, 22, 33, 37, 16, 33, 24, 41, 30, 24, 34, 17
    )),
    ('Ps', 'Psalms', (
        6, 12, 8, 8, 12, 10, 17, 9, 20, 18, 7, 8, 6, 7, 5, 11, 15, 50, 14, 9, 13, 31, 6, 10, 22, 12,
        14, 9, 11, 12, 24, 11, 22, 22, 28, 12, 40, 22, 13, 17, 13, 11, 5, 26, 17, 11, 9, 14, 20, 23,
        19, 9, 6, 7, 23, 13, 11, 11, 17, 12, 8, 12, 11, 10, 13, 20, 7, 35, 36, 5, 24, 20, 28, 23,
        10, 12, 20, 72, 13, 19, 16, 8, 18, 12, 13, 17, 7, 18, 52, 17, 16, 15, 5, 23, 11, 13, 12, 9,
        9, 5, 8, 28, 22, 35, 45, 48, 43, 13, 31, 7, 10, 10, 9, 8, 18, 19, 2, 29, 176, 7, 8, 9, 4, 8,
        5, 6, 5, 6, 8, 8, 3, 18, 3, 3, 21, 26, 9, 8, 24, 13, 10, 7, 12, 15, 21, 10, 20, 14, 9, 6
    )),
    ('Prov', 'Proverbs', (
        33, 22, 35, 27, 23, 35, 27, 36, 18, 32, 31, 28, 25, 35, 33, 33, 28, 24, 29, 30, 31, 29, 35,
        34, 28, 28, 27, 28, 27, 33, 31
    )),
    ('Eccl', 'Ecclesiastes', (18, 26, 22, 16, 20, 12, 29, 17, 18, 20, 10, 14)),
    ('Song', 'Song of Solomon', (17, 17, 11, 16, 16, 13, 13, 14)),
    ('Isa', 'Isaiah', (
        31, 22, 26, 6, 30, 13, 25, 22, 21, 34, 16, 6, 22, 32, 9, 14, 14, 7, 25, 6, 17, 25, 18, 23,
        12, 21, 13, 29, 24, 33, 9, 20, 24, 17, 10, 22, 38, 22, 8, 31, 29, 25, 28, 28, 25, 13, 15,
        22, 26, 11, 23, 15, 12, 17, 13, 12, 21, 14, 21, 22, 11, 12, 19, 12, 25, 24
    )),
    ('Jer', 'Jeremiah', (
        19, 37, 25, 31, 31, 30, 34, 22, 26, 25, 23, 17, 27, 22, 21, 21, 27, 23, 15, 18, 14, 30, 40,
        10, 38, 24, 22, 17, 32, 24, 40, 44, 26, 22, 19, 32, 21, 28, 18, 16, 18, 22, 13, 30, 5, 28,
        7, 47, 39, 46, 64, 34
    )),
    ('Lam', 'Lamentations', (22, 22, 66, 22, 22)),
    ('Ezek', 'Ezekiel', (
        28, 10, 27, 17, 17, 14, 27, 18, 11, 22, 25, 28, 23, 23, 8, 63, 24, 32, 14, 49, 32, 31, 49,
        27, 17, 21, 36, 26, 21, 26, 18, 32, 33, 31, 15, 38, 28, 23, 29, 49, 26, 20, 27, 31, 25, 24,
        23, 35
    )),
    ('Dan', 'Daniel', (21, 49, 30, 37, 31, 28, 28, 27, 27, 21, 45, 13)),
    ('Hos', 'Hosea', (11, 23, 5, 19, 15, 11, 16, 14, 17, 15, 12, 14, 16, 9)),
    ('Joel', 'Joel', (20, 32, 21)),
    ('Amos', 'Amos', (15, 16, 15, 13, 27, 14, 17, 14, 15)),
    ('Obad', 'Obadiah', (21,)),
    ('Jonah', 'Jonah', (17, 10, 10, 11)),
    ('Mic', 'Micah', (16, 13, 12, 13, 15, 16, 20)),
    ('Nah', 'Nahum', (15, 13, 19)),
    ('Hab', 'Habakkuk', (17, 20, 19)),
    ('Zeph', 'Zephaniah', (18, 15, 20)),
    ('Hag', 'Haggai', (15, 23)),
    ('Zech', 'Zechariah', (21, 13, 10, 14, 11, 15, 14, 23, 17, 12, 17, 14, 9, 21)),
    ('Mal', 'Malachi', (14, 17, 18, 6)),
    # New Testament
    ('Matt', 'Matthew', (
        25, 23, 17, 25, 48, 34, 29, 34, 38, 42, 30, 50, 58, 36, 39, 28, 27, 35, 30, 34, 46, 46, 39,
        51, 46, 75, 66, 20
    )),
    ('Mark', 'Mark', (45, 28, 35, 41, 43, 56, 37, 38, 50, 52, 33, 44, 37, 72, 47, 20)),
    ('Luke', 'Luke', (
        80, 52, 38, 44, 39, 49, 50, 56, 62, 42, 54, 59, 35, 35, 32, 31, 37, 43, 48, 47, 38, 71, 56,
        53
    )),
    ('John', 'John', (
        51, 25, 36, 54, 47, 71, 53, 59, 41, 42, 57, 50, 38, 31, 27, 33, 26, 40, 42, 31, 25
    )),
    ('Acts', 'Acts', (
        26, 47, 26, 37, 42, 15, 60, 40, 43, 48, 30, 25, 52, 28, 41, 40, 34, 28, 41, 38, 40, 30, 35,
        27, 27, 32, 44, 31
    )),
    ('Rom', 'Romans', (32, 29, 31, 25, 21, 23, 25, 39, 33, 21, 36, 21, 14, 23, 33, 27)),
    ('1Cor', 'I Corinthians', (31, 16, 23, 21, 13, 20, 40, 13, 27, 33, 34, 31, 13, 40, 58, 24)),
    ('2Cor', 'II Corinthians', (24, 17, 18, 18, 21, 18, 16, 24, 15, 18, 33, 21, 14)),
    ('Gal', 'Galatians', (24, 21, 29, 31, 26, 18)),
    ('Eph', 'Ephesians', (23, 22, 21, 32, 33, 24)),
    ('Phil', 'Philippians', (30, 30, 21, 23)),
    ('Col', 'Colossians', (29, 23, 25, 18)),
    ('1Thess', 'I Thessalonians', (10, 20, 13, 18, 28)),
    ('2Thess', 'II Thessalonians', (12, 17, 18)),
    ('1Tim', 'I Timothy', (20, 15, 16, 16, 25, 21)),
    ('2Tim', 'II Timothy', (18, 26, 17, 22)),
    ('Titus', 'Titus', (16, 15, 15)),
    ('Phlm', 'Philemon', (25,)),
    ('Heb', 'Hebrews', (14, 18, 19, 16, 14, 20, 28, 13, 28, 39, 40, 29, 25)),
    ('Jas', 'James', (27, 26, 18, 17, 20)),
    ('1Pet', 'I Peter', (25, 25, 22, 19, 14)),
    ('2Pet', 'II Peter', (21, 22, 18)),
    ('1John', 'I John', (10, 29, 24, 21, 21)),
    ('2John', 'II John', (13,)),
    ('3John', 'III John', (14,)),
    ('Jude', 'Jude', (25,)),
    ('Rev', 'Revelation of John', (
        20, 29, 22, 11, 14, 17, 17, 13, 21, 11, 19, 17, 18, 20, 8, 21, 18, 24, 21, 15, 27, 21
    )),
)

#: The number of books of the Old Testament (the first 39 of :data:`KJV_BOOKS`).
N_OT_BOOKS = 39
#: Verses in the KJV versification.
N_VERSES = 31_102

#: A verse: ``(OSIS book id, chapter, verse)``, chapter and verse counted from 1.
VerseKey = tuple[str, int, int]


def _layout() -> tuple[dict[str, tuple[str, int, tuple[int, ...]]], dict[str, int],
                       tuple[tuple[VerseKey, str, int], ...]]:
    """Each book's (testament, index of its heading, chapters), each testament's entry count,
    and every verse with its (testament, index), in canonical order."""
    books: dict[str, tuple[str, int, tuple[int, ...]]] = {}
    sizes: dict[str, int] = {}
    verses: list[tuple[VerseKey, str, int]] = []
    for testament, book_list in (("ot", KJV_BOOKS[:N_OT_BOOKS]), ("nt", KJV_BOOKS[N_OT_BOOKS:])):
        index = 2  # entries 0 and 1: the module and testament headers
        for osis, _, chapters in book_list:
            books[osis] = (testament, index, chapters)
            entry = index + 1  # after the book's heading
            for chapter, n in enumerate(chapters, 1):
                entry += 1  # the chapter's heading
                for verse in range(1, n + 1):
                    verses.append(((osis, chapter, verse), testament, entry))
                    entry += 1
            index += 1 + len(chapters) + sum(chapters)
        sizes[testament] = index
    return books, sizes, tuple(verses)


_BOOKS, TESTAMENT_ENTRIES, _VERSES = _layout()
assert len(_VERSES) == N_VERSES and len(KJV_BOOKS) == 66
_KEYS: tuple[VerseKey, ...] = tuple(key for key, _, _ in _VERSES)


def verse_index(book: str, chapter: int, verse: int) -> tuple[str, int]:
    """Where a verse is in a zText module of KJV versification: ``(testament, entry index)``.

    ``book`` is an OSIS id (``"Gen"``, ``"Ps"``, ``"1John"``: the first field of
    :data:`KJV_BOOKS`); ``chapter`` and ``verse`` count from 1. The testament is ``"ot"`` or
    ``"nt"``; the index is the entry's position in that testament's ``.bzv``.

    Layout (SWORD's, as pysword reads it): in each testament entries 0 and 1 are headers and
    the first book's heading is entry 2; a book takes ``1 + chapters + verses`` entries (its
    heading, then for each chapter a heading followed by the chapter's verses). So the index is
    ``book_start + (verses of the earlier chapters) + chapter + verse``, where ``book_start`` is
    2 plus the sizes of the testament's earlier books: Genesis 1:1 is ``("ot", 4)``, Genesis 2:1
    is ``("ot", 36)``, Matthew 1:1 is ``("nt", 4)``.

    Raises ``KeyError`` for an unknown book (listing the OSIS ids), ``ValueError`` for a chapter
    or verse out of range (naming the valid range), ``TypeError`` for non-int numbers.
    """
    if not isinstance(book, str):
        raise TypeError(f"book must be an OSIS book id (str), got {type(book).__name__}")
    if book not in _BOOKS:
        raise KeyError(f"unknown book {book!r}: expected an OSIS id of the KJV versification, "
                       f"one of {', '.join(_BOOKS)}")
    for name, value in (("chapter", chapter), ("verse", verse)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    testament, start, chapters = _BOOKS[book]
    if not 1 <= chapter <= len(chapters):
        raise ValueError(f"{book} has chapters 1..{len(chapters)}, got chapter {chapter}")
    if not 1 <= verse <= chapters[chapter - 1]:
        raise ValueError(f"{book} {chapter} has verses 1..{chapters[chapter - 1]}, "
                         f"got verse {verse}")
    return testament, start + sum(chapters[:chapter - 1]) + chapter + verse


class SwordFormatError(ValueError):
    """A zText module's files are malformed: the message says which file, where and how."""


def _check_bytes(value, what: str) -> memoryview:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes, got {type(value).__name__}")
    return memoryview(value).cast("B")


def read_ztext(bzs: bytes, bzv: bytes, bzz: bytes, *, name: str = "ztext") -> list[str]:
    """Every entry of one testament of a SWORD zText module, as raw (OSIS) text.

    The three files: ``.bzz`` is a sequence of zlib-compressed blocks; ``.bzs`` holds one
    little-endian ``(offset, size, uncompressed size)`` triple of u32 per block (12 bytes);
    ``.bzv`` one ``(block, offset, size)`` record per entry (u32, u32, u16: 10 bytes), the entry
    being bytes ``offset .. offset + size`` of the decompressed block. A size of 0 is an empty
    entry (its block and offset are not looked at). Each block is decompressed once; entries
    are UTF-8. ``name`` (``"ot"``, ``"nt"``) is used in error messages.

    Returns the list of entries, in file order (index ``i`` = ``.bzv`` record ``i``).

    Raises :class:`SwordFormatError` (a ``ValueError``) with a precise message when a length is
    not a multiple of the record size, a block lies outside the ``.bzz``, a block is not a
    valid zlib stream or does not decompress to its stated size, an entry names a block that
    does not exist or lies outside its block, or an entry is not valid UTF-8.
    """
    bzs, bzv, bzz = (_check_bytes(v, f"{name}.{ext}") for v, ext in
                     ((bzs, "bzs"), (bzv, "bzv"), (bzz, "bzz")))
    if len(bzs) % 12:
        raise SwordFormatError(f"{name}.bzs is {len(bzs)} bytes, not a multiple of 12 (one "
                               "(offset, size, uncompressed size) u32 triple per block)")
    if len(bzv) % 10:
        raise SwordFormatError(f"{name}.bzv is {len(bzv)} bytes, not a multiple of 10 (one "
                               "(block u32, offset u32, size u16) record per entry)")
    blocks: list[bytes] = []
    for k, (offset, size, ucsize) in enumerate(struct.iter_unpack("<III", bzs)):
        if offset + size > len(bzz):
            raise SwordFormatError(f"{name}.bzs block {k}: bytes {offset}..{offset + size} lie "
                                   f"outside {name}.bzz ({len(bzz)} bytes)")
        d = zlib.decompressobj()
        try:
            text = d.decompress(bzz[offset:offset + size], ucsize + 1)
        except zlib.error as e:
            raise SwordFormatError(f"{name}.bzz block {k} (bytes {offset}..{offset + size}) is "
                                   f"not a valid zlib stream: {e}") from None
        if not d.eof and len(text) <= ucsize:
            raise SwordFormatError(f"{name}.bzz block {k} (bytes {offset}..{offset + size}) is "
                                   "a truncated zlib stream")
        if len(text) != ucsize:
            got = f"more than {ucsize}" if len(text) > ucsize else str(len(text))
            raise SwordFormatError(f"{name}.bzz block {k} decompresses to {got} bytes, but "
                                   f"{name}.bzs says {ucsize}")
        blocks.append(text)
    entries: list[str] = []
    for i, (block, offset, size) in enumerate(struct.iter_unpack("<IIH", bzv)):
        if size == 0:
            entries.append("")
            continue
        if block >= len(blocks):
            raise SwordFormatError(f"{name}.bzv entry {i} is in block {block}, but {name}.bzs "
                                   f"lists {len(blocks)} blocks (0..{len(blocks) - 1})")
        text = blocks[block]
        if offset + size > len(text):
            raise SwordFormatError(f"{name}.bzv entry {i}: bytes {offset}..{offset + size} lie "
                                   f"outside block {block} ({len(text)} bytes)")
        try:
            entries.append(text[offset:offset + size].decode("utf-8"))
        except UnicodeDecodeError as e:
            raise SwordFormatError(f"{name} entry {i} (block {block}, bytes "
                                   f"{offset}..{offset + size}) is not valid UTF-8: {e}") from None
    return entries


# OSIS markup -----------------------------------------------------------------------------------

_NOTE = re.compile(r"<note\b[^>]*/>|<note\b.*?(?:</note\s*>|\Z)", re.S)
_TAG = re.compile(r"<(/?)([A-Za-z][^\s/>]*)[^>]*?(/?)>")
_USFM = re.compile(r"\\\+?[a-z]+[0-9]*\*?")
_SPACE = re.compile(r"\s+")
#: Elements that separate words: replaced by a space, where inline ones (``w``,
#: ``transChange``, ``divineName``, ``q``, ``seg``, ``foreign``...) vanish without one.
_BLOCK = frozenset({"chapter", "div", "l", "lb", "lg", "milestone", "p", "title", "verse",
                    "list", "item", "table", "row", "cell", "head"})


def _tag(match: re.Match) -> str:
    _, name, empty = match.groups()
    return " " if empty or name in _BLOCK else ""


def strip_markup(raw: str) -> str:
    """The plain text of one OSIS verse entry of a SWORD module.

    * ``<note>...</note>`` is dropped with its content: the KJV module's 6,959 translators'
      footnotes (``<note placement="foot"><reference>1.4 </reference>the light from...: Heb.
      between the light...</note>``) sit inside the verses they annotate, and are not verse text;
    * ``<title>`` elements keep their text. In verse entries they are the psalm
      superscriptions (``canonical="true"``: Psalm 3:1 "A Psalm of David, when he fled from
      Absalom his son. LORD, how are they increased..."), the acrostic headings of Psalm 119
      ("ב BETH.") and the subscriptions after the epistles (Romans 16:27 "... Amen. Written to
      the Romans from Corinthus..."). The Reina-Valera module has the same three kinds of text
      as plain, unmarked verse text ("Salmo de David, cuando huía...", "BETH ¿Con qué...",
      "... Amén. Fué escrita de Corinto á los Romanos..."), so keeping them in the KJV keeps
      the two Bibles parallel (the KJV's Hebrew letters, "ב", are its only extra words);
    * every other tag is dropped and its text kept (``<w lemma="strong:...">``,
      ``<transChange>``, ``<divineName>``, ``<q>``, ``<seg>``, ``<foreign>``); empty and
      block-level tags (``<milestone/>``, ``<chapter/>``, ``<div/>``, ``<l/>``, ``<lb/>``,
      ``<lg/>``) become a space, inline ones nothing, so words never merge;
    * leftover USFM character markers that the module's converter failed to translate (``\\nd``
      before "LORD" in 27 KJV verses, ``\\+nd*``) are removed;
    * XML entities are unescaped; the KJV's paragraph sign ``¶`` (2,970 of them) is dropped;
      whitespace is collapsed to single spaces and stripped.

    Returns ``""`` for an entry with no text (an empty verse, or one holding only markup).
    """
    if not isinstance(raw, str):
        raise TypeError(f"raw must be a str, got {type(raw).__name__}")
    text = _NOTE.sub(" ", raw)
    text = _TAG.sub(_tag, text)
    text = _USFM.sub("", text)
    text = html.unescape(text).replace("\u00b6", " ")
    return _SPACE.sub(" ", text).strip()


_WORD = re.compile(r"[^\W\d_]+")


def tokenize(text: str) -> list[str]:
    """The words of ``text``: Unicode NFC, lower-cased, words as maximal runs of letters.

    A word is a run of letters (the regular expression ``[^\\W\\d_]+``): accents are kept
    (``á é í ó ú ñ ü`` are letters, and NFC makes a decomposed ``a`` + combining acute one
    letter ``á``), while digits, punctuation (``¿ ¡ , . ; :``), hyphens and apostrophes split
    words: ``"LORD’s"`` gives ``["lord", "s"]``, ``"Kirjath-jearim"`` gives
    ``["kirjath", "jearim"]``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _WORD.findall(unicodedata.normalize("NFC", text.lower()))


# Bibles ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Bible:
    """One SWORD module's text, verse by verse, in the KJV versification.

    ``module``: the module's name (``"engKJV2006eb"``). ``verses``: a read-only ordered mapping
    ``(OSIS book, chapter, verse) -> plain text`` (:func:`strip_markup`) holding every one of
    the 31,102 verses in canonical order, with ``""`` where the module has no text.
    ``len(bible)`` is 31,102.
    """

    module: str
    verses: Mapping[VerseKey, str]

    def __post_init__(self) -> None:
        verses = dict(self.verses)
        if tuple(verses) != _KEYS:
            raise ValueError(f"Bible.verses must hold the {N_VERSES} verses of the KJV "
                             f"versification in canonical order, got {len(verses)} keys "
                             "in another order or set")
        if not all(isinstance(v, str) for v in verses.values()):
            raise TypeError("Bible.verses values must be str")
        object.__setattr__(self, "verses", MappingProxyType(verses))

    def __len__(self) -> int:
        return len(self.verses)

    def verse(self, book: str, chapter: int, verse: int) -> str:
        """The text of one verse (``""`` if the module has none); errors as :func:`verse_index`."""
        verse_index(book, chapter, verse)
        return self.verses[(book, chapter, verse)]

    def tokens(self) -> list[list[str]]:
        """:func:`tokenize` of every verse, in canonical order (``[]`` for an empty verse)."""
        return [tokenize(text) for text in self.verses.values()]


@dataclass(frozen=True)
class SwordModule:
    """What a SWORD zText module is and where its files come from.

    ``name`` (``"engKJV2006eb"``), ``language`` (ISO 639-1), ``description``; ``data_path``:
    the module's folder inside the Debian package (``usr/share/sword/modules/texts/ztext/
    engKJV2006eb``); ``source``: the :class:`~papernotes_core.data.debian.DebianSource` (package,
    pinned ``.deb``, the SHA-256 of each of the six files ``<data_path>/{ot,nt}.{bzs,bzv,bzz}``).
    """

    name: str
    language: str
    description: str
    data_path: str
    source: DebianSource

    def __post_init__(self) -> None:
        missing = [p for p in self.files if p not in self.source.files]
        if missing:
            raise ValueError(f"SwordModule {self.name}: source.files has no pin for "
                             f"{', '.join(missing)}")

    @property
    def files(self) -> tuple[str, ...]:
        """The six files of the module, as paths inside the package."""
        return tuple(f"{self.data_path}/{t}.{ext}" for t in ("ot", "nt")
                     for ext in ("bzs", "bzv", "bzz"))


def _sword_module(name: str, language: str, description: str, package: str, deb_url: str,
                  deb_sha256: str, deb_sha1: str, deb_size: int,
                  pins: dict[str, str]) -> SwordModule:
    data_path = f"usr/share/sword/modules/texts/ztext/{name}"
    source = DebianSource(package, deb_remote(deb_url, package=package, sha256=deb_sha256,
                                              sha1=deb_sha1, size=deb_size),
                          {f"{data_path}/{file}": sha for file, sha in pins.items()})
    return SwordModule(name, language, description, data_path, source)


_POOL = "http://deb.debian.org/debian/pool/main/"

#: The two modules :func:`load_bible` knows, by name. The pins are the SHA-256 of the files as
#: Debian installs them (the same as the members of the ``.deb``) and of the ``.deb`` itself.
SWORD_MODULES: dict[str, SwordModule] = {
    "engKJV2006eb": _sword_module(
        "engKJV2006eb", "en", "King James Version (1769), with Strong's numbers",
        "sword-text-kjv", f"{_POOL}s/sword-text-kjv/sword-text-kjv_14.3-1_all.deb",
        "9f463f28ce665f6f528fc723179722bced880a4c5485f7a41bf742838315de57",
        "f1243f951811f073842b0d67fec8cddd90b40f2f", 2_800_476, {
            "nt.bzs": "e7f9bc653743217cdcdf95890a708f997a03af056161d84bb540efef79e4e638",
            "nt.bzv": "9d1daab8fb6ef43b53642cdd3276c1fa95ecfde08901bbb349be6378d1e1b972",
            "nt.bzz": "135b6e70af49372f3a82c5d9cc3c00278f38dbb2c12af74ea8d4b54c18d0cd56",
            "ot.bzs": "0d518856e8c6ceae0ca58bef944ba9a2809b5d4489cf81900853ad4af227510b",
            "ot.bzv": "b4fae54cb0b979b7f3f78fe6eaa94bad1f1d408eccb4a40410402b794b5c2f0f",
            "ot.bzz": "69f7e4e9b42ecef2e212ea957a388fccbeed1e3e333a38cf52e1b4064c6ce373",
        }),
    "spaRV1909eb": _sword_module(
        "spaRV1909eb", "es", "Reina-Valera 1909, with Strong's numbers",
        "sword-text-sparv", f"{_POOL}s/sword-text-sparv/sword-text-sparv_2.60-1_all.deb",
        "5c87f9b2bc97457e8a872f5bae7ea7ce59cb3de1dcee73e4d4740451863694cf",
        "ed6bfcbf1e7e296b7db0109a85332ed6bb6d143d", 2_722_332, {
            "nt.bzs": "b88dda1e9ab50d158262ab141af7823269acb19c581621683298be5b6e154d58",
            "nt.bzv": "a9583ba1b4c66dfdd8bfb6a0b1833bdaa02f9e2cc3465c5a802cf19cbc2f2533",
            "nt.bzz": "7baf6b1e798b193315fed89d0e84e8e1a033d035316f66c78d456f5fb8c87e20",
            "ot.bzs": "0e39106ae15a29cef56feac683f8482be380536a1c456e006867f9fa94c0338e",
            "ot.bzv": "0f23b1ebff5ecdd352a64feda5bb047cba27ce3624fa7b00717f763835d96e20",
            "ot.bzz": "daae868e179e6cc884ad2c9429a9dfaf9745d61caa6dbb9da2a8b24ec3c01337",
        }),
}


def bible_from_files(module: str, files: Mapping[str, bytes]) -> Bible:
    """A :class:`Bible` from a module's six files, ``{"ot.bzs": bytes, ..., "nt.bzz": bytes}``.

    Each testament must have the entry count of the KJV versification (24,115 for the Old
    Testament, 8,246 for the New), else :class:`SwordFormatError`; other format errors as
    :func:`read_ztext`.
    """
    verses: dict[VerseKey, str] = {}
    entries = {}
    for testament in ("ot", "nt"):
        try:
            parts = [files[f"{testament}.{ext}"] for ext in ("bzs", "bzv", "bzz")]
        except KeyError as e:
            raise ValueError(f"files has no {e.args[0]!r} (expected ot/nt "
                             ".bzs/.bzv/.bzz)") from None
        entries[testament] = read_ztext(*parts, name=f"{module} {testament}")
        if len(entries[testament]) != TESTAMENT_ENTRIES[testament]:
            raise SwordFormatError(
                f"{module} {testament}.bzv has {len(entries[testament])} entries; the KJV "
                f"versification needs {TESTAMENT_ENTRIES[testament]} (is it another "
                "versification, or not a Bible?)")
    for key, testament, index in _VERSES:
        verses[key] = strip_markup(entries[testament][index])
    return Bible(module, verses)


def load_bible(module: str | SwordModule = "engKJV2006eb", *,
               cache_dir: Path | str | None = None, download: bool = True,
               timeout: float = 60.0) -> Bible:
    """A SWORD Bible module, verse by verse: ``"engKJV2006eb"`` (KJV) or ``"spaRV1909eb"``.

    ``module``: a name in :data:`SWORD_MODULES` (or a :class:`SwordModule`). The six module
    files come, each verified by its SHA-256, from the installed Debian package
    (``sword-text-kjv``, ``sword-text-sparv``) or else from the pinned ``.deb``: the cache
    (``cache_dir``, default :func:`~papernotes_core.runtime.data_dir`), then a download from
    Debian's pool or snapshot.debian.org unless ``download`` is false or ``PAPERNOTES_OFFLINE``
    is set (``timeout`` in seconds). See :func:`~papernotes_core.data.debian.read_debian_files`.

    Returns a :class:`Bible` of all 31,102 verses (plain text, :func:`strip_markup`).

    Raises ``KeyError`` for an unknown module name (listing the known ones),
    :class:`~papernotes_core.data.fetch.DataUnavailableError` when no source works (listing what
    was tried and the ``apt-get install`` line), :class:`SwordFormatError` for malformed files.
    """
    if isinstance(module, str):
        if module not in SWORD_MODULES:
            raise KeyError(f"unknown SWORD module {module!r}: known modules are "
                           f"{', '.join(SWORD_MODULES)}")
        module = SWORD_MODULES[module]
    elif not isinstance(module, SwordModule):
        raise TypeError(f"module must be a module name or a SwordModule, got "
                        f"{type(module).__name__}")
    files = read_debian_files(module.source, cache_dir=cache_dir, download=download,
                              timeout=timeout)
    return bible_from_files(module.name, {path.rsplit("/", 1)[-1]: files[path]
                                          for path in module.files})


def aligned_verses(a: Bible, b: Bible) -> list[tuple[VerseKey, str, str]]:
    """The verses both Bibles have text for: ``[(key, text in a, text in b)]``, canonical order.

    Both use the KJV versification, so the same key is the same verse slot; see the module
    docstring for the places where the Reina-Valera's slots hold neighbouring verses.
    """
    for name, bible in (("a", a), ("b", b)):
        if not isinstance(bible, Bible):
            raise TypeError(f"{name} must be a Bible, got {type(bible).__name__}")
    return [(key, text, b.verses[key]) for key, text in a.verses.items()
            if text and b.verses[key]]
