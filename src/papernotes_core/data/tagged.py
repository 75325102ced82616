"""Tagged text as byte spans: CoNLL-U, CoNLL IOB NER and the Brown corpus.

The byte-to-span chapter reads text as UTF-8 bytes and predicts annotations as byte spans
``(start, length, label)``. These readers turn each format's tokens and tags into one
:class:`TaggedText`: the sentence's text (tokens joined by a space, or by nothing where the
format says so) and its spans, with byte offsets into ``text.encode("utf-8")``.

Formats:

* **CoNLL-U** (Universal Dependencies): ten tab-separated columns per word, ``#`` comments,
  blank lines between sentences. A word whose MISC column holds ``SpaceAfter=No`` is joined to
  the next without a space. A multiword token (ID ``n-m``, e.g. Spanish *del* = *de el*) is one
  surface span; it carries the tag of its first word (the words inside have no bytes of their
  own). Empty nodes (ID ``n.1``) are skipped. POS spans carry the UPOS column by default.
* **CoNLL NER**: one token per line, columns separated by whitespace, the token first and the
  IOB tag last, blank lines between sentences, ``-DOCSTART-`` lines ignored. IOB2 (``B-`` opens
  every entity) and IOB1 (``I-`` opens an entity unless it continues one of the same type) both
  read correctly: an ``I-X`` continues the open entity only if it is of type X, else it opens
  one. Entity spans run from the first token's first byte to the last token's last byte.
* **Brown** (NLTK's files): one sentence per line of ``word/tag`` tokens, blank and
  whitespace-only lines skipped; the tag is what follows the *last* slash.

Tag sets. The chapter shares labels between English and Turkish through the 12 universal tags of
Petrov, Das & McDonald (2012), ``NOUN VERB ADJ ADV PRON DET ADP NUM CONJ PRT . X``: Brown tags
map through their published ``en-brown.map`` (shipped beside this file, CC BY-SA 4.0), UD's 17
UPOS tags through :data:`UPOS_TO_UNIVERSAL` (the correspondence UD's documentation gives:
``PROPN`` → ``NOUN``, ``AUX`` → ``VERB``, ``CCONJ``/``SCONJ`` → ``CONJ``, ``PART`` → ``PRT``,
``PUNCT`` → ``.``, ``SYM``/``INTJ`` → ``X``). The Turkish treebanks of ``turkish-treebanks``
already use the 12 tags (with ``PUNCT`` for ``.``, and ``ONOM``/``AFFIX`` on 11 words, mapped to
``X``).

Malformed input raises :class:`TaggedFormatError` (a ``ValueError``) naming the line and what
was expected; nothing is skipped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = [
    "UNIVERSAL_TAGS",
    "UPOS_TO_UNIVERSAL",
    "Span",
    "TaggedFormatError",
    "TaggedText",
    "brown_to_universal",
    "check_spans",
    "iob_to_spans",
    "read_brown",
    "read_conll_ner",
    "read_conllu",
    "tokens_to_spans",
    "universal_tag",
]

Span = tuple[int, int, str]
"""A byte span: ``(start byte, length in bytes, label)``."""

UNIVERSAL_TAGS = ("NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X")

UPOS_TO_UNIVERSAL = {
    "NOUN": "NOUN", "PROPN": "NOUN", "VERB": "VERB", "AUX": "VERB", "ADJ": "ADJ", "ADV": "ADV",
    "PRON": "PRON", "DET": "DET", "ADP": "ADP", "NUM": "NUM", "CCONJ": "CONJ", "SCONJ": "CONJ",
    "CONJ": "CONJ", "PART": "PRT", "PRT": "PRT", "PUNCT": ".", ".": ".", "SYM": "X", "INTJ": "X",
    "X": "X", "ONOM": "X", "AFFIX": "X",
}
"""UD's UPOS (and the older 12-tag names the Turkish treebanks use) to the 12 universal tags."""

_IOB = re.compile(r"^(?P<prefix>[BIES])-(?P<type>\S+)$")


class TaggedFormatError(ValueError):
    """A CoNLL-U, CoNLL NER or Brown file is malformed: the message says where and how."""


