"""Tests of papernotes_core.data.debian, .sword and .freedict: Debian packages, SWORD Bibles, dictd.

Three kinds of test:

* the real data (the KJV and Reina-Valera 1909 SWORD modules, the FreeDict English-Spanish
  dictionary), read from the installed Debian packages; skipped, saying so, where they are not
  installed (``apt-get install sword-text-kjv sword-text-sparv dict-freedict-eng-spa``);
* the ``.deb`` path, with small fabricated packages (an ``ar`` archive holding a ``data.tar``
  with fake module files) whose pins are put in a :class:`DebianSource` built by the test and
  served by an HTTP server on 127.0.0.1: checksum match, mismatch, server gone, interrupted
  transfer, installed files with a wrong hash;
* the parsers on valid inputs, on each malformation they name, and (hypothesis) on random
  corruptions of valid inputs, where the only exception allowed is the parser's FormatError.

PAPERNOTES_OFFLINE=1 and a temporary PAPERNOTES_DATA keep every test off the network and out of
the real cache.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import struct
import tarfile
import unicodedata
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import LocalServer
from papernotes_core.data import debian, freedict, sword
from papernotes_core.data.debian import DebFormatError, DebianSource, deb_members
from papernotes_core.data.fetch import DataUnavailableError, Remote
from papernotes_core.data.freedict import DictEntry, DictFormatError, read_dictd
from papernotes_core.data.sword import SwordFormatError, read_ztext, verse_index

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test: its own cache folder, and no network."""
    monkeypatch.setenv("PAPERNOTES_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("PAPERNOTES_OFFLINE", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder`` (hidden ones too), as relative paths."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Builders: .deb, zText, dictd


def ar_archive(members: list[tuple[str, bytes]]) -> bytes:
    """An ``ar`` archive as dpkg-deb writes it (GNU names ending in '/', even padding)."""
    out = bytearray(b"!<arch>\n")
    for name, body in members:
        header = (f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(body):<10}").encode()
        out += header + b"`\n" + body + (b"\n" if len(body) % 2 else b"")
    return bytes(out)


def tar_bytes(files: dict[str, bytes], compression: str = "xz", symlinks=()) -> bytes:
    """A data.tar (names ``./usr/...``, with their folders) compressed as asked."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        folders = sorted({"/".join(p.split("/")[:i]) for p in files
                          for i in range(1, p.count("/") + 1)})
        for folder in folders:
            info = tarfile.TarInfo(f"./{folder}/")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, body in files.items():
            info = tarfile.TarInfo(f"./{path}")
            info.size, info.mode = len(body), 0o644
            tar.addfile(info, io.BytesIO(body))
        for path, target in symlinks:
            info = tarfile.TarInfo(f"./{path}")
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    raw = buf.getvalue()
    return {"xz": lzma.compress, "gz": gzip.compress, "bz2": bz2.compress,
            "": bytes, "zst": bytes}[compression](raw)


def make_deb(files: dict[str, bytes], compression: str = "xz", symlinks=()) -> bytes:
    """A minimal .deb: debian-binary, control.tar.xz, data.tar[.compression]."""
    control = tar_bytes({"control": b"Package: fake\nVersion: 1.0\n"}, "xz")
    data_name = "data.tar" + (f".{compression}" if compression else "")
    return ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", control),
                       (data_name, tar_bytes(files, compression, symlinks))])


def write_ztext(entries: list[str], per_block: int = 3) -> tuple[bytes, bytes, bytes]:
    """One testament of a zText module holding ``entries`` (``""``: an empty entry)."""
    bzs, bzv, bzz = bytearray(), bytearray(), bytearray()
    block, records = bytearray(), []

    def flush():
        if block:
            packed = zlib.compress(bytes(block))
            bzs.extend(struct.pack("<III", len(bzz), len(packed), len(block)))
            bzz.extend(packed)
            block.clear()

    for text in entries:
        raw = text.encode()
        if not raw:
            records.append((0, 0, 0))
            continue
        if len(records) and len(block) and sum(1 for r in records if r[2]) % per_block == 0:
            flush()
        records.append((len(bzs) // 12, len(block), len(raw)))
        block.extend(raw)
    flush()
    for record in records:
        bzv.extend(struct.pack("<IIH", *record))
    return bytes(bzs), bytes(bzv), bytes(bzz)


def module_files(texts: dict[tuple[str, int, int], str]) -> dict[str, bytes]:
    """The six files of a zText module of KJV versification holding ``texts`` (raw OSIS)."""
    entries = {t: [""] * n for t, n in sword.TESTAMENT_ENTRIES.items()}
    entries["ot"][1] = entries["nt"][1] = '<milestone type="x-importer"/>'
    for (book, chapter, verse), text in texts.items():
        testament, index = verse_index(book, chapter, verse)
        entries[testament][index] = text
    files = {}
    for testament, items in entries.items():
        bzs, bzv, bzz = write_ztext(items, per_block=50)
        files.update({f"{testament}.bzs": bzs, f"{testament}.bzv": bzv, f"{testament}.bzz": bzz})
    return files


def dictd(entries: list[tuple[str, str]], *, compress: bool = True) -> tuple[bytes, bytes]:
    """A dictd ``(index, data)`` for ``(headword, text)`` entries, metadata first."""
    data = bytearray()
    lines = []
    for headword, text in [("00databaseshort", "Fake dictionary\n"),
                           ("00databaseutf8", "\n")] + entries:
        raw = text.encode()
        lines.append(f"{headword}\t{b64(len(data))}\t{b64(len(raw))}\n")
        data.extend(raw)
    return "".join(lines).encode(), (gzip.compress(bytes(data)) if compress else bytes(data))


def b64(n: int) -> str:
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = digits[n % 64]
    while n >= 64:
        n //= 64
        out = digits[n % 64] + out
    return out


# ---------------------------------------------------------------------------------------------
# A fake SWORD module in a fake .deb

FAKE_PACKAGE = "sword-text-fake"
FAKE_DATA_PATH = "usr/share/sword/modules/texts/ztext/fakeKJV"
FAKE_TEXTS = {
    ("Gen", 1, 1): '<div type="x-p" sID="g3"/> In the <w lemma="strong:H7225">beginning</w> '
                   'God.<note placement="foot"><reference>1.1 </reference>Heb. note</note> ',
    ("Ps", 3, 1): '<title canonical="true" type="psalm">A Psalm of David.</title> <l/>LORD, '
                  '&amp; more',
    ("Matt", 1, 1): "The book",
    ("Rev", 22, 21): "Amen. <chapter eID=\"Rev.22\"/>",
}


def fake_module(root: Path, deb: bytes, urls: tuple[str, ...],
                files: dict[str, bytes], deb_sha256: str | None = None) -> sword.SwordModule:
    """A SwordModule whose pins are those of ``files`` and ``deb``, looked up under ``root``."""
    remote = Remote("debian", f"{FAKE_PACKAGE}_1.0_all.deb", deb_sha256 or sha256(deb),
                    urls=urls, size=len(deb), hint=f"apt-get install {FAKE_PACKAGE} (as root)")
    pins = {f"{FAKE_DATA_PATH}/{name}": sha256(body) for name, body in files.items()}
    source = DebianSource(FAKE_PACKAGE, remote, pins, root=root)
    return sword.SwordModule("fakeKJV", "en", "a fake", FAKE_DATA_PATH, source)


@pytest.fixture(scope="module")
def fake_files() -> dict[str, bytes]:
    return module_files(FAKE_TEXTS)


@pytest.fixture(scope="module")
def fake_deb(fake_files) -> bytes:
    return make_deb({f"{FAKE_DATA_PATH}/{name}": body for name, body in fake_files.items()})


def install(root: Path, files: dict[str, bytes]) -> None:
    for name, body in files.items():
        path = root / FAKE_DATA_PATH / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)


def check_fake_bible(bible: sword.Bible) -> None:
    assert bible.module == "fakeKJV" and len(bible) == sword.N_VERSES
    assert bible.verse("Gen", 1, 1) == "In the beginning God."
    assert bible.verse("Ps", 3, 1) == "A Psalm of David. LORD, & more"
    assert bible.verse("Matt", 1, 1) == "The book"
    assert bible.verse("Rev", 22, 21) == "Amen."
    assert bible.verse("Gen", 1, 2) == ""
    assert sum(1 for text in bible.verses.values() if text) == 4


# ---------------------------------------------------------------------------------------------
# The .deb path: download, verify, cache, fall back


def test_load_bible_downloads_the_deb_verifies_and_caches_it(server, monkeypatch, tmp_path,
                                                             fake_files, fake_deb):
    url = server.serve("/pool/fake.deb", fake_deb)
    module = fake_module(tmp_path / "root", fake_deb, (url,), fake_files)
    monkeypatch.setitem(sword.SWORD_MODULES, "fakeKJV", module)  # by name, as the real ones
    check_fake_bible(sword.load_bible("fakeKJV"))
    assert server.requests == ["/pool/fake.deb"]
    # The cache holds the verified .deb, nothing else (members are extracted in memory).
    assert files_under(tmp_path / "cache") == [f"debian/{FAKE_PACKAGE}_1.0_all.deb"]
    monkeypatch.setenv("PAPERNOTES_OFFLINE", "1")
    check_fake_bible(sword.load_bible(module, download=False))  # from the cache
    assert server.requests == ["/pool/fake.deb"]


def test_second_mirror_is_tried_when_the_first_fails(server, tmp_path, fake_files, fake_deb):
    module = fake_module(tmp_path / "root", fake_deb,
                         (server.url("/gone.deb"), server.serve("/snapshot/x", fake_deb)),
                         fake_files)
    check_fake_bible(sword.load_bible(module))
    assert server.requests == ["/gone.deb", "/snapshot/x"]


def test_checksum_mismatch_is_an_error_and_leaves_nothing(server, tmp_path, fake_files,
                                                          fake_deb):
    url = server.serve("/fake.deb", fake_deb)
    module = fake_module(tmp_path / "root", fake_deb, (url,), fake_files, deb_sha256="0" * 64)
    with pytest.raises(DataUnavailableError, match="checksum mismatch") as info:
        sword.load_bible(module)
    message = str(info.value)
    assert url in message
    assert f"apt-get install {FAKE_PACKAGE}" in message
    assert (f"installed package {FAKE_PACKAGE}: not installed (none of its files is there: "
            f"{tmp_path / 'root' / FAKE_DATA_PATH}/ot.bzs, ") in message
    assert message.count(f"apt-get install {FAKE_PACKAGE}") == 1
    assert isinstance(info.value, FileNotFoundError)
    assert files_under(tmp_path / "cache") == []  # no .deb, no temporary file


def test_server_gone(monkeypatch, tmp_path, fake_files, fake_deb):
    monkeypatch.delenv("PAPERNOTES_OFFLINE")
    gone = LocalServer()
    url = gone.serve("/fake.deb", fake_deb)
    gone.close()
    module = fake_module(tmp_path / "root", fake_deb, (url,), fake_files)
    with pytest.raises(DataUnavailableError, match="connection refused") as info:
        sword.load_bible(module, timeout=5)
    assert f"apt-get install {FAKE_PACKAGE}" in str(info.value)
    assert files_under(tmp_path / "cache") == []


def test_interrupted_transfer_leaves_nothing(server, tmp_path, fake_files, fake_deb):
    url = server.serve("/fake.deb", fake_deb)
    server.cut["/fake.deb"] = len(fake_deb) // 2
    module = fake_module(tmp_path / "root", fake_deb, (url,), fake_files)
    with pytest.raises(DataUnavailableError, match="cut short"):
        sword.load_bible(module, timeout=10)
    assert files_under(tmp_path / "cache") == []


def test_offline_with_nothing_installed_or_cached(tmp_path, fake_files, fake_deb):
    module = fake_module(tmp_path / "root", fake_deb, ("http://127.0.0.1:9/x.deb",), fake_files)
    for kwargs in ({}, {"download": False}):
        with pytest.raises(DataUnavailableError) as info:
            sword.load_bible(module, **kwargs)
        message = str(info.value)
        assert "not tried" in message and f"apt-get install {FAKE_PACKAGE}" in message
        assert "http://127.0.0.1:9/x.deb" in message
    assert files_under(tmp_path / "cache") == []


def test_installed_files_are_used_without_downloading(server, tmp_path, fake_files, fake_deb):
    install(tmp_path / "root", fake_files)
    module = fake_module(tmp_path / "root", fake_deb, (server.serve("/f.deb", fake_deb),),
                         fake_files)
    check_fake_bible(sword.load_bible(module))
    assert server.requests == []
    assert files_under(tmp_path / "cache") == []


def test_installed_file_with_a_wrong_hash_is_rejected_and_the_deb_used(server, tmp_path,
                                                                        fake_files, fake_deb):
    tampered = dict(fake_files)
    tampered["nt.bzz"] = fake_files["nt.bzz"].replace(b"x", b"y") + b"\0"  # another version
    install(tmp_path / "root", tampered)
    module = fake_module(tmp_path / "root", fake_deb, (server.serve("/f.deb", fake_deb),),
                         fake_files)
    check_fake_bible(sword.load_bible(module))  # the .deb's text, not the installed one
    assert server.requests == ["/f.deb"]
    # Offline and with no cache, the error names the bad installed file and its hash.
    (tmp_path / "cache").rename(tmp_path / "old-cache")
    with pytest.raises(DataUnavailableError) as info:
        sword.load_bible(module, download=False)
    assert f"nt.bzz: SHA-256 is {sha256(tampered['nt.bzz'])}" in str(info.value)


def test_verified_deb_with_a_wrong_member_is_an_error(server, tmp_path, fake_files):
    wrong = dict(fake_files)
    wrong["ot.bzs"] = fake_files["ot.bzs"][:-12]  # a member that does not match its pin
    deb = make_deb({f"{FAKE_DATA_PATH}/{name}": body for name, body in wrong.items()})
    module = fake_module(tmp_path / "root", deb, (server.serve("/w.deb", deb),), fake_files)
    with pytest.raises(DataUnavailableError, match=f"member {FAKE_DATA_PATH}/ot.bzs has SHA-256"):
        sword.load_bible(module)


def test_load_freedict_through_a_fake_deb(server, tmp_path):
    index, data = dictd([("dog", "dog /dɔg/\nperro\n"), ("house", "house /haus/\ncasa\n")])
    paths = ("usr/share/dictd/freedict-xx-yy.index", "usr/share/dictd/freedict-xx-yy.dict.dz")
    deb = make_deb(dict(zip(paths, (index, data))), compression="gz")
    remote = Remote("debian", "dict-freedict-xx-yy_1_all.deb", sha256(deb),
                    urls=(server.serve("/d.deb", deb),), size=len(deb))
    source = freedict.FreeDictSource("xx-yy", *paths, DebianSource(
        "dict-freedict-xx-yy", remote, {paths[0]: sha256(index), paths[1]: sha256(data)},
        root=tmp_path / "root"))
    entries = freedict.load_freedict(source)
    assert [(e.headword, e.translations) for e in entries] == [("dog", ("perro",)),
                                                             ("house", ("casa",))]
    assert server.requests == ["/d.deb"]


def test_unknown_names_list_the_known_ones():
    with pytest.raises(KeyError, match="engKJV2006eb, spaRV1909eb"):
        sword.load_bible("engKJV")
    with pytest.raises(KeyError, match="eng-spa"):
        freedict.load_freedict("spa-eng")
    with pytest.raises(TypeError):
        sword.load_bible(3)


def test_real_pins():
    kjv, rv = sword.SWORD_MODULES["engKJV2006eb"], sword.SWORD_MODULES["spaRV1909eb"]
    assert kjv.source.package == "sword-text-kjv" and rv.source.package == "sword-text-sparv"
    assert kjv.source.deb.urls == (
        "http://deb.debian.org/debian/pool/main/s/sword-text-kjv/sword-text-kjv_14.3-1_all.deb",
        "https://snapshot.debian.org/file/f1243f951811f073842b0d67fec8cddd90b40f2f")
    assert kjv.source.deb.sha256 == \
        "9f463f28ce665f6f528fc723179722bced880a4c5485f7a41bf742838315de57"
    assert kjv.source.deb.size == 2_800_476 and rv.source.deb.size == 2_722_332
    assert rv.source.deb.urls[1] == \
        "https://snapshot.debian.org/file/ed6bfcbf1e7e296b7db0109a85332ed6bb6d143d"
    assert kjv.source.files[
        "usr/share/sword/modules/texts/ztext/engKJV2006eb/ot.bzz"] == \
        "69f7e4e9b42ecef2e212ea957a388fccbeed1e3e333a38cf52e1b4064c6ce373"
    assert len(kjv.source.files) == len(rv.source.files) == 6
    assert kjv.source.root == Path("/")
    eng_spa = freedict.FREEDICT_PAIRS["eng-spa"]
    assert eng_spa.source.deb.urls == (
        "http://deb.debian.org/debian/pool/main/f/freedict/"
        "dict-freedict-eng-spa_2022.04.21-1_all.deb",
        "https://snapshot.debian.org/file/10e2bf262d451b633dd0944d0a8096255372c924")
    assert eng_spa.source.files == {
        "usr/share/dictd/freedict-eng-spa.index":
            "1a74493522ebcfa3ff93e4e0d4f16ffed3afc4a64a8192f419b77d14789ac718",
        "usr/share/dictd/freedict-eng-spa.dict.dz":
            "1e33c230e4c1ba56a3ad48e50d0d52ea0ffd41b2e6d51880457cb6d1fcb6f2e3"}
    assert eng_spa.source.deb.filename == "dict-freedict-eng-spa_2022.04.21-1_all.deb"


# ---------------------------------------------------------------------------------------------
# deb_members


SMALL = {"usr/share/a/one.txt": b"first file\n", "usr/share/a/two.bin": bytes(range(256)) * 3}


@pytest.mark.parametrize("compression", ["xz", "gz", "bz2", ""])
def test_deb_members_reads_each_compression(compression, tmp_path):
    deb = make_deb(SMALL, compression)
    wanted = ["./usr/share/a/one.txt", "/usr/share/a/two.bin"]
    got = deb_members(deb, wanted)
    assert got == {wanted[0]: SMALL["usr/share/a/one.txt"], wanted[1]: SMALL["usr/share/a/two.bin"]}
    path = tmp_path / "x.deb"
    path.write_bytes(deb)
    assert deb_members(path, ["usr/share/a/one.txt"]) == {"usr/share/a/one.txt": b"first file\n"}
    assert deb_members(str(path), []) == {}


def test_deb_members_errors():
    good = make_deb(SMALL, "xz")
    cases = [
        (b"PK\x03\x04 a zip", "not a .deb"),
        (good[:8 + 30], "truncated ar header"),
        (good[:8 + 60 + 2], "is truncated: 4 bytes declared, 2 left"),
        (ar_archive([("debian-binary", b"2.0\n")]), "no data.tar member"),
        (make_deb(SMALL, "zst"), "zstd, which is not supported"),
        (ar_archive([("data.tar.xz", b"not xz at all")]), "not a valid xz stream"),
        (ar_archive([("data.tar.lz4", b"")]), "unknown compression"),
        (ar_archive([("data.tar", b"garbage" * 100)]), "not a readable tar archive"),
        (ar_archive([("data.tar", b""), ("data.tar.xz", b"")]), "more than one data.tar"),
        (good[:8] + good[8:56] + b"12x4567890" + good[66:], "bad size field"),
        (good[:8] + good[8:66] + b"??" + good[68:], "no '`\\\\n' terminator"),
    ]
    for deb, match in cases:
        with pytest.raises(DebFormatError, match=match):
            deb_members(deb, ["usr/share/a/one.txt"])
    with pytest.raises(DebFormatError, match="has no file usr/share/a/three.txt"):
        deb_members(good, ["usr/share/a/one.txt", "usr/share/a/three.txt"])
    linked = make_deb(SMALL, "", symlinks=[("usr/share/a/link", "one.txt")])
    with pytest.raises(DebFormatError, match="usr/share/a/link \\(not a regular file\\)"):
        deb_members(linked, ["usr/share/a/link"])
    assert issubclass(DebFormatError, ValueError)
    with pytest.raises(TypeError):
        deb_members(good, "usr/share/a/one.txt")


def test_snapshot_url():
    assert debian.snapshot_url("a" * 40) == "https://snapshot.debian.org/file/" + "a" * 40
    with pytest.raises(ValueError):
        debian.snapshot_url("A" * 40)


def corrupted(data: st.DataObject, raw: bytes) -> bytes:
    """``raw`` with random bit flips, a truncation, random bytes written over or inserted."""
    raw = bytearray(raw)
    kind = data.draw(st.sampled_from(["flip", "truncate", "overwrite", "insert"]))
    if kind == "flip" or not raw:
        for _ in range(data.draw(st.integers(1, 4))):
            if raw:
                i = data.draw(st.integers(0, len(raw) - 1))
                raw[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        del raw[data.draw(st.integers(0, len(raw) - 1)):]
    else:
        i = data.draw(st.integers(0, len(raw)))
        junk = data.draw(st.binary(min_size=1, max_size=16))
        raw[i:i + (len(junk) if kind == "overwrite" else 0)] = junk
    return bytes(raw)


DEB_PLAIN = make_deb(SMALL, "")
DEB_XZ = make_deb(SMALL, "xz")


@FUZZ
@given(st.data(), st.sampled_from([DEB_PLAIN, DEB_XZ]))
def test_fuzz_deb_members_raises_only_deb_format_errors(data, deb):
    broken = corrupted(data, deb)
    try:
        got = deb_members(broken, list(SMALL))
    except DebFormatError:
        return
    assert set(got) == set(SMALL) and all(isinstance(v, bytes) for v in got.values())


# ---------------------------------------------------------------------------------------------
# The KJV versification and verse_index


def test_kjv_books_table():
    books = sword.KJV_BOOKS
    assert len(books) == 66 and sword.N_OT_BOOKS == 39
    assert [b[0] for b in books[:3]] == ["Gen", "Exod", "Lev"] and books[38][0] == "Mal"
    assert books[39][:2] == ("Matt", "Matthew") and books[-1][0] == "Rev"
    assert sum(len(b[2]) for b in books) == 1_189
    assert sum(sum(b[2]) for b in books) == sword.N_VERSES == 31_102
    assert sum(sum(b[2]) for b in books[:39]) == 23_145
    by_id = {b[0]: b[2] for b in books}
    assert len(by_id["Ps"]) == 150 and by_id["Ps"][118] == 176 and by_id["Obad"] == (21,)
    assert len(by_id["Gen"]) == 50 and by_id["Gen"][0] == 31 and by_id["Rev"][-1] == 21
    assert by_id["John"][2] == 36
    # entries per testament: 2 headers + per book 1 heading + chapters + verses
    assert sword.TESTAMENT_ENTRIES == {"ot": 2 + 39 + 929 + 23_145, "nt": 2 + 27 + 260 + 7_957}


def test_verse_index_hand_computed():
    assert verse_index("Gen", 1, 1) == ("ot", 4)
    assert verse_index("Gen", 1, 2) == ("ot", 5)
    assert verse_index("Gen", 2, 1) == ("ot", 4 + 31 + 1)
    gen_size = 1 + 50 + 1_533  # heading, chapter headings, verses
    assert verse_index("Exod", 1, 1) == ("ot", 2 + gen_size + 2)
    assert verse_index("Matt", 1, 1) == ("nt", 4)
    assert verse_index("Mal", 4, 6) == ("ot", sword.TESTAMENT_ENTRIES["ot"] - 1)
    assert verse_index("Rev", 22, 21) == ("nt", sword.TESTAMENT_ENTRIES["nt"] - 1)
    indices = [verse_index(*key) for key in sword._KEYS]
    assert len(indices) == len(set(indices)) == 31_102


def test_verse_index_errors():
    with pytest.raises(KeyError, match="unknown book 'Genesis'.*Gen, Exod"):
        verse_index("Genesis", 1, 1)
    with pytest.raises(ValueError, match="Gen has chapters 1..50, got chapter 51"):
        verse_index("Gen", 51, 1)
    with pytest.raises(ValueError, match="Gen 1 has verses 1..31, got verse 32"):
        verse_index("Gen", 1, 32)
    with pytest.raises(ValueError, match="verses 1..31, got verse 0"):
        verse_index("Gen", 1, 0)
    with pytest.raises(TypeError):
        verse_index("Gen", 1.0, 1)
    with pytest.raises(TypeError):
        verse_index("Gen", True, 1)


# ---------------------------------------------------------------------------------------------
# read_ztext


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.text(max_size=30), max_size=25), st.integers(1, 5))
def test_read_ztext_round_trip(entries, per_block):
    assert read_ztext(*write_ztext(entries, per_block)) == entries


ZTEXT = write_ztext(["", "<milestone/>", "In the beginning", "", "and the earth.", "é ñ ü",
                     "x" * 40], per_block=2)


def test_read_ztext_errors():
    bzs, bzv, bzz = ZTEXT
    block = zlib.compress(b"\xff\xfe")
    cases = [
        ((bzs[:-1], bzv, bzz), "ot.bzs is 35 bytes, not a multiple of 12"),
        ((bzs, bzv + b"\0", bzz), "ot.bzv is 71 bytes, not a multiple of 10"),
        ((bzs, bzv, bzz[:-3]), "ot.bzs block 2: bytes .* lie outside ot.bzz"),
        ((bzs, bzv, bzz[:5] + b"\xff\xff\xff" + bzz[8:]), "block 0 .* not a valid zlib stream"),
        ((struct.pack("<III", 0, len(block) - 3, 2), struct.pack("<IIH", 0, 0, 2), block),
         "block 0 .* truncated zlib stream"),
        ((bzs[:8] + struct.pack("<I", 99) + bzs[12:], bzv, bzz),
         "block 0 decompresses to 28 bytes, but ot.bzs says 99"),  # "<milestone/>In the..."
        ((bzs, bzv[:20] + struct.pack("<IIH", 7, 0, 3) + bzv[30:], bzz),
         "entry 2 is in block 7, but ot.bzs lists 3 blocks \\(0..2\\)"),
        ((bzs, bzv[:20] + struct.pack("<IIH", 0, 20, 10) + bzv[30:], bzz),
         "entry 2: bytes 20..30 lie outside block 0"),
        ((struct.pack("<III", 0, len(block), 2), struct.pack("<IIH", 0, 0, 2), block),
         "entry 0 .* not valid UTF-8"),
    ]
    for args, match in cases:
        with pytest.raises(SwordFormatError, match=match):
            read_ztext(*args, name="ot")
    with pytest.raises(TypeError):
        read_ztext("text", bzv, bzz)
    assert issubclass(SwordFormatError, ValueError)


def test_corrupt_block_is_a_clear_error():
    bzs, bzv, bzz = ZTEXT
    for i in range(len(bzz)):  # one byte changed anywhere: never a silent wrong text
        broken = bzz[:i] + bytes([bzz[i] ^ 0x55]) + bzz[i + 1:]
        try:
            got = read_ztext(bzs, bzv, broken)
        except SwordFormatError as e:
            assert "block" in str(e) or "entry" in str(e)
        else:
            assert got == read_ztext(*ZTEXT)  # e.g. a flip in a zlib header's unused bits


@FUZZ
@given(st.data(), st.integers(0, 2))
def test_fuzz_read_ztext_raises_only_sword_format_errors(data, which):
    parts = list(ZTEXT)
    parts[which] = corrupted(data, parts[which])
    try:
        got = read_ztext(*parts)
    except SwordFormatError:
        return
    assert isinstance(got, list) and all(isinstance(e, str) for e in got)
    assert len(got) == len(parts[1]) // 10


# ---------------------------------------------------------------------------------------------
# strip_markup, tokenize, Bible


def test_strip_markup():
    raw = ('<div type="x-milestone" subType="x-preverse" sID="pv1"/><title canonical="true" '
           'type="psalm">A <w lemma="strong:H4210">Psalm</w> of David.</title> <lg sID="g"/>'
           '<l level="1" sID="g2"/>¶ <divineName><w lemma="strong:H3068">LORD</w></divineName>, '
           'how <transChange type="added">are</transChange> they<note placement="foot">'
           '<reference type="annotateRef">3.1 </reference>Heb. <seg>note</seg></note> \\nd '
           '<w>many</w>&amp;<w>few</w>!<lb/>Next<chapter eID="Ps.3"/>')
    assert sword.strip_markup(raw) == "A Psalm of David. LORD, how are they many&few! Next"
    assert sword.strip_markup("<w>in</w><w>to</w>") == "into"  # inline tags join
    assert sword.strip_markup("a<lb/>b<l sID='x'/>c</l>d") == "a b c d"  # block tags separate
    assert sword.strip_markup('<chapter eID="Job.38"/><div eID="g" type="x-p"/>') == ""
    assert sword.strip_markup("x<note>unclosed note") == "x"
    assert sword.strip_markup("&lt;tag&gt; &quot;q&quot; \\+nd*x") == '<tag> "q" x'
    assert sword.strip_markup("") == ""


def test_tokenize():
    text = "EN el principio crió Dios los cielos; ¿Cómo está el Niño? ¡Ágape, pingüino!"
    assert sword.tokenize(text) == ["en", "el", "principio", "crió", "dios", "los", "cielos",
                                    "cómo", "está", "el", "niño", "ágape", "pingüino"]
    decomposed = unicodedata.normalize("NFD", "ÁRBOL añejo")
    assert decomposed != "ÁRBOL añejo"
    assert sword.tokenize(decomposed) == ["árbol", "añejo"]
    assert all(unicodedata.is_normalized("NFC", t) for t in sword.tokenize(decomposed))
    assert sword.tokenize("the LORD’s house, don't") == ["the", "lord", "s", "house", "don", "t"]
    assert sword.tokenize("3 días_x Kirjath-jearim 2Sam") == ["días", "x", "kirjath", "jearim",
                                                              "sam"]
    assert sword.tokenize("") == []


def test_bible_from_files_and_its_errors(fake_files):
    bible = sword.bible_from_files("fakeKJV", fake_files)
    check_fake_bible(bible)
    keys = list(bible.verses)
    assert keys[0] == ("Gen", 1, 1) and keys[-1] == ("Rev", 22, 21) and len(keys) == 31_102
    tokens = bible.tokens()
    assert len(tokens) == 31_102 and tokens[0] == ["in", "the", "beginning", "god"]
    assert sum(map(len, tokens)) == 4 + 6 + 2 + 1
    with pytest.raises(ValueError, match="Gen has chapters 1..50"):
        bible.verse("Gen", 99, 1)
    with pytest.raises(TypeError):
        bible.verses[("Gen", 1, 1)] = "changed"  # read-only
    short = dict(fake_files)
    short["nt.bzv"] = fake_files["nt.bzv"][:-10]
    with pytest.raises(SwordFormatError, match="nt.bzv has 8245 entries; the KJV versification "
                                               "needs 8246"):
        sword.bible_from_files("fakeKJV", short)
    with pytest.raises(ValueError, match="in canonical order"):
        sword.Bible("x", {("Gen", 1, 1): "a"})


def test_aligned_verses(fake_files):
    a = sword.bible_from_files("a", fake_files)
    texts = dict(FAKE_TEXTS)
    texts[("Matt", 1, 1)] = "<chapter/>"  # no text in b
    texts[("Gen", 1, 2)] = "only in b"
    b = sword.bible_from_files("b", module_files(texts))
    pairs = sword.aligned_verses(a, b)
    assert [key for key, _, _ in pairs] == [("Gen", 1, 1), ("Ps", 3, 1), ("Rev", 22, 21)]
    assert pairs[0] == (("Gen", 1, 1), "In the beginning God.", "In the beginning God.")
    with pytest.raises(TypeError):
        sword.aligned_verses(a, {})


# ---------------------------------------------------------------------------------------------
# read_dictd and translation_pairs


DICT_ENTRIES = [
    ("a", "a /ə/\n1. a, dentro de, en\n2. un, una\n"),
    ("dog", "dog /dɔg/\nperro\n"),
    ("give", "give /givʌp/\nabandonar, ceder\n"),
    ("house", "House /haus/\nCasa, casa\n"),
    ("ring", "ring /riŋ/\n1. anillo\n2. llamar, tocarlacampanilla\n"),
    ("water", "water\n1. agua\n2. Ágape\n"),  # no pronunciation; an accented capital
]


def test_read_dictd_parses_entries():
    for compress in (True, False):
        index, data = dictd(DICT_ENTRIES, compress=compress)
        entries = read_dictd(index, data)
        assert [e.headword for e in entries] == ["a", "dog", "give", "House", "ring", "water"]
        assert entries[0] == DictEntry("a", "ə", ("a", "dentro de", "en", "un", "una"),
                                       DICT_ENTRIES[0][1])
        assert entries[1].translations == ("perro",) and entries[1].pronunciation == "dɔg"
        assert entries[2].pronunciation == "givʌp"  # the truncated "give up"
        assert entries[3].translations == ("Casa", "casa")
        assert entries[5].pronunciation is None and entries[5].translations == ("agua", "Ágape")


def test_dictd_base64_numbers():
    # An entry at offset 70 ("BG": 1 * 64 + 6) of length 4 ("E").
    data = b"x" * 70 + b"dog\n"
    entries = read_dictd(b"dog\tBG\tE\n", data)
    assert entries[0].raw == "dog\n"
    assert b64(70) == "BG" and b64(0) == "A" and b64(64 ** 2) == "BAA"
    with pytest.raises(DictFormatError, match="outside the data"):
        read_dictd(b"dog\tBG\tF\n", data)


def test_read_dictd_errors():
    index, data = dictd(DICT_ENTRIES)
    cases = [
        ((b"dog\tA\n", data), "index line 1: expected 'headword<TAB>offset<TAB>length'"),
        ((b"dog\tA\tB\tC\n", data), "expected 'headword"),
        ((b"\tA\tB\n", data), "index line 1: expected"),
        ((b"dog\tA\tB\ncat\tA*\tB\n", data), "index line 2: offset 'A\\*' has '\\*'"),
        ((b"dog\tA\t\n", data), "empty length"),
        ((b"dog\tZZZZ\tB\n", data), "outside the data"),
        ((b"dog\t\xff\tB\n", data), "index is not valid UTF-8"),
        ((b"dog\tA\tC\n", b"\xc3\x28x"), "not valid UTF-8"),
        ((index, data[:2] + b"\x00" + data[3:]), "not a valid gzip stream"),
        ((index, data[:-12]), "gzip"),
    ]
    for args, match in cases:
        with pytest.raises(DictFormatError, match=match):
            read_dictd(*args)
    assert issubclass(DictFormatError, ValueError)
    with pytest.raises(TypeError):
        read_dictd("index", data)


@FUZZ
@given(st.data(), st.sampled_from(["index", "data", "plain", "lines"]))
def test_fuzz_read_dictd_raises_only_dict_format_errors(data, what):
    index, gz = dictd(DICT_ENTRIES)
    _, plain = dictd(DICT_ENTRIES, compress=False)
    if what == "index":
        args = (corrupted(data, index), gz)
    elif what == "data":
        args = (index, corrupted(data, gz))
    elif what == "plain":
        args = (index, corrupted(data, plain))
    else:  # random bytes as index lines
        args = (data.draw(st.binary(max_size=60)) + b"\n" + index, plain)
    try:
        got = read_dictd(*args)
    except DictFormatError:
        return
    assert all(isinstance(e, DictEntry) and isinstance(e.raw, str) for e in got)


def test_translation_pairs():
    index, data = dictd(DICT_ENTRIES)
    entries = read_dictd(index, data)
    pairs = freedict.translation_pairs(entries)
    assert pairs == sorted(set(pairs))
    assert pairs == [("a", "a"), ("a", "en"), ("a", "un"), ("a", "una"), ("dog", "perro"),
                     ("give", "abandonar"), ("give", "ceder"), ("house", "casa"),
                     ("ring", "anillo"), ("ring", "llamar"), ("ring", "tocarlacampanilla"),
                     ("water", "agua"), ("water", "ágape")]
    everything = freedict.translation_pairs(entries, single_words=False)
    assert ("a", "dentro de") in everything and set(pairs) < set(everything)
    nfd = [DictEntry("Árbol", None, (unicodedata.normalize("NFD", "Ñandú"),), "")]
    assert freedict.translation_pairs(nfd) == [("árbol", "ñandú")]
    assert freedict.translation_pairs([DictEntry("African woman", None, ("africana",), "")]) == []


# ---------------------------------------------------------------------------------------------
# The real data, from the installed Debian packages

_KJV_DIR = Path("/usr/share/sword/modules/texts/ztext/engKJV2006eb")
_RV_DIR = Path("/usr/share/sword/modules/texts/ztext/spaRV1909eb")
_DICT = Path("/usr/share/dictd/freedict-eng-spa.index")


def _need(path: Path, package: str) -> None:
    if not path.exists():
        pytest.skip(f"the Debian package {package} is not installed ({path} is not there; "
                    f"apt-get install {package})")


@pytest.fixture(scope="module")
def kjv(tmp_path_factory):
    _need(_KJV_DIR, "sword-text-kjv")
    return sword.load_bible("engKJV2006eb", cache_dir=tmp_path_factory.mktemp("c"),
                            download=False)


@pytest.fixture(scope="module")
def rv(tmp_path_factory):
    _need(_RV_DIR, "sword-text-sparv")
    return sword.load_bible("spaRV1909eb", cache_dir=tmp_path_factory.mktemp("c"),
                            download=False)


@pytest.fixture(scope="module")
def eng_spa(tmp_path_factory):
    _need(_DICT, "dict-freedict-eng-spa")
    return freedict.load_freedict("eng-spa", cache_dir=tmp_path_factory.mktemp("c"),
                                  download=False)


def test_real_kjv_verses(kjv):
    assert kjv.verse("Gen", 1, 1) == "In the beginning God created the heaven and the earth."
    assert kjv.verse("John", 3, 16) == (
        "For God so loved the world, that he gave his only begotten Son, that whosoever "
        "believeth in him should not perish, but have everlasting life.")
    assert kjv.verse("Rev", 22, 21) == "The grace of our Lord Jesus Christ be with you all. Amen."
    # The footnote of Gen 1:4 ("Heb. between the light and between the darkness") is dropped.
    assert kjv.verse("Gen", 1, 4) == ("And God saw the light, that it was good: and God divided "
                                      "the light from the darkness.")
    assert kjv.verse("Ps", 3, 1).startswith("A Psalm of David, when he fled from Absalom his "
                                            "son. LORD, how are they increased")
    assert "\\" not in kjv.verse("Exod", 6, 3) and "name JEHOVAH was" in kjv.verse("Exod", 6, 3)
    assert all(t and not any(c in t for c in "<>\\¶&") for t in kjv.verses.values())


def test_real_rv1909_verses(rv):
    assert rv.verse("Gen", 1, 1) == "EN el principio crió Dios los cielos y la tierra."
    assert rv.verse("John", 3, 16) == (
        "Porque de tal manera amó Dios al mundo, que ha dado á su Hijo unigénito, para que todo "
        "aquel que en él cree, no se pierda, mas tenga vida eterna.")
    assert rv.verse("Rev", 22, 21) == ("La gracia de nuestro Señor Jesucristo sea con todos "
                                       "vosotros. Amén.")
    empty = [key for key, text in rv.verses.items() if not text]
    assert empty == [("Num", 12, 16), ("Num", 29, 40), ("1Sam", 23, 29), ("2Sam", 20, 26),
                     ("2Chr", 33, 25), ("Job", 35, 16), ("Job", 38, 39), ("Job", 38, 40),
                     ("Job", 38, 41), ("Job", 40, 20), ("Job", 40, 21), ("Job", 40, 22),
                     ("Job", 40, 23), ("Job", 40, 24), ("Hos", 11, 12), ("Jonah", 1, 17),
                     ("Acts", 19, 41), ("2Cor", 13, 14)]
    assert all(not any(c in t for c in "<>\\&") for t in rv.verses.values())


def test_real_modules_align(kjv, rv):
    for name in ("engKJV2006eb", "spaRV1909eb"):
        module = sword.SWORD_MODULES[name]
        files = debian.read_debian_files(module.source, download=False)
        for testament in ("ot", "nt"):
            entries = read_ztext(*(files[f"{module.data_path}/{testament}.{ext}"]
                                   for ext in ("bzs", "bzv", "bzz")))
            assert len(entries) == sword.TESTAMENT_ENTRIES[testament]  # same number, both
    pairs = sword.aligned_verses(kjv, rv)
    assert 31_080 <= len(pairs) <= 31_090  # measured: 31,084 (31,102 less 18 empty in RV1909)
    assert pairs[0] == (("Gen", 1, 1), kjv.verse("Gen", 1, 1), rv.verse("Gen", 1, 1))


def test_real_token_counts(kjv, rv):
    n_kjv = sum(map(len, kjv.tokens()))
    n_rv = sum(map(len, rv.tokens()))
    assert 790_000 <= n_kjv <= 797_000  # measured: 793,514
    assert 700_000 <= n_rv <= 707_000  # measured: 703,820
    assert kjv.tokens()[0] == ["in", "the", "beginning", "god", "created", "the", "heaven",
                               "and", "the", "earth"]


def test_real_dictionary(eng_spa):
    assert len(eng_spa) == 5_907  # "Size: 5907 headwords" (00databaseinfo)
    by_head: dict[str, list[DictEntry]] = {}
    for entry in eng_spa:
        by_head.setdefault(entry.headword, []).append(entry)
    assert [e.translations for e in by_head["dog"]] == [("perro",)]
    assert any("agua" in e.translations for e in by_head["water"])
    assert by_head["house"][0].translations == ("casa",)
    light = by_head["light"][0]
    assert light.pronunciation == "lait" and light.translations[:4] == (
        "encender", "claro", "alumbrar", "luz")
    give_up = [e for e in by_head["give"] if e.pronunciation == "givʌp"]
    assert give_up and give_up[0].translations == ("abandonar", "ceder")
    pairs = freedict.translation_pairs(eng_spa)
    assert ("dog", "perro") in pairs and ("water", "agua") in pairs
    assert ("house", "casa") in pairs and ("ring", "tocarlacampanilla") in pairs
    assert 8_500 <= len(pairs) <= 8_700  # measured: 8,608
    assert len(freedict.translation_pairs(eng_spa, single_words=False)) > len(pairs)