@dataclass(frozen=True)
class TaggedText:
    """One sentence: its text, its labelled byte spans, its language and task.

    ``spans`` are ``(start, length, label)`` with byte offsets into ``text.encode("utf-8")``,
    sorted by start, each inside the text and starting and ending on character boundaries.
    """

    text: str
    spans: tuple[Span, ...]
    lang: str = ""
    task: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"TaggedText.text must be a str, got {type(self.text).__name__}")
        object.__setattr__(self, "spans", tuple(tuple(s) for s in self.spans))
        check_spans(self.text.encode("utf-8"), self.spans)

    @property
    def data(self) -> bytes:
        """The text as UTF-8 bytes, the model's input."""
        return self.text.encode("utf-8")

    def strings(self) -> list[str]:
        """Each span's text, decoded from its bytes."""
        data = self.data
        return [data[s:s + n].decode("utf-8") for s, n, _ in self.spans]


def check_spans(data: bytes, spans) -> None:
    """Raise ``ValueError`` unless every span lies inside ``data`` on UTF-8 character boundaries.

    A span must be ``(start, length, label)`` with integers ``start >= 0``, ``length >= 1`` and
    ``start + length <= len(data)``; a span that crosses the text's end, or that cuts a
    multi-byte character, is an error naming it.
    """
    n = len(data)
    for span in spans:
        if len(span) != 3:
            raise ValueError(f"a span is (start, length, label), got {span!r}")
        start, length, label = span
        if isinstance(start, bool) or isinstance(length, bool) or not isinstance(start, int) \
                or not isinstance(length, int):
            raise TypeError(f"span start and length must be ints, got {span!r}")
        if start < 0 or length < 1:
            raise ValueError(f"span {span!r}: start must be >= 0 and length >= 1")
        if start + length > n:
            raise ValueError(f"span {span!r} crosses the text's end ({n} bytes)")
        for edge in (start, start + length):
            if edge < n and (data[edge] & 0xC0) == 0x80:
                raise ValueError(f"span {span!r} cuts a multi-byte UTF-8 character at byte {edge}")


def tokens_to_spans(tokens, labels, space_after=None) -> tuple[str, tuple[Span, ...]]:
    """Join ``tokens`` into a text and give each token its byte span with its label.

    Tokens are joined by one space, except after token *i* when ``space_after[i]`` is false
    (CoNLL-U's ``SpaceAfter=No``); there is no space after the last token. Returns
    ``(text, spans)`` with ``spans[i] = (byte start of token i, its length in bytes,
    labels[i])``. Raises ``ValueError`` on an empty token or mismatched lengths.
    """
    tokens, labels = list(tokens), list(labels)
    if len(tokens) != len(labels):
        raise ValueError(f"{len(tokens)} tokens but {len(labels)} labels")
    if space_after is None:
        space_after = [True] * len(tokens)
    space_after = list(space_after)
    if len(space_after) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(space_after)} space_after flags")
    parts, spans, pos = [], [], 0
    for i, (tok, lab) in enumerate(zip(tokens, labels)):
        if not isinstance(tok, str) or not tok:
            raise ValueError(f"token {i} is empty or not a str: {tok!r}")
        n = len(tok.encode("utf-8"))
        spans.append((pos, n, str(lab)))
        parts.append(tok)
        pos += n
        if i < len(tokens) - 1 and space_after[i]:
            parts.append(" ")
            pos += 1
    return "".join(parts), tuple(spans)


def iob_to_spans(tokens, tags, *, spaces: bool = True) -> tuple[str, tuple[Span, ...]]:
    """Join ``tokens`` (with spaces, or with nothing when ``spaces`` is false, as Japanese is
    written) and turn their IOB tags into entity spans.

    Tags are ``O``, ``B-X``, ``I-X`` (also ``E-X``/``S-X`` of IOBES). ``B-``/``S-`` open an
    entity; ``I-``/``E-`` continue the open entity if it has type X, else open one (so IOB1 and
    IOB2 both read right); ``O`` closes it. Returns ``(text, entity spans)``. Raises
    :class:`TaggedFormatError` on a tag of another shape.
    """
    tokens = list(tokens)
    text, token_spans = tokens_to_spans(tokens, tags, None if spaces else [False] * len(tokens))
    spans: list[Span] = []
    open_start = open_end = None
    open_type = None

    def close():
        if open_type is not None:
            spans.append((open_start, open_end - open_start, open_type))

    for i, (start, length, tag) in enumerate(token_spans):
        if tag == "O":
            close()
            open_type = None
            continue
        m = _IOB.match(tag)
        if m is None:
            raise TaggedFormatError(f"token {i} ({tokens[i]!r}): tag {tag!r} is not O, B-X, I-X, "
                                    "E-X or S-X")
        prefix, etype = m["prefix"], m["type"]
        if prefix in "IE" and open_type == etype:
            open_end = start + length
        else:
            close()
            open_start, open_end, open_type = start, start + length, etype
        if prefix in "ES":
            close()
            open_type = None
    close()
    return text, tuple(spans)


@lru_cache(maxsize=1)
def _brown_map() -> dict[str, str]:
    path = Path(__file__).with_name("en-brown.map")
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        brown, universal = line.split("\t")
        table[brown.lower()] = universal
    return table


def brown_to_universal(tag: str) -> str:
    """A Brown tag (any case, with ``-TL``/``-HL``/``-NC`` suffixes) as one of the 12 universal
    tags, by Petrov et al.'s ``en-brown.map``. Raises ``KeyError`` naming an unknown tag."""
    try:
        return _brown_map()[tag.lower()]
    except KeyError:
        raise KeyError(f"Brown tag {tag!r} is not in en-brown.map") from None


def universal_tag(upos: str) -> str:
    """A UPOS tag as one of the 12 universal tags (:data:`UPOS_TO_UNIVERSAL`); ``KeyError``
    naming an unknown tag."""
    try:
        return UPOS_TO_UNIVERSAL[upos]
    except KeyError:
        raise KeyError(f"POS tag {upos!r} is neither a UPOS tag nor one of the 12 universal "
                       "tags") from None


def _check_text(text) -> str:
    if isinstance(text, (bytes, bytearray)):
        try:
            return bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise TaggedFormatError(f"the file is not valid UTF-8: {e}") from None
    if not isinstance(text, str):
        raise TypeError(f"expected the file's text as str or bytes, got {type(text).__name__}")
    return text


def read_conllu(text, *, lang: str = "", column: str = "upos", universal: bool = True) -> list[TaggedText]:
    """Sentences of a CoNLL-U file as :class:`TaggedText` with one POS span per surface token.

    ``column``: ``"upos"`` (column 4) or ``"xpos"`` (column 5); with ``universal`` the tags map
    to the 12 universal tags (:func:`universal_tag`). Raises :class:`TaggedFormatError` naming
    the line for a line without 10 tab-separated columns, a word ID out of sequence, a multiword
    range that does not cover the next words, or an unknown tag.
    """
    text = _check_text(text)
    if column not in ("upos", "xpos"):
        raise ValueError(f"column must be 'upos' or 'xpos', got {column!r}")
    col = 3 if column == "upos" else 4
    out: list[TaggedText] = []
    tokens: list[str] = []
    labels: list[str] = []
    space: list[bool] = []
    expect = 1       # the next word ID
    covered = 0      # the last word ID inside the current multiword token

    def flush(lineno):
        nonlocal tokens, labels, space, expect, covered
        if covered >= expect:
            raise TaggedFormatError(f"line {lineno}: the sentence ends inside a multiword token")
        if tokens:
            sent, spans = tokens_to_spans(tokens, labels, space)
            out.append(TaggedText(sent, spans, lang, "pos"))
        tokens, labels, space, expect, covered = [], [], [], 1, 0

    lines = text.split("\n")
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip("\r")
        if not line.strip():
            flush(lineno)
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise TaggedFormatError(f"line {lineno}: expected 10 tab-separated columns, got "
                                    f"{len(cols)}: {line[:60]!r}")
        wid, form, misc = cols[0], cols[1], cols[9]
        if re.fullmatch(r"\d+\.\d+", wid):
            continue  # an empty node: no surface text
        m = re.fullmatch(r"(\d+)-(\d+)", wid)
        if m:
            a, b = int(m[1]), int(m[2])
            if a != expect or b <= a:
                raise TaggedFormatError(f"line {lineno}: multiword token {wid} where word {expect} "
                                        "was expected")
            if not form:
                raise TaggedFormatError(f"line {lineno}: multiword token {wid} has an empty form")
            tokens.append(form)
            labels.append(None)  # the first word's tag, filled in below
            space.append("SpaceAfter=No" not in misc.split("|"))
            covered = b
            continue
        if not wid.isdigit() or int(wid) != expect:
            raise TaggedFormatError(f"line {lineno}: word ID {wid!r} where {expect} was expected")
        tag = cols[col]
        if universal:
            try:
                tag = universal_tag(tag)
            except KeyError as e:
                raise TaggedFormatError(f"line {lineno}: {e.args[0]}") from None
        if expect <= covered:
            if labels and labels[-1] is None:
                labels[-1] = tag
        else:
            if not form.strip():
                raise TaggedFormatError(f"line {lineno}: word {wid} has an empty form")
            tokens.append(form)
            labels.append(tag)
            space.append("SpaceAfter=No" not in misc.split("|"))
        expect += 1
    flush(len(lines))
    return out


def read_conll_ner(text, *, lang: str = "", spaces: bool = True) -> list[TaggedText]:
    """Sentences of a CoNLL NER file as :class:`TaggedText` with one span per entity.

    One token per line (columns separated by tabs if the line has one, else by whitespace: the
    token first, the IOB tag last, any columns between ignored), blank lines between sentences,
    ``-DOCSTART-`` lines skipped. Tokens are joined by a space, or by nothing with
    ``spaces=False`` (Japanese; a token may then be a space character itself). Raises
    :class:`TaggedFormatError` naming the line for a line with one column or a malformed tag.
    """
    text = _check_text(text)
    out: list[TaggedText] = []
    tokens: list[str] = []
    tags: list[str] = []
    start_line = 1

    def flush():
        nonlocal tokens, tags
        if tokens:
            try:
                sent, spans = iob_to_spans(tokens, tags, spaces=spaces)
            except TaggedFormatError as e:
                raise TaggedFormatError(f"sentence at line {start_line}: {e}") from None
            out.append(TaggedText(sent, spans, lang, "ner"))
        tokens, tags = [], []

    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        cols = [c for c in line.split("\t")] if "\t" in line else line.split()
        if not line.strip():
            flush()
            start_line = lineno + 1
            continue
        if cols[0] == "-DOCSTART-":
            continue
        if len(cols) < 2 or not cols[0] or not cols[-1].strip():
            raise TaggedFormatError(f"line {lineno}: expected a token and an IOB tag, got "
                                    f"{line[:60]!r}")
        tokens.append(cols[0])
        tags.append(cols[-1].strip())
    flush()
    return out


def read_brown(text, *, universal: bool = True) -> list[TaggedText]:
    """Sentences of a Brown-corpus file (NLTK's format) as :class:`TaggedText` with POS spans.

    Each non-blank line is a sentence of ``word/tag`` tokens separated by whitespace. With
    ``universal`` the tags map to the 12 universal tags (:func:`brown_to_universal`). Raises
    :class:`TaggedFormatError` naming the line for a token without ``/``, an empty word or tag,
    or a tag that ``en-brown.map`` does not know.
    """
    text = _check_text(text)
    out: list[TaggedText] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        tokens, labels = [], []
        for item in line.split():
            word, slash, tag = item.rpartition("/")
            if not slash or not word or not tag:
                raise TaggedFormatError(f"line {lineno}: token {item!r} is not word/tag")
            if universal:
                try:
                    tag = brown_to_universal(tag)
                except KeyError as e:
                    raise TaggedFormatError(f"line {lineno}: {e.args[0]}") from None
            tokens.append(word)
            labels.append(tag)
        sent, spans = tokens_to_spans(tokens, labels)
        out.append(TaggedText(sent, spans, "en", "pos"))
    return out
